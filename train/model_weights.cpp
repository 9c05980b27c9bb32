#include "train/model_weights.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/safetensors.h"
#include "models/weights_io.h"

namespace rdd::train {

void save_model_weights(const models::SegModel& m, const std::string& path) {
  models::save_weights(m.params(), path,
                       {{"kind", "weights"},
                        {"model", m.name()},
                        {"num_classes", std::to_string(m.options().num_classes)},
                        {"width", std::to_string(m.options().width)}});
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
