// A dilated backbone: the image → c3 (the aux head's input) and c4 (the head's input), both at the
// output stride. ResNet (resnet.h) has both; MobileNetV2 (mobilenetv2.h) only c4, so its models have no
// aux head. SegModel (seg_model.h) holds one behind this interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/tensor.h"
#include "models/blocks.h"
#include "models/graph_recorder.h"

namespace rdd::models {

class Backbone {
 public:
  virtual ~Backbone() = default;

  struct Features {
    Tensor c3;  // (N, c3_channels(), H/8, W/8) at OS 8; undefined when c3_channels() == 0
    Tensor c4;  // (N, c4_channels(), H/8, W/8) at OS 8
  };
  struct FeatureShapes {
    Shape c3, c4;  // c3 empty when c3_channels() == 0
  };

  virtual Features forward(const Tensor& x) = 0;  // x (N, 3, H, W)
  // dc4 required, dc3 optional (undefined: no gradient from the aux head). No dx for the image.
  virtual void backward(const Tensor& dc3, const Tensor& dc4) = 0;
  // Fills the `rdd info` table; returns the features' shapes for input `in` (N, 3, H, W).
  virtual FeatureShapes trace(LayerTable& t, const Shape& in) const = 0;
  // The eval-mode forward as a graph (graph_recorder.h): x (N, 3, H, W) → c4. c3 feeds only the aux head,
  // which is training-only, so it is not recorded.
  virtual GraphValue record(GraphRecorder& g, GraphValue x) const = 0;
  virtual void init(uint64_t seed, uint64_t& offset) = 0;
  virtual int c3_channels() const = 0;  // 0: no c3
  virtual int c4_channels() const = 0;

  // Data parallelism: during backward, the hook hears each block's smallest flat offset once that
  // block's gradients are final, then 0 (see GradReadyHook). `store` gives the offsets.
  void set_grad_ready_hook(const GradReadyHook* hook, const ParamStore* store) {
    hook_ = hook;
    hook_store_ = store;
  }

 protected:
  // The k-th block of the backward order (named `name`, the prefix of its parameters) is done.
  void block_gradients_ready(size_t k, const std::string& name);
  // Everything is done (the stem registered first).
  void all_gradients_ready() const;

 private:
  bool hooked() const { return hook_ && *hook_; }
  const GradReadyHook* hook_ = nullptr;
  const ParamStore* hook_store_ = nullptr;
  std::vector<int64_t> block_offsets_;  // per block in backward order, filled by the first hooked backward
};

}  // namespace rdd::models
