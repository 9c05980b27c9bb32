// `rdd predict`: colourised segmentation maps for images, with the evaluation protocol of `rdd eval`
// (whole image, batch 1, the preset's normalisation, main logits upsampled bilinearly with
// align_corners = true to the image size, argmax). For each input `<dir>/<name>.<ext>` it writes
// `<out>/<name>_pred.png` (the dataset's palette) and, with --overlay, `<out>/<name>_overlay.png`
// (50% blend of the image and the prediction).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/flags.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/image.h"
#include "engine/cudnn_graph.h"
#include "engine/safetensors.h"
#include "layers/resize.h"
#include "models/seg_model.h"
#include "rdd/segmentation_metrics.h"
#include "train/model_weights.h"
#include "train/progress.h"
#include "train/resolve_device.h"
#include "train/run_options.h"

namespace rdd::apps {

namespace {

namespace fs = std::filesystem;

struct PredictArgs {
  train::ModelChoice model;
  std::string weights;
  std::string input;
  std::string out;
  std::string dataset;   // "": the one --weights records, else cityscapes
  int num_classes = 0;  // --dataset list only (default: the one --weights records)
  std::string preset;    // "": the one --weights records, else cirkd
  bool overlay = false;
  std::string device = "auto";
  bool tf32 = false;
};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_image_name(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The images to process: the file itself, or every .png/.jpg/.jpeg directly in the folder, sorted by
// name. When the output folder is the input folder, our own outputs (*_pred.png, *_overlay.png) are
// not inputs.
std::vector<fs::path> list_inputs(const std::string& input, const std::string& out) {
  std::error_code ec;
  const fs::path in(input);
  RDD_CHECK(fs::exists(in, ec), "--input ", input, ": no such file or folder");
  if (!fs::is_directory(in, ec)) {
    RDD_CHECK(fs::is_regular_file(in, ec), "--input ", input, ": not a file or folder");
    return {in};
  }
  const bool same_folder = fs::exists(out, ec) && fs::equivalent(in, fs::path(out), ec);
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(in, ec)) {
    if (!e.is_regular_file(ec) || !is_image_name(e.path())) continue;
    const std::string name = e.path().filename().string();
    if (same_folder && (ends_with(name, "_pred.png") || ends_with(name, "_overlay.png"))) continue;
    files.push_back(e.path());
  }
  RDD_CHECK(!ec, "--input ", input, ": cannot list the folder (", ec.message(), ")");
  RDD_CHECK(!files.empty(), "--input ", input, ": the folder holds no .png/.jpg/.jpeg images");
  std::sort(files.begin(), files.end());
  // a.png and a.jpg would both write a_pred.png.
  std::map<std::string, fs::path> by_stem;
  for (const fs::path& f : files) {
    auto [it, fresh] = by_stem.emplace(f.stem().string(), f);
    RDD_CHECK(fresh, "--input ", input, ": ", it->second.filename().string(), " and ", f.filename().string(),
              " would both be written as ", f.stem().string(), "_pred.png; rename one");
  }
  return files;
}

void prepare_out_dir(const std::string& out) {
  std::error_code ec;
  fs::create_directories(out, ec);
  RDD_CHECK(!ec && fs::is_directory(out), "--out ", out, ": cannot create the folder",
            ec ? " (" + ec.message() + ")" : std::string());
  const std::string probe = out + "/.rdd-write-test";
  {
    std::ofstream f(probe);
    RDD_CHECK(f.good(), "--out ", out, ": the folder is not writable");
  }
  fs::remove(probe, ec);
}

// One image → class ids (H, W) i32 on the CPU.
Tensor predict_ids(models::SegModel& model, const data::Image& image, const data::Normalization& norm, Device device) {
  const int H = image.height, W = image.width;
  data::Sample s;
  s.image = image;
  s.label.height = H;
  s.label.width = W;
  s.label.channels = 1;
  s.label.pixels.assign(size_t(H) * size_t(W), data::kIgnoreU8);
  Tensor x = Tensor::empty({1, 3, H, W});        // x: (1, 3, H, W) f32, normalised
  Tensor unused = Tensor::empty({1, H, W}, DType::i32);
  data::transform_eval(s, norm, x.data<float>(), unused.data<int32_t>());
  const NetOutputs out = model.forward(device.is_cpu() ? x : x.to(device));  // main: (1, C, H/8, W/8)
  const Tensor up = layers::bilinear_resize_forward(out.main, H, W, /*align_corners=*/true);  // (1, C, H, W)
  const Tensor ids = argmax_channels(up);                                                     // (1, H, W) i32
  return ids.device().is_cpu() ? ids : ids.to(Device::cpu());
}

data::Image blend_half(const data::Image& a, const data::Image& b) {
  data::Image o = a;
  for (size_t i = 0; i < o.pixels.size(); ++i) o.pixels[i] = uint8_t((unsigned(a.pixels[i]) + b.pixels[i] + 1) / 2);
  return o;
}

int run_predict(PredictArgs a) {
  // Model, width, classes and preset from the weights' metadata; flags, when given, must agree.
  const train::WeightsInfo recorded = train::resolve_model_from_weights(a.model, a.preset, a.weights);
  if (a.dataset.empty()) a.dataset = recorded.dataset.empty() ? "cityscapes" : recorded.dataset;
  if (a.dataset == "list" && a.num_classes == 0) a.num_classes = recorded.num_classes;
  RDD_CHECK(a.dataset != "list" || a.num_classes > 0, "--dataset list needs --num-classes");
  const data::Normalization norm = data::augment_preset(a.preset, 8, 8).norm;  // throws naming a bad preset
  const data::Dataset meta = data::dataset_metadata(a.dataset, a.num_classes);
  const std::vector<fs::path> inputs = list_inputs(a.input, a.out);
  prepare_out_dir(a.out);

  const Device device = train::resolve_device(a.device);
  cudnn::set_allow_tf32(a.tf32);
  auto model = models::build_model(a.model.name, {meta.num_classes, a.model.width});
  model->params().materialize(device, /*with_grads=*/false);
  train::load_model_weights(*model, a.weights);
  model->set_mode(layers::Mode::eval);

  // Folders get one progress line per image (stderr): position, file, size, time and ETA.
  const bool folder = fs::is_directory(a.input);
  const auto t0 = std::chrono::steady_clock::now();
  auto progress = [&](size_t done, const fs::path& path, const std::string& what) {
    if (!folder) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double eta = elapsed / double(done) * double(inputs.size() - done);
    std::fprintf(stderr, "predict %zu/%zu  %s  %s  (%.2f s/image, ETA %s)\n", done, inputs.size(),
                 path.filename().string().c_str(), what.c_str(), elapsed / double(done), train::format_duration(eta).c_str());
  };
  std::vector<std::string> failed;
  int64_t written = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const fs::path& path = inputs[i];
    data::Image image;
    try {
      image = data::read_image(path.string());
    } catch (const Error& e) {
      if (!folder) throw;
      failed.push_back(e.what());  // the message names the file
      progress(i + 1, path, "skipped: not readable");
      continue;
    }
    const Tensor ids = predict_ids(*model, image, norm, device);  // (1, H, W) i32
    const data::Image pred = data::colorize(ids.data<int32_t>(), image.height, image.width, meta.palette);
    const std::string stem = (fs::path(a.out) / path.stem()).string();
    data::write_png(stem + "_pred.png", pred);
    if (a.overlay) data::write_png(stem + "_overlay.png", blend_half(image, pred));
    ++written;
    progress(i + 1, path, std::to_string(image.width) + "x" + std::to_string(image.height));
  }
  std::printf("predict: wrote %lld prediction%s to %s\n", (long long)written, written == 1 ? "" : "s", a.out.c_str());
  if (!failed.empty()) {
    std::string msg;
    for (const std::string& f : failed) msg += "\n  " + f;
    fail("predict: ", failed.size(), " of ", inputs.size(), " images could not be read:", msg);
  }
  return 0;
}

}  // namespace

