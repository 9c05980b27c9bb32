// The pieces every backbone and head is built from:
//
//   ModuleList      owns a model's layer modules, so one call switches them all to train or eval
//   ConvBnAct       conv → BatchNorm → (ReLU | ReLU6 | nothing), forward and backward
//   DropoutUnit     a Dropout site driven by the model's DropoutControl (seed, step, on/off)
//   LayerTable      the shape-only trace behind `rdd info --model`: one row per conv unit with its
//                   output shape, parameters and multiply-adds (dilation handled)
//
// Names: a ConvBnAct registers its conv under `conv_name` and its BN under `bn_name`, the reference
// PyTorch module paths ("pretrained.layer1.0.conv1" / "pretrained.layer1.0.bn1", or
// "head.aspp.b0.0" / "head.aspp.b0.1"), so parameters carry the state_dict keys.
#pragma once

#include <functional>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/activation.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/module.h"
#include "models/graph_recorder.h"

namespace rdd::models {

class ModuleList {
 public:
  template <class M, class... Args>
  M* make(Args&&... args) {
    auto m = std::make_unique<M>(std::forward<Args>(args)...);
    M* raw = m.get();
    modules_.push_back(std::move(m));
    return raw;
  }
  void set_mode(layers::Mode mode) {
    for (auto& m : modules_) m->set_mode(mode);
  }
  size_t size() const { return modules_.size(); }
  // Every BatchNorm2d of the model (for the SyncBN reducer).
  std::vector<layers::BatchNorm2d*> batchnorms() const {
    std::vector<layers::BatchNorm2d*> r;
    for (auto& m : modules_)
      if (auto* bn = dynamic_cast<layers::BatchNorm2d*>(m.get())) r.push_back(bn);
    return r;
  }

 private:
  std::vector<std::unique_ptr<layers::Module>> modules_;
};

// ---- the `rdd info` layer table ----------------------------------------------------------------
struct LayerRow {
  std::string name;        // module path, e.g. "pretrained.layer3.0.conv2"
  std::string op;          // "conv3x3 s1 d2 64→64 +BN+ReLU"
  Shape output;            // (N, C, H, W)
  int64_t params = 0;      // parameters of the unit (conv + BN affine + bias)
  int64_t macs = 0;        // multiply-adds of the conv: N·K·P·Q·(C/groups)·R·S, dilation-correct
  int64_t paper_macs = 0;  // the RDD paper's counter (CIRKD utils/flops.py): dilation ignored, N ignored
};

struct LayerTable {
  std::vector<LayerRow> rows;
  int64_t total_params() const;
  int64_t total_macs() const;
  int64_t total_paper_macs() const;
  // Rows without parameters or MACs (pools, resizes, concats) show how shapes flow.
  void add_shape(const std::string& name, const std::string& op, const Shape& out) {
    rows.push_back({name, op, out, 0, 0, 0});
  }
};

// Gradient readiness during backward (data parallelism overlaps the gradient all-reduce with it):
// called each time a unit's parameter gradients are final, with `flat_begin` = the smallest flat
// offset among that unit's parameters. Backward runs in reverse registration order, so EVERY
// gradient at offsets ≥ flat_begin is final at that moment.
using GradReadyHook = std::function<void(int64_t flat_begin)>;
// The smallest flat offset of the trainable parameters whose names start with `prefix` + "."; −1 if none.
int64_t first_offset_with_prefix(const ParamStore& store, const std::string& prefix);

// Output shape of `conv` on an input of shape `in` (N, C, H, W), and its row in the table.
Shape trace_conv(LayerTable& t, const layers::Conv2d& conv, const Shape& in, const std::string& suffix = "",
                 int64_t extra_params = 0);

// ---- initialisation (Philox, identical on every device) -------------------------------------------
// Every conv takes two Philox streams (weight, bias): offset, offset + 1.
inline uint64_t take_offset(uint64_t& offset) {
  const uint64_t mine = offset;
  offset += 2;
  return mine;
}
// nn.init.kaiming_normal_(w, mode='fan_out', nonlinearity='relu'): N(0, 2/(K·R·S)).
void init_kaiming_normal_fan_out(layers::Conv2d& conv, uint64_t seed, uint64_t offset);

enum class Act { none, relu, relu6 };

class ConvBnAct {
 public:
  ConvBnAct(ModuleList& mods, ParamStore& store, const std::string& conv_name, const std::string& bn_name,
            int in_channels, int out_channels, int kernel_size, layers::Conv2dOptions opt, Act act);

  Tensor forward(const Tensor& x);    // x (N, C, H, W) → (N, K, P, Q)
  Tensor backward(const Tensor& dy);  // dy (N, K, P, Q) → dx (N, C, H, W); accumulates dW, dγ, dβ
  void backward_params_only(const Tensor& dy);  // the model's first layer: no dx
  Shape trace(LayerTable& t, const Shape& in) const;
  GraphValue record(GraphRecorder& g, GraphValue x) const;  // eval-mode forward as a graph (graph_recorder.h)

  // Backbone convs: Kaiming normal (fan_out); head convs (kaiming=false): PyTorch's default. BN: γ 1, β 0.
  void init(bool kaiming, uint64_t seed, uint64_t offset);

  layers::Conv2d* conv() const { return conv_; }
  layers::BatchNorm2d* bn() const { return bn_; }
  int out_channels() const { return conv_->out_channels(); }

 private:
  layers::Conv2d* conv_;
  layers::BatchNorm2d* bn_;
  layers::ReLU* act_ = nullptr;  // nullptr: no activation
  Act act_kind_;
};

// What the model's dropout layers draw from: each forward in training mode advances `step`, and the
// site index separates the layers, so stream offset = step·kSites + site.
struct DropoutControl {
  static constexpr uint64_t kSites = 16;
  bool enabled = true;  // false: identity even in training mode (golden training cases)
  uint64_t seed = 0x5eed;
  uint64_t step = 0;
};

class DropoutUnit {
 public:
  DropoutUnit(ModuleList& mods, const DropoutControl& control, double p, int site);
  Tensor forward(const Tensor& x);
  Tensor backward(const Tensor& dy);
  double p() const { return p_; }

 private:
  layers::Dropout* layer_;
  const DropoutControl& control_;
  double p_;
  int site_;
  bool passed_through_ = false;  // the last forward was the identity
};

// Channel count under the width multiplier: c when width == 1, else max(1, ⌊c·width + 0.5⌋)
// (the rule scripts/torch_models.py uses).
int scaled_channels(int c, double width);

// "conv3x3 s2 d1 g1 3→64"
std::string conv_op_string(const layers::Conv2d& conv);

}  // namespace rdd::models
