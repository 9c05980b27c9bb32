#include "models/seg_model.h"

#include <algorithm>

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
  std::string known;
  for (const Spec& s : kSpecs) known += std::string(known.empty() ? "" : ", ") + s.name;
  fail("unknown model '", name, "' (known: ", known, ")");
}
}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> r;
  for (const Spec& s : kSpecs) r.push_back(s.name);
  return r;
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
  int c3 = 0, c4 = 0;
  bool big = false;
  if (spec.resnet_depth > 0) {
    ResNetOptions ro;
    ro.depth = spec.resnet_depth;
    ro.width = opt.width;
    resnet_ = std::make_unique<ResNet>(mods_, store_, ro);
    c3 = resnet_->c3_channels();
    c4 = resnet_->c4_channels();
    big = spec.resnet_depth >= 50;
  } else {
    mobilenet_ = std::make_unique<MobileNetV2>(mods_, store_, opt.width);
    c4 = mobilenet_->out_channels();
  }
  if (std::string(spec.head) == "deeplabv3")
    head_ = std::make_unique<DeepLabHead>(mods_, store_, dropout_, "head", c4, s(big ? 256 : 128), opt.num_classes);
  else
    head_ = std::make_unique<PSPHead>(mods_, store_, dropout_, "head", c4, s(big ? 512 : 128), opt.num_classes);
  if (resnet_) aux_ = std::make_unique<FCNHead>(mods_, store_, dropout_, "auxlayer", c3, opt.num_classes);
}

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
  if (resnet_) resnet_->init(seed, offset);
  if (mobilenet_) mobilenet_->init(seed, offset);
  head_->init(seed, offset);
  if (aux_) aux_->init(seed, offset);
}

ModelOutputs SegModel::forward(const Tensor& x) {
  RDD_CHECK(store_.materialized(), name_, ": forward before params().materialize()");
  RDD_CHECK(x.ndim() == 4 && x.size(1) == 3, name_, ": input must be (N, 3, H, W), got ", x.desc());
  RDD_CHECK(x.device() == store_.device(), name_, ": input on ", x.device().str(), " but the weights are on ",
            store_.device().str());
  ModelOutputs out;
  Tensor c3, c4;
  if (resnet_) {
    ResNet::Features f = resnet_->forward(x);
    c3 = f.c3;
    c4 = f.c4;
  } else {
    c4 = mobilenet_->forward(x);
  }
  HeadOutputs h = head_->forward(c4);
  c4 = Tensor();
  out.main = h.logits;
  out.feature = h.feature;
  if (aux_) out.aux = aux_->forward(c3);
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
  if (resnet_) resnet_->set_grad_ready_hook(&grad_ready_, &store_);
  if (mobilenet_) mobilenet_->set_grad_ready_hook(&grad_ready_, &store_);
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
  if (resnet_)
    resnet_->backward(dc3, dc4);
  else
    mobilenet_->backward(dc4);
}

GraphValue SegModel::record_main(GraphRecorder& g, GraphValue image) const {
  const GraphValue c4 = resnet_ ? resnet_->record(g, image) : mobilenet_->record(g, image);
  return head_->record(g, c4);
}

LayerTable SegModel::trace(const Shape& in) const {
  RDD_CHECK(in.size() == 4 && in[1] == 3, name_, ": trace input must be (N, 3, H, W), got ", shape_str(in));
  LayerTable t;
  Shape c3, c4;
  if (resnet_) {
    std::tie(c3, c4) = resnet_->trace(t, in);
  } else {
    c4 = mobilenet_->trace(t, in);
  }
  head_->trace(t, c4);
  if (aux_) aux_->trace(t, c3);
  return t;
}

}  // namespace rdd::models
