#include "train/distiller.h"

namespace rdd::train {

std::unique_ptr<method::Distiller> make_distiller(const LossOptions& o, int64_t iters, const Tensor& tse_class_weights) {
  method::RddConfig task = o.rdd;
  task.enabled = !o.rdd_stages.empty();
  if (o.rdd_stages == "tse") task.warmup_iters = 0;          // TSE from iteration 1
  if (o.rdd_stages == "tfe") task.warmup_iters = iters + 1;  // TFE to the end
  task.tse.class_weights = tse_class_weights;
  auto d = std::make_unique<method::Distiller>();
  d->add(std::make_unique<method::RddTaskTerm>(task));
  if (o.kd > 0) d->add(std::make_unique<method::LogitKDTerm>(o.kd, o.kd_temperature));
  if (o.cwd > 0) d->add(std::make_unique<method::ChannelWiseKDTerm>(o.cwd, o.cwd_temperature));
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
