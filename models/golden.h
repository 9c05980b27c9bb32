// Model golden cases: a safetensors file written by scripts/make_golden_models.py (weights under their
// state_dict names + golden.* tensors, metadata kind=model, model, num_classes, width, mode), run
// through rdd's model and compared output by output.
//
//   SafetensorsFile f = read_safetensors(path);            // the caller opens the file
//   std::vector<GoldenCheck> checks = run_model_golden(f, Device::cpu());
//
// Each check is the relative error ‖rdd − expected‖ / ‖expected‖ of one output: main, aux and feature
// logits; in training mode (dropout off, BN on batch statistics) also every parameter gradient and
// every buffer after the step (running statistics, num_batches_tracked).
#pragma once

#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/safetensors.h"

namespace rdd::models {

struct GoldenCheck {
  std::string what;        // "main", "grad pretrained.conv1.weight", ...
  double rel_error = 0;
  double tolerance = 0;
  bool pass = false;
  std::string detail;      // shapes on a mismatch
};

// ‖got − want‖ / max(‖want‖, tiny), both read as double (any devices).
double relative_error(const Tensor& got, const Tensor& want);

std::vector<GoldenCheck> run_model_golden(const SafetensorsFile& file, Device device, double tolerance = 1e-4,
                                          const std::string& what = "golden case");

}  // namespace rdd::models
