// Elementwise add kernel (f32, f64), grid-stride loop. Concat/split need no kernel (cudaMemcpy2DAsync).
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "layers/tensor_ops_cuda.h"
#include "engine/cuda_check.h"

namespace rdd::layers::cuda {

namespace {

// a, b, out: n elements; out may be a or b (in-place add), so no __restrict__.
template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n) {
  RDD_GRID_LOOP(i, n)
    out[i] = a[i] + b[i];
}
}  // namespace

template <class T>
void add(const T* a, const T* b, T* out, int64_t n, cudaStream_t stream) {
  launch<add_kernel<T>>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(a, b, out, n);
}

template void add<float>(const float*, const float*, float*, int64_t, cudaStream_t);
template void add<double>(const double*, const double*, double*, int64_t, cudaStream_t);

}  // namespace rdd::layers::cuda
