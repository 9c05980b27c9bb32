// `rdd eval`: mIoU, pixel accuracy and per-class IoU of a model's weights on a dataset split.
#include <cstdio>
#include <fstream>

#include "apps/commands.h"
#include "apps/data_options.h"
#include "apps/evaluate.h"
#include "apps/flags.h"
#include "apps/model_weights.h"
#include "apps/trainer.h"
#include "engine/cudnn_graph.h"
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
  bool tf32 = false;
  int workers = 2;
  std::string json;
  std::vector<double> scales{1.0};
  bool flip = false;
  bool slide = false;
  std::string window = "512x1024", stride = "341x683";
};

void parse_hw_flag(const std::string& s, int& h, int& w, const char* flag) {
  const size_t x = s.find('x');
  try {
    RDD_CHECK(x != std::string::npos, "");
    h = std::stoi(s.substr(0, x));
    w = std::stoi(s.substr(x + 1));
  } catch (const std::exception&) {
    fail(flag, " must be HxW (e.g. 512x1024), got '", s, "'");
  }
  RDD_CHECK(h > 0 && w > 0, flag, " must be positive, got '", s, "'");
}

// Whole command; with a session (a launched worker of `--gpus N`), rank r evaluates images r, r + N, ...
// on its GPU, the confusion matrices are summed over NCCL, and rank 0 prints and writes the results.
int run_eval(const EvalArgs& a, dist::WorkerSession* session = nullptr) {
  const Device device = session ? session->device : resolve_device(a.device);
  cudnn::set_allow_tf32(a.tf32);
  dist::Communicator* comm = session ? session->comm.get() : nullptr;
  const bool writer = !comm || comm->rank() == 0;
  auto ds = std::make_shared<data::Dataset>(open_dataset(a.data));
  auto model = models::build_model(a.model, {ds->num_classes, a.width});
  model->params().materialize(device, /*with_grads=*/false);
  load_model_weights(*model, a.weights);
  EvalOptions eo;
  eo.scales = a.scales;
  eo.flip = a.flip;
  eo.slide = a.slide;
  parse_hw_flag(a.window, eo.window_h, eo.window_w, "--window");
  parse_hw_flag(a.stride, eo.stride_h, eo.stride_w, "--stride");
  const EvalResult r = evaluate(*model, ds, a.preset, device, a.workers, /*show_progress=*/writer, comm, eo);
  if (session) session->rendezvous->barrier();  // every rank done before any tears NCCL down
  if (!writer) return 0;
  std::string how = eo.single_pass() ? "whole image, single scale" : "";
  if (!eo.single_pass()) {
    how = eo.slide ? "sliding window " + a.window + " stride " + a.stride : "whole image";
    how += ", scales";
    for (double s : eo.scales) how += " " + std::to_string(s).substr(0, 4);
    if (eo.flip) how += ", + horizontal flip";
  }
  std::printf("%s %s split, %s (%s)\n", ds->name.c_str(), ds->split.c_str(), a.model.c_str(), how.c_str());
  std::printf("%s", format_eval_table(r, ds->class_names).c_str());
  if (!a.json.empty()) {
    nlohmann::json j = eval_json(r, ds->class_names);
    j["model"] = a.model;
    j["weights"] = a.weights;
    j["dataset"] = ds->name;
    j["split"] = ds->split;
    j["protocol"] = how;
    std::ofstream out(a.json);
    out << j.dump(2) << "\n";
    RDD_CHECK(out.good(), "--json ", a.json, ": cannot write the file");
  }
  return 0;
}
}  // namespace

Command add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a model: mIoU, pixel accuracy, per-class IoU (by default whole "
                                             "image, single scale: the reference protocol; --scales/--flip/--slide)");
  sub->add_option("--model", a->model, "Model name")->capture_default_str();
  sub->add_option("--width", a->width, "Channel width multiplier")->capture_default_str();
  sub->add_option("--weights", a->weights, "Weights (safetensors)")->required();
  add_data_options(sub, a->data, /*required=*/true, "val");
  sub->add_option("--preset", a->preset, "Input normalisation of the training preset: cirkd or mmseg")->capture_default_str();
  sub->add_option("--device", a->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  add_tf32_flag(sub, a->tf32);
  sub->add_option("--workers", a->workers, "Loader threads")->capture_default_str();
  sub->add_option("--json", a->json, "Also write the results as JSON to this file");
  sub->add_option("--scales", a->scales, "Multi-scale: image scales whose softmax is averaged (e.g. 0.75,1,1.25)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_flag("--flip", a->flip, "Also average the horizontally flipped image's prediction");
  sub->add_flag("--slide", a->slide, "Sliding-window inference (see --window, --stride)");
  sub->add_option("--window", a->window, "Sliding window HxW")->capture_default_str();
  sub->add_option("--stride", a->stride, "Sliding stride HxW")->capture_default_str();
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
