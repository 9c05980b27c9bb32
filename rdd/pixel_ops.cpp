// CPU reference and device dispatch of rdd/pixel_ops.h.
#include "rdd/pixel_ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/thread_pool.h"
#include "rdd/pixel_math.h"
#include "rdd/pixel_ops_cuda.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#include "engine/cuda_check.h"
#endif

namespace rdd::method {

namespace {

#if RDD_WITH_CUDA
cudaStream_t stream_of(const Tensor& t) { return cuda_context(t.device().index).compute_stream(); }
#endif

void check_labels_shape(const Tensor& logits, const Tensor& labels, const char* who) {
  require_dtype(labels, DType::i32, who, "labels");
  require_same_device(logits, labels, who);
  RDD_CHECK(labels.ndim() == 3 && labels.size(0) == logits.size(0) && labels.size(1) == logits.size(2) &&
                labels.size(2) == logits.size(3),
            who, ": labels ", labels.desc(), " do not match logits ", logits.desc(), " (expected (N, H, W) = [",
            logits.size(0), ",", logits.size(2), ",", logits.size(3), "])");
}

[[noreturn]] void bad_label(const char* who, const Tensor& labels, int64_t index, int c, int ignore_index) {
  const int64_t hw = labels.size(1) * labels.size(2);
  const int32_t value = labels.device().is_cpu() ? labels.data<int32_t>()[index]
                                                 : labels.view({-1}).slice(index, index + 1).to_vector<int32_t>()[0];
  fail(who, ": label value ", value, " found at (n=", index / hw, ", y=", (index % hw) / labels.size(2),
       ", x=", index % labels.size(2), ") is not a class id in [0, ", c, ") nor the ignore value ", ignore_index);
}

// CPU kernels run over ranges of flat pixel indices (i = n·HW + p), so they use every thread whatever N is.
constexpr int64_t kPixelGrain = 4096;

template <class T>
PixelCEStats ce_stats_cpu(const Tensor& logits, const Tensor& labels, int ignore_index, const char* who) {
  // logits: (N, C, H, W); labels: (N, H, W)
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.size(2) * logits.size(3);
  PixelCEStats r{Tensor::empty(labels.shape(), logits.dtype()), Tensor::empty(labels.shape(), logits.dtype()), 0};
  const T* z = logits.data<T>();
  const int32_t* y = labels.data<int32_t>();
  T* ce = r.ce.data<T>();
  T* gtp = r.gt_prob.data<T>();
  for (int64_t i = 0; i < n * hw; ++i)
    if (y[i] != ignore_index && (y[i] < 0 || y[i] >= c)) bad_label(who, labels, i, int(c), ignore_index);
  std::atomic<int64_t> valid{0};
  parallel_for(
      0, n * hw,
      [&](int64_t b, int64_t e) {
        int64_t local = 0;
        for (int64_t i = b; i < e; ++i) {
          if (y[i] == ignore_index) {
            ce[i] = T(0);
            gtp[i] = T(1);
            continue;
          }
          ++local;
          pixel_math::ce_pixel(z, int(y[i]), i, c, hw, ce[i], gtp[i]);
        }
        valid += local;
      },
      kPixelGrain);
  r.num_valid = valid.load();
  return r;
}

template <class T>
Tensor ce_grad_cpu(const Tensor& logits, const Tensor& labels, const Tensor& coef, double scale, int ignore_index) {
  // logits, dz: (N, C, H, W); labels, coef: (N, H, W)
  const int64_t n = logits.size(0), c = logits.size(1), hw = logits.size(2) * logits.size(3);
  Tensor dz = Tensor::empty(logits.shape(), logits.dtype());
  const T* z = logits.data<T>();
  const int32_t* y = labels.data<int32_t>();
  const T* w = coef.data<T>();
  T* d = dz.data<T>();
  parallel_for(
      0, n * hw,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          pixel_math::ce_grad_pixel(z, d, int(y[i]), y[i] == ignore_index, T(scale) * w[i], i, c, hw);
      },
      kPixelGrain);
  return dz;
}

template <class T>
KLRows kl_rows_cpu(const Tensor& teacher, const Tensor& student, double temperature, int64_t outer, int64_t len,
                   int64_t inner, double grad_scale, bool need_grad) {
  KLRows r;
  r.kl = Tensor::empty({outer * inner}, student.dtype());
  if (need_grad) r.grad = Tensor::empty(student.shape(), student.dtype());
  const T* t = teacher.data<T>();
  const T* s = student.data<T>();
  T* kl = r.kl.data<T>();
  T* g = need_grad ? r.grad.data<T>() : nullptr;
  const T inv_t = T(1) / T(temperature);
  parallel_for(0, outer * inner, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row)
      kl[row] = pixel_math::kl_row(t, s, inv_t, row, len, inner, T(grad_scale), g);
  });
  return r;
}

