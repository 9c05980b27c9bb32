// ReLU and ReLU6, elementwise on a tensor of any shape and layout:
//
//   relu:  y = max(x, 0)          relu6:  y = min(max(x, 0), 6)
//
//   Tensor y  = relu_forward(x, /*relu6=*/false);
//   Tensor dx = relu_backward(dy, y, /*relu6=*/false);   // y or x: the same answer
//
// Backward is written in terms of the OUTPUT (the input works too). The gradient passes where
// 0 < v (and v < 6 for ReLU6); since y = clamp(x) is strictly inside (0, 6) exactly when x is, the
// condition reads the same on y as on x. The module caches y rather than x: the next layer (a conv,
// a pool) usually holds y anyway, so ReLU keeps nothing alive of its own, and a later in-place
// forward (x overwritten by y) stays possible. At the kinks (x == 0, x == 6) the gradient is 0, as in
// PyTorch (threshold_backward / hardtanh_backward). NaN passes through the forward unchanged.
//
// CPU: f32 and f64. GPU: f32 and f64.
#pragma once

#include "engine/tensor.h"
#include "layers/module.h"

namespace rdd::layers {

// x: any shape, f32/f64 → y: same shape, dtype, device and layout.
Tensor relu_forward(const Tensor& x, bool relu6);
// dy, y_or_x: same shape → dx: dy where 0 < y_or_x (< 6 for relu6), else 0.
Tensor relu_backward(const Tensor& dy, const Tensor& y_or_x, bool relu6);

class ReLU : public Module {
 public:
  explicit ReLU(bool relu6 = false) : relu6_(relu6) {}
  // Train mode caches y (a reference to the returned tensor, no copy): callers must not modify y in
  // place (e.g. add_(y, ...)) before this module's backward has run.
  Tensor forward(const Tensor& x);
  // One backward per forward: the cached y is released afterwards.
  Tensor backward(const Tensor& dy);
  bool relu6() const { return relu6_; }

 private:
  bool relu6_;
  Tensor y_;  // (same as x) cached output, train mode only
};

}  // namespace rdd::layers
