// Philox4x32-10: a counter-based random number generator (Salmon et al., SC'11, "Parallel random
// numbers: as easy as 1, 2, 3"). A pure function of (counter, key): no state, so the same numbers
// come out on the CPU and on the GPU, in any order, from any thread — initialisation, dropout and
// augmentation are reproducible and resumable by (seed, offset) alone.
//
// rdd's convention for "element i of stream `offset` under `seed`":
//   key     = (seed low 32 bits, seed high 32 bits)
//   counter = (i/4 low, i/4 high, offset low, offset high)
//   value   = philox(counter, key)[i % 4]
// Each consumer of randomness takes its own offset (e.g. one per layer per iteration).
#pragma once

#include <cstdint>

#include "engine/host_device.h"

namespace rdd::philox {

struct U32x4 {
  uint32_t v[4];
};

RDD_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// The raw generator: 10 rounds of the Philox S-box, key bumped by the Weyl constants between rounds.
RDD_HD U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // multipliers
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // Weyl key increments
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(M0, ctr.v[0], hi0, lo0);
    mulhilo(M1, ctr.v[2], hi1, lo1);
    ctr = U32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// Element i of stream `offset` under `seed` (the convention above).
RDD_HD uint32_t u32(uint64_t seed, uint64_t offset, uint64_t i) {
  const uint64_t block = i >> 2;
  const U32x4 r = philox4x32_10(U32x4{{uint32_t(block), uint32_t(block >> 32), uint32_t(offset), uint32_t(offset >> 32)}},
                                uint32_t(seed), uint32_t(seed >> 32));
  return r.v[i & 3];
}

// Uniform in [0, 1) with 24 random bits: exact in f32, identical on CPU and GPU.
RDD_HD float uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return float(u32(seed, offset, i) >> 8) * (1.0f / 16777216.0f);
}

// Standard normal by Box–Muller from elements 2i and 2i+1 of the stream. Uses logf/sqrtf/cosf, whose
// last bit may differ between the host libm and CUDA: CPU and GPU agree to ~1e-6, not bit for bit.
RDD_HD float normal(uint64_t seed, uint64_t offset, uint64_t i);

}  // namespace rdd::philox

#if defined(__CUDACC__)
#include <math.h>
#else
#include <cmath>
#endif

RDD_HD float rdd::philox::normal(uint64_t seed, uint64_t offset, uint64_t i) {
  // u1 in (0, 1] so log(u1) is finite.
  const float u1 = float((u32(seed, offset, 2 * i) >> 8) + 1u) * (1.0f / 16777216.0f);
  const float u2 = uniform(seed, offset, 2 * i + 1);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}
