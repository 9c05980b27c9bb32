// The options of a training run (`rdd train` and `rdd distill`), their command-line flags, and the
// resolved configuration saved beside the checkpoints.
//
// Every flag can also come from a config file (`--config FILE`, CLI11's INI/TOML format:
// `model = "deeplabv3_resnet18"`, `lr = 0.02`, ...); flags given on the command line win. configs/
// holds presets that reproduce the published recipes.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "apps/data_options.h"

namespace rdd::apps {

struct RunOptions {
  RunOptions() { val_data.split = "val"; }

  // What is trained.
  std::string model = "deeplabv3_resnet18";
  double width = 1.0;            // channel multiplier (small demo/test models)
  std::string init;              // initial weights (safetensors), e.g. an ImageNet backbone
  bool non_strict = false;       // --init may miss or add tensors (listed)
  // Data.
  DataOptions data;
  DataOptions val_data;          // split "val" of the same dataset unless --val-split says otherwise
  std::string preset = "cirkd";  // augmentation preset: cirkd | mmseg
  int crop_h = 512, crop_w = 1024;
  int batch = 16;                // global batch (split over ranks)
  int workers = 4;               // loader threads
  bool cache = false;            // keep decoded images in memory
  // Schedule (the reference's).
  int64_t iters = 40000;
  double lr = 0.02, momentum = 0.9, weight_decay = 1e-4, power = 0.9;
  double aux_weight = 0.4;
  // Distillation (rdd distill).
  std::string teacher;           // teacher model name
  std::string teacher_weights;   // teacher weights (safetensors)
  double teacher_width = 1.0;
  double kd = 0.0, kd_temperature = 1.0;
  std::string rdd;               // "" (none), "tfe,tse" (RDD), "tse" (= --warmup-iters 0), "tfe" (TFE only)
  int64_t warmup_iters = 4000;
  bool soft_switch = false;
  std::string tfe_direction = "released";  // released: KL(aux‖main); paper: KL(main‖aux)
  std::string tse_mode = "xor";
  double tse_thresh = 0.7;
  int64_t min_kept = 100000;
  std::string tse_class_weights = "auto";  // auto: the released Cityscapes weights for Cityscapes, none otherwise
  double cwd = 0.0, cwd_temperature = 4.0;
  // Bookkeeping.
  std::string out = "runs/run";
  uint64_t seed = 1;
  int64_t val_every = 0;         // 0: validate only at the end
  int64_t save_every = 1000;
  std::string resume;            // a checkpoint to continue from exactly
  int64_t stop_after = 0;        // stop (with a checkpoint) after this iteration, keeping the --iters schedule
  std::string device = "auto";   // auto | cpu | cuda | cuda:N
  bool tf32 = false;             // f32 convolutions on TF32 tensor cores (engine/cudnn_graph.h)
  int64_t print_every = 10;

  // The configuration that defines the run (saved in checkpoints; a resume must match it).
  nlohmann::json to_json(bool distill) const;
};

// Flags for `rdd train` (and, with distill = true, the teacher/KD/RDD flags of `rdd distill`).
void add_run_options(CLI::App* sub, RunOptions& o, bool distill);
// --tf32 (engine/cudnn_graph.h set_allow_tf32), the same flag on every command that runs a model.
CLI::Option* add_tf32_flag(CLI::App* sub, bool& tf32);

// Checks values that CLI11 cannot (names, ranges, combinations), naming the flag.
void validate_run_options(const RunOptions& o, bool distill);

}  // namespace rdd::apps
