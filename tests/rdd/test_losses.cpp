#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "harness.h"
#include "rdd/distill.h"
#include "rdd/losses.h"
#include "rdd/pixel_ops.h"

using namespace rdd;
using namespace rdd::method;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Tensor f64(const Shape& shape, uint64_t seed, double scale = 2.0) {
  return test::random_tensor(shape, seed, -scale, scale, DType::f64);
}

// Finite differences of a scalar loss of x against the analytic gradient (f64).
void check_fd(const std::string& what, Tensor& x, const std::function<double()>& loss, const Tensor& analytic) {
  test::check_gradient(what, x, loss, analytic, 1e-6, {1e-8, 1e-6});
}

}  // namespace

TEST_CASE("pixel cross-entropy: closed-form values for every reduction") {
  // Constant logits: CE = log C at every valid pixel.
  Tensor logits = Tensor::full({2, 4, 3, 5}, 0.75, DType::f64);
  Tensor labels = test::random_labels({2, 3, 5}, 4, 3, 0.3);
  int64_t valid = 0;
  for (int32_t v : labels.to_vector<int32_t>()) valid += v != -1;
  REQUIRE(valid > 0);
  REQUIRE(valid < labels.numel());
  const double log4 = std::log(4.0);
  CrossEntropyOptions o;
  CHECK(pixel_cross_entropy(logits, labels, o).loss == doctest::Approx(log4).epsilon(1e-12));
  o.reduction = CEReduction::mean_all;
  CHECK(pixel_cross_entropy(logits, labels, o).loss == doctest::Approx(log4 * double(valid) / 30).epsilon(1e-12));
  o.reduction = CEReduction::weighted_mean;
  o.class_weights = Tensor::from_vector<float>({0.5f, 2.f, 1.f, 3.f}, {4});
  CHECK(pixel_cross_entropy(logits, labels, o).loss == doctest::Approx(log4).epsilon(1e-12));
  // One pixel, two classes: CE = log(1 + e^(b − a)); the gradient is softmax − onehot.
  Tensor one = Tensor::from_vector<double>({0.3, -1.2}, {1, 2, 1, 1});
  Tensor y = Tensor::from_vector<int32_t>({0}, {1, 1, 1});
  const LossGrad r = pixel_cross_entropy(one, y);
  CHECK(r.loss == doctest::Approx(std::log1p(std::exp(-1.5))).epsilon(1e-12));
  const double p1 = 1 / (1 + std::exp(1.5));
  CHECK(r.grad.to_vector<double>()[0] == doctest::Approx(-p1).epsilon(1e-12));
  CHECK(r.grad.to_vector<double>()[1] == doctest::Approx(p1).epsilon(1e-12));
}

TEST_CASE("pixel cross-entropy: every pixel ignored gives 0 and a zero gradient, never NaN") {
  Tensor logits = f64({1, 3, 4, 4}, 2);
  Tensor labels = Tensor::full({1, 9, 11}, -1, DType::i32);
  for (CEReduction red : {CEReduction::mean_valid, CEReduction::weighted_mean, CEReduction::mean_all}) {
    CrossEntropyOptions o;
    o.reduction = red;
    const LossGrad r = pixel_cross_entropy(logits, labels, o);
    CHECK(r.loss == 0);
    for (double g : r.grad.to_vector<double>()) CHECK(g == 0);
  }
}

TEST_CASE("pixel cross-entropy: gradients through the resize match finite differences (f64)") {
  const Tensor labels = test::random_labels({2, 13, 17}, 5, 7, 0.2);  // not a multiple of the 4x6 logits
  Tensor logits = f64({2, 5, 4, 6}, 8);
  const Tensor cw = Tensor::from_vector<double>({0.8, 1.2, 1.0, 0.6, 1.5}, {5});
  const Tensor pw = test::random_tensor({2, 13, 17}, 9, 0.2, 1.0, DType::f64);
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    CrossEntropyOptions o;
    if (variant == 1) o.class_weights = cw, o.reduction = CEReduction::weighted_mean;
    if (variant == 2) o.pixel_weights = pw, o.reduction = CEReduction::mean_all;
    if (variant == 3) o.class_weights = cw, o.pixel_weights = pw, o.reduction = CEReduction::mean_valid;
    const LossGrad r = pixel_cross_entropy(logits, labels, o);
    check_fd("CE dL/dlogits", logits, [&] { return pixel_cross_entropy(logits, labels, o).loss; }, r.grad);
  }
}