template <class T>
Tensor tse_selection_cpu(const Tensor& gs, double thr_s, const Tensor& gt, double thr_t, const Tensor& labels,
                         int ignore_index, TseMode mode) {
  Tensor sel = Tensor::empty(gs.shape(), gs.dtype());
  const T* a = gs.data<T>();
  const T* b = gt.defined() ? gt.data<T>() : nullptr;
  const int32_t* y = labels.data<int32_t>();
  T* o = sel.data<T>();
  const T ts = T(thr_s), tt = T(thr_t);
  for (int64_t i = 0; i < gs.numel(); ++i)
    o[i] = pixel_math::tse_select(a[i], ts, b, tt, y[i] != ignore_index, int(mode), i) ? T(1) : T(0);
  return sel;
}

}  // namespace

Tensor compute_dtype_view(const Tensor& logits, const char* who, const char* what) {
  RDD_CHECK(logits.defined(), who, ": ", what, " is undefined");
  require_ndim(logits, 4, who, what);
  require_layout(logits, Layout::NCHW, who, what);
  if (logits.dtype() == DType::bf16 || logits.dtype() == DType::f16) return logits.to_dtype(DType::f32);
  require_float_compute(logits, who, what);
  return logits;
}

PixelCEStats pixel_ce_stats(const Tensor& logits, const Tensor& labels, int ignore_index, const char* who) {
  require_float_compute(logits, who, "logits");
  check_labels_shape(logits, labels, who);
  RDD_CHECK(logits.size(1) >= 1, who, ": logits ", logits.desc(), " have no classes");
#if RDD_WITH_CUDA
  if (logits.device().is_cuda()) {
    PixelCEStats r{Tensor::empty(labels.shape(), DType::f32, logits.device()),
                   Tensor::empty(labels.shape(), DType::f32, logits.device()), 0};
    // counters[0]: valid pixels; counters[1]: first pixel index with a bad label (atomicMin), starting at
    // numel (exact in the fill's double) = none. Filled on the device: no upload that waits for the stream.
    Tensor counters = Tensor::empty({2}, DType::i64, logits.device());
    counters.slice(0, 1).zero_();
    counters.slice(1, 2).fill_(double(labels.numel()));
    cuda::ce_stats(logits.data<float>(), labels.data<int32_t>(), r.ce.data<float>(), r.gt_prob.data<float>(),
                   logits.size(0), int(logits.size(1)), logits.size(2) * logits.size(3), ignore_index,
                   reinterpret_cast<unsigned long long*>(counters.data<int64_t>()), stream_of(logits));
    const std::vector<int64_t> c = counters.to_vector<int64_t>();
    if (c[1] >= 0 && c[1] < labels.numel()) bad_label(who, labels, c[1], int(logits.size(1)), ignore_index);
    r.num_valid = c[0];
    return r;
  }
#endif
  if (logits.dtype() == DType::f64) return ce_stats_cpu<double>(logits, labels, ignore_index, who);
  return ce_stats_cpu<float>(logits, labels, ignore_index, who);
}

