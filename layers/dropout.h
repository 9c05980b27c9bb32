// Dropout and Dropout2d, driven by Philox (engine/philox.h): the mask is a pure function of
// (seed, offset), identical on CPU and GPU, and never stored.
//
//   Dropout:    keep element i      iff philox::uniform(seed, offset, i)         ≥ p
//   Dropout2d:  keep channel (n, c) iff philox::uniform(seed, offset, n·C + c)   ≥ p  (whole H×W plane)
//   y = x · keep / (1 − p)   (the scale is 1/(1 − p) rounded once to the element type)
//
// i is the flat element index in logical (row-major / NCHW) order. Backward is the same mask and scale
// applied to dy: it is regenerated from (seed, offset), so nothing but those two numbers is kept.
// Eval mode and p == 0 are the identity (the input tensor itself is returned, no copy).
//
//   Dropout drop(0.1, /*channelwise=*/false);
//   Tensor y  = drop.forward(x, seed, offset);   // the caller gives each use its own offset
//   Tensor dx = drop.backward(dy);
//
// CPU: f32 and f64; GPU: f32 and f64. p must lie in [0, 1).
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace rdd::layers {

// x: any shape (channelwise: (N, C, H, W) NCHW) → y = x · mask / (1 − p). p == 0 returns x itself.
Tensor dropout_forward(const Tensor& x, double p, bool channelwise, uint64_t seed, uint64_t offset);
// dy: the forward output's shape → dx = dy · mask / (1 − p), the forward's mask regenerated.
Tensor dropout_backward(const Tensor& dy, double p, bool channelwise, uint64_t seed, uint64_t offset);
// The keep-mask as 0/1 u8 of `shape` (one entry per element, also for channelwise), for tests and tools.
Tensor dropout_keep_mask(const Shape& shape, double p, bool channelwise, uint64_t seed, uint64_t offset);

class Dropout : public Module {
 public:
  Dropout(double p, bool channelwise /* true = Dropout2d */);
  // Train mode with p > 0 remembers (seed, offset) and x's shape; otherwise returns x.
  Tensor forward(const Tensor& x, uint64_t seed, uint64_t offset);
  // One backward per forward.
  Tensor backward(const Tensor& dy);
  double p() const { return p_; }
  bool channelwise() const { return channelwise_; }

 private:
  double p_;
  bool channelwise_;
  bool pending_ = false;  // a train-mode forward waits for its backward
  bool identity_ = false;  // ... and that forward was the identity (p == 0)
  uint64_t seed_ = 0, offset_ = 0;
  Shape shape_;
};

}  // namespace rdd::layers
