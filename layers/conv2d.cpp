// Conv2d: argument checks, dispatch on device, the CPU reference (f32/f64), and the module.
#include "layers/conv2d.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "engine/error.h"
#include "engine/op_profile.h"
#include "engine/rng.h"
#include "engine/thread_pool.h"
#if RDD_CUDA_EMULATED
#include "engine/cuda_context.h"
#include "engine/emu_device.h"
#endif

// OpenBLAS's thread control, weak so that another CBLAS (which has no such call) still links.
extern "C" void openblas_set_num_threads(int);
#pragma weak openblas_set_num_threads

namespace rdd::layers {

void cpu_blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (&::openblas_set_num_threads != nullptr) ::openblas_set_num_threads(1);
  });
}

int conv2d_output_size(int in, int kernel, int padding, int stride, int dilation, const char* who) {
  const int64_t span = int64_t(dilation) * (kernel - 1) + 1;  // the dilated kernel's extent
  RDD_CHECK(int64_t(in) + 2 * int64_t(padding) >= span, who, ": kernel ", kernel, " with dilation ", dilation,
            " spans ", span, " pixels, larger than the padded input (", in, " + 2·", padding, " = ",
            in + 2 * padding, ")");
  return int((int64_t(in) + 2 * padding - span) / stride + 1);
}

namespace {

// ------------------------------------------------------------------------------------------------
// Geometry and argument checks
// ------------------------------------------------------------------------------------------------

struct ConvGeom {
  int64_t N, C, H, W;  // input
  int64_t K, R, S;     // weight (K, C/groups, R, S)
  int64_t P, Q;        // output
  int64_t stride, pad, dil, groups;
  int64_t Cg, Kg;  // channels per group: input, output
  int64_t crs() const { return Cg * R * S; }
  int64_t hw() const { return H * W; }
  int64_t pq() const { return P * Q; }
  // 1×1, stride 1, no padding: the input image is already the column matrix.
  bool pointwise() const { return R == 1 && S == 1 && stride == 1 && pad == 0; }
  // One input channel per group (MobileNet's depthwise convolutions): direct loops beat im2col + gemv.
  bool depthwise() const { return groups > 1 && Cg == 1; }
  double macs() const { return double(N) * K * P * Q * Cg * R * S; }
};

ConvGeom check_conv(const char* who, const Tensor& x, const Tensor& w, const Tensor* b, const Conv2dOptions& opt) {
  RDD_CHECK(x.defined() && w.defined(), who, ": undefined input or weight tensor");
  require_ndim(x, 4, who, "input x (N, C, H, W)");
  require_ndim(w, 4, who, "weight w (K, C/groups, R, S)");
  require_layout(x, Layout::NCHW, who, "input x");
  require_same_device(x, w, who);
  RDD_CHECK(x.dtype() == w.dtype(), who, ": input ", x.desc(), " and weight ", w.desc(), " differ in dtype");
  if (x.device().is_cpu()) {
    RDD_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, who, ": the CPU path takes f32 or f64, got input ",
              x.desc());
  } else {
    RDD_CHECK(x.dtype() == DType::f32, who, ": the CUDA path takes f32 (bf16/f16 not implemented yet), got input ",
              x.desc());
  }
  RDD_CHECK(opt.stride >= 1 && opt.dilation >= 1 && opt.padding >= 0 && opt.groups >= 1, who, ": stride ", opt.stride,
            ", dilation ", opt.dilation, " and groups ", opt.groups, " must be ≥ 1 and padding ", opt.padding,
            " ≥ 0");
  ConvGeom g;
  g.N = x.size(0), g.C = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.K = w.size(0), g.R = w.size(2), g.S = w.size(3);
  g.stride = opt.stride, g.pad = opt.padding, g.dil = opt.dilation, g.groups = opt.groups;
  RDD_CHECK(g.C % g.groups == 0, who, ": groups ", g.groups, " does not divide the input's ", g.C,
            " channels (input ", x.desc(), ")");
  RDD_CHECK(g.K % g.groups == 0, who, ": groups ", g.groups, " does not divide the weight's ", g.K,
            " output channels (weight ", w.desc(), ")");
  RDD_CHECK(w.size(1) * g.groups == g.C, who, ": input ", x.desc(), " has ", g.C, " channels but the weight ",
            w.desc(), " expects ", w.size(1), " × groups ", g.groups, " = ", w.size(1) * g.groups);
  RDD_CHECK(g.R >= 1 && g.S >= 1 && g.K >= 1, who, ": empty weight ", w.desc());
  g.Cg = g.C / g.groups;
  g.Kg = g.K / g.groups;
  g.P = conv2d_output_size(int(g.H), int(g.R), opt.padding, opt.stride, opt.dilation, who);
  g.Q = conv2d_output_size(int(g.W), int(g.S), opt.padding, opt.stride, opt.dilation, who);
  if (b && b->defined()) {
    require_same_device(x, *b, who);
    RDD_CHECK(b->dtype() == x.dtype() && b->ndim() == 1 && b->size(0) == g.K, who, ": bias ", b->desc(),
              " must be a ", dtype_name(x.dtype()), " vector of the weight's ", g.K, " output channels");
  }
  return g;
}