TEST_CASE("pixel cross-entropy: a bad label id is an error naming the value and where it is") {
  Tensor logits = f64({2, 5, 3, 3}, 1);
  Tensor labels = test::random_labels({2, 3, 3}, 5, 2);
  labels.data<int32_t>()[9 + 4] = 7;  // image 1, y 1, x 1
  const std::string m = error_of([&] { pixel_cross_entropy(logits, labels); });
  CHECK(contains(m, "label value 7"));
  CHECK(contains(m, "(n=1, y=1, x=1)"));
  CHECK(contains(m, "[0, 5)"));
  labels.data<int32_t>()[13] = -2;
  CHECK(contains(error_of([&] { pixel_cross_entropy(logits, labels); }), "label value -2"));
  labels.data<int32_t>()[13] = 255;  // the other common ignore value is not ours
  CHECK(contains(error_of([&] { tse_pair_loss(logits, logits, labels, {}); }), "label value 255"));
  CHECK(contains(error_of([&] { pixel_cross_entropy(logits, Tensor::zeros({2, 3}, DType::i32)); }), "labels"));
  CHECK(contains(error_of([&] { pixel_cross_entropy(logits, labels.to_dtype(DType::f32)); }), "labels"));
}

TEST_CASE("OHEM threshold: min-kept raises the threshold to the k-th smallest GT-probability, never lowers it") {
  // GT-probabilities of 6 positions; the last is ignored (probability 1 by the released code's fill).
  const Tensor gt = Tensor::from_vector<float>({0.95f, 0.1f, 0.9f, 0.5f, 0.5f, 1.f}, {1, 2, 3});
  CHECK(ohem_threshold(gt, {0.7, 0}) == doctest::Approx(0.7));
  CHECK(ohem_threshold(gt, {0.7, 3}) == doctest::Approx(0.7));   // 3rd smallest 0.5 < 0.7
  CHECK(ohem_threshold(gt, {0.7, 4}) == doctest::Approx(0.9));   // 4th smallest 0.9 > 0.7
  CHECK(ohem_threshold(gt, {0.7, 6}) == doctest::Approx(1.0));   // reaches the ignored pixel's 1
  CHECK(ohem_threshold(gt, {0.7, 1000}) == doctest::Approx(1.0));  // k = min(N, min_kept)
  CHECK_THROWS_AS(ohem_threshold(gt, {0.7, -1}), Error);
}

TEST_CASE("OHEM mask: ties at the threshold are kept; min_kept above the valid count keeps every valid pixel") {
  // Labels at the logits' size (no resize). Four pixels share one GT-probability p = e^2/(e^2 + 2).
  Tensor logits = Tensor::full({1, 3, 2, 4}, 0.25, DType::f64);
  Tensor labels = Tensor::from_vector<int32_t>({0, 0, 0, 0, 1, 2, -1, 2}, {1, 2, 4});
  double* z = logits.data<double>();
  for (int p = 0; p < 4; ++p) z[0 * 8 + p] = 2.25;  // class 0 high at pixels 0..3 (label 0)
  z[1 * 8 + 4] = 1.0;                               // pixel 4: label 1, GT-prob e^0.75/(e^0.75 + 2)
  auto mask = [&](double thresh, int64_t min_kept) {
    return ohem_hard_mask(logits, labels, {thresh, min_kept}).to_vector<double>();
  };
  // min_kept = 4: sorted GT-probs = [1/3, 1/3, q, p, p, p, p, 1] → 4th smallest = p ≈ 0.787 > 0.7:
  // the threshold becomes p and all four tied pixels are kept (so 7 are hard, not 4).
  CHECK(mask(0.7, 4) == std::vector<double>({1, 1, 1, 1, 1, 1, 0, 1}));
  // Without min-kept only the pixels at or below 0.7 are hard.
  CHECK(mask(0.7, 0) == std::vector<double>({0, 0, 0, 0, 1, 1, 0, 1}));
  // min_kept above the 7 valid pixels (and above N): every valid pixel is hard, the ignored one never.
  CHECK(mask(0.7, 7) == std::vector<double>({1, 1, 1, 1, 1, 1, 0, 1}));
  CHECK(mask(0.7, 100) == std::vector<double>({1, 1, 1, 1, 1, 1, 0, 1}));
}

