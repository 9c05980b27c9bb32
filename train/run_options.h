// The options of a training run (`rdd train` and `rdd distill`) and the resolved configuration saved
// beside the checkpoints.
//
// Plain values, each with its one default. Where a part of rdd has an options struct of its own, the
// run holds that struct: the dataset's data::DatasetSpec, the optimizer's SgdOptions, the loss's
// LossOptions (which holds the RDD method's method::RddConfig). A flag's value so reaches the code that
// uses it under one name, with its one default where it is used: `--tse-thresh` is loss.rdd.tse.thresh
// from the flag (apps/run_flags.cpp) through make_distiller (distiller.cpp) and RddTaskTerm
// (rdd/distill.cpp) to the OHEM threshold (rdd/losses.cpp, default OhemOptions::thresh) that the TSE
// selection kernel compares with (rdd/pixel_ops.*). apps/run_flags.cpp binds every flag and
// `--config FILE` key to these fields; configs/ holds presets that reproduce the published recipes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "engine/sgd.h"
#include "train/distiller.h"

namespace rdd::train {

// A registered model (models::model_names()) at a channel width.
struct ModelChoice {
  std::string name = "deeplabv3_resnet18";
  double width = 1.0;  // channel multiplier (1 = the reference model; small ones for demos and tests)
};

struct RunOptions {
  // What is trained.
  ModelChoice model;
  std::string init;              // initial weights (safetensors), e.g. an ImageNet backbone
  bool non_strict = false;       // --init may miss or add tensors (listed)
  // Data.
  data::DatasetSpec data;        // the training split
  std::string val_split = "val";  // validation: this split of the same dataset
  std::string val_list;          // --dataset list: the validation list file ("" = no validation)
  bool skip_bad_samples = false; // leave out (and list) samples the data check finds bad, instead of stopping
  std::string preset = "cirkd";  // augmentation preset: cirkd | mmseg
  int crop_h = 512, crop_w = 1024;
  int batch = 16;                // global batch (split over ranks)
  int workers = 4;               // loader threads
  bool cache = false;            // keep decoded images in memory
  // Schedule (the reference's): poly learning rate lr·(1 − it/iters)^power, SGD.
  int64_t iters = 40000;
  double lr = 0.02, power = 0.9;
  SgdOptions sgd;
  // What the step minimises: the task term (its aux weight for `rdd train`) and the distillation terms.
  LossOptions loss;
  // The frozen teacher (rdd distill).
  ModelChoice teacher{.name = {}};
  std::string teacher_weights;   // safetensors from `rdd train`
  // Bookkeeping.
  std::string out = "runs/run";
  uint64_t seed = 1;
  int64_t val_every = 0;         // 0: validate only at the end
  int64_t save_every = 1000;
  std::string resume;            // a checkpoint to continue from exactly
  bool overwrite = false;        // --out may hold an earlier run: its outputs are removed first
  bool tensorboard = true;       // event files in --out/tb/ (train/tensorboard.h)
  int64_t warn_zero_loss = 50;   // warn when a weighted loss term is exactly 0 this many iterations in a row (0: never)
  int64_t stop_after = 0;        // stop (with a checkpoint) after this iteration, keeping the --iters schedule
  std::string device = "auto";   // auto | cpu | cuda | cuda:N
  bool tf32 = false;             // f32 convolutions on TF32 tensor cores (engine/cudnn_graph.h)
  int64_t print_every = 10;
  // Equal-compute runs: a budget fixes --iters at the start (the poly schedule runs over it): seconds from
  // a timed calibration of a few steps (state restored afterwards), TFLOP from the models' traces and the
  // distillation terms' own counts. 0: off. Resolved once, saved in the configuration and the checkpoint
  // (a resume takes the saved iterations, no new calibration).
  double budget_seconds = 0, budget_tflop = 0;
  double budget_step_seconds = 0, budget_step_gflop = 0;  // the resolution's measurement (set by the trainer)

  // The configuration that defines the run (saved in checkpoints; a resume must match it).
  nlohmann::json to_json(bool distill) const;
};

// Checks values that the flags' own checks cannot (names, ranges, combinations), naming the flag.
void validate_run_options(const RunOptions& o, bool distill);

// The comparison KD methods' weights and hyper-parameters (LossOptions), naming the flag.
void validate_kd_methods(const LossOptions& l);
// Their keys in the run configuration (only those of the methods that are on).
void add_kd_method_keys(nlohmann::json& j, const LossOptions& l);

// --model/--width (or --teacher/--teacher-width): a registered model and a width in [1/64, 4].
void check_model_choice(const ModelChoice& m, const char* model_flag, const char* width_flag);
void check_model_width(double width, const char* width_flag);

}  // namespace rdd::train
