#include "models/seg_model.h"

#include <algorithm>

#include "models/mobilenetv2.h"
#include "models/resnet.h"

namespace rdd::models {

namespace {
struct Spec {
  const char* name;
  const char* head;  // "deeplabv3" | "psp"
  int resnet_depth;  // 0: MobileNetV2
};
constexpr Spec kSpecs[] = {
    {"deeplabv3_resnet101", "deeplabv3", 101}, {"deeplabv3_resnet50", "deeplabv3", 50},
    {"deeplabv3_resnet18", "deeplabv3", 18},   {"psp_resnet101", "psp", 101},
    {"psp_resnet18", "psp", 18},               {"deeplabv3_mobilenetv2", "deeplabv3", 0},
    {"psp_mobilenetv2", "psp", 0},
};

const Spec& find_spec(const std::string& name) {
  for (const Spec& s : kSpecs)
    if (name == s.name) return s;
  fail("unknown model '", name, "' (known: ", known_model_names(), ")");
}
}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> r;
  for (const Spec& s : kSpecs) r.push_back(s.name);
  return r;
}

std::string known_model_names() {
  std::string known;
  for (const Spec& s : kSpecs) known += std::string(known.empty() ? "" : ", ") + s.name;
  return known;
}

bool is_model_name(const std::string& name) {
  return std::any_of(std::begin(kSpecs), std::end(kSpecs), [&](const Spec& s) { return name == s.name; });
}

std::unique_ptr<SegModel> build_model(const std::string& name, const ModelOptions& opt) {
  return std::make_unique<SegModel>(name, opt);
}

SegModel::SegModel(const std::string& name, const ModelOptions& opt) : name_(name), opt_(opt) {
  const Spec& spec = find_spec(name);
  RDD_CHECK(opt.num_classes >= 1, name, ": num_classes ", opt.num_classes, " must be at least 1");
  RDD_CHECK(opt.width > 0 && opt.width <= 4, name, ": width multiplier ", opt.width, " must be in (0, 4]");
  auto s = [&](int c) { return scaled_channels(c, opt.width); };
  if (spec.resnet_depth > 0) {
    ResNetOptions ro;
    ro.depth = spec.resnet_depth;
    ro.width = opt.width;
    backbone_ = std::make_unique<ResNet>(mods_, store_, ro);
  } else {
    backbone_ = std::make_unique<MobileNetV2>(mods_, store_, opt.width);
  }
  const bool big = spec.resnet_depth >= 50;
  const int c3 = backbone_->c3_channels(), c4 = backbone_->c4_channels();
  if (std::string(spec.head) == "deeplabv3")
    head_ = std::make_unique<DeepLabHead>(mods_, store_, dropout_, "head", c4, s(big ? 256 : 128), opt.num_classes);
  else
    head_ = std::make_unique<PSPHead>(mods_, store_, dropout_, "head", c4, s(big ? 512 : 128), opt.num_classes);
  if (c3 > 0) aux_ = std::make_unique<FCNHead>(mods_, store_, dropout_, "auxlayer", c3, opt.num_classes);
}

int SegModel::feature_channels() const { return head_->feature_channels(); }

void SegModel::set_mode(layers::Mode mode) {
  mode_ = mode;
  mods_.set_mode(mode);
  backward_ready_ = false;
}

void SegModel::set_stats_reducer(const layers::StatsReducer& reducer) {
  for (layers::BatchNorm2d* bn : mods_.batchnorms()) bn->set_stats_reducer(reducer);
}

void SegModel::init_weights(uint64_t seed) {
  RDD_CHECK(store_.materialized(), name_, ": init_weights before params().materialize()");
  uint64_t offset = 0;
  backbone_->init(seed, offset);
  head_->init(seed, offset);
  if (aux_) aux_->init(seed, offset);
}

NetOutputs SegModel::forward(const Tensor& x) {
  RDD_CHECK(store_.materialized(), name_, ": forward before params().materialize()");
  RDD_CHECK(x.ndim() == 4 && x.size(1) == 3, name_, ": input must be (N, 3, H, W), got ", x.desc());
  RDD_CHECK(x.device() == store_.device(), name_, ": input on ", x.device().str(), " but the weights are on ",
            store_.device().str());
  NetOutputs out;
  Backbone::Features f = backbone_->forward(x);
  HeadOutputs h = head_->forward(f.c4);
  f.c4 = Tensor();
  out.main = h.logits;
  out.feature = h.feature;
  if (aux_) out.aux = aux_->forward(f.c3);
  if (mode_ == layers::Mode::train) {
    backward_ready_ = true;
    ++dropout_.step;
  }
  return out;
}

void SegModel::set_grad_ready_hook(GradReadyHook hook) {
  grad_ready_ = std::move(hook);
  aux_offset_ = first_offset_with_prefix(store_, "auxlayer");
  head_offset_ = first_offset_with_prefix(store_, "head");
  backbone_->set_grad_ready_hook(&grad_ready_, &store_);
}

void SegModel::backward(const Tensor& d_main, const Tensor& d_aux, const Tensor& d_feature) {
  RDD_CHECK(mode_ == layers::Mode::train, name_, ": backward in eval mode (eval keeps no activations)");
  RDD_CHECK(backward_ready_, name_, ": backward without a training forward before it");
  RDD_CHECK(d_main.defined(), name_, ": backward needs the gradient of the main logits");
  RDD_CHECK(!d_aux.defined() || aux_, name_, ": has no aux head, but an aux gradient was given");
  backward_ready_ = false;
  Tensor dc3;
  // The aux head hangs off c3 (aux flows first so its cached activations are released early).
  // Registration order is backbone, head, aux: backward meets them in reverse, which is what lets
  // the gradient all-reduce start while the backbone's backward still runs.
  if (aux_) dc3 = d_aux.defined() ? aux_->backward(d_aux) : Tensor();
  if (grad_ready_ && aux_ && aux_offset_ >= 0) grad_ready_(aux_offset_);
  Tensor dc4 = head_->backward(d_main, d_feature);
  if (grad_ready_ && head_offset_ >= 0) grad_ready_(head_offset_);
  backbone_->backward(dc3, dc4);
}

GraphValue SegModel::record_main(GraphRecorder& g, GraphValue image) const {
  return head_->record(g, backbone_->record(g, image));  // c4 (N, C4, H/8, W/8) → logits
}

LayerTable SegModel::trace(const Shape& in) const {
  RDD_CHECK(in.size() == 4 && in[1] == 3, name_, ": trace input must be (N, 3, H, W), got ", shape_str(in));
  LayerTable t;
  const Backbone::FeatureShapes f = backbone_->trace(t, in);
  head_->trace(t, f.c4);
  if (aux_) aux_->trace(t, f.c3);
  return t;
}

}  // namespace rdd::models
