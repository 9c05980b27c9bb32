// What a training step minimises, and the one place its method::Distiller is made (make_distiller):
// `rdd train` (the task CE), `rdd distill` (+ RDD stages, KD, CWD), `rdd bench --mode train|distill`
// and the golden loss cases all build theirs here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/device.h"
#include "engine/tensor.h"
#include "rdd/distill.h"

namespace rdd::train {

struct LossOptions {
  // The task term: --aux-weight; with distillation --warmup-iters, --soft-switch, --tfe-direction,
  // --tse-mode, --tse-thresh, --min-kept. make_distiller takes `enabled` from rdd_stages, and for the
  // stages "tse" and "tfe" the warmup_iters that make them so.
  method::RddConfig rdd;
  std::string rdd_stages;                  // --rdd: "" (plain CE), "tfe,tse" (RDD), "tse" (TSE only), "tfe" (TFE only)
  std::string tse_class_weights = "auto";  // auto: the released Cityscapes weights for Cityscapes, none otherwise
  double kd = 0, kd_temperature = 1;       // logit KD λ and T (0: no KD term)
  double cwd = 0, cwd_temperature = 4;     // channel-wise distillation weight and τ (0: no CWD term)
};

// The task term (RddTaskTerm with the stages of o.rdd_stages over a run of `iters` iterations), then
// KD and CWD when their weights are positive. `tse_class_weights`: (C) on the step's device, or
// undefined (unweighted).
std::unique_ptr<method::Distiller> make_distiller(const LossOptions& o, int64_t iters, const Tensor& tse_class_weights);

// --tfe-direction's names: "released" (KL(aux‖main), the released code) and "paper" (KL(main‖aux), Eq. 6).
const char* tfe_direction_name(method::TfeDirection d);

// --tse-class-weights: "auto" gives the released Cityscapes weights for the cityscapes dataset (on
// `device`, uploaded once), "none" or another dataset nothing.
Tensor tse_class_weights(const std::string& choice, const std::string& dataset, Device device);

}  // namespace rdd::train
