#include "deploy/deployment_metadata.h"

#include <cstdio>
#include <stdexcept>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace rdd::deploy {

namespace {
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
std::string json_floats(const float (&v)[3]) {
  std::string s = "[";
  for (int c = 0; c < 3; ++c) {
    if (c) s += ", ";
    s += number(v[c]);
  }
  return s + "]";
}
std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) {
    if (!s.empty()) s += '\n';
    s += l;
  }
  return s;
}
}  // namespace

std::vector<std::pair<std::string, std::string>> deployment_metadata(const DeploymentInfo& i,
                                                                      const std::vector<std::string>& pool_notes,
                                                                      const std::vector<std::string>& requirements) {
  const char* order = i.norm.bgr ? "BGR" : "RGB";
  std::string size = "dynamic";
  if (!i.dynamic()) {
    size = std::to_string(i.height);
    size += "x";
    size += std::to_string(i.width_px);
  }
  const std::string spatial = i.resize_to_input ? "H, W" : "H/8, W/8 (stride 8)";
  std::string outputs = "logits: float32 (batch, " + std::to_string(i.num_classes) + ", " + spatial +
                        "), class scores before softmax";
  if (i.argmax) outputs += "; labels: int64 (batch, " + spatial + "), the class index of the largest logit";
  return {
      {"model", i.model},
      {"width", number(i.width)},
      {"num_classes", std::to_string(i.num_classes)},
      {"dataset", i.dataset},
      {"class_names", nlohmann::json(i.class_names).dump()},
      {"palette", nlohmann::json(i.palette).dump()},
      {"input", "image: float32 (batch, 3, H, W), NCHW, normalised (see normalization)"},
      {"input_size", size},
      {"channel_order", order},
      {"mean", json_floats(i.norm.mean)},
      {"std", json_floats(i.norm.stdev)},
      {"normalization", std::string("image[c] = (pixel[c] - mean[c]) / std[c] for 8-bit pixels 0..255, channels in ") +
                            order + " order, planar (NCHW)"},
      {"preset", i.preset},
      {"outputs", outputs},
      {"logits_stride", i.resize_to_input ? "1" : "8"},
      {"fold_bn", i.fold_bn ? "true" : "false"},
      {"argmax", i.argmax ? "true" : "false"},
      {"resize_to_input", i.resize_to_input ? "true" : "false"},
      {"opset", std::to_string(i.opset)},
      {"adaptive_pools", joined(pool_notes)},
      {"requires", joined(requirements)},
      {"weights", i.weights},
      {"producer", std::string("rdd ") + RDD_VERSION},
  };
}

DeploymentInfo parse_deployment_metadata(const std::map<std::string, std::string>& props, const std::string& what) {
  auto get = [&](const char* key) -> const std::string& {
    auto it = props.find(key);
    RDD_CHECK(it != props.end(), what, ": no '", key,
              "' in the model's metadata_props (was it written by `rdd export`?)");
    return it->second;
  };
  auto flag = [&](const char* key) {
    const std::string& v = get(key);
    RDD_CHECK(v == "true" || v == "false", what, ": metadata '", key, "' is '", v, "', not true or false");
    return v == "true";
  };
  auto floats3 = [&](const char* key, float (&out)[3]) {
    const nlohmann::json j = nlohmann::json::parse(get(key), nullptr, /*allow_exceptions=*/false);
    RDD_CHECK(j.is_array() && j.size() == 3 && j[0].is_number() && j[1].is_number() && j[2].is_number(), what,
              ": metadata '", key, "' is '", get(key), "', not an array of 3 numbers");
    for (int c = 0; c < 3; ++c) out[c] = j[size_t(c)].get<float>();
  };
  DeploymentInfo i;
  try {
    i.model = get("model");
    i.width = std::stod(get("width"));
    i.num_classes = std::stoi(get("num_classes"));
    i.opset = std::stoi(get("opset"));
  } catch (const std::logic_error&) {  // stod / stoi: invalid_argument, out_of_range
    fail(what, ": metadata 'width', 'num_classes' or 'opset' is not a number");
  }
  i.dataset = get("dataset");
  const nlohmann::json names = nlohmann::json::parse(get("class_names"), nullptr, false);
  RDD_CHECK(names.is_array() && int(names.size()) == i.num_classes, what,
            ": metadata 'class_names' is not an array of ", i.num_classes, " names");
  for (const auto& n : names) i.class_names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  auto palette = props.find("palette");
  if (palette != props.end()) {
    const nlohmann::json p = nlohmann::json::parse(palette->second, nullptr, false);
    RDD_CHECK(p.is_array(), what, ": metadata 'palette' is not an array of [r, g, b]");
    for (const auto& c : p) {
      auto channel = [&](size_t k) {
        RDD_CHECK(c.is_array() && c.size() == 3 && c[k].is_number_integer() && c[k].get<int>() >= 0 &&
                      c[k].get<int>() <= 255,
                  what, ": metadata 'palette' holds ", c.dump(), ", not [r, g, b] in 0..255");
        return uint8_t(c[k].get<int>());
      };
      i.palette.push_back({channel(0), channel(1), channel(2)});
    }
  }
  i.preset = get("preset");
  const std::string& order = get("channel_order");
  RDD_CHECK(order == "BGR" || order == "RGB", what, ": metadata 'channel_order' is '", order, "' (BGR or RGB)");
  i.norm.bgr = order == "BGR";
  floats3("mean", i.norm.mean);
  floats3("std", i.norm.stdev);
  const std::string& size = get("input_size");
  if (size != "dynamic") {
    int h = 0, w = 0;
    char tail = 0;
    RDD_CHECK(std::sscanf(size.c_str(), "%dx%d%c", &h, &w, &tail) == 2 && h > 0 && w > 0, what,
              ": metadata 'input_size' is '", size, "' (HxW or dynamic)");
    i.height = h;
    i.width_px = w;
  }
  i.fold_bn = flag("fold_bn");
  i.argmax = flag("argmax");
  i.resize_to_input = flag("resize_to_input");
  auto w = props.find("weights");
  if (w != props.end()) i.weights = w->second;
  return i;
}

}  // namespace rdd::deploy
