// `rdd info --model NAME [--input HxW] [--num-classes N] [--width W]`: a model's parameter count, a
// per-layer table (output shape, parameters, multiply-adds) and the forward FLOPs at a resolution;
// and the `kind=model` golden runner of `rdd selftest --golden` (models/golden.h does the work).
#pragma once

#include <string>
#include <vector>

#include "apps/golden.h"

namespace rdd::apps {

struct ModelInfoOptions {
  std::string model;           // empty: no model report
  std::string input = "512x1024";
  int num_classes = 19;
  double width = 1.0;
  bool layers = true;          // print the per-layer table
};

// Parses "HxW" (also "NxCxHxW" is refused with a message naming --input).
std::pair<int, int> parse_input_size(const std::string& s);

// Prints the report; returns the exit code.
int print_model_info(const ModelInfoOptions& o);

// kind=model golden cases.
std::vector<GoldenOutput> run_golden_model(const SafetensorsFile& file, const std::string& what, Device device,
                                           double rtol);

}  // namespace rdd::apps
