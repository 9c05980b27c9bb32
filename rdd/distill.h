// The distillation objective of one training step, as a list of terms.
//
// Every KD method is a DistillTerm: given the student's and the (frozen) teacher's outputs {main, aux,
// feature} and the labels, it appends its named loss values to `terms` and ADDS weight·d(value)/d(output)
// into the student-side gradients. Nothing flows into the teacher. The trainer then back-propagates
// grads.main / grads.aux / grads.feature through the student.
//
//   Distiller d;
//   d.add(std::make_unique<RddTaskTerm>(rdd_config));      // the task CE, re-weighted by RDD's stage
//   d.add(std::make_unique<LogitKDTerm>(1.0, 1.0));         // λ_kd, T
//   LossTerms terms = d.compute(step, student, teacher, labels, grads);
//   log(terms.total(), terms.value("task"), terms.value("kd"));
//
// "Another KD method + RDD" is a local change: write a DistillTerm for the method (e.g. CWD below, AT on
// the features) and add it beside RddTaskTerm; RDD only changes the task term. The baseline is
// RddTaskTerm with RddConfig::enabled = false (plain CE) and no KD terms.
//
// The RDD stage schedule (released code): iterations are 1-based; TFE while iteration < warmup_iters,
// TSE from warmup_iters on (warmup_iters = 0 or 1: TSE only). With soft_switch (the released
// "warmup_lamda" variant), from warmup_iters on task = (1 − λ)·TSE + λ·TFE with
// λ = (iteration − max_iterations)/(warmup_iters − max_iterations), 1 at the switch, 0 at the end.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/net_outputs.h"
#include "engine/tensor.h"
#include "rdd/losses.h"

namespace rdd::method {

// Gradients w.r.t. the student's outputs; a slot stays undefined until a term contributes to it.
struct StudentGrads {
  Tensor main, aux, feature;
  // slot += weight·g (allocates the slot, f32 or g's dtype, on first use).
  static void accumulate(Tensor& slot, const Tensor& g, double weight);
};

struct LossTerm {
  std::string name;
  double value = 0;   // the term's own value (before its weight)
  double weight = 0;  // its weight in the total; 0 = reported for logging only
};

struct LossTerms {
  std::vector<LossTerm> terms;
  void add(const std::string& name, double value, double weight);
  double total() const;                          // Σ weight·value
  double value(const std::string& name) const;   // an rdd::Error when absent
  bool has(const std::string& name) const;
};

struct StepInfo {
  int64_t iteration = 1;       // 1-based
  int64_t max_iterations = 0;  // needed by the soft switch only
};

class DistillTerm {
 public:
  virtual ~DistillTerm() = default;
  virtual std::string name() const = 0;
  virtual void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher,
                       const Tensor& labels, LossTerms& terms, StudentGrads& grads) = 0;
};

struct RddConfig {
  bool enabled = true;          // false: the baseline task loss (plain CE over valid pixels)
  int64_t warmup_iters = 4000;  // TFE for iteration < warmup_iters (the scripts' 10% of 40k)
  bool soft_switch = false;     // the released warmup_lamda variant (see above)
  TfeOptions tfe;
  TseOptions tse;
  double aux_weight = kAuxWeight;  // the aux head's weight in every stage's task loss
};

// How much of each stage's task loss the step uses.
struct StageMix {
  double tfe = 0, tse = 0, baseline = 0;
};
StageMix rdd_stage_mix(const RddConfig& config, const StepInfo& step);

// The task term. Reports "task" (weight 1), "task.main", "task.aux" (logging only) and "task.tfe_share".
class RddTaskTerm : public DistillTerm {
 public:
  explicit RddTaskTerm(RddConfig config) : config_(std::move(config)) {}
  std::string name() const override { return "rdd_task"; }
  void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
               LossTerms& terms, StudentGrads& grads) override;
  const RddConfig& config() const { return config_; }

 private:
  RddConfig config_;
};

// λ·KL(teacher ‖ student) on the main logits at temperature T: term "kd".
class LogitKDTerm : public DistillTerm {
 public:
  LogitKDTerm(double weight, double temperature) : weight_(weight), temperature_(temperature) {}
  std::string name() const override { return "kd"; }
  void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
               LossTerms& terms, StudentGrads& grads) override;

 private:
  double weight_, temperature_;
};

// w·CWD(teacher, student) on the main logits at temperature τ: term "cwd".
class ChannelWiseKDTerm : public DistillTerm {
 public:
  ChannelWiseKDTerm(double weight, double temperature) : weight_(weight), temperature_(temperature) {}
  std::string name() const override { return "cwd"; }
  void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
               LossTerms& terms, StudentGrads& grads) override;

 private:
  double weight_, temperature_;
};

class Distiller {
 public:
  void add(std::unique_ptr<DistillTerm> term) { terms_.push_back(std::move(term)); }
  const std::vector<std::unique_ptr<DistillTerm>>& terms() const { return terms_; }
  // Runs every term; `grads` is accumulated into (pass a fresh StudentGrads each step).
  LossTerms compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
                    StudentGrads& grads) const;

 private:
  std::vector<std::unique_ptr<DistillTerm>> terms_;
};

}  // namespace rdd::method
