#include "models/mobilenetv2.h"

#include "layers/tensor_ops.h"

namespace rdd::models {

using layers::Conv2dOptions;

InvertedResidual::InvertedResidual(ModuleList& mods, ParamStore& store, const std::string& name, int inp, int oup,
                                   int stride, int dilation, int expand_ratio, bool residual)
    : name_(name), residual_(residual) {
  const int hidden = inp * expand_ratio;
  const std::string c = name + ".conv.";
  auto n = [&](int i) { return c + std::to_string(i); };
  const Conv2dOptions depthwise{.stride = stride, .padding = dilation, .dilation = dilation, .groups = hidden};
  if (expand_ratio == 1) {
    convs_.emplace_back(mods, store, n(0), n(1), hidden, hidden, 3, depthwise, Act::relu6);
    convs_.emplace_back(mods, store, n(3), n(4), hidden, oup, 1, Conv2dOptions{}, Act::none);
  } else {
    convs_.emplace_back(mods, store, n(0), n(1), inp, hidden, 1, Conv2dOptions{}, Act::relu6);
    convs_.emplace_back(mods, store, n(3), n(4), hidden, hidden, 3, depthwise, Act::relu6);
    convs_.emplace_back(mods, store, n(6), n(7), hidden, oup, 1, Conv2dOptions{}, Act::none);
  }
}

Tensor InvertedResidual::forward(const Tensor& x) {
  Tensor h = x;  // (N, inp, H, W)
  for (ConvBnAct& cv : convs_) h = cv.forward(h);
  return residual_ ? layers::add(x, h) : h;  // (N, oup, H', W')
}

Tensor InvertedResidual::backward(const Tensor& dy) {
  Tensor d = dy;
  for (auto it = convs_.rbegin(); it != convs_.rend(); ++it) d = it->backward(d);
  if (residual_) layers::add_(d, dy);
  return d;
}

Shape InvertedResidual::trace(LayerTable& t, const Shape& in) const {
  Shape s = in;
  for (const ConvBnAct& cv : convs_) s = cv.trace(t, s);
  if (residual_) t.add_shape(name_, "residual add", s);
  return s;
}

GraphValue InvertedResidual::record(GraphRecorder& g, GraphValue x) const {
  GraphValue h = x;
  for (const ConvBnAct& cv : convs_) h = cv.record(g, h);
  return residual_ ? g.add(x, h, name_ + ".add") : h;
}

void InvertedResidual::init(uint64_t seed, uint64_t& offset) {
  for (ConvBnAct& cv : convs_) cv.init(true, seed, take_offset(offset));
}

MobileNetV2::MobileNetV2(ModuleList& mods, ParamStore& store, double width, const std::string& prefix)
    : stem_(mods, store, prefix + ".features.0.0", prefix + ".features.0.1", 3, scaled_channels(32, width), 3,
            Conv2dOptions{.stride = 2, .padding = 1}, Act::relu6) {
  RDD_CHECK(width > 0, "MobileNetV2: width multiplier ", width, " must be positive");
  struct Setting {
    int t, c, n, s;
  };
  const Setting settings[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int input_channel = scaled_channels(32, width);
  int index = 1;  // features.<index>
  for (const Setting& st : settings) {
    const int out = scaled_channels(st.c, width);
    for (int i = 0; i < st.n; ++i, ++index) {
      const int stride = i == 0 ? st.s : 1;
      // The residual is decided on the original stride (before the dilation surgery), as the reference.
      const bool residual = stride == 1 && input_channel == out;
      int s = stride, d = 1;
      if (index >= 7 && index < 14) {  // dilate 2
        d = stride == 2 ? 1 : 2;
        s = 1;
      } else if (index >= 14) {  // dilate 4
        d = stride == 2 ? 2 : 4;
        s = 1;
      }
      blocks_.emplace_back(mods, store, prefix + ".features." + std::to_string(index), input_channel, out, s, d, st.t,
                           residual);
      input_channel = out;
    }
  }
  out_channels_ = input_channel;
}

Backbone::Features MobileNetV2::forward(const Tensor& x) {
  RDD_CHECK(x.ndim() == 4 && x.size(1) == 3, "MobileNetV2: input must be (N, 3, H, W), got ", x.desc());
  Tensor h = stem_.forward(x);  // (N, 32·width, H/2, W/2)
  for (InvertedResidual& b : blocks_) h = b.forward(h);
  return {Tensor(), h};  // c4: (N, out_channels_, H/8, W/8)
}

void MobileNetV2::backward(const Tensor& dc3, const Tensor& dc4) {
  RDD_CHECK(!dc3.defined(), "MobileNetV2::backward: there is no c3 to take a gradient");
  size_t k = 0;
  Tensor d = dc4;
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
    d = it->backward(d);
    block_gradients_ready(k++, it->name());
  }
  stem_.backward_params_only(d);
  all_gradients_ready();
}

Backbone::FeatureShapes MobileNetV2::trace(LayerTable& t, const Shape& in) const {
  Shape s = stem_.trace(t, in);
  for (const InvertedResidual& b : blocks_) s = b.trace(t, s);
  return {Shape(), s};
}

GraphValue MobileNetV2::record(GraphRecorder& g, GraphValue x) const {
  GraphValue h = stem_.record(g, x);
  for (const InvertedResidual& b : blocks_) h = b.record(g, h);
  return h;
}

void MobileNetV2::init(uint64_t seed, uint64_t& offset) {
  stem_.init(true, seed, take_offset(offset));
  for (InvertedResidual& b : blocks_) b.init(seed, offset);
}

}  // namespace rdd::models
