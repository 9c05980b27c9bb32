// Dropout's mask rule, shared by the CPU reference (dropout.cpp) and the CUDA kernels (dropout.cu): both
// draw the same Philox numbers for the same (seed, offset), so masks are identical on every device.
//
//   element-wise (Dropout): quad q covers elements 4q..4q+3; one Philox call gives their four draws
//   channel-wise (Dropout2d): plane p (one (n, c) plane) draws philox::u32(seed, offset, p)
//   an element is kept when (draw >> 8) ≥ threshold, threshold = ceil(p·2^24) (keep_threshold): exactly
//   philox::uniform(seed, offset, i) ≥ p, without a float conversion.
// C++17, host and device.
#pragma once

#include <cstdint>

#include "engine/host_device.h"
#include "engine/philox.h"

namespace rdd::layers::dropout_math {

RDD_HD philox::U32x4 quad_draws(int64_t q, uint64_t seed, uint64_t offset) {
  return philox::philox4x32_10(
      philox::U32x4{{uint32_t(q), uint32_t(uint64_t(q) >> 32), uint32_t(offset), uint32_t(offset >> 32)}},
      uint32_t(seed), uint32_t(seed >> 32));
}

RDD_HD uint32_t plane_draw(int64_t p, uint64_t seed, uint64_t offset) { return philox::u32(seed, offset, uint64_t(p)); }

// The factor of an element: scale = 1 / (1 − p) when kept, 0 when dropped.
template <class T>
RDD_HD T mask_factor(uint32_t draw, uint32_t threshold, T scale) {
  return (draw >> 8) >= threshold ? scale : T(0);
}

}  // namespace rdd::layers::dropout_math
