// Filling tensors with Philox random numbers, on any device, identically.
//
//   fill_uniform(w, -bound, bound, seed, offset);   // Kaiming-uniform style init
//   fill_normal(x, 0.0, 1.0, seed, offset);
//
// Element i of the tensor gets element i of stream `offset` (see philox.h), whatever the device.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace rdd {

// Floating tensors (f32, f64, bf16, f16): lo + (hi − lo)·U[0,1).
void fill_uniform(Tensor& t, double lo, double hi, uint64_t seed, uint64_t offset);
// Floating tensors: mean + std·N(0,1).
void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset);
// i32/i64/u8 tensors: uniform integers in [lo, hi), hi − lo ≤ 2^32 (one 32-bit draw per element).
void fill_randint(Tensor& t, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset);

// A small sequential generator for host-side decisions (shuffles, augmentation parameters) that are
// reproducible from (seed, offset) and resumable by saving `position`.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t seed, uint64_t offset, uint64_t position = 0) : seed_(seed), offset_(offset), pos_(position) {}
  uint32_t next_u32();
  float next_uniform();                 // [0, 1)
  int64_t next_int(int64_t lo, int64_t hi);  // [lo, hi), unbiased
  uint64_t position() const { return pos_; }

 private:
  uint64_t seed_, offset_, pos_;
};

}  // namespace rdd