TEST_CASE("kth_smallest: the CPU reference") {
  const Tensor v = Tensor::from_vector<float>({3, -1, 2, 2, 7, -5, 2}, {7});
  const std::vector<double> want = {-5, -1, 2, 2, 2, 3, 7};
  for (int k = 1; k <= 7; ++k) CHECK(kth_smallest(v, k) == want[size_t(k - 1)]);
  CHECK_THROWS_AS(kth_smallest(v, 0), Error);
  CHECK_THROWS_AS(kth_smallest(v, 8), Error);
}

TEST_CASE("radix select (the GPU kth_smallest's logic, histogram pass emulated on the CPU) matches nth_element") {
  // The key map is order-preserving and invertible.
  const std::vector<float> ordered = {-INFINITY, -3e38f, -2.5f, -1e-30f, -0.f, 0.f, 1e-30f, 0.7f, 1.f, 3e38f, INFINITY};
  for (size_t i = 0; i + 1 < ordered.size(); ++i)
    CHECK(method::detail::float_order_key(ordered[i]) < method::detail::float_order_key(ordered[i + 1]));
  for (float f : ordered) CHECK(method::detail::float_from_order_key(method::detail::float_order_key(f)) == f);
  for (int64_t n : {int64_t(1), int64_t(2), int64_t(9), int64_t(5000)}) {
    Tensor v = test::random_tensor({n}, 100 + uint64_t(n), -2, 2);
    float* p = v.data<float>();
    for (int64_t i = 0; i < n; i += 2) p[i] = float(int(p[i] * 4)) / 4;  // exact ties, ±0
    if (n > 3) p[3] = -0.f;
    std::vector<float> sorted(p, p + n);
    std::sort(sorted.begin(), sorted.end());
    auto histogram = [&](uint32_t prefix, uint32_t mask, int shift, std::vector<int64_t>& h) {
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t key = method::detail::float_order_key(p[i]);
        if ((key & mask) == prefix) ++h[(key >> shift) & 0xffu];
      }
    };
    for (int64_t k = 1; k <= n; k += std::max<int64_t>(1, n / 37)) {
      CAPTURE(n);
      CAPTURE(k);
      CHECK(method::detail::radix_select(k, histogram) == sorted[size_t(k - 1)]);
    }
    CHECK(method::detail::radix_select(n, histogram) == sorted.back());
    CHECK_THROWS_AS(method::detail::radix_select(n + 1, histogram), Error);
  }
}

TEST_CASE("logit KD and CWD: closed forms and finite-difference gradients (f64)") {
  // Identical logits: both losses are 0 with a zero gradient.
  Tensor s = f64({2, 4, 3, 5}, 21);
  for (double T : {1.0, 4.0}) {
    const LossGrad kd = logit_kd(s, s, T);
    CHECK(std::abs(kd.loss) < 1e-12);
    CHECK(std::abs(channel_wise_kd(s, s, T).loss) < 1e-12);
  }
  // One pixel, two classes, T = 2: KL of two Bernoullis × T².
  Tensor a = Tensor::from_vector<double>({1.0, -1.0}, {1, 2, 1, 1}), b = Tensor::from_vector<double>({0.0, 2.0}, {1, 2, 1, 1});
  const double pt = 1 / (1 + std::exp(-1.0)), ps = 1 / (1 + std::exp(1.0));  // p(class 0) at T = 2
  const double kl = pt * std::log(pt / ps) + (1 - pt) * std::log((1 - pt) / (1 - ps));
  CHECK(logit_kd(b, a, 2.0).loss == doctest::Approx(4 * kl).epsilon(1e-12));
  // CWD of a (1, 1, 1, 2) map: softmax over the two positions — the same Bernoulli pair.
  CHECK(channel_wise_kd(b.view({1, 1, 1, 2}), a.view({1, 1, 1, 2}), 2.0).loss == doctest::Approx(4 * kl).epsilon(1e-12));
  const Tensor t = f64({2, 4, 3, 5}, 22);
  for (double T : {1.0, 4.0}) {
    CAPTURE(T);
    check_fd("KD dL/ds", s, [&] { return logit_kd(s, t, T).loss; }, logit_kd(s, t, T).grad);
    check_fd("CWD dL/ds", s, [&] { return channel_wise_kd(s, t, T).loss; }, channel_wise_kd(s, t, T).grad);
  }
}

