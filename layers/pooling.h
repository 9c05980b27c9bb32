// MaxPool2d and AdaptiveAvgPool2d on NCHW tensors, with PyTorch's output sizes and bin boundaries.
//
// MaxPool2d (kernel k, stride s, padding p, ceil_mode), per spatial dim of size H:
//   out = floor((H + 2p − k + (ceil_mode ? s − 1 : 0)) / s) + 1,
//   and in ceil mode the last window must start inside the input or the left padding:
//   if (out − 1)·s ≥ H + p then out −= 1.
//   Refused like PyTorch: k, s ≥ 1, p ≤ k/2, and out ≥ 1 (kernel no larger than the padded input).
//   Padding is −∞ (never selected). Ties go to the first maximum in row-major window order, NaN wins
//   (propagates), as in PyTorch. Backward routes dy to the argmax: `indices` (i32, same shape as y)
//   hold the flat position h·W + w of each maximum inside its (n, c) plane, like PyTorch's
//   return_indices. No dilation (no model here needs it).
//
// AdaptiveAvgPool2d to (OH, OW): output bin i along a dim of size H averages rows
//   [floor(i·H/OH), ceil((i+1)·H/OH)), so bins overlap when OH does not divide H.
//
//   Tensor idx;
//   Tensor y  = maxpool2d_forward(x, {3, 2, 1, false}, &idx);
//   Tensor dx = maxpool2d_backward(dy, idx, x.size(2), x.size(3), {3, 2, 1, false});
//   Tensor p  = adaptive_avgpool2d_forward(x, 1, 1);
//   Tensor dp = adaptive_avgpool2d_backward(dp_out, x.size(2), x.size(3));
//
// CPU: f32 and f64, parallel over (n, c) planes. GPU: f32 and f64. Backward sums in a fixed order
// (no atomics): deterministic, and CPU and GPU agree bit for bit for max pooling.
#pragma once

#include <cstdint>

#include "engine/tensor.h"
#include "layers/module.h"

namespace rdd::layers {

struct MaxPool2dOptions {
  int kernel = 2;
  int stride = 2;
  int padding = 0;
  bool ceil_mode = false;
};

// PyTorch's output size along one dim (may be < 1 for bad arguments: the forward refuses those).
int64_t maxpool2d_output_size(int64_t in, const MaxPool2dOptions& o);

// x: (N, C, H, W) → y: (N, C, OH, OW). When `indices` is given it receives the argmax positions,
// i32 (N, C, OH, OW), each h·W + w within its plane.
Tensor maxpool2d_forward(const Tensor& x, const MaxPool2dOptions& o, Tensor* indices = nullptr);
// dy: (N, C, OH, OW), indices: i32 (N, C, OH, OW) from the forward → dx: (N, C, in_h, in_w).
Tensor maxpool2d_backward(const Tensor& dy, const Tensor& indices, int64_t in_h, int64_t in_w,
                          const MaxPool2dOptions& o);

// x: (N, C, H, W) → y: (N, C, out_h, out_w).
Tensor adaptive_avgpool2d_forward(const Tensor& x, int out_h, int out_w);
// dy: (N, C, OH, OW) → dx: (N, C, in_h, in_w).
Tensor adaptive_avgpool2d_backward(const Tensor& dy, int64_t in_h, int64_t in_w);

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding, bool ceil_mode = false);
  // Train mode keeps the argmax indices (i32, the size of y) and the input size; eval keeps nothing.
  Tensor forward(const Tensor& x);
  // One backward per forward: the indices are released afterwards.
  Tensor backward(const Tensor& dy);
  const MaxPool2dOptions& options() const { return opt_; }

 private:
  MaxPool2dOptions opt_;
  Tensor indices_;  // i32 (N, C, OH, OW), train mode only
  int64_t in_h_ = 0, in_w_ = 0;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int out_h, int out_w);
  Tensor forward(const Tensor& x);  // train mode remembers the input size only (no activations)
  Tensor backward(const Tensor& dy);
  int out_h() const { return out_h_; }
  int out_w() const { return out_w_; }

 private:
  int out_h_, out_w_;
  int64_t in_h_ = -1, in_w_ = -1;  // -1: no forward to go back through
};

}  // namespace rdd::layers
