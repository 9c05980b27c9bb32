#include "train/model_weights.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "models/weights_io.h"

namespace rdd::train {

void save_model_weights(const models::SegModel& m, const std::string& path,
                        const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> meta = extra;
  meta["kind"] = "weights";
  meta["model"] = m.name();
  meta["num_classes"] = std::to_string(m.options().num_classes);
  meta["width"] = std::to_string(m.options().width);
  models::save_weights(m.params(), path, meta);
}

WeightsInfo read_weights_info(const std::string& path) {
  const std::map<std::string, std::string> meta = read_safetensors_metadata(path);
  auto get = [&](const char* key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  WeightsInfo info;
  info.kind = get("kind");
  info.model = get("model");
  info.preset = get("preset");
  info.dataset = get("dataset");
  try {
    if (!get("width").empty()) info.width = std::stod(get("width"));
    if (!get("num_classes").empty()) info.num_classes = std::stoi(get("num_classes"));
  } catch (const std::exception&) {
    fail(path, ": its metadata holds a width '", get("width"), "' or class count '", get("num_classes"),
         "' that is not a number");
  }
  if (info.kind == "checkpoint" && !get("config").empty()) {  // a training checkpoint: its run configuration
    const nlohmann::json c = nlohmann::json::parse(get("config"), nullptr, /*allow_exceptions=*/false);
    if (c.is_object()) {
      if (c.contains("width") && c["width"].is_number()) info.width = c["width"].get<double>();
      if (c.contains("preset") && c["preset"].is_string()) info.preset = c["preset"].get<std::string>();
      if (c.contains("dataset") && c["dataset"].is_string()) info.dataset = c["dataset"].get<std::string>();
      if (c.contains("train_data") && c["train_data"].is_object() && c["train_data"].contains("name"))
        info.dataset = c["train_data"]["name"].get<std::string>();
      if (c.contains("num_classes") && c["num_classes"].is_number_integer() && c["num_classes"].get<int>() > 0)
        info.num_classes = c["num_classes"].get<int>();
    }
  }
  return info;
}

void check_given_model(const ModelChoice& given) {
  RDD_CHECK(given.name.empty() || models::is_model_name(given.name), "--model: unknown model '", given.name,
            "' (known: ", models::known_model_names(), ")");
  if (given.width != 0) check_model_width(given.width, "--width");
}

ModelChoice model_from_weights(const ModelChoice& given, const WeightsInfo& info, const std::string& path) {
  ModelChoice m = given;
  if (m.name.empty()) {
    RDD_CHECK(!info.model.empty(), "--weights ", path, " does not record its model: give --model (",
              models::known_model_names(), ")");
    m.name = info.model;
  } else {
    RDD_CHECK(models::is_model_name(m.name), "--model: unknown model '", m.name, "' (known: ",
              models::known_model_names(), ")");
    RDD_CHECK(info.model.empty() || info.model == m.name, "--weights ", path, " holds a '", info.model,
              "' model, not --model '", m.name, "' (drop --model to use the file's)");
  }
  if (m.width <= 0) {
    m.width = info.width > 0 ? info.width : 1.0;
  } else {
    RDD_CHECK(info.width <= 0 || std::fabs(info.width - m.width) < 1e-9, "--weights ", path, " has width ",
              std::to_string(info.width), ", but --width is ", m.width, " (drop --width to use the file's)");
  }
  return m;
}

std::string setting_from_weights(const std::string& given, const std::string& recorded, const std::string& fallback,
                                 const std::string& flag, const std::string& path) {
  if (given.empty()) return recorded.empty() ? fallback : recorded;
  RDD_CHECK(recorded.empty() || recorded == given, flag, " ", given, " disagrees with --weights ", path,
            ", trained with ", flag, " ", recorded, " (drop ", flag, " to use the file's)");
  return given;
}

WeightsInfo resolve_model_from_weights(ModelChoice& model, std::string& preset, const std::string& weights_path) {
  check_given_model(model);  // a flag's own mistake first, before the file is read
  const WeightsInfo recorded = read_weights_info(weights_path);
  model = model_from_weights(model, recorded, weights_path);
  preset = setting_from_weights(preset, recorded.preset, "cirkd", "--preset", weights_path);
  check_model_choice(model, "--model", "--width");
  return recorded;
}

void load_model_weights(models::SegModel& model, const std::string& path, const std::string& flag,
                        const std::string& model_flag, const std::string& width_flag) {
  SafetensorsFile f = read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string* {
    auto it = f.metadata.find(key);
    return it == f.metadata.end() ? nullptr : &it->second;
  };
  if (const std::string* kind = meta("kind")) {
    RDD_CHECK(*kind != "backbone", flag, " ", path,
              " holds an ImageNet backbone, not a trained segmentation model (use it with `rdd train --init`)");
    if (*kind == "checkpoint") {
      std::map<std::string, Tensor> weights;
      for (auto& [name, t] : f.tensors)
        if (name.rfind("model.", 0) == 0) weights[name.substr(6)] = t;
      f.tensors = std::move(weights);
      if (const std::string* config = meta("config")) {
        const nlohmann::json c = nlohmann::json::parse(*config, nullptr, /*allow_exceptions=*/false);
        if (c.is_object() && c.contains("width") && c["width"].is_number())
          f.metadata["width"] = std::to_string(c["width"].get<double>());
      }
    }
  }
  if (const std::string* m = meta("model"))
    RDD_CHECK(*m == model.name(), flag, " ", path, " holds a '", *m, "' model, not ", model_flag, " '", model.name(), "'");
  if (const std::string* w = meta("width"))
    RDD_CHECK(std::fabs(std::stod(*w) - model.options().width) < 1e-9, flag, " ", path, " has width ", *w, ", but ",
              width_flag, " is ", model.options().width);
  if (const std::string* c = meta("num_classes"))
    RDD_CHECK(std::stoi(*c) == model.options().num_classes, flag, " ", path, " predicts ", *c,
              " classes, the dataset has ", model.options().num_classes, " (--dataset)");
  models::load_weights(model.params(), f.tensors, /*strict=*/true, path);
}

}  // namespace rdd::train
