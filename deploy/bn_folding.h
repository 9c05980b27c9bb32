// Folding an eval-mode BatchNorm into the convolution that feeds it — what a deployed model runs:
//
//   BN(conv(x)) = a ⊙ (W∗x + b − mean) + β,   a = γ / sqrt(running_var + eps)      (per output channel k)
//              = W'∗x + b',                   W'_k = a_k · W_k,   b'_k = a_k · (b_k − mean_k) + β_k
//
// (b = 0 for a conv without bias.) Computed in double from the f32 parameters and rounded once to f32, so
// the folded conv differs from conv-then-BN by f32 rounding only.
#pragma once

#include "engine/tensor.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"

namespace rdd::deploy {

struct FoldedConv {
  Tensor weight;  // (K, C/groups, R, S) f32, CPU
  Tensor bias;    // (K) f32, CPU
};

// The conv's and the BN's parameters may live on any device; the result is on the CPU. Refuses a BN whose
// channel count is not the conv's output channel count, naming both.
FoldedConv fold_batchnorm(const layers::Conv2d& conv, const layers::BatchNorm2d& bn);

}  // namespace rdd::deploy
