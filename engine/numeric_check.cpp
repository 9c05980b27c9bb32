#include "engine/numeric_check.h"

#include <cmath>
#include <cstdio>
#include <vector>

namespace rdd {

Tolerance default_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f64: return {1e-10, 1e-9};
    case DType::f32: return {1e-5, 1e-4};
    case DType::f16: return {1e-3, 1e-3};
    case DType::bf16: return {1e-2, 1e-2};
    default: return {0, 0};  // integers: exact
  }
}

std::string Comparison::message() const {
  char buf[320];
  if (ok) {
    std::snprintf(buf, sizeof buf, "ok: %lld values, max abs err %.3g, max rel err %.3g", (long long)count,
                  max_abs_err, max_rel_err);
  } else {
    std::snprintf(buf, sizeof buf,
                  "%lld of %lld values outside tolerance; max abs err %.3g, max rel err %.3g; worst at flat index "
                  "%lld: got %.9g, want %.9g",
                  (long long)mismatches, (long long)count, max_abs_err, max_rel_err, (long long)worst_index,
                  got_at_worst, want_at_worst);
  }
  return buf;
}

Comparison compare_tensors(const Tensor& got, const Tensor& want, Tolerance tol) {
  RDD_CHECK(got.defined() && want.defined(), "compare_tensors: undefined tensor");
  RDD_CHECK(got.shape() == want.shape(), "compare_tensors: shapes differ: got ", got.desc(), ", want ", want.desc());
  // Compare in logical order: bring both to NCHW when their layouts differ.
  Tensor g = got, w = want;
  if (g.ndim() == 4 && g.layout() != w.layout()) {
    if (g.layout() != Layout::NCHW) g = g.to_layout(Layout::NCHW);
    if (w.layout() != Layout::NCHW) w = w.to_layout(Layout::NCHW);
  }
  const std::vector<double> a = g.to_vector<double>(), b = w.to_vector<double>();
  Comparison c;
  c.count = int64_t(a.size());
  double worst_violation = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::fabs(a[i] - b[i]);
    const double rel = err / std::max(std::fabs(b[i]), 1e-30);
    const double allowed = tol.atol + tol.rtol * std::fabs(b[i]);
    const bool bad = !(err <= allowed) || std::isnan(a[i]) != std::isnan(b[i]);
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (bad) ++c.mismatches;
    if (!std::isnan(err)) {
      c.max_abs_err = std::max(c.max_abs_err, err);
      c.max_rel_err = std::max(c.max_rel_err, rel);
    }
    const double violation = std::isnan(err) ? INFINITY : err - allowed;
    if (violation > worst_violation || c.worst_index < 0) {
      worst_violation = violation;
      c.worst_index = int64_t(i);
      c.got_at_worst = a[i];
      c.want_at_worst = b[i];
    }
  }
  c.ok = c.mismatches == 0;
  return c;
}

Tensor numeric_gradient(Tensor& x, const std::function<double()>& loss, double eps) {
  RDD_CHECK(x.device().is_cpu() && (x.dtype() == DType::f32 || x.dtype() == DType::f64),
            "numeric_gradient: x must be a CPU f32 or f64 tensor, got ", x.desc());
  Tensor grad = Tensor::empty(x.shape(), DType::f64);
  double* g = grad.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    // Set x_i = orig ± eps and divide by the step actually taken (f32 rounds orig ± eps).
    auto set = [&](double v) -> double {
      if (x.dtype() == DType::f32) return double(x.data<float>()[i] = float(v));
      return x.data<double>()[i] = v;
    };
    const double orig = x.dtype() == DType::f32 ? double(x.data<float>()[i]) : x.data<double>()[i];
    const double hi = set(orig + eps);
    const double up = loss();
    const double lo = set(orig - eps);
    const double down = loss();
    set(orig);
    g[i] = (up - down) / (hi - lo);
  }
  return grad;
}

double dot(const Tensor& a, const Tensor& b) {
  RDD_CHECK(a.numel() == b.numel(), "dot: ", a.desc(), " and ", b.desc(), " differ in size");
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

}  // namespace rdd
