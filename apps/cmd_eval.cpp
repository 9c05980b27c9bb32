// `rdd eval`: mIoU, pixel accuracy and per-class IoU of a model's weights on a dataset split.
#include <cstdio>
#include <fstream>

#include "apps/commands.h"
#include "apps/data_options.h"
#include "apps/evaluate.h"
#include "apps/trainer.h"
#include "engine/safetensors.h"
#include "models/weights_io.h"

namespace rdd::apps {

namespace {
struct EvalArgs {
  std::string model = "deeplabv3_resnet18";
  double width = 1.0;
  std::string weights;
  DataOptions data;
  std::string preset = "cirkd";
  std::string device = "auto";
  int workers = 2;
  std::string json;
};

int run_eval(const EvalArgs& a) {
  const Device device = resolve_device(a.device);
  auto ds = std::make_shared<data::Dataset>(open_dataset(a.data));
  auto model = models::build_model(a.model, {ds->num_classes, a.width});
  model->params().materialize(device);
  SafetensorsFile f = read_safetensors(a.weights);
  auto it = f.metadata.find("model");
  if (it != f.metadata.end())
    RDD_CHECK(it->second == a.model, "--weights ", a.weights, " holds a '", it->second, "' model, not --model '",
              a.model, "'");
  models::load_weights(model->params(), f.tensors, /*strict=*/true, a.weights);
  const EvalResult r = evaluate(*model, ds, a.preset, device, a.workers, true);
  std::printf("%s %s split, %s\n", ds->name.c_str(), ds->split.c_str(), a.model.c_str());
  std::printf("%s", format_eval_table(r, ds->class_names).c_str());
  if (!a.json.empty()) {
    nlohmann::json j = eval_json(r, ds->class_names);
    j["model"] = a.model;
    j["weights"] = a.weights;
    j["dataset"] = ds->name;
    j["split"] = ds->split;
    std::ofstream out(a.json);
    out << j.dump(2) << "\n";
    RDD_CHECK(out.good(), "--json ", a.json, ": cannot write the file");
  }
  return 0;
}
}  // namespace

Command add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a model: mIoU, pixel accuracy, per-class IoU (whole image, "
                                             "single scale, the reference protocol)");
  sub->add_option("--model", a->model, "Model name")->capture_default_str();
  sub->add_option("--width", a->width, "Channel width multiplier")->capture_default_str();
  sub->add_option("--weights", a->weights, "Weights (safetensors)")->required();
  add_data_options(sub, a->data, /*required=*/true, "val");
  sub->add_option("--preset", a->preset, "Input normalisation of the training preset: cirkd or mmseg")->capture_default_str();
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  sub->add_option("--workers", a->workers, "Loader threads")->capture_default_str();
  sub->add_option("--json", a->json, "Also write the results as JSON to this file");
  return {sub, [a] { return run_eval(*a); }};
}

}  // namespace rdd::apps
