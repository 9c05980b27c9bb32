// ResNet-v1b / v1s backbones (the reference's resnetv1b.py), dilated to output stride 8 or 16.
//
//   stem  v1s: conv3×3 s2 3→64, conv3×3 64→64, conv3×3 64→128 (each +BN+ReLU)   "deep stem"
//         v1b: conv7×7 s2 3→64 +BN+ReLU
//         then maxpool 3×3 s2 p1                                                    → stride 4
//   layer1 planes 64 s1; layer2 planes 128 s2                                      → stride 8
//   OS 8:  layer3 planes 256 s1 dilation 2; layer4 planes 512 s1 dilation 4
//   OS 16: layer3 planes 256 s2;             layer4 planes 512 s1 dilation 2
//   depths: 18, 34 (BasicBlock), 50, 101 (Bottleneck, expansion 4)
//
// Per-block dilation, as the reference's _make_layer: the first block of a dilation-2 layer uses 1,
// of a dilation-4 layer 2; later blocks use the layer's dilation. A BasicBlock's conv1 takes the
// block's dilation and its conv2 the layer's ("previous_dilation"); a Bottleneck dilates only its 3×3.
// The shortcut, where shapes change, is conv1×1 (strided) + BN.
//
// Parameter names: "<prefix>.conv1.weight", "<prefix>.layer3.0.downsample.1.running_var", ... with
// prefix "pretrained" in the segmentation models.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/pooling.h"
#include "models/backbone.h"
#include "models/blocks.h"

namespace rdd::models {

struct ResNetOptions {
  int depth = 18;            // 18, 34, 50, 101
  bool deep_stem = true;     // v1s (true) or v1b (false)
  int output_stride = 8;     // 8 or 16
  double width = 1.0;        // channel multiplier (1 = the reference)
  std::string prefix = "pretrained";
};

class ResNetBlock {
 public:
  ResNetBlock(ModuleList& mods, ParamStore& store, const std::string& name, bool bottleneck, int inplanes,
              int planes, int stride, int dilation, int previous_dilation, bool downsample);
  Tensor forward(const Tensor& x);    // x (N, inplanes, H, W) → (N, planes·expansion, H/stride, W/stride)
  Tensor backward(const Tensor& dy);  // → dx
  Shape trace(LayerTable& t, const Shape& in) const;
  GraphValue record(GraphRecorder& g, GraphValue x) const;  // eval-mode forward as a graph
  void init(uint64_t seed, uint64_t& offset);
  int out_channels() const { return convs_.back().out_channels(); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<ConvBnAct> convs_;              // the residual branch; the last one has no ReLU
  std::unique_ptr<ConvBnAct> downsample_;     // shortcut projection, or identity when null
  layers::ReLU* out_relu_;                    // after the sum
};

// c3 = layer3: (N, 256·e·width, H/8, W/8); c4 = layer4: (N, 512·e·width, H/8, W/8) at OS 8 (e = 4 for
// Bottleneck depths, 1 otherwise; H/16 at OS 16).
class ResNet : public Backbone {
 public:
  ResNet(ModuleList& mods, ParamStore& store, const ResNetOptions& opt);

  Features forward(const Tensor& x) override;
  void backward(const Tensor& dc3, const Tensor& dc4) override;
  FeatureShapes trace(LayerTable& t, const Shape& in) const override;
  // Eval-mode forward as a graph: returns c4 (the aux head's c3 is training-only and not recorded).
  GraphValue record(GraphRecorder& g, GraphValue x) const override;
  void init(uint64_t seed, uint64_t& offset) override;  // Kaiming normal (fan_out) convs, BN γ 1 β 0
  int c3_channels() const override { return c3_channels_; }
  int c4_channels() const override { return c4_channels_; }
  const ResNetOptions& options() const { return opt_; }

 private:
  ResNetOptions opt_;
  std::vector<ConvBnAct> stem_;
  layers::MaxPool2d* maxpool_;
  std::vector<std::vector<ResNetBlock>> layers_;  // layer1..layer4
  int c3_channels_ = 0, c4_channels_ = 0;
};

}  // namespace rdd::models
