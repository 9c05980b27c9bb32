#include "train/checkpoint.h"

#include "engine/safetensors.h"
#include "models/weights_io.h"

namespace rdd::train {

void save_checkpoint(const std::string& path, const ParamStore& model, const Sgd& optimizer,
                     const CheckpointInfo& info, const DistillCheckpoint& distill) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, value] : model.state_dict()) tensors["model." + name] = value;
  tensors["optim.momentum"] = optimizer.momentum_buffer();
  if (distill.distiller) {
    if (distill.distiller->params().materialized())
      for (const auto& [name, value] : distill.distiller->params().state_dict()) tensors["distill." + name] = value;
    for (const auto& [name, value] : distill.distiller->extra_state()) tensors["distill_state." + name] = value;
  }
  if (distill.sgd) tensors["optim.distill_momentum"] = distill.sgd->momentum_buffer();
  std::map<std::string, std::string> meta = info.extra;
  meta["kind"] = "checkpoint";
  meta["rdd_version"] = RDD_VERSION;
  meta["model"] = info.model;
  meta["iteration"] = std::to_string(info.iteration);
  meta["config"] = info.config.dump();
  write_safetensors(path, tensors, meta);
}

namespace {

CheckpointInfo info_from_metadata(const std::map<std::string, std::string>& metadata, const std::string& path) {
  auto meta = [&](const char* key) -> const std::string& {
    auto it = metadata.find(key);
    RDD_CHECK(it != metadata.end(), path, ": not an rdd checkpoint (no '", key, "' in its metadata)");
    return it->second;
  };
  RDD_CHECK(meta("kind") == "checkpoint", path, ": kind is '", meta("kind"),
            "', not 'checkpoint' (a weights file goes to --init or --teacher-weights, not --resume)");
  CheckpointInfo info;
  info.model = meta("model");
  try {
    info.iteration = std::stoll(meta("iteration"));
    info.config = nlohmann::json::parse(meta("config"));
  } catch (const std::exception& e) {
    fail(path, ": the saved iteration or configuration cannot be read (", e.what(), ")");
  }
  for (const auto& [k, v] : metadata)
    if (k != "kind" && k != "model" && k != "iteration" && k != "config" && k != "rdd_version") info.extra[k] = v;
  return info;
}

}  // namespace

CheckpointInfo read_checkpoint_info(const std::string& path) {
  return info_from_metadata(read_safetensors_metadata(path), path);
}

CheckpointInfo load_checkpoint(const std::string& path, ParamStore& model, Sgd& optimizer,
                               const DistillCheckpoint& distill) {
  SafetensorsFile f = read_safetensors(path);
  CheckpointInfo info = info_from_metadata(f.metadata, path);

  std::map<std::string, Tensor> weights, distill_weights, distill_state;
  Tensor momentum, distill_momentum;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("model.", 0) == 0) weights[name.substr(6)] = t;
    else if (name == "optim.momentum") momentum = t;
    else if (name.rfind("distill.", 0) == 0) distill_weights[name.substr(8)] = t;
    else if (name.rfind("distill_state.", 0) == 0) distill_state[name.substr(14)] = t;
    else if (name == "optim.distill_momentum") distill_momentum = t;
    else fail(path, ": unexpected tensor '", name, "' in a checkpoint");
  }
  models::load_weights(model, weights, /*strict=*/true, path);
  const bool has_store = distill.distiller && !distill.distiller->params().entries().empty();
  RDD_CHECK(has_store || distill_weights.empty(), path, ": the checkpoint holds distillation-term state (",
            distill_weights.begin()->first, ", ...) that this run has no term for");
  if (has_store) models::load_weights(distill.distiller->params(), distill_weights, /*strict=*/true, path);
  if (distill.distiller) distill.distiller->load_extra_state(distill_state);
  if (distill.sgd) {
    RDD_CHECK(distill_momentum.defined(), path, ": the distillation terms' optimizer state (optim.distill_momentum) is missing");
    RDD_CHECK(distill_momentum.shape() == distill.sgd->momentum_buffer().shape(), path, ": optim.distill_momentum is ",
              distill_momentum.desc(), ", expected ", distill.sgd->momentum_buffer().desc());
    Tensor dst = distill.sgd->momentum_buffer();
    dst.copy_from(distill_momentum.to(dst.device()));
    distill.sgd->set_steps(info.iteration);
  }
  RDD_CHECK(momentum.defined(), path, ": the optimizer state (optim.momentum) is missing");
  RDD_CHECK(momentum.shape() == optimizer.momentum_buffer().shape() && momentum.dtype() == DType::f32, path,
            ": optim.momentum is ", momentum.desc(), ", the optimizer expects ", optimizer.momentum_buffer().desc());
  Tensor dst = optimizer.momentum_buffer();
  dst.copy_from(momentum.to(dst.device()));
  optimizer.set_steps(info.iteration);
  return info;
}

std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            const std::vector<std::string>& ignored) {
  std::vector<std::string> diffs;
  auto skip = [&](const std::string& k) {
    for (const std::string& i : ignored)
      if (i == k) return true;
    return false;
  };
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (skip(it.key())) continue;
    if (!saved.contains(it.key())) diffs.push_back(it.key() + ": not in the checkpoint, now " + it.value().dump());
    else if (saved[it.key()] != it.value())
      diffs.push_back(it.key() + ": saved " + saved[it.key()].dump() + ", now " + it.value().dump());
  }
  for (auto it = saved.begin(); it != saved.end(); ++it)
    if (!skip(it.key()) && !now.contains(it.key())) diffs.push_back(it.key() + ": saved " + it.value().dump() + ", now absent");
  return diffs;
}

}  // namespace rdd::train
