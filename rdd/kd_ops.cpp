// CPU reference and device dispatch of rdd/kd_ops.h.
#include "rdd/kd_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/thread_pool.h"
#include "rdd/kd_math.h"
#include "rdd/kd_ops_cuda.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd::method {

namespace {

#if RDD_WITH_CUDA
cudaStream_t stream_of(const Tensor& t) { return cuda_context(t.device().index).compute_stream(); }
#endif

void require_like(const Tensor& a, const Tensor& b, const char* who, const char* what) {
  RDD_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), who, ": ", what, " ", a.desc(), " does not match ",
            b.desc());
  require_same_device(a, b, who);
}

void check_view(const Tensor& x, RowView v, const char* who) {
  RDD_CHECK(v.outer >= 0 && v.len >= 1 && v.inner >= 1 && v.outer * v.len * v.inner == x.numel(), who, ": rows (",
            v.outer, ", ", v.len, ", ", v.inner, ") do not cover ", x.desc());
}

constexpr int64_t kRowGrain = 64;

}  // namespace

L2Normalized l2_normalize_rows(const Tensor& x, RowView v, double eps) {
  const char* who = "l2_normalize_rows";
  require_float_compute(x, who, "x");
  check_view(x, v, who);
  L2Normalized r{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor::empty({v.rows()}, x.dtype(), x.device())};
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::l2norm_rows(x.data<float>(), r.y.data<float>(), r.norm.data<float>(), v.outer, v.len, v.inner, float(eps),
                      stream_of(x));
    return r;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = r.y.data<T>();
    T* pn = r.norm.data<T>();
    parallel_for(0, v.rows(), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row)
        pn[row] = kd_math::l2norm_row_forward(px, py, kd_math::row_base(row, v.len, v.inner), v.len, v.inner, T(eps));
    }, kRowGrain);
  });
  return r;
}

Tensor l2_normalize_rows_backward(const Tensor& dy, const L2Normalized& n, RowView v, double eps) {
  const char* who = "l2_normalize_rows_backward";
  require_float_compute(dy, who, "dy");
  require_like(dy, n.y, who, "dy");
  check_view(dy, v, who);
  RDD_CHECK(n.norm.numel() == v.rows(), who, ": ", n.norm.numel(), " norms for ", v.rows(), " rows");
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
#if RDD_WITH_CUDA
  if (dy.device().is_cuda()) {
    cuda::l2norm_rows_backward(dy.data<float>(), n.y.data<float>(), n.norm.data<float>(), dx.data<float>(), v.outer,
                               v.len, v.inner, float(eps), stream_of(dy));
    return dx;
  }
#endif
  with_float_type(dy.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pdy = dy.data<T>(), *py = n.y.data<T>(), *pn = n.norm.data<T>();
    T* pdx = dx.data<T>();
    parallel_for(0, v.rows(), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row)
        kd_math::l2norm_row_backward(pdy, py, pdx, kd_math::row_base(row, v.len, v.inner), v.len, v.inner, pn[row],
                                     T(eps));
    }, kRowGrain);
  });
  return dx;
}

Tensor channel_mean_square(const Tensor& f) {
  const char* who = "channel_mean_square";
  require_float_compute(f, who, "f");
  require_ndim(f, 4, who, "f");
  const int64_t n = f.size(0), c = f.size(1), hw = f.size(2) * f.size(3);
  Tensor a = Tensor::empty({n, hw}, f.dtype(), f.device());
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::channel_mean_square(f.data<float>(), a.data<float>(), n, c, hw, stream_of(f));
    return a;
  }
#endif
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pf = f.data<T>();
    T* pa = a.data<T>();
    parallel_for(0, n * hw, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* x = pf + (i / hw) * c * hw + i % hw;
        T s = 0;
        for (int64_t k = 0; k < c; ++k) s += x[k * hw] * x[k * hw];
        pa[i] = s / T(c);
      }
    }, 1024);
  });
  return a;
}

Tensor channel_mean_square_backward(const Tensor& da, const Tensor& f) {
  const char* who = "channel_mean_square_backward";
  require_float_compute(f, who, "f");
  require_ndim(f, 4, who, "f");
  const int64_t n = f.size(0), c = f.size(1), hw = f.size(2) * f.size(3);
  RDD_CHECK(da.shape() == Shape({n, hw}) && da.dtype() == f.dtype(), who, ": da ", da.desc(), " vs f ", f.desc());
  require_same_device(da, f, who);
  Tensor df = Tensor::empty(f.shape(), f.dtype(), f.device());
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::channel_mean_square_backward(da.data<float>(), f.data<float>(), df.data<float>(), n, c, hw, stream_of(f));
    return df;
  }
