// GPU side of rng.h: the same Philox elements as the host loop in rng.cpp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda_launch.h"
#include "engine/device_dtype.h"
#include "engine/philox.h"

namespace rdd::kernels {

namespace {
template <class T>
__device__ void put(T* p, int64_t i, double v) { p[i] = T(v); }
template <>
__device__ void put<__nv_bfloat16>(__nv_bfloat16* p, int64_t i, double v) { p[i] = __float2bfloat16(float(v)); }
template <>
__device__ void put<__half>(__half* p, int64_t i, double v) { p[i] = __float2half(float(v)); }

template <class T>
__global__ void philox_fill_kernel(T* p, int64_t n, int kind, double a, double b, uint64_t seed, uint64_t offset) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v;
    if (kind == 0) {
      // Rounded multiply and add, never fused: the CPU (no FMA) rounds twice, and fills must match bit for bit.
      v = __dadd_rn(a, __dmul_rn(b - a, double(philox::uniform(seed, offset, uint64_t(i)))));
    } else if (kind == 1) {
      v = __dadd_rn(a, __dmul_rn(b, double(philox::normal(seed, offset, uint64_t(i)))));
    } else {
      const uint64_t range = uint64_t(b - a);
      v = double(int64_t(a) + int64_t(uint64_t(philox::u32(seed, offset, uint64_t(i))) % range));
    }
    put(p, i, v);
  }
}
}  // namespace

void philox_fill(void* dst, DType dtype, int64_t n, int kind, double a, double b, uint64_t seed, uint64_t offset,
                 cudaStream_t stream) {
  if (n == 0) return;
  with_device_type(dtype, [&](auto zero) {
    using T = decltype(zero);
    launch<philox_fill_kernel<T>>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(static_cast<T*>(dst), n, kind, a,
                                                                                     b, seed, offset);
  });
}

}  // namespace rdd::kernels
