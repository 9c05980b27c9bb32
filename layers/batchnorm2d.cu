// BatchNorm2d on the GPU: our own kernels (cuDNN's batch-norm entry points are deprecated legacy API),
// f32 NCHW, split as batchnorm2d.h describes so a SyncBN reducer can run between the steps.
//
// Statistics: every thread sums its strided share of a channel's N·H·W elements in f32 (≈16 each),
// a block reduces its threads with warp shuffles, and a second kernel reduces the blocks of each
// channel — all in a fixed order, so results are deterministic run to run. The forward sums are of
// x − shift (shifted data; batchnorm2d.h says which shift), which keeps E[d²] − E[d]² well conditioned.
#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"
#include "engine/cuda_context.h"
#include "layers/batchnorm2d_cuda.h"
#include "layers/batchnorm_math.h"

namespace rdd::layers::cuda {

namespace {

constexpr int kMaxBlocksPerChannel = kThreadsPerBlock;  // the finalize kernel reads ≤ one block sum per thread
constexpr int kElementsPerThread = 16;

// The statistics and the backward sums accumulate in double, as the CPU reference does: Σdy over a
// channel is often a small difference of large terms (a BN whose output feeds another BN, a pooled
// branch), where f32 partial sums lose digits the gradient needs. The loads and the per-element math
// stay f32; the sums are bandwidth-bound, so the double adds cost nothing measurable.
__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sums a and b over the block (blockDim.x a multiple of 32); the totals are valid in thread 0.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  RDD_SHARED(double, sa, 32);
  RDD_SHARED(double, sb, 32);
  a = warp_sum(a);
  b = warp_sum(b);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    a = warp_sum(lane < warps ? sa[lane] : 0.0);
    b = warp_sum(lane < warps ? sb[lane] : 0.0);
  }
}

// Step 1a (one thread per channel): shift_c = x[0, c, 0, 0] (from_x) or running_mean[c].
__global__ void pick_shift_kernel(const float* __restrict__ x, const float* __restrict__ running_mean, bool from_x,
                                  float* __restrict__ shift, int C, int64_t HW) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c < C) shift[c] = from_x ? x[c * HW] : running_mean[c];
}

// Step 1b (forward): block_sums (C, B, 2) f64 = per block [Σ(x − shift_c), Σ(x − shift_c)²] over its share
// of channel c = blockIdx.y. x (N, C, HW); M = N·HW < 2³¹.
__global__ void partial_sums_kernel(const float* __restrict__ x, const float* __restrict__ shift,
                                    double* __restrict__ block_sums, int C, unsigned HW, unsigned M) {
  const int c = blockIdx.y;
  const double s = shift[c];
  double a = 0.0, b = 0.0;
  for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < M; j += gridDim.x * blockDim.x) {
    const unsigned n = j / HW, i = j - n * HW;
    const double d = double(x[(size_t(n) * C + c) * HW + i]) - s;
    a += d;
    b += d * d;
  }
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    double* out = block_sums + (size_t(c) * gridDim.x + blockIdx.x) * 2;
    out[0] = a;
    out[1] = b;
  }
}

// Backward step 1: block_sums (C, B, 2) f64 = per block [Σdy, Σdy·x̂], x̂ = (x − mean)·invstd.
__global__ void backward_partial_kernel(const float* __restrict__ dy, const float* __restrict__ x,
                                        const float* __restrict__ mean, const float* __restrict__ invstd,
                                        double* __restrict__ block_sums, int C, unsigned HW, unsigned M) {
  const int c = blockIdx.y;
  const double m = mean[c], is = invstd[c];
  double a = 0.0, b = 0.0;
  for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < M; j += gridDim.x * blockDim.x) {
    const unsigned n = j / HW, i = j - n * HW;
    const size_t k = (size_t(n) * C + c) * HW + i;
    const double d = dy[k];
    a += d;
    b += d * ((double(x[k]) - m) * is);
  }
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    double* out = block_sums + (size_t(c) * gridDim.x + blockIdx.x) * 2;
    out[0] = a;
    out[1] = b;
  }
}

