#include "models/heads.h"

#include "layers/resize.h"
#include "layers/tensor_ops.h"

namespace rdd::models {

using layers::Conv2dOptions;

namespace {

// ASPP b0 (1×1) and b1..b3 (3×3 atrous, rates 12, 24, 36), registered first as in the reference.
std::vector<ConvBnAct> make_aspp_branches(ModuleList& mods, ParamStore& store, const std::string& prefix,
                                          int in_channels, int width) {
  std::vector<ConvBnAct> branches;
  const std::string a = prefix + ".aspp.";
  branches.emplace_back(mods, store, a + "b0.0", a + "b0.1", in_channels, width, 1, Conv2dOptions{}, Act::relu);
  const int rates[3] = {12, 24, 36};
  for (int i = 0; i < 3; ++i) {
    const std::string b = a + "b" + std::to_string(i + 1) + ".block.";
    branches.emplace_back(mods, store, b + "0", b + "1", in_channels, width, 3,
                          Conv2dOptions{.padding = rates[i], .dilation = rates[i]}, Act::relu);
  }
  return branches;
}

// PSP bins 1, 2, 3, 6: 1×1 C → C/4 each ("head.psp.conv1" .. "conv4").
std::vector<ConvBnAct> make_psp_bins(ModuleList& mods, ParamStore& store, const std::string& prefix,
                                     int in_channels) {
  RDD_CHECK(in_channels >= 4, "PSPHead: ", in_channels, " input channels; at least 4 are needed");
  std::vector<ConvBnAct> convs;
  for (int i = 0; i < 4; ++i) {
    const std::string c = prefix + ".psp.conv" + std::to_string(i + 1) + ".";
    convs.emplace_back(mods, store, c + "0", c + "1", in_channels, in_channels / 4, 1, Conv2dOptions{}, Act::relu);
  }
  return convs;
}
}  // namespace

// ---- DeepLabV3 ------------------------------------------------------------------------------------
DeepLabHead::DeepLabHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout,
                         const std::string& prefix, int in_channels, int width, int num_classes)
    : prefix_(prefix),
      width_(width),
      branches_(make_aspp_branches(mods, store, prefix, in_channels, width)),
      gap_(mods.make<layers::AdaptiveAvgPool2d>(1, 1)),
      pool_conv_(mods, store, prefix + ".aspp.b4.gap.1", prefix + ".aspp.b4.gap.2", in_channels, width, 1,
                 Conv2dOptions{}, Act::relu),
      project_(mods, store, prefix + ".aspp.project.0", prefix + ".aspp.project.1", 5 * width, width, 1,
               Conv2dOptions{}, Act::relu),
      project_dropout_(mods, dropout, 0.5, 0),
      block_(mods, store, prefix + ".block.0", prefix + ".block.1", width, width, 3, Conv2dOptions{.padding = 1},
             Act::relu),
      block_dropout_(mods, dropout, 0.1, 1),
      classifier_(
          mods.make<layers::Conv2d>(store, prefix + ".block.4", width, num_classes, 1, Conv2dOptions{.bias = true})) {}

HeadOutputs DeepLabHead::forward(const Tensor& x) {
  // x: (N, C, H, W)
  h_ = x.size(2);
  w_ = x.size(3);
  std::vector<Tensor> feats;
  for (ConvBnAct& b : branches_) feats.push_back(b.forward(x));  // 4 × (N, Ca, H, W)
  Tensor pooled = pool_conv_.forward(gap_->forward(x));          // (N, Ca, 1, 1)
  feats.push_back(layers::bilinear_resize_forward(pooled, int(h_), int(w_), /*align_corners=*/true));
  Tensor cat = layers::concat_channels(feats);                   // (N, 5·Ca, H, W)
  feats.clear();
  Tensor a = project_dropout_.forward(project_.forward(cat));    // (N, Ca, H, W)
  HeadOutputs out;
  out.feature = block_dropout_.forward(block_.forward(a));       // (N, Ca, H, W)
  out.logits = classifier_->forward(out.feature);                // (N, classes, H, W)
  return out;
}

Tensor DeepLabHead::backward(const Tensor& d_logits, const Tensor& d_feature) {
  Tensor d = classifier_->backward(d_logits);  // (N, Ca, H, W)
  if (d_feature.defined()) layers::add_(d, d_feature);
  d = block_.backward(block_dropout_.backward(d));
  d = project_.backward(project_dropout_.backward(d));  // (N, 5·Ca, H, W)
  std::vector<Tensor> parts = layers::split_channels(d, {width_, width_, width_, width_, width_});
  Tensor dx = branches_[0].backward(parts[0]);  // (N, C, H, W)
  for (size_t i = 1; i < branches_.size(); ++i) layers::add_(dx, branches_[i].backward(parts[i]));
  Tensor d_pooled = layers::bilinear_resize_backward(parts[4], 1, 1, /*align_corners=*/true);  // (N, Ca, 1, 1)
  layers::add_(dx, gap_->backward(pool_conv_.backward(d_pooled)));
  return dx;
}