TEST_CASE("TFE: the weight map is exp(-KL(aux || main)) upsampled, and the task loss gradients match finite differences") {
  const Tensor tm = f64({2, 4, 3, 4}, 31), ta = f64({2, 4, 3, 4}, 32);
  // Equal heads: RD = 1 everywhere.
  for (double v : tfe_weight_map(tm, tm, 9, 11).to_vector<double>()) CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
  // At the logits' size the map is exactly exp(−KL(aux ‖ main)) per pixel; the paper's direction differs.
  const std::vector<double> rd = tfe_weight_map(tm, ta, 3, 4).to_vector<double>();
  const std::vector<double> zm = tm.to_vector<double>(), za = ta.to_vector<double>();
  for (int p : {0, 5, 23}) {
    const int n = p / 12, q = p % 12;
    double sm = 0, sa = 0;
    for (int c = 0; c < 4; ++c) sm += std::exp(zm[size_t(n * 48 + c * 12 + q)]), sa += std::exp(za[size_t(n * 48 + c * 12 + q)]);
    double kl = 0;
    for (int c = 0; c < 4; ++c) {
      const double pa = std::exp(za[size_t(n * 48 + c * 12 + q)]) / sa, pm = std::exp(zm[size_t(n * 48 + c * 12 + q)]) / sm;
      kl += pa * std::log(pa / pm);
    }
    CHECK(rd[size_t(p)] == doctest::Approx(std::exp(-kl)).epsilon(1e-12));
  }
  CHECK(tfe_weight_map(tm, ta, 3, 4, TfeDirection::main_aux).to_vector<double>() != rd);
  // Task loss and its gradients w.r.t. the student's main and aux logits.
  const Tensor labels = test::random_labels({2, 17, 23}, 4, 33, 0.15);
  Tensor sm = f64({2, 4, 3, 4}, 34), sa = f64({2, 4, 3, 4}, 35);
  const TaskLoss l = tfe_task_loss(sm, sa, tm, ta, labels);
  CHECK(l.total == doctest::Approx(l.main + 0.4 * l.aux).epsilon(1e-12));
  check_fd("TFE dL/ds_main", sm, [&] { return tfe_task_loss(sm, sa, tm, ta, labels).total; }, l.grad_main);
  check_fd("TFE dL/ds_aux", sa, [&] { return tfe_task_loss(sm, sa, tm, ta, labels).total; }, l.grad_aux);
  // Without a student aux head: main only.
  const TaskLoss m = tfe_task_loss(sm, Tensor(), tm, ta, labels);
  CHECK(m.total == doctest::Approx(l.main).epsilon(1e-12));
  CHECK_FALSE(m.grad_aux.defined());
  CHECK(contains(error_of([&] { tfe_task_loss(sm, sa, tm, Tensor(), labels); }), "aux"));
}

TEST_CASE("TSE: modes combine the student's and teacher's OHEM masks; gradients match finite differences") {
  const Tensor labels = test::random_labels({2, 15, 19}, 5, 41, 0.1);
  Tensor s = f64({2, 5, 4, 5}, 42, 3.0);
  const Tensor t = f64({2, 5, 4, 5}, 43, 3.0);
  const Tensor cw = Tensor::from_vector<float>({0.9f, 1.1f, 1.0f, 0.7f, 1.3f}, {5});
  for (int64_t min_kept : {int64_t(0), int64_t(200)}) {
    const OhemOptions oo{0.7, min_kept};
    const std::vector<double> hs = ohem_hard_mask(s, labels, oo).to_vector<double>();
    const std::vector<double> ht = ohem_hard_mask(t, labels, oo).to_vector<double>();
    for (TseMode mode : {TseMode::xor_mode, TseMode::or_mode, TseMode::and_mode, TseMode::ohem}) {
      CAPTURE(tse_mode_name(mode));
      CAPTURE(min_kept);
      TseOptions o;
      o.mode = mode;
      o.min_kept = min_kept;
      o.class_weights = cw;
      // The loss equals a class-weighted CE over the selection computed by hand from the two masks.
      std::vector<float> sel(hs.size());
      for (size_t i = 0; i < hs.size(); ++i) {
        const bool a = hs[i] != 0, b = ht[i] != 0;
        sel[i] = mode == TseMode::xor_mode ? a != b : mode == TseMode::or_mode ? a || b : mode == TseMode::and_mode ? a && b : a;
      }
      CrossEntropyOptions ce;
      ce.class_weights = cw;
      ce.pixel_weights = Tensor::from_vector(sel, labels.shape()).to_dtype(DType::f64);
      ce.reduction = CEReduction::weighted_mean;
      const LossGrad want = pixel_cross_entropy(s, labels, ce);
      const LossGrad got = tse_pair_loss(s, t, labels, o);
      CHECK(want.loss > 0);
      CHECK(got.loss == doctest::Approx(want.loss).epsilon(1e-12));
      CHECK_TENSORS_CLOSE(got.grad, want.grad, Tolerance{1e-14, 1e-12});
      check_fd("TSE dL/ds", s, [&] { return tse_pair_loss(s, t, labels, o).loss; }, got.grad);
    }
  }
}