Command add_predict_command(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* sub = app.add_subcommand("predict", "Write colourised prediction PNGs for an image or a folder of images "
                                                "(whole image, the evaluation protocol)");
  add_model_flags_from_weights(sub, a->model);
  add_weights_flag(sub, a->weights);
  sub->add_option("--input", a->input, "An image (.png/.jpg) or a folder of images (processed in name order)")
      ->required();
  sub->add_option("--out", a->out, "Output folder: <name>_pred.png (and <name>_overlay.png)")->required();
  add_dataset_kind_flag(sub, a->dataset,
                        "Classes and palette: cityscapes, camvid, voc, ade20k or list (default: the one --weights "
                        "records, else cityscapes)");
  add_num_classes_flag(sub, a->num_classes);
  add_preset_flag(sub, a->preset)
      ->description("Input normalisation: cirkd or mmseg (default: the one --weights records, else cirkd)");
  sub->add_flag("--overlay", a->overlay, "Also write <name>_overlay.png: 50% image, 50% prediction");
  add_device_flag(sub, a->device);
  add_tf32_flag(sub, a->tf32);
  sub->footer("Example (model, width, classes and preset come from the weights file):\n"
              "  rdd predict --weights runs/rdd/weights.safetensors --input frames/ --out preds/ --overlay");
  return {sub, [a] { return run_predict(*a); }};
}

}  // namespace rdd::apps
