// Philox fills on the GPU (rng.cu): the same elements as the host loop in rng.cpp. kind: 0 uniform [a, b),
// 1 normal (mean a, std b), 2 integers in [a, b).
// Private to engine/: included by the .cpp (which dispatches on the device) and by the .cu (which
// defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/dtype.h"

namespace rdd::cuda {

void philox_fill(void* dst, DType dtype, int64_t n, int kind, double a, double b, uint64_t seed, uint64_t offset,
                 cudaStream_t stream);

}  // namespace rdd::cuda
#endif
