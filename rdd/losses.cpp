// rdd's losses (see losses.h), composed from rdd/pixel_ops.h and layers/resize.h; device-agnostic.
#include "rdd/losses.h"

#include <algorithm>
#include <cmath>

#include "layers/resize.h"

namespace rdd::method {

namespace {

// A teacher tensor in the student's compute dtype. Same shape as the student's unless any_size (then
// only N and C must agree: TSE upsamples each network's logits to the label size on its own).
Tensor teacher_as(const Tensor& teacher, const Tensor& student, const char* who, const char* what,
                  bool any_size = false) {
  Tensor t = compute_dtype_view(teacher, who, what);
  require_same_device(t, student, who);
  const bool ok = any_size ? t.size(0) == student.size(0) && t.size(1) == student.size(1) : t.shape() == student.shape();
  RDD_CHECK(ok, who, ": ", what, " ", teacher.desc(), " does not match the student ", student.desc());
  return t.dtype() == student.dtype() ? t : t.to_dtype(student.dtype());
}

void check_labels(const Tensor& logits, const Tensor& labels, const char* who) {
  require_dtype(labels, DType::i32, who, "labels");
  require_same_device(logits, labels, who);
  RDD_CHECK(labels.ndim() == 3 && labels.size(0) == logits.size(0) && labels.size(1) >= 1 && labels.size(2) >= 1, who,
            ": labels ", labels.desc(), " must be (N, H, W) with N = ", logits.size(0), " (logits ", logits.desc(), ")");
}

// (N, C, h, w) → (N, C, H, W), the CE losses' upsampling (the identity when the sizes agree).
Tensor upsample_to(const Tensor& logits, const Tensor& labels) {
  const int H = int(labels.size(1)), W = int(labels.size(2));
  if (logits.size(2) == H && logits.size(3) == W) return logits;
  return layers::bilinear_resize_forward(logits, H, W, /*align_corners=*/true);
}

// Gradient at the label size → gradient w.r.t. the stride-8 logits.
Tensor downsample_grad(const Tensor& grad_up, const Tensor& logits) {
  if (grad_up.size(2) == logits.size(2) && grad_up.size(3) == logits.size(3)) return grad_up;
  return layers::bilinear_resize_backward(grad_up, int(logits.size(2)), int(logits.size(3)), /*align_corners=*/true);
}

// Σ coef·CE / denominator and its gradient w.r.t. the (pre-upsampling) logits.
LossGrad weighted_ce(const Tensor& logits, const Tensor& up, const Tensor& labels, const PixelCEStats& stats,
                     const Tensor& coef, double denominator, int ignore_index) {
  LossGrad r;
  if (!(denominator > 0)) {  // nothing selected / every pixel ignored: 0, not 0/0
    r.grad = Tensor::zeros(logits.shape(), logits.dtype(), logits.device());
    return r;
  }
  r.loss = dot_all(coef, stats.ce) / denominator;
  r.grad = downsample_grad(ce_logits_grad(up, labels, coef, 1.0 / denominator, ignore_index), logits);
  return r;
}

void add_scaled(TaskLoss& t, const LossGrad& main, const LossGrad& aux, double aux_weight, bool has_aux) {
  t.main = main.loss;
  t.grad_main = main.grad;
  t.total = main.loss;
  if (has_aux) {
    t.aux = aux.loss;
    t.total += aux_weight * aux.loss;
    t.grad_aux = aux.grad;
    if (aux_weight != 1.0) {
      Tensor scaled = Tensor::zeros(aux.grad.shape(), aux.grad.dtype(), aux.grad.device());
      axpy(scaled, aux.grad, aux_weight);
      t.grad_aux = scaled;
    }
  }
}

}  // namespace

Tensor cityscapes_class_weights() {
  return Tensor::from_vector(std::vector<float>(std::begin(kCityscapesClassWeights), std::end(kCityscapesClassWeights)),
                             {19});
}

LossGrad pixel_cross_entropy(const Tensor& logits_in, const Tensor& labels, const CrossEntropyOptions& o) {
  const char* who = "pixel_cross_entropy";
  const Tensor logits = compute_dtype_view(logits_in, who, "logits");
  check_labels(logits, labels, who);
  if (o.class_weights.defined())
    RDD_CHECK(o.class_weights.ndim() == 1 && o.class_weights.size(0) == logits.size(1), who, ": class weights ",
              o.class_weights.desc(), " do not match the ", logits.size(1), " classes of logits ", logits.desc());
  const Tensor up = upsample_to(logits, labels);
  const PixelCEStats stats = pixel_ce_stats(up, labels, o.ignore_index, who);
  const Tensor coef = ce_coefficients(labels, o.class_weights, o.pixel_weights, o.ignore_index, up.dtype(), who);
  double denominator = 0;
  switch (o.reduction) {
    case CEReduction::mean_valid: denominator = double(stats.num_valid); break;
    case CEReduction::weighted_mean: denominator = sum_all(coef); break;
    case CEReduction::mean_all: denominator = double(labels.numel()); break;
  }
  return weighted_ce(logits, up, labels, stats, coef, denominator, o.ignore_index);
}

double ohem_threshold(const Tensor& gt_prob, const OhemOptions& o) {
  RDD_CHECK(o.min_kept >= 0, "ohem: min_kept ", o.min_kept, " must not be negative");
  double threshold = o.thresh;
  const int64_t k = std::min<int64_t>(gt_prob.numel(), o.min_kept);
  if (k > 0) threshold = std::max(threshold, kth_smallest(gt_prob, k));
  return threshold;
}

Tensor ohem_hard_mask(const Tensor& logits_in, const Tensor& labels, const OhemOptions& o) {
  const char* who = "ohem_hard_mask";
  const Tensor logits = compute_dtype_view(logits_in, who, "logits");
  check_labels(logits, labels, who);
  const PixelCEStats stats = pixel_ce_stats(upsample_to(logits, labels), labels, o.ignore_index, who);
  return tse_selection(stats.gt_prob, ohem_threshold(stats.gt_prob, o), Tensor(), 0, labels, o.ignore_index,
                       TseMode::ohem);
}

LossGrad logit_kd(const Tensor& student_in, const Tensor& teacher_in, double temperature) {
  const char* who = "logit_kd";
  const Tensor s = compute_dtype_view(student_in, who, "student logits");
  const Tensor t = teacher_as(teacher_in, s, who, "teacher logits");
  const int64_t n = s.size(0), c = s.size(1), hw = s.size(2) * s.size(3);
  const double rows = double(n * hw);
  // d/ds of T²/rows · Σ KL = T²/rows · (p_s − p_t)/T
  KLRows kl = kl_rows(t, s, temperature, n, c, hw, temperature / rows, true);
  return {sum_all(kl.kl) * temperature * temperature / rows, kl.grad};
}

LossGrad channel_wise_kd(const Tensor& student_in, const Tensor& teacher_in, double temperature) {
  const char* who = "channel_wise_kd";
  const Tensor s = compute_dtype_view(student_in, who, "student logits");
  const Tensor t = teacher_as(teacher_in, s, who, "teacher logits");
  const int64_t nc = s.size(0) * s.size(1), hw = s.size(2) * s.size(3);
  KLRows kl = kl_rows(t, s, temperature, nc, hw, 1, temperature / double(nc), true);
  return {sum_all(kl.kl) * temperature * temperature / double(nc), kl.grad};
}

Tensor tfe_weight_map(const Tensor& t_main_in, const Tensor& t_aux_in, int out_h, int out_w, TfeDirection direction) {
  const char* who = "tfe_weight_map";
  const Tensor m = compute_dtype_view(t_main_in, who, "teacher main logits");
  const Tensor a = teacher_as(t_aux_in, m, who, "teacher aux logits");
  const int64_t n = m.size(0), c = m.size(1), h = m.size(2), w = m.size(3);
  // KL(aux ‖ main) = Σ_c p_aux (log p_aux − log p_main): "teacher" = aux in kl_rows' terms.
  const KLRows kl = direction == TfeDirection::aux_main ? kl_rows(a, m, 1.0, n, c, h * w, 0, false)
                                                        : kl_rows(m, a, 1.0, n, c, h * w, 0, false);
  Tensor rd = exp_neg(kl.kl).view({n, 1, h, w});
  if (h != out_h || w != out_w) rd = layers::bilinear_resize_forward(rd, out_h, out_w, /*align_corners=*/true);
  return rd.view({n, out_h, out_w});
}

TaskLoss tfe_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& t_main, const Tensor& t_aux,
                       const Tensor& labels, const TfeOptions& o, double aux_weight) {
  const char* who = "tfe_task_loss";
  RDD_CHECK(t_aux.defined(), who, ": TFE needs the teacher's aux head (its main/aux disagreement is the weight map)");
  const Tensor sm = compute_dtype_view(s_main, who, "student main logits");
  check_labels(sm, labels, who);
  Tensor rd = tfe_weight_map(teacher_as(t_main, sm, who, "teacher main logits"),
                             teacher_as(t_aux, sm, who, "teacher aux logits"), int(labels.size(1)),
                             int(labels.size(2)), o.direction);
  CrossEntropyOptions ce;
  ce.ignore_index = o.ignore_index;
  ce.pixel_weights = rd;
  ce.reduction = CEReduction::mean_all;
  const LossGrad main = pixel_cross_entropy(sm, labels, ce);
  const LossGrad aux = s_aux.defined() ? pixel_cross_entropy(s_aux, labels, ce) : LossGrad{};
  TaskLoss t;
  add_scaled(t, main, aux, aux_weight, s_aux.defined());
  return t;
}

