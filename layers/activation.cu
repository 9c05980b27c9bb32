// ReLU / ReLU6 CUDA kernels: elementwise, grid-stride loops, f32 and f64.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "layers/activation_cuda.h"
#include "layers/activation_math.h"
#include "engine/cuda_check.h"

namespace rdd::layers::cuda {

namespace {

// x, y: n elements (any shape).
template <class T>
__global__ void relu_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, bool relu6) {
  RDD_GRID_LOOP(i, n) y[i] = activation_math::relu(x[i], relu6);
}

// dy, v, dx: n elements; v is the forward's output (or input).
template <class T>
__global__ void relu_backward_kernel(const T* __restrict__ dy, const T* __restrict__ v, T* __restrict__ dx,
                                     int64_t n, bool relu6) {
  RDD_GRID_LOOP(i, n) dx[i] = activation_math::relu_grad(dy[i], v[i], relu6);
}
}  // namespace

template <class T>
void relu_forward(const T* x, T* y, int64_t n, bool relu6, cudaStream_t stream) {
  launch<relu_forward_kernel<T>>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(x, y, n, relu6);
}

template <class T>
void relu_backward(const T* dy, const T* v, T* dx, int64_t n, bool relu6, cudaStream_t stream) {
  launch<relu_backward_kernel<T>>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(dy, v, dx, n, relu6);
}

template void relu_forward<float>(const float*, float*, int64_t, bool, cudaStream_t);
template void relu_forward<double>(const double*, double*, int64_t, bool, cudaStream_t);
template void relu_backward<float>(const float*, const float*, float*, int64_t, bool, cudaStream_t);
template void relu_backward<double>(const double*, const double*, double*, int64_t, bool, cudaStream_t);

}  // namespace rdd::layers::cuda
