#include "apps/flags.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "engine/error.h"
#include "models/seg_model.h"
#include "train/run_options.h"

namespace rdd::apps {

CLI::Option* add_model_flags(CLI::App* sub, train::ModelChoice& m, const std::string& model_help,
                             const std::string& group, bool teacher) {
  CLI::Option* name = sub->add_option(teacher ? "--teacher" : "--model", m.name, model_help)->capture_default_str();
  CLI::Option* width =
      sub->add_option(teacher ? "--teacher-width" : "--width", m.width,
                      teacher ? "Teacher channel width multiplier" : "Channel width multiplier (1 = the reference model)")
          ->capture_default_str();
  if (!group.empty()) {
    name->group(group);
    width->group(group);
  }
  return name;
}

void check_output_file(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  std::error_code ec;
  RDD_CHECK(!path.empty(), flag, ": empty path");
  RDD_CHECK(!fs::is_directory(path, ec), flag, " ", path, " is a folder; give a file's path");
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  RDD_CHECK(fs::is_directory(parent, ec), flag, " ", path, ": ", parent.string(),
            fs::exists(parent, ec) ? " is not a folder" : " does not exist");
  RDD_CHECK(::access(parent.c_str(), W_OK) == 0, flag, " ", path, ": the folder ", parent.string(), " is not writable");
  RDD_CHECK(!fs::exists(path, ec) || ::access(path.c_str(), W_OK) == 0, flag, " ", path, ": the file is not writable");
}

void add_model_flags_from_weights(CLI::App* sub, train::ModelChoice& m) {
  m = train::ModelChoice{.name = {}, .width = 0};
  sub->add_option("--model", m.name,
                  "Model name (default: the one --weights records; when given, it must agree): " +
                      models::known_model_names());
  // Given, it must be a width that trains: 0 is not "not given" (the default is the flag's absence).
  const CLI::Validator trainable_width(
      [](std::string& text) {
        char* end = nullptr;
        const double w = std::strtod(text.c_str(), &end);
        if (text.empty() || *end) return "'" + text + "' is not a number";
        try {
          train::check_model_width(w, "--width");
        } catch (const std::exception& e) {
          return std::string(e.what());
        }
        return std::string();
      },
      "in [1/64, 4]");
  sub->add_option("--width", m.width, "Channel width multiplier (default: the one --weights records, else 1)")
      ->check(trainable_width);
}

CLI::Option* add_weights_flag(CLI::App* sub, std::string& weights) {
  return sub->add_option("--weights", weights, "Weights (safetensors from rdd train/distill or convert_pth.py)")
      ->required();
}

CLI::Option* add_device_flag(CLI::App* sub, std::string& device) {
  return sub->add_option("--device", device, "auto (GPU when present), cpu, cuda or cuda:N")->capture_default_str();
}

CLI::Option* add_tf32_flag(CLI::App* sub, bool& tf32) {
  return sub->add_flag("--tf32", tf32,
                       "GPU: let f32 convolutions use TF32 tensor cores (inputs rounded to 10 mantissa bits, as "
                       "PyTorch does by default for cuDNN convolutions; several times faster). Default: strict f32");
}

CLI::Option* add_preset_flag(CLI::App* sub, std::string& preset) {
  return sub
      ->add_option("--preset", preset,
                   "Preset: cirkd (the released code's) or mmseg: the augmentation when training, the input "
                   "normalisation when evaluating")
      ->check(CLI::IsMember({"cirkd", "mmseg"}))
      ->capture_default_str();
}

CLI::Option* add_workers_flag(CLI::App* sub, int& workers) {
  return sub->add_option("--workers", workers, "Loader threads")->capture_default_str();
}

CLI::Option* add_cache_flag(CLI::App* sub, bool& cache) {
  return sub->add_flag("--cache", cache, "Keep decoded images in memory (datasets that fit)");
}

CLI::Option* add_dataset_kind_flag(CLI::App* sub, std::string& kind, const std::string& help) {
  return sub->add_option("--dataset", kind, help)->check(CLI::IsMember(data::dataset_kinds()));
}

CLI::Option* add_num_classes_flag(CLI::App* sub, int& num_classes) {
  return sub->add_option("--num-classes", num_classes, "Number of classes (--dataset list only)");
}

void add_dataset_flags(CLI::App* sub, data::DatasetSpec& spec, bool required, const std::string& default_split) {
  spec.split = default_split;
  auto* d = add_dataset_kind_flag(sub, spec.kind, "Dataset: cityscapes, camvid, voc, ade20k or list");
  auto* r = sub->add_option("--data-root", spec.root,
                            "Dataset folder in its original layout (for --dataset list: the list file of "
                            "'image label' lines, paths relative to it)");
  sub->add_option("--split", spec.split, "Split: train, val, test or trainval")
      ->check(CLI::IsMember({"train", "val", "test", "trainval"}))
      ->capture_default_str();
  add_num_classes_flag(sub, spec.num_classes);
  sub->add_option("--ignore-value", spec.ignore_value, "Raw label value meaning ignore (--dataset list only)")
      ->capture_default_str();
  if (required) {
    d->required();
    r->required();
  } else {
    d->needs(r);
    r->needs(d);
  }
}

void add_kd_method_flags(CLI::App* sub, train::LossOptions& l, const std::string& group) {
  auto opt = [&](const char* flag, double& v, const char* help) {
    sub->add_option(flag, v, help)->capture_default_str()->group(group);
  };
  opt("--cwd-feature", l.cwd_feature,
      "CWD on the head feature through a 1x1 adapter (student to teacher channels), weight (tau: --cwd-temperature)");
  opt("--at", l.at, "Attention transfer on the head feature, weight (the RDD scripts: 10000, with --kd 1)");
  opt("--fitnet", l.fitnet, "FitNet: feature L2 through a 1x1 adapter (student to teacher channels), weight");
  opt("--skd", l.skd, "SKD: pair-wise similarity of the 2x2 max-pooled head features, weight");
  opt("--ifvd", l.ifvd, "IFVD: intra-class feature variation (cosine to the class centres), weight");
  opt("--dsd", l.dsd, "DSD (double similarity: PSD on [aux, feature, main] + CSD on the main logits), weight "
                      "multiplying --dsd-psd and --dsd-csd");
  opt("--dsd-psd", l.dsd_psd, "DSD's PSD weight (times --dsd)");
  opt("--dsd-csd", l.dsd_csd, "DSD's CSD weight (times --dsd)");
  opt("--dsd-temperature", l.dsd_temperature, "CSD's softmax temperature");
  opt("--dist", l.dist, "DIST (inter- and intra-class Pearson correlation of the class probabilities), weight");
  opt("--dist-beta", l.dist_beta, "DIST's inter-class (per pixel) weight");
  opt("--dist-gamma", l.dist_gamma, "DIST's intra-class (per class) weight");
  opt("--dist-temperature", l.dist_temperature, "DIST's softmax temperature");
  opt("--dist-aux-weight", l.dist_aux_weight, "DIST on the aux logits at this share of --dist (DIST's release: 0.4)");
  opt("--cirkd", l.cirkd, "CIRKD (mini-batch pixel-to-pixel + memory pixel-to-pixel and pixel-to-region contrast), "
                          "weight multiplying --cirkd-minibatch, --cirkd-pixel, --cirkd-region");
  opt("--cirkd-minibatch", l.cirkd_minibatch, "CIRKD mini-batch pixel-to-pixel weight (times --cirkd)");
  opt("--cirkd-pixel", l.cirkd_pixel, "CIRKD memory pixel-to-pixel weight (times --cirkd)");
  opt("--cirkd-region", l.cirkd_region, "CIRKD memory pixel-to-region weight (times --cirkd)");
  auto iopt = [&](const char* flag, int64_t& v, const char* help) {
    sub->add_option(flag, v, help)->capture_default_str()->group(group);
  };
  iopt("--cirkd-pixel-memory", l.cirkd_pixel_memory, "CIRKD teacher pixel queue rows per class");
  iopt("--cirkd-region-memory", l.cirkd_region_memory, "CIRKD teacher region queue rows per class");
  iopt("--cirkd-pixel-contrast", l.cirkd_pixel_contrast,
       "CIRKD pixel keys per step in all (each class: this / classes + 1, as the scripts)");
  iopt("--cirkd-region-contrast", l.cirkd_region_contrast,
       "CIRKD region keys per step in all (each class: this / classes + 1)");
  opt("--cirkd-temperature", l.cirkd_temperature, "CIRKD contrast temperature (similarity / tau)");
  opt("--cirkd-kd-temperature", l.cirkd_kd_temperature, "CIRKD temperature of the KL between similarity distributions");
  opt("--adv", l.adv, "Adversarial term: the student's hinge loss against a SAGAN discriminator on the main logits, "
                      "weight (the CIRKD scripts with SKD / IFVD / CWD: 0.001)");
  opt("--adv-d", l.adv_d, "The discriminator's hinge loss weight (the scripts: 0.1)");
  opt("--adv-lr", l.adv_lr, "The discriminator's Adam learning rate (betas 0.9, 0.99; constant)");
  sub->add_option("--adv-width", l.adv_width, "The discriminator's first width (the release: 64; doubles per layer)")
      ->capture_default_str()
      ->group(group);
  sub->add_option("--cirkd-pixel-queue", l.cirkd_pixel_queue,
                  "released: the release's pixel-queue fill (positions 0..n_c-1 of the image, what produced the "
                  "paper's numbers); class: K pixels of the class (the evident intent)")
      ->check(CLI::IsMember({"released", "class"}))
      ->capture_default_str()
      ->group(group);
}

void add_launch_flags(CLI::App& command, dist::LaunchOptions& launch) {
  const char* group = "Multi-GPU / multi-node";
  dist::LaunchSpec& spec = launch.spec;
  command
      .add_option("--gpus", spec.nproc_per_node,
                  "Worker processes on this node, one per GPU (cuda:0..N-1), over NCCL. Without "
                  "it: one process, no NCCL; --gpus 1: one worker through the data-parallel "
                  "path (its host-side overhead; one rank moves no data)")
      ->check(CLI::Range(1, 1024))
      ->each([&launch](const std::string&) { launch.gpus_given = true; })
      ->group(group);
  command.add_option("--nnodes", spec.nnodes, "Number of nodes taking part")->check(CLI::Range(1, 1 << 16))->group(group);
  command.add_option("--node-rank", spec.node_rank, "This node's index, 0..nnodes-1 (node 0 hosts rank 0)")
      ->check(CLI::Range(0, 1 << 16))
      ->group(group);
  command.add_option("--master-addr", spec.master_addr, "Address of node 0, where rank 0 listens for the rendezvous")
      ->group(group);
  command.add_option("--master-port", spec.master_port, "TCP port of the rendezvous on node 0 (0: any free port, one node only)")
      ->check(CLI::Range(0, 65535))
      ->group(group);
  command.add_option("--rendezvous-timeout", launch.rendezvous_timeout_s,
                     "Seconds to wait for every rank to join (and for barriers)")
      ->check(CLI::PositiveNumber)
      ->group(group);
  command.add_option("--nccl-timeout", launch.nccl_timeout_s,
                     "Seconds a collective may wait for the other ranks before the run is aborted")
      ->check(CLI::PositiveNumber)
      ->capture_default_str()
      ->group(group);
}

void check_no_device_with_gpus(const std::string& device) {
  RDD_CHECK(device == "auto", "--device ", device,
            " with --gpus: each worker uses its own GPU (rank r on cuda:<local rank>); drop --device");
}

std::optional<std::pair<int, int>> parse_hw(const std::string& s) {
  const size_t x = s.find('x');
  if (x == std::string::npos) return std::nullopt;
  try {
    size_t used_h = 0, used_w = 0;
    const int h = std::stoi(s.substr(0, x), &used_h), w = std::stoi(s.substr(x + 1), &used_w);
    if (used_h != x || used_w != s.size() - x - 1 || h <= 0 || w <= 0) return std::nullopt;
    return std::pair{h, w};
  } catch (const std::exception&) {  // not a number, or out of range
    return std::nullopt;
  }
}

CLI::Option* add_hw_option(CLI::App* sub, const std::string& flag, int& h, int& w, const std::string& help) {
  const CLI::Validator hw(
      [](std::string& s) {
        return parse_hw(s) ? std::string() : "must be HxW with H and W positive (e.g. 512x1024), got '" + s + "'";
      },
      "HxW");
  return sub
      ->add_option_function<std::string>(
          flag, [&h, &w](const std::string& s) { std::tie(h, w) = *parse_hw(s); }, help)
      ->check(hw)
      ->default_str(std::to_string(h) + "x" + std::to_string(w));
}

}  // namespace rdd::apps