// Reduces the B ≤ blockDim.x block sums of channel c = blockIdx.x: out[c] = Σa, out[C + c] = Σb and,
// when count ≥ 0, out[2C + c] = count; acc_a[c] += Σa and acc_b[c] += Σb where given.
__global__ void finalize_kernel(const double* __restrict__ block_sums, int B, int C, float* __restrict__ out,
                                float count, float* __restrict__ acc_a, float* __restrict__ acc_b) {
  const int c = blockIdx.x;
  const bool mine = int(threadIdx.x) < B;
  double a = mine ? block_sums[(size_t(c) * B + threadIdx.x) * 2] : 0.0;
  double b = mine ? block_sums[(size_t(c) * B + threadIdx.x) * 2 + 1] : 0.0;
  block_sum2(a, b);
  if (threadIdx.x == 0) {
    out[c] = float(a);
    out[C + c] = float(b);
    if (count >= 0.f) out[2 * C + c] = count;
    if (acc_a) acc_a[c] = float(double(acc_a[c]) + a);
    if (acc_b) acc_b[c] = float(double(acc_b[c]) + b);
  }
}

// Step 3a (one thread per channel): batch mean/invstd/count from the reduced partial sums (3, C),
// and the running update (momentum > 0) with the unbiased variance. Double precision: C values only.
__global__ void stats_kernel(const float* __restrict__ partial, const float* __restrict__ shift, int C,
                             float* __restrict__ running_mean,
                             float* __restrict__ running_var, double eps, double momentum, float* __restrict__ mean,
                             float* __restrict__ invstd, float* __restrict__ count) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double M = partial[2 * C + c];
  const double dm = double(partial[c]) / M;
  double var = double(partial[C + c]) / M - dm * dm;
  var = var > 0.0 ? var : 0.0;
  const double mu = double(shift[c]) + dm;
  mean[c] = float(mu);
  invstd[c] = float(1.0 / sqrt(var + eps));
  count[c] = float(M);
  // M ≤ 1 over all ranks (SyncBN lets a rank hold no values): the CPU refuses it; here, where that
  // check would cost a sync, the running statistics at least keep their values instead of turning NaN.
  if (momentum > 0.0 && M > 1.0) {
    running_mean[c] = float((1.0 - momentum) * double(running_mean[c]) + momentum * mu);
    running_var[c] = float((1.0 - momentum) * double(running_var[c]) + momentum * var * M / (M - 1.0));
  }
}

// Step 3b: y = (x − mean_c)·gamma_c·invstd_c + beta_c over planes (N·C, HW). With stat_is_var the
// invstd comes from a variance: 1 / sqrt(stat_c + eps) (eval mode). blockIdx.y walks the planes.
__global__ void normalize_kernel(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ mean,
                                 const float* __restrict__ stat, bool stat_is_var, double eps,
                                 const float* __restrict__ gamma, const float* __restrict__ beta, int64_t planes, int C,
                                 int64_t HW, bool vec4) {
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int c = int(plane % C);
    const float m = mean[c];
    // Eval: stat is the running variance; train: the batch invstd.
    const float scale = stat_is_var ? batchnorm_math::eval_scale(gamma[c], stat[c], eps) : gamma[c] * stat[c];
    const float b = beta[c];
    const float* xs = x + plane * HW;
    float* ys = y + plane * HW;
    const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
    if (vec4) {
      const float4* x4 = reinterpret_cast<const float4*>(xs);
      float4* y4 = reinterpret_cast<float4*>(ys);
      for (int64_t i = start; i < HW / 4; i += step) {
        float4 v = x4[i];
        v.x = batchnorm_math::normalize(v.x, m, scale, b);
        v.y = batchnorm_math::normalize(v.y, m, scale, b);
        v.z = batchnorm_math::normalize(v.z, m, scale, b);
        v.w = batchnorm_math::normalize(v.w, m, scale, b);
        y4[i] = v;
      }
    } else {
      for (int64_t i = start; i < HW; i += step) ys[i] = batchnorm_math::normalize(xs[i], m, scale, b);
    }
  }
}

