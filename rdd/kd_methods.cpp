// The comparison KD methods (see kd_methods.h), composed from rdd/kd_ops.h, rdd/pixel_ops.h and the layers'
// functional ops; device-agnostic.
#include "rdd/kd_methods.h"

#include "layers/conv2d.h"
#include "layers/matmul.h"
#include "layers/pooling.h"
#include "rdd/kd_ops.h"
#include "rdd/pixel_ops.h"

namespace rdd::method {

namespace {

void require_student(const Tensor& t, const char* who, const char* what) {
  RDD_CHECK(t.defined(), who, ": ", what, " is missing");
  require_ndim(t, 4, who, what);
  require_layout(t, Layout::NCHW, who, what);
  RDD_CHECK(t.dtype() == DType::f32 || (t.dtype() == DType::f64 && t.device().is_cpu()), who, ": ", what, " is ",
            t.desc(), "; expected f32 (or f64 on the CPU)");
}

// A teacher tensor in the student's dtype, on its device, with N, H, W equal (channels may differ unless
// same_channels).
Tensor teacher_like(const Tensor& t, const Tensor& s, const char* who, const char* what, bool same_channels = false) {
  RDD_CHECK(t.defined(), who, ": the teacher's ", what, " is missing");
  require_ndim(t, 4, who, what);
  require_same_device(t, s, who);
  const bool ok = t.size(0) == s.size(0) && t.size(2) == s.size(2) && t.size(3) == s.size(3) &&
                  (!same_channels || t.size(1) == s.size(1));
  RDD_CHECK(ok, who, ": the teacher's ", what, " ", t.desc(), " does not match the student's ", s.desc());
  if (t.dtype() == s.dtype()) return t;
  Tensor f = t.dtype() == DType::f32 || t.dtype() == DType::f64 ? t : t.to_dtype(DType::f32);
  return f.dtype() == s.dtype() ? f : f.to_dtype(s.dtype());
}

Tensor minus(const Tensor& a, const Tensor& b) {
  Tensor d = a.clone();
  axpy(d, b, -1.0);
  return d;
}

Tensor scaled(const Tensor& x, double alpha) {
  Tensor y = Tensor::zeros(x.shape(), x.dtype(), x.device());
  axpy(y, x, alpha);
  return y;
}

// mean((a − b)²) over every element and its gradient w.r.t. a (times grad_weight).
struct Mse {
  double value;
  Tensor grad;
};
Mse mean_squared(const Tensor& a, const Tensor& b, double grad_weight = 1.0) {
  const Tensor d = minus(a, b);
  const double n = double(a.numel());
  return {dot_all(d, d) / n, scaled(d, 2.0 * grad_weight / n)};
}

// Per-image attention map of AT / PSD: F.normalize(mean_c f²) over the h·w positions. (N, h·w)
struct Attention {
  Tensor f;        // the input (N, C, h, w)
  Tensor a;        // mean_c f², (N, h·w)
  L2Normalized n;  // the normalised map
  RowView rows;
};
Attention attention(const Tensor& f) {
  Attention at;
  at.f = f;
  at.a = channel_mean_square(f);
  at.rows = {f.size(0), f.size(2) * f.size(3), 1};
  at.n = l2_normalize_rows(at.a, at.rows);
  return at;
}
Tensor attention_backward(const Attention& at, const Tensor& dy) {
  return channel_mean_square_backward(l2_normalize_rows_backward(dy, at.n, at.rows), at.f);
}

// F (N, C, P) → S (N, P, P) = Fᵀ·F per image.
Tensor gram_positions(const Tensor& f, int64_t n, int64_t c, int64_t p) {
  Tensor s = Tensor::empty({n, p, p}, f.dtype(), f.device());
  layers::batched_gemm(f, f, s, {.batch = n, .m = p, .n = p, .k = c, .trans_a = true, .stride_a = c * p,
                                 .stride_b = c * p, .stride_c = p * p});
  return s;
}

// P (N, C, Q) → S (N, C, C) = P·Pᵀ per image.
Tensor gram_channels(const Tensor& x, int64_t n, int64_t c, int64_t q) {
  Tensor s = Tensor::empty({n, c, c}, x.dtype(), x.device());
  layers::batched_gemm(x, x, s, {.batch = n, .m = c, .n = c, .k = q, .trans_b = true, .stride_a = c * q,
                                 .stride_b = c * q, .stride_c = c * c});
  return s;
}

}  // namespace

FeatureLoss attention_transfer(const Tensor& f_s, const Tensor& f_t_in) {
  const char* who = "attention_transfer";
  require_student(f_s, who, "student feature");
  const Tensor f_t = teacher_like(f_t_in, f_s, who, "feature");
  const Attention as = attention(f_s), at = attention(f_t);
  const Mse m = mean_squared(as.n.y, at.n.y);
  return {m.value, attention_backward(as, m.grad), Tensor()};
}

FeatureLoss fitnet(const Tensor& f_s, const Tensor& f_t_in, const Tensor& w) {
  const char* who = "fitnet";
  require_student(f_s, who, "student feature");
  const Tensor f_t = teacher_like(f_t_in, f_s, who, "feature");
  RDD_CHECK(w.defined() && w.ndim() == 4 && w.size(0) == f_t.size(1) && w.size(1) == f_s.size(1) && w.size(2) == 1 &&
                w.size(3) == 1,
            who, ": the adapter ", w.defined() ? w.desc() : std::string("(undefined)"), " must be (", f_t.size(1), ", ",
            f_s.size(1), ", 1, 1)");
  const Tensor y = layers::conv2d_forward(f_s, w, Tensor(), {});
  const Mse m = mean_squared(y, f_t);
  const layers::Conv2dGrads g = layers::conv2d_backward(m.grad, f_s, w, {}, /*need_dx=*/true, /*has_bias=*/false);
  return {m.value, g.dx, g.dw};
}

FeatureLoss cwd_feature(const Tensor& f_s, const Tensor& f_t_in, const Tensor& w, double temperature) {
  const char* who = "cwd_feature";
  require_student(f_s, who, "student feature");
  RDD_CHECK(temperature > 0, who, ": temperature ", temperature, " must be positive");
  const Tensor f_t = teacher_like(f_t_in, f_s, who, "feature");
  const int64_t n = f_s.size(0), cs = f_s.size(1), ct = f_t.size(1), hw = f_s.size(2) * f_s.size(3);
  Tensor y = f_s;
  if (w.defined()) {
    RDD_CHECK(w.ndim() == 4 && w.size(0) == ct && w.size(1) == cs && w.size(2) == 1 && w.size(3) == 1, who,
              ": the adapter ", w.desc(), " must be (", ct, ", ", cs, ", 1, 1)");
    y = layers::conv2d_forward(f_s, w, Tensor(), {});
  } else {
    RDD_CHECK(cs == ct, who, ": student and teacher features have ", cs, " and ", ct,
              " channels: the feature variant needs its 1×1 adapter");
  }
  const double denom = double(n * cs);  // the released module divides by the student's N·C (see kd_methods.h)
  KLRows kl = kl_rows(f_t, y, temperature, n * ct, hw, 1, temperature / denom, true);
  FeatureLoss r;
  r.loss = sum_all(kl.kl) * temperature * temperature / denom;
  if (w.defined()) {
    const layers::Conv2dGrads g = layers::conv2d_backward(kl.grad, f_s, w, {}, true, false);
    r.grad = g.dx;
    r.grad_w = g.dw;
  } else {
    r.grad = kl.grad;
  }
  return r;
}

FeatureLoss structural_kd(const Tensor& f_s, const Tensor& f_t_in) {
  const char* who = "structural_kd";
  require_student(f_s, who, "student feature");
  const Tensor f_t = teacher_like(f_t_in, f_s, who, "feature");
  const layers::MaxPool2dOptions pool{2, 2, 0, true};
  Tensor idx;
  const Tensor ps = layers::maxpool2d_forward(f_s, pool, &idx);
  const Tensor pt = layers::maxpool2d_forward(f_t, pool);
  const int64_t n = ps.size(0), cs = ps.size(1), ct = pt.size(1), p = ps.size(2) * ps.size(3);
  const L2Normalized ns = l2_normalize_rows(ps, {n, cs, p}), nt = l2_normalize_rows(pt, {n, ct, p});
  const Tensor ss = gram_positions(ns.y, n, cs, p), st = gram_positions(nt.y, n, ct, p);
  const Mse m = mean_squared(ss, st);
  // d/dF of Σ dS·(FᵀF) = F·(dS + dSᵀ) = 2·F·dS (dS is symmetric).
  Tensor dn = Tensor::empty(ns.y.shape(), ns.y.dtype(), ns.y.device());
  layers::batched_gemm(ns.y, m.grad, dn, {.batch = n, .m = cs, .n = p, .k = p, .stride_a = cs * p, .stride_b = p * p,
                                          .stride_c = cs * p},
                       2.0);
  const Tensor dp = l2_normalize_rows_backward(dn, ns, {n, cs, p});
  return {m.value, layers::maxpool2d_backward(dp, idx, f_s.size(2), f_s.size(3), pool), Tensor()};
}

FeatureLoss ifvd(const Tensor& f_s, const Tensor& f_t_in, const Tensor& labels, int64_t k) {
  const char* who = "ifvd";
  require_student(f_s, who, "student feature");
  const Tensor f_t = teacher_like(f_t_in, f_s, who, "feature");
  RDD_CHECK(k >= 1, who, ": ", k, " classes");
  require_dtype(labels, DType::i32, who, "labels");
  require_same_device(labels, f_s, who);
  RDD_CHECK(labels.ndim() == 3 && labels.size(0) == f_s.size(0), who, ": labels ", labels.desc(), " for features ",
            f_s.desc());
  const int64_t n = f_s.size(0), h = f_s.size(2), w = f_s.size(3), p = h * w;
  const Tensor y = nearest_labels(labels, h, w).view({n, p});
  const Tensor onehot = one_hot_pixels(y, k, f_s.dtype());  // (N, P, K)
  const Tensor ones = Tensor::full({p}, 1.0, f_s.dtype(), f_s.device());
  Tensor counts = Tensor::empty({n, k}, f_s.dtype(), f_s.device());
  layers::batched_gemm(ones, onehot, counts,
                       {.batch = n, .m = 1, .n = k, .k = p, .stride_a = 0, .stride_b = p * k, .stride_c = k});
  constexpr double kCountEps = 1e-6;  // the released centre: Σ / (count + 1e-6)
  struct Side {
    Tensor f, ctr, cos;
  };
  auto side = [&](const Tensor& f4) {
    const int64_t c = f4.size(1);
    Side sd;
    sd.f = f4.view({n, c, p});
    Tensor sums = Tensor::empty({n, c, k}, f4.dtype(), f4.device());
    layers::batched_gemm(sd.f, onehot, sums,
                         {.batch = n, .m = c, .n = k, .k = p, .stride_a = c * p, .stride_b = p * k, .stride_c = c * k});
    const Tensor centres = divide_columns(sums, counts, kCountEps);
    sd.ctr = Tensor::empty({n, c, p}, f4.dtype(), f4.device());
    layers::batched_gemm(centres, onehot, sd.ctr,
                         {.batch = n, .m = c, .n = p, .k = k, .trans_b = true, .stride_a = c * k, .stride_b = p * k,
                          .stride_c = c * p});
    sd.cos = center_cosine(sd.f, sd.ctr, y, k);
    return sd;
  };
  const Side s = side(f_s), t = side(f_t);
  const Mse m = mean_squared(s.cos, t.cos);
  const int64_t c = f_s.size(1);
  CenterCosineGrads g = center_cosine_backward(m.grad, s.f, s.ctr, y, k);
  // The centre's gradient flows back to every pixel of its class: gf += (gc·onehot / (count + eps))·onehotᵀ.
  Tensor dsum = Tensor::empty({n, c, k}, f_s.dtype(), f_s.device());
  layers::batched_gemm(g.gc, onehot, dsum,
                       {.batch = n, .m = c, .n = k, .k = p, .stride_a = c * p, .stride_b = p * k, .stride_c = c * k});
  const Tensor dctr = divide_columns(dsum, counts, kCountEps);
  layers::batched_gemm(dctr, onehot, g.gf,
                       {.batch = n, .m = c, .n = p, .k = k, .trans_b = true, .stride_a = c * k, .stride_b = p * k,
                        .stride_c = c * p},
                       1.0, 1.0);
  return {m.value, g.gf.view(f_s.shape()), Tensor()};
}

DsdLoss double_similarity_kd(const Tensor& s_aux, const Tensor& s_feat, const Tensor& s_main, const Tensor& t_aux_in,
                             const Tensor& t_feat_in, const Tensor& t_main_in, double tau, double psd_weight,
                             double csd_weight) {
  const char* who = "double_similarity_kd";
  require_student(s_aux, who, "student aux logits");
  require_student(s_feat, who, "student feature");
  require_student(s_main, who, "student main logits");
  RDD_CHECK(tau > 0, who, ": temperature ", tau, " must be positive");
  RDD_CHECK(s_aux.dtype() == s_main.dtype() && s_feat.dtype() == s_main.dtype(), who, ": the student's outputs differ in dtype");
  const Tensor t_aux = teacher_like(t_aux_in, s_main, who, "aux logits");
  const Tensor t_feat = teacher_like(t_feat_in, s_main, who, "feature");
  const Tensor t_main = teacher_like(t_main_in, s_main, who, "main logits", true);
  for (const Tensor* x : {&s_aux, &s_feat})
    RDD_CHECK(x->size(0) == s_main.size(0) && x->size(2) == s_main.size(2) && x->size(3) == s_main.size(3), who,
              ": student output ", x->desc(), " and main logits ", s_main.desc(), " differ in N, h or w");
  DsdLoss r;
  // PSD.
  const Attention as[3] = {attention(s_aux), attention(s_feat), attention(s_main)};
  const Attention at[3] = {attention(t_aux), attention(t_feat), attention(t_main)};
  Tensor da[3];
  for (int k = 0; k < 3; ++k) da[k] = Tensor::zeros(as[k].n.y.shape(), s_main.dtype(), s_main.device());
  const RowView rows = as[0].rows;
  constexpr int kPairs = 3;
  for (int nn = 0; nn < 3; ++nn) {
    for (int mm = nn + 1; mm < 3; ++mm) {
      const L2Normalized r1s = l2_normalize_rows(minus(as[mm].n.y, as[nn].n.y), rows);
      const L2Normalized r2s = l2_normalize_rows(r1s.y, rows);
      const L2Normalized r1t = l2_normalize_rows(minus(at[mm].n.y, at[nn].n.y), rows);
      const L2Normalized r2t = l2_normalize_rows(r1t.y, rows);
      const Mse m = mean_squared(r2s.y, r2t.y, psd_weight / kPairs);
      r.psd += m.value / kPairs;
      const Tensor dr = l2_normalize_rows_backward(l2_normalize_rows_backward(m.grad, r2s, rows), r1s, rows);
      axpy(da[mm], dr, 1.0);
      axpy(da[nn], dr, -1.0);
    }
  }
  r.grad_aux = attention_backward(as[0], da[0]);
  r.grad_feature = attention_backward(as[1], da[1]);
  r.grad_main = attention_backward(as[2], da[2]);
  // CSD.
  const int64_t n = s_main.size(0), c = s_main.size(1), h = s_main.size(2), w = s_main.size(3);
  const Tensor ps = avg_pool_ceil(s_main, 2), pt = avg_pool_ceil(t_main, 2);
  const int64_t q = ps.size(2) * ps.size(3);
  const RowView pos{n * c, q, 1};
  const Tensor sms = softmax_rows(ps, pos, 1.0 / tau), smt = softmax_rows(pt, pos, 1.0 / tau);
  const Tensor gs = gram_channels(sms, n, c, q), gt = gram_channels(smt, n, c, q);
  const Mse m = mean_squared(gs, gt, csd_weight);
  r.csd = m.value;
  // d/dP of Σ dS·(P·Pᵀ) = (dS + dSᵀ)·P = 2·dS·P (dS symmetric).
  Tensor dsm = Tensor::empty(sms.shape(), sms.dtype(), sms.device());
  layers::batched_gemm(m.grad, sms, dsm,
                       {.batch = n, .m = c, .n = q, .k = c, .stride_a = c * c, .stride_b = c * q, .stride_c = c * q}, 2.0);
  r.grad_main_csd = avg_pool_ceil_backward(softmax_rows_backward(dsm, sms, pos, 1.0 / tau).view(ps.shape()), h, w, 2);
  axpy(r.grad_main, r.grad_main_csd, 1.0);
  return r;
}

DistLoss dist_kd(const Tensor& s, const Tensor& t_in, double beta, double gamma, double tau) {
  const char* who = "dist_kd";
  require_student(s, who, "student logits");
  const Tensor t = teacher_like(t_in, s, who, "logits", true);
  RDD_CHECK(tau > 0, who, ": temperature ", tau, " must be positive");
  const int64_t n = s.size(0), c = s.size(1), hw = s.size(2) * s.size(3);
  constexpr double kEps = 1e-8;
  const RowView classes{n, c, hw};
  const Tensor ps = softmax_rows(s, classes, 1.0 / tau), pt = softmax_rows(t, classes, 1.0 / tau);
  const double t2 = tau * tau;
  DistLoss r;
  // inter: one row per pixel (over classes).
  const PearsonRows inter = pearson_rows(ps, pt, classes, kEps, -beta * t2 / double(n * hw), true);
  r.inter = 1.0 - sum_all(inter.r) / double(n * hw);
  // intra: one row per class (over every pixel of the batch): class-major copies.
  const Tensor ps_c = swap_leading_dims(ps, n, c, hw), pt_c = swap_leading_dims(pt, n, c, hw);
  const PearsonRows intra = pearson_rows(ps_c, pt_c, {c, n * hw, 1}, kEps, -gamma * t2 / double(c), true);
  r.intra = 1.0 - sum_all(intra.r) / double(c);
  r.loss = t2 * (beta * r.inter + gamma * r.intra);
  Tensor dp = inter.grad;
  axpy(dp, swap_leading_dims(intra.grad, c, n, hw).view(dp.shape()), 1.0);
  r.grad = softmax_rows_backward(dp, ps, classes, 1.0 / tau);
  return r;
}

}  // namespace rdd::method
