#include "models/blocks.h"

#include <cmath>
#include <sstream>

#include "engine/rng.h"

namespace rdd::models {

int64_t LayerTable::total_params() const {
  int64_t n = 0;
  for (const LayerRow& r : rows) n += r.params;
  return n;
}
int64_t LayerTable::total_macs() const {
  int64_t n = 0;
  for (const LayerRow& r : rows) n += r.macs;
  return n;
}
int64_t LayerTable::total_paper_macs() const {
  int64_t n = 0;
  for (const LayerRow& r : rows) n += r.paper_macs;
  return n;
}

std::string conv_op_string(const layers::Conv2d& conv) {
  const layers::Conv2dOptions& o = conv.options();
  std::ostringstream os;
  os << "conv" << conv.kernel_size() << "x" << conv.kernel_size() << " s" << o.stride;
  if (o.dilation != 1) os << " d" << o.dilation;
  if (o.groups != 1) os << (o.groups == conv.in_channels() ? " dw" : " g" + std::to_string(o.groups));
  os << " " << conv.in_channels() << "→" << conv.out_channels();
  if (o.bias) os << " +bias";
  return os.str();
}

Shape trace_conv(LayerTable& t, const layers::Conv2d& conv, const Shape& in, const std::string& suffix,
                 int64_t extra_params) {
  RDD_CHECK(in.size() == 4 && in[1] == conv.in_channels(), conv.name(), ": input ", shape_str(in), " but the conv has ",
            conv.in_channels(), " input channels");
  const layers::Conv2dOptions& o = conv.options();
  const int k = conv.kernel_size();
  const int64_t p = layers::conv2d_output_size(int(in[2]), k, o.padding, o.stride, o.dilation, conv.name().c_str());
  const int64_t q = layers::conv2d_output_size(int(in[3]), k, o.padding, o.stride, o.dilation, conv.name().c_str());
  const Shape out{in[0], conv.out_channels(), p, q};
  LayerRow r;
  r.name = conv.name();
  r.op = conv_op_string(conv) + suffix;
  r.output = out;
  const int64_t per_out = int64_t(conv.in_channels() / o.groups) * k * k;
  r.params = int64_t(conv.out_channels()) * per_out + (o.bias ? conv.out_channels() : 0) + extra_params;
  r.macs = shape_numel(out) * per_out;
  // CIRKD utils/flops.py: out = (in + 2·pad − k)//stride + 1 (no dilation), one image.
  const int64_t pp = (in[2] + 2 * o.padding - k) / o.stride + 1, pq = (in[3] + 2 * o.padding - k) / o.stride + 1;
  r.paper_macs = int64_t(conv.in_channels()) * conv.out_channels() * k * k * pp * pq / o.groups;
  t.rows.push_back(r);
  return out;
}

void init_kaiming_normal_fan_out(layers::Conv2d& conv, uint64_t seed, uint64_t offset) {
  Param* w = conv.weight();
  const double fan_out = double(conv.out_channels()) * conv.kernel_size() * conv.kernel_size();
  fill_normal(w->value, 0.0, std::sqrt(2.0 / fan_out), seed, offset);
  if (conv.bias()) conv.bias()->value.zero_();
}

int scaled_channels(int c, double width) {
  if (width == 1.0) return c;
  return std::max(1, int(double(c) * width + 0.5));
}

ConvBnAct::ConvBnAct(ModuleList& mods, ParamStore& store, const std::string& conv_name, const std::string& bn_name,
                     int in_channels, int out_channels, int kernel_size, layers::Conv2dOptions opt, Act act)
    : act_kind_(act) {
  conv_ = mods.make<layers::Conv2d>(store, conv_name, in_channels, out_channels, kernel_size, opt);
  bn_ = mods.make<layers::BatchNorm2d>(store, bn_name, out_channels);
  if (act != Act::none) act_ = mods.make<layers::ReLU>(act == Act::relu6);
}

Tensor ConvBnAct::forward(const Tensor& x) {
  Tensor y = bn_->forward(conv_->forward(x));
  return act_ ? act_->forward(y) : y;
}

Tensor ConvBnAct::backward(const Tensor& dy) {
  Tensor d = act_ ? act_->backward(dy) : dy;
  return conv_->backward(bn_->backward(d));
}

void ConvBnAct::backward_params_only(const Tensor& dy) {
  Tensor d = act_ ? act_->backward(dy) : dy;
  conv_->backward_params_only(bn_->backward(d));
}

Shape ConvBnAct::trace(LayerTable& t, const Shape& in) const {
  const char* act = act_kind_ == Act::relu ? " +BN+ReLU" : act_kind_ == Act::relu6 ? " +BN+ReLU6" : " +BN";
  return trace_conv(t, *conv_, in, act, 2 * int64_t(conv_->out_channels()));
}

GraphValue ConvBnAct::record(GraphRecorder& g, GraphValue x) const {
  GraphValue y = g.batchnorm(*bn_, g.conv(*conv_, x));
  if (act_kind_ == Act::none) return y;
  const bool relu6 = act_kind_ == Act::relu6;
  return g.relu(y, relu6, bn_->name() + (relu6 ? ".relu6" : ".relu"));
}

void ConvBnAct::init(bool kaiming, uint64_t seed, uint64_t offset) {
  if (kaiming)
    init_kaiming_normal_fan_out(*conv_, seed, offset);
  else
    conv_->reset_parameters(seed, offset);
  bn_->reset_parameters();
}

DropoutUnit::DropoutUnit(ModuleList& mods, const DropoutControl& control, double p, int site)
    : layer_(mods.make<layers::Dropout>(p, /*channelwise=*/false)), control_(control), p_(p), site_(site) {
  RDD_CHECK(site >= 0 && uint64_t(site) < DropoutControl::kSites, "DropoutUnit: site ", site, " out of range");
}

Tensor DropoutUnit::forward(const Tensor& x) {
  passed_through_ = !control_.enabled || p_ == 0.0 || !layer_->training();
  if (passed_through_) return x;
  return layer_->forward(x, control_.seed, control_.step * DropoutControl::kSites + uint64_t(site_));
}

Tensor DropoutUnit::backward(const Tensor& dy) { return passed_through_ ? dy : layer_->backward(dy); }

int64_t first_offset_with_prefix(const ParamStore& store, const std::string& prefix) {
  const std::string p = prefix + ".";
  int64_t best = -1;
  for (const Param& e : store.entries())
    if (e.trainable && e.name.compare(0, p.size(), p) == 0 && (best < 0 || e.offset < best)) best = e.offset;
  return best;
}

}  // namespace rdd::models
