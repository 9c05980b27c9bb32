// The tensor operations that evaluation beyond whole-image single-scale needs — horizontal flip,
// sliding-window crop and accumulation, and a softmax over channels — for NCHW f32 tensors on the CPU
// or the GPU (f64 too on the CPU). None of them has a backward: evaluation does not train.
//
//   x (N, C, H, W)
//   flip_width(x)                       y[n,c,h,w] = x[n,c,h,W−1−w]
//   crop_window(x, top, left, h, w)     (N, C, h, w); rows/columns outside x read as 0 (padding)
//   add_window_(acc, win, top, left)    acc[.., top+i, left+j] += win[.., i, j] where inside acc
//   softmax_channels(x)                 softmax over C at every pixel
//   divide_by_map_(x, map)              x[n,c,h,w] /= map[h,w]   (map: (H, W), the window counts)
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace rdd::layers {

Tensor flip_width(const Tensor& x);
Tensor crop_window(const Tensor& x, int64_t top, int64_t left, int64_t h, int64_t w);
void add_window_(Tensor& acc, const Tensor& window, int64_t top, int64_t left);
Tensor softmax_channels(const Tensor& x);
void divide_by_map_(Tensor& x, const Tensor& map);

}  // namespace rdd::layers