#endif
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pf = f.data<T>(), *pa = da.data<T>();
    T* pd = df.data<T>();
    const T k2 = T(2) / T(c);
    for (int64_t i = 0; i < f.numel(); ++i) {
      const int64_t img = i / (c * hw), p = i % hw;
      pd[i] = k2 * pf[i] * pa[img * hw + p];
    }
  });
  return df;
}

Tensor softmax_rows(const Tensor& x, RowView v, double inv_t) {
  const char* who = "softmax_rows";
  require_float_compute(x, who, "x");
  check_view(x, v, who);
  Tensor p = Tensor::empty(x.shape(), x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::softmax_rows(x.data<float>(), p.data<float>(), v.outer, v.len, v.inner, float(inv_t), stream_of(x));
    return p;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* pp = p.data<T>();
    parallel_for(0, v.rows(), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row)
        kd_math::softmax_row_forward(px, pp, kd_math::row_base(row, v.len, v.inner), v.len, v.inner, T(inv_t));
    }, kRowGrain);
  });
  return p;
}

Tensor softmax_rows_backward(const Tensor& dp, const Tensor& p, RowView v, double inv_t) {
  const char* who = "softmax_rows_backward";
  require_float_compute(dp, who, "dp");
  require_like(dp, p, who, "dp");
  check_view(dp, v, who);
  Tensor dx = Tensor::empty(dp.shape(), dp.dtype(), dp.device());
#if RDD_WITH_CUDA
  if (dp.device().is_cuda()) {
    cuda::softmax_rows_backward(dp.data<float>(), p.data<float>(), dx.data<float>(), v.outer, v.len, v.inner,
                                float(inv_t), stream_of(dp));
    return dx;
  }
#endif
  with_float_type(dp.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pdp = dp.data<T>(), *pp = p.data<T>();
    T* pdx = dx.data<T>();
    parallel_for(0, v.rows(), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row)
        kd_math::softmax_row_backward(pdp, pp, pdx, kd_math::row_base(row, v.len, v.inner), v.len, v.inner, T(inv_t));
    }, kRowGrain);
  });
  return dx;
}

PearsonRows pearson_rows(const Tensor& a, const Tensor& b, RowView v, double eps, double grad_scale, bool need_grad) {
  const char* who = "pearson_rows";
  require_float_compute(a, who, "a");
  require_like(b, a, who, "b");
  check_view(a, v, who);
  PearsonRows r;
  r.r = Tensor::empty({v.rows()}, a.dtype(), a.device());
  if (need_grad) r.grad = Tensor::empty(a.shape(), a.dtype(), a.device());
#if RDD_WITH_CUDA
  if (a.device().is_cuda()) {
    cuda::pearson_rows(a.data<float>(), b.data<float>(), r.r.data<float>(), need_grad ? r.grad.data<float>() : nullptr,
                       v.outer, v.len, v.inner, float(eps), float(grad_scale), stream_of(a));
    return r;
  }
#endif
  with_float_type(a.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* pr = r.r.data<T>();
    T* pg = need_grad ? r.grad.data<T>() : nullptr;
    parallel_for(0, v.rows(), [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row)
        pr[row] = kd_math::pearson_row(pa, pb, pg, kd_math::row_base(row, v.len, v.inner), v.len, v.inner, T(eps),
                                       T(grad_scale));
    }, kRowGrain);
  });
  return r;
}

Tensor swap_leading_dims(const Tensor& x, int64_t a, int64_t b, int64_t r) {
  const char* who = "swap_leading_dims";
  require_float_compute(x, who, "x");
  RDD_CHECK(a * b * r == x.numel(), who, ": (", a, ", ", b, ", ", r, ") does not cover ", x.desc());
  Tensor y = Tensor::empty({b, a, r}, x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::swap_leading_dims(x.data<float>(), y.data<float>(), a, b, r, stream_of(x));
    return y;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < a; ++i)
      for (int64_t j = 0; j < b; ++j)
        std::copy(px + (i * b + j) * r, px + (i * b + j + 1) * r, py + (j * a + i) * r);
  });
  return y;
}

