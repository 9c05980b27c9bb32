// Bilinear resize of NCHW tensors with PyTorch's semantics (F.interpolate(mode='bilinear')).
//
//   Tensor y  = bilinear_resize_forward(x, out_h, out_w, /*align_corners=*/true);   // x: (N, C, H, W)
//   Tensor dx = bilinear_resize_backward(dy, H, W, /*align_corners=*/true);         // dy: (N, C, out_h, out_w)
//
// Source coordinate of output index d along an axis of input size `in` and output size `out`:
//   align_corners = true:  src = d·(in − 1)/(out − 1)   (scale 0 when out == 1: every output reads index 0)
//   align_corners = false: src = max(0, (d + 0.5)·in/out − 0.5)   (PyTorch clamps negative sources to 0)
// then i0 = min(floor(src), in − 1), λ = clamp(src − i0, 0, 1), i1 = i0 + (i0 < in − 1), and
// y = (1−λh)(1−λw)·x[h0,w0] + (1−λh)λw·x[h0,w1] + λh(1−λw)·x[h1,w0] + λhλw·x[h1,w1].
// As in PyTorch's CPU kernel, the scale is rounded to the element type, the source index is computed in
// double and λ is rounded back to the element type, so f32 results match PyTorch to the last bits.
//
// CPU: reference templated on f32/f64 (parallel over the N·C planes; the backward scatters each dy into
// its four taps). CUDA: f32; the forward is one thread per output element; the backward is a
// deterministic separable gather (layers/resize_taps.h: along W into a (N, C, out_h, in_w) scratch, then
// along H), one thread per element of each pass, with no atomics, so it is bitwise reproducible.
// Both accept NCHW layout only (an NHWC tensor is refused by name).
#pragma once

#include "engine/tensor.h"

namespace rdd::layers {

Tensor bilinear_resize_forward(const Tensor& x, int out_h, int out_w, bool align_corners);
Tensor bilinear_resize_backward(const Tensor& dy, int in_h, int in_w, bool align_corners);

namespace detail {
// The per-axis source-index rule above, shared by the CPU reference, the CUDA launcher and the tests.
template <class T>
T resize_scale(int in, int out, bool align_corners) {
  if (align_corners) return out > 1 ? T(in - 1) / T(out - 1) : T(0);
  return T(in) / T(out);
}
}  // namespace detail

}  // namespace rdd::layers