LossGrad tse_pair_loss(const Tensor& student_in, const Tensor& teacher_in, const Tensor& labels, const TseOptions& o) {
  const char* who = "tse_pair_loss";
  const Tensor s = compute_dtype_view(student_in, who, "student logits");
  check_labels(s, labels, who);
  if (o.class_weights.defined())
    RDD_CHECK(o.class_weights.ndim() == 1 && o.class_weights.size(0) == s.size(1), who, ": class weights ",
              o.class_weights.desc(), " do not match the ", s.size(1), " classes of logits ", s.desc());
  const OhemOptions& ohem = o;
  const Tensor s_up = upsample_to(s, labels);
  const PixelCEStats ss = pixel_ce_stats(s_up, labels, o.ignore_index, who);
  Tensor gt_teacher;
  double thr_teacher = 0;
  if (o.mode != TseMode::ohem) {
    RDD_CHECK(teacher_in.defined(), who, ": TSE mode ", tse_mode_name(o.mode), " needs the teacher's logits");
    const PixelCEStats ts =
        pixel_ce_stats(upsample_to(teacher_as(teacher_in, s, who, "teacher logits", /*any_size=*/true), labels), labels,
                       o.ignore_index, who);
    gt_teacher = ts.gt_prob;
    thr_teacher = ohem_threshold(ts.gt_prob, ohem);
  }
  const Tensor sel =
      tse_selection(ss.gt_prob, ohem_threshold(ss.gt_prob, ohem), gt_teacher, thr_teacher, labels, o.ignore_index, o.mode);
  const Tensor coef = ce_coefficients(labels, o.class_weights, sel, o.ignore_index, s_up.dtype(), who);
  return weighted_ce(s, s_up, labels, ss, coef, sum_all(coef), o.ignore_index);
}

