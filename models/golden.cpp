#include "models/golden.h"

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

GoldenCheck compare(const std::string& name, const Tensor& got, const Tensor& want, double tol) {
  GoldenCheck c;
  c.what = name;
  c.tolerance = tol;
  if (!got.defined() || got.shape() != want.shape()) {
    c.rel_error = INFINITY;
    c.detail = "rdd gives " + (got.defined() ? shape_str(got.shape()) : std::string("nothing")) + ", expected " +
               shape_str(want.shape());
    return c;
  }
  c.rel_error = relative_error(got, want);
  c.pass = c.rel_error <= tol;
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
  checks.push_back(compare("main", out.main, tensor(f, "golden.expected.main", what), tolerance));
  if (f.tensors.count("golden.expected.aux"))
    checks.push_back(compare("aux", out.aux, tensor(f, "golden.expected.aux", what), tolerance));
  if (f.tensors.count("golden.expected.feature"))
    checks.push_back(compare("feature", out.feature, tensor(f, "golden.expected.feature", what), tolerance));
  if (!train) return checks;

  // A structurally zero gradient is stored as exact zeros; its error is measured against the norm of
  // the whole expected gradient (its own norm is 0).
  double total2 = 0;
  for (Param* p : model->params().parameters()) {
    const Tensor& e = tensor(f, "golden.expected.grad." + p->name, what);
    for (double v : e.to_vector<double>()) total2 += v * v;
  }
  const double total = std::sqrt(total2);
  model->params().zero_grad();
  model->backward(tensor(f, "golden.grad.main", what).to_dtype(DType::f32).to(device),
                  optional(f, "golden.grad.aux", device), optional(f, "golden.grad.feature", device));
  for (Param* p : model->params().parameters()) {
    const Tensor& e = tensor(f, "golden.expected.grad." + p->name, what);
    GoldenCheck c = compare("grad " + p->name, p->grad, e, tolerance);
    if (c.detail.empty() && dot(e, e) == 0.0) {
      c.rel_error = std::sqrt(dot(p->grad.to(Device::cpu()), p->grad.to(Device::cpu()))) / std::max(total, 1e-30);
      c.pass = c.rel_error <= tolerance;
      c.what += " (zero)";
    }
    checks.push_back(c);
  }
  for (Param* b : model->params().buffers()) {
    auto it = f.tensors.find("golden.expected.buffer." + b->name);
    if (it != f.tensors.end()) checks.push_back(compare("buffer " + b->name, b->value, it->second, tolerance));
  }
  return checks;
}

}  // namespace rdd::models
