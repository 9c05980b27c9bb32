// The per-row and per-pixel math of rdd/kd_ops.h, shared by the CPU reference (kd_ops.cpp, f32/f64) and
// the CUDA kernels (kd_ops.cu, f32), like pixel_math.h for the task losses. C++17, host and device
// (internal to rdd/).
//
// A "row" of a tensor viewed as (outer, len, inner) is the `len` elements o·len·inner + j·inner + i
// (j = 0 .. len−1) for row r = o·inner + i: rows over channels of an NCHW map are (N, C, H·W), rows over
// positions are (N·C, H·W, 1).
#pragma once

#include <cstdint>

#include "engine/host_device.h"
#include "rdd/pixel_math.h"

namespace rdd::method::kd_math {

// First element of row r of an (outer, len, inner) view.
RDD_HD int64_t row_base(int64_t r, int64_t len, int64_t inner) { return (r / inner) * len * inner + (r % inner); }

// F.normalize(p=2): y = x / max(‖x‖, eps) along the row. Returns ‖x‖ (unclamped).
template <class T>
RDD_HD T l2norm_row_forward(const T* x, T* y, int64_t base, int64_t len, int64_t inner, T eps) {
  T ss = 0;
  for (int64_t j = 0; j < len; ++j) ss += x[base + j * inner] * x[base + j * inner];
  const T norm = hd::sqrt(ss);
  const T inv = T(1) / hd::max(norm, eps);
  for (int64_t j = 0; j < len; ++j) y[base + j * inner] = x[base + j * inner] * inv;
  return norm;
}

// dx = (dy − y·⟨y, dy⟩) / ‖x‖ when ‖x‖ > eps (the clamp inactive), dy / eps otherwise (dx may alias dy).
template <class T>
RDD_HD void l2norm_row_backward(const T* dy, const T* y, T* dx, int64_t base, int64_t len, int64_t inner, T norm,
                                      T eps) {
  if (!(norm > eps)) {
    for (int64_t j = 0; j < len; ++j) dx[base + j * inner] = dy[base + j * inner] / eps;
    return;
  }
  T dot = 0;
  for (int64_t j = 0; j < len; ++j) dot += y[base + j * inner] * dy[base + j * inner];
  const T inv = T(1) / norm;
  for (int64_t j = 0; j < len; ++j) {
    const int64_t e = base + j * inner;
    dx[e] = (dy[e] - y[e] * dot) * inv;
  }
}

// p = softmax(x · inv_t) along the row.
template <class T>
RDD_HD void softmax_row_forward(const T* x, T* p, int64_t base, int64_t len, int64_t inner, T inv_t) {
  T m = x[base] * inv_t;
  for (int64_t j = 1; j < len; ++j) m = hd::max(m, x[base + j * inner] * inv_t);
  T s = 0;
  for (int64_t j = 0; j < len; ++j) {
    const T e = hd::exp(x[base + j * inner] * inv_t - m);
    p[base + j * inner] = e;
    s += e;
  }
  const T inv = T(1) / s;
  for (int64_t j = 0; j < len; ++j) p[base + j * inner] *= inv;
}

// dx = inv_t · p ⊙ (dp − ⟨p, dp⟩) (dx may alias dp).
template <class T>
RDD_HD void softmax_row_backward(const T* dp, const T* p, T* dx, int64_t base, int64_t len, int64_t inner,
                                       T inv_t) {
  T dot = 0;
  for (int64_t j = 0; j < len; ++j) dot += p[base + j * inner] * dp[base + j * inner];
  for (int64_t j = 0; j < len; ++j) {
    const int64_t e = base + j * inner;
    dx[e] = inv_t * p[e] * (dp[e] - dot);
  }
}

// DIST's Pearson correlation of two rows: u = a − mean(a), v = b − mean(b),
// r = ⟨u, v⟩ / (‖u‖·‖v‖ + eps). With ga: ga = grad_scale · dr/da (through the centering). Returns r.
template <class T>
RDD_HD T pearson_row(const T* a, const T* b, T* ga, int64_t base, int64_t len, int64_t inner, T eps,
                           T grad_scale) {
  T ma = 0, mb = 0;
  for (int64_t j = 0; j < len; ++j) {
    ma += a[base + j * inner];
    mb += b[base + j * inner];
  }
  ma /= T(len);
  mb /= T(len);
  T uv = 0, uu = 0, vv = 0;
  for (int64_t j = 0; j < len; ++j) {
    const T u = a[base + j * inner] - ma, v = b[base + j * inner] - mb;
    uv += u * v;
    uu += u * u;
    vv += v * v;
  }
  const T nu = hd::sqrt(uu), nv = hd::sqrt(vv);
  const T den = nu * nv + eps;
  const T r = uv / den;
  if (ga) {
    // dr/du = v/den − uv·nv·u/(nu·den²) (the second term is 0 when u = 0, as torch's norm backward gives).
    const T cv = grad_scale / den;
    const T cu = nu > T(0) ? -grad_scale * uv * nv / (nu * den * den) : T(0);
    T mg = 0;
    for (int64_t j = 0; j < len; ++j) {
      const int64_t e = base + j * inner;
      const T g = cv * (b[e] - mb) + cu * (a[e] - ma);
      ga[e] = g;
      mg += g;
    }
    mg /= T(len);
    for (int64_t j = 0; j < len; ++j) ga[base + j * inner] -= mg;
  }
  return r;
}

// PyTorch's 'nearest' source index (upsample_nearest without a scale factor): floor(dst·(in/out)) in
// float arithmetic, clamped to in − 1.
RDD_HD int64_t nearest_source(int64_t dst, int64_t in, int64_t out) {
  if (in == out) return dst;
  const float scale = float(in) / float(out);
  const int64_t s = int64_t(float(dst) * scale);  // dst·scale ≥ 0: truncation is floor
  return s < in - 1 ? s : in - 1;
}

// IFVD's cosine of a pixel's feature x (C values, stride `stride`) with its class centre c (same layout):
// ⟨x, c⟩ / (max(‖x‖, eps)·max(‖c‖, eps)) (torch.nn.CosineSimilarity). With gx/gc: the gradients of
// scale·cos w.r.t. x and c, written (not accumulated).
template <class T>
RDD_HD T cosine_pixel(const T* x, const T* c, T* gx, T* gc, int64_t base, int64_t len, int64_t stride, T eps,
                            T scale) {
  T xc = 0, xx = 0, cc = 0;
  for (int64_t j = 0; j < len; ++j) {
    const T a = x[base + j * stride], b = c[base + j * stride];
    xc += a * b;
    xx += a * a;
    cc += b * b;
  }
  const T nx = hd::max(hd::sqrt(xx), eps), nc = hd::max(hd::sqrt(cc), eps);
  const T cosv = xc / (nx * nc);
  if (gx) {
    // d cos/dx = c/(nx·nc) − cos·x/nx² (the norm term only where the clamp is inactive); likewise for c.
    const T kx = hd::sqrt(xx) > eps ? cosv / (nx * nx) : T(0);
    const T kc = hd::sqrt(cc) > eps ? cosv / (nc * nc) : T(0);
    const T inv = T(1) / (nx * nc);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t e = base + j * stride;
      const T a = x[e], b = c[e];
      gx[e] = scale * (b * inv - kx * a);
      gc[e] = scale * (a * inv - kc * b);
    }
  }
  return cosv;
}

}  // namespace rdd::method::kd_math