TaskLoss tse_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& t_main, const Tensor& t_aux,
                       const Tensor& labels, const TseOptions& o, double aux_weight) {
  const char* who = "tse_task_loss";
  RDD_CHECK(!s_aux.defined() || t_aux.defined() || o.mode == TseMode::ohem, who,
            ": the student has an aux head but the teacher's aux logits are missing (the aux pair compares them)");
  const LossGrad main = tse_pair_loss(s_main, t_main, labels, o);
  const LossGrad aux = s_aux.defined() ? tse_pair_loss(s_aux, t_aux, labels, o) : LossGrad{};
  TaskLoss t;
  add_scaled(t, main, aux, aux_weight, s_aux.defined());
  return t;
}

TaskLoss baseline_task_loss(const Tensor& s_main, const Tensor& s_aux, const Tensor& labels, double aux_weight,
                            int ignore_index) {
  CrossEntropyOptions ce;
  ce.ignore_index = ignore_index;
  const LossGrad main = pixel_cross_entropy(s_main, labels, ce);
  const LossGrad aux = s_aux.defined() ? pixel_cross_entropy(s_aux, labels, ce) : LossGrad{};
  TaskLoss t;
  add_scaled(t, main, aux, aux_weight, s_aux.defined());
  return t;
}

}  // namespace rdd::method
