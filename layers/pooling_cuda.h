// MaxPool2d and AdaptiveAvgPool2d on the GPU (pooling.cu): planes = N·C, f32 or f64.
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

template <class T>
void maxpool2d_forward(const T* x, T* y, int32_t* indices, int64_t planes, int64_t h, int64_t w, int64_t oh,
                       int64_t ow, int kernel, int stride, int padding, cudaStream_t stream);
template <class T>
void maxpool2d_backward(const T* dy, const int32_t* indices, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                        int64_t ow, int kernel, int stride, int padding, cudaStream_t stream);
template <class T>
void adaptive_avgpool2d_forward(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                cudaStream_t stream);
template <class T>
void adaptive_avgpool2d_backward(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                 cudaStream_t stream);

}  // namespace rdd::layers::cuda
#endif
