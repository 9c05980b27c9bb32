// The ONNX exporter's core: a GraphRecorder (models/graph_recorder.h) that writes each recorded operation
// as ONNX nodes into a GraphProto (Debian's libonnx protobuf classes), exactly — or refuses, naming the op:
//
//   conv                Conv (strides, pads, dilations, group) with the weights as initializers
//   batchnorm           folded into the Conv before it (deploy/bn_folding.h) when that conv's output has
//                       no other reader, else BatchNormalization (epsilon)
//   relu / relu6        Relu / Clip(0, 6)
//   maxpool             MaxPool (no ceil_mode: ONNX's ceil rule differs from PyTorch's at the edge)
//   adaptive_avgpool    GlobalAveragePool, AveragePool, or Slice+ReduceMean per bin (deploy/adaptive_pool_plan.h)
//   resize_bilinear_to  Expand when the source is 1×1 (every output pixel is that value, as in rdd), nothing
//                       when the sizes are equal, else Resize (linear; align_corners, or pytorch_half_pixel)
//                       to sizes taken from the target's shape. Refused where ONNX's rule and rdd's differ:
//                       a one-pixel output (ONNX's align_corners divides by output size − 1 = 0 there, and its
//                       pytorch_half_pixel reads the first pixel where rdd reads the centre). A dynamic-size
//                       graph cannot be checked at export: such resizes are listed in requirements().
//   concat / add        Concat(axis 1) / Add
//
//   onnx::GraphProto g;
//   OnnxGraphBuilder b(g, {.opset = 17, .fold_bn = true, .height = 512, .width = 1024});
//   GraphValue image = b.add_input("image", 3);
//   b.add_output(model.record_main(b, image), "logits");
//
// Shapes: the batch is always a named dimension ("batch"); H and W are numbers for a static input size or
// named ("height", "width") for a dynamic one, and every static size is tracked through the graph (that is
// how the static forms above are chosen and the bad sizes refused). Values are named after the modules
// they come from ("pretrained.layer1.0.bn1.relu"); weights keep their state_dict names, folded ones say so.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "models/graph_recorder.h"

namespace onnx {
class GraphProto;
class NodeProto;
class TensorProto;
}  // namespace onnx

namespace rdd::deploy {

struct OnnxGraphOptions {
  int opset = 17;
  bool fold_bn = true;
  int64_t height = -1, width = -1;  // the static input size; −1, −1: dynamic
};

// One dimension: a number, or a name (dynamic; "" when nothing names it).
struct OnnxDim {
  int64_t value = -1;
  std::string param;
  bool known() const { return value >= 0; }
  std::string str() const { return known() ? std::to_string(value) : param.empty() ? "?" : param; }
};

class OnnxGraphBuilder : public models::GraphRecorder {
 public:
  OnnxGraphBuilder(onnx::GraphProto& graph, const OnnxGraphOptions& o);

  // A graph input: float32 (batch, channels, H, W).
  models::GraphValue add_input(const std::string& name, int64_t channels);
  // Makes v a graph output called `name` (renaming the value when nothing else reads it, else an Identity).
  void add_output(models::GraphValue v, const std::string& name);
  // x (N, C, H, W) f32 → int64 (N, H, W): the index of the largest channel (the first one on ties).
  models::GraphValue argmax_channels(models::GraphValue x, const std::string& name);

  const std::vector<OnnxDim>& shape(models::GraphValue v) const;
  std::string shape_str(models::GraphValue v) const;  // "[batch,19,64,128]"
  // How each adaptive pool and resize was written ("head.psp.avgpool3 8x8→3x3: rows 8→3 as ...").
  const std::vector<std::string>& notes() const { return notes_; }
  // Conditions a dynamic-size graph needs at run time that the export could not check.
  const std::vector<std::string>& requirements() const { return requirements_; }
  int batchnorms() const { return batchnorms_; }
  int folded_batchnorms() const { return folded_; }

  models::GraphValue conv(const layers::Conv2d& conv, models::GraphValue x) override;
  models::GraphValue batchnorm(const layers::BatchNorm2d& bn, models::GraphValue x) override;
  models::GraphValue relu(models::GraphValue x, bool relu6, const std::string& name) override;
  models::GraphValue maxpool(models::GraphValue x, const layers::MaxPool2dOptions& o, const std::string& name) override;
  models::GraphValue adaptive_avgpool(models::GraphValue x, int out_h, int out_w, const std::string& name) override;
  models::GraphValue resize_bilinear_to(models::GraphValue x, models::GraphValue size_of, bool align_corners,
                                        const std::string& name) override;
  models::GraphValue concat_channels(const std::vector<models::GraphValue>& xs, const std::string& name) override;
  models::GraphValue add(models::GraphValue a, models::GraphValue b, const std::string& name) override;

 private:
  struct Value {
    std::string name;
    std::vector<OnnxDim> shape;
    int elem_type = 1;  // onnx::TensorProto::FLOAT (INT64 = 7)
    int uses = 0;
    onnx::NodeProto* producer = nullptr;  // nullptr: a graph input
    const layers::Conv2d* conv = nullptr;  // set while a conv's output may still take a BatchNorm in
    onnx::TensorProto* weight = nullptr;   // that conv's initializers
    onnx::TensorProto* bias = nullptr;
  };

  const Value& value(models::GraphValue v) const;
  std::string use(models::GraphValue v);  // counts a reader, returns the ONNX name
  models::GraphValue make_value(onnx::NodeProto* producer, std::vector<OnnxDim> shape, int elem_type = 1);
  onnx::NodeProto* add_node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs);
  std::string unique_name(const std::string& base);
  onnx::TensorProto* add_initializer(const std::string& name, const Tensor& t);  // f32 CPU tensor
  std::string constant_i64(const std::vector<int64_t>& values);                 // 1-D int64
  std::string constant_f32(float v);                                            // scalar
  std::string empty_f32();                                                      // float32 [0]
  std::string shape_slice(models::GraphValue v, int64_t begin, int64_t end);    // Shape(v)[begin:end]
  models::GraphValue pool_axis(models::GraphValue x, int axis, int64_t out, const std::string& name,
                               std::string& how);

  onnx::GraphProto& graph_;
  OnnxGraphOptions opt_;
  std::vector<Value> values_;
  std::map<std::string, int> names_;              // every node / value / initializer name taken
  std::map<std::string, std::string> constants_;  // content key → initializer name
  std::map<int, std::string> shapes_;             // value id → its Shape node's output
  std::vector<std::string> notes_, requirements_;
  int batchnorms_ = 0, folded_ = 0;
};

}  // namespace rdd::deploy
