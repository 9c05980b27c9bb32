// Segmentation models built by name, and what the trainer, the distiller and `rdd info` use of them.
//
//   auto model = build_model("deeplabv3_resnet18", {.num_classes = 19});
//   model->params().materialize(Device::cuda(0));
//   model->init_weights(seed);                       // or load_weights(*model, path)
//   NetOutputs out = model->forward(images);         // images (N, 3, H, W) f32
//   model->backward(d_main, d_aux, {});              // accumulates into params().flat_grads()
//
// Registered: deeplabv3_resnet101, deeplabv3_resnet50, deeplabv3_resnet18, psp_resnet101,
// psp_resnet18 (ResNet-v1s backbones at output stride 8, FCN aux head on layer3), deeplabv3_mobilenetv2,
// psp_mobilenetv2 (no aux head). Outputs are at stride 8 (H/8 × W/8); "feature" is the head's 3×3
// conv + BN + ReLU + Dropout output, the classifier's input.
//
// Parameters and buffers are registered under the reference's state_dict keys (pretrained.*, head.*,
// auxlayer.*). `width` multiplies every channel count (see scaled_channels) for small test and demo
// models; width 1 is the reference. Train mode caches what backward needs (and applies dropout);
// eval mode (the frozen teacher) keeps no activations and refuses backward.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/net_outputs.h"
#include "engine/params.h"
#include "engine/tensor.h"
#include "models/backbone.h"
#include "models/blocks.h"
#include "models/graph_recorder.h"
#include "models/heads.h"

namespace rdd::models {

struct ModelOptions {
  int num_classes = 19;
  double width = 1.0;
};

class SegModel {
 public:
  SegModel(const std::string& name, const ModelOptions& opt);
  SegModel(const SegModel&) = delete;
  SegModel& operator=(const SegModel&) = delete;

  const std::string& name() const { return name_; }
  const ModelOptions& options() const { return opt_; }
  bool has_aux() const { return aux_ != nullptr; }
  int feature_channels() const;  // channels of NetOutputs::feature (the head's classifier input)
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }

  void set_mode(layers::Mode mode);
  layers::Mode mode() const { return mode_; }
  // Dropout on/off in training mode (off: training-mode golden cases), and its random stream.
  void set_dropout_enabled(bool enabled) { dropout_.enabled = enabled; }
  void set_dropout_seed(uint64_t seed, uint64_t step = 0) {
    dropout_.seed = seed;
    dropout_.step = step;
  }
  // SyncBN: every BatchNorm2d of the model gets this reducer.
  void set_stats_reducer(const layers::StatsReducer& reducer);
  // Data parallelism: called during backward whenever a unit's gradients are final (GradReadyHook),
  // last unit first, ending with 0 (everything final). Empty function: no calls.
  void set_grad_ready_hook(GradReadyHook hook);

  // The reference initialisation from Philox(seed): backbone convs Kaiming normal (fan_out), head
  // convs PyTorch's default, BN γ 1, β 0, running statistics reset. Needs a materialized store.
  void init_weights(uint64_t seed);

  // x (N, 3, H, W), f32, on params().device(). The outputs may share storage with activations the
  // layers cached for backward (feature is the last ReLU's output): read them, do not write them.
  NetOutputs forward(const Tensor& x);
  // After a training-mode forward. d_main required; d_aux / d_feature optional (undefined = zero;
  // without d_aux the aux head's cached activations stay until the next forward).
  // Accumulates into the parameters' gradients (params().zero_grad() first for a fresh step).
  void backward(const Tensor& d_main, const Tensor& d_aux, const Tensor& d_feature);

  // Shape-only pass for `rdd info`: one row per conv unit at input `in` (N, 3, H, W).
  LayerTable trace(const Shape& in) const;
  // The eval-mode forward of the main logits as a graph (models/graph_recorder.h): backbone and main
  // head; the aux head is training-only and not recorded. image (N, 3, H, W) → logits (N, classes, H/8, W/8).
  GraphValue record_main(GraphRecorder& g, GraphValue image) const;

 private:
  std::string name_;
  ModelOptions opt_;
  ParamStore store_;
  ModuleList mods_;
  DropoutControl dropout_;
  GradReadyHook grad_ready_;
  int64_t aux_offset_ = -1, head_offset_ = -1;  // first flat offsets of the aux and main heads
  layers::Mode mode_ = layers::Mode::train;
  std::unique_ptr<Backbone> backbone_;
  std::unique_ptr<SegHead> head_;
  std::unique_ptr<FCNHead> aux_;
  bool backward_ready_ = false;  // a training forward happened since the last backward
};

// The registry.
std::vector<std::string> model_names();
std::string known_model_names();  // "deeplabv3_resnet101, deeplabv3_resnet50, ...": for messages and help
bool is_model_name(const std::string& name);
std::unique_ptr<SegModel> build_model(const std::string& name, const ModelOptions& opt = {});

}  // namespace rdd::models