void check_dy(const char* who, const Tensor& dy, const Tensor& x, const ConvGeom& g) {
  RDD_CHECK(dy.defined(), who, ": undefined gradient dy");
  require_same_device(dy, x, who);
  require_layout(dy, Layout::NCHW, who, "gradient dy");
  RDD_CHECK(dy.dtype() == x.dtype(), who, ": gradient ", dy.desc(), " and input ", x.desc(), " differ in dtype");
  const Shape want{g.N, g.K, g.P, g.Q};
  RDD_CHECK(dy.shape() == want, who, ": gradient dy ", dy.desc(), " should have the output's shape ",
            shape_str(want), " (input ", x.desc(), ")");
}

// ------------------------------------------------------------------------------------------------
// CPU building blocks
// ------------------------------------------------------------------------------------------------

// Row-major C = alpha·op(A)·op(B) + beta·C, single-threaded BLAS.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k),
              alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// The output columns q whose input column q·stride + woff lies inside [0, W): [lo, hi).
struct QRange {
  int64_t lo, hi;
};
inline QRange valid_q(const ConvGeom& g, int64_t woff) {
  int64_t lo = woff >= 0 ? 0 : (-woff + g.stride - 1) / g.stride;
  int64_t hi = g.W - 1 - woff < 0 ? 0 : std::min<int64_t>(g.Q, (g.W - 1 - woff) / g.stride + 1);
  lo = std::min(lo, g.Q);
  return {lo, std::max(lo, hi)};
}

// Output rows per band: keeps the column buffer (Cg·R·S × rows·Q) near 256 Ki elements (1 MiB in f32,
// within a core's L2) so gemm reads it from cache.
int64_t band_rows(const ConvGeom& g) {
  constexpr int64_t kColumnBudget = int64_t(1) << 18;
  return std::clamp<int64_t>(kColumnBudget / std::max<int64_t>(1, g.crs() * g.Q), 1, g.P);
}

// col (Cg·R·S, (p1−p0)·Q), rows of channels [c0, c1) of one group's image xg (Cg, H, W).
template <class T>
void im2col_band(const T* xg, const ConvGeom& g, int64_t c0, int64_t c1, int64_t p0, int64_t p1, T* col) {
  const int64_t ncols = (p1 - p0) * g.Q;
  for (int64_t c = c0; c < c1; ++c) {
    const T* xc = xg + c * g.hw();
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        T* row = col + ((c * g.R + r) * g.S + s) * ncols;
        const int64_t woff = s * g.dil - g.pad;
        const QRange qr = valid_q(g, woff);
        for (int64_t p = p0; p < p1; ++p) {
          T* out = row + (p - p0) * g.Q;
          const int64_t ih = p * g.stride - g.pad + r * g.dil;
          if (ih < 0 || ih >= g.H) {
            std::fill(out, out + g.Q, T(0));
            continue;
          }
          std::fill(out, out + qr.lo, T(0));
          std::fill(out + qr.hi, out + g.Q, T(0));
          const T* xr = xc + ih * g.W;
          if (g.stride == 1) {
            if (qr.hi > qr.lo) std::memcpy(out + qr.lo, xr + qr.lo + woff, size_t(qr.hi - qr.lo) * sizeof(T));
          } else {
            for (int64_t q = qr.lo; q < qr.hi; ++q) out[q] = xr[q * g.stride + woff];
          }
        }
      }
    }
  }
}

