// rdd's own deployment forward: a model's recorded eval graph (models/graph_recorder.h) run on rdd's layers,
// optionally with every BatchNorm that directly follows a convolution folded into it (deploy/bn_folding.h)
// — what an exported model computes, on rdd's CPU or CUDA kernels. `rdd bench --mode forward --fold-bn`
// times it beside the unfolded forward; tests check it against SegModel::forward.
//
//   model->set_mode(layers::Mode::eval);
//   GraphExecutor exec(*model, /*fold_bn=*/true);  // records the model once; folded weights on its device
//   Tensor logits = exec.run(images);               // images (N, 3, H, W) f32 → (N, classes, H/8, W/8)
//
// Unfolded, it makes the same layer calls in the same order as SegModel::forward in eval mode: the
// outputs are bitwise equal. Folded, they differ by f32 rounding. Intermediate tensors are released after
// their last use. The executor reads the model's parameters when it is built: rebuild it after new weights.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/tensor.h"
#include "models/graph_recorder.h"
#include "models/seg_model.h"

namespace rdd::deploy {

class GraphExecutor : private models::GraphRecorder {
 public:
  GraphExecutor(const models::SegModel& model, bool fold_bn);

  // image (N, 3, H, W) f32 on the model's device → the main logits (N, classes, H/8, W/8).
  Tensor run(const Tensor& image) const;

  int folded_batchnorms() const { return folded_; }
  int batchnorms() const { return batchnorms_; }  // all BatchNorms recorded (folded or not)

 private:
  enum class Kind { conv, folded_conv, batchnorm, relu, maxpool, adaptive_avgpool, resize, concat, add, none };
  struct Op {
    Kind kind = Kind::none;
    std::vector<int> inputs;  // value ids (value 0 is the image, value k + 1 the output of op k)
    const layers::Conv2d* conv = nullptr;
    const layers::BatchNorm2d* bn = nullptr;
    Tensor weight, bias;  // folded_conv: the folded parameters on the model's device
    bool flag = false;    // relu: relu6; resize: align_corners
    layers::MaxPool2dOptions pool;
    int out_h = 0, out_w = 0;
  };

  models::GraphValue push(Op op);
  models::GraphValue conv(const layers::Conv2d& conv, models::GraphValue x) override;
  models::GraphValue batchnorm(const layers::BatchNorm2d& bn, models::GraphValue x) override;
  models::GraphValue relu(models::GraphValue x, bool relu6, const std::string& name) override;
  models::GraphValue maxpool(models::GraphValue x, const layers::MaxPool2dOptions& o, const std::string& name) override;
  models::GraphValue adaptive_avgpool(models::GraphValue x, int out_h, int out_w, const std::string& name) override;
  models::GraphValue resize_bilinear_to(models::GraphValue x, models::GraphValue size_of, bool align_corners,
                                        const std::string& name) override;
  models::GraphValue concat_channels(const std::vector<models::GraphValue>& xs, const std::string& name) override;
  models::GraphValue add(models::GraphValue a, models::GraphValue b, const std::string& name) override;

  Device device_;
  bool fold_bn_;
  std::vector<Op> ops_;
  std::vector<int> uses_;  // per value: how many op inputs (and the output) read it
  int output_ = -1;
  int folded_ = 0, batchnorms_ = 0;
};

}  // namespace rdd::deploy
