// `rdd eval`: mIoU, pixel accuracy and per-class IoU of a model's weights on a dataset split.
#include <cstdio>
#include <fstream>

#include "apps/commands.h"
#include "apps/flags.h"
#include "engine/cudnn_graph.h"
#include "train/evaluate.h"
#include "train/model_weights.h"
#include "train/resolve_device.h"

namespace rdd::apps {

namespace {
struct EvalArgs {
  train::ModelChoice model;
  std::string weights;
  data::DatasetSpec data;
  std::string preset;  // "": the one --weights records, else cirkd
  std::string device = "auto";
  bool tf32 = false;
  int workers = 2;
  std::string json;
  train::EvalOptions eval;  // --scales, --flip, --slide, --window, --stride
};

// Whole command; with a session (a launched worker of `--gpus N`), rank r evaluates images r, r + N, ...
// on its GPU, the confusion matrices are summed over NCCL, and rank 0 prints and writes the results.
int run_eval(EvalArgs a, dist::WorkerSession* session = nullptr) {
  // Model, width and preset from the weights' metadata; flags, when given, must agree.
  train::resolve_model_from_weights(a.model, a.preset, a.weights);
  if (!a.json.empty()) check_output_file(a.json, "--json");  // before the evaluation, not after it
  const Device device = session ? session->device : train::resolve_device(a.device);
  cudnn::set_allow_tf32(a.tf32);
  dist::Communicator* comm = session ? session->comm.get() : nullptr;
  const bool writer = !comm || comm->rank() == 0;
  auto ds = std::make_shared<data::Dataset>(data::open_dataset(a.data));
  auto model = models::build_model(a.model.name, {ds->num_classes, a.model.width});
  model->params().materialize(device, /*with_grads=*/false);
  train::load_model_weights(*model, a.weights);
  const train::EvalOptions& eo = a.eval;
  const train::EvalResult r = train::evaluate(*model, ds, a.preset, device, a.workers, /*show_progress=*/writer, comm, eo);
  if (session) session->rendezvous->barrier();  // every rank done before any tears NCCL down
  if (!writer) return 0;
  std::string how = eo.single_pass() ? "whole image, single scale" : "";
  if (!eo.single_pass()) {
    auto hw = [](int h, int w) { return std::to_string(h) + "x" + std::to_string(w); };
    how = eo.slide ? "sliding window " + hw(eo.window_h, eo.window_w) + " stride " + hw(eo.stride_h, eo.stride_w)
                   : "whole image";
    how += ", scales";
    for (double s : eo.scales) how += " " + std::to_string(s).substr(0, 4);
    if (eo.flip) how += ", + horizontal flip";
  }
  std::printf("%s %s split, %s (%s)\n", ds->name.c_str(), ds->split.c_str(), a.model.name.c_str(), how.c_str());
  std::printf("%s", train::format_eval_table(r, ds->class_names).c_str());
  if (!a.json.empty()) {
    nlohmann::json j = train::eval_json(r, ds->class_names);
    j["model"] = a.model.name;
    j["weights"] = a.weights;
    j["dataset"] = ds->name;
    j["split"] = ds->split;
    j["protocol"] = how;
    std::ofstream out(a.json);
    out << j.dump(2) << "\n";
    out.flush();
    RDD_CHECK(out.good(), "--json ", a.json, ": cannot write the file");
  }
  return 0;
}
}  // namespace

Command add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a model: mIoU, pixel accuracy, per-class IoU (by default whole "
                                             "image, single scale: the reference protocol; --scales/--flip/--slide)");
  add_model_flags_from_weights(sub, a->model);
  add_weights_flag(sub, a->weights);
  add_dataset_flags(sub, a->data, /*required=*/true, "val");
  add_preset_flag(sub, a->preset)
      ->description("Input normalisation: cirkd or mmseg (default: the one --weights records, else cirkd)");
  add_device_flag(sub, a->device);
  add_tf32_flag(sub, a->tf32);
  add_workers_flag(sub, a->workers);
  sub->add_option("--json", a->json, "Also write the results as JSON to this file");
  train::EvalOptions& eo = a->eval;
  sub->add_option("--scales", eo.scales, "Multi-scale: image scales whose softmax is averaged (e.g. 0.75,1,1.25)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_flag("--flip", eo.flip, "Also average the horizontally flipped image's prediction");
  sub->add_flag("--slide", eo.slide, "Sliding-window inference (see --window, --stride)");
  add_hw_option(sub, "--window", eo.window_h, eo.window_w, "Sliding window HxW");
  add_hw_option(sub, "--stride", eo.stride_h, eo.stride_w, "Sliding stride HxW");
  auto launch = std::make_shared<dist::LaunchOptions>();
  add_launch_flags(*sub, *launch);
  return {sub, [a, launch] {
            if (const std::optional<dist::WorkerEnv> w = dist::worker_env()) {
              dist::WorkerSession session = dist::join_worker_session(*w, *launch, "evaluation");
              return run_eval(*a, &session);
            }
            if (launch->distributed()) {
              check_no_device_with_gpus(a->device);
              return dist::launch_local_workers(launch->spec);
            }
            return run_eval(*a);
          }};
}

}  // namespace rdd::apps