TEST_CASE("TSE: the teacher's logits may have another spatial size (each network is upsampled on its own)") {
  const Tensor labels = test::random_labels({1, 21, 26}, 4, 56, 0.1);
  const Tensor s = f64({1, 4, 3, 4}, 57, 4.0), t = f64({1, 4, 6, 7}, 58, 4.0);
  TseOptions o;
  o.min_kept = 0;
  const std::vector<double> hs = ohem_hard_mask(s, labels, {0.7, 0}).to_vector<double>();
  const std::vector<double> ht = ohem_hard_mask(t, labels, {0.7, 0}).to_vector<double>();
  std::vector<double> sel(hs.size());
  for (size_t i = 0; i < hs.size(); ++i) sel[i] = (hs[i] != 0) != (ht[i] != 0);
  CrossEntropyOptions ce;
  ce.pixel_weights = Tensor::from_vector(sel, labels.shape());
  ce.reduction = CEReduction::weighted_mean;
  const double want = pixel_cross_entropy(s, labels, ce).loss;
  CHECK(want > 0);
  CHECK(tse_pair_loss(s, t, labels, o).loss == doctest::Approx(want).epsilon(1e-12));
  CHECK_THROWS_AS(tse_pair_loss(s, f64({1, 5, 3, 4}, 59), labels, o), Error);  // classes must agree
}

TEST_CASE("TSE: an empty selection gives 0 and a zero gradient; aux pairs use the teacher's aux head") {
  const Tensor labels = test::random_labels({1, 9, 9}, 4, 51, 0.1);
  const Tensor s = f64({1, 4, 3, 3}, 52), t = f64({1, 4, 3, 3}, 53);
  TseOptions o;
  o.min_kept = 0;
  o.thresh = 0.0;  // nothing is at or below probability 0
  for (TseMode mode : {TseMode::xor_mode, TseMode::or_mode, TseMode::and_mode, TseMode::ohem}) {
    o.mode = mode;
    const LossGrad r = tse_pair_loss(s, t, labels, o);
    CHECK(r.loss == 0);
    for (double g : r.grad.to_vector<double>()) CHECK(g == 0);
  }
  o = TseOptions{};
  o.min_kept = 0;
  CHECK(tse_pair_loss(s, s, labels, o).loss == 0);  // identical masks: XOR is empty
  const Tensor sa = f64({1, 4, 3, 3}, 54), ta = f64({1, 4, 3, 3}, 55);
  const TaskLoss l = tse_task_loss(s, sa, t, ta, labels, o);
  CHECK(l.main == doctest::Approx(tse_pair_loss(s, t, labels, o).loss).epsilon(1e-12));
  CHECK(l.aux == doctest::Approx(tse_pair_loss(sa, ta, labels, o).loss).epsilon(1e-12));
  CHECK(l.total == doctest::Approx(l.main + 0.4 * l.aux).epsilon(1e-12));
  CHECK(contains(error_of([&] { tse_task_loss(s, sa, t, Tensor(), labels, o); }), "aux"));
}

