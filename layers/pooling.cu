// MaxPool2d and AdaptiveAvgPool2d CUDA kernels (NCHW, f32 and f64), grid-stride loops.
//
// The backward passes gather (one thread per input element sums the outputs whose windows/bins
// contain it, in ascending output order) instead of scattering with atomics: deterministic, and
// max-pool backward matches the CPU scatter bit for bit.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"
#include "layers/pooling_index.h"

namespace rdd::layers::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h

template <class T>
__device__ __forceinline__ T neg_inf();
template <>
__device__ __forceinline__ float neg_inf<float>() { return -__int_as_float(0x7f800000); }
template <>
__device__ __forceinline__ double neg_inf<double>() { return -__longlong_as_double(0x7ff0000000000000ll); }

// x: (planes, h, w) → y, indices: (planes, oh, ow); one thread per output element.
template <class T>
__global__ void maxpool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int32_t* __restrict__ indices,
                                         int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow, int kernel,
                                         int stride, int padding) {
  const int64_t total = planes * oh * ow;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = o % ow, i = (o / ow) % oh, p = o / (ow * oh);
    const int64_t h0 = i * stride - padding, w0 = j * stride - padding;
    const int64_t hs = h0 > 0 ? h0 : 0, ws = w0 > 0 ? w0 : 0;
    const int64_t he = h0 + kernel < h ? h0 + kernel : h, we = w0 + kernel < w ? w0 + kernel : w;
    const T* xp = x + p * h * w;
    T best = neg_inf<T>();
    int64_t arg = hs * w + ws;
    for (int64_t r = hs; r < he; ++r) {
      for (int64_t c = ws; c < we; ++c) {
        const T v = xp[r * w + c];
        if (v > best || v != v) {  // strict: ties keep the first; NaN propagates (as in PyTorch)
          best = v;
          arg = r * w + c;
        }
      }
    }
    y[o] = best;
    if (indices) indices[o] = int32_t(arg);
  }
}

// dy, indices: (planes, oh, ow) → dx: (planes, h, w); one thread per input element gathers from the
// windows that contain it.
template <class T>
__global__ void maxpool2d_backward_kernel(const T* __restrict__ dy, const int32_t* __restrict__ indices,
                                          T* __restrict__ dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                          int64_t ow, int kernel, int stride, int padding) {
  const int64_t total = planes * h * w;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % w, r = (e / w) % h, p = e / (w * h);
    const int64_t i0 = pool_index::first_window_containing(r, kernel, stride, padding);
    const int64_t i1 = pool_index::last_window_containing(r, stride, padding, oh);
    const int64_t j0 = pool_index::first_window_containing(c, kernel, stride, padding);
    const int64_t j1 = pool_index::last_window_containing(c, stride, padding, ow);
    const int32_t self = int32_t(r * w + c);
    const T* dyp = dy + p * oh * ow;
    const int32_t* ip = indices + p * oh * ow;
    T sum = T(0);
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j)
        if (ip[i * ow + j] == self) sum += dyp[i * ow + j];
    dx[e] = sum;
  }
}

// x: (planes, h, w) → y: (planes, oh, ow); one warp per output element, lanes stride over the bin
// (row-major, so neighbouring lanes read neighbouring w), summed in double.
template <class T>
__global__ void adaptive_avgpool2d_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t planes,
                                                  int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t total = planes * oh * ow;
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t o = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; o < total; o += warps) {
    const int64_t j = o % ow, i = (o / ow) % oh, p = o / (ow * oh);
    const int64_t hs = pool_index::bin_start(i, h, oh), he = pool_index::bin_end(i, h, oh);
    const int64_t ws = pool_index::bin_start(j, w, ow), we = pool_index::bin_end(j, w, ow);
    const int64_t bw = we - ws, area = (he - hs) * bw;
    const T* xp = x + p * h * w;
    double sum = 0;
    for (int64_t t = lane; t < area; t += 32) sum += double(xp[(hs + t / bw) * w + ws + t % bw]);
    for (int d = 16; d > 0; d >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, d);
    if (lane == 0) y[o] = T(sum / double(area));
  }
}

// dy: (planes, oh, ow) → dx: (planes, h, w); one thread per input element gathers dy / area from the
// bins that contain it, in ascending bin order (as the CPU scatter adds them).
template <class T>
__global__ void adaptive_avgpool2d_backward_kernel(const T* __restrict__ dy, T* __restrict__ dx, int64_t planes,
                                                   int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const int64_t total = planes * h * w;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % w, r = (e / w) % h, p = e / (w * h);
    const int64_t i0 = pool_index::first_bin_containing(r, h, oh), i1 = pool_index::last_bin_containing(r, h, oh);
    const int64_t j0 = pool_index::first_bin_containing(c, w, ow), j1 = pool_index::last_bin_containing(c, w, ow);
    const T* dyp = dy + p * oh * ow;
    T sum = T(0);
    for (int64_t i = i0; i <= i1; ++i) {
      const int64_t area_h = pool_index::bin_end(i, h, oh) - pool_index::bin_start(i, h, oh);
      for (int64_t j = j0; j <= j1; ++j) {
        const int64_t area_w = pool_index::bin_end(j, w, ow) - pool_index::bin_start(j, w, ow);
        sum += dyp[i * ow + j] / T(area_h * area_w);
      }
    }
    dx[e] = sum;
  }
}
}  // namespace

template <class T>
void maxpool2d_forward(const T* x, T* y, int32_t* indices, int64_t planes, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int kernel, int stride, int padding, cudaStream_t stream) {
  launch<maxpool2d_forward_kernel<T>>(blocks_for(planes * oh * ow), kThreads, 0, stream)(x, y, indices, planes, h, w, oh,
                                                                                    ow, kernel, stride, padding);
}

template <class T>
void maxpool2d_backward(const T* dy, const int32_t* indices, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                        int64_t ow, int kernel, int stride, int padding, cudaStream_t stream) {
  launch<maxpool2d_backward_kernel<T>>(blocks_for(planes * h * w), kThreads, 0, stream)(dy, indices, dx, planes, h, w, oh,
                                                                                   ow, kernel, stride, padding);
}

template <class T>
void adaptive_avgpool2d_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                cudaStream_t stream) {
  launch<adaptive_avgpool2d_forward_kernel<T>>(blocks_for(planes * oh * ow * 32), kThreads, 0, stream)(x, y, planes, h, w,
                                                                                                  oh, ow);
}

template <class T>
void adaptive_avgpool2d_backward(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                 cudaStream_t stream) {
  launch<adaptive_avgpool2d_backward_kernel<T>>(blocks_for(planes * h * w), kThreads, 0, stream)(dy, dx, planes, h, w, oh,
                                                                                            ow);
}

#define RDD_POOLING_INSTANTIATE(T)                                                                                  \
  template void maxpool2d_forward<T>(const T*, T*, int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, \
                                     int, cudaStream_t);                                                            \
  template void maxpool2d_backward<T>(const T*, const int32_t*, T*, int64_t, int64_t, int64_t, int64_t, int64_t,    \
                                      int, int, int, cudaStream_t);                                                 \
  template void adaptive_avgpool2d_forward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t,            \
                                              cudaStream_t);                                                        \
  template void adaptive_avgpool2d_backward<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
RDD_POOLING_INSTANTIATE(float)
RDD_POOLING_INSTANTIATE(double)
#undef RDD_POOLING_INSTANTIATE

}  // namespace rdd::layers::kernels
