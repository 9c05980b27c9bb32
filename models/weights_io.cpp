#include "models/weights_io.h"

#include <cmath>
#include <sstream>

#include "engine/safetensors.h"

namespace rdd::models {

namespace {
std::string list_names(const std::vector<std::string>& names, size_t max_shown = 8) {
  std::ostringstream os;
  for (size_t i = 0; i < names.size() && i < max_shown; ++i) os << (i ? ", " : "") << names[i];
  if (names.size() > max_shown) os << ", ... (" << names.size() - max_shown << " more)";
  return os.str();
}

bool same_shape(const Shape& a, const Shape& b) {
  if (a == b) return true;
  return shape_numel(a) == 1 && shape_numel(b) == 1 && a.size() <= 1 && b.size() <= 1;
}

bool has_prefix(const std::string& s, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes)
    if (s.compare(0, p.size(), p) == 0) return true;
  return false;
}
}  // namespace

std::string WeightsReport::summary() const {
  std::ostringstream os;
  os << "loaded " << loaded.size() << " tensors";
  if (!missing.empty()) os << "; missing " << missing.size() << ": " << list_names(missing);
  if (!unexpected.empty()) os << "; unexpected " << unexpected.size() << ": " << list_names(unexpected);
  if (!mismatched.empty()) os << "; mismatched " << mismatched.size() << ": " << list_names(mismatched, 4);
  return os.str();
}

WeightsReport load_weights(ParamStore& store, const std::map<std::string, Tensor>& tensors, bool strict,
                           const std::string& what, const std::vector<std::string>& ignore_prefixes) {
  RDD_CHECK(store.materialized(), "load_weights(", what, "): the parameter store is not materialized");
  WeightsReport r;
  // Check everything first: a strict load that fails leaves the model untouched.
  std::vector<std::pair<Param*, const Tensor*>> todo;
  for (const Param& p : store.entries()) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) {
      r.missing.push_back(p.name);
      continue;
    }
    const Tensor& t = it->second;
    const bool kinds_match = is_floating(t.dtype()) == is_floating(p.dtype);
    if (!same_shape(t.shape(), p.shape) || !kinds_match) {
      r.mismatched.push_back(p.name + ": file " + dtype_name(t.dtype()) + shape_str(t.shape()) + ", model " +
                             dtype_name(p.dtype) + shape_str(p.shape));
      continue;
    }
    todo.emplace_back(store.find(p.name), &t);
  }
  for (const auto& [name, t] : tensors)
    if (!store.find(name) && !has_prefix(name, ignore_prefixes)) r.unexpected.push_back(name);
  if (strict && !r.complete())
    fail("load_weights(", what, "): the file does not match the model (strict): ", r.summary());
  // NaN or Inf in a weight is refused now, naming the tensor, not found later as a diverged loss.
  std::vector<Tensor> converted(todo.size());
  std::string first_bad;
  int64_t bad_tensors = 0;
  for (size_t k = 0; k < todo.size(); ++k) {
    const auto& [p, t] = todo[k];
    converted[k] = t->dtype() == p->dtype ? *t : t->to_dtype(p->dtype);
    if (!is_floating(p->dtype)) continue;
    const Tensor host = converted[k].device().is_cpu() ? converted[k] : converted[k].to(Device::cpu());
    const Tensor f = host.dtype() == DType::f64 || host.dtype() == DType::f32 ? host : host.to_dtype(DType::f32);
    int64_t nans = 0, infs = 0;
    auto count = [&](const auto* v) {
      for (int64_t i = 0; i < f.numel(); ++i) {
        nans += std::isnan(v[i]);
        infs += std::isinf(v[i]);
      }
    };
    if (f.dtype() == DType::f64) count(f.data<double>());
    else count(f.data<float>());
    if (nans + infs == 0) continue;
    if (bad_tensors++ == 0)
      first_bad = "'" + p->name + "' holds " + std::to_string(nans) + " NaN and " + std::to_string(infs) +
                  " infinite values (of " + std::to_string(f.numel()) + ")";
  }
  RDD_CHECK(bad_tensors == 0, "load_weights(", what, "): ", first_bad,
            bad_tensors > 1 ? ", and " + std::to_string(bad_tensors - 1) + " more tensors hold such values" : std::string(),
            ": the file comes from a run that diverged, or is damaged");
  for (size_t k = 0; k < todo.size(); ++k) {
    auto& [p, t] = todo[k];
    Tensor src = converted[k];
    if (src.shape() != p->shape) src = src.view(p->shape);
    p->value.copy_from(src);
    r.loaded.push_back(p->name);
  }
  return r;
}

WeightsReport load_weights(ParamStore& store, const std::string& path, bool strict) {
  SafetensorsFile f = read_safetensors(path);
  return load_weights(store, f.tensors, strict, path);
}

void save_weights(const ParamStore& store, const std::string& path, const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, store.state_dict(), metadata);
}

}  // namespace rdd::models
