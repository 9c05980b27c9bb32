// Index arithmetic shared by the pooling CPU reference (pooling.cpp) and CUDA kernels (pooling.cu),
// host and device, so the gather ranges the GPU backward uses are unit-tested on the CPU
// (tests/layers/test_pooling.cpp checks them against brute force). C++17.
#pragma once

#include <cstdint>

#include "engine/host_device.h"

namespace rdd::layers::pool_index {

// Adaptive pooling bin i of `out` bins over a dim of size `in`: rows [bin_start, bin_end).
RDD_HD int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
RDD_HD int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// The bins that contain row r: [first, last] (inclusive), clamped to [0, out − 1].
//   start(i) ≤ r  ⇔  i ≤ floor(((r + 1)·out − 1) / in);   end(i) > r  ⇔  i ≥ floor(r·out / in).
RDD_HD int64_t first_bin_containing(int64_t r, int64_t in, int64_t out) { return (r * out) / in; }
RDD_HD int64_t last_bin_containing(int64_t r, int64_t in, int64_t out) {
  const int64_t i = ((r + 1) * out - 1) / in;
  return i < out - 1 ? i : out - 1;
}

// Max-pool window i covers input rows [i·stride − padding, i·stride − padding + kernel).
// The windows that contain row r: [first, last] (inclusive; empty when first > last).
RDD_HD int64_t first_window_containing(int64_t r, int kernel, int stride, int padding) {
  const int64_t lo = r + padding - kernel + 1;  // i·stride ≥ lo
  return lo > 0 ? (lo + stride - 1) / stride : 0;
}
RDD_HD int64_t last_window_containing(int64_t r, int stride, int padding, int64_t out) {
  const int64_t i = (r + padding) / stride;  // i·stride ≤ r + padding
  return i < out - 1 ? i : out - 1;
}

}  // namespace rdd::layers::pool_index
