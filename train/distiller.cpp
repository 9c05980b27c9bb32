#include "train/distiller.h"

#include <algorithm>
#include <limits>

#include "rdd/adversarial.h"
#include "rdd/cirkd.h"
#include "rdd/kd_terms.h"

namespace rdd::train {

void add_kd_terms(method::Distiller& d, const LossOptions& o, const DistillShapes& shapes) {
  using namespace method;
  auto need_channels = [&](const char* flag) {
    RDD_CHECK(shapes.student_feature_channels > 0 && shapes.teacher_feature_channels > 0, flag,
              ": the feature channels of student and teacher are unknown here");
  };
  if (o.kd > 0) d.add(std::make_unique<LogitKDTerm>(o.kd, o.kd_temperature));
  if (o.cwd > 0) d.add(std::make_unique<ChannelWiseKDTerm>(o.cwd, o.cwd_temperature));
  if (o.cwd_feature > 0) {
    need_channels("--cwd-feature");
    d.add(std::make_unique<CwdFeatureTerm>(d.params(), o.cwd_feature, o.cwd_temperature,
                                           shapes.student_feature_channels, shapes.teacher_feature_channels));
  }
  if (o.at > 0) d.add(std::make_unique<AttentionTerm>(o.at));
  if (o.fitnet > 0) {
    need_channels("--fitnet");
    d.add(std::make_unique<FitNetTerm>(d.params(), o.fitnet, shapes.student_feature_channels,
                                       shapes.teacher_feature_channels));
  }
  if (o.skd > 0) d.add(std::make_unique<SkdTerm>(o.skd));
  if (o.ifvd > 0) d.add(std::make_unique<IfvdTerm>(o.ifvd, shapes.num_classes));
  if (o.dsd > 0) d.add(std::make_unique<DsdTerm>(o.dsd * o.dsd_psd, o.dsd * o.dsd_csd, o.dsd_temperature));
  if (o.dist > 0)
    d.add(std::make_unique<DistTerm>(o.dist, o.dist_beta, o.dist_gamma, o.dist_temperature, o.dist_aux_weight));
  if (o.cirkd > 0) {
    need_channels("--cirkd");
    CirkdOptions c;
    c.num_classes = shapes.num_classes;
    c.pixel_memory_size = o.cirkd_pixel_memory;
    c.region_memory_size = o.cirkd_region_memory;
    c.pixel_contrast_size = o.cirkd_pixel_contrast / shapes.num_classes + 1;
    c.region_contrast_size = o.cirkd_region_contrast / shapes.num_classes + 1;
    c.contrast_temperature = o.cirkd_temperature;
    c.contrast_kd_temperature = o.cirkd_kd_temperature;
    RDD_CHECK(o.cirkd_pixel_queue == "released" || o.cirkd_pixel_queue == "class", "--cirkd-pixel-queue: '",
              o.cirkd_pixel_queue, "' (released or class)");
    c.fill = o.cirkd_pixel_queue == "class" ? PixelQueueFill::klass : PixelQueueFill::released;
    d.add(std::make_unique<CirkdTerm>(d.params(), o.cirkd * o.cirkd_minibatch, o.cirkd * o.cirkd_pixel,
                                      o.cirkd * o.cirkd_region, c, shapes.student_feature_channels,
                                      shapes.teacher_feature_channels));
  }
  if (o.adv > 0)
    d.add(std::make_unique<AdversarialTerm>(o.adv, o.adv_d, shapes.num_classes, o.adv_width,
                                            AdamOptions{o.adv_lr, 0.9, 0.99, 1e-8}));
}

std::unique_ptr<method::Distiller> make_distiller(const LossOptions& o, int64_t iters, const Tensor& tse_class_weights,
                                                  const DistillShapes& shapes, Device device, uint64_t seed) {
  method::RddConfig task = o.rdd;
  task.enabled = !o.rdd_stages.empty();
  if (o.rdd_stages == "tse") task.warmup_iters = 0;  // TSE from iteration 1
  if (o.rdd_stages == "tfe") task.warmup_iters = std::max<int64_t>(iters + 1, std::numeric_limits<int64_t>::max() / 2);  // TFE to the end
  if (o.rdd_stages != "tfe,tse") task.warmup_fraction = 0;
  task.tse.class_weights = tse_class_weights;
  auto d = std::make_unique<method::Distiller>();
  d->add(std::make_unique<method::RddTaskTerm>(task));
  add_kd_terms(*d, o, shapes);
  d->materialize(device, seed);
  return d;
}

const char* tfe_direction_name(method::TfeDirection d) {
  return d == method::TfeDirection::main_aux ? "paper" : "released";
}

Tensor tse_class_weights(const std::string& choice, const std::string& dataset, Device device) {
  if (choice == "auto" && dataset == "cityscapes") return method::cityscapes_class_weights().to(device);
  return Tensor();
}

}  // namespace rdd::train
