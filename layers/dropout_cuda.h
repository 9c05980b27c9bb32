// Dropout / Dropout2d on the GPU (dropout.cu): the Philox mask rule of dropout.cpp.
// Private to layers/: included by the .cpp (which dispatches on the tensors' device) and
// by the .cu (which defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::layers::cuda {

template <class T>
void dropout_apply(const T* x, T* y, int64_t n, int64_t plane, uint32_t threshold, T scale, uint64_t seed,
                   uint64_t offset, cudaStream_t stream);

}  // namespace rdd::layers::cuda
#endif
