// CUDA kernels behind rdd/pixel_ops.h (f32). One thread per pixel (or per softmax row) for the
// per-pixel maps; block reductions with one double atomicAdd per block for sums; a 256-bin shared-memory
// histogram per pass for the radix select.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"
#include "rdd/pixel_math.h"
#include "rdd/pixel_ops_cuda.h"

namespace rdd::method::cuda {

namespace {

constexpr int64_t kBlockRowMin = 128;  // contiguous softmax rows at least this long get a block each


__global__ void ce_stats_kernel(const float* __restrict__ z, const int32_t* __restrict__ y, float* __restrict__ ce,
                                float* __restrict__ gtp, int64_t n, int c, int64_t hw, int ignore,
                                unsigned long long* counters) {
  // z: (N, C, HW); y, ce, gtp: (N, HW). Valid pixels are counted per thread, summed per warp, and added
  // with one atomic per warp (every thread of every warp reaches the reduction).
  unsigned long long valid = 0;
  RDD_GRID_LOOP(i, n * hw) {
    const int label = y[i];
    if (label == ignore) {
      ce[i] = 0.f;
      gtp[i] = 1.f;
      continue;
    }
    if (label < 0 || label >= c) {
      atomicMin(counters + 1, (unsigned long long)i);
      ce[i] = 0.f;
      gtp[i] = 1.f;
      continue;
    }
    ++valid;
    pixel_math::ce_pixel(z, label, i, c, hw, ce[i], gtp[i]);
  }
  for (int offset = 16; offset > 0; offset >>= 1) valid += __shfl_down_sync(0xffffffffu, valid, offset);
  if ((threadIdx.x & 31) == 0 && valid) atomicAdd(counters, valid);
}

__global__ void ce_coefficients_kernel(const int32_t* __restrict__ y, const float* __restrict__ cw, int num_weights,
                                       const float* __restrict__ pw, float* __restrict__ coef, int64_t n, int ignore) {
  RDD_GRID_LOOP(i, n) {
    const int label = y[i];
    // Labels were validated by ce_stats; one without a class weight contributes nothing rather than
    // reading out of bounds.
    const bool has_weight = !cw || (label >= 0 && label < num_weights);
    coef[i] = (label == ignore || !has_weight) ? 0.f : (cw ? cw[label] : 1.f) * (pw ? pw[i] : 1.f);
  }
}

__global__ void ce_grad_kernel(const float* __restrict__ z, const int32_t* __restrict__ y,
                               const float* __restrict__ coef, float scale, float* __restrict__ dz, int64_t n, int c,
                               int64_t hw, int ignore) {
  // z, dz: (N, C, HW); y, coef: (N, HW)
  RDD_GRID_LOOP(i, n * hw) pixel_math::ce_grad_pixel(z, dz, y[i], y[i] == ignore, scale * coef[i], i, int64_t(c), hw);
}

__global__ void kl_rows_kernel(const float* __restrict__ t, const float* __restrict__ s, float inv_t, int64_t outer,
                               int64_t len, int64_t inner, float grad_scale, float* __restrict__ kl,
                               float* __restrict__ grad) {
  // t, s, grad: (outer, len, inner); kl: (outer·inner)
  RDD_GRID_LOOP(row, outer * inner) kl[row] = pixel_math::kl_row(t, s, inv_t, row, len, inner, grad_scale, grad);
}

// Sums (or maxima) of two values over a block of kThreadsPerBlock threads; every thread gets the results.
template <bool kMax>
__device__ __forceinline__ void block_reduce2(float& a, float& b) {
  RDD_SHARED(float, sa, kThreadsPerBlock / 32);
  RDD_SHARED(float, sb, kThreadsPerBlock / 32);
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float oa = __shfl_xor_sync(0xffffffffu, a, offset), ob = __shfl_xor_sync(0xffffffffu, b, offset);
    a = kMax ? fmaxf(a, oa) : a + oa;
    b = kMax ? fmaxf(b, ob) : b + ob;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // the shared slots may still be read by a previous call
  if (lane == 0) sa[warp] = a, sb[warp] = b;
  __syncthreads();
  a = sa[0];
  b = sb[0];
  for (int w = 1; w < kThreadsPerBlock / 32; ++w) {
    a = kMax ? fmaxf(a, sa[w]) : a + sa[w];
    b = kMax ? fmaxf(b, sb[w]) : b + sb[w];
  }
}

// kl_rows for contiguous rows (inner == 1) of length len: one block of kThreadsPerBlock per row. Channel-wise
// distillation has few rows (N·C) of many positions (h·w), where a thread per row would leave the GPU idle.
__global__ void kl_rows_block_kernel(const float* __restrict__ t, const float* __restrict__ s, float inv_t,
                                     int64_t len, float grad_scale, float* __restrict__ kl, float* __restrict__ grad) {
  // t, s, grad: (rows, len); kl: (rows); blockDim.x == kThreadsPerBlock, one block per row
  const int64_t base = int64_t(blockIdx.x) * len;
  const float* tr = t + base;
  const float* sr = s + base;
  float mt = -INFINITY, ms = -INFINITY;
  for (int64_t j = threadIdx.x; j < len; j += kThreadsPerBlock) {
    mt = fmaxf(mt, tr[j] * inv_t);
    ms = fmaxf(ms, sr[j] * inv_t);
  }
  block_reduce2<true>(mt, ms);
  float st = 0.f, ss = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += kThreadsPerBlock) {
    st += expf(tr[j] * inv_t - mt);
    ss += expf(sr[j] * inv_t - ms);
  }
  block_reduce2<false>(st, ss);
  const float lt = mt + logf(st), ls = ms + logf(ss);
  float acc = 0.f, unused = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += kThreadsPerBlock) {
    const float log_pt = tr[j] * inv_t - lt, log_ps = sr[j] * inv_t - ls;
    const float pt = expf(log_pt);
    acc += pt * (log_pt - log_ps);
    if (grad) grad[base + j] = grad_scale * (expf(log_ps) - pt);
  }
  block_reduce2<false>(acc, unused);
  if (threadIdx.x == 0) kl[blockIdx.x] = acc;
}

