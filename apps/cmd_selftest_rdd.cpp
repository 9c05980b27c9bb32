// `rdd selftest` group "rdd": the losses of rdd/losses.h — finite-difference gradients (f64) of CE through
// the resize, KD, CWD, TFE and TSE, the OHEM min-kept rule on a closed-form case, and (with a GPU) every
// loss and the radix select against the CPU reference. The PyTorch comparison is `--golden` (golden.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "apps/cmd_selftest.h"
#include "engine/numeric_check.h"
#include "engine/philox.h"
#include "engine/rng.h"
#include "rdd/losses.h"

namespace rdd::apps {

namespace {
using namespace rdd::method;

Tensor uniform(const Shape& shape, uint64_t seed, uint64_t offset, double lo, double hi, DType d = DType::f32) {
  Tensor t = Tensor::empty(shape, d);
  fill_uniform(t, lo, hi, seed, offset);
  return t;
}

Tensor labels_of(const Shape& shape, int classes, uint64_t seed, double ignore_fraction) {
  Tensor t = Tensor::empty(shape, DType::i32);
  int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = philox::uniform(seed, 77, uint64_t(i)) < ignore_fraction
               ? -1
               : int32_t(philox::u32(seed, 78, uint64_t(i)) % uint32_t(classes));
  return t;
}

CheckRow row(const std::string& check, const std::string& device, const Comparison& c, Tolerance tol) {
  return {"rdd", check, device, c.max_abs_err, tol.atol, c.ok, c.ok ? "" : c.message()};
}

CheckRow scalar_row(const std::string& check, const std::string& device, double got, double want, double rtol) {
  const double err = std::abs(got - want) / std::max(1.0, std::abs(want));
  const bool ok = std::isfinite(got) && err <= rtol;
  return {"rdd", check, device, err, rtol, ok, ok ? "" : "got " + std::to_string(got) + ", want " + std::to_string(want)};
}

// Finite differences of loss(x) against `analytic` (f64, CPU).
CheckRow fd_row(const std::string& check, Tensor& x, const std::function<double()>& loss, const Tensor& analytic) {
  const Tolerance tol{1e-8, 1e-6};
  return row(check, "cpu", compare_tensors(analytic, numeric_gradient(x, loss, 1e-6), tol), tol);
}
}  // namespace

std::vector<CheckRow> selftest_rdd(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  const uint64_t seed = o.seed;
  // Small f64 inputs; labels 13x17 from 4x5 logits (not a multiple).
  const Tensor labels = labels_of({2, 13, 17}, 5, seed, 0.15);
  Tensor sm = uniform({2, 5, 4, 5}, seed, 1, -2, 2, DType::f64), sa = uniform({2, 5, 4, 5}, seed, 2, -2, 2, DType::f64);
  const Tensor tm = uniform({2, 5, 4, 5}, seed, 3, -2, 2, DType::f64), ta = uniform({2, 5, 4, 5}, seed, 4, -2, 2, DType::f64);
  {
    CrossEntropyOptions ce;
    ce.class_weights = Tensor::from_vector<float>({0.8f, 1.2f, 1.f, 0.6f, 1.5f}, {5});
    ce.reduction = CEReduction::weighted_mean;
    rows.push_back(fd_row("CE (resize, class weights) dL/dz f64 FD", sm,
                          [&] { return pixel_cross_entropy(sm, labels, ce).loss; },
                          pixel_cross_entropy(sm, labels, ce).grad));
  }
  rows.push_back(fd_row("KD T=4 dL/dz f64 FD", sm, [&] { return logit_kd(sm, tm, 4).loss; }, logit_kd(sm, tm, 4).grad));
  rows.push_back(fd_row("CWD tau=4 dL/dz f64 FD", sm, [&] { return channel_wise_kd(sm, tm, 4).loss; },
                        channel_wise_kd(sm, tm, 4).grad));
  rows.push_back(fd_row("TFE task dL/dz_aux f64 FD", sa, [&] { return tfe_task_loss(sm, sa, tm, ta, labels).total; },
                        tfe_task_loss(sm, sa, tm, ta, labels).grad_aux));
  {  // larger logits, so that confident pixels exist and the student's and teacher's masks differ
    Tensor s6 = uniform({2, 5, 4, 5}, seed, 10, -6, 6, DType::f64), sa6 = uniform({2, 5, 4, 5}, seed, 11, -6, 6, DType::f64);
    const Tensor t6 = uniform({2, 5, 4, 5}, seed, 12, -6, 6, DType::f64), ta6 = uniform({2, 5, 4, 5}, seed, 13, -6, 6, DType::f64);
    TseOptions tse;
    tse.min_kept = 60;
    const TaskLoss l = tse_task_loss(s6, sa6, t6, ta6, labels, tse);
    rows.push_back({"rdd", "TSE xor selection is not empty", "cpu", 0, 0, l.main > 0 && l.aux > 0,
                    "main " + std::to_string(l.main) + ", aux " + std::to_string(l.aux)});
    rows.push_back(fd_row("TSE xor task dL/dz_main f64 FD", s6,
                          [&] { return tse_task_loss(s6, sa6, t6, ta6, labels, tse).total; }, l.grad_main));
  }
  {  // OHEM: min_kept = 4 of GT-probs {0.95, 0.1, 0.9, 0.5, 0.5, 1(ignored)} raises 0.7 to 0.9
    const Tensor gt = Tensor::from_vector<float>({0.95f, 0.1f, 0.9f, 0.5f, 0.5f, 1.f}, {1, 2, 3});
    rows.push_back(scalar_row("OHEM min-kept threshold (closed form)", "cpu", ohem_threshold(gt, {0.7, 4}), 0.9, 1e-7));
  }
  if (!o.gpu) return rows;

  const Device g = Device::cuda(0);
  const std::string gs = device_label(g);
  const Tolerance tol{2e-6, 1e-4};
  const Tensor big_labels = labels_of({2, 97, 121}, 19, seed + 1, 0.1);
  const Tensor s32 = uniform({2, 19, 13, 16}, seed, 5, -8, 8), t32 = uniform({2, 19, 13, 16}, seed, 6, -8, 8);
  const Tensor sa32 = uniform({2, 19, 13, 16}, seed, 7, -8, 8), ta32 = uniform({2, 19, 13, 16}, seed, 8, -8, 8);
  const Tensor sg = s32.to(g), tg = t32.to(g), sag = sa32.to(g), tag = ta32.to(g), lg = big_labels.to(g);
  {
    const LossGrad c = logit_kd(s32, t32, 1), d = logit_kd(sg, tg, 1);
    rows.push_back(scalar_row("KD value vs CPU", gs, d.loss, c.loss, 1e-5));
    rows.push_back(row("KD dL/dz vs CPU", gs, compare_tensors(d.grad, c.grad, tol), tol));
    const LossGrad e = channel_wise_kd(s32, t32, 4), f = channel_wise_kd(sg, tg, 4);
    rows.push_back(scalar_row("CWD value vs CPU", gs, f.loss, e.loss, 1e-5));
    rows.push_back(row("CWD dL/dz vs CPU", gs, compare_tensors(f.grad, e.grad, tol), tol));
  }
  {
    const TaskLoss c = tfe_task_loss(s32, sa32, t32, ta32, big_labels), d = tfe_task_loss(sg, sag, tg, tag, lg);
    rows.push_back(scalar_row("TFE task value vs CPU", gs, d.total, c.total, 1e-5));
    rows.push_back(row("TFE dL/dz_main vs CPU", gs, compare_tensors(d.grad_main, c.grad_main, tol), tol));
  }
  {
    TseOptions o2;
    o2.min_kept = 3000;
    o2.class_weights = cityscapes_class_weights();
    const TaskLoss c = tse_task_loss(s32, sa32, t32, ta32, big_labels, o2), d = tse_task_loss(sg, sag, tg, tag, lg, o2);
    rows.push_back(scalar_row("TSE xor task value vs CPU", gs, d.total, c.total, 1e-5));
    rows.push_back(row("TSE dL/dz_aux vs CPU", gs, compare_tensors(d.grad_aux, c.grad_aux, tol), tol));
  }
  {  // radix select vs nth_element on data with many ties
    Tensor v = uniform({1 << 20}, seed, 9, 0, 1);
    float* p = v.data<float>();
    for (int64_t i = 0; i < v.numel(); i += 4) p[i] = float(int(p[i] * 16)) / 16;
    std::vector<float> host(p, p + v.numel());
    const int64_t k = 100000;
    std::nth_element(host.begin(), host.begin() + (k - 1), host.end());
    const double got = kth_smallest(v.to(g), k);
    rows.push_back({"rdd", "radix select k-th vs nth_element", gs, std::abs(got - host[size_t(k - 1)]), 0,
                    got == double(host[size_t(k - 1)]), "got " + std::to_string(got)});
  }
  return rows;
}

}  // namespace rdd::apps
