// Elementwise add kernel (f32, f64), grid-stride loop. Concat/split need no kernel (cudaMemcpy2DAsync).
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"

namespace rdd::layers::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h

// a, b, out: n elements; out may be a or b (in-place add), so no __restrict__.
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}
}  // namespace

template <class T>
void add(const T* a, const T* b, T* out, int64_t n, cudaStream_t stream) {
  launch<add_kernel<T>>(blocks_for(n), kThreads, 0, stream)(a, b, out, n);
}

template void add<float>(const float*, const float*, float*, int64_t, cudaStream_t);
template void add<double>(const double*, const double*, double*, int64_t, cudaStream_t);

}  // namespace rdd::layers::kernels
