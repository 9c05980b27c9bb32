// Adam over a ParamStore's flat buffers (torch.optim.Adam, no weight decay, not AMSGrad): the
// discriminator of the adversarial distillation term trains with it (rdd/adversarial.h) — the project's
// second optimizer. One step is one fused pass over four flat f32 arrays (w, g, m, v), step t from 1:
//   m = β1·m + (1 − β1)·g          v = β2·v + (1 − β2)·g²
//   w = w − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)      (PyTorch's order of operations)
// The alignment padding has w = g = 0 and stays 0.
#pragma once

#include <cstdint>

#include "engine/params.h"

namespace rdd {

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class Adam {
 public:
  Adam(ParamStore& store, AdamOptions options);
  void step();                          // uses store.flat_grads(); does not zero them
  Tensor m() const { return m_; }       // f32 [padded_count]
  Tensor v() const { return v_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t n) { steps_ = n; }  // resume
  const AdamOptions& options() const { return options_; }

 private:
  ParamStore& store_;
  AdamOptions options_;
  Tensor m_, v_;
  int64_t steps_ = 0;
};

// One fused update over raw arrays (the kernel behind Adam::step, exposed for tests). t ≥ 1.
void adam_update(float* w, const float* g, float* m, float* v, int64_t n, Device device, const AdamOptions& o, int64_t t);

}  // namespace rdd
