// Flags that several subcommands share, each declared once here; run_flags.h has those of train and
// distill. The values land in the plain option structs of train/ and dist/.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "dist/launcher.h"
#include "train/run_options.h"

namespace rdd::apps {

// --model and --width (train, distill, eval, predict, bench, info), or with `teacher` --teacher and
// --teacher-width (distill, bench). Returns the model option (to mark it required); `group` "" leaves
// the options in the command's main list.
CLI::Option* add_model_flags(CLI::App* sub, train::ModelChoice& m, const std::string& model_help,
                             const std::string& group = "", bool teacher = false);
// --model and --width of a command that reads them from --weights (eval, predict, export): both optional,
// `m` left empty (name "", width 0) unless given; train::model_from_weights fills it from the file.
void add_model_flags_from_weights(CLI::App* sub, train::ModelChoice& m);
// Refuses, before any work, an output file that cannot be written: a folder, a missing parent, a parent
// without write permission, an existing file that is not writable. `flag` names it in the message.
void check_output_file(const std::string& path, const std::string& flag);
// --weights: a trained model's weights (train/model_weights.h), required (eval, predict).
CLI::Option* add_weights_flag(CLI::App* sub, std::string& weights);
// --device: auto, cpu, cuda, cuda:N (train/resolve_device.h).
CLI::Option* add_device_flag(CLI::App* sub, std::string& device);
// --tf32 (engine/cudnn_graph.h set_allow_tf32), on every command that runs a model.
CLI::Option* add_tf32_flag(CLI::App* sub, bool& tf32);
// --preset: cirkd or mmseg (the augmentation when training, the input normalisation when evaluating).
CLI::Option* add_preset_flag(CLI::App* sub, std::string& preset);
// --workers: loader threads; --cache: keep decoded images in memory.
CLI::Option* add_workers_flag(CLI::App* sub, int& workers);
CLI::Option* add_cache_flag(CLI::App* sub, bool& cache);

// --dataset, --data-root, --split, --num-classes, --ignore-value. With `required`, --dataset and
// --data-root must be given; otherwise each needs the other.
void add_dataset_flags(CLI::App* sub, data::DatasetSpec& spec, bool required, const std::string& default_split = "train");
// --dataset alone (predict: which classes and palette) and --num-classes (for --dataset list).
CLI::Option* add_dataset_kind_flag(CLI::App* sub, std::string& kind, const std::string& help);
CLI::Option* add_num_classes_flag(CLI::App* sub, int& num_classes);

// The comparison KD methods (train/distiller.h LossOptions, rdd/kd_terms.h): --cwd-feature, --at,
// --fitnet, --skd, --ifvd, --dsd (+ --dsd-psd, --dsd-csd, --dsd-temperature), --dist (+ --dist-beta,
// --dist-gamma, --dist-temperature, --dist-aux-weight); each weight 0 = off (distill, bench).
void add_kd_method_flags(CLI::App* sub, train::LossOptions& l, const std::string& group);

// --gpus, --nnodes, --node-rank, --master-addr, --master-port, --rendezvous-timeout, --nccl-timeout
// (train, distill, eval).
void add_launch_flags(CLI::App& command, dist::LaunchOptions& launch);
// Refuses a --device other than auto together with --gpus: each worker uses its own GPU.
void check_no_device_with_gpus(const std::string& device);

// A flag whose value is one of `values`, written as name_of(value) on the command line, in config
// files and in the help's default.
template <class E>
CLI::Option* add_enum_option(CLI::App* sub, const std::string& flag, E& value, const std::vector<E>& values,
                             const char* (*name_of)(E), const std::string& help) {
  std::vector<std::string> names;
  for (E v : values) names.push_back(name_of(v));
  return sub
      ->add_option_function<std::string>(
          flag,
          [&value, values, name_of](const std::string& s) {
            for (E v : values)
              if (s == name_of(v)) value = v;
          },
          help)
      ->check(CLI::IsMember(names))
      ->default_str(name_of(value));
}

// A flag written HxW (e.g. 512x1024) bound to (h, w), checked when parsed; the help shows the current
// values as the default.
CLI::Option* add_hw_option(CLI::App* sub, const std::string& flag, int& h, int& w, const std::string& help);
// (H, W) of "HxW" with H and W positive integers; nothing for anything else.
std::optional<std::pair<int, int>> parse_hw(const std::string& s);

}  // namespace rdd::apps