Tensor nearest_labels(const Tensor& labels, int64_t h, int64_t w) {
  const char* who = "nearest_labels";
  require_dtype(labels, DType::i32, who, "labels");
  require_ndim(labels, 3, who, "labels");
  RDD_CHECK(h >= 1 && w >= 1, who, ": target size ", h, "x", w);
  const int64_t n = labels.size(0), H = labels.size(1), W = labels.size(2);
  if (H == h && W == w) return labels;
  Tensor out = Tensor::empty({n, h, w}, DType::i32, labels.device());
#if RDD_WITH_CUDA
  if (labels.device().is_cuda()) {
    cuda::nearest_labels(labels.data<int32_t>(), out.data<int32_t>(), n, H, W, h, w, stream_of(labels));
    return out;
  }
#endif
  const int32_t* in = labels.data<int32_t>();
  int32_t* o = out.data<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        o[(i * h + y) * w + x] =
            in[(i * H + kd_math::nearest_source(y, H, h)) * W + kd_math::nearest_source(x, W, w)];
  return out;
}

Tensor avg_pool_ceil(const Tensor& x, int k) {
  const char* who = "avg_pool_ceil";
  require_float_compute(x, who, "x");
  require_ndim(x, 4, who, "x");
  RDD_CHECK(k >= 1, who, ": kernel ", k);
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const int64_t oh = (H + k - 1) / k, ow = (W + k - 1) / k;
  Tensor y = Tensor::empty({x.size(0), x.size(1), oh, ow}, x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::avg_pool_ceil(x.data<float>(), y.data<float>(), planes, H, W, k, stream_of(x));
    return y;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t he = std::min<int64_t>(i * k + k, H), we = std::min<int64_t>(j * k + k, W);
          T s = 0;
          for (int64_t r = i * k; r < he; ++r)
            for (int64_t c = j * k; c < we; ++c) s += px[(pl * H + r) * W + c];
          py[(pl * oh + i) * ow + j] = s / T((he - i * k) * (we - j * k));
        }
  });
  return y;
}

Tensor avg_pool_ceil_backward(const Tensor& dy, int64_t H, int64_t W, int k) {
  const char* who = "avg_pool_ceil_backward";
  require_float_compute(dy, who, "dy");
  require_ndim(dy, 4, who, "dy");
  const int64_t oh = (H + k - 1) / k, ow = (W + k - 1) / k;
  RDD_CHECK(dy.size(2) == oh && dy.size(3) == ow, who, ": dy ", dy.desc(), " is not the pooled size of ", H, "x", W);
  const int64_t planes = dy.size(0) * dy.size(1);
  Tensor dx = Tensor::empty({dy.size(0), dy.size(1), H, W}, dy.dtype(), dy.device());
#if RDD_WITH_CUDA
  if (dy.device().is_cuda()) {
    cuda::avg_pool_ceil_backward(dy.data<float>(), dx.data<float>(), planes, H, W, k, stream_of(dy));
    return dx;
  }
#endif
  with_float_type(dy.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pdy = dy.data<T>();
    T* pdx = dx.data<T>();
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t r = 0; r < H; ++r)
        for (int64_t c = 0; c < W; ++c) {
          const int64_t i = r / k, j = c / k;
          const int64_t he = std::min<int64_t>(i * k + k, H), we = std::min<int64_t>(j * k + k, W);
          pdx[(pl * H + r) * W + c] = pdy[(pl * oh + i) * ow + j] / T((he - i * k) * (we - j * k));
        }
  });
  return dx;
}

Tensor one_hot_pixels(const Tensor& labels, int64_t classes, DType dtype) {
  const char* who = "one_hot_pixels";
  require_dtype(labels, DType::i32, who, "labels");
  RDD_CHECK(labels.ndim() == 2, who, ": labels ", labels.desc(), " must be (N, P)");
  const int64_t n = labels.size(0), p = labels.size(1);
  Tensor out = Tensor::empty({n, p, classes}, dtype, labels.device());
#if RDD_WITH_CUDA
  if (labels.device().is_cuda()) {
    RDD_CHECK(dtype == DType::f32, who, ": the GPU path is f32");
    cuda::one_hot(labels.data<int32_t>(), out.data<float>(), n, p, classes, stream_of(labels));
    return out;
  }
#endif
  const int32_t* y = labels.data<int32_t>();
  with_float_type(out.dtype(), [&](auto t) {
    using T = decltype(t);
    T* o = out.data<T>();
    for (int64_t i = 0; i < n * p; ++i)
      for (int64_t k = 0; k < classes; ++k) o[i * classes + k] = y[i] == k ? T(1) : T(0);
  });
  return out;
}

