#include "models/golden.h"

#include <algorithm>
#include <cmath>

#include "engine/numeric_check.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

namespace rdd::models {

double relative_error(const Tensor& got, const Tensor& want) {
  RDD_CHECK(got.shape() == want.shape(), "relative_error: shapes ", shape_str(got.shape()), " and ",
            shape_str(want.shape()), " differ");
  const Tensor a = got.to(Device::cpu()).to_dtype(DType::f64), b = want.to(Device::cpu()).to_dtype(DType::f64);
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num += (pa[i] - pb[i]) * (pa[i] - pb[i]);
    den += pb[i] * pb[i];
  }
  if (std::isnan(num)) return INFINITY;
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

double golden_error(const Tensor& got, const Tensor& want, double group_norm) {
  RDD_CHECK(got.numel() == want.numel(), "golden_error: ", got.desc(), " and ", want.desc(), " differ in size");
  const std::vector<double> g = got.to(Device::cpu()).to_vector<double>(), w = want.to(Device::cpu()).to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    diff += (g[i] - w[i]) * (g[i] - w[i]);
    norm += w[i] * w[i];
  }
  const double den = std::max(std::sqrt(norm), kGoldenFloor * group_norm);
  return den > 0 ? std::sqrt(diff) / den : std::sqrt(diff);
}

double golden_limit(double rtol, double envelope, double factor) {
  return std::isnan(envelope) ? rtol : std::max(factor * envelope, rtol);
}

double golden_envelope(const SafetensorsFile& file, const std::string& output) {
  const auto it = file.tensors.find("golden.f32_err." + output);
  if (it == file.tensors.end()) return NAN;
  RDD_CHECK(it->second.numel() == 1, "golden.f32_err.", output, " is ", it->second.desc(), ", not one number");
  return it->second.to(Device::cpu()).to_dtype(DType::f64).item();
}

double golden_group_norm(const std::vector<Tensor>& tensors) {
  double sum = 0;
  for (const Tensor& t : tensors)
    for (double v : t.to(Device::cpu()).to_vector<double>()) sum += v * v;
  return std::sqrt(sum);
}

namespace {
const std::string& meta(const SafetensorsFile& f, const std::string& key, const std::string& what) {
  auto it = f.metadata.find(key);
  RDD_CHECK(it != f.metadata.end(), what, ": metadata has no '", key, "'");
  return it->second;
}
const Tensor& tensor(const SafetensorsFile& f, const std::string& key, const std::string& what) {
  auto it = f.tensors.find(key);
  RDD_CHECK(it != f.tensors.end(), what, ": no tensor '", key, "'");
  return it->second;
}
Tensor optional(const SafetensorsFile& f, const std::string& key, Device device) {
  auto it = f.tensors.find(key);
  return it == f.tensors.end() ? Tensor() : it->second.to_dtype(DType::f32).to(device);
}

// One output: golden_error against `group_norm` (0: its own norm alone), judged by golden_limit.
GoldenCheck compare(const SafetensorsFile& f, const std::string& name, const Tensor& got, const Tensor& want,
                    double tol, double group_norm = 0) {
  GoldenCheck c;
  c.what = name;
  c.envelope = golden_envelope(f, name);
  c.tolerance = golden_limit(tol, c.envelope);
  if (!got.defined() || got.shape() != want.shape()) {
    c.rel_error = INFINITY;
    c.detail = "rdd gives " + (got.defined() ? shape_str(got.shape()) : std::string("nothing")) + ", expected " +
               shape_str(want.shape());
    return c;
  }
  c.rel_error = golden_error(got, want, group_norm);
  c.pass = c.rel_error <= c.tolerance;
  return c;
}
}  // namespace

std::vector<GoldenCheck> run_model_golden(const SafetensorsFile& f, Device device, double tolerance,
                                          const std::string& what) {
  RDD_CHECK(meta(f, "kind", what) == "model", what, ": kind is '", meta(f, "kind", what), "', not 'model'");
  const std::string name = meta(f, "model", what);
  const std::string mode = meta(f, "mode", what);
  RDD_CHECK(mode == "eval" || mode == "train", what, ": mode '", mode, "' is not eval or train");
  ModelOptions opt;
  opt.num_classes = std::stoi(meta(f, "num_classes", what));
  auto w = f.metadata.find("width");
  if (w != f.metadata.end()) opt.width = std::stod(w->second);

  auto model = build_model(name, opt);
  model->params().materialize(device);
  load_weights(model->params(), f.tensors, /*strict=*/true, what, {"golden."});
  const bool train = mode == "train";
  model->set_mode(train ? layers::Mode::train : layers::Mode::eval);
  model->set_dropout_enabled(false);

  const Tensor x = tensor(f, "golden.input", what).to_dtype(DType::f32).to(device);
  NetOutputs out = model->forward(x);
  std::vector<GoldenCheck> checks;
  checks.push_back(compare(f, "main", out.main, tensor(f, "golden.expected.main", what), tolerance));
  if (f.tensors.count("golden.expected.aux"))
    checks.push_back(compare(f, "aux", out.aux, tensor(f, "golden.expected.aux", what), tolerance));
  if (f.tensors.count("golden.expected.feature"))
    checks.push_back(compare(f, "feature", out.feature, tensor(f, "golden.expected.feature", what), tolerance));
  if (!train) return checks;

  // A gradient whose reference is ~0 (structurally zero ones are stored as exact zeros) is measured
  // against the norm of the whole expected gradient (golden_error's floor).
  std::vector<Tensor> expected_grads;
  for (Param* p : model->params().parameters()) expected_grads.push_back(tensor(f, "golden.expected.grad." + p->name, what));
  const double total = golden_group_norm(expected_grads);
  model->params().zero_grad();
  model->backward(tensor(f, "golden.grad.main", what).to_dtype(DType::f32).to(device),
                  optional(f, "golden.grad.aux", device), optional(f, "golden.grad.feature", device));
  size_t k = 0;
  for (Param* p : model->params().parameters())
    checks.push_back(compare(f, "grad." + p->name, p->grad, expected_grads[k++], tolerance, total));
  for (Param* b : model->params().buffers()) {
    auto it = f.tensors.find("golden.expected.buffer." + b->name);
    if (it != f.tensors.end()) checks.push_back(compare(f, "buffer." + b->name, b->value, it->second, tolerance));
  }
  return checks;
}

}  // namespace rdd::models
