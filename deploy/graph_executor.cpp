#include "deploy/graph_executor.h"

#include "deploy/bn_folding.h"
#include "layers/activation.h"
#include "layers/resize.h"
#include "layers/tensor_ops.h"

namespace rdd::deploy {

using models::GraphValue;

GraphExecutor::GraphExecutor(const models::SegModel& model, bool fold_bn)
    : device_(model.params().device()), fold_bn_(fold_bn) {
  RDD_CHECK(model.params().materialized(), model.name(), ": GraphExecutor before params().materialize()");
  uses_.push_back(0);  // value 0: the image
  const GraphValue logits = model.record_main(*this, GraphValue{0});
  output_ = logits.id;
  ++uses_[size_t(output_)];
}

GraphValue GraphExecutor::push(Op op) {
  for (int v : op.inputs) {
    RDD_CHECK(v >= 0 && size_t(v) < uses_.size(), "GraphExecutor: value ", v, " was never recorded");
    ++uses_[size_t(v)];
  }
  ops_.push_back(std::move(op));
  uses_.push_back(0);
  return GraphValue{int(ops_.size())};
}

GraphValue GraphExecutor::conv(const layers::Conv2d& conv, GraphValue x) {
  Op op;
  op.kind = Kind::conv;
  op.inputs = {x.id};
  op.conv = &conv;
  return push(std::move(op));
}

GraphValue GraphExecutor::batchnorm(const layers::BatchNorm2d& bn, GraphValue x) {
  ++batchnorms_;
  // Fold into the conv that produced x when nothing else reads the conv's output.
  if (fold_bn_ && x.id > 0 && ops_[size_t(x.id - 1)].kind == Kind::conv && uses_[size_t(x.id)] == 0) {
    Op& producer = ops_[size_t(x.id - 1)];
    const FoldedConv f = fold_batchnorm(*producer.conv, bn);
    producer.kind = Kind::folded_conv;
    producer.weight = device_.is_cpu() ? f.weight : f.weight.to(device_);
    producer.bias = device_.is_cpu() ? f.bias : f.bias.to(device_);
    ++folded_;
    return x;  // the conv now computes BN(conv(x))
  }
  Op op;
  op.kind = Kind::batchnorm;
  op.inputs = {x.id};
  op.bn = &bn;
  return push(std::move(op));
}

GraphValue GraphExecutor::relu(GraphValue x, bool relu6, const std::string&) {
  Op op;
  op.kind = Kind::relu;
  op.inputs = {x.id};
  op.flag = relu6;
  return push(std::move(op));
}

GraphValue GraphExecutor::maxpool(GraphValue x, const layers::MaxPool2dOptions& o, const std::string&) {
  Op op;
  op.kind = Kind::maxpool;
  op.inputs = {x.id};
  op.pool = o;
  return push(std::move(op));
}

GraphValue GraphExecutor::adaptive_avgpool(GraphValue x, int out_h, int out_w, const std::string&) {
  Op op;
  op.kind = Kind::adaptive_avgpool;
  op.inputs = {x.id};
  op.out_h = out_h;
  op.out_w = out_w;
  return push(std::move(op));
}

GraphValue GraphExecutor::resize_bilinear_to(GraphValue x, GraphValue size_of, bool align_corners,
                                             const std::string&) {
  Op op;
  op.kind = Kind::resize;
  op.inputs = {x.id, size_of.id};
  op.flag = align_corners;
  return push(std::move(op));
}

GraphValue GraphExecutor::concat_channels(const std::vector<GraphValue>& xs, const std::string&) {
  Op op;
  op.kind = Kind::concat;
  for (const GraphValue& v : xs) op.inputs.push_back(v.id);
  return push(std::move(op));
}

GraphValue GraphExecutor::add(GraphValue a, GraphValue b, const std::string&) {
  Op op;
  op.kind = Kind::add;
  op.inputs = {a.id, b.id};
  return push(std::move(op));
}

Tensor GraphExecutor::run(const Tensor& image) const {
  RDD_CHECK(image.ndim() == 4 && image.size(1) == 3, "GraphExecutor: image must be (N, 3, H, W), got ",
            image.desc());
  RDD_CHECK(image.device() == device_, "GraphExecutor: image on ", image.device().str(), " but the model is on ",
            device_.str());
  std::vector<Tensor> values(uses_.size());
  std::vector<int> left = uses_;  // reads still to come per value
  values[0] = image;
  for (size_t k = 0; k < ops_.size(); ++k) {
    const Op& op = ops_[k];
    auto in = [&](size_t i) -> const Tensor& { return values[size_t(op.inputs[i])]; };
    Tensor y;
    switch (op.kind) {
      case Kind::conv:
        y = layers::conv2d_forward(in(0), op.conv->weight()->value,
                                   op.conv->bias() ? op.conv->bias()->value : Tensor(), op.conv->options());
        break;
      case Kind::folded_conv:
        y = layers::conv2d_forward(in(0), op.weight, op.bias, op.conv->options());
        break;
      case Kind::batchnorm:
        y = layers::batchnorm2d_forward_eval(in(0), op.bn->weight()->value, op.bn->bias()->value,
                                             op.bn->running_mean()->value, op.bn->running_var()->value,
                                             op.bn->eps());
        break;
      case Kind::relu: y = layers::relu_forward(in(0), op.flag); break;
      case Kind::maxpool: y = layers::maxpool2d_forward(in(0), op.pool, nullptr); break;
      case Kind::adaptive_avgpool: y = layers::adaptive_avgpool2d_forward(in(0), op.out_h, op.out_w); break;
      case Kind::resize:
        y = layers::bilinear_resize_forward(in(0), int(in(1).size(2)), int(in(1).size(3)), op.flag);
        break;
      case Kind::concat: {
        std::vector<Tensor> xs;
        for (size_t i = 0; i < op.inputs.size(); ++i) xs.push_back(in(i));
        y = layers::concat_channels(xs);
        break;
      }
      case Kind::add: y = layers::add(in(0), in(1)); break;
      case Kind::none: fail("GraphExecutor: op ", k, " has no kind");
    }
    for (int v : op.inputs)
      if (--left[size_t(v)] == 0) values[size_t(v)] = Tensor();  // its last reader has run
    values[k + 1] = std::move(y);
  }
  return values[size_t(output_)];
}

}  // namespace rdd::deploy