Tensor divide_columns(const Tensor& x, const Tensor& d, double eps) {
  const char* who = "divide_columns";
  require_float_compute(x, who, "x");
  require_ndim(x, 3, who, "x");
  const int64_t n = x.size(0), r = x.size(1), k = x.size(2);
  RDD_CHECK(d.numel() == n * k && d.dtype() == x.dtype(), who, ": divisors ", d.desc(), " for x ", x.desc());
  require_same_device(x, d, who);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::divide_columns(x.data<float>(), d.data<float>(), y.data<float>(), n, r, k, float(eps), stream_of(x));
    return y;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *px = x.data<T>(), *pd = d.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t img = i / (r * k), col = i % k;
      py[i] = px[i] / (pd[img * k + col] + T(eps));
    }
  });
  return y;
}

namespace {
constexpr double kCosineEps = 1e-8;  // torch.nn.CosineSimilarity's default

void check_center_cosine(const Tensor& f, const Tensor& ctr, const Tensor& labels, const char* who) {
  require_float_compute(f, who, "f");
  require_like(ctr, f, who, "centres");
  RDD_CHECK(f.ndim() == 3, who, ": f ", f.desc(), " must be (N, C, P)");
  require_dtype(labels, DType::i32, who, "labels");
  RDD_CHECK(labels.numel() == f.size(0) * f.size(2), who, ": labels ", labels.desc(), " for features ", f.desc());
  require_same_device(labels, f, who);
}
}  // namespace

Tensor center_cosine(const Tensor& f, const Tensor& ctr, const Tensor& labels, int64_t classes) {
  const char* who = "center_cosine";
  check_center_cosine(f, ctr, labels, who);
  const int64_t n = f.size(0), c = f.size(1), p = f.size(2);
  Tensor cos = Tensor::empty({n, p}, f.dtype(), f.device());
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::center_cosine(f.data<float>(), ctr.data<float>(), labels.data<int32_t>(), cos.data<float>(), n, c, p, classes,
                        stream_of(f));
    return cos;
  }
#endif
  const int32_t* y = labels.data<int32_t>();
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pf = f.data<T>(), *pc = ctr.data<T>();
    T* o = cos.data<T>();
    parallel_for(0, n * p, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const bool labelled = y[i] >= 0 && y[i] < classes;
        o[i] = labelled ? kd_math::cosine_pixel<T>(pf, pc, nullptr, nullptr, (i / p) * c * p + i % p, c, p,
                                                  T(kCosineEps), T(1))
                        : T(1);
      }
    }, 256);
  });
  return cos;
}

CenterCosineGrads center_cosine_backward(const Tensor& dcos, const Tensor& f, const Tensor& ctr, const Tensor& labels,
                                         int64_t classes) {
  const char* who = "center_cosine_backward";
  check_center_cosine(f, ctr, labels, who);
  const int64_t n = f.size(0), c = f.size(1), p = f.size(2);
  RDD_CHECK(dcos.numel() == n * p && dcos.dtype() == f.dtype(), who, ": dcos ", dcos.desc(), " for ", f.desc());
  require_same_device(dcos, f, who);
  CenterCosineGrads g{Tensor::empty(f.shape(), f.dtype(), f.device()), Tensor::empty(f.shape(), f.dtype(), f.device())};
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::center_cosine_backward(dcos.data<float>(), f.data<float>(), ctr.data<float>(), labels.data<int32_t>(),
                                 g.gf.data<float>(), g.gc.data<float>(), n, c, p, classes, stream_of(f));
    return g;
  }
#endif
  const int32_t* y = labels.data<int32_t>();
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *pf = f.data<T>(), *pc = ctr.data<T>(), *pd = dcos.data<T>();
    T *gf = g.gf.data<T>(), *gc = g.gc.data<T>();
    parallel_for(0, n * p, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t base = (i / p) * c * p + i % p;
        if (y[i] >= 0 && y[i] < classes) {
          kd_math::cosine_pixel<T>(pf, pc, gf, gc, base, c, p, T(kCosineEps), pd[i]);
        } else {
          for (int64_t k = 0; k < c; ++k) gf[base + k * p] = gc[base + k * p] = T(0);
        }
      }
    }, 256);
  });
  return g;
}

