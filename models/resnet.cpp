#include "models/resnet.h"

#include "layers/tensor_ops.h"

namespace rdd::models {

using layers::Conv2dOptions;

// ---- blocks ---------------------------------------------------------------------------------------
ResNetBlock::ResNetBlock(ModuleList& mods, ParamStore& store, const std::string& name, bool bottleneck,
                         int inplanes, int planes, int stride, int dilation, int previous_dilation, bool downsample)
    : name_(name) {
  const std::string p = name + ".";
  if (bottleneck) {
    // conv1×1 → conv3×3 (stride, dilation) → conv1×1 ×4
    convs_.emplace_back(mods, store, p + "conv1", p + "bn1", inplanes, planes, 1, Conv2dOptions{}, Act::relu);
    convs_.emplace_back(mods, store, p + "conv2", p + "bn2", planes, planes, 3,
                        Conv2dOptions{.stride = stride, .padding = dilation, .dilation = dilation}, Act::relu);
    convs_.emplace_back(mods, store, p + "conv3", p + "bn3", planes, planes * 4, 1, Conv2dOptions{}, Act::none);
  } else {
    // conv3×3 (stride, dilation) → conv3×3 (previous_dilation)
    convs_.emplace_back(mods, store, p + "conv1", p + "bn1", inplanes, planes, 3,
                        Conv2dOptions{.stride = stride, .padding = dilation, .dilation = dilation}, Act::relu);
    convs_.emplace_back(mods, store, p + "conv2", p + "bn2", planes, planes, 3,
                        Conv2dOptions{.padding = previous_dilation, .dilation = previous_dilation}, Act::none);
  }
  if (downsample)
    downsample_ = std::make_unique<ConvBnAct>(mods, store, p + "downsample.0", p + "downsample.1", inplanes,
                                              convs_.back().out_channels(), 1, Conv2dOptions{.stride = stride}, Act::none);
  out_relu_ = mods.make<layers::ReLU>(false);
}

Tensor ResNetBlock::forward(const Tensor& x) {
  // x: (N, Cin, H, W)
  Tensor out = x;
  for (ConvBnAct& c : convs_) out = c.forward(out);           // (N, Cout, H', W')
  Tensor identity = downsample_ ? downsample_->forward(x) : x;  // (N, Cout, H', W')
  // Not in place: the BN that produced `out` may keep it for its backward.
  return out_relu_->forward(layers::add(out, identity));
}

Tensor ResNetBlock::backward(const Tensor& dy) {
  Tensor d = out_relu_->backward(dy);  // (N, Cout, H', W'): flows into both branches
  Tensor d_branch = d;
  for (auto it = convs_.rbegin(); it != convs_.rend(); ++it) d_branch = it->backward(d_branch);
  Tensor d_identity = downsample_ ? downsample_->backward(d) : d;  // (N, Cin, H, W)
  layers::add_(d_branch, d_identity);
  return d_branch;
}

Shape ResNetBlock::trace(LayerTable& t, const Shape& in) const {
  Shape s = in;
  for (const ConvBnAct& c : convs_) s = c.trace(t, s);
  if (downsample_) downsample_->trace(t, in);
  t.add_shape(name_, "residual add + ReLU", s);
  return s;
}

GraphValue ResNetBlock::record(GraphRecorder& g, GraphValue x) const {
  GraphValue out = x;
  for (const ConvBnAct& c : convs_) out = c.record(g, out);
  const GraphValue identity = downsample_ ? downsample_->record(g, x) : x;
  return g.relu(g.add(out, identity, name_ + ".add"), false, name_ + ".relu");
}

void ResNetBlock::init(uint64_t seed, uint64_t& offset) {
  for (ConvBnAct& c : convs_) c.init(true, seed, take_offset(offset));
  if (downsample_) downsample_->init(true, seed, take_offset(offset));
}

// ---- the backbone ---------------------------------------------------------------------------------
ResNet::ResNet(ModuleList& mods, ParamStore& store, const ResNetOptions& opt) : opt_(opt) {
  bool bottleneck = false;
  std::vector<int> blocks;
  switch (opt.depth) {
    case 18: blocks = {2, 2, 2, 2}; break;
    case 34: blocks = {3, 4, 6, 3}; break;
    case 50: blocks = {3, 4, 6, 3}; bottleneck = true; break;
    case 101: blocks = {3, 4, 23, 3}; bottleneck = true; break;
    default: fail("ResNet: depth ", opt.depth, " is not one of 18, 34, 50, 101");
  }
  RDD_CHECK(opt.output_stride == 8 || opt.output_stride == 16, "ResNet: output stride ", opt.output_stride,
            " is not 8 or 16");
  RDD_CHECK(opt.width > 0, "ResNet: width multiplier ", opt.width, " must be positive");
  const int expansion = bottleneck ? 4 : 1;
  auto s = [&](int c) { return scaled_channels(c, opt.width); };
  const std::string p = opt.prefix + ".";
  int inplanes;
  if (opt.deep_stem) {
    stem_.emplace_back(mods, store, p + "conv1", p + "bn1", 3, s(64), 3, Conv2dOptions{.stride = 2, .padding = 1},
                       Act::relu);
    stem_.emplace_back(mods, store, p + "conv2", p + "bn2", s(64), s(64), 3, Conv2dOptions{.padding = 1}, Act::relu);
    stem_.emplace_back(mods, store, p + "conv3", p + "bn3", s(64), s(128), 3, Conv2dOptions{.padding = 1}, Act::relu);
    inplanes = s(128);
  } else {
    stem_.emplace_back(mods, store, p + "conv1", p + "bn1", 3, s(64), 7, Conv2dOptions{.stride = 2, .padding = 3},
                       Act::relu);
    inplanes = s(64);
  }
  maxpool_ = mods.make<layers::MaxPool2d>(3, 2, 1);

  struct LayerSpec {
    int planes, stride, dilation;
  };
  const LayerSpec specs[4] = {{s(64), 1, 1},
                              {s(128), 2, 1},
                              {s(256), opt.output_stride == 8 ? 1 : 2, opt.output_stride == 8 ? 2 : 1},
                              {s(512), 1, opt.output_stride == 8 ? 4 : 2}};
  for (int l = 0; l < 4; ++l) {
    const LayerSpec& sp = specs[l];
    const int first_dilation = sp.dilation == 4 ? 2 : 1;  // the reference's pattern (1 → 1, 2 → 1, 4 → 2)
    std::vector<ResNetBlock> layer;
    const std::string lname = p + "layer" + std::to_string(l + 1) + ".";
    const bool downsample = sp.stride != 1 || inplanes != sp.planes * expansion;
    layer.emplace_back(mods, store, lname + "0", bottleneck, inplanes, sp.planes, sp.stride, first_dilation,
                       sp.dilation, downsample);
    inplanes = sp.planes * expansion;
    for (int b = 1; b < blocks[size_t(l)]; ++b)
      layer.emplace_back(mods, store, lname + std::to_string(b), bottleneck, inplanes, sp.planes, 1, sp.dilation,
                         sp.dilation, false);
    layers_.push_back(std::move(layer));
  }
  c3_channels_ = specs[2].planes * expansion;
  c4_channels_ = specs[3].planes * expansion;
}

ResNet::Features ResNet::forward(const Tensor& x) {
  RDD_CHECK(x.ndim() == 4 && x.size(1) == 3, "ResNet: input must be (N, 3, H, W), got ", x.desc());
  // C_stem = stem_.back().out_channels(): 128·width (v1s) or 64·width (v1b).
  Tensor h = x;
  for (ConvBnAct& c : stem_) h = c.forward(h);  // (N, C_stem, H/2, W/2)
  h = maxpool_->forward(h);                      // (N, C_stem, H/4, W/4)
  Features f;
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (ResNetBlock& b : layers_[l]) h = b.forward(h);
    if (l == 2) f.c3 = h;  // (N, c3_channels(), H/8, W/8) at OS 8
  }
  f.c4 = h;  // (N, c4_channels(), H/8, W/8) at OS 8
  return f;
}

