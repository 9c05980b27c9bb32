// `rdd export --check model.onnx --weights W`: proves that an exported model computes what rdd computes.
//
// From the model's metadata_props (deploy/deployment_metadata.h) rdd rebuilds the network, loads W, and
// makes the check's inputs at the model's static size (or at each of `sizes` for a dynamic one):
//
//   random-HxW     2 images of N(0, 1) noise in the normalised space (batch 2 checks the batch dimension)
//   sceneK-HxW     synthetic street scenes (data/synth.h) turned into model input exactly as the metadata
//                  says (pixels 0..255 in channel_order, minus mean, over std)
//
// rdd's outputs come from SegModel::forward on `device` (--device: auto, cpu, cuda, cuda:N; not from the
// recorded graph), upsampled with align_corners and argmaxed as the export was (`rdd predict`'s protocol).
// scripts/onnx_run.py runs the same inputs in ONNX Runtime (Python), which also reports the metadata it reads
// and its timing. Per case and output the check prints max |ort − rdd| and that divided by max |rdd| ("rel":
// the error relative to the output's scale), and for labels the share of equal pixels. The times beside them
// are the same graph (main head, BN as exported) on rdd's kernels on that device (deploy/graph_executor.h)
// and in ONNX Runtime.
// It passes when every rel ≤ rtol and every label agreement ≥ min_agreement (and ONNX Runtime read the
// model's name from the metadata).
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "deploy/deployment_metadata.h"
#include "deploy/graph_executor.h"
#include "engine/tensor.h"
#include "models/seg_model.h"

namespace rdd::apps {

struct OnnxCheckOptions {
  std::string onnx_path;
  std::string weights;
  std::vector<std::pair<int, int>> sizes;  // for a dynamic model; empty: 64x96 and 90x120
  int scenes = 2;                          // synthetic scenes per size
  int repeat = 1;                          // timed runs per case (after one warm-up), rdd and ONNX Runtime
  double rtol = 1e-4;
  double min_agreement = 0.999;
  std::string python = "/usr/bin/python3";
  std::string script;  // empty: scripts/onnx_run.py in rdd's source tree
  std::string device = "auto";  // rdd's side: auto, cpu, cuda, cuda:N (train/resolve_device.h)
  uint64_t seed = 1;
};

struct OnnxCheckRow {
  std::string case_name, output;
  std::string shape;
  double max_abs = 0, rel = 0;
  double agreement = -1;  // labels: share of equal pixels; −1 for logits
  double rdd_ms = 0, ort_ms = 0;
};

struct OnnxCheckReport {
  bool passed = false;
  std::vector<OnnxCheckRow> rows;
  double worst_rel = 0;
  double worst_agreement = 1;  // 1 when the model has no labels output
  std::string onnxruntime_version;
};

// rdd's side of one case: `image` (N, 3, H, W) f32 on the CPU, run on the model's device. The outputs come
// from SegModel::forward, finished as the export was (upsampled to the image with align_corners when
// info.resize_to_input, argmaxed when info.argmax) and brought back to the CPU: logits (N, classes, h, w)
// f32, labels (N, h, w) i32 or undefined. The time is `graph`'s forward finished the same way, the device
// synchronised around each run: the median of `repeat` runs after a warm-up.
struct RddCaseOutputs {
  Tensor logits, labels;
  double ms = 0;
};
RddCaseOutputs run_rdd_case(models::SegModel& model, const deploy::GraphExecutor& graph,
                            const deploy::DeploymentInfo& info, const Tensor& image, int repeat);

// Prints the table and the verdict to `out`. Throws (rdd::Error) on unusable input: a file that is not an
// ONNX model from `rdd export`, weights of another model, a Python without ONNX Runtime.
OnnxCheckReport run_onnx_check(const OnnxCheckOptions& o, std::FILE* out = stdout);

}  // namespace rdd::apps
