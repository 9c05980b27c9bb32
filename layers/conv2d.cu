// Conv2d on the GPU: the convolution itself through the cuDNN graph API (engine/cudnn_graph.h), the
// bias add and the bias-gradient reduction as our own kernels. f32 NCHW; arguments are checked by
// conv2d.cpp before these run.
#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"
#include "engine/cuda_context.h"
#include "engine/cudnn_graph.h"
#include "layers/conv2d_cuda.h"

namespace rdd::layers::cuda {

namespace {

constexpr int kReduceThreads = 512;

// y (N, K, PQ) += b[k]. blockIdx.y walks the N·K planes, blockIdx.x × threads the PQ pixels.
__global__ void bias_add_kernel(float* __restrict__ y, const float* __restrict__ b, int64_t planes, int64_t K,
                                int64_t pq) {
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const float bk = b[plane % K];
    float* row = y + plane * pq;
    RDD_GRID_LOOP(i, pq)
      row[i] += bk;
  }
}

// db[k] += Σ_{n, i} dy[n, k, i] for dy (N, K, PQ): one block per channel, a fixed-order (deterministic)
// tree reduction of per-thread partial sums.
__global__ void bias_grad_kernel(const float* __restrict__ dy, float* __restrict__ db, int64_t N, int64_t K,
                                 int64_t pq) {
  RDD_SHARED(float, warp_sums, kReduceThreads / 32);
  const int64_t k = blockIdx.x;
  float acc = 0.f;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = dy + (n * K + k) * pq;
    for (int64_t i = threadIdx.x; i < pq; i += blockDim.x) acc += row[i];
  }
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (threadIdx.x == 0) db[k] += acc;
  }
}

[[maybe_unused]] cudnn::ConvParams conv_params(const Conv2dOptions& opt) {
  cudnn::ConvParams p;
  p.pad_h = p.pad_w = opt.padding;
  p.stride_h = p.stride_w = opt.stride;
  p.dilation_h = p.dilation_w = opt.dilation;
  p.groups = opt.groups;
  return p;
}

}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dOptions& opt) {
  // x (N, C, H, W), w (K, C/groups, R, S), b (K) or undefined, y (N, K, P, Q): f32 NCHW on one GPU
#if RDD_CUDA_EMULATED
  conv2d_forward_emulated_cudnn(x, w, y, opt);
#else
  cudnn::conv_forward(x, w, y, conv_params(opt));
#endif
  if (!b.defined()) return;
  CudaContext& ctx = cuda_context(x.device().index);
  const int64_t K = y.size(1), planes = y.size(0) * K, pq = y.size(2) * y.size(3);
  const unsigned blocks_x = unsigned(std::min<int64_t>((pq + kThreadsPerBlock - 1) / kThreadsPerBlock, 1024));
  const unsigned blocks_y = unsigned(std::min<int64_t>(planes, 65535));
  launch<bias_add_kernel>(dim3(blocks_x, blocks_y), kThreadsPerBlock, 0, ctx.compute_stream())(y.data<float>(), b.data<float>(),
                                                                                   planes, K, pq);
}

void conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt, Tensor* dx,
                          Tensor& dw, Tensor* db) {
  // dy (N, K, P, Q), x (N, C, H, W), w (K, C/groups, R, S); dx overwritten, dw and db accumulate.
#if RDD_CUDA_EMULATED
  conv2d_backward_emulated_cudnn(dy, x, w, opt, dx, dw);
#else
  const cudnn::ConvParams p = conv_params(opt);
  if (dx) cudnn::conv_backward_data(dy, w, *dx, p, 0.f);
  cudnn::conv_backward_filter(x, dy, dw, p, 1.f);
#endif
  if (!db) return;
  CudaContext& ctx = cuda_context(x.device().index);
  const int64_t N = dy.size(0), K = dy.size(1), pq = dy.size(2) * dy.size(3);
  launch<bias_grad_kernel>(unsigned(K), kReduceThreads, 0, ctx.compute_stream())(dy.data<float>(), db->data<float>(), N,
                                                                             K, pq);
}

}  // namespace rdd::layers::cuda