TEST_CASE("schedule: TFE before warmup_iters (1-based), TSE from it, and the soft switch's linear blend") {
  RddConfig c;
  c.warmup_iters = 4000;
  CHECK(rdd_stage_mix(c, {1, 40000}).tfe == 1);
  CHECK(rdd_stage_mix(c, {3999, 40000}).tfe == 1);
  CHECK(rdd_stage_mix(c, {4000, 40000}).tse == 1);
  CHECK(rdd_stage_mix(c, {4000, 40000}).tfe == 0);
  c.soft_switch = true;
  CHECK(rdd_stage_mix(c, {4000, 40000}).tfe == doctest::Approx(1.0));
  CHECK(rdd_stage_mix(c, {22000, 40000}).tfe == doctest::Approx(0.5));
  CHECK(rdd_stage_mix(c, {22000, 40000}).tse == doctest::Approx(0.5));
  CHECK(rdd_stage_mix(c, {40000, 40000}).tfe == doctest::Approx(0.0));
  CHECK_THROWS_AS(rdd_stage_mix(c, {5000, 3000}), Error);
  c.soft_switch = false;
  c.warmup_iters = 0;
  CHECK(rdd_stage_mix(c, {1, 0}).tse == 1);
  CHECK_THROWS_AS(rdd_stage_mix(c, {0, 0}), Error);
  c.enabled = false;
  CHECK(rdd_stage_mix(c, {1, 0}).baseline == 1);
}

TEST_CASE("Distiller: terms add up, gradients accumulate across terms, and the soft switch blends TFE and TSE") {
  const Tensor labels = test::random_labels({2, 11, 13}, 4, 61, 0.1);
  NetOutputs s{f64({2, 4, 3, 4}, 62), f64({2, 4, 3, 4}, 63), Tensor()};
  NetOutputs t{f64({2, 4, 3, 4}, 64), f64({2, 4, 3, 4}, 65), Tensor()};
  RddConfig c;
  c.warmup_iters = 10;
  c.soft_switch = true;
  c.tse.min_kept = 50;
  Distiller d;
  d.add(std::make_unique<RddTaskTerm>(c));
  d.add(std::make_unique<LogitKDTerm>(0.5, 2.0));
  d.add(std::make_unique<ChannelWiseKDTerm>(3.0, 4.0));
  StudentGrads g;
  const StepInfo step{15, 30};  // λ = (15 − 30)/(10 − 30) = 0.75
  const LossTerms terms = d.compute(step, s, t, labels, g);
  TfeOptions tfe;
  const TaskLoss a = tfe_task_loss(s.main, s.aux, t.main, t.aux, labels, tfe);
  const TaskLoss b = tse_task_loss(s.main, s.aux, t.main, t.aux, labels, c.tse);
  const LossGrad kd = logit_kd(s.main, t.main, 2.0), cwd = channel_wise_kd(s.main, t.main, 4.0);
  CHECK(terms.value("task") == doctest::Approx(0.75 * a.total + 0.25 * b.total).epsilon(1e-12));
  CHECK(terms.value("kd") == doctest::Approx(kd.loss).epsilon(1e-12));
  CHECK(terms.value("cwd") == doctest::Approx(cwd.loss).epsilon(1e-12));
  CHECK(terms.total() == doctest::Approx(terms.value("task") + 0.5 * kd.loss + 3.0 * cwd.loss).epsilon(1e-12));
  CHECK(terms.value("task.tfe_share") == doctest::Approx(0.75));
  CHECK_THROWS_AS(terms.value("nope"), Error);
  Tensor want_main = Tensor::zeros(s.main.shape(), DType::f64);
  axpy(want_main, a.grad_main, 0.75);
  axpy(want_main, b.grad_main, 0.25);
  axpy(want_main, kd.grad, 0.5);
  axpy(want_main, cwd.grad, 3.0);
  CHECK_TENSORS_CLOSE(g.main, want_main, Tolerance{1e-14, 1e-12});
  Tensor want_aux = Tensor::zeros(s.aux.shape(), DType::f64);
  axpy(want_aux, a.grad_aux, 0.75);
  axpy(want_aux, b.grad_aux, 0.25);
  CHECK_TENSORS_CLOSE(g.aux, want_aux, Tolerance{1e-14, 1e-12});
  // The total's gradient w.r.t. the student main logits matches finite differences.
  check_fd("distiller dL/ds_main", s.main, [&] {
    StudentGrads scratch;
    return d.compute(step, s, t, labels, scratch).total();
  }, g.main);
}

