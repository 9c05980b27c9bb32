// The per-axis rule of the bilinear resize (resize.h), shared by the CUDA kernels and host code, and the
// 1-D gather that the CUDA backward is built from. C++17, host and device (internal to layers/).
#pragma once

#include <cmath>
#include <cstdint>

#include "engine/host_device.h"

namespace rdd::layers::resize_detail {

struct Tap {  // output index d along one axis reads x[i0]·l0 + x[i1]·l1
  int i0, i1;
  float l0, l1;
};

// Float scale, source index in double, λ rounded to float: PyTorch's CPU kernel (see resize.h).
RDD_HD Tap tap(int d, int in, float scale, bool align_corners) {
  const double s = double(scale);
  double src = align_corners ? s * d : s * (d + 0.5) - 0.5;
  if (src < 0) src = 0;
  int i0 = int(floor(src));
  if (i0 > in - 1) i0 = in - 1;
  double l = src - i0;
  l = l < 0 ? 0 : (l > 1 ? 1 : l);
  const float l1 = float(l);
  return {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.f - l1, l1};
}

// The weight output d gives input i (both taps may land on i at the last index).
RDD_HD float tap_weight(const Tap& t, int i) { return (t.i0 == i ? t.l0 : 0.f) + (t.i1 == i ? t.l1 : 0.f); }

// A range [begin, end) of output indices that contains every output reading input i (a superset: the
// weight decides). Outputs reading i have i0 ∈ {i − 1, i}, i.e. a source index in [i − 1, i + 1), or are
// clamped onto the last input.
RDD_HD void output_range(int i, int in, int out, float scale, bool align_corners, int& begin, int& end) {
  if (scale <= 0.f) {  // align_corners with out == 1: the single output reads index 0
    begin = 0;
    end = out;
    return;
  }
  const double s = double(scale);
  const double lo = align_corners ? (i - 1) / s : (i - 0.5) / s - 0.5;
  const double hi = align_corners ? (i + 1) / s : (i + 1.5) / s - 0.5;
  begin = i == 0 ? 0 : int(floor(lo)) - 1;
  end = i == in - 1 ? out : int(ceil(hi)) + 2;
  if (begin < 0) begin = 0;
  if (end > out) end = out;
  if (end < begin) end = begin;
}

// One element of the backward along one axis, as a gather: for src viewed as (outer, out, inner) and the
// result as (outer, in, inner), result[o, i, k] = Σ_d weight(d → i)·src[o, d, k]. Summation order is
// fixed (d ascending), so the result is deterministic.
RDD_HD float gather_axis(const float* src, int64_t o, int i, int64_t k, int in, int out, int64_t inner,
                                float scale, bool align_corners) {
  int begin, end;
  output_range(i, in, out, scale, align_corners, begin, end);
  const float* base = src + o * int64_t(out) * inner + k;
  float acc = 0.f;
  for (int d = begin; d < end; ++d) {
    const float w = tap_weight(tap(d, in, scale, align_corners), i);
    if (w != 0.f) acc += w * base[int64_t(d) * inner];
  }
  return acc;
}

}  // namespace rdd::layers::resize_detail
