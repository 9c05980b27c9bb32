// `rdd selftest --golden` for kind=kd_term (see golden_kd.h and scripts/make_golden_kd.py).
#include "train/golden_kd.h"

#include <sstream>

#include "engine/error.h"
#include "rdd/adversarial.h"
#include "train/distiller.h"

namespace rdd::train {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ','))
    if (!part.empty()) out.push_back(part);
  return out;
}

// The loss term names rdd logs for a method, by the case's expected names ("" for a single term).
struct TermMap {
  std::string expected, logged;
};

}  // namespace

std::vector<GoldenOutput> run_golden_kd_term(const SafetensorsFile& file, const std::string& what, Device device,
                                             double rtol) {
  const CaseReader c{file, what};
  const std::string method = c.meta("method");
  const std::vector<std::string> slots = split_commas(c.meta("slots"));
  NetOutputs s, t;
  auto slot_of = [&](NetOutputs& o, const std::string& slot) -> Tensor& {
    if (slot == "main") return o.main;
    if (slot == "aux") return o.aux;
    RDD_CHECK(slot == "feature", what, ": slot '", slot, "' is not main, aux or feature");
    return o.feature;
  };
  for (const std::string& slot : slots) {
    slot_of(s, slot) = c.tensor("golden.student." + slot, device);
    slot_of(t, slot) = c.tensor("golden.teacher." + slot, device);
  }
  const Tensor labels = c.tensor("golden.label", device);
  // The student's main logits always exist in a run; a feature-only case has none: give the terms a
  // placeholder of the right N and device (they read it only for its device).
  if (!s.main.defined()) s.main = Tensor::zeros({labels.size(0), 1, 1, 1}, DType::f32, device);

  // The case's method at weight 1, built the way a run builds it (add_kd_terms), λs as the plain sum.
  LossOptions o;
  DistillShapes shapes;
  std::vector<TermMap> terms;
  std::string param_prefix;
  if (s.feature.defined()) {
    shapes.student_feature_channels = int(s.feature.size(1));
    shapes.teacher_feature_channels = int(t.feature.size(1));
  }
  if (method == "at") {
    o.at = 1;
    terms = {{"", "at"}};
  } else if (method == "fitnet") {
    o.fitnet = 1;
    terms = {{"", "fitnet"}};
    param_prefix = "fitnet.";
  } else if (method == "cwd") {
    const std::string variant = c.meta("variant");
    if (variant == "logit") {
      o.cwd = 1;
      terms = {{"", "cwd"}};
    } else {
      RDD_CHECK(variant == "feature", what, ": cwd variant '", variant, "' is not logit or feature");
      o.cwd_feature = 1;
      terms = {{"", "cwd_feature"}};
      param_prefix = "cwd_feature.";
    }
    o.cwd_temperature = c.number("temperature");
  } else if (method == "skd") {
    o.skd = 1;
    terms = {{"", "skd"}};
  } else if (method == "ifvd") {
    o.ifvd = 1;
    shapes.num_classes = int(c.number("num_classes"));
    terms = {{"", "ifvd"}};
  } else if (method == "dsd") {
    o.dsd = 1;
    o.dsd_psd = o.dsd_csd = 1;
    o.dsd_temperature = c.number("tau");
    terms = {{"psd", "psd"}, {"csd", "csd"}};
  } else if (method == "dist") {
    o.dist = 1;
    o.dist_beta = c.number("beta");
    o.dist_gamma = c.number("gamma");
    o.dist_temperature = c.number("tau");
    o.dist_aux_weight = c.number("aux_weight");
    if (o.dist_aux_weight > 0) {
      terms.push_back({"main", "dist"});
      terms.push_back({"aux", "dist_aux"});
    } else {
      terms.push_back({"", "dist"});
    }
  } else if (method == "cirkd") {
    // The module's own sizes (per class) through the flags' totals: total = (per class − 1)·classes gives
    // total / classes + 1 = per class.
    const Tensor queue = c.tensor("golden.param.teacher_pixel_queue", Device::cpu());
    shapes.num_classes = int(queue.size(0));
    o.cirkd = 1;
    o.cirkd_minibatch = o.cirkd_pixel = o.cirkd_region = 1;
    o.cirkd_pixel_memory = int64_t(c.number("pixel_memory_size"));
    o.cirkd_region_memory = int64_t(c.number("region_memory_size"));
    o.cirkd_pixel_contrast = (int64_t(c.number("pixel_contrast_size")) - 1) * shapes.num_classes;
    o.cirkd_region_contrast = (int64_t(c.number("region_contrast_size")) - 1) * shapes.num_classes;
    o.cirkd_temperature = c.number("contrast_temperature");
    o.cirkd_kd_temperature = c.number("contrast_kd_temperature");
    o.cirkd_pixel_queue = c.meta("pixel_queue") == "class" ? "class" : "released";
    RDD_CHECK(c.meta("pixel_queue") == "class" || c.meta("pixel_queue") == "released", what, ": pixel_queue '",
              c.meta("pixel_queue"), "' is not released or class");
    terms = {{"minibatch", "cirkd_minibatch"}, {"pixel", "cirkd_pixel"}, {"region", "cirkd_region"}};
    param_prefix = "cirkd.";
  } else if (method == "adv_g") {
    o.adv = 1;
    o.adv_d = 1;
    o.adv_width = int(c.number("conv_dim"));
    shapes.num_classes = int(s.main.size(1));
    terms = {{"g", "adv_g"}, {"d", "adv_d"}};
  } else {
    fail(what, ": method '", method, "' is not one of at, fitnet, cwd, skd, ifvd, dsd, dist, cirkd, adv_g");
  }
  method::Distiller d;
  add_kd_terms(d, o, shapes);
  RDD_CHECK(d.terms().size() == 1, what, ": expected one term for method ", method);
  d.materialize(device, 1);
  // The discriminator keeps its own store (its own optimizer); every other method's is the distiller's.
  ParamStore* store = &d.params();
  if (auto* adv = dynamic_cast<method::AdversarialTerm*>(d.terms()[0].get())) store = &adv->params();
  // The case's parameters and buffers replace the initialisation.
  for (const auto& [name, value] : file.tensors) {
    const std::string key = "golden.param.";
    if (name.rfind(key, 0) != 0) continue;
    const std::string local = name.substr(key.size());
    Param* p = store->find(param_prefix + local);
    RDD_CHECK(p, what, ": golden.param.", local, " is not a parameter or buffer of method ", method, " (rdd has ",
              param_prefix, "...)");
    RDD_CHECK(p->value.shape() == value.shape(), what, ": golden.param.", local, " is ", value.desc(), ", rdd's ",
              p->name, " is ", p->value.desc());
    p->value.copy_from(value.to(device).to_dtype(p->value.dtype()));
  }
  if (d.has_parameters()) d.params().zero_grad();
  if (store != &d.params()) store->zero_grad();

  method::StudentGrads grads;
  const method::LossTerms logged = d.compute({1, 1, 1}, s, t, labels, grads);
  auto scalar = [](double v) { return Tensor::from_vector<double>({v}, {1}); };
  std::vector<GoldenOutput> out;
  for (const TermMap& m : terms) {
    const std::string key = m.expected.empty() ? "golden.expected.loss" : "golden.expected.loss." + m.expected;
    out.push_back(golden_compare(m.expected.empty() ? "loss" : "loss." + m.expected, scalar(logged.value(m.logged)),
                                 c.tensor(key, Device::cpu()), rtol));
  }
  for (const std::string& slot : slots) {
    const Tensor& g = slot == "main" ? grads.main : slot == "aux" ? grads.aux : grads.feature;
    const Tensor& x = slot_of(s, slot);
    out.push_back(golden_compare("grad." + slot, g.defined() ? g : Tensor::zeros(x.shape(), DType::f32, device),
                                 c.tensor("golden.expected.grad.student." + slot, Device::cpu()), rtol));
  }
  for (const auto& [name, expected] : file.tensors) {
    const std::string key = "golden.expected.grad.param.";
    if (name.rfind(key, 0) != 0) continue;
    const std::string local = name.substr(key.size());
    const Param* p = store->find(param_prefix + local);
    RDD_CHECK(p && p->grad.defined(), what, ": no parameter ", param_prefix + local, " with a gradient");
    out.push_back(golden_compare("grad." + local, p->grad, expected, rtol));
  }
  for (const auto& [name, expected] : file.tensors) {
    const std::string key = "golden.expected.param.";
    if (name.rfind(key, 0) != 0) continue;
    const std::string local = name.substr(key.size());
    const Param* p = store->find(param_prefix + local);
    RDD_CHECK(p, what, ": no buffer ", param_prefix + local);
    out.push_back(golden_compare(local, p->value, expected, rtol));
  }
  return out;
}

}  // namespace rdd::train
