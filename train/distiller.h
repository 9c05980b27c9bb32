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
  // The comparison methods (rdd/kd_terms.h); each weight 0 = off. See rdd/kd_methods.h for what each is.
  double cwd_feature = 0;                  // CWD on the head feature through a 1×1 adapter (τ: cwd_temperature)
  double at = 0;                           // attention transfer on the head feature (the scripts: 10000)
  double fitnet = 0;                       // FitNet through a 1×1 adapter
  double skd = 0;                          // structural (pair-wise similarity) KD
  double ifvd = 0;                         // intra-class feature variation
  double dsd = 0;                          // DSD: PSD at dsd·dsd_psd, CSD at dsd·dsd_csd
  double dsd_psd = 1000, dsd_csd = 10, dsd_temperature = 4;
  double dist = 0;                         // DIST on the main logits (+ dist_aux_weight on the aux logits)
  double dist_beta = 1, dist_gamma = 1, dist_temperature = 1, dist_aux_weight = 0.4;
  // CIRKD (rdd/cirkd.h): its three terms at cirkd·cirkd_minibatch, cirkd·cirkd_pixel, cirkd·cirkd_region.
  double cirkd = 0;
  double cirkd_minibatch = 1, cirkd_pixel = 0.1, cirkd_region = 0.1;
  int64_t cirkd_pixel_memory = 20000, cirkd_region_memory = 2000;  // rows per class
  // Contrast rows in all, as the scripts' flags: each class contributes size / classes + 1 (what the
  // scripts hand the module).
  int64_t cirkd_pixel_contrast = 4096, cirkd_region_contrast = 1024;
  double cirkd_temperature = 0.1, cirkd_kd_temperature = 1;
  std::string cirkd_pixel_queue = "released";  // released | class (rdd/cirkd.h PixelQueueFill)
  // The adversarial term (rdd/adversarial.h): the student's hinge term at `adv` (the CIRKD scripts: 0.001),
  // the discriminator's at adv_d (0.1), trained by Adam at adv_lr; adv_width: its first width (64).
  double adv = 0, adv_d = 0.1, adv_lr = 4e-4;
  int adv_width = 64;
};

// What the terms with parameters need to know of the models.
struct DistillShapes {
  int num_classes = 19;
  int student_feature_channels = 0, teacher_feature_channels = 0;
};

// The task term (RddTaskTerm with the stages of o.rdd_stages over a run of `iters` iterations), then the
// distillation terms (add_kd_terms). `tse_class_weights`: (C) on the step's device, or undefined
// (unweighted). The distiller is materialized on `device` with its parameters initialised from `seed`.
std::unique_ptr<method::Distiller> make_distiller(const LossOptions& o, int64_t iters, const Tensor& tse_class_weights,
                                                  const DistillShapes& shapes = {}, Device device = Device::cpu(),
                                                  uint64_t seed = 1);
// Every distillation term whose weight is positive, in a fixed order: KD, CWD, CWD feature, AT, FitNet,
// SKD, IFVD, DSD, DIST, CIRKD, adversarial. Terms with parameters register them in d.params() (materialize afterwards).
void add_kd_terms(method::Distiller& d, const LossOptions& o, const DistillShapes& shapes);

// --tfe-direction's names: "released" (KL(aux‖main), the released code) and "paper" (KL(main‖aux), Eq. 6).
const char* tfe_direction_name(method::TfeDirection d);

// --tse-class-weights: "auto" gives the released Cityscapes weights for the cityscapes dataset (on
// `device`, uploaded once), "none" or another dataset nothing.
Tensor tse_class_weights(const std::string& choice, const std::string& dataset, Device device);

}  // namespace rdd::train