TEST_CASE("bf16 logits are read through a conversion and computed in f32") {
  const Tensor labels = test::random_labels({1, 10, 12}, 5, 71, 0.1);
  const Tensor s = test::random_tensor({1, 5, 5, 6}, 72, -2, 2).to_dtype(DType::bf16);
  const Tensor t = test::random_tensor({1, 5, 5, 6}, 73, -2, 2).to_dtype(DType::bf16);
  const LossGrad a = pixel_cross_entropy(s, labels), b = pixel_cross_entropy(s.to_dtype(DType::f32), labels);
  CHECK(a.loss == b.loss);
  CHECK(a.grad.dtype() == DType::f32);
  CHECK(logit_kd(s, t, 1.0).loss == logit_kd(s.to_dtype(DType::f32), t.to_dtype(DType::f32), 1.0).loss);
  CHECK_THROWS_AS(pixel_cross_entropy(s.to_dtype(DType::i32), labels), Error);
}

TEST_CASE("Cityscapes class weights are the released code's 19") {
  const std::vector<float> w = cityscapes_class_weights().to_vector<float>();
  REQUIRE(w.size() == 19);
  CHECK(w[0] == 0.8373f);
  CHECK(w[17] == 1.1529f);
  CHECK(w[18] == 1.0507f);
}

// ---------------------------------------------------------------------------------------------------
// GPU parity
// ---------------------------------------------------------------------------------------------------

GPU_TEST_CASE("radix select on the GPU matches std::nth_element (ties, negatives, sizes)") {
  const Device g = Device::cuda(0);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(100003), int64_t(2100000)}) {
    Tensor v = test::random_tensor({n}, 81 + uint64_t(n), -1, 1);
    float* p = v.data<float>();
    for (int64_t i = 0; i < n; i += 3) p[i] = float(int(p[i] * 8)) / 8;  // many exact ties, ±0 too
    if (n > 10) p[5] = -0.f;
    std::vector<float> sorted(p, p + n);
    std::sort(sorted.begin(), sorted.end());
    const Tensor vg = v.to(g);
    for (int64_t k : {int64_t(1), n / 3 + 1, n / 2 + 1, n}) {
      CAPTURE(n);
      CAPTURE(k);
      CHECK(kth_smallest(vg, k) == double(sorted[size_t(k - 1)]));
      CHECK(kth_smallest(v, k) == double(sorted[size_t(k - 1)]));
    }
  }
  // GT-probabilities with ignored pixels at 1 (the OHEM use).
  Tensor probs = test::random_tensor({1 << 20}, 90, 0, 1);
  for (int64_t i = 0; i < probs.numel(); i += 5) probs.data<float>()[i] = 1.f;
  std::vector<float> sorted = probs.to_vector<float>();
  std::nth_element(sorted.begin(), sorted.begin() + 99999, sorted.end());
  CHECK(kth_smallest(probs.to(g), 100000) == double(sorted[99999]));
}