Tensor ce_coefficients(const Tensor& labels, const Tensor& class_weights, const Tensor& pixel_weights,
                       int ignore_index, DType dtype, const char* who) {
  require_dtype(labels, DType::i32, who, "labels");
  Tensor cw, pw;
  if (class_weights.defined()) {
    RDD_CHECK(class_weights.ndim() == 1, who, ": class weights ", class_weights.desc(), " must be 1-D (C)");
    cw = class_weights.device() == labels.device() ? class_weights : class_weights.to(labels.device());
    if (cw.dtype() != dtype) cw = cw.to_dtype(dtype);
  }
  if (pixel_weights.defined()) {
    RDD_CHECK(pixel_weights.shape() == labels.shape(), who, ": pixel weights ", pixel_weights.desc(),
              " do not match labels ", labels.desc());
    require_same_device(pixel_weights, labels, who);
    pw = pixel_weights.dtype() == dtype ? pixel_weights : pixel_weights.to_dtype(dtype);
  }
  // A label that indexes past the class weights was already refused by pixel_ce_stats; the CPU checks
  // again (free), the GPU gives such a pixel coefficient 0.
  Tensor coef = Tensor::empty(labels.shape(), dtype, labels.device());
#if RDD_WITH_CUDA
  if (labels.device().is_cuda()) {
    cuda::ce_coefficients(labels.data<int32_t>(), cw.defined() ? cw.data<float>() : nullptr,
                          cw.defined() ? int(cw.numel()) : 0, pw.defined() ? pw.data<float>() : nullptr, coef.data<float>(), labels.numel(), ignore_index,
                          stream_of(labels));
    return coef;
  }
#endif
  const int32_t* y = labels.data<int32_t>();
  auto fill = [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    const T* w = cw.defined() ? cw.data<T>() : nullptr;
    const T* p = pw.defined() ? pw.data<T>() : nullptr;
    for (int64_t i = 0; i < labels.numel(); ++i) {
      if (y[i] == ignore_index) {
        out[i] = T(0);
        continue;
      }
      RDD_CHECK(!w || (y[i] >= 0 && y[i] < cw.numel()), who, ": label value ", y[i], " has no class weight (",
                cw.numel(), " weights)");
      out[i] = (w ? w[y[i]] : T(1)) * (p ? p[i] : T(1));
    }
  };
  if (dtype == DType::f64) fill(coef.data<double>());
  else fill(coef.data<float>());
  return coef;
}

Tensor ce_logits_grad(const Tensor& logits, const Tensor& labels, const Tensor& coef, double scale, int ignore_index) {
  const char* who = "ce_logits_grad";
  require_float_compute(logits, who, "logits");
  check_labels_shape(logits, labels, who);
  RDD_CHECK(coef.shape() == labels.shape() && coef.dtype() == logits.dtype(), who, ": coefficients ", coef.desc(),
            " do not match labels ", labels.desc(), " / logits ", logits.desc());
  require_same_device(logits, coef, who);
#if RDD_WITH_CUDA
  if (logits.device().is_cuda()) {
    Tensor dz = Tensor::empty(logits.shape(), DType::f32, logits.device());
    cuda::ce_grad(logits.data<float>(), labels.data<int32_t>(), coef.data<float>(), float(scale), dz.data<float>(),
                  logits.size(0), int(logits.size(1)), logits.size(2) * logits.size(3), ignore_index,
                  stream_of(logits));
    return dz;
  }
#endif
  if (logits.dtype() == DType::f64) return ce_grad_cpu<double>(logits, labels, coef, scale, ignore_index);
  return ce_grad_cpu<float>(logits, labels, coef, scale, ignore_index);
}

KLRows kl_rows(const Tensor& teacher, const Tensor& student, double temperature, int64_t outer, int64_t len,
               int64_t inner, double grad_scale, bool need_grad) {
  const char* who = "kl_rows";
  require_float_compute(student, who, "student");
  RDD_CHECK(teacher.shape() == student.shape() && teacher.dtype() == student.dtype(), who, ": teacher ",
            teacher.desc(), " and student ", student.desc(), " differ");
  require_same_device(teacher, student, who);
  RDD_CHECK(outer * len * inner == student.numel() && len >= 1, who, ": (", outer, ", ", len, ", ", inner,
            ") does not cover ", student.desc());
  RDD_CHECK(temperature > 0, who, ": temperature ", temperature, " must be positive");
#if RDD_WITH_CUDA
  if (student.device().is_cuda()) {
    KLRows r;
    r.kl = Tensor::empty({outer * inner}, DType::f32, student.device());
    if (need_grad) r.grad = Tensor::empty(student.shape(), DType::f32, student.device());
    cuda::kl_rows(teacher.data<float>(), student.data<float>(), float(1.0 / temperature), outer, len, inner,
                  float(grad_scale), r.kl.data<float>(), need_grad ? r.grad.data<float>() : nullptr,
                  stream_of(student));
    return r;
  }
#endif
  if (student.dtype() == DType::f64)
    return kl_rows_cpu<double>(teacher, student, temperature, outer, len, inner, grad_scale, need_grad);
  return kl_rows_cpu<float>(teacher, student, temperature, outer, len, inner, grad_scale, need_grad);
}