void ResNet::backward(const Tensor& dc3, const Tensor& dc4) {
  RDD_CHECK(dc4.defined(), "ResNet::backward: the gradient of layer4's output is required");
  size_t k = 0;
  Tensor d = dc4;
  for (int l = 3; l >= 0; --l) {
    if (l == 2 && dc3.defined()) layers::add_(d, dc3);  // c3 feeds both layer4 and the aux head
    for (auto it = layers_[size_t(l)].rbegin(); it != layers_[size_t(l)].rend(); ++it) {
      d = it->backward(d);
      block_gradients_ready(k++, it->name());
    }
  }
  d = maxpool_->backward(d);
  for (size_t i = stem_.size() - 1; i > 0; --i) d = stem_[i].backward(d);
  stem_[0].backward_params_only(d);  // the image needs no gradient
  all_gradients_ready();
}

Backbone::FeatureShapes ResNet::trace(LayerTable& t, const Shape& in) const {
  Shape s = in;
  for (const ConvBnAct& c : stem_) s = c.trace(t, s);
  const layers::MaxPool2dOptions& pool = maxpool_->options();
  s = {s[0], s[1], layers::maxpool2d_output_size(s[2], pool), layers::maxpool2d_output_size(s[3], pool)};
  t.add_shape(opt_.prefix + ".maxpool", "maxpool3x3 s2 p1", s);
  FeatureShapes out;
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const ResNetBlock& b : layers_[l]) s = b.trace(t, s);
    if (l == 2) out.c3 = s;
  }
  out.c4 = s;
  return out;
}

GraphValue ResNet::record(GraphRecorder& g, GraphValue x) const {
  GraphValue h = x;
  for (const ConvBnAct& c : stem_) h = c.record(g, h);
  h = g.maxpool(h, maxpool_->options(), opt_.prefix + ".maxpool");
  for (const auto& layer : layers_)
    for (const ResNetBlock& b : layer) h = b.record(g, h);
  return h;
}

void ResNet::init(uint64_t seed, uint64_t& offset) {
  for (ConvBnAct& c : stem_) c.init(true, seed, take_offset(offset));
  for (auto& layer : layers_)
    for (ResNetBlock& b : layer) b.init(seed, offset);
}

}  // namespace rdd::models
