// A model's eval-mode forward as a sequence of operations on values, for whatever wants the network as
// a graph rather than as one computation: the ONNX exporter (deploy/onnx_graph_builder.h) and rdd's own
// deployment forward with BatchNorm folded into the convolutions (deploy/graph_executor.h).
//
//   class Printer : public GraphRecorder { ... };          // implements the operations below
//   Printer p;
//   GraphValue logits = model.record_main(p, p.image());  // the main head's logits, as forward() makes them
//
// Every module's record() sits beside its forward() and walks the same structure in eval mode: dropout is
// the identity and is not recorded; BatchNorm uses its running statistics; aux heads (training only) are
// not recorded. A GraphValue is the recorder's own handle for a 4-D NCHW tensor; the recorder decides what
// it holds (a tensor, a node output name, a shape). Operations name what they come from (the module path:
// "pretrained.layer1.0.bn1.relu") so a graph reads like the model.
//
// Nothing here knows a file format or a model: a recorder sees convolutions, batch norms and pools.
#pragma once

#include <string>
#include <vector>

#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"
#include "layers/pooling.h"

namespace rdd::models {

struct GraphValue {
  int id = -1;
  bool valid() const { return id >= 0; }
};

class GraphRecorder {
 public:
  virtual ~GraphRecorder() = default;

  // y = conv(x) (+ bias when the conv has one), with the conv's stride, padding, dilation and groups.
  // x (N, C, H, W) → (N, K, P, Q)
  virtual GraphValue conv(const layers::Conv2d& conv, GraphValue x) = 0;
  // Eval-mode BatchNorm: (x − running_mean) / sqrt(running_var + eps) · weight + bias. Same shape.
  virtual GraphValue batchnorm(const layers::BatchNorm2d& bn, GraphValue x) = 0;
  // max(x, 0), or min(max(x, 0), 6) with relu6. Same shape.
  virtual GraphValue relu(GraphValue x, bool relu6, const std::string& name) = 0;
  // layers::maxpool2d_forward: −∞ padding. (N, C, H, W) → (N, C, OH, OW)
  virtual GraphValue maxpool(GraphValue x, const layers::MaxPool2dOptions& o, const std::string& name) = 0;
  // layers::adaptive_avgpool2d_forward: PyTorch's bins. (N, C, H, W) → (N, C, out_h, out_w)
  virtual GraphValue adaptive_avgpool(GraphValue x, int out_h, int out_w, const std::string& name) = 0;
  // layers::bilinear_resize_forward of x to the spatial size of `size_of`. (N, C, h, w) → (N, C, H, W)
  virtual GraphValue resize_bilinear_to(GraphValue x, GraphValue size_of, bool align_corners,
                                        const std::string& name) = 0;
  // Channel concatenation in order. (N, C_i, H, W) → (N, ΣC_i, H, W)
  virtual GraphValue concat_channels(const std::vector<GraphValue>& xs, const std::string& name) = 0;
  // a + b, same shape.
  virtual GraphValue add(GraphValue a, GraphValue b, const std::string& name) = 0;
};

}  // namespace rdd::models