Shape DeepLabHead::trace(LayerTable& t, const Shape& in) const {
  Shape cat{in[0], 0, in[2], in[3]};  // the branches' channels concatenated
  for (const ConvBnAct& b : branches_) cat[1] += b.trace(t, in)[1];
  const Shape pooled{in[0], in[1], gap_->out_h(), gap_->out_w()};
  t.add_shape(prefix_ + ".aspp.b4.gap.0", "global avg pool", pooled);
  const Shape p = pool_conv_.trace(t, pooled);
  t.add_shape(prefix_ + ".aspp.b4", "bilinear upsample (align_corners)", {p[0], p[1], in[2], in[3]});
  cat[1] += p[1];
  t.add_shape(prefix_ + ".aspp", "concat 5 branches", cat);
  const Shape s = block_.trace(t, project_.trace(t, cat));
  return trace_conv(t, *classifier_, s);
}

GraphValue DeepLabHead::record(GraphRecorder& g, GraphValue x) const {
  // x: (N, C, H, W); dropout is the identity in eval mode
  std::vector<GraphValue> feats;
  for (const ConvBnAct& b : branches_) feats.push_back(b.record(g, x));  // 4 × (N, Ca, H, W)
  const GraphValue gap = g.adaptive_avgpool(x, gap_->out_h(), gap_->out_w(), prefix_ + ".aspp.b4.gap.0");
  const GraphValue pooled = pool_conv_.record(g, gap);  // (N, Ca, 1, 1)
  feats.push_back(g.resize_bilinear_to(pooled, x, /*align_corners=*/true, prefix_ + ".aspp.b4.upsample"));
  const GraphValue cat = g.concat_channels(feats, prefix_ + ".aspp.concat");  // (N, 5·Ca, H, W)
  const GraphValue feature = block_.record(g, project_.record(g, cat));        // (N, Ca, H, W)
  return g.conv(*classifier_, feature);                                         // (N, classes, H, W)
}

void DeepLabHead::init(uint64_t seed, uint64_t& offset) {
  for (ConvBnAct& b : branches_) b.init(false, seed, take_offset(offset));
  pool_conv_.init(false, seed, take_offset(offset));
  project_.init(false, seed, take_offset(offset));
  block_.init(false, seed, take_offset(offset));
  classifier_->reset_parameters(seed, take_offset(offset));
}

// ---- PSPNet ---------------------------------------------------------------------------------------
PSPHead::PSPHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout, const std::string& prefix,
                 int in_channels, int width, int num_classes)
    : prefix_(prefix),
      in_channels_(in_channels),
      width_(width),
      bin_convs_(make_psp_bins(mods, store, prefix, in_channels)),
      block_(mods, store, prefix + ".block.0", prefix + ".block.1", in_channels + 4 * (in_channels / 4), width, 3,
             Conv2dOptions{.padding = 1}, Act::relu),
      block_dropout_(mods, dropout, 0.1, 1),
      classifier_(
          mods.make<layers::Conv2d>(store, prefix + ".classifier", width, num_classes, 1, Conv2dOptions{.bias = true})) {
  for (int i = 0; i < 4; ++i) pools_.push_back(mods.make<layers::AdaptiveAvgPool2d>(kBins[i], kBins[i]));
}

HeadOutputs PSPHead::forward(const Tensor& x) {
  // x: (N, C, H, W)
  h_ = x.size(2);
  w_ = x.size(3);
  std::vector<Tensor> feats{x};
  for (size_t i = 0; i < 4; ++i) {
    Tensor b = bin_convs_[i].forward(pools_[i]->forward(x));  // (N, C/4, bin, bin)
    feats.push_back(layers::bilinear_resize_forward(b, int(h_), int(w_), /*align_corners=*/true));
  }
  Tensor cat = layers::concat_channels(feats);  // (N, C + 4·(C/4), H, W)
  feats.clear();
  HeadOutputs out;
  out.feature = block_dropout_.forward(block_.forward(cat));  // (N, Cp, H, W)
  out.logits = classifier_->forward(out.feature);             // (N, classes, H, W)
  return out;
}