// Σ a·b in two passes with a fixed order (no atomics), so that a loss scale such as TSE's 1/Σcoef is the
// same bit for bit in every run: each block's sum → partials[blockIdx.x]; then one block adds them up.
__device__ double block_sum(double v) {  // blockDim.x == kThreadsPerBlock; the result is valid in thread 0
  RDD_SHARED(double, partial, kThreadsPerBlock);
  partial[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreadsPerBlock / 2; stride > 0; stride >>= 1) {
    if (int(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  return partial[0];
}

__global__ void dot_partial_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t n,
                                   double* __restrict__ partials) {
  double v = 0;
  RDD_GRID_LOOP(i, n) v += double(a[i]) * (b ? double(b[i]) : 1.0);
  const double s = block_sum(v);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sum_partials_kernel(const double* __restrict__ partials, int count, double* __restrict__ out) {
  double v = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) v += partials[i];
  const double s = block_sum(v);
  if (threadIdx.x == 0) *out = s;
}

__global__ void exp_neg_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  RDD_GRID_LOOP(i, n) y[i] = expf(-x[i]);
}

__global__ void axpy_kernel(float* __restrict__ dst, const float* __restrict__ src, float alpha, int64_t n) {
  RDD_GRID_LOOP(i, n) dst[i] += alpha * src[i];
}

__device__ __forceinline__ uint32_t device_float_key(float f) {
  const uint32_t bits = __float_as_uint(f);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__global__ void radix_histogram_kernel(const float* __restrict__ x, int64_t n, uint32_t prefix, uint32_t mask,
                                       int shift, unsigned long long* hist) {
  RDD_SHARED(unsigned int, local, 256);
  for (int b = threadIdx.x; b < 256; b += blockDim.x) local[b] = 0;
  __syncthreads();
  RDD_GRID_LOOP(i, n) {
    const uint32_t key = device_float_key(x[i]);
    if ((key & mask) == prefix) atomicAdd(&local[(key >> shift) & 0xffu], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < 256; b += blockDim.x)
    if (local[b]) atomicAdd(hist + b, (unsigned long long)local[b]);
}

__global__ void tse_selection_kernel(const float* __restrict__ gs, float thr_s, const float* __restrict__ gt,
                                     float thr_t, const int32_t* __restrict__ y, int ignore, int mode,
                                     float* __restrict__ sel, int64_t n) {
  RDD_GRID_LOOP(i, n) sel[i] = pixel_math::tse_select(gs[i], thr_s, gt, thr_t, y[i] != ignore, mode, i) ? 1.f : 0.f;
}

}  // namespace

void ce_stats(const float* z, const int32_t* y, float* ce, float* gtp, int64_t n, int c, int64_t hw, int ignore,
              unsigned long long* counters, cudaStream_t stream) {
  if (n * hw == 0) return;
  launch<ce_stats_kernel>(grid_stride_blocks(n * hw), kThreadsPerBlock, 0, stream)(z, y, ce, gtp, n, c, hw, ignore, counters);
}

void ce_coefficients(const int32_t* y, const float* cw, int num_weights, const float* pw, float* coef, int64_t n_pix,
                     int ignore, cudaStream_t stream) {
  if (n_pix == 0) return;
  launch<ce_coefficients_kernel>(grid_stride_blocks(n_pix), kThreadsPerBlock, 0, stream)(y, cw, num_weights, pw, coef, n_pix, ignore);
}

void ce_grad(const float* z, const int32_t* y, const float* coef, float scale, float* dz, int64_t n, int c,
             int64_t hw, int ignore, cudaStream_t stream) {
  if (n * hw == 0) return;
  launch<ce_grad_kernel>(grid_stride_blocks(n * hw), kThreadsPerBlock, 0, stream)(z, y, coef, scale, dz, n, c, hw, ignore);
}

void kl_rows(const float* t, const float* s, float inv_temperature, int64_t outer, int64_t len, int64_t inner,
             float grad_scale, float* kl, float* grad, cudaStream_t stream) {
  if (outer * inner == 0) return;
  if (inner == 1 && len >= kBlockRowMin && outer <= int64_t(INT32_MAX)) {
    launch<kl_rows_block_kernel>(unsigned(outer), kThreadsPerBlock, 0, stream)(t, s, inv_temperature, len, grad_scale, kl, grad);
  } else {
    launch<kl_rows_kernel>(grid_stride_blocks(outer * inner), kThreadsPerBlock, 0, stream)(t, s, inv_temperature, outer, len, inner,
                                                                        grad_scale, kl, grad);
  }
}

void dot(const float* a, const float* b, int64_t n, double* partials, double* out, cudaStream_t stream) {
  const unsigned blocks = n == 0 ? 1u : std::min<unsigned>(grid_stride_blocks(n), unsigned(kDotMaxBlocks));
  launch<dot_partial_kernel>(blocks, kThreadsPerBlock, 0, stream)(a, b, n, partials);
  launch<sum_partials_kernel>(1, kThreadsPerBlock, 0, stream)(partials, int(blocks), out);
}

void exp_neg(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch<exp_neg_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(x, y, n);
}

void axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch<axpy_kernel>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(dst, src, alpha, n);
}

void radix_histogram(const float* x, int64_t n, uint32_t prefix, uint32_t mask, int shift, unsigned long long* hist,
                     cudaStream_t stream) {
  if (n == 0) return;
  launch<radix_histogram_kernel>(std::min(grid_stride_blocks(n), 1024u), kThreadsPerBlock, 0, stream)(x, n, prefix, mask, shift, hist);
}

void tse_selection(const float* gt_s, float thr_s, const float* gt_t, float thr_t, const int32_t* y, int ignore,
                   int mode, float* sel, int64_t n_pix, cudaStream_t stream) {
  if (n_pix == 0) return;
  launch<tse_selection_kernel>(grid_stride_blocks(n_pix), kThreadsPerBlock, 0, stream)(gt_s, thr_s, gt_t, thr_t, y, ignore, mode, sel,
                                                                    n_pix);
}

}  // namespace rdd::method::cuda
