// The comparison KD methods as DistillTerms (rdd/distill.h): each wraps its function in kd_methods.h with
// its weight λ (the term's weight in the total; its value is logged unweighted) and, where the method has
// them, its learnable parameters in the distiller's store under "<term>.<reference state_dict name>".
//
//   term            flag (weight)       reads                     logs              parameters
//   AttentionTerm   --at                feature                   at                -
//   FitNetTerm      --fitnet            feature                   fitnet            fitnet.conv.weight (C_T, C_S, 1, 1)
//   CwdFeatureTerm  --cwd-feature       feature                   cwd_feature       cwd_feature.conv.weight (when C_S ≠ C_T)
//   SkdTerm         --skd               feature                   skd               -
//   IfvdTerm        --ifvd              feature, labels           ifvd              -
//   DsdTerm         --psd, --csd        aux, feature, main        psd, csd          -
//   DistTerm        --dist              main (aux)                dist (dist_aux)   -
//
// Adapters start as PyTorch's default Conv2d initialisation, from Philox(seed, the term's own offset).
#pragma once

#include <cstdint>
#include <memory>

#include "layers/conv2d.h"
#include "rdd/distill.h"

namespace rdd::method {

class AttentionTerm : public DistillTerm {
 public:
  explicit AttentionTerm(double weight) : weight_(weight) {}
  std::string name() const override { return "at"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;

 private:
  double weight_;
};

class FitNetTerm : public DistillTerm {
 public:
  FitNetTerm(ParamStore& store, double weight, int student_channels, int teacher_channels);
  std::string name() const override { return "fitnet"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  void init(Device device, uint64_t seed) override;
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;
  Param* adapter() const { return conv_.weight(); }

 private:
  double weight_;
  layers::Conv2d conv_;
};

class CwdFeatureTerm : public DistillTerm {
 public:
  CwdFeatureTerm(ParamStore& store, double weight, double temperature, int student_channels, int teacher_channels);
  std::string name() const override { return "cwd_feature"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  void init(Device device, uint64_t seed) override;
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;
  Param* adapter() const { return conv_ ? conv_->weight() : nullptr; }

 private:
  double weight_, temperature_;
  std::unique_ptr<layers::Conv2d> conv_;  // null when the channel counts agree
};

class SkdTerm : public DistillTerm {
 public:
  explicit SkdTerm(double weight) : weight_(weight) {}
  std::string name() const override { return "skd"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;

 private:
  double weight_;
};

class IfvdTerm : public DistillTerm {
 public:
  IfvdTerm(double weight, int num_classes) : weight_(weight), num_classes_(num_classes) {}
  std::string name() const override { return "ifvd"; }
  std::vector<std::string> slots() const override { return {"feature"}; }
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;

 private:
  double weight_;
  int num_classes_;
};

class DsdTerm : public DistillTerm {
 public:
  DsdTerm(double psd_weight, double csd_weight, double csd_temperature)
      : psd_weight_(psd_weight), csd_weight_(csd_weight), temperature_(csd_temperature) {}
  std::string name() const override { return "dsd"; }
  std::vector<std::string> slots() const override { return {"aux", "feature", "main"}; }
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;

 private:
  double psd_weight_, csd_weight_, temperature_;
};

class DistTerm : public DistillTerm {
 public:
  DistTerm(double weight, double beta, double gamma, double temperature, double aux_weight)
      : weight_(weight), beta_(beta), gamma_(gamma), temperature_(temperature), aux_weight_(aux_weight) {}
  std::string name() const override { return "dist"; }
  std::vector<std::string> slots() const override { return {"main"}; }
  double step_flops(const OutputShapes& s) const override;
  void compute(const StepInfo& step, const NetOutputs& s, const NetOutputs& t, const Tensor& labels, LossTerms& terms,
               StudentGrads& grads) override;

 private:
  double weight_, beta_, gamma_, temperature_, aux_weight_;
};

}  // namespace rdd::method