Tensor leaky_relu(const Tensor& x, double slope) {
  require_float_compute(x, "leaky_relu", "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::leaky_relu(x.data<float>(), y.data<float>(), x.numel(), float(slope), stream_of(x));
    return y;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = px[i] > T(0) ? px[i] : T(slope) * px[i];
  });
  return y;
}

Tensor leaky_relu_backward(const Tensor& dy, const Tensor& x, double slope) {
  const char* who = "leaky_relu_backward";
  require_float_compute(dy, who, "dy");
  require_like(dy, x, who, "dy");
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::leaky_relu_backward(dy.data<float>(), x.data<float>(), dx.data<float>(), x.numel(), float(slope), stream_of(x));
    return dx;
  }
#endif
  with_float_type(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T *px = x.data<T>(), *pd = dy.data<T>();
    T* po = dx.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) po[i] = px[i] > T(0) ? pd[i] : T(slope) * pd[i];
  });
  return dx;
}

namespace {
void check_index(const Tensor& idx, const Tensor& like, const char* who) {
  require_dtype(idx, DType::i64, who, "indices");
  require_same_device(idx, like, who);
  RDD_CHECK(idx.ndim() == 1, who, ": indices ", idx.desc(), " must be 1-D");
}
// The indices on the host (CPU tensors: their data).
std::vector<int64_t> host_indices(const Tensor& idx) { return idx.to_vector<int64_t>(); }
}  // namespace

Tensor gather_pixels(const Tensor& f, const Tensor& idx) {
  const char* who = "gather_pixels";
  require_float_compute(f, who, "f");
  RDD_CHECK(f.ndim() == 3, who, ": f ", f.desc(), " must be (N, D, P)");
  check_index(idx, f, who);
  const int64_t n = f.size(0), d = f.size(1), p = f.size(2), m = idx.numel();
  Tensor rows = Tensor::empty({m, d}, f.dtype(), f.device());
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::gather_pixels(f.data<float>(), idx.data<int64_t>(), rows.data<float>(), m, d, p, stream_of(f));
    return rows;
  }
#endif
  const std::vector<int64_t> ix = host_indices(idx);
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pf = f.data<T>();
    T* pr = rows.data<T>();
    for (int64_t i = 0; i < m; ++i) {
      RDD_CHECK(ix[size_t(i)] >= 0 && ix[size_t(i)] < n * p, who, ": index ", ix[size_t(i)], " outside ", n * p, " pixels");
      const T* src = pf + (ix[size_t(i)] / p) * d * p + ix[size_t(i)] % p;
      for (int64_t k = 0; k < d; ++k) pr[i * d + k] = src[k * p];
    }
  });
  return rows;
}

Tensor scatter_pixels(const Tensor& rows, const Tensor& idx, int64_t n, int64_t d, int64_t p) {
  const char* who = "scatter_pixels";
  require_float_compute(rows, who, "rows");
  check_index(idx, rows, who);
  RDD_CHECK(rows.ndim() == 2 && rows.size(0) == idx.numel() && rows.size(1) == d, who, ": rows ", rows.desc(), " for ",
            idx.numel(), " indices of width ", d);
  const int64_t m = idx.numel();
  Tensor out = Tensor::zeros({n, d, p}, rows.dtype(), rows.device());
#if RDD_WITH_CUDA
  if (rows.device().is_cuda()) {
    cuda::scatter_pixels(rows.data<float>(), idx.data<int64_t>(), out.data<float>(), m, d, p, stream_of(rows));
    return out;
  }
#endif
  const std::vector<int64_t> ix = host_indices(idx);
  with_float_type(rows.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pr = rows.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < m; ++i) {
      RDD_CHECK(ix[size_t(i)] >= 0 && ix[size_t(i)] < n * p, who, ": index ", ix[size_t(i)], " outside ", n * p, " pixels");
      T* dst = po + (ix[size_t(i)] / p) * d * p + ix[size_t(i)] % p;
      for (int64_t k = 0; k < d; ++k) dst[k * p] = pr[i * d + k];
    }
  });
  return out;
}

