#include "deploy/onnx_graph_builder.h"

#include <onnx/onnx_pb.h>

#include "deploy/adaptive_pool_plan.h"
#include "deploy/bn_folding.h"

namespace rdd::deploy {

using models::GraphValue;

namespace {
constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kInt64 = onnx::TensorProto::INT64;

void attr_int(onnx::NodeProto* n, const char* name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void attr_ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void attr_float(onnx::NodeProto* n, const char* name, float v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
void attr_string(onnx::NodeProto* n, const char* name, const std::string& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

void set_f32_data(onnx::TensorProto* t, const Tensor& host) {
  RDD_CHECK(host.dtype() == DType::f32 && host.device().is_cpu(), "onnx export: initializer ", t->name(),
            " must be f32 on the CPU, got ", host.desc());
  t->clear_dims();
  for (int64_t d : host.shape()) t->add_dims(d);
  t->set_data_type(kFloat);
  t->set_raw_data(host.raw(), host.nbytes());
}

Tensor on_host(const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device::cpu()); }

std::string dims_str(const std::vector<OnnxDim>& s, size_t from = 2) {
  std::string r;
  for (size_t i = from; i < s.size(); ++i) {
    if (i > from) r += 'x';
    r += s[i].str();
  }
  return r;
}
}  // namespace

OnnxGraphBuilder::OnnxGraphBuilder(onnx::GraphProto& graph, const OnnxGraphOptions& o) : graph_(graph), opt_(o) {
  RDD_CHECK((o.height > 0) == (o.width > 0) && (o.height > 0 || (o.height == -1 && o.width == -1)),
            "onnx export: input size ", o.height, "x", o.width, " (both positive, or both −1 for a dynamic size)");
}

const OnnxGraphBuilder::Value& OnnxGraphBuilder::value(GraphValue v) const {
  RDD_CHECK(v.id >= 0 && size_t(v.id) < values_.size(), "onnx export: value ", v.id, " was never recorded");
  return values_[size_t(v.id)];
}

std::string OnnxGraphBuilder::use(GraphValue v) {
  value(v);
  Value& val = values_[size_t(v.id)];
  ++val.uses;
  return val.name;
}

const std::vector<OnnxDim>& OnnxGraphBuilder::shape(GraphValue v) const { return value(v).shape; }

std::string OnnxGraphBuilder::shape_str(GraphValue v) const {
  std::string s = "[";
  for (size_t i = 0; i < shape(v).size(); ++i) {
    if (i) s += ',';
    s += shape(v)[i].str();
  }
  return s + "]";
}

std::string OnnxGraphBuilder::unique_name(const std::string& base) {
  int& n = names_[base];
  if (n++ == 0) return base;
  std::string name;
  do name = detail::concat(base, "_", n++);
  while (names_.count(name));
  names_[name] = 1;
  return name;
}

onnx::NodeProto* OnnxGraphBuilder::add_node(const std::string& op, const std::string& name,
                                            const std::vector<std::string>& inputs) {
  onnx::NodeProto* n = graph_.add_node();
  n->set_op_type(op);
  const std::string unique = unique_name(name);
  n->set_name(unique);
  for (const std::string& in : inputs) n->add_input(in);
  n->add_output(unique);  // every node here has one output, named like the node
  return n;
}

GraphValue OnnxGraphBuilder::make_value(onnx::NodeProto* producer, std::vector<OnnxDim> shape, int elem_type) {
  Value v;
  v.name = producer->output(0);
  v.shape = std::move(shape);
  v.elem_type = elem_type;
  v.producer = producer;
  values_.push_back(std::move(v));
  return GraphValue{int(values_.size() - 1)};
}

onnx::TensorProto* OnnxGraphBuilder::add_initializer(const std::string& name, const Tensor& t) {
  onnx::TensorProto* init = graph_.add_initializer();
  init->set_name(unique_name(name));
  set_f32_data(init, t);
  return init;
}

std::string OnnxGraphBuilder::constant_i64(const std::vector<int64_t>& values) {
  std::string key = "const_i64";
  for (int64_t v : values) {
    key += v < 0 ? "_m" : "_";
    key += std::to_string(v < 0 ? -v : v);
  }
  auto it = constants_.find(key);
  if (it != constants_.end()) return it->second;
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(unique_name(key));
  t->set_data_type(kInt64);
  t->add_dims(int64_t(values.size()));
  for (int64_t v : values) t->add_int64_data(v);
  return constants_[key] = t->name();
}

std::string OnnxGraphBuilder::constant_f32(float v) {
  const std::string key = detail::concat("const_f32_", v);
  auto it = constants_.find(key);
  if (it != constants_.end()) return it->second;
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(unique_name(key));
  t->set_data_type(kFloat);  // a scalar: no dims
  t->add_float_data(v);
  return constants_[key] = t->name();
}

std::string OnnxGraphBuilder::empty_f32() {
  const std::string key = "const_f32_empty";
  auto it = constants_.find(key);
  if (it != constants_.end()) return it->second;
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(unique_name(key));
  t->set_data_type(kFloat);
  t->add_dims(0);
  return constants_[key] = t->name();
}

std::string OnnxGraphBuilder::shape_slice(GraphValue v, int64_t begin, int64_t end) {
  auto it = shapes_.find(v.id);
  if (it == shapes_.end()) {
    const std::string in = use(v);
    it = shapes_.emplace(v.id, add_node("Shape", in + ".shape", {in})->output(0)).first;
  }
  const std::string name = detail::concat(it->second, "_", begin, "_", end);
  onnx::NodeProto* s =
      add_node("Slice", name, {it->second, constant_i64({begin}), constant_i64({end}), constant_i64({0})});
  return s->output(0);
}

GraphValue OnnxGraphBuilder::add_input(const std::string& name, int64_t channels) {
  RDD_CHECK(names_.count(name) == 0, "onnx export: input name '", name, "' is taken");
  names_[name] = 1;
  onnx::ValueInfoProto* in = graph_.add_input();
  in->set_name(name);
  onnx::TypeProto_Tensor* tt = in->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(kFloat);
  Value v;
  v.name = name;
  v.shape = {{-1, "batch"}, {channels, ""}, {opt_.height, opt_.height > 0 ? "" : "height"},
             {opt_.width, opt_.width > 0 ? "" : "width"}};
  for (const OnnxDim& d : v.shape) {
    onnx::TensorShapeProto_Dimension* dim = tt->mutable_shape()->add_dim();
    if (d.known()) dim->set_dim_value(d.value);
    else dim->set_dim_param(d.param);
  }
  values_.push_back(std::move(v));
  return GraphValue{int(values_.size() - 1)};
}

void OnnxGraphBuilder::add_output(GraphValue v, const std::string& name) {
  value(v);
  Value& val = values_[size_t(v.id)];
  RDD_CHECK(names_.count(name) == 0 || val.name == name, "onnx export: output name '", name, "' is taken");
  if (val.name != name) {
    if (val.uses == 0 && val.producer) {  // nothing reads it yet: the producer writes `name` directly
      names_[name] = 1;
      val.producer->set_output(0, name);
      val.name = name;
    } else {
      onnx::NodeProto* id = graph_.add_node();
      id->set_op_type("Identity");
      names_[name] = 1;
      id->set_name(name);
      id->add_input(use(v));
      id->add_output(name);
    }
  }
  ++val.uses;
  val.conv = nullptr;  // an output takes no BatchNorm in any more
  onnx::ValueInfoProto* out = graph_.add_output();
  out->set_name(name);
  onnx::TypeProto_Tensor* tt = out->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(val.elem_type);
  for (const OnnxDim& d : val.shape) {
    onnx::TensorShapeProto_Dimension* dim = tt->mutable_shape()->add_dim();
    if (d.known()) dim->set_dim_value(d.value);
    else if (!d.param.empty()) dim->set_dim_param(d.param);
  }
}

// ---- the recorded operations -------------------------------------------------------------------------------
GraphValue OnnxGraphBuilder::conv(const layers::Conv2d& c, GraphValue x) {
  const std::vector<OnnxDim> in = shape(x);  // (N, C, H, W)
  RDD_CHECK(in.size() == 4 && in[1].value == c.in_channels(), "onnx export: ", c.name(), " takes ", c.in_channels(),
            " channels, its input ", value(x).name, " is ", shape_str(x));
  const layers::Conv2dOptions& o = c.options();
  const int k = c.kernel_size();
  auto out_size = [&](const OnnxDim& d) -> OnnxDim {
    if (!d.known()) return {};
    return {layers::conv2d_output_size(int(d.value), k, o.padding, o.stride, o.dilation, c.name().c_str()), ""};
  };
  const std::string x_name = use(x);
  onnx::TensorProto* w = add_initializer(c.name() + ".weight", on_host(c.weight()->value));  // (K, C/g, k, k)
  onnx::TensorProto* b = c.bias() ? add_initializer(c.name() + ".bias", on_host(c.bias()->value)) : nullptr;
  std::vector<std::string> inputs{x_name, w->name()};
  if (b) inputs.push_back(b->name());
  onnx::NodeProto* n = add_node("Conv", c.name(), inputs);
  attr_ints(n, "kernel_shape", {k, k});
  attr_ints(n, "strides", {o.stride, o.stride});
  attr_ints(n, "pads", {o.padding, o.padding, o.padding, o.padding});
  attr_ints(n, "dilations", {o.dilation, o.dilation});
  attr_int(n, "group", o.groups);
  const GraphValue y = make_value(n, {in[0], {c.out_channels(), ""}, out_size(in[2]), out_size(in[3])});
  Value& v = values_[size_t(y.id)];
  v.conv = &c;
  v.weight = w;
  v.bias = b;
  return y;
}

GraphValue OnnxGraphBuilder::batchnorm(const layers::BatchNorm2d& bn, GraphValue x) {
  ++batchnorms_;
  const std::vector<OnnxDim> in = shape(x);
  RDD_CHECK(in.size() == 4 && in[1].value == bn.channels(), "onnx export: ", bn.name(), " takes ", bn.channels(),
            " channels, its input ", value(x).name, " is ", shape_str(x));
  Value& v = values_[size_t(x.id)];
  if (opt_.fold_bn && v.conv && v.uses == 0) {
    // Fold: the conv's weights become a·W, its bias a·(b − mean) + β; its output is now the BN's.
    const FoldedConv f = fold_batchnorm(*v.conv, bn);
    set_f32_data(v.weight, f.weight);
    v.weight->set_name(unique_name(v.conv->name() + ".weight_folded_bn"));
    v.producer->set_input(1, v.weight->name());
    if (v.bias) {
      set_f32_data(v.bias, f.bias);
      v.bias->set_name(unique_name(v.conv->name() + ".bias_folded_bn"));
      v.producer->set_input(2, v.bias->name());
    } else {
      v.bias = add_initializer(v.conv->name() + ".bias_folded_bn", f.bias);
      v.producer->add_input(v.bias->name());
    }
    v.producer->set_doc_string("BatchNorm " + bn.name() + " folded in");
    v.name = unique_name(bn.name());
    v.producer->set_output(0, v.name);
    v.conv = nullptr;  // folded once
    ++folded_;
    return x;
  }
  const std::string x_name = use(x);
  const std::string scale = add_initializer(bn.name() + ".weight", on_host(bn.weight()->value))->name();
  const std::string shift = add_initializer(bn.name() + ".bias", on_host(bn.bias()->value))->name();
  const std::string mean = add_initializer(bn.name() + ".running_mean", on_host(bn.running_mean()->value))->name();
  const std::string var = add_initializer(bn.name() + ".running_var", on_host(bn.running_var()->value))->name();
  onnx::NodeProto* n = add_node("BatchNormalization", bn.name(), {x_name, scale, shift, mean, var});
  attr_float(n, "epsilon", float(bn.eps()));
  return make_value(n, in);
}

GraphValue OnnxGraphBuilder::relu(GraphValue x, bool relu6, const std::string& name) {
  const std::vector<OnnxDim> in = shape(x);
  const std::string x_name = use(x);
  onnx::NodeProto* n = relu6 ? add_node("Clip", name, {x_name, constant_f32(0.f), constant_f32(6.f)})
                             : add_node("Relu", name, {x_name});
  return make_value(n, in);
}

GraphValue OnnxGraphBuilder::maxpool(GraphValue x, const layers::MaxPool2dOptions& o, const std::string& name) {
  RDD_CHECK(!o.ceil_mode, "onnx export: ", name, ": a ceil_mode MaxPool is not exported (ONNX's output-size rule "
            "differs from PyTorch's when the last window starts in the padding)");
  const std::vector<OnnxDim> in = shape(x);
  auto out_size = [&](const OnnxDim& d, const char* axis) -> OnnxDim {
    if (!d.known()) return {};
    const int64_t out = layers::maxpool2d_output_size(d.value, o);
    RDD_CHECK(out >= 1, "onnx export: ", name, ": the input is ", d.value, " ", axis, ", too small for a ", o.kernel,
              "x", o.kernel, " max pool (use a larger --input)");
    return {out, ""};
  };
  const std::string x_name = use(x);
  onnx::NodeProto* n = add_node("MaxPool", name, {x_name});
  attr_ints(n, "kernel_shape", {o.kernel, o.kernel});
  attr_ints(n, "strides", {o.stride, o.stride});
  attr_ints(n, "pads", {o.padding, o.padding, o.padding, o.padding});
  return make_value(n, {in[0], in[1], out_size(in[2], "rows"), out_size(in[3], "columns")});
}

// One axis of an adaptive average pool (axis 2: rows, 3: columns); `how` receives the plan's description.
GraphValue OnnxGraphBuilder::pool_axis(GraphValue x, int axis, int64_t out, const std::string& name,
                                       std::string& how) {
  std::vector<OnnxDim> s = shape(x);
  const AxisPoolPlan plan = plan_axis_pool(s[size_t(axis)].value, out);
  how = plan.describe();
  const char* tag = axis == 2 ? ".rows" : ".cols";
  s[size_t(axis)] = {out, ""};
  if (plan.form == AxisPoolForm::whole) {
    onnx::NodeProto* n = add_node("ReduceMean", name + tag, {use(x)});
    attr_ints(n, "axes", {axis});
    attr_int(n, "keepdims", 1);
    return make_value(n, s);
  }
  if (plan.form == AxisPoolForm::uniform) {
    const int64_t k = plan.in / out;
    onnx::NodeProto* n = add_node("AveragePool", name + tag, {use(x)});
    attr_ints(n, "kernel_shape", axis == 2 ? std::vector<int64_t>{k, 1} : std::vector<int64_t>{1, k});
    attr_ints(n, "strides", axis == 2 ? std::vector<int64_t>{k, 1} : std::vector<int64_t>{1, k});
    return make_value(n, s);
  }
  // Slice + ReduceMean per bin, then Concat along the axis.
  std::string n_len;  // runtime_bins: the axis length as int64 [1]
  if (plan.form == AxisPoolForm::runtime_bins) n_len = shape_slice(x, axis, axis + 1);
  const std::string axes = constant_i64({axis});
  std::vector<std::string> parts;
  for (int64_t i = 0; i < out; ++i) {
    const std::string bin = name + tag + std::to_string(i);
    std::string begin, end;
    if (plan.form == AxisPoolForm::bins) {
      begin = constant_i64({plan.bins[size_t(i)].first});
      end = constant_i64({plan.bins[size_t(i)].second});
    } else {
      // begin = ⌊i·n/out⌋, end = ⌈(i+1)·n/out⌉ = ⌊((i+1)·n + out − 1)/out⌋ (n ≥ 0: Div truncates = floors)
      const std::string o = constant_i64({out});
      begin = i == 0 ? constant_i64({0})
                     : add_node("Div", bin + ".begin",
                                {add_node("Mul", bin + ".i_n", {n_len, constant_i64({i})})->output(0), o})
                           ->output(0);
      const std::string next = add_node("Mul", bin + ".i1_n", {n_len, constant_i64({i + 1})})->output(0);
      end = add_node("Div", bin + ".end",
                     {add_node("Add", bin + ".round_up", {next, constant_i64({out - 1})})->output(0), o})
                ->output(0);
    }
    onnx::NodeProto* slice = add_node("Slice", bin + ".slice", {use(x), begin, end, axes});
    onnx::NodeProto* mean = add_node("ReduceMean", bin, {slice->output(0)});
    attr_ints(mean, "axes", {axis});
    attr_int(mean, "keepdims", 1);
    parts.push_back(mean->output(0));
  }
  onnx::NodeProto* cat = add_node("Concat", name + tag, parts);
  attr_int(cat, "axis", axis);
  return make_value(cat, s);
}

GraphValue OnnxGraphBuilder::adaptive_avgpool(GraphValue x, int out_h, int out_w, const std::string& name) {
  const std::vector<OnnxDim> in = shape(x);
  const std::string from = detail::concat(dims_str(in), "→", out_h, "x", out_w);
  std::vector<OnnxDim> out_shape{in[0], in[1], {out_h, ""}, {out_w, ""}};
  if (out_h == 1 && out_w == 1) {
    onnx::NodeProto* n = add_node("GlobalAveragePool", name, {use(x)});
    notes_.push_back(name + " " + from + ": GlobalAveragePool");
    return make_value(n, out_shape);
  }
  const AxisPoolPlan rows = plan_axis_pool(in[2].value, out_h), cols = plan_axis_pool(in[3].value, out_w);
  auto fixed_window = [](const AxisPoolPlan& p) {
    return p.in > 0 && (p.form == AxisPoolForm::uniform || p.form == AxisPoolForm::whole);
  };
  if (fixed_window(rows) && fixed_window(cols)) {  // one AveragePool: equal, disjoint windows on both axes
    const int64_t kh = rows.in / out_h, kw = cols.in / out_w;
    onnx::NodeProto* n = add_node("AveragePool", name, {use(x)});
    attr_ints(n, "kernel_shape", {kh, kw});
    attr_ints(n, "strides", {kh, kw});
    notes_.push_back(detail::concat(name, " ", from, ": AveragePool, kernel = stride = ", kh, "x", kw));
    return make_value(n, out_shape);
  }
  std::string how_rows, how_cols;
  const GraphValue r = pool_axis(x, 2, out_h, name, how_rows);
  const GraphValue y = pool_axis(r, 3, out_w, name, how_cols);
  notes_.push_back(name + " " + from + ": rows " + how_rows + "; columns " + how_cols);
  return y;
}

GraphValue OnnxGraphBuilder::resize_bilinear_to(GraphValue x, GraphValue size_of, bool align_corners,
                                                const std::string& name) {
  const std::vector<OnnxDim> in = shape(x), target = shape(size_of);
  const std::vector<OnnxDim> out{in[0], in[1], target[2], target[3]};
  const std::string from = dims_str(in) + "→" + dims_str(out);
  // A 1×1 source: every tap reads index 0 with weight 1 (rdd and ONNX alike): the value, broadcast.
  if (in[2].value == 1 && in[3].value == 1) {
    std::string spatial;
    if (target[2].known() && target[3].known()) {
      spatial = constant_i64({1, 1, target[2].value, target[3].value});
    } else {
      onnx::NodeProto* cat = add_node("Concat", name + ".shape", {constant_i64({1, 1}), shape_slice(size_of, 2, 4)});
      attr_int(cat, "axis", 0);
      spatial = cat->output(0);
    }
    onnx::NodeProto* n = add_node("Expand", name, {use(x), spatial});
    notes_.push_back(name + " " + from + ": Expand (a 1x1 map: bilinear resizing copies its value)");
    return make_value(n, out);
  }
  // Equal static sizes: the taps land on the pixels themselves (λ = 0), a copy.
  if (in[2].known() && in[3].known() && in[2].value == out[2].value && in[3].value == out[3].value) {
    notes_.push_back(name + " " + from + ": nothing (equal sizes)");
    return x;
  }
  // One output pixel along an axis: ONNX's align_corners rule divides by (output size − 1) = 0 (rdd reads the
  // first pixel); pytorch_half_pixel reads the first pixel (rdd the centre). Neither matches: refused.
  for (int axis = 2; axis < 4; ++axis)
    if (out[size_t(axis)].value == 1)
      fail("onnx export: ", name, " resizes ", dims_str(in), " to ", dims_str(out), ": to one ",
           axis == 2 ? "row" : "column",
           align_corners ? " with align_corners, where ONNX's Resize divides by (output size − 1) = 0"
                         : " with half-pixel centres, where ONNX's pytorch_half_pixel reads the first pixel and rdd "
                           "the centre",
           "; not exported (use a larger --input)");
  if (!out[2].known() || !out[3].known())
    requirements_.push_back(name + " (Resize, " + (align_corners ? "align_corners" : "pytorch_half_pixel") +
                            ") resizes " + dims_str(in) + " to the size of " + value(size_of).name +
                            ", which must be at least 2x2 (ONNX's rule is undefined for a one-pixel output)");
  const std::string spatial = target[2].known() && target[3].known()
                                  ? constant_i64({target[2].value, target[3].value})
                                  : shape_slice(size_of, 2, 4);
  onnx::NodeProto* sizes = add_node("Concat", name + ".sizes", {shape_slice(x, 0, 2), spatial});
  attr_int(sizes, "axis", 0);
  const std::string x_name = use(x);
  const bool old_resize = opt_.opset < 13;  // opset 11/12: roi and scales are required inputs (empty)
  onnx::NodeProto* n = add_node("Resize", name, {x_name, old_resize ? empty_f32() : std::string(),
                                                 old_resize ? empty_f32() : std::string(), sizes->output(0)});
  attr_string(n, "mode", "linear");
  attr_string(n, "coordinate_transformation_mode", align_corners ? "align_corners" : "pytorch_half_pixel");
  notes_.push_back(name + " " + from + ": Resize linear, " + (align_corners ? "align_corners" : "pytorch_half_pixel"));
  return make_value(n, out);
}

GraphValue OnnxGraphBuilder::concat_channels(const std::vector<GraphValue>& xs, const std::string& name) {
  RDD_CHECK(!xs.empty(), "onnx export: ", name, ": concat of nothing");
  std::vector<OnnxDim> s = shape(xs[0]);
  int64_t channels = 0;
  std::vector<std::string> inputs;
  for (const GraphValue& v : xs) {
    const std::vector<OnnxDim>& sv = shape(v);
    for (size_t axis = 2; axis < 4; ++axis)
      RDD_CHECK(!sv[axis].known() || !s[axis].known() || sv[axis].value == s[axis].value, "onnx export: ", name,
                ": inputs ", shape_str(xs[0]), " and ", shape_str(v), " differ in size");
    channels += sv[1].value;
    inputs.push_back(use(v));
  }
  s[1] = {channels, ""};
  onnx::NodeProto* n = add_node("Concat", name, inputs);
  attr_int(n, "axis", 1);
  return make_value(n, s);
}

GraphValue OnnxGraphBuilder::add(GraphValue a, GraphValue b, const std::string& name) {
  const std::vector<OnnxDim> s = shape(a);
  RDD_CHECK(shape(b)[1].value == s[1].value, "onnx export: ", name, ": adds ", shape_str(a), " and ", shape_str(b));
  const std::string an = use(a), bn = use(b);
  return make_value(add_node("Add", name, {an, bn}), s);
}

GraphValue OnnxGraphBuilder::argmax_channels(GraphValue x, const std::string& name) {
  const std::vector<OnnxDim> s = shape(x);
  onnx::NodeProto* n = add_node("ArgMax", name, {use(x)});
  attr_int(n, "axis", 1);
  attr_int(n, "keepdims", 0);
  return make_value(n, {s[0], s[2], s[3]}, kInt64);
}

}  // namespace rdd::deploy
