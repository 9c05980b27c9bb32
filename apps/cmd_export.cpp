// `rdd export`: the trained student as an ONNX model every inference engine reads (deploy/onnx_export.h),
// and `rdd export --check`: that model run in ONNX Runtime against rdd on the same inputs (apps/onnx_check.h).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "apps/commands.h"
#include "apps/flags.h"
#include "apps/onnx_check.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "deploy/onnx_export.h"
#include "deploy/onnx_file.h"
#include "models/seg_model.h"
#include "train/model_weights.h"
#include "train/run_options.h"

namespace rdd::apps {

namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  train::ModelChoice model{.name = {}};  // required to export; with --check, when given, must be the file's
  std::string weights;
  std::string out;
  int height = 0, width_px = 0;  // --input HxW; 0: not given
  bool dynamic = false;
  int opset = 17;
  bool fold_bn = true;
  bool argmax = false;
  bool resize_to_input = false;
  std::string dataset;  // "": the one --weights records, else cityscapes
  int num_classes = 0;
  std::string preset;   // "": the one --weights records, else cirkd
  std::string check;  // --check MODEL.onnx
  std::string sizes;  // --check: HxW,HxW (dynamic models)
  OnnxCheckOptions check_options;
};

// --sizes: HxW,HxW,... each read by the shared HxW parser (apps/flags.h).
std::vector<std::pair<int, int>> parse_sizes(const std::string& list) {
  std::vector<std::pair<int, int>> sizes;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto hw = parse_hw(item);
    RDD_CHECK(hw.has_value(), "--sizes: each size must be HxW with H and W positive (e.g. 64x96), got '", item,
              "' in '", list, "'");
    sizes.push_back(*hw);
  }
  return sizes;
}

// Refuses an --out that cannot be written before any work is done: a folder, a missing or non-folder parent,
// a parent we cannot create files in.
void check_writable(const std::string& out) {
  std::error_code ec;
  RDD_CHECK(!out.empty(), "--out: empty path");
  RDD_CHECK(!fs::is_directory(out, ec), "--out ", out, " is a folder; give the .onnx file's path");
  fs::path parent = fs::path(out).parent_path();
  if (parent.empty()) parent = ".";
  RDD_CHECK(fs::exists(parent, ec), "--out ", out, ": the folder ", parent.string(), " does not exist");
  RDD_CHECK(fs::is_directory(parent, ec), "--out ", out, ": ", parent.string(), " is not a folder");
  RDD_CHECK(::access(parent.c_str(), W_OK) == 0, "--out ", out, ": the folder ", parent.string(), " is not writable");
}

