// The per-pixel and per-row math of rdd/pixel_ops.h, shared by the CPU reference (pixel_ops.cpp,
// templated on f32/f64) and the CUDA kernels (pixel_ops.cu, f32): both call these same functions, so the
// CPU tests exercise the GPU's arithmetic and indexing. C++17, host and device (internal to rdd/).
#pragma once

#include <cmath>
#include <cstdint>

#include "engine/host_device.h"

namespace rdd::method::pixel_math {

// Pixel i = n·HW + p of a (N, HW) map sits at offset n·C·HW + p of the (N, C, HW) logits (class stride HW).
RDD_HD int64_t pixel_base(int64_t i, int64_t c, int64_t hw) { return (i / hw) * c * hw + (i % hw); }

// max and Σ exp(z − max) over the c values zp[0], zp[stride], ...
template <class T>
RDD_HD void softmax_stats(const T* zp, int64_t c, int64_t stride, T& max, T& sum) {
  T m = zp[0];
  for (int64_t k = 1; k < c; ++k) m = hd::max(m, zp[k * stride]);
  T s = 0;
  for (int64_t k = 0; k < c; ++k) s += hd::exp(zp[k * stride] - m);
  max = m;
  sum = s;
}

// CE and GT-probability of pixel i with a valid label (0 ≤ label < c).
template <class T>
RDD_HD void ce_pixel(const T* z, int label, int64_t i, int64_t c, int64_t hw, T& ce, T& gt_prob) {
  const T* zp = z + pixel_base(i, c, hw);
  T m, s;
  softmax_stats(zp, c, hw, m, s);
  ce = m + hd::log(s) - zp[int64_t(label) * hw];
  gt_prob = hd::exp(-ce);
}

// dz of pixel i: g·(softmax − onehot(label)); g = 0 (or an ignored label) writes zeros.
template <class T>
RDD_HD void ce_grad_pixel(const T* z, T* dz, int label, bool ignored, T g, int64_t i, int64_t c, int64_t hw) {
  const int64_t base = pixel_base(i, c, hw);
  const T* zp = z + base;
  T* dp = dz + base;
  if (ignored || g == T(0)) {
    for (int64_t k = 0; k < c; ++k) dp[k * hw] = T(0);
    return;
  }
  T m, s;
  softmax_stats(zp, c, hw, m, s);
  const T inv = T(1) / s;
  for (int64_t k = 0; k < c; ++k) dp[k * hw] = g * (hd::exp(zp[k * hw] - m) * inv - (k == label ? T(1) : T(0)));
}

// KL(softmax(t/T) ‖ softmax(s/T)) of row `row` of tensors viewed as (outer, len, inner); writes
// grad_scale·(p_s − p_t) into grad (when not null) and returns the KL.
template <class T>
RDD_HD T kl_row(const T* t, const T* s, T inv_t, int64_t row, int64_t len, int64_t inner, T grad_scale, T* grad) {
  const int64_t base = (row / inner) * len * inner + (row % inner);
  const T* tr = t + base;
  const T* sr = s + base;
  T mt = tr[0] * inv_t, ms = sr[0] * inv_t;
  for (int64_t j = 1; j < len; ++j) {
    mt = hd::max(mt, tr[j * inner] * inv_t);
    ms = hd::max(ms, sr[j * inner] * inv_t);
  }
  T st = 0, ss = 0;
  for (int64_t j = 0; j < len; ++j) {
    st += hd::exp(tr[j * inner] * inv_t - mt);
    ss += hd::exp(sr[j * inner] * inv_t - ms);
  }
  const T lt = mt + hd::log(st), ls = ms + hd::log(ss);  // log-sum-exps
  T acc = 0;
  for (int64_t j = 0; j < len; ++j) {
    const T log_pt = tr[j * inner] * inv_t - lt, log_ps = sr[j * inner] * inv_t - ls;
    const T pt = hd::exp(log_pt);
    acc += pt * (log_pt - log_ps);
    if (grad) grad[base + j * inner] = grad_scale * (hd::exp(log_ps) - pt);
  }
  return acc;
}

// TSE selection of one pixel. mode: 0 xor, 1 or, 2 and, 3 ohem (student only; gt_t may be null).
template <class T>
RDD_HD bool tse_select(T gt_s, T thr_s, const T* gt_t, T thr_t, bool valid, int mode, int64_t i) {
  const bool hs = valid && gt_s <= thr_s;
  const bool ht = valid && gt_t && gt_t[i] <= thr_t;
  switch (mode) {
    case 0: return hs != ht;
    case 1: return hs || ht;
    case 2: return hs && ht;
    default: return hs;
  }
}

}  // namespace rdd::method::pixel_math
