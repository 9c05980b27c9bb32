// Loading a trained model's weights for eval, predict and a distillation teacher — one set of checks.
//
// Accepts a weights file (`rdd train`/`distill` weights.safetensors, scripts/convert_pth.py output) or a
// training checkpoint (its model.* tensors). Refuses, naming `flag` and the file: an ImageNet backbone
// (that goes to `rdd train --init`), and metadata naming another model, width or class count than the
// `model` built from `model_flag`/`width_flag`. Then loads strictly (every tensor must match by name
// and shape).
#pragma once

#include <string>

#include "models/seg_model.h"

namespace rdd::apps {

void load_model_weights(models::SegModel& model, const std::string& path, const std::string& flag = "--weights",
                        const std::string& model_flag = "--model", const std::string& width_flag = "--width");

}  // namespace rdd::apps
