#include "apps/onnx_check.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/synth.h"
#include "deploy/deployment_metadata.h"
#include "deploy/graph_executor.h"
#include "deploy/onnx_file.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "layers/resize.h"
#include "models/seg_model.h"
#include "rdd/segmentation_metrics.h"
#include "train/model_weights.h"
#include "train/resolve_device.h"

namespace rdd::apps {

namespace {

namespace fs = std::filesystem;

// One input batch and what rdd computes for it.
struct CheckCase {
  std::string name;
  Tensor image;        // (N, 3, H, W) f32, CPU
  RddCaseOutputs rdd;  // logits (N, classes, h, w) f32, labels (N, h, w) i32 or undefined; CPU
};

std::string size_str(int h, int w) { return std::to_string(h) + "x" + std::to_string(w); }

// A synthetic scene as model input: the eval transform with the metadata's normalisation (`rdd predict`'s).
Tensor scene_image(uint64_t seed, int index, int h, int w, const data::Normalization& norm) {
  data::Sample s;
  s.image = data::synth_scene(seed, uint64_t(index), h, w).image;
  s.label = {h, w, 1, std::vector<uint8_t>(size_t(h) * size_t(w), data::kIgnoreU8)};
  Tensor x = Tensor::empty({1, 3, h, w});  // (1, 3, H, W) f32, normalised
  Tensor unused = Tensor::empty({1, h, w}, DType::i32);
  data::transform_eval(s, norm, x.data<float>(), unused.data<int32_t>());
  return x;
}

// What the export computes, on rdd: `main` logits (N, classes, H/8, W/8) upsampled to the image with
// align_corners when it did; the argmax when it did. On main's device.
void finish_like_export(const deploy::DeploymentInfo& info, const Tensor& image, Tensor main, Tensor& logits,
                        Tensor& labels) {
  if (info.resize_to_input) main = layers::bilinear_resize_forward(main, int(image.size(2)), int(image.size(3)), true);
  labels = info.argmax ? argmax_channels(main) : Tensor();  // (N, h, w) i32
  logits = main;
}

Tensor on_cpu(const Tensor& t) { return !t.defined() || t.device().is_cpu() ? t : t.to(Device::cpu()); }

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// Runs `cmd` through the shell; returns its exit status and its stdout+stderr.
int run_captured(const std::string& cmd, std::string& output) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  RDD_CHECK(pipe, "export --check: cannot start `", cmd, "`");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string shape_desc(const Tensor& t) {
  std::string s;
  for (int64_t d : t.shape()) {
    if (!s.empty()) s += 'x';
    s += std::to_string(d);
  }
  return s;
}

// max |a − b| and max |b| over f32 tensors of one shape; NaN in a makes max_abs NaN.
std::pair<double, double> abs_and_scale(const Tensor& ort, const Tensor& ref) {
  double max_abs = 0, scale = 0;
  const float* a = ort.data<float>();
  const float* b = ref.data<float>();
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (std::isnan(d)) return {NAN, scale};
    max_abs = std::max(max_abs, d);
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return {max_abs, scale};
}

double agreement(const Tensor& ort_labels, const Tensor& rdd_labels) {
  const int32_t* b = rdd_labels.data<int32_t>();
  int64_t same = 0;
  for (int64_t i = 0; i < rdd_labels.numel(); ++i) {
    const int64_t a = ort_labels.dtype() == DType::i64 ? ort_labels.data<int64_t>()[i] : ort_labels.data<int32_t>()[i];
    same += a == b[i];
  }
  return rdd_labels.numel() ? double(same) / double(rdd_labels.numel()) : 1.0;
}

}  // namespace

// The outputs from SegModel::forward (the reference: not the recorded graph the export used); the time from
// the exported graph's own forward on rdd's kernels (main head only, BN folded as exported).
RddCaseOutputs run_rdd_case(models::SegModel& model, const deploy::GraphExecutor& graph,
                            const deploy::DeploymentInfo& info, const Tensor& image, int repeat) {
  RDD_CHECK(image.device().is_cpu(), "export --check: the case's image must be on the CPU, got ", image.desc());
  RDD_CHECK(repeat >= 1, "export --check: --repeat must be ≥ 1");
  const Device device = model.params().device();
  const Tensor x = device.is_cpu() ? image : image.to(device);  // (N, 3, H, W) f32 on the model's device
  RddCaseOutputs r;
  Tensor logits, labels;
  finish_like_export(info, x, model.forward(x).main, logits, labels);
  r.logits = on_cpu(logits);
  r.labels = on_cpu(labels);
  std::vector<double> ms;
  for (int k = 0; k <= repeat; ++k) {
    synchronize(device);
    const auto t0 = std::chrono::steady_clock::now();
    finish_like_export(info, x, graph.run(x), logits, labels);
    synchronize(device);
    if (k > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  r.ms = ms[ms.size() / 2];
  return r;
}

OnnxCheckReport run_onnx_check(const OnnxCheckOptions& o, std::FILE* out) {
  RDD_CHECK(o.rtol > 0 && o.min_agreement >= 0 && o.min_agreement <= 1 && o.repeat >= 1 && o.scenes >= 0,
            "export --check: --rtol must be > 0, --min-agreement in [0, 1], --repeat ≥ 1, --scenes ≥ 0");
  const deploy::OnnxFileInfo file = deploy::read_onnx_file(o.onnx_path);
  const deploy::DeploymentInfo info = deploy::parse_deployment_metadata(file.metadata, o.onnx_path);
  RDD_CHECK(models::is_model_name(info.model), o.onnx_path, ": its metadata names the model '", info.model,
            "', which this rdd does not know");
  const Device device = train::resolve_device(o.device);
  auto model = models::build_model(info.model, {info.num_classes, info.width});
  model->params().materialize(device, /*with_grads=*/false);
  train::load_model_weights(*model, o.weights, "--weights", o.onnx_path + " (metadata 'model')",
                            o.onnx_path + " (metadata 'width')");
  model->set_mode(layers::Mode::eval);

  std::vector<std::pair<int, int>> sizes = o.sizes;
  if (!info.dynamic()) {
    RDD_CHECK(sizes.empty() || (sizes.size() == 1 && sizes[0].first == info.height && sizes[0].second == info.width_px),
              "export --check: ", o.onnx_path, " takes only ", size_str(int(info.height), int(info.width_px)),
              " inputs (it was exported with --input); --sizes is for a --dynamic export");
    sizes = {{int(info.height), int(info.width_px)}};
  } else if (sizes.empty()) {
    sizes = {{64, 96}, {90, 120}};
  }
  std::fprintf(out, "check: %s (%s width %g, %d classes, input %s, BN %s, opset %d) against %s, rdd on %s\n",
               o.onnx_path.c_str(), info.model.c_str(), info.width, info.num_classes,
               info.dynamic() ? "dynamic" : size_str(int(info.height), int(info.width_px)).c_str(),
               info.fold_bn ? "folded" : "kept", info.opset, o.weights.c_str(), device_label(device).c_str());

  // The cases, and rdd's outputs for them.
  std::vector<CheckCase> cases;
  for (const auto& [h, w] : sizes) {
    RDD_CHECK(h >= 1 && w >= 1, "export --check: size ", h, "x", w, " must be positive");
    CheckCase r;
    r.name = "random-" + size_str(h, w);
    r.image = Tensor::empty({2, 3, h, w});
    fill_normal(r.image, 0.0, 1.0, o.seed, uint64_t(h) * 100003 + uint64_t(w));
    cases.push_back(std::move(r));
    if (h < 16 || w < 16) continue;  // the scene generator draws 16x16 and up
    for (int k = 0; k < o.scenes; ++k) {
      CheckCase s;
      s.name = "scene" + std::to_string(k) + "-" + size_str(h, w);
      s.image = scene_image(o.seed, k, h, w, info.norm);
      cases.push_back(std::move(s));
    }
  }
  const deploy::GraphExecutor graph(*model, info.fold_bn);
  for (CheckCase& c : cases) c.rdd = run_rdd_case(*model, graph, info, c.image, o.repeat);

  // ONNX Runtime, through scripts/onnx_run.py.
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / ("rdd-onnx-check-" + std::to_string(::getpid()));
  fs::create_directories(dir, ec);
  RDD_CHECK(!ec, "export --check: cannot create the scratch folder ", dir.string(), " (", ec.message(), ")");
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{dir};
  std::map<std::string, Tensor> inputs;
  for (const CheckCase& c : cases) inputs[c.name + ".image"] = c.image;
  const std::string cases_path = (dir / "cases.safetensors").string();
  const std::string results_path = (dir / "results.safetensors").string();
  write_safetensors(cases_path, inputs);
  const std::string script = o.script.empty() ? std::string(RDD_SOURCE_DIR) + "/scripts/onnx_run.py" : o.script;
  RDD_CHECK(fs::exists(script), "export --check: the ONNX Runtime runner ", script, " is missing (--script names it)");
  const std::string cmd = shell_quote(o.python) + " " + shell_quote(script) + " " + shell_quote(o.onnx_path) + " " +
                          shell_quote(cases_path) + " " + shell_quote(results_path) + " --repeat " +
                          std::to_string(o.repeat);
  std::string log;
  const int rc = run_captured(cmd, log);
  RDD_CHECK(rc != 3, "export --check: ONNX Runtime is not installed for ", o.python,
            ": run scripts/setup.sh, or `", o.python, " -m pip install --break-system-packages onnxruntime` (", log,
            ")");
  RDD_CHECK(rc == 0, "export --check: ONNX Runtime could not run ", o.onnx_path, " (", o.python, " ", script,
            " exited with ", rc, "):\n", log);
  const SafetensorsFile results = read_safetensors(results_path);

  OnnxCheckReport report;
  auto meta = [&](const std::string& key) {
    auto it = results.metadata.find(key);
    return it == results.metadata.end() ? std::string() : it->second;
  };
  report.onnxruntime_version = meta("onnxruntime");
  RDD_CHECK(meta("meta.model") == info.model, "export --check: ONNX Runtime reads the metadata 'model' of ",
            o.onnx_path, " as '", meta("meta.model"), "', not '", info.model, "'");
  report.passed = true;
  std::fprintf(out, "  %-22s %-7s %-16s %11s %11s %10s %9s %9s\n", "case", "output", "shape", "max |diff|",
               "rel", "labels", "rdd ms", "ORT ms");
  for (const CheckCase& c : cases) {
    const double ort_ms = std::atof(meta(c.name + ".ort_ms").c_str());
    for (const char* output : {"logits", "labels"}) {
      const bool labels = std::string(output) == "labels";
      if (labels && !c.rdd.labels.defined()) continue;
      const std::string key = c.name + "." + output;
      auto it = results.tensors.find(key);
      RDD_CHECK(it != results.tensors.end(), "export --check: ONNX Runtime gave no '", output, "' output for ",
                c.name, " (does ", o.onnx_path, " match its metadata?)");
      const Tensor& ort = it->second;
      const Tensor& ref = labels ? c.rdd.labels : c.rdd.logits;
      RDD_CHECK(ort.shape() == ref.shape(), "export --check: ", key, ": ONNX Runtime's shape ", shape_str(ort.shape()),
                " but rdd's ", shape_str(ref.shape()));
      OnnxCheckRow row;
      row.case_name = c.name;
      row.output = output;
      row.shape = shape_desc(ref);
      row.rdd_ms = c.rdd.ms;
      row.ort_ms = ort_ms;
      if (labels) {
        row.agreement = agreement(ort, ref);
        report.worst_agreement = std::min(report.worst_agreement, row.agreement);
        report.passed = report.passed && row.agreement >= o.min_agreement;
        std::fprintf(out, "  %-22s %-7s %-16s %11s %11s %9.4f%% %9.2f %9.2f\n", c.name.c_str(), output,
                     row.shape.c_str(), "", "", 100 * row.agreement, row.rdd_ms, row.ort_ms);
      } else {
        RDD_CHECK(ort.dtype() == DType::f32, "export --check: ", key, " is ", ort.desc(), ", not float32");
        const auto [max_abs, scale] = abs_and_scale(ort, ref);
        row.max_abs = max_abs;
        row.rel = scale > 0 ? max_abs / scale : max_abs;
        if (std::isnan(row.rel)) report.worst_rel = NAN;
        else if (!std::isnan(report.worst_rel)) report.worst_rel = std::max(report.worst_rel, row.rel);
        report.passed = report.passed && row.rel <= o.rtol;  // NaN fails
        std::fprintf(out, "  %-22s %-7s %-16s %11.3e %11.3e %10s %9.2f %9.2f\n", c.name.c_str(), output,
                     row.shape.c_str(), row.max_abs, row.rel, "", row.rdd_ms, row.ort_ms);
      }
      report.rows.push_back(row);
    }
  }
  std::fprintf(out,
               "ONNX Runtime %s (%s); times: the exported graph on rdd's kernels on %s and in ONNX Runtime, median of "
               "%d run%s after a warm-up\n",
               report.onnxruntime_version.c_str(), meta("providers").c_str(), device_label(device).c_str(), o.repeat,
               o.repeat == 1 ? "" : "s");
  char labels[96] = "";
  if (info.argmax)
    std::snprintf(labels, sizeof labels, "; labels agree on %.4f%% of pixels, required %.4f%%",
                  100 * report.worst_agreement, 100 * o.min_agreement);
  std::fprintf(out, "check: %s (max rel %.3e, tolerance %g%s)\n", report.passed ? "passed" : "FAILED", report.worst_rel,
               o.rtol, labels);
  return report;
}

}  // namespace rdd::apps