double dot_all(const Tensor& a, const Tensor& b) {
  const char* who = "dot_all";
  require_float_compute(a, who, "a");
  if (b.defined()) {
    RDD_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype(), who, ": ", a.desc(), " vs ", b.desc());
    require_same_device(a, b, who);
  }
  if (a.numel() == 0) return 0;
#if RDD_WITH_CUDA
  if (a.device().is_cuda()) {
    Tensor scratch = Tensor::empty({cuda::kDotMaxBlocks + 1}, DType::f64, a.device());  // partials, then the sum
    double* p = scratch.data<double>();
    cuda::dot(a.data<float>(), b.defined() ? b.data<float>() : nullptr, a.numel(), p, p + cuda::kDotMaxBlocks,
              stream_of(a));
    return scratch.slice(cuda::kDotMaxBlocks, cuda::kDotMaxBlocks + 1).to_vector<double>()[0];
  }
#endif
  auto run = [&](auto* pa) {
    using T = std::remove_pointer_t<decltype(pa)>;
    const T* pb = b.defined() ? b.data<T>() : nullptr;
    double s = 0;
    for (int64_t i = 0; i < a.numel(); ++i) s += double(pa[i]) * (pb ? double(pb[i]) : 1.0);
    return s;
  };
  return a.dtype() == DType::f64 ? run(a.data<double>()) : run(a.data<float>());
}

double sum_all(const Tensor& x) { return dot_all(x, Tensor()); }

Tensor exp_neg(const Tensor& x) {
  require_float_compute(x, "exp_neg", "x");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    cuda::exp_neg(x.data<float>(), y.data<float>(), x.numel(), stream_of(x));
    return y;
  }
#endif
  auto run = [&](auto* px) {
    using T = std::remove_pointer_t<decltype(px)>;
    T* py = y.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = std::exp(-px[i]);
  };
  if (x.dtype() == DType::f64) run(x.data<double>());
  else run(x.data<float>());
  return y;
}

void axpy(Tensor& dst, const Tensor& src, double alpha) {
  const char* who = "axpy";
  require_float_compute(dst, who, "dst");
  RDD_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(), who, ": ", dst.desc(), " += ", src.desc());
  require_same_device(dst, src, who);
#if RDD_WITH_CUDA
  if (dst.device().is_cuda()) {
    cuda::axpy(dst.data<float>(), src.data<float>(), float(alpha), dst.numel(), stream_of(dst));
    return;
  }
#endif
  auto run = [&](auto* pd) {
    using T = std::remove_pointer_t<decltype(pd)>;
    const T* ps = src.data<T>();
    for (int64_t i = 0; i < dst.numel(); ++i) pd[i] += T(alpha) * ps[i];
  };
  if (dst.dtype() == DType::f64) run(dst.data<double>());
  else run(dst.data<float>());
}

double kth_smallest(const Tensor& values, int64_t k) {
  const char* who = "kth_smallest";
  require_float_compute(values, who, "values");
  RDD_CHECK(k >= 1 && k <= values.numel(), who, ": k = ", k, " is outside [1, ", values.numel(), "] for ",
            values.desc());
#if RDD_WITH_CUDA
  if (values.device().is_cuda()) {
    Tensor hist = Tensor::empty({256}, DType::i64, values.device());
    return detail::radix_select(k, [&](uint32_t prefix, uint32_t mask, int shift, std::vector<int64_t>& h) {
      hist.zero_();
      cuda::radix_histogram(values.data<float>(), values.numel(), prefix, mask, shift,
                            reinterpret_cast<unsigned long long*>(hist.data<int64_t>()), stream_of(values));
      h = hist.to_vector<int64_t>();
    });
  }
#endif
  auto run = [&](auto* p) {
    using T = std::remove_pointer_t<decltype(p)>;
    std::vector<T> v(p, p + values.numel());
    std::nth_element(v.begin(), v.begin() + (k - 1), v.end());
    return double(v[size_t(k - 1)]);
  };
  return values.dtype() == DType::f64 ? run(values.data<double>()) : run(values.data<float>());
}