Tensor take_rows(const Tensor& src, const Tensor& idx) {
  const char* who = "take_rows";
  require_float_compute(src, who, "src");
  RDD_CHECK(src.ndim() == 2, who, ": src ", src.desc(), " must be (R, D)");
  check_index(idx, src, who);
  const int64_t r = src.size(0), d = src.size(1), m = idx.numel();
  Tensor out = Tensor::empty({m, d}, src.dtype(), src.device());
#if RDD_WITH_CUDA
  if (src.device().is_cuda()) {
    cuda::take_rows(src.data<float>(), idx.data<int64_t>(), out.data<float>(), m, d, stream_of(src));
    return out;
  }
#endif
  const std::vector<int64_t> ix = host_indices(idx);
  with_float_type(src.dtype(), [&](auto t) {
    using T = decltype(t);
    for (int64_t i = 0; i < m; ++i) {
      RDD_CHECK(ix[size_t(i)] >= 0 && ix[size_t(i)] < r, who, ": row ", ix[size_t(i)], " outside ", r, " rows");
      std::copy(src.data<T>() + ix[size_t(i)] * d, src.data<T>() + (ix[size_t(i)] + 1) * d, out.data<T>() + i * d);
    }
  });
  return out;
}

void put_rows(Tensor& dst, const Tensor& idx, const Tensor& rows) {
  const char* who = "put_rows";
  require_float_compute(dst, who, "dst");
  RDD_CHECK(dst.ndim() == 2, who, ": dst ", dst.desc(), " must be (R, D)");
  check_index(idx, dst, who);
  const int64_t r = dst.size(0), d = dst.size(1), m = idx.numel();
  RDD_CHECK(rows.ndim() == 2 && rows.size(0) == m && rows.size(1) == d && rows.dtype() == dst.dtype(), who, ": rows ",
            rows.desc(), " for ", m, " indices into ", dst.desc());
  require_same_device(rows, dst, who);
#if RDD_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::put_rows(dst.data<float>(), idx.data<int64_t>(), rows.data<float>(), m, d, stream_of(dst));
    return;
  }
#endif
  const std::vector<int64_t> ix = host_indices(idx);
  with_float_type(dst.dtype(), [&](auto t) {
    using T = decltype(t);
    for (int64_t i = 0; i < m; ++i) {
      RDD_CHECK(ix[size_t(i)] >= 0 && ix[size_t(i)] < r, who, ": row ", ix[size_t(i)], " outside ", r, " rows");
      std::copy(rows.data<T>() + i * d, rows.data<T>() + (i + 1) * d, dst.data<T>() + ix[size_t(i)] * d);
    }
  });
}

Tensor class_means(const Tensor& f, const Tensor& labels, const Tensor& image, const Tensor& cls) {
  const char* who = "class_means";
  require_float_compute(f, who, "f");
  RDD_CHECK(f.ndim() == 3, who, ": f ", f.desc(), " must be (N, D, P)");
  require_dtype(labels, DType::i32, who, "labels");
  require_same_device(labels, f, who);
  RDD_CHECK(labels.numel() == f.size(0) * f.size(2), who, ": labels ", labels.desc(), " for ", f.desc());
  check_index(image, f, who);
  check_index(cls, f, who);
  RDD_CHECK(image.numel() == cls.numel(), who, ": ", image.numel(), " images for ", cls.numel(), " classes");
  const int64_t n = f.size(0), d = f.size(1), p = f.size(2), e = image.numel();
  Tensor out = Tensor::empty({e, d}, f.dtype(), f.device());
#if RDD_WITH_CUDA
  if (f.device().is_cuda()) {
    cuda::class_means(f.data<float>(), labels.data<int32_t>(), image.data<int64_t>(), cls.data<int64_t>(),
                      out.data<float>(), e, d, p, stream_of(f));
    return out;
  }
#endif
  const std::vector<int64_t> im = host_indices(image), cl = host_indices(cls);
  const int32_t* y = labels.data<int32_t>();
  with_float_type(f.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* pf = f.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < e; ++i) {
      RDD_CHECK(im[size_t(i)] >= 0 && im[size_t(i)] < n, who, ": image ", im[size_t(i)], " outside ", n);
      const int64_t b = im[size_t(i)];
      for (int64_t k = 0; k < d; ++k) {
        T s = 0;
        int64_t count = 0;
        for (int64_t q = 0; q < p; ++q)
          if (y[b * p + q] == cl[size_t(i)]) {
            s += pf[(b * d + k) * p + q];
            ++count;
          }
        po[i * d + k] = count > 0 ? s / T(count) : T(0);
      }
    }
  });
  return out;
}

}  // namespace rdd::method