// The adjoint of im2col_band: dxg (Cg, H, W) += scatter of dcol's rows for channels [c0, c1).
template <class T>
void col2im_band(const T* dcol, const ConvGeom& g, int64_t c0, int64_t c1, int64_t p0, int64_t p1, T* dxg) {
  const int64_t ncols = (p1 - p0) * g.Q;
  for (int64_t c = c0; c < c1; ++c) {
    T* dxc = dxg + c * g.hw();
    for (int64_t r = 0; r < g.R; ++r) {
      for (int64_t s = 0; s < g.S; ++s) {
        const T* row = dcol + ((c * g.R + r) * g.S + s) * ncols;
        const int64_t woff = s * g.dil - g.pad;
        const QRange qr = valid_q(g, woff);
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t ih = p * g.stride - g.pad + r * g.dil;
          if (ih < 0 || ih >= g.H) continue;
          const T* in = row + (p - p0) * g.Q;
          T* dxr = dxc + ih * g.W;
          if (g.stride == 1) {
            T* d = dxr + woff;
            for (int64_t q = qr.lo; q < qr.hi; ++q) d[q] += in[q];
          } else {
            for (int64_t q = qr.lo; q < qr.hi; ++q) dxr[q * g.stride + woff] += in[q];
          }
        }
      }
    }
  }
}

// Images over threads when they divide evenly (or there are plenty); otherwise the work inside each image
// is split (im2col by channels, gemm by columns or rows), which balances any batch size.
bool images_over_threads(int64_t n_images) {
  const int64_t t = cpu_threads();
  return n_images >= t && n_images > 1 && (n_images % t == 0 || n_images >= 4 * t);
}

// Σ a[i]·b[i·stride] and Σ a[i] with eight independent partial sums: a single running sum is one
// dependent add chain (the compiler may not reassociate it), eight let it pipeline and vectorise.
template <class T>
T dot_strided(const T* a, const T* b, int64_t n, int64_t stride) {
  T acc[8] = {};
  int64_t i = 0;
  if (stride == 1) {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[(i + j) * stride];
  }
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i * stride];
  return s;
}
template <class T>
T sum_of(const T* a, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j];
  T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i];
  return s;
}

// Splits [0, n) over the thread pool (inline when already inside a parallel region).
template <class F>
void split(int64_t n, int64_t grain, F&& body) {
  parallel_for(0, n, [&](int64_t b, int64_t e) { body(b, e); }, grain);
}

// ------------------------------------------------------------------------------------------------
// CPU forward
// ------------------------------------------------------------------------------------------------

