// A trained model's weights file: written by the trainer with what it is for (model, width, classes),
// loaded for eval, predict and a distillation teacher with one set of checks.
//
// Accepts a weights file (`rdd train`/`distill` weights.safetensors, scripts/convert_pth.py output) or a
// training checkpoint (its model.* tensors). Refuses, naming `flag` and the file: an ImageNet backbone
// (that goes to `rdd train --init`), and metadata naming another model, width or class count than the
// `model` built from `model_flag`/`width_flag`. Then loads strictly (every tensor must match by name
// and shape).
#pragma once

#include <string>

#include "models/seg_model.h"

namespace rdd::train {

// weights.safetensors / best.safetensors: the model's state_dict and metadata kind=weights, model,
// num_classes, width, so a teacher file for another architecture is refused by name.
void save_model_weights(const models::SegModel& model, const std::string& path);

void load_model_weights(models::SegModel& model, const std::string& path, const std::string& flag = "--weights",
                        const std::string& model_flag = "--model", const std::string& width_flag = "--width");

}  // namespace rdd::train
