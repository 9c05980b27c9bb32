// The fused SGD update on the GPU (sgd.cu): w, g, m flat f32 arrays of length n.
// Private to engine/: included by the .cpp (which dispatches on the device) and by the .cu (which
// defines these). C++17.
#pragma once

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include <cstdint>

namespace rdd::cuda {

void sgd_update(float* w, const float* g, float* m, int64_t n, float lr, float momentum, float weight_decay,
                bool nesterov, cudaStream_t stream);

}  // namespace rdd::cuda
#endif
