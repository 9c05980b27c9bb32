// The distillation terms and the RDD stage schedule (see distill.h).
#include "rdd/distill.h"

#include <chrono>
#include <cmath>

#include "engine/op_profile.h"

namespace rdd::method {

void StudentGrads::accumulate(Tensor& slot, const Tensor& g, double weight) {
  if (!g.defined() || weight == 0) return;
  if (!slot.defined()) slot = Tensor::zeros(g.shape(), g.dtype(), g.device());
  axpy(slot, g, weight);
}

void LossTerms::add(const std::string& name, double value, double weight) { terms.push_back({name, value, weight}); }

double LossTerms::total() const {
  double s = 0;
  for (const LossTerm& t : terms) s += t.weight * t.value;
  return s;
}

bool LossTerms::has(const std::string& name) const {
  for (const LossTerm& t : terms)
    if (t.name == name) return true;
  return false;
}

double LossTerms::value(const std::string& name) const {
  for (const LossTerm& t : terms)
    if (t.name == name) return t.value;
  fail("loss terms: no term named '", name, "'");
}

StageMix rdd_stage_mix(const RddConfig& c, const StepInfo& step) {
  RDD_CHECK(step.iteration >= 1, "rdd schedule: iteration ", step.iteration, " must be ≥ 1 (iterations are 1-based)");
  if (!c.enabled) return {0, 0, 1};
  int64_t warmup = c.warmup_iters;
  if (c.warmup_fraction > 0) {
    RDD_CHECK(step.max_iterations > 0, "rdd schedule: warmup_fraction needs the run's iterations");
    warmup = std::llround(c.warmup_fraction * double(step.max_iterations));
  }
  if (step.iteration < warmup) return {1, 0, 0};
  if (!c.soft_switch) return {0, 1, 0};
  RDD_CHECK(step.max_iterations > warmup, "rdd schedule: the soft switch needs max_iterations (",
            step.max_iterations, ") > warmup_iters (", warmup, ")");
  const double lambda = double(step.iteration - step.max_iterations) / double(warmup - step.max_iterations);
  return {lambda, 1 - lambda, 0};
}

void RddTaskTerm::compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels,
                          LossTerms& terms, StudentGrads& grads) {
  const StageMix mix = rdd_stage_mix(config_, step);
  double total = 0, main = 0, aux = 0;
  auto take = [&](const TaskLoss& l, double w) {
    total += w * l.total;
    main += w * l.main;
    aux += w * l.aux;
    StudentGrads::accumulate(grads.main, l.grad_main, w);
    StudentGrads::accumulate(grads.aux, l.grad_aux, w);
  };
  // Each stage is one op in `rdd bench --ops`: its CE with the resize to the label size, its masks or maps.
  if (mix.baseline > 0) {
    OpScope profile("loss: task CE (baseline)", s.main.device());
    take(baseline_task_loss(s.main, s.aux, labels, config_.aux_weight, config_.tse.ignore_index), mix.baseline);
  }
  if (mix.tfe > 0) {
    OpScope profile("loss: task CE + TFE maps", s.main.device());
    take(tfe_task_loss(s.main, s.aux, t.main, t.aux, labels, config_.tfe, config_.aux_weight), mix.tfe);
  }
  if (mix.tse > 0) {
    OpScope profile("loss: task CE + TSE masks", s.main.device());
    take(tse_task_loss(s.main, s.aux, t.main, t.aux, labels, config_.tse, config_.aux_weight), mix.tse);
  }
  terms.add("task", total, 1.0);
  terms.add("task.main", main, 0.0);
  if (s.aux.defined()) terms.add("task.aux", aux, 0.0);
  terms.add("task.tfe_share", mix.tfe, 0.0);
}

double RddTaskTerm::step_flops(const OutputShapes& s) const {
  // Per head: the bilinear upsampling of the logits (forward and backward), softmax and CE at the label size.
  return (s.student_aux ? 2.0 : 1.0) * 30.0 * double(s.n * s.classes * s.label_h * s.label_w);
}

void LogitKDTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                          StudentGrads& grads) {
  RDD_CHECK(t.main.defined(), "kd: the teacher's main logits are missing");
  OpScope profile("loss: logit KD", s.main.device());
  const LossGrad l = logit_kd(s.main, t.main, temperature_);
  terms.add("kd", l.loss, weight_);
  StudentGrads::accumulate(grads.main, l.grad, weight_);
}

void ChannelWiseKDTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&,
                                LossTerms& terms, StudentGrads& grads) {
  RDD_CHECK(t.main.defined(), "cwd: the teacher's main logits are missing");
  OpScope profile("loss: CWD", s.main.device());
  const LossGrad l = channel_wise_kd(s.main, t.main, temperature_);
  terms.add("cwd", l.loss, weight_);
  StudentGrads::accumulate(grads.main, l.grad, weight_);
}

void Distiller::materialize(Device device, uint64_t seed) {
  if (!params_.entries().empty()) params_.materialize(device);
  for (const auto& t : terms_) t->init(device, seed);
}

void Distiller::update(const StepInfo& step) {
  for (const auto& t : terms_) t->update(step);
}

void Distiller::set_ranks(const RankContext& ranks) {
  for (const auto& t : terms_) t->set_ranks(ranks);
}

LossTerms Distiller::compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher,
                             const Tensor& labels, StudentGrads& grads) {
  LossTerms terms;
  term_ms_.clear();
  for (const auto& t : terms_) {
    const auto start = std::chrono::steady_clock::now();
    t->compute(step, student, teacher, labels, terms, grads);
    term_ms_.emplace_back(t->name(),
                          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return terms;
}

double Distiller::step_flops(const OutputShapes& s) const {
  double f = 0;
  for (const auto& t : terms_) f += t->step_flops(s);
  return f;
}

std::map<std::string, Tensor> Distiller::extra_state() const {
  std::map<std::string, Tensor> out;
  for (const auto& t : terms_) t->save_state(out);
  return out;
}

void Distiller::load_extra_state(const std::map<std::string, Tensor>& state) {
  for (const auto& t : terms_) t->load_state(state);
}

}  // namespace rdd::method
