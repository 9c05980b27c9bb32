#include "train/train_step.h"

#include <cmath>

#include "engine/op_profile.h"
#include "train/divergence.h"

namespace rdd::train {

method::LossTerms train_step(StepModels& m, const StepAt& at, const Tensor& images, const Tensor& labels,
                             dist::OverlappedGradReducer* grad_reducer, const PhaseHook& phase_done) {
  auto done = [&](StepPhase p) {
    if (phase_done) phase_done(p);
  };
  RDD_CHECK(std::isfinite(at.lr), "the learning rate at iteration ", at.iteration, " is ", at.lr,
            " (check --lr and --power)");
  models::SegModel& student = *m.student;
  student.params().zero_grad();
  if (m.distill_sgd) m.distiller->params().zero_grad();
  student.set_dropout_seed(at.seed, uint64_t(at.iteration));
  const NetOutputs s = student.forward(images);
  done(StepPhase::student_forward);
  NetOutputs t;
  if (m.teacher) {
    OpLabelPrefix as_teacher("teacher: ");  // its layers have the student's names (bench --layers)
    t = m.teacher->forward(images);
    done(StepPhase::teacher_forward);
  }
  method::StudentGrads grads;
  const method::LossTerms terms = m.distiller->compute({at.iteration, at.iterations, at.seed}, s, t, labels, grads);
  const double total = terms.total();
  RDD_CHECK(std::isfinite(total), describe_non_finite_loss(m, at, terms));
  done(StepPhase::losses);
  if (grad_reducer) grad_reducer->begin_step();
  student.backward(grads.main, grads.aux, grads.feature);
  if (grad_reducer) grad_reducer->finish();  // the last buckets, then the compute stream waits for all
  done(StepPhase::backward);
  m.sgd->step(at.lr);
  m.distiller->update({at.iteration, at.iterations, at.seed});  // the terms' own optimizers (discriminator)
  if (m.distill_sgd) {
    if (m.comm && m.comm->data_parallel()) {
      Tensor g = m.distiller->params().flat_grads();
      m.comm->all_reduce_mean(g);
    }
    m.distill_sgd->step(at.lr);
  }
  done(StepPhase::optimizer);
  return terms;
}

}  // namespace rdd::train