// y (N, K, P, Q) for images [n0, n1).
template <class T>
void conv_forward_images(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, int64_t n0, int64_t n1) {
  const int64_t crs = g.crs(), pq = g.pq();
  if (g.depthwise()) {  // planes (n, k), k reads input channel k / Kg
    const int64_t RS = g.R * g.S;
    split((n1 - n0) * g.K, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t n = n0 + i / g.K, k = i % g.K, c = k / g.Kg;
        const T* xc = x + (n * g.C + c) * g.hw();
        T* yk = y + (n * g.K + k) * pq;
        std::fill(yk, yk + pq, b ? b[k] : T(0));
        for (int64_t r = 0; r < g.R; ++r) {
          for (int64_t s = 0; s < g.S; ++s) {
            const T wv = w[k * RS + r * g.S + s];
            const int64_t woff = s * g.dil - g.pad;
            const QRange qr = valid_q(g, woff);
            for (int64_t p = 0; p < g.P; ++p) {
              const int64_t ih = p * g.stride - g.pad + r * g.dil;
              if (ih < 0 || ih >= g.H) continue;
              const T* xr = xc + ih * g.W;
              T* yr = yk + p * g.Q;
              if (g.stride == 1) {
                const T* xs = xr + woff;
                for (int64_t q = qr.lo; q < qr.hi; ++q) yr[q] += wv * xs[q];
              } else {
                for (int64_t q = qr.lo; q < qr.hi; ++q) yr[q] += wv * xr[q * g.stride + woff];
              }
            }
          }
        }
      }
    });
    return;
  }
  const int64_t rows = band_rows(g);
  std::vector<T> col;
  if (!g.pointwise()) col.resize(size_t(crs * rows * g.Q));
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* xg = x + (n * g.C + gi * g.Cg) * g.hw();
      const T* wg = w + gi * g.Kg * crs;
      T* yg = y + (n * g.K + gi * g.Kg) * pq;
      if (b)
        for (int64_t k = 0; k < g.Kg; ++k) std::fill(yg + k * pq, yg + (k + 1) * pq, b[gi * g.Kg + k]);
      const T beta = b ? T(1) : T(0);
      if (g.pointwise()) {  // yg (Kg, HW) = wg (Kg, Cg) · xg (Cg, HW)
        split(pq, 64, [&](int64_t q0, int64_t q1) {
          gemm(false, false, g.Kg, q1 - q0, crs, T(1), wg, crs, xg + q0, pq, beta, yg + q0, pq);
        });
        continue;
      }
      for (int64_t p0 = 0; p0 < g.P; p0 += rows) {
        const int64_t p1 = std::min(g.P, p0 + rows), ncols = (p1 - p0) * g.Q;
        split(g.Cg, 1, [&](int64_t c0, int64_t c1) { im2col_band(xg, g, c0, c1, p0, p1, col.data()); });
        // yg[:, band] (Kg, ncols) = wg (Kg, crs) · col (crs, ncols)
        split(ncols, 64, [&](int64_t j0, int64_t j1) {
          gemm(false, false, g.Kg, j1 - j0, crs, T(1), wg, crs, col.data() + j0, ncols, beta, yg + p0 * g.Q + j0, pq);
        });
      }
    }
  }
}

template <class T>
void conv_forward_raw(const T* xp, const T* wp, const T* bp, T* yp, const ConvGeom& g) {
  cpu_blas_single_threaded();
  if (images_over_threads(g.N)) {
    parallel_for(0, g.N, [&](int64_t n0, int64_t n1) { conv_forward_images(xp, wp, bp, yp, g, n0, n1); });
  } else {
    conv_forward_images(xp, wp, bp, yp, g, 0, g.N);  // parallel inside each image
  }
}

template <class T>
void conv_forward_cpu(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const ConvGeom& g) {
  conv_forward_raw(x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>(), g);
}

// ------------------------------------------------------------------------------------------------
// CPU backward
// ------------------------------------------------------------------------------------------------