// The bytes to `out` through a temporary file in the same folder, renamed into place.
void write_file_atomically(const std::string& out, const std::string& bytes) {
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    RDD_CHECK(f.good(), "--out ", out, ": cannot create ", tmp);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.flush();
    if (!f.good()) {
      f.close();
      std::remove(tmp.c_str());
      fail("--out ", out, ": cannot write ", bytes.size(), " bytes to ", tmp, " (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), out.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail("--out ", out, ": cannot rename ", tmp, " into place");
  }
}

int run_export(ExportArgs a) {
  // Model, width, classes and preset from the weights' metadata; flags, when given, must agree.
  const train::WeightsInfo recorded = train::resolve_model_from_weights(a.model, a.preset, a.weights);
  if (a.dataset.empty()) a.dataset = recorded.dataset.empty() ? "cityscapes" : recorded.dataset;
  if (a.dataset == "list" && a.num_classes == 0) a.num_classes = recorded.num_classes;
  RDD_CHECK(!a.out.empty(), "export: --out is required (the .onnx file to write)");
  const bool has_input = a.height > 0;
  RDD_CHECK(a.dynamic != has_input, "export: give --input HxW (a static input size) or --dynamic (any size), ",
            a.dynamic ? "not both" : "one of them");
  RDD_CHECK(a.dataset != "list" || a.num_classes > 0, "--dataset list needs --num-classes");
  deploy::OnnxExportOptions o;
  if (!a.dynamic) {
    o.height = a.height;
    o.width = a.width_px;
  }
  o.opset = a.opset;
  o.fold_bn = a.fold_bn;
  o.argmax = a.argmax;
  o.resize_to_input = a.resize_to_input;
  const data::Normalization norm = data::augment_preset(a.preset, 8, 8).norm;  // throws naming a bad preset
  const data::Dataset meta = data::dataset_metadata(a.dataset, a.num_classes);
  check_writable(a.out);

  auto model = models::build_model(a.model.name, {meta.num_classes, a.model.width});
  model->params().materialize(Device::cpu(), /*with_grads=*/false);
  train::load_model_weights(*model, a.weights);
  model->set_mode(layers::Mode::eval);

  deploy::DeploymentInfo info;
  info.model = a.model.name;
  info.width = a.model.width;
  info.num_classes = meta.num_classes;
  info.dataset = meta.name;
  info.class_names = meta.class_names;
  info.palette = meta.palette;
  info.preset = a.preset;
  info.norm = norm;
  info.weights = fs::path(a.weights).filename().string();
  const deploy::OnnxExport e = deploy::export_onnx(*model, o, info);
  write_file_atomically(a.out, e.bytes);

  std::printf("export: %s (width %g, %d classes, %s) from %s → %s\n", a.model.name.c_str(), a.model.width,
              meta.num_classes,
              meta.name.c_str(), a.weights.c_str(), a.out.c_str());
  std::printf("  ONNX opset %d, %.2f MB, %lld weights; the ONNX checker and strict shape inference accept it\n",
              o.opset, double(e.bytes.size()) / 1e6, static_cast<long long>(e.parameters));
  std::printf("  input   %s: 8-bit %s pixels minus mean (%g, %g, %g), over std (%g, %g, %g)\n", e.input_desc.c_str(),
              norm.bgr ? "BGR" : "RGB", norm.mean[0], norm.mean[1], norm.mean[2], norm.stdev[0], norm.stdev[1],
              norm.stdev[2]);
  for (const std::string& d : e.output_descs) std::printf("  output  %s\n", d.c_str());
  if (o.fold_bn)
    std::printf("  BatchNorm: %d of %d folded into the convolutions\n", e.folded_batchnorms, e.batchnorms);
  else
    std::printf("  BatchNorm: %d kept as BatchNormalization nodes (--no-fold-bn)\n", e.batchnorms);
  std::string ops;
  for (const auto& [op, n] : e.op_counts) {
    if (!ops.empty()) ops += ", ";
    ops += op + " " + std::to_string(n);
  }
  std::printf("  nodes: %s\n", ops.c_str());
  for (const std::string& n : e.notes) std::printf("  %s\n", n.c_str());
  for (const std::string& r : e.requirements) std::printf("  requires: %s\n", r.c_str());
  std::printf("check it: rdd export --check %s --weights %s\n", a.out.c_str(), a.weights.c_str());
  return 0;
}

int run_check(ExportArgs a, const std::vector<std::string>& export_only_flags) {
  for (const std::string& f : export_only_flags)
    fail("export --check: ", f, " is for writing a model; --check reads the model, its size and its "
         "normalisation from ", a.check, "'s metadata");
  if (!a.model.name.empty()) {  // given: must be the model's
    const deploy::OnnxFileInfo f = deploy::read_onnx_file(a.check);
    auto it = f.metadata.find("model");
    RDD_CHECK(it != f.metadata.end() && it->second == a.model.name, "export --check: --model ", a.model.name, " but ",
              a.check, " holds '", it == f.metadata.end() ? std::string("(no model in its metadata)") : it->second,
              "'");
  }
  OnnxCheckOptions& o = a.check_options;
  o.onnx_path = a.check;
  o.weights = a.weights;
  if (!a.sizes.empty()) o.sizes = parse_sizes(a.sizes);
  return run_onnx_check(o).passed ? 0 : 1;
}

}  // namespace

