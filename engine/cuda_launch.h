// How rdd launches a CUDA kernel — the one launch point, the same for nvcc and for the emulated device:
//
//   launch<fill_kernel<T>>(grid_stride_blocks(n), kThreadsPerBlock, 0, stream)(dst, n, value);
//
// reads as `fill_kernel<T><<<grid, block, shared_bytes, stream>>>(dst, n, value)` and is that under nvcc,
// followed by the launch check (RDD_CUDA_CHECK_LAUNCH). In the emulated build (RDD_CUDA=EMULATE) it
// hands the kernel, its name and its arguments to the emulated device (engine/emu_device.h), which
// checks the configuration and every pointer argument before it queues the grid.
//
// Elementwise kernels are grid-stride loops, RDD_GRID_LOOP(i, n) { ... }:
//
//   for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
//
// and get grid_stride_blocks(n) blocks: enough to cover n once, capped at 65535·16 (enough to fill any
// current GPU; the loop covers the rest), at least 1 so an empty launch is still a valid launch.
//
// Shared memory, the one idiom for both kinds (C++ cannot express CUDA's declarations for the emulated
// device, which gives every block its own heap copy, 0xff-filled, with AddressSanitizer's redzones):
//   RDD_SHARED(double, partial, kThreadsPerBlock);   stands for  __shared__ double partial[kThreadsPerBlock];
//   RDD_EXTERN_SHARED(unsigned long long, bins);     stands for  extern __shared__ unsigned long long bins[];
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace rdd {

constexpr int kThreadsPerBlock = 256;

inline unsigned grid_stride_blocks(int64_t n, int threads = kThreadsPerBlock) {
  const int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(65535) * 16;
  return unsigned(b < 1 ? 1 : (b < cap ? b : cap));
}

}  // namespace rdd

// The launcher is for .cu files (nvcc, or the emulated build's C++ compile of them).
#if RDD_WITH_CUDA && (defined(__CUDACC__) || RDD_CUDA_EMULATED)
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#if RDD_CUDA_EMULATED
#include "engine/emu_device.h"
#endif

namespace rdd {

template <auto Kernel>
class KernelLaunch {
 public:
  KernelLaunch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream)
      : grid_(grid), block_(block), shared_bytes_(shared_bytes), stream_(stream) {}

  template <class... Args>
  void operator()(Args&&... args) const {
#if RDD_CUDA_EMULATED
    emu::launch_kernel<Kernel>(Kernel, grid_, block_, shared_bytes_, stream_, std::forward<Args>(args)...);
#else
    Kernel<<<grid_, block_, shared_bytes_, stream_>>>(std::forward<Args>(args)...);
#endif
    RDD_CUDA_CHECK_LAUNCH();
  }

 private:
  dim3 grid_, block_;
  size_t shared_bytes_;
  cudaStream_t stream_;
};

template <auto Kernel>
KernelLaunch<Kernel> launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream) {
  return KernelLaunch<Kernel>(grid, block, shared_bytes, stream);
}

}  // namespace rdd

// The grid-stride loop of the elementwise kernels: i over [0, n), every thread of the grid taking its
// turn (launch with grid_stride_blocks(n) blocks). i is an int64_t.
#define RDD_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

#if RDD_CUDA_EMULATED
#define RDD_EXTERN_SHARED(type, name) type* const name = static_cast<type*>(::rdd::emu::dynamic_shared_memory())
// The address of a static local names the declaration (one per template instantiation, as in CUDA).
#define RDD_SHARED(type, name, count)          \
  static const char rdd_shared_key_##name = 0; \
  type* const name = static_cast<type*>(::rdd::emu::static_shared_memory(&rdd_shared_key_##name, sizeof(type) * size_t(count)))
#else
#define RDD_EXTERN_SHARED(type, name) extern __shared__ type name[]
#define RDD_SHARED(type, name, count) __shared__ type name[count]
#endif

#endif  // a .cu file of a CUDA build