GPU_TEST_CASE("losses on the GPU match the CPU reference (values and gradients)") {
  const Device g = Device::cuda(0);
  const Tolerance tol{2e-6, 1e-4};
  const Tensor labels = test::random_labels({2, 61, 77}, 19, 91, 0.1);
  // Logits in [-8, 8]: confident pixels exist, so the TSE masks of student and teacher differ.
  const Tensor sm = test::random_tensor({2, 19, 8, 10}, 92, -8, 8), sa = test::random_tensor({2, 19, 8, 10}, 93, -8, 8);
  const Tensor tm = test::random_tensor({2, 19, 8, 10}, 94, -8, 8), ta = test::random_tensor({2, 19, 8, 10}, 95, -8, 8);
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(b)); };
  {
    CrossEntropyOptions o;
    o.class_weights = cityscapes_class_weights();
    o.reduction = CEReduction::weighted_mean;
    const LossGrad c = pixel_cross_entropy(sm, labels, o), d = pixel_cross_entropy(sm.to(g), labels.to(g), o);
    CHECK(close(d.loss, c.loss));
    CHECK_TENSORS_CLOSE(d.grad.to(Device::cpu()), c.grad, tol);
  }
  for (double T : {1.0, 4.0}) {
    const LossGrad c = logit_kd(sm, tm, T), d = logit_kd(sm.to(g), tm.to(g), T);
    CHECK(close(d.loss, c.loss));
    CHECK_TENSORS_CLOSE(d.grad.to(Device::cpu()), c.grad, tol);
    const LossGrad e = channel_wise_kd(sm, tm, T), f = channel_wise_kd(sm.to(g), tm.to(g), T);
    CHECK(close(f.loss, e.loss));
    CHECK_TENSORS_CLOSE(f.grad.to(Device::cpu()), e.grad, tol);
  }
  // CWD rows long enough for the block-per-row kernel (h·w = 660 and 4160, not multiples of 256).
  for (const Shape& shape : {Shape{2, 19, 20, 33}, Shape{1, 3, 64, 65}}) {
    const Tensor s = test::random_tensor(shape, 96, -4, 4), t = test::random_tensor(shape, 97, -4, 4);
    const LossGrad e = channel_wise_kd(s, t, 4.0), f = channel_wise_kd(s.to(g), t.to(g), 4.0);
    CHECK(close(f.loss, e.loss));
    CHECK_TENSORS_CLOSE(f.grad.to(Device::cpu()), e.grad, tol);
  }
  {
    const TaskLoss c = tfe_task_loss(sm, sa, tm, ta, labels);
    const TaskLoss d = tfe_task_loss(sm.to(g), sa.to(g), tm.to(g), ta.to(g), labels.to(g));
    CHECK(close(d.total, c.total));
    CHECK_TENSORS_CLOSE(d.grad_main.to(Device::cpu()), c.grad_main, tol);
    CHECK_TENSORS_CLOSE(d.grad_aux.to(Device::cpu()), c.grad_aux, tol);
  }
  for (TseMode mode : {TseMode::xor_mode, TseMode::or_mode, TseMode::and_mode, TseMode::ohem}) {
    TseOptions o;
    o.mode = mode;
    o.min_kept = 1500;
    o.class_weights = cityscapes_class_weights();
    CAPTURE(tse_mode_name(mode));
    CHECK_TENSORS_CLOSE(ohem_hard_mask(sm.to(g), labels.to(g), {0.7, 1500}).to(Device::cpu()),
                        ohem_hard_mask(sm, labels, {0.7, 1500}), Tolerance{0, 0});
    const TaskLoss c = tse_task_loss(sm, sa, tm, ta, labels, o);
    const TaskLoss d = tse_task_loss(sm.to(g), sa.to(g), tm.to(g), ta.to(g), labels.to(g), o);
    CHECK(c.main > 0);
    CHECK(c.aux > 0);
    CHECK(close(d.total, c.total));
    CHECK_TENSORS_CLOSE(d.grad_main.to(Device::cpu()), c.grad_main, tol);
    CHECK_TENSORS_CLOSE(d.grad_aux.to(Device::cpu()), c.grad_aux, tol);
  }
  {  // empty selection and all-ignored labels on the GPU
    TseOptions o;
    o.thresh = 0;
    o.min_kept = 0;
    const LossGrad r = tse_pair_loss(sm.to(g), tm.to(g), labels.to(g), o);
    CHECK(r.loss == 0);
    for (float v : r.grad.to_vector<float>()) CHECK(v == 0);
    const Tensor ignored = Tensor::full({2, 61, 77}, -1, DType::i32).to(g);
    CHECK(pixel_cross_entropy(sm.to(g), ignored).loss == 0);
  }
  {  // a bad label found by the GPU kernel names the value and where
    Tensor bad = labels.clone();
    bad.data<int32_t>()[61 * 77 + 2 * 77 + 3] = 19;
    const std::string m = error_of([&] { pixel_cross_entropy(sm.to(g), bad.to(g)); });
    CHECK(contains(m, "label value 19"));
    CHECK(contains(m, "(n=1, y=2, x=3)"));
  }
}

GPU_TEST_CASE("GPU sums are deterministic (fixed-order reduction) and equal the CPU's to f64 rounding") {
  const Device gpu = Device::cuda(0);
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(3) << 20}) {  // one block; many; more than the grid cap
    INFO("n = " << n);
    const Tensor a = test::random_tensor({n}, 71, -1, 2), b = test::random_tensor({n}, 72, 0, 1);
    const Tensor ga = a.to(gpu), gb = b.to(gpu);
    const double first = dot_all(ga, gb);
    for (int i = 0; i < 5; ++i) CHECK(dot_all(ga, gb) == first);  // bit for bit, every run
    CHECK(first == doctest::Approx(dot_all(a, b)).epsilon(1e-12));
    CHECK(sum_all(ga) == doctest::Approx(sum_all(a)).epsilon(1e-12));
  }
}
