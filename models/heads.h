// Segmentation heads (the reference's deeplabv3.py, pspnet.py, *_mobile.py):
//
//   DeepLabHead   ASPP on c4 — 1×1; 3×3 atrous rates 12, 24, 36; image pooling (GAP → 1×1 → BN →
//                 ReLU → bilinear upsample, align_corners) — each +BN+ReLU, concat 5·Ca → 1×1 → Ca
//                 +BN+ReLU + Dropout(0.5); then 3×3 Ca→Ca +BN+ReLU + Dropout(0.1) = "feature";
//                 then the 1×1 classifier (with bias). Ca = 128 (R18, MBV2) or 256 (R50, R101).
//   PSPHead       pyramid pooling on c4: bins 1, 2, 3, 6, each adaptive avg pool → 1×1 C→C/4 +BN+ReLU
//                 → bilinear upsample (align_corners); concat with c4 (2C) → 3×3 → Cp +BN+ReLU +
//                 Dropout(0.1) = "feature"; then the 1×1 classifier. Cp = 128 (R18, MBV2) or 512 (R101).
//   FCNHead       the aux head on c3: 3×3 C→C/4 +BN+ReLU + Dropout(0.1), 1×1 classifier.
//
// Head convs use PyTorch's default initialisation; the reference never re-initialises them.
// Dropout is nn.Dropout (element-wise), identity in eval mode.
#pragma once

#include <string>
#include <vector>

#include "layers/conv2d.h"
#include "layers/pooling.h"
#include "models/blocks.h"

namespace rdd::models {

struct HeadOutputs {
  Tensor logits;   // (N, classes, H, W)
  Tensor feature;  // (N, Ca, H, W): the input of the classifier
};

class SegHead {
 public:
  virtual ~SegHead() = default;
  virtual HeadOutputs forward(const Tensor& x) = 0;  // x (N, C, H, W)
  // d_logits required; d_feature optional (undefined = none). Returns dx (N, C, H, W).
  virtual Tensor backward(const Tensor& d_logits, const Tensor& d_feature) = 0;
  virtual Shape trace(LayerTable& t, const Shape& in) const = 0;  // returns the logits' shape
  // Eval-mode forward as a graph (graph_recorder.h): returns the logits.
  virtual GraphValue record(GraphRecorder& g, GraphValue x) const = 0;
  virtual void init(uint64_t seed, uint64_t& offset) = 0;
  virtual int feature_channels() const = 0;  // channels of HeadOutputs::feature
};

class DeepLabHead : public SegHead {
 public:
  DeepLabHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout, const std::string& prefix,
              int in_channels, int width, int num_classes);
  HeadOutputs forward(const Tensor& x) override;
  Tensor backward(const Tensor& d_logits, const Tensor& d_feature) override;
  Shape trace(LayerTable& t, const Shape& in) const override;
  GraphValue record(GraphRecorder& g, GraphValue x) const override;
  void init(uint64_t seed, uint64_t& offset) override;
  int feature_channels() const override { return classifier_->in_channels(); }

 private:
  std::string prefix_;
  int width_;
  std::vector<ConvBnAct> branches_;  // b0 (1×1), b1..b3 (atrous)
  layers::AdaptiveAvgPool2d* gap_;   // b4: image pooling
  ConvBnAct pool_conv_;
  ConvBnAct project_;
  DropoutUnit project_dropout_;
  ConvBnAct block_;
  DropoutUnit block_dropout_;
  layers::Conv2d* classifier_;
  int64_t h_ = 0, w_ = 0;  // spatial size of the last forward (for the upsample's backward)
};

class PSPHead : public SegHead {
 public:
  PSPHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout, const std::string& prefix,
          int in_channels, int width, int num_classes);
  HeadOutputs forward(const Tensor& x) override;
  Tensor backward(const Tensor& d_logits, const Tensor& d_feature) override;
  Shape trace(LayerTable& t, const Shape& in) const override;
  GraphValue record(GraphRecorder& g, GraphValue x) const override;
  void init(uint64_t seed, uint64_t& offset) override;
  int feature_channels() const override { return classifier_->in_channels(); }

  static constexpr int kBins[4] = {1, 2, 3, 6};

 private:
  std::string prefix_;
  int in_channels_, width_;
  std::vector<ConvBnAct> bin_convs_;  // C → C/4
  std::vector<layers::AdaptiveAvgPool2d*> pools_;
  ConvBnAct block_;
  DropoutUnit block_dropout_;
  layers::Conv2d* classifier_;
  int64_t h_ = 0, w_ = 0;
};

class FCNHead {
 public:
  FCNHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout, const std::string& prefix,
          int in_channels, int num_classes);
  Tensor forward(const Tensor& x);    // x (N, C, H, W) → logits (N, classes, H, W)
  Tensor backward(const Tensor& d_logits);  // → dx
  Shape trace(LayerTable& t, const Shape& in) const;
  void init(uint64_t seed, uint64_t& offset);

 private:
  ConvBnAct block_;
  DropoutUnit dropout_;
  layers::Conv2d* classifier_;
};

}  // namespace rdd::models
