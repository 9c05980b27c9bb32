// A trained model's weights file: written by the trainer with what it is for (model, width, classes, and
// the preset and dataset it was trained with), loaded for eval, predict, export and a distillation
// teacher with one set of checks.
//
// Accepts a weights file (`rdd train`/`distill` weights.safetensors, scripts/convert_pth.py output) or a
// training checkpoint (its model.* tensors). Refuses, naming `flag` and the file: an ImageNet backbone
// (that goes to `rdd train --init`), and metadata naming another model, width or class count than the
// `model` built from `model_flag`/`width_flag`. Then loads strictly (every tensor must match by name
// and shape; NaN or Inf in any is refused, naming the tensor).
#pragma once

#include <map>
#include <string>

#include "models/seg_model.h"
#include "train/run_options.h"

namespace rdd::train {

// weights.safetensors / best.safetensors: the model's state_dict and metadata kind=weights, model,
// num_classes, width (so a teacher file for another architecture is refused by name), plus `extra`
// (the trainer adds preset and dataset).
void save_model_weights(const models::SegModel& model, const std::string& path,
                        const std::map<std::string, std::string>& extra = {});

void load_model_weights(models::SegModel& model, const std::string& path, const std::string& flag = "--weights",
                        const std::string& model_flag = "--model", const std::string& width_flag = "--width");

// What a weights file or checkpoint says it holds, from its header alone ("" / 0 where it does not say).
struct WeightsInfo {
  std::string kind;     // weights | checkpoint | backbone | ""
  std::string model;
  double width = 0;
  int num_classes = 0;
  std::string preset;   // cirkd | mmseg
  std::string dataset;  // cityscapes | camvid | voc | ade20k | list
};
WeightsInfo read_weights_info(const std::string& path);

// The model of eval, predict and export: --model and --width when given (a name, a width > 0), else the
// file's (width 1 when it records none). A flag that disagrees with the file is refused here, naming
// both; a file that does not name its model needs --model.
ModelChoice model_from_weights(const ModelChoice& given, const WeightsInfo& info, const std::string& weights_path);
// --model and --width as given to eval, predict and export (name "" and width 0: not given), checked before
// the weights file is read: a flag's own mistake is named first.
void check_given_model(const ModelChoice& given);

// A value the file also records (--preset, --dataset): the flag when given (it must agree with the file),
// else the file's, else `fallback`.
std::string setting_from_weights(const std::string& given, const std::string& recorded, const std::string& fallback,
                                 const std::string& flag, const std::string& weights_path);

// eval, predict and export in one call: --model/--width and --preset from the flags or else from the weights'
// metadata (flags that disagree with the file are refused, naming both), the model checked; returns what
// the file records (its dataset and classes, for the commands that use them).
WeightsInfo resolve_model_from_weights(ModelChoice& model, std::string& preset, const std::string& weights_path);

}  // namespace rdd::train
