// One training step, the one `rdd train`, `rdd distill` (run_step, trainer.h) and `rdd bench --mode
// train|distill` (bench_step, bench_model.h) run:
//
//   s     = student.forward(images)                   main/aux logits at stride 8 (train mode)
//   t     = teacher.forward(images)                   distillation only; eval mode, nothing cached
//   terms = distiller.compute(step, s, t, labels, g)  loss terms + d loss / d student outputs
//   student.backward(g.main, g.aux, g.feature)        into the flat gradient buffer (all-reduced in
//                                                     buckets meanwhile when data parallel)
//   sgd.step(lr)                                      one fused pass over the flat buffers
//                                                     (and the distiller's parameters, when it has any)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "dist/communicator.h"
#include "engine/sgd.h"
#include "engine/tensor.h"
#include "models/seg_model.h"
#include "rdd/distill.h"

namespace rdd::train {

// What a step works on.
struct StepModels {
  std::unique_ptr<models::SegModel> student;    // train mode, materialized with gradients
  std::unique_ptr<models::SegModel> teacher;    // frozen, eval mode; null without distillation
  std::unique_ptr<method::Distiller> distiller;  // make_distiller (distiller.h)
  std::unique_ptr<Sgd> sgd;                      // over student->params()
  // Over distiller->params() when its terms have learnable parameters (adapters, projection heads): the
  // student's SGD settings and learning rate, as the reference puts them in the student's optimizer.
  std::unique_ptr<Sgd> distill_sgd;
  // Data parallel: the distiller's parameter gradients are averaged over these ranks before its update.
  dist::Communicator* comm = nullptr;
};

// Where the step is in its run.
struct StepAt {
  int64_t iteration = 1;   // 1-based
  int64_t iterations = 0;  // of the run (the RDD soft switch reads it)
  double lr = 0;
  uint64_t seed = 0;       // the student's dropout stream is (seed, iteration)
};

// The phases in the order the step runs them; `phase_done` (bench) hears each as it ends.
enum class StepPhase { student_forward, teacher_forward, losses, backward, optimizer };
using PhaseHook = std::function<void(StepPhase)>;

// images (N, 3, H, W) f32, labels (N, H, W) i32, both on the student's device. `grad_reducer`
// (data parallel) averages the gradients over ranks during the backward. Returns the loss terms; a
// loss that is not finite is an error naming the iteration.
method::LossTerms train_step(StepModels& m, const StepAt& at, const Tensor& images, const Tensor& labels,
                             dist::OverlappedGradReducer* grad_reducer = nullptr, const PhaseHook& phase_done = {});

}  // namespace rdd::train
