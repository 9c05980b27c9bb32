// `rdd export`'s library half: a model's eval-mode main-head forward (models/graph_recorder.h) as an ONNX
// model — written with Debian's ONNX C++ library, validated by its checker and its shape inference before
// anyone gets the bytes.
//
//   OnnxExportOptions o;  o.height = 512; o.width = 1024;  o.argmax = true;
//   OnnxExport e = export_onnx(*model, o, info);   // info: deployment_metadata.h (model, classes, normalisation)
//   write e.bytes to model.onnx
//
// Graph: input "image" float32 (batch, 3, H, W); output "logits" (batch, classes, H/8, W/8), or (batch,
// classes, H, W) with resize_to_input (bilinear, align_corners, as `rdd predict`); with argmax also
// "labels" int64 (batch, H', W'). The batch is always a named dimension; H and W are numbers (static) or
// names (dynamic). Refused, naming the reason: an opset outside [kMinOnnxOpset, max_onnx_opset()], an input
// size the network cannot take or that an op cannot express exactly (deploy/onnx_graph_builder.h), weights
// over protobuf's 2 GiB limit for one file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "deploy/deployment_metadata.h"
#include "models/seg_model.h"

namespace rdd::deploy {

// Resize with coordinate_transformation_mode (align_corners, pytorch_half_pixel) and Clip with min/max
// inputs exist from opset 11.
constexpr int kMinOnnxOpset = 11;
// The newest opset of the default domain that the linked ONNX library knows (17 for Debian 12's ONNX 1.12).
int max_onnx_opset();

struct OnnxExportOptions {
  int64_t height = -1, width = -1;  // static input size; −1, −1: dynamic H and W
  int opset = 17;
  bool fold_bn = true;
  bool argmax = false;
  bool resize_to_input = false;
};

struct OnnxExport {
  std::string bytes;                   // the serialized, checked ModelProto
  std::vector<std::string> notes;      // how each adaptive pool / resize was written
  std::vector<std::string> requirements;  // run-time conditions of a dynamic graph
  std::map<std::string, int> op_counts;   // node op_type → count
  int batchnorms = 0, folded_batchnorms = 0;
  int64_t parameters = 0;              // float elements in the initializers
  std::string input_desc;              // "image float32 [batch,3,64,80]"
  std::vector<std::string> output_descs;
};

// The model's parameters may be on any device. `info` supplies the metadata_props (deployment_metadata.h);
// its size/fold/argmax/opset fields are overwritten from `o`.
OnnxExport export_onnx(const models::SegModel& model, const OnnxExportOptions& o, DeploymentInfo info);

}  // namespace rdd::deploy