// Images [n0, n1): dx (overwritten, when non-null) and dw += (into `dw`, which the caller owns).
template <class T>
void conv_backward_images(const T* dy, const T* x, const T* w, T* dx, T* dw, const ConvGeom& g, int64_t n0,
                          int64_t n1) {
  const int64_t crs = g.crs(), pq = g.pq(), hw = g.hw();
  if (g.depthwise()) {
    const int64_t RS = g.R * g.S;
    if (dx) {  // planes (n, c): the Kg output channels of group c scatter into input channel c
      split((n1 - n0) * g.C, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t n = n0 + i / g.C, c = i % g.C;
          T* dxc = dx + (n * g.C + c) * hw;
          std::fill(dxc, dxc + hw, T(0));
          for (int64_t k = c * g.Kg; k < (c + 1) * g.Kg; ++k) {
            const T* dyk = dy + (n * g.K + k) * pq;
            for (int64_t r = 0; r < g.R; ++r) {
              for (int64_t s = 0; s < g.S; ++s) {
                const T wv = w[k * RS + r * g.S + s];
                const int64_t woff = s * g.dil - g.pad;
                const QRange qr = valid_q(g, woff);
                for (int64_t p = 0; p < g.P; ++p) {
                  const int64_t ih = p * g.stride - g.pad + r * g.dil;
                  if (ih < 0 || ih >= g.H) continue;
                  T* dxr = dxc + ih * g.W;
                  const T* dyr = dyk + p * g.Q;
                  if (g.stride == 1) {
                    T* d = dxr + woff;
                    for (int64_t q = qr.lo; q < qr.hi; ++q) d[q] += wv * dyr[q];
                  } else {
                    for (int64_t q = qr.lo; q < qr.hi; ++q) dxr[q * g.stride + woff] += wv * dyr[q];
                  }
                }
              }
            }
          }
        }
      });
    }
    // dw (K, 1, R, S): output channel k correlates dy[n, k] with x[n, k / Kg]
    split(g.K, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t c = k / g.Kg;
        for (int64_t r = 0; r < g.R; ++r) {
          for (int64_t s = 0; s < g.S; ++s) {
            const int64_t woff = s * g.dil - g.pad;
            const QRange qr = valid_q(g, woff);
            double acc = 0;
            for (int64_t n = n0; n < n1; ++n) {
              const T* xc = x + (n * g.C + c) * hw;
              const T* dyk = dy + (n * g.K + k) * pq;
              for (int64_t p = 0; p < g.P; ++p) {
                const int64_t ih = p * g.stride - g.pad + r * g.dil;
                if (ih < 0 || ih >= g.H) continue;
                const T* xr = xc + ih * g.W;
                const T* dyr = dyk + p * g.Q;
                if (qr.hi > qr.lo)
                  acc += double(dot_strided(dyr + qr.lo, xr + qr.lo * g.stride + woff, qr.hi - qr.lo, g.stride));
              }
            }
            dw[k * RS + r * g.S + s] += T(acc);
          }
        }
      }
    });
    return;
  }
  const int64_t rows = band_rows(g);
  std::vector<T> col, dcol;
  if (!g.pointwise()) {
    col.resize(size_t(crs * rows * g.Q));
    if (dx) dcol.resize(col.size());
  }
  const int64_t RS = g.R * g.S;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* xg = x + (n * g.C + gi * g.Cg) * hw;
      const T* wg = w + gi * g.Kg * crs;
      const T* dyg = dy + (n * g.K + gi * g.Kg) * pq;
      T* dwg = dw + gi * g.Kg * crs;
      T* dxg = dx ? dx + (n * g.C + gi * g.Cg) * hw : nullptr;
      if (g.pointwise()) {
        if (dxg) {  // dxg (Cg, HW) = wgᵀ (Cg, Kg) · dyg (Kg, HW)
          split(hw, 64, [&](int64_t j0, int64_t j1) {
            gemm(true, false, g.Cg, j1 - j0, g.Kg, T(1), wg, crs, dyg + j0, pq, T(0), dxg + j0, hw);
          });
        }
        // dwg (Kg, Cg) += dyg (Kg, HW) · xgᵀ (HW, Cg)
        split(g.Kg, 8, [&](int64_t k0, int64_t k1) {
          gemm(false, true, k1 - k0, g.Cg, pq, T(1), dyg + k0 * pq, pq, xg, hw, T(1), dwg + k0 * crs, crs);
        });
        continue;
      }
      if (dxg) std::fill(dxg, dxg + g.Cg * hw, T(0));
      for (int64_t p0 = 0; p0 < g.P; p0 += rows) {
        const int64_t p1 = std::min(g.P, p0 + rows), ncols = (p1 - p0) * g.Q;
        const T* dyb = dyg + p0 * g.Q;  // (Kg, ncols) with leading dimension pq
        split(g.Cg, 1, [&](int64_t c0, int64_t c1) {
          im2col_band(xg, g, c0, c1, p0, p1, col.data());
          if (dxg) {  // dcol rows of channels [c0, c1) = wg[:, those rows]ᵀ · dy band, then scatter
            gemm(true, false, (c1 - c0) * RS, ncols, g.Kg, T(1), wg + c0 * RS, crs, dyb, pq, T(0),
                 dcol.data() + c0 * RS * ncols, ncols);
            col2im_band(dcol.data(), g, c0, c1, p0, p1, dxg);
          }
        });
        // dwg (Kg, crs) += dy band (Kg, ncols) · colᵀ (ncols, crs)
        split(g.Kg, 8, [&](int64_t k0, int64_t k1) {
          gemm(false, true, k1 - k0, crs, ncols, T(1), dyb + k0 * pq, pq, col.data(), ncols, T(1), dwg + k0 * crs,
               crs);
        });
      }
    }
  }
}

