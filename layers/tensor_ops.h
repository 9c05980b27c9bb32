// Small tensor operations models compose: channel concat / split and elementwise add.
//
//   Tensor y = concat_channels({a, b, c});                  // (N, Ca+Cb+Cc, H, W)
//   std::vector<Tensor> d = split_channels(dy, {Ca, Cb, Cc}); // the backward of the concat
//   Tensor s = add(x, shortcut);                             // residual: same shape, dtype, device
//   add_(x, shortcut);                                       // in place: x += shortcut
//
// concat/split: 4-D NCHW tensors of any dtype, N, H and W equal; each input is a block of C_i·H·W
// contiguous elements per image, so the copy is one strided 2-D memcpy per input (cudaMemcpy2DAsync
// on the GPU). add/add_: f32 and f64 tensors of any shape and layout (both the same), CPU and GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace rdd::layers {

// xs: (N, C_i, H, W), at least one, same dtype/device/N/H/W → (N, ΣC_i, H, W).
Tensor concat_channels(const std::vector<Tensor>& xs);
// dy: (N, C, H, W), Σchannels == C → tensors (N, channels[i], H, W) (copies, not views).
std::vector<Tensor> split_channels(const Tensor& dy, const std::vector<int64_t>& channels);

// a, b: same shape, dtype, device and layout → a + b.
Tensor add(const Tensor& a, const Tensor& b);
// a += b (a must not be a view that overlaps b other than exactly).
void add_(Tensor& a, const Tensor& b);

}  // namespace rdd::layers
