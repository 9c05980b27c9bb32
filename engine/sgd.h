// SGD with momentum and weight decay, fused over the ParamStore's flat buffers, and the poly LR
// schedule of the reference recipe.
//
// One step is one pass over three flat f32 arrays (values w, gradients g, momentum m), exactly
// torch.optim.SGD (dampening 0, not Nesterov unless asked, weight decay on every parameter):
//   g' = g + weight_decay · w
//   m  = momentum · m + g'          (m starts at 0, so the first step gives m = g', as in PyTorch)
//   w  = w − lr · m                 (Nesterov: w = w − lr · (g' + momentum · m))
// The alignment padding between parameters has w = g = 0 and stays 0.
#pragma once

#include <cstdint>

#include "engine/params.h"

namespace rdd {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
};

class Sgd {
 public:
  Sgd(ParamStore& store, SgdOptions options);
  void step(double lr);                 // uses store.flat_grads(); does not zero them
  Tensor momentum_buffer() const { return momentum_; }  // f32 [padded_count], on the store's device
  int64_t steps() const { return steps_; }
  void set_steps(int64_t n) { steps_ = n; }  // resume
  const SgdOptions& options() const { return options_; }

 private:
  ParamStore& store_;
  SgdOptions options_;
  Tensor momentum_;
  int64_t steps_ = 0;
};

// lr at 1-based iteration `iter`: base · (1 − (iter − 1)/max_iter)^power — the reference's schedule,
// so iteration 1 uses exactly `base` and there is no warm-up.
double poly_lr(double base, int64_t iter, int64_t max_iter, double power = 0.9);

// One fused update over raw arrays (w, g, m of length n): the kernel behind Sgd::step, exposed for tests.
void sgd_update(float* w, const float* g, float* m, int64_t n, Device device, double lr, const SgdOptions& o);

}  // namespace rdd
