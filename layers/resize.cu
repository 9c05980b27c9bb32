// CUDA bilinear resize (see resize.h): forward one thread per output element; backward an atomicAdd
// scatter, one thread per dy element.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "engine/cuda_check.h"

namespace rdd::layers::cuda {

namespace {

struct Tap {
  int i0, i1;
  float l0, l1;
};

// The same rule as axis_taps in resize.cpp: float scale, source index in double, λ rounded to float.
__device__ __forceinline__ Tap tap(int d, int in, float scale, bool align_corners) {
  const double s = double(scale);
  double src = align_corners ? s * d : s * (d + 0.5) - 0.5;
  if (src < 0) src = 0;
  const int i0 = min(int(floor(src)), in - 1);
  const float l1 = float(fmin(fmax(src - i0, 0.0), 1.0));
  return {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.f - l1, l1};
}

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

__global__ void resize_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, int64_t total, int in_h,
                                       int in_w, int out_h, int out_w, float scale_h, float scale_w,
                                       bool align_corners) {
  // dy: (planes, out_h, out_w); dx: (planes, in_h, in_w), zeroed by the caller
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int ow = int(i % out_w);
    const int oh = int((i / out_w) % out_h);
    const int64_t p = i / (int64_t(out_w) * out_h);
    const Tap h = tap(oh, in_h, scale_h, align_corners), w = tap(ow, in_w, scale_w, align_corners);
    const float g = dy[i];
    float* ds = dx + p * in_h * in_w;
    float* r0 = ds + int64_t(h.i0) * in_w;
    float* r1 = ds + int64_t(h.i1) * in_w;
    atomicAdd(r0 + w.i0, h.l0 * w.l0 * g);
    atomicAdd(r0 + w.i1, h.l0 * w.l1 * g);
    atomicAdd(r1 + w.i0, h.l1 * w.l0 * g);
    atomicAdd(r1 + w.i1, h.l1 * w.l1 * g);
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
  resize_forward_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(x, y, total, in_h, in_w, out_h, out_w, scale_h,
                                                                     scale_w, align_corners);
  RDD_CUDA_CHECK_LAUNCH();
}

void bilinear_resize_backward(const float* dy, float* dx, int64_t planes, int in_h, int in_w, int out_h, int out_w,
                              float scale_h, float scale_w, bool align_corners, cudaStream_t stream) {
  const int64_t total = planes * out_h * out_w;
  if (total == 0) return;
  resize_backward_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(dy, dx, total, in_h, in_w, out_h, out_w, scale_h,
                                                                      scale_w, align_corners);
  RDD_CUDA_CHECK_LAUNCH();
}

}  // namespace rdd::layers::cuda