Command add_export_command(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* sub = app.add_subcommand(
      "export",
      "Write a trained model as ONNX (eval mode, main head; BatchNorm folded) for ONNX Runtime, TensorRT, OpenVINO; "
      "with --check, run an exported model in ONNX Runtime against rdd");
  add_model_flags_from_weights(sub, a->model);
  CLI::Option* width = sub->get_option("--width");
  add_weights_flag(sub, a->weights);
  auto* out = sub->add_option("--out", a->out, "The .onnx file to write (written atomically)");
  auto* input = add_hw_option(sub, "--input", a->height, a->width_px,
                              "Static input size HxW, e.g. 512x1024 (the batch stays a named dimension)")
                    ->default_str("");
  auto* dynamic = sub->add_flag("--dynamic", a->dynamic, "Any input height and width (named dimensions)");
  auto* opset = sub->add_option("--opset", a->opset,
                                "ONNX opset, " + std::to_string(deploy::kMinOnnxOpset) + ".." +
                                    std::to_string(deploy::max_onnx_opset()))
                    ->capture_default_str();
  auto* fold = sub->add_flag("--fold-bn,!--no-fold-bn", a->fold_bn,
                             "Fold every BatchNorm into the convolution before it (default); --no-fold-bn keeps "
                             "BatchNormalization nodes");
  auto* argmax = sub->add_flag("--argmax", a->argmax, "Also output 'labels': int64 (batch, H', W') class indices");
  auto* resize = sub->add_flag("--resize-to-input", a->resize_to_input,
                               "Upsample the logits to the input size (bilinear, align_corners: rdd predict's "
                               "protocol) inside the graph");
  auto* dataset = add_dataset_kind_flag(sub, a->dataset,
                                        "Class names and palette for the metadata: cityscapes, camvid, voc, ade20k "
                                        "or list (default: the one --weights records, else cityscapes)");
  auto* classes = add_num_classes_flag(sub, a->num_classes);
  auto* preset = add_preset_flag(sub, a->preset)
                     ->description("Input normalisation written into the metadata: cirkd or mmseg (default: the "
                                   "one --weights records, else cirkd)");
  sub->add_option("--check", a->check,
                  "Instead of exporting: run this .onnx model in ONNX Runtime (Python) and rdd on random and synthetic "
                  "images; print max abs / rel differences; exit 1 above --rtol");
  sub->add_option("--sizes", a->sizes, "With --check on a --dynamic model: input sizes HxW,HxW (default 64x96,90x120)");
  sub->add_option("--scenes", a->check_options.scenes, "With --check: synthetic scenes per size")
      ->capture_default_str();
  sub->add_option("--repeat", a->check_options.repeat, "With --check: timed runs per case, rdd and ONNX Runtime")
      ->capture_default_str();
  sub->add_option("--rtol", a->check_options.rtol, "With --check: tolerance on max|diff| / max|rdd| per output")
      ->capture_default_str();
  sub->add_option("--min-agreement", a->check_options.min_agreement,
                  "With --check: least share of equal labels (with --argmax)")
      ->capture_default_str();
  sub->add_option("--python", a->check_options.python, "With --check: the Python with onnxruntime")
      ->capture_default_str();
  sub->add_option("--script", a->check_options.script, "With --check: the runner (default: scripts/onnx_run.py)");
  add_device_flag(sub, a->check_options.device)
      ->description("With --check: where rdd runs its side (forward and timing): auto (GPU when present), cpu, "
                    "cuda or cuda:N");
  sub->footer(
      "Examples:\n"
      "  rdd export --model deeplabv3_resnet18 --weights runs/rdd/weights.safetensors --out r18.onnx --input 1024x2048\n"
      "  rdd export --model deeplabv3_resnet18 --weights W --out r18.onnx --dynamic --resize-to-input --argmax\n"
      "  rdd export --check r18.onnx --weights runs/rdd/weights.safetensors\n"
      "The graph: input 'image' float32 (batch, 3, H, W), normalised as the metadata_props say (mean, std,\n"
      "channel_order, class_names); output 'logits' (batch, classes, H/8, W/8) — or (batch, classes, H, W) with\n"
      "--resize-to-input — and with --argmax 'labels'. Aux heads are training-only and not exported. PSP's\n"
      "adaptive pools become GlobalAveragePool, AveragePool or Slice+ReduceMean per bin (exact); ops ONNX cannot\n"
      "express exactly are refused, never approximated.");
  return {sub, [a, width, out, input, dynamic, opset, fold, argmax, resize, preset, dataset, classes] {
    if (a->check.empty()) return run_export(*a);
    std::vector<std::string> export_only;
    for (CLI::Option* opt : {width, out, input, dynamic, opset, fold, argmax, resize, preset, dataset, classes})
      if (opt->count() > 0) export_only.push_back(opt->get_name());
    return run_check(*a, export_only);
  }};
}

}  // namespace rdd::apps
