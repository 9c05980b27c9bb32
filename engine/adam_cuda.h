// The fused Adam update on the GPU (adam.cu): w, g, m, v flat f32 arrays of length n.
// Private to engine/: included by the .cpp (which dispatches on the device) and by the .cu (which
// defines it). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::cuda {

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float step_size,
                 float sqrt_bc2, float eps, cudaStream_t stream);

}  // namespace rdd::cuda
#endif
