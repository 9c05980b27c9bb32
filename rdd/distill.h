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
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/net_outputs.h"
#include "engine/params.h"
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
  uint64_t seed = 0;           // the run's seed: a term's random choices are Philox(seed, iteration)
};

// How a term reaches the other data-parallel ranks (train/ hands it over; rdd/ knows no communicator):
// `sum` adds a tensor over the ranks in place (every rank calls it in the same order); empty with one rank.
struct RankContext {
  int rank = 0, world = 1;
  std::function<void(Tensor&)> sum;
};

// The sizes the terms of a step see, for their FLOP counts (step_flops).
struct OutputShapes {
  int64_t n = 1, classes = 19, h = 1, w = 1;           // logits (N, classes, h, w), one rank's batch
  int64_t student_channels = 0, teacher_channels = 0;  // the head features (N, C, h, w)
  int64_t label_h = 1, label_w = 1;                    // the labels (N, H, W)
  bool student_aux = true;
};

// A method's learnable parameters (adapters, projection heads) and buffers (BN statistics, memory queues)
// live in the Distiller's ParamStore under "<term>.<the reference module's state_dict name>", registered
// by the term's constructor; the trainer updates the parameters with the student's SGD settings and
// all-reduces their gradients like the student's. compute() ACCUMULATES weight·dL/dθ into Param::grad.
class DistillTerm {
 public:
  virtual ~DistillTerm() = default;
  virtual std::string name() const = 0;
  virtual void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher,
                       const Tensor& labels, LossTerms& terms, StudentGrads& grads) = 0;
  // The student outputs it reads: any of "main", "aux", "feature".
  virtual std::vector<std::string> slots() const { return {"main"}; }
  // Once the store is materialized (on `device`): initialise the term's parameters and buffers from
  // Philox(seed, ...), and anything the term keeps outside the store.
  virtual void init(Device device, uint64_t seed) {}
  // After the student's backward: the term's own optimizer step (e.g. the discriminator's Adam).
  virtual void update(const StepInfo& step) {}
  virtual void set_ranks(const RankContext& ranks) {}
  // State outside the store (an optimizer of its own): checkpointed under these names.
  virtual void save_state(std::map<std::string, Tensor>& out) const {}
  virtual void load_state(const std::map<std::string, Tensor>& in) {}
  // The term's FLOPs in one step (forward and backward, 2 per multiply-add), an estimate from its
  // dominant operations: what --budget-tflop counts beside the models.
  virtual double step_flops(const OutputShapes& s) const { return 0; }
};

struct RddConfig {
  bool enabled = true;          // false: the baseline task loss (plain CE over valid pixels)
  int64_t warmup_iters = 4000;  // TFE for iteration < warmup_iters (the scripts' 10% of 40k)
  double warmup_fraction = 0;   // > 0: warmup_iters = round(fraction · the run's iterations) instead (budgets)
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
  double step_flops(const OutputShapes& s) const override;  // softmax, CE and resize at the label size

 private:
  RddConfig config_;
};

// λ·KL(teacher ‖ student) on the main logits at temperature T: term "kd".
class LogitKDTerm : public DistillTerm {
 public:
  LogitKDTerm(double weight, double temperature) : weight_(weight), temperature_(temperature) {}
  std::string name() const override { return "kd"; }
  double step_flops(const OutputShapes& s) const override { return 20.0 * double(s.n * s.classes * s.h * s.w); }
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
  double step_flops(const OutputShapes& s) const override { return 20.0 * double(s.n * s.classes * s.h * s.w); }
  void compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
               LossTerms& terms, StudentGrads& grads) override;

 private:
  double weight_, temperature_;
};

class Distiller {
 public:
  Distiller() = default;
  Distiller(const Distiller&) = delete;
  Distiller& operator=(const Distiller&) = delete;

  void add(std::unique_ptr<DistillTerm> term) { terms_.push_back(std::move(term)); }
  const std::vector<std::unique_ptr<DistillTerm>>& terms() const { return terms_; }
  // The terms' parameters and buffers (see DistillTerm). Terms register into it when constructed.
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }
  bool has_parameters() const { return params_.parameter_count() > 0; }
  // After every term is added: lays out the store on `device` (when it holds anything) and initialises
  // each term from `seed`.
  void materialize(Device device, uint64_t seed);
  void set_ranks(const RankContext& ranks);
  // After the student's backward: each term's own optimizer (DistillTerm::update).
  void update(const StepInfo& step);
  // Runs every term; `grads` is accumulated into (pass a fresh StudentGrads each step), and so are the
  // store's gradients (zero them first: params().zero_grad()).
  LossTerms compute(const StepInfo& step, const NetOutputs& student, const NetOutputs& teacher, const Tensor& labels,
                    StudentGrads& grads);
  // Wall milliseconds of each term in the last compute(), in order (each term's value reaches the host
  // inside compute, so this is its device time too).
  const std::vector<std::pair<std::string, double>>& last_term_ms() const { return term_ms_; }
  // Σ of the terms' step_flops.
  double step_flops(const OutputShapes& s) const;
  // Every term's state outside the store, by name.
  std::map<std::string, Tensor> extra_state() const;
  void load_extra_state(const std::map<std::string, Tensor>& state);

 private:
  std::vector<std::unique_ptr<DistillTerm>> terms_;
  ParamStore params_;
  std::vector<std::pair<std::string, double>> term_ms_;
};

}  // namespace rdd::method
