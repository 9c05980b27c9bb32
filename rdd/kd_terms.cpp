// The comparison KD methods as distillation terms (see kd_terms.h).
#include "rdd/kd_terms.h"

#include "engine/op_profile.h"
#include "rdd/kd_methods.h"
#include "rdd/pixel_ops.h"

namespace rdd::method {

namespace {

// Philox offsets of the adapters' initialisation (distinct from the models' and from each other).
constexpr uint64_t kFitNetInitOffset = 0x4649544e00000000ull;  // "FITN"
constexpr uint64_t kCwdInitOffset = 0x4357444600000000ull;     // "CWDF"

void add_param_grad(Param* p, const Tensor& g, double weight) {
  RDD_CHECK(p->grad.defined(), "distillation term: parameter '", p->name, "' has no gradient buffer");
  Tensor dst = p->grad;
  axpy(dst, g.dtype() == dst.dtype() ? g : g.to_dtype(dst.dtype()), weight);
}

const Tensor& require(const Tensor& t, const char* term, const char* what) {
  RDD_CHECK(t.defined(), term, ": the ", what, " is missing (this method reads it)");
  return t;
}

}  // namespace

void AttentionTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                            StudentGrads& grads) {
  OpScope profile("loss: AT", s.main.device());
  const FeatureLoss l = attention_transfer(require(s.feature, "at", "student feature"),
                                           require(t.feature, "at", "teacher feature"));
  terms.add("at", l.loss, weight_);
  StudentGrads::accumulate(grads.feature, l.grad, weight_);
}

FitNetTerm::FitNetTerm(ParamStore& store, double weight, int student_channels, int teacher_channels)
    : weight_(weight), conv_(store, "fitnet.conv", student_channels, teacher_channels, 1) {}

void FitNetTerm::init(Device, uint64_t seed) { conv_.reset_parameters(seed, kFitNetInitOffset); }

void FitNetTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                         StudentGrads& grads) {
  OpScope profile("loss: FitNet", s.main.device());
  const FeatureLoss l = fitnet(require(s.feature, "fitnet", "student feature"),
                               require(t.feature, "fitnet", "teacher feature"), conv_.weight()->value);
  terms.add("fitnet", l.loss, weight_);
  StudentGrads::accumulate(grads.feature, l.grad, weight_);
  add_param_grad(conv_.weight(), l.grad_w, weight_);
}

CwdFeatureTerm::CwdFeatureTerm(ParamStore& store, double weight, double temperature, int student_channels,
                               int teacher_channels)
    : weight_(weight), temperature_(temperature) {
  if (student_channels != teacher_channels)
    conv_ = std::make_unique<layers::Conv2d>(store, "cwd_feature.conv", student_channels, teacher_channels, 1);
}

void CwdFeatureTerm::init(Device, uint64_t seed) {
  if (conv_) conv_->reset_parameters(seed, kCwdInitOffset);
}

void CwdFeatureTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&,
                             LossTerms& terms, StudentGrads& grads) {
  OpScope profile("loss: CWD (feature)", s.main.device());
  const FeatureLoss l = cwd_feature(require(s.feature, "cwd_feature", "student feature"),
                                    require(t.feature, "cwd_feature", "teacher feature"),
                                    conv_ ? conv_->weight()->value : Tensor(), temperature_);
  terms.add("cwd_feature", l.loss, weight_);
  StudentGrads::accumulate(grads.feature, l.grad, weight_);
  if (conv_) add_param_grad(conv_->weight(), l.grad_w, weight_);
}

void SkdTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                      StudentGrads& grads) {
  OpScope profile("loss: SKD", s.main.device());
  const FeatureLoss l = structural_kd(require(s.feature, "skd", "student feature"),
                                      require(t.feature, "skd", "teacher feature"));
  terms.add("skd", l.loss, weight_);
  StudentGrads::accumulate(grads.feature, l.grad, weight_);
}

void IfvdTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor& labels,
                       LossTerms& terms, StudentGrads& grads) {
  OpScope profile("loss: IFVD", s.main.device());
  const FeatureLoss l = ifvd(require(s.feature, "ifvd", "student feature"), require(t.feature, "ifvd", "teacher feature"),
                             labels, num_classes_);
  terms.add("ifvd", l.loss, weight_);
  StudentGrads::accumulate(grads.feature, l.grad, weight_);
}

void DsdTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                      StudentGrads& grads) {
  OpScope profile("loss: DSD (PSD + CSD)", s.main.device());
  const DsdLoss l = double_similarity_kd(require(s.aux, "dsd", "student's aux logits (DSD needs an aux head)"),
                                         require(s.feature, "dsd", "student feature"), s.main,
                                         require(t.aux, "dsd", "teacher's aux logits"),
                                         require(t.feature, "dsd", "teacher feature"), t.main, temperature_,
                                         psd_weight_, csd_weight_);
  terms.add("psd", l.psd, psd_weight_);
  terms.add("csd", l.csd, csd_weight_);
  // The gradients already carry the λs.
  StudentGrads::accumulate(grads.aux, l.grad_aux, 1.0);
  StudentGrads::accumulate(grads.feature, l.grad_feature, 1.0);
  StudentGrads::accumulate(grads.main, l.grad_main, 1.0);
}

void DistTerm::compute(const StepInfo&, const NetOutputs& s, const NetOutputs& t, const Tensor&, LossTerms& terms,
                       StudentGrads& grads) {
  OpScope profile("loss: DIST", s.main.device());
  const DistLoss l = dist_kd(s.main, require(t.main, "dist", "teacher's main logits"), beta_, gamma_, temperature_);
  terms.add("dist", l.loss, weight_);
  StudentGrads::accumulate(grads.main, l.grad, weight_);
  if (aux_weight_ > 0 && s.aux.defined()) {
    const DistLoss a = dist_kd(s.aux, require(t.aux, "dist", "teacher's aux logits"), beta_, gamma_, temperature_);
    terms.add("dist_aux", a.loss, weight_ * aux_weight_);
    StudentGrads::accumulate(grads.aux, a.grad, weight_ * aux_weight_);
  }
}

// FLOP estimates (forward + backward, 2 per multiply-add): the GEMMs and convolutions at full weight, a
// few FLOPs per element for the elementwise and row passes.
namespace {
double d(int64_t v) { return double(v); }
}  // namespace

double AttentionTerm::step_flops(const OutputShapes& s) const {
  return 10.0 * d(s.n * s.h * s.w) * d(s.student_channels + s.teacher_channels);
}

double FitNetTerm::step_flops(const OutputShapes& s) const {
  return 6.0 * d(s.n * s.h * s.w) * d(s.student_channels * s.teacher_channels) + 5.0 * d(s.n * s.h * s.w * s.teacher_channels);
}

double CwdFeatureTerm::step_flops(const OutputShapes& s) const {
  const double adapter = conv_ ? 6.0 * d(s.n * s.h * s.w) * d(s.student_channels * s.teacher_channels) : 0.0;
  return adapter + 20.0 * d(s.n * s.h * s.w * s.teacher_channels);
}

double SkdTerm::step_flops(const OutputShapes& s) const {
  const double p = d(((s.h + 1) / 2) * ((s.w + 1) / 2));
  return 2.0 * d(s.n) * p * p * d(s.student_channels + s.teacher_channels) + 4.0 * d(s.n) * p * p * d(s.student_channels);
}

double IfvdTerm::step_flops(const OutputShapes& s) const {
  const double p = d(s.h * s.w), k = d(num_classes_);
  return 8.0 * d(s.n) * p * k * d(s.student_channels + s.teacher_channels) + 8.0 * d(s.n) * p * k * d(s.student_channels);
}

double DsdTerm::step_flops(const OutputShapes& s) const {
  const double q = d(((s.h + 1) / 2) * ((s.w + 1) / 2)), k = d(s.classes);
  return 20.0 * d(s.n * s.h * s.w) * d(2 * s.classes + s.student_channels + s.teacher_channels) + 6.0 * d(s.n) * k * k * q;
}

double DistTerm::step_flops(const OutputShapes& s) const {
  return (aux_weight_ > 0 && s.student_aux ? 2.0 : 1.0) * 40.0 * d(s.n * s.classes * s.h * s.w);
}

}  // namespace rdd::method
