// CUDA bilinear resize (see resize.h): forward one thread per output element; backward a deterministic
// separable gather (along W, then along H), one thread per element of each pass.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.h"
#include "engine/cuda_launch.h"
#include "layers/resize_taps.h"

namespace rdd::layers::cuda {

namespace {

using resize_detail::Tap;
using resize_detail::tap;

__global__ void resize_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t total, int in_h,
                                      int in_w, int out_h, int out_w, float scale_h, float scale_w,
                                      bool align_corners) {
  // x: (planes, in_h, in_w); y: (planes, out_h, out_w); total = planes·out_h·out_w
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int ow = int(i % out_w);
    const int oh = int((i / out_w) % out_h);
    const int64_t p = i / (int64_t(out_w) * out_h);
    const Tap h = tap(oh, in_h, scale_h, align_corners), w = tap(ow, in_w, scale_w, align_corners);
    const float* xs = x + p * in_h * in_w;
    const float* r0 = xs + int64_t(h.i0) * in_w;
    const float* r1 = xs + int64_t(h.i1) * in_w;
    y[i] = h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) + h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1]);
  }
}

__global__ void resize_gather_kernel(const float* __restrict__ src, float* __restrict__ dst, int64_t outer, int in,
                                     int out, int64_t inner, float scale, bool align_corners) {
  // src: (outer, out, inner); dst: (outer, in, inner) = the adjoint of the resize along the middle axis
  const int64_t total = outer * in * inner;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = j % inner;
    const int i = int((j / inner) % in);
    const int64_t o = j / (inner * in);
    dst[j] = resize_detail::gather_axis(src, o, i, k, in, out, inner, scale, align_corners);
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return unsigned(std::min<int64_t>((n + threads - 1) / threads, int64_t(65535) * 32));
}

}  // namespace

void bilinear_resize_forward(const float* x, float* y, int64_t planes, int in_h, int in_w, int out_h, int out_w,
                             float scale_h, float scale_w, bool align_corners, cudaStream_t stream) {
  const int64_t total = planes * out_h * out_w;
  if (total == 0) return;
  launch<resize_forward_kernel>(blocks_for(total, 256), 256, 0, stream)(x, y, total, in_h, in_w, out_h, out_w, scale_h,
                                                                     scale_w, align_corners);
}

void bilinear_resize_backward(const float* dy, float* dx, int64_t planes, int in_h, int in_w, int out_h, int out_w,
                              float scale_h, float scale_w, bool align_corners, float* scratch, cudaStream_t stream) {
  // Separable gather: along W into scratch (planes, out_h, in_w), then along H into dx (planes, in_h, in_w).
  const int64_t n1 = planes * out_h * in_w, n2 = planes * in_h * in_w;
  if (n1 == 0 || n2 == 0) return;
  launch<resize_gather_kernel>(blocks_for(n1, 256), 256, 0, stream)(dy, scratch, planes * out_h, in_w, out_w, 1, scale_w,
                                                                 align_corners);
  launch<resize_gather_kernel>(blocks_for(n2, 256), 256, 0, stream)(scratch, dx, planes, in_h, out_h, in_w, scale_h,
                                                                 align_corners);
}

}  // namespace rdd::layers::cuda
