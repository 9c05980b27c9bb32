// The base of every layer object that models compose.
//
// A module owns its parameters (Param* views into a ParamStore, registered under the reference
// PyTorch state_dict names), and implements forward and backward by hand:
//
//   Tensor y  = conv.forward(x);     // train mode: caches what backward needs (x here)
//   Tensor dx = conv.backward(dy);   // adds dL/dW into conv's grad views, returns dL/dx
//
// In eval mode (the frozen teacher, evaluation) forward keeps nothing and backward is an error.
// Parameter gradients ACCUMULATE (+=) into Param::grad, so a parameter used twice gets both
// contributions; the trainer zeroes the flat gradient buffer once per step.
#pragma once

namespace rdd::layers {

enum class Mode { train, eval };

class Module {
 public:
  virtual ~Module() = default;
  void set_mode(Mode m) { mode_ = m; }
  Mode mode() const { return mode_; }
  bool training() const { return mode_ == Mode::train; }

 protected:
  Mode mode_ = Mode::train;
};

}  // namespace rdd::layers
