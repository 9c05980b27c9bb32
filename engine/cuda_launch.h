// Launch geometry shared by rdd's elementwise CUDA kernels, which are all grid-stride loops:
//
//   for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
//   my_kernel<<<grid_stride_blocks(n), kThreadsPerBlock, 0, stream>>>(...);
//
// The block count covers n once, capped at 65535·16 blocks (enough to fill any current GPU; the loop
// covers the rest), and is at least 1 so an empty launch is still a valid launch.
#pragma once

#include <cstdint>

namespace rdd {

constexpr int kThreadsPerBlock = 256;

inline unsigned grid_stride_blocks(int64_t n, int threads = kThreadsPerBlock) {
  const int64_t b = (n + threads - 1) / threads;
  const int64_t cap = int64_t(65535) * 16;
  return unsigned(b < 1 ? 1 : (b < cap ? b : cap));
}

}  // namespace rdd
