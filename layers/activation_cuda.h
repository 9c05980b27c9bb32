// ReLU / ReLU6 on the GPU (activation.cu): flat arrays of n elements, f32 or f64.
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

template <class T>
void relu_forward(const T* x, T* y, int64_t n, bool relu6, cudaStream_t stream);
template <class T>
void relu_backward(const T* dy, const T* v, T* dx, int64_t n, bool relu6, cudaStream_t stream);

}  // namespace rdd::layers::cuda
#endif
