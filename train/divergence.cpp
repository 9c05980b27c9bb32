#include "train/divergence.h"

#include <cmath>
#include <sstream>

namespace rdd::train {

namespace {

// Non-finite values over a model's floating parameters and buffers; `first` the first tensor holding any.
int64_t count_non_finite(const models::SegModel& model, std::string& first) {
  int64_t bad = 0;
  for (const Param& p : model.params().entries()) {
    if (!p.value.defined() || (p.dtype != DType::f32 && p.dtype != DType::f64)) continue;
    const Tensor host = p.value.device().is_cpu() ? p.value : p.value.to(Device::cpu());
    int64_t here = 0;
    if (host.dtype() == DType::f32) {
      const float* v = host.data<float>();
      for (int64_t i = 0; i < host.numel(); ++i) here += !std::isfinite(v[i]);
    } else {
      const double* v = host.data<double>();
      for (int64_t i = 0; i < host.numel(); ++i) here += !std::isfinite(v[i]);
    }
    if (here > 0 && first.empty()) first = p.name;
    bad += here;
  }
  return bad;
}

}  // namespace

std::string describe_non_finite_loss(const StepModels& m, const StepAt& at, const method::LossTerms& terms) {
  std::ostringstream os;
  os << "the loss is " << terms.total() << " at iteration " << at.iteration << ": ";
  if (!std::isfinite(at.lr)) {
    os << "the learning rate is " << at.lr << " (check --lr and --power)";
    return os.str();
  }
  std::string first;
  if (const int64_t bad = count_non_finite(*m.student, first); bad > 0) {
    os << "the student's weights hold " << bad << " non-finite values before this step (first in '" << first
       << "'): an earlier update diverged (lower --lr), or --init / --resume brought them";
    return os.str();
  }
  if (m.teacher) {
    first.clear();
    if (const int64_t bad = count_non_finite(*m.teacher, first); bad > 0) {
      os << "the teacher's weights hold " << bad << " non-finite values (first in '" << first
         << "'): check --teacher-weights";
      return os.str();
    }
  }
  const method::LossTerm* culprit = nullptr;
  for (const method::LossTerm& t : terms.terms)
    if (!std::isfinite(t.value) && t.weight != 0 && !culprit) culprit = &t;
  if (!culprit)
    for (const method::LossTerm& t : terms.terms)
      if (!std::isfinite(t.value) && !culprit) culprit = &t;
  if (culprit) {
    os << "the loss term '" << culprit->name << "' is " << culprit->value << " (weight " << culprit->weight << ")";
    std::string others;
    for (const method::LossTerm& t : terms.terms)
      if (&t != culprit && t.weight != 0) others += (others.empty() ? "" : ", ") + t.name + " " + std::to_string(t.value);
    if (!others.empty()) os << "; the others: " << others;
    os << " (diverged: lower --lr, or check the labels with `rdd info --dataset ...`)";
    return os.str();
  }
  os << "every term is finite but their weighted sum is not (a weight too large?)";
  return os.str();
}

}  // namespace rdd::train
