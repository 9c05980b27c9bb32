// Dropout / Dropout2d CUDA kernel: the same Philox elements and threshold as the CPU loop in
// dropout.cpp, so CPU and GPU masks are identical. f32 and f64.
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda_launch.h"
#include "engine/cuda_check.h"
#include "engine/philox.h"

namespace rdd::layers::kernels {

namespace {
constexpr int kThreads = kThreadsPerBlock;
inline unsigned blocks_for(int64_t n) { return grid_stride_blocks(n); }  // engine/cuda_launch.h

// Dropout: x, y: n elements; one thread per quad q (elements 4q..4q+3) and one Philox call per quad.
// y may be x.
template <class T>
__global__ void dropout_elementwise_kernel(const T* x, T* y, int64_t n, uint32_t threshold, T scale, uint64_t seed,
                                           uint64_t offset) {
  const int64_t quads = (n + 3) / 4;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < quads; q += int64_t(gridDim.x) * blockDim.x) {
    const philox::U32x4 r = philox::philox4x32_10(
        philox::U32x4{{uint32_t(q), uint32_t(uint64_t(q) >> 32), uint32_t(offset), uint32_t(offset >> 32)}},
        uint32_t(seed), uint32_t(seed >> 32));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * q + k;
      if (i < n) y[i] = x[i] * ((r.v[k] >> 8) >= threshold ? scale : T(0));
    }
  }
}

// Dropout2d: x, y: (planes, plane) elements; one block per (n, c) plane (grid-stride over planes),
// the block's threads stride over the plane. y may be x.
template <class T>
__global__ void dropout_planes_kernel(const T* x, T* y, int64_t planes, int64_t plane, uint32_t threshold, T scale,
                                      uint64_t seed, uint64_t offset) {
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const T f = (philox::u32(seed, offset, uint64_t(p)) >> 8) >= threshold ? scale : T(0);
    for (int64_t i = p * plane + threadIdx.x; i < (p + 1) * plane; i += blockDim.x) y[i] = x[i] * f;
  }
}
}  // namespace

template <class T>
void dropout_apply(const T* x, T* y, int64_t n, int64_t plane, uint32_t threshold, T scale, uint64_t seed,
                   uint64_t offset, cudaStream_t stream) {
  if (plane == 1) {
    launch<dropout_elementwise_kernel<T>>(blocks_for((n + 3) / 4), kThreads, 0, stream)(x, y, n, threshold, scale, seed,
                                                                                    offset);
  } else {
    const int64_t planes = n / plane;
    const unsigned blocks = unsigned(planes < 65535 * 16 ? planes : 65535 * 16);
    launch<dropout_planes_kernel<T>>(blocks, kThreads, 0, stream)(x, y, planes, plane, threshold, scale, seed, offset);
  }
}

template void dropout_apply<float>(const float*, float*, int64_t, int64_t, uint32_t, float, uint64_t, uint64_t,
                                   cudaStream_t);
template void dropout_apply<double>(const double*, double*, int64_t, int64_t, uint32_t, double, uint64_t, uint64_t,
                                    cudaStream_t);

}  // namespace rdd::layers::kernels
