// MobileNetV2 backbone (the reference's mobilenetv2.py), final 1×1 conv and classifier removed,
// dilated to output stride 8 the CSAIL way (`_nostride_dilate`).
//
//   features.0        conv3×3 s2 3→32 +BN+ReLU6
//   features.1..17    inverted residuals (t, c, n, s): (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2)
//                     (6,96,3,1) (6,160,3,2) (6,320,1,1); output 320 channels
//   an inverted residual: [pw 1×1 inp→inp·t +BN+ReLU6] (absent when t = 1), dw 3×3 +BN+ReLU6,
//                         pw-linear 1×1 → oup +BN; plus x when stride 1 and inp == oup
//   OS 8: features 7–13 (64-, 96-ch stages): block 7's stride-2 dw conv → stride 1, dilation 1;
//         every other 3×3 dilation 2. Features 14–17: block 14's stride-2 conv → stride 1,
//         dilation 2; the rest dilation 4 (padding = dilation throughout).
//
// Parameter names: "<prefix>.features.0.0.weight", "<prefix>.features.3.conv.4.running_mean", ...
// with prefix "pretrained.net" in the segmentation models.
#pragma once

#include <string>
#include <vector>

#include "models/backbone.h"
#include "models/blocks.h"

namespace rdd::models {

class InvertedResidual {
 public:
  InvertedResidual(ModuleList& mods, ParamStore& store, const std::string& name, int inp, int oup, int stride,
                   int dilation, int expand_ratio, bool residual);
  Tensor forward(const Tensor& x);    // x (N, inp, H, W) → (N, oup, H/stride, W/stride)
  Tensor backward(const Tensor& dy);  // → dx
  Shape trace(LayerTable& t, const Shape& in) const;
  GraphValue record(GraphRecorder& g, GraphValue x) const;  // eval-mode forward as a graph
  void init(uint64_t seed, uint64_t& offset);
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::vector<ConvBnAct> convs_;
  bool residual_;
};

// c4 only (no c3: its models have no aux head): (N, 320·width, H/8, W/8).
class MobileNetV2 : public Backbone {
 public:
  MobileNetV2(ModuleList& mods, ParamStore& store, double width = 1.0, const std::string& prefix = "pretrained.net");
  Features forward(const Tensor& x) override;
  void backward(const Tensor& dc3, const Tensor& dc4) override;  // dc3 must be undefined
  FeatureShapes trace(LayerTable& t, const Shape& in) const override;
  GraphValue record(GraphRecorder& g, GraphValue x) const override;  // eval-mode forward as a graph: c4
  void init(uint64_t seed, uint64_t& offset) override;  // N(0, 2/(k·k·out)) convs, BN γ 1 β 0
  int c3_channels() const override { return 0; }
  int c4_channels() const override { return out_channels_; }

 private:
  ConvBnAct stem_;
  std::vector<InvertedResidual> blocks_;
  int out_channels_ = 0;
};

}  // namespace rdd::models