namespace detail {

uint32_t float_order_key(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

float float_from_order_key(uint32_t key) {
  const uint32_t bits = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float radix_select(int64_t k, const std::function<void(uint32_t, uint32_t, int, std::vector<int64_t>&)>& histogram) {
  // After each pass the answer's key prefix grows by one byte, and `rank` becomes its rank among the
  // elements sharing that prefix.
  uint32_t prefix = 0, mask = 0;
  int64_t rank = k;
  std::vector<int64_t> h;
  for (int shift = 24; shift >= 0; shift -= 8) {
    h.assign(256, 0);
    histogram(prefix, mask, shift, h);
    RDD_CHECK(h.size() == 256, "radix_select: the histogram has ", h.size(), " bins, not 256");
    int bin = 0;
    while (bin < 255 && rank > h[size_t(bin)]) rank -= h[size_t(bin++)];
    RDD_CHECK(rank >= 1 && rank <= h[size_t(bin)], "radix_select: k = ", k, " is beyond the counted elements");
    prefix |= uint32_t(bin) << shift;
    mask |= 0xffu << shift;
  }
  return float_from_order_key(prefix);
}

}  // namespace detail

const char* tse_mode_name(TseMode m) {
  switch (m) {
    case TseMode::xor_mode: return "xor";
    case TseMode::or_mode: return "or";
    case TseMode::and_mode: return "and";
    case TseMode::ohem: return "ohem";
  }
  return "?";
}

TseMode parse_tse_mode(const std::string& s) {
  std::string l = s;
  for (char& ch : l) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (l == "xor") return TseMode::xor_mode;
  if (l == "or") return TseMode::or_mode;
  if (l == "and") return TseMode::and_mode;
  if (l == "ohem") return TseMode::ohem;
  fail("TSE mode '", s, "' is not one of xor, or, and, ohem");
}

Tensor tse_selection(const Tensor& gt_student, double thr_student, const Tensor& gt_teacher, double thr_teacher,
                     const Tensor& labels, int ignore_index, TseMode mode) {
  const char* who = "tse_selection";
  require_float_compute(gt_student, who, "student GT-probabilities");
  RDD_CHECK(gt_student.shape() == labels.shape(), who, ": ", gt_student.desc(), " vs labels ", labels.desc());
  RDD_CHECK(mode == TseMode::ohem || gt_teacher.defined(), who, ": mode ", tse_mode_name(mode),
            " needs the teacher's GT-probabilities");
  if (gt_teacher.defined())
    RDD_CHECK(gt_teacher.shape() == gt_student.shape() && gt_teacher.dtype() == gt_student.dtype(), who, ": teacher ",
              gt_teacher.desc(), " vs student ", gt_student.desc());
  require_same_device(gt_student, labels, who);
  if (gt_teacher.defined()) require_same_device(gt_student, gt_teacher, who);
  const Tensor gt = mode == TseMode::ohem ? Tensor() : gt_teacher;
#if RDD_WITH_CUDA
  if (gt_student.device().is_cuda()) {
    Tensor sel = Tensor::empty(labels.shape(), DType::f32, labels.device());
    cuda::tse_selection(gt_student.data<float>(), float(thr_student), gt.defined() ? gt.data<float>() : nullptr,
                        float(thr_teacher), labels.data<int32_t>(), ignore_index, int(mode), sel.data<float>(),
                        labels.numel(), stream_of(labels));
    return sel;
  }
#endif
  if (gt_student.dtype() == DType::f64)
    return tse_selection_cpu<double>(gt_student, thr_student, gt, thr_teacher, labels, ignore_index, mode);
  return tse_selection_cpu<float>(gt_student, thr_student, gt, thr_teacher, labels, ignore_index, mode);
}

}  // namespace rdd::method
