// What a consumer of an exported model needs to know to feed it and read it, written into the ONNX model's
// metadata_props (string key → string value) and read back by `rdd export --check`:
//
//   model, width, num_classes     the rdd architecture (rdd builds the same network from these three)
//   dataset, class_names          class names as a JSON array, index = output channel / label id
//   palette                       the colour of each class as [[r, g, b], ...] (`rdd predict`'s)
//   input                         "image": float32 (batch, 3, H, W), NCHW
//   input_size                    "512x1024", or "dynamic"
//   channel_order, mean, std      image[c] = (pixel[c] − mean[c]) / std[c] for 8-bit pixels (0..255) with
//   normalization                 the channels in channel_order ("BGR" for the cirkd preset, "RGB" for mmseg);
//                                 mean and std are JSON arrays in that order; `normalization` says it in words
//   preset                        the rdd preset those come from (cirkd, mmseg)
//   outputs                       what each output is, in words
//   logits_stride                 8 (the head's resolution) or 1 (--resize-to-input)
//   fold_bn, argmax, resize_to_input, opset   how it was exported ("true"/"false", a number)
//   adaptive_pools                how each adaptive pool / resize was written (deploy/onnx_graph_builder.h)
//   requires                      run-time conditions of a dynamic-size graph, or "" when none
//   weights, producer             the weights file it was exported from; "rdd <version>"
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/augment.h"
#include "data/image.h"

namespace rdd::deploy {

struct DeploymentInfo {
  std::string model;
  double width = 1.0;
  int num_classes = 0;
  std::string dataset;
  std::vector<std::string> class_names;
  data::Palette palette;  // one colour per class, or empty
  std::string preset;
  data::Normalization norm;
  int64_t height = -1, width_px = -1;  // static input size, −1: dynamic
  bool fold_bn = true, argmax = false, resize_to_input = false;
  int opset = 0;
  std::string weights;  // file name
  bool dynamic() const { return height < 0; }
};

// The key/value pairs above, in that order (adaptive_pools and requires come from the export itself).
std::vector<std::pair<std::string, std::string>> deployment_metadata(const DeploymentInfo& info,
                                                                      const std::vector<std::string>& pool_notes,
                                                                      const std::vector<std::string>& requirements);

// Reads them back; refuses (naming `what`, the file) a model without rdd's keys or with malformed values.
DeploymentInfo parse_deployment_metadata(const std::map<std::string, std::string>& props, const std::string& what);

}  // namespace rdd::deploy