// With stride 1, dL/dx is itself a convolution: dy correlated with the spatially flipped, in/out-swapped
// weight, padding dil·(R−1) − pad. Running it through the forward path (im2col + a gemm whose inner
// dimension is Kg·R·S) beats a gemm of inner dimension Kg followed by a col2im scatter. Needs a square
// kernel (one padding for both axes) and pad ≤ dil·(R−1); depthwise and 1×1 have their own paths.
bool transposed_forward_applies(const ConvGeom& g) {
  return g.stride == 1 && g.R == g.S && g.pad <= g.dil * (g.R - 1) && !g.depthwise() && !g.pointwise();
}

template <class T>
void dx_by_transposed_forward(const T* dy, const T* w, T* dx, const ConvGeom& g) {
  // wt (C, Kg, R, S): wt[gi·Cg + c, k, r, s] = w[gi·Kg + k, c, R−1−r, S−1−s]
  const int64_t RS = g.R * g.S;
  std::vector<T> wt(size_t(g.C * g.Kg * RS));
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t k = 0; k < g.Kg; ++k)
      for (int64_t c = 0; c < g.Cg; ++c)
        for (int64_t i = 0; i < RS; ++i)
          wt[size_t(((gi * g.Cg + c) * g.Kg + k) * RS + (RS - 1 - i))] = w[((gi * g.Kg + k) * g.Cg + c) * RS + i];
  ConvGeom t = g;
  t.C = g.K, t.H = g.P, t.W = g.Q;  // input: dy
  t.K = g.C, t.P = g.H, t.Q = g.W;  // output: dx
  t.Cg = g.Kg, t.Kg = g.Cg;
  t.pad = g.dil * (g.R - 1) - g.pad;
  conv_forward_raw<T>(dy, wt.data(), nullptr, dx, t);
}

template <class T>
void conv_backward_cpu(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor* dx, Tensor& dw, Tensor* db,
                       const ConvGeom& g) {
  cpu_blas_single_threaded();
  const T* dyp = dy.data<T>();
  const T* xp = x.data<T>();
  const T* wp = w.data<T>();
  T* dxp = dx ? dx->data<T>() : nullptr;
  T* dwp = dw.data<T>();
  if (dxp && transposed_forward_applies(g)) {
    dx_by_transposed_forward(dyp, wp, dxp, g);
    dxp = nullptr;  // the pass below computes dw only
  }
  if (images_over_threads(g.N)) {
    // Images over threads; each chunk sums its dw in a private buffer, added under a lock.
    std::mutex mu;
    parallel_for(0, g.N, [&](int64_t n0, int64_t n1) {
      std::vector<T> local(size_t(w.numel()), T(0));
      conv_backward_images(dyp, xp, wp, dxp, local.data(), g, n0, n1);
      std::lock_guard<std::mutex> lock(mu);
      for (size_t i = 0; i < local.size(); ++i) dwp[i] += local[i];
    });
  } else {
    conv_backward_images(dyp, xp, wp, dxp, dwp, g, 0, g.N);
  }
  if (db) {  // db[k] += Σ_{n, p, q} dy[n, k, p, q]
    T* dbp = db->data<T>();
    const int64_t pq = g.pq();
    split(g.K, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        double acc = 0;
        for (int64_t n = 0; n < g.N; ++n) {
          const T* d = dyp + (n * g.K + k) * pq;
          acc += double(sum_of(d, pq));
        }
        dbp[k] += T(acc);
      }
    });
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Functional API
// ------------------------------------------------------------------------------------------------

// The op-profile name of a convolution: the three kinds differ by an order of magnitude in FLOP/byte.
static const char* conv_profile_name(const ConvGeom& g, bool backward) {
  if (g.depthwise()) return backward ? "conv2d depthwise backward" : "conv2d depthwise forward";
  if (g.R == 1 && g.S == 1) return backward ? "conv2d 1x1 backward" : "conv2d 1x1 forward";
  return backward ? "conv2d kxk backward" : "conv2d kxk forward";
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  const ConvGeom g = check_conv("conv2d", x, w, &b, opt);
  Tensor y = Tensor::empty({g.N, g.K, g.P, g.Q}, x.dtype(), x.device());
  if (y.numel() == 0) return y;
  OpScope profile(conv_profile_name(g, false), x.device(), 2 * g.macs(), double(x.nbytes() + w.nbytes() + y.nbytes()));
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    detail::conv2d_forward_cuda(x, w, b, y, opt);
#endif
    return y;
  }
  if (x.dtype() == DType::f64)
    conv_forward_cpu<double>(x, w, b, y, g);
  else
    conv_forward_cpu<float>(x, w, b, y, g);
  return y;
}

