// Element-wise tensor ops on the GPU (tensor_ops.cu).
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

template <class T>
void add(const T* a, const T* b, T* out, int64_t n, cudaStream_t stream);

}  // namespace rdd::layers::cuda
#endif