Tensor PSPHead::backward(const Tensor& d_logits, const Tensor& d_feature) {
  Tensor d = classifier_->backward(d_logits);
  if (d_feature.defined()) layers::add_(d, d_feature);
  d = block_.backward(block_dropout_.backward(d));  // (N, C + 4·(C/4), H, W)
  const int64_t q = in_channels_ / 4;
  std::vector<Tensor> parts = layers::split_channels(d, {in_channels_, q, q, q, q});
  Tensor dx = parts[0];  // (N, C, H, W)
  for (size_t i = 0; i < 4; ++i) {
    Tensor db = layers::bilinear_resize_backward(parts[i + 1], kBins[i], kBins[i], /*align_corners=*/true);
    layers::add_(dx, pools_[i]->backward(bin_convs_[i].backward(db)));
  }
  return dx;
}

Shape PSPHead::trace(LayerTable& t, const Shape& in) const {
  Shape cat = in;  // the input, then each bin's channels concatenated
  for (size_t i = 0; i < 4; ++i) {
    const Shape pooled{in[0], in[1], pools_[i]->out_h(), pools_[i]->out_w()};
    const std::string name = prefix_ + ".psp.avgpool" + std::to_string(i + 1);
    t.add_shape(name, "adaptive avg pool " + std::to_string(kBins[i]) + "x" + std::to_string(kBins[i]), pooled);
    const Shape b = bin_convs_[i].trace(t, pooled);
    t.add_shape(prefix_ + ".psp.conv" + std::to_string(i + 1), "bilinear upsample (align_corners)",
                {b[0], b[1], in[2], in[3]});
    cat[1] += b[1];
  }
  t.add_shape(prefix_ + ".psp", "concat input + 4 bins", cat);
  const Shape s = block_.trace(t, cat);
  return trace_conv(t, *classifier_, s);
}

GraphValue PSPHead::record(GraphRecorder& g, GraphValue x) const {
  // x: (N, C, H, W); dropout is the identity in eval mode
  std::vector<GraphValue> feats{x};
  for (size_t i = 0; i < 4; ++i) {
    const std::string n = std::to_string(i + 1);
    const GraphValue pooled =
        g.adaptive_avgpool(x, pools_[i]->out_h(), pools_[i]->out_w(), prefix_ + ".psp.avgpool" + n);
    const GraphValue b = bin_convs_[i].record(g, pooled);  // (N, C/4, bin, bin)
    feats.push_back(g.resize_bilinear_to(b, x, /*align_corners=*/true, prefix_ + ".psp.conv" + n + ".upsample"));
  }
  const GraphValue cat = g.concat_channels(feats, prefix_ + ".psp.concat");  // (N, C + 4·(C/4), H, W)
  return g.conv(*classifier_, block_.record(g, cat));                        // (N, classes, H, W)
}

void PSPHead::init(uint64_t seed, uint64_t& offset) {
  for (ConvBnAct& b : bin_convs_) b.init(false, seed, take_offset(offset));
  block_.init(false, seed, take_offset(offset));
  classifier_->reset_parameters(seed, take_offset(offset));
}

// ---- FCN aux head ---------------------------------------------------------------------------------
FCNHead::FCNHead(ModuleList& mods, ParamStore& store, const DropoutControl& dropout, const std::string& prefix,
                 int in_channels, int num_classes)
    : block_(mods, store, prefix + ".block.0", prefix + ".block.1", in_channels, in_channels / 4, 3,
             Conv2dOptions{.padding = 1}, Act::relu),
      dropout_(mods, dropout, 0.1, 2),
      classifier_(mods.make<layers::Conv2d>(store, prefix + ".block.4", in_channels / 4, num_classes, 1,
                                            Conv2dOptions{.bias = true})) {
  RDD_CHECK(in_channels >= 4, "FCNHead: ", in_channels, " input channels; at least 4 are needed");
}

Tensor FCNHead::forward(const Tensor& x) {
  return classifier_->forward(dropout_.forward(block_.forward(x)));  // (N, classes, H, W)
}

Tensor FCNHead::backward(const Tensor& d_logits) {
  return block_.backward(dropout_.backward(classifier_->backward(d_logits)));
}

Shape FCNHead::trace(LayerTable& t, const Shape& in) const { return trace_conv(t, *classifier_, block_.trace(t, in)); }

void FCNHead::init(uint64_t seed, uint64_t& offset) {
  block_.init(false, seed, take_offset(offset));
  classifier_->reset_parameters(seed, take_offset(offset));
}

}  // namespace rdd::models