Tensor conv2d_backward_accumulate(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                                  bool need_dx, Tensor& dw, Tensor* db) {
  const char* who = "conv2d backward";
  const ConvGeom g = check_conv(who, x, w, nullptr, opt);
  check_dy(who, dy, x, g);
  RDD_CHECK(dw.defined() && dw.shape() == w.shape() && dw.dtype() == w.dtype() && dw.device() == w.device(), who,
            ": weight gradient ", dw.defined() ? dw.desc() : std::string("(undefined)"), " must match the weight ",
            w.desc());
  if (db) {
    RDD_CHECK(db->defined() && db->shape() == Shape{g.K} && db->dtype() == w.dtype() && db->device() == w.device(),
              who, ": bias gradient ", db->defined() ? db->desc() : std::string("(undefined)"), " must be a ",
              dtype_name(w.dtype()), " vector of ", g.K, " on ", w.device().str());
  }
  Tensor dx;
  if (need_dx) dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return dx;
  // dL/dw reads dy and x; dL/dx reads dy and w and writes dx: one forward's FLOPs each.
  OpScope profile(conv_profile_name(g, true), x.device(), (need_dx ? 4 : 2) * g.macs(),
                  double(dy.nbytes() + x.nbytes() * (need_dx ? 2 : 1) + w.nbytes() * 2));
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    detail::conv2d_backward_cuda(dy, x, w, opt, need_dx ? &dx : nullptr, dw, db);
#endif
    return dx;
  }
  if (x.dtype() == DType::f64)
    conv_backward_cpu<double>(dy, x, w, need_dx ? &dx : nullptr, dw, db, g);
  else
    conv_backward_cpu<float>(dy, x, w, need_dx ? &dx : nullptr, dw, db, g);
  return dx;
}

#if RDD_CUDA_EMULATED
namespace detail {
void conv2d_forward_emulated_cudnn(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dOptions& opt) {
  const ConvGeom g = check_conv("conv2d (emulated cuDNN)", x, w, nullptr, opt);
  // The tensors travel with the work (their storage stays alive until it has run), like stream-ordered memory.
  emu::enqueue_host_work(cuda_context(x.device().index).compute_stream(),
                         [x, w, y, g]() mutable { conv_forward_cpu<float>(x, w, Tensor(), y, g); });
}

void conv2d_backward_emulated_cudnn(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                                    Tensor* dx, Tensor& dw) {
  const ConvGeom g = check_conv("conv2d backward (emulated cuDNN)", x, w, nullptr, opt);
  Tensor dx_out = dx ? *dx : Tensor();
  emu::enqueue_host_work(cuda_context(x.device().index).compute_stream(), [dy, x, w, dx_out, dw, g]() mutable {
    conv_backward_cpu<float>(dy, x, w, dx_out.defined() ? &dx_out : nullptr, dw, nullptr, g);
  });
}
}  // namespace detail
#endif

Conv2dGrads conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                            bool need_dx, bool has_bias) {
  RDD_CHECK(w.defined(), "conv2d backward: undefined weight");
  Conv2dGrads grads;
  grads.dw = Tensor::zeros(w.shape(), w.dtype(), w.device());
  if (has_bias) grads.db = Tensor::zeros({w.size(0)}, w.dtype(), w.device());
  grads.dx = conv2d_backward_accumulate(dy, x, w, opt, need_dx, grads.dw, has_bias ? &grads.db : nullptr);
  return grads;
}

// ------------------------------------------------------------------------------------------------
// Module
// ------------------------------------------------------------------------------------------------