// Backward step 3: dx = gamma·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M), sums (2, C) reduced.
__global__ void backward_dx_kernel(const float* __restrict__ dy, const float* __restrict__ x, float* __restrict__ dx,
                                   const float* __restrict__ gamma, const float* __restrict__ mean,
                                   const float* __restrict__ invstd, const float* __restrict__ count,
                                   const float* __restrict__ sums, int64_t planes, int C, int64_t HW, bool vec4) {
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int c = int(plane % C);
    const float m = mean[c], is = invstd[c], a = gamma[c] * is;
    const float b1 = batchnorm_math::sum_over_count(sums[c], count[c]);
    const float b2 = batchnorm_math::sum_over_count(sums[C + c], count[c]);
    const float* dys = dy + plane * HW;
    const float* xs = x + plane * HW;
    float* dxs = dx + plane * HW;
    const int64_t start = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
    if (vec4) {
      const float4* d4 = reinterpret_cast<const float4*>(dys);
      const float4* x4 = reinterpret_cast<const float4*>(xs);
      float4* o4 = reinterpret_cast<float4*>(dxs);
      for (int64_t i = start; i < HW / 4; i += step) {
        const float4 d = d4[i], v = x4[i];
        float4 o;
        o.x = batchnorm_math::grad_input(d.x, v.x, m, is, a, b1, b2);
        o.y = batchnorm_math::grad_input(d.y, v.y, m, is, a, b1, b2);
        o.z = batchnorm_math::grad_input(d.z, v.z, m, is, a, b1, b2);
        o.w = batchnorm_math::grad_input(d.w, v.w, m, is, a, b1, b2);
        o4[i] = o;
      }
    } else {
      for (int64_t i = start; i < HW; i += step) dxs[i] = batchnorm_math::grad_input(dys[i], xs[i], m, is, a, b1, b2);
    }
  }
}

__global__ void increment_kernel(long long* counter) { *counter += 1; }

struct Dims {
  int64_t N, C, HW, M;
};
// for_stats: the statistics kernels put a channel on gridDim.y and count its N·H·W in 32 bits.
Dims dims_of(const Tensor& x, bool for_stats = true) {
  Dims d{x.size(0), x.size(1), x.size(2) * x.size(3), 0};
  d.M = d.N * d.HW;
  RDD_CHECK(!for_stats || (d.M < (int64_t(1) << 31) && d.C <= 65535), "batchnorm2d (cuda): input ", x.desc(),
            " is too large for the statistics kernels (N·H·W < 2³¹ and C ≤ 65535)");
  return d;
}

int blocks_per_channel(int64_t M) {
  const int64_t per_block = int64_t(kThreadsPerBlock) * kElementsPerThread;
  return int(std::clamp<int64_t>((M + per_block - 1) / per_block, 1, kMaxBlocksPerChannel));
}

// The grid of the element-wise kernels: x over a plane's HW (or HW/4), y over the N·C planes.
dim3 plane_grid(int64_t planes, int64_t work_per_plane) {
  const int64_t bx = std::clamp<int64_t>((work_per_plane + kThreadsPerBlock - 1) / kThreadsPerBlock, 1, 1024);
  // At least one block row even with no planes (an empty local batch under SyncBN): the kernels' plane loop
  // does nothing then, and a grid dimension of 0 would be a launch error.
  return dim3(unsigned(bx), unsigned(std::clamp<int64_t>(planes, 1, 65535)));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void batchnorm2d_partial_sums(const Tensor& x, const Tensor& running_mean, bool shift_from_x, Tensor& shift,
                                   Tensor& partial) {
  // x (N, C, H, W), running_mean, shift (C), partial (3, C): f32 on one GPU
  const Dims d = dims_of(x);
  CudaContext& ctx = cuda_context(x.device().index);
  launch<pick_shift_kernel>(unsigned((d.C + kThreadsPerBlock - 1) / kThreadsPerBlock), kThreadsPerBlock, 0, ctx.compute_stream())(
      x.data<float>(), running_mean.data<float>(), shift_from_x, shift.data<float>(), int(d.C), d.HW);
  const int B = blocks_per_channel(d.M);
  Tensor block_sums = Tensor::empty({d.C, B, 2}, DType::f64, x.device());
  launch<partial_sums_kernel>(dim3(unsigned(B), unsigned(d.C)), kThreadsPerBlock, 0, ctx.compute_stream())(
      x.data<float>(), shift.data<float>(), block_sums.data<double>(), int(d.C), unsigned(d.HW), unsigned(d.M));
  launch<finalize_kernel>(unsigned(d.C), kThreadsPerBlock, 0, ctx.compute_stream())(
      block_sums.data<double>(), B, int(d.C), partial.data<float>(), float(d.M), nullptr, nullptr);
}

void batchnorm2d_normalize_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& partial,
                                      const Tensor& shift, Tensor& running_mean, Tensor& running_var, double eps,
                                      double momentum, BatchNormSaved& saved, Tensor& y) {
  // x, y (N, C, H, W); gamma, beta, running stats, saved.* (C); partial (3, C)
  const Dims d = dims_of(x);
  CudaContext& ctx = cuda_context(x.device().index);
  launch<stats_kernel>(unsigned((d.C + kThreadsPerBlock - 1) / kThreadsPerBlock), kThreadsPerBlock, 0, ctx.compute_stream())(
      partial.data<float>(), shift.data<float>(), int(d.C), running_mean.data<float>(), running_var.data<float>(), eps,
      momentum, saved.mean.data<float>(), saved.invstd.data<float>(), saved.count.data<float>());
  const int64_t planes = d.N * d.C;
  const bool vec4 = d.HW % 4 == 0 && aligned16(x.raw()) && aligned16(y.raw());
  launch<normalize_kernel>(plane_grid(planes, vec4 ? d.HW / 4 : d.HW), kThreadsPerBlock, 0, ctx.compute_stream())(
      x.data<float>(), y.data<float>(), saved.mean.data<float>(), saved.invstd.data<float>(), false, 0.0,
      gamma.data<float>(), beta.data<float>(), planes, int(d.C), d.HW, vec4);
}

