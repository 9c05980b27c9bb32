// ReLU / ReLU6 CUDA kernels: elementwise, grid-stride loops, f32 and f64.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"

namespace rdd::layers::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h

// x, y: n elements (any shape).
template <class T>
__global__ void relu_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, bool relu6) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T v = x[i];
    y[i] = v < T(0) ? T(0) : ((relu6 && v > T(6)) ? T(6) : v);  // NaN passes
  }
}

// dy, v, dx: n elements; v is the forward's output (or input).
template <class T>
__global__ void relu_backward_kernel(const T* __restrict__ dy, const T* __restrict__ v, T* __restrict__ dx,
                                     int64_t n, bool relu6) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T a = v[i];
    dx[i] = (a > T(0) && (!relu6 || a < T(6))) ? dy[i] : T(0);
  }
}
}  // namespace

template <class T>
void relu_forward(const T* x, T* y, int64_t n, bool relu6, cudaStream_t stream) {
  launch<relu_forward_kernel<T>>(blocks_for(n), kThreads, 0, stream)(x, y, n, relu6);
}

template <class T>
void relu_backward(const T* dy, const T* v, T* dx, int64_t n, bool relu6, cudaStream_t stream) {
  launch<relu_backward_kernel<T>>(blocks_for(n), kThreads, 0, stream)(dy, v, dx, n, relu6);
}

template void relu_forward<float>(const float*, float*, int64_t, bool, cudaStream_t);
template void relu_forward<double>(const double*, double*, int64_t, bool, cudaStream_t);
template void relu_backward<float>(const float*, const float*, float*, int64_t, bool, cudaStream_t);
template void relu_backward<double>(const double*, const double*, double*, int64_t, bool, cudaStream_t);

}  // namespace rdd::layers::kernels