Conv2d::Conv2d(ParamStore& store, const std::string& name, int in_channels, int out_channels, int kernel_size,
               Conv2dOptions opt)
    : name_(name), in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), opt_(opt) {
  RDD_CHECK(in_channels >= 1 && out_channels >= 1 && kernel_size >= 1, "Conv2d '", name, "': in_channels ",
            in_channels, ", out_channels ", out_channels, " and kernel_size ", kernel_size, " must be ≥ 1");
  RDD_CHECK(opt.groups >= 1 && in_channels % opt.groups == 0 && out_channels % opt.groups == 0, "Conv2d '", name,
            "': groups ", opt.groups, " must divide in_channels ", in_channels, " and out_channels ", out_channels);
  RDD_CHECK(opt.stride >= 1 && opt.dilation >= 1 && opt.padding >= 0, "Conv2d '", name, "': stride ", opt.stride,
            " and dilation ", opt.dilation, " must be ≥ 1, padding ", opt.padding, " ≥ 0");
  weight_ = store.add_parameter(name + ".weight", {out_channels, in_channels / opt.groups, kernel_size, kernel_size});
  if (opt.bias) bias_ = store.add_parameter(name + ".bias", {out_channels});
}

namespace {
// Errors from the functional layer come out with the module's name in front.
template <class F>
auto named(const std::string& name, F&& f) -> decltype(f()) {
  return with_error_context("Conv2d '" + name + "'", std::forward<F>(f));
}
}  // namespace

// The per-layer profile (`rdd bench --layers`): "<name> forward" with 2 FLOP per multiply-add.
static std::string layer_label(const std::string& name, const char* what) {
  return op_profile_enabled() ? name + what : std::string();
}

Tensor Conv2d::forward(const Tensor& x) {
  RDD_CHECK(weight_->value.defined(), "Conv2d '", name_, "': forward before the parameter store was materialized");
  const std::string label = layer_label(name_, " forward");
  OpScope profile(label.c_str(), x.device(), 0, 0, OpLevel::layer);
  Tensor y = named(name_, [&] {
    return conv2d_forward(x, weight_->value, bias_ ? bias_->value : Tensor(), opt_);
  });
  const double macs = double(y.numel()) * (in_channels_ / opt_.groups) * kernel_size_ * kernel_size_;
  profile.add_work(2 * macs, double(x.nbytes() + y.nbytes() + weight_->value.nbytes()));
  cached_x_ = training() ? x : Tensor();
  return y;
}

Tensor Conv2d::backward_impl(const Tensor& dy, bool need_dx) {
  RDD_CHECK(training(), "Conv2d '", name_, "': backward in eval mode (eval mode keeps no activations)");
  RDD_CHECK(cached_x_.defined(), "Conv2d '", name_, "': backward without a preceding training-mode forward");
  const std::string label = layer_label(name_, " backward");
  OpScope profile(label.c_str(), dy.device(), 0, 0, OpLevel::layer);
  const double macs = double(dy.numel()) * (in_channels_ / opt_.groups) * kernel_size_ * kernel_size_;
  profile.add_work((need_dx ? 4 : 2) * macs,
                   double(dy.nbytes() + cached_x_.nbytes() * (need_dx ? 2 : 1) + 2 * weight_->value.nbytes()));
  Tensor dx = named(name_, [&] {
    return conv2d_backward_accumulate(dy, cached_x_, weight_->value, opt_, need_dx, weight_->grad,
                                      bias_ ? &bias_->grad : nullptr);
  });
  cached_x_ = Tensor();
  return dx;
}

Tensor Conv2d::backward(const Tensor& dy) { return backward_impl(dy, true); }
Tensor Conv2d::backward_params_only(const Tensor& dy) { return backward_impl(dy, false); }

void Conv2d::reset_parameters(uint64_t seed, uint64_t offset) {
  RDD_CHECK(weight_->value.defined(), "Conv2d '", name_, "': reset_parameters before the parameter store was materialized");
  const int64_t fan_in = int64_t(in_channels_ / opt_.groups) * kernel_size_ * kernel_size_;
  const double bound = 1.0 / std::sqrt(double(fan_in));
  fill_uniform(weight_->value, -bound, bound, seed, offset);
  if (bias_) fill_uniform(bias_->value, -bound, bound, seed, offset + 1);
}

}  // namespace rdd::layers