void batchnorm2d_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                                   const Tensor& running_var, double eps, Tensor& y) {
  const Dims d = dims_of(x, /*for_stats=*/false);
  CudaContext& ctx = cuda_context(x.device().index);
  const int64_t planes = d.N * d.C;
  const bool vec4 = d.HW % 4 == 0 && aligned16(x.raw()) && aligned16(y.raw());
  launch<normalize_kernel>(plane_grid(planes, vec4 ? d.HW / 4 : d.HW), kThreadsPerBlock, 0, ctx.compute_stream())(
      x.data<float>(), y.data<float>(), running_mean.data<float>(), running_var.data<float>(), true, eps,
      gamma.data<float>(), beta.data<float>(), planes, int(d.C), d.HW, vec4);
}

void batchnorm2d_backward_sums(const Tensor& dy, const Tensor& x, const BatchNormSaved& saved, Tensor& sums,
                                    Tensor& dgamma, Tensor& dbeta) {
  // dy, x (N, C, H, W); saved.* (C); sums (2, C); dgamma, dbeta (C) accumulate
  const Dims d = dims_of(x);
  CudaContext& ctx = cuda_context(x.device().index);
  const int B = blocks_per_channel(d.M);
  Tensor block_sums = Tensor::empty({d.C, B, 2}, DType::f64, x.device());
  launch<backward_partial_kernel>(dim3(unsigned(B), unsigned(d.C)), kThreadsPerBlock, 0, ctx.compute_stream())(
      dy.data<float>(), x.data<float>(), saved.mean.data<float>(), saved.invstd.data<float>(),
      block_sums.data<double>(), int(d.C), unsigned(d.HW), unsigned(d.M));
  launch<finalize_kernel>(unsigned(d.C), kThreadsPerBlock, 0, ctx.compute_stream())(
      block_sums.data<double>(), B, int(d.C), sums.data<float>(), -1.f, dbeta.data<float>(), dgamma.data<float>());
}

void batchnorm2d_backward_dx(const Tensor& dy, const Tensor& x, const Tensor& gamma, const BatchNormSaved& saved,
                                  const Tensor& sums, Tensor& dx) {
  const Dims d = dims_of(x, /*for_stats=*/false);
  CudaContext& ctx = cuda_context(x.device().index);
  const int64_t planes = d.N * d.C;
  const bool vec4 = d.HW % 4 == 0 && aligned16(x.raw()) && aligned16(dy.raw()) && aligned16(dx.raw());
  launch<backward_dx_kernel>(plane_grid(planes, vec4 ? d.HW / 4 : d.HW), kThreadsPerBlock, 0, ctx.compute_stream())(
      dy.data<float>(), x.data<float>(), dx.data<float>(), gamma.data<float>(), saved.mean.data<float>(),
      saved.invstd.data<float>(), saved.count.data<float>(), sums.data<float>(), planes, int(d.C), d.HW, vec4);
}

void increment_counter(Tensor& counter) {
  RDD_CHECK(counter.dtype() == DType::i64 && counter.numel() == 1, "batchnorm2d: num_batches_tracked ",
            counter.desc(), " must be one i64");
  CudaContext& ctx = cuda_context(counter.device().index);
  launch<increment_kernel>(1, 1, 0, ctx.compute_stream())(reinterpret_cast<long long*>(counter.data<int64_t>()));
}

}  // namespace rdd::layers::cuda
