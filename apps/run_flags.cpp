#include "apps/run_flags.h"

#include "apps/config_file.h"
#include "apps/flags.h"
#include "models/seg_model.h"

namespace rdd::apps {

void add_run_flags(CLI::App* sub, train::RunOptions& o, bool distill) {
  add_config_file_option(sub);  // CLI11 2.1 reads set_config() files only for the main app
  const std::string what = distill ? "train as the student" : "train";
  add_model_flags(sub, o.model, "Model to " + what + ": " + models::known_model_names(), "Model");
  sub->add_option("--init", o.init, "Initial weights (safetensors), e.g. an ImageNet backbone")->group("Model");
  sub->add_flag("--non-strict", o.non_strict, "Let --init miss or add tensors (they are listed)")->group("Model");

  add_dataset_flags(sub, o.data, /*required=*/true);
  sub->add_option("--val-split", o.val_split, "Split used for validation")->capture_default_str()->group("Data");
  sub->add_option("--val-list", o.val_list,
                  "--dataset list: the validation list file ('image label' lines); without it a list dataset is not "
                  "validated (give the training list itself to validate on it)")
      ->group("Data");
  sub->add_flag("--skip-bad-samples", o.skip_bad_samples,
                "Leave out the samples the data check finds bad (listed, and written to --out/bad_samples.txt) "
                "instead of stopping before the first step")
      ->group("Data");
  add_preset_flag(sub, o.preset)->group("Data");
  sub->add_option("--crop", o.crop_h, "Crop height (see --crop-w)")->capture_default_str()->group("Data");
  sub->add_option("--crop-w", o.crop_w, "Crop width")->capture_default_str()->group("Data");
  sub->add_option("--batch", o.batch, "Global batch size (split over GPUs)")->capture_default_str()->group("Data");
  add_workers_flag(sub, o.workers)->group("Data");
  add_cache_flag(sub, o.cache)->group("Data");

  const char* schedule = "Schedule";
  sub->add_option("--iters", o.iters, "Training iterations")->capture_default_str()->group(schedule);
  sub->add_option("--lr", o.lr, "Base learning rate (poly decay, power --power)")->capture_default_str()->group(schedule);
  sub->add_option("--momentum", o.sgd.momentum, "SGD momentum")->capture_default_str()->group(schedule);
  sub->add_option("--weight-decay", o.sgd.weight_decay, "Weight decay (all parameters)")
      ->capture_default_str()
      ->group(schedule);
  sub->add_option("--power", o.power, "Poly LR power")->capture_default_str()->group(schedule);
  sub->add_option("--budget-seconds", o.budget_seconds,
                  "Equal-compute runs: the iterations (--iters ignored) that fit this many seconds of training "
                  "steps, from a timed calibration of a few steps at the start (fixed then, saved, kept on resume)")
      ->group(schedule);
  sub->add_option("--budget-tflop", o.budget_tflop,
                  "Equal-compute runs: the iterations that fit this many TFLOP (teacher forward, student forward "
                  "and backward from the models' traces, plus the distillation terms' own counts)")
      ->group(schedule);
  method::RddConfig& rdd = o.loss.rdd;
  sub->add_option("--aux-weight", rdd.aux_weight, "Weight of the aux head's CE")->capture_default_str()->group(schedule);

  if (distill) {
    add_model_flags(sub, o.teacher, "Teacher model name", "Teacher", /*teacher=*/true)->required();
    sub->add_option("--teacher-weights", o.teacher_weights, "Teacher weights (safetensors from rdd train)")
        ->required()
        ->group("Teacher");
    const char* kd = "Distillation";
    train::LossOptions& l = o.loss;
    sub->add_option("--kd", l.kd, "Logit KD weight λ (KL(teacher‖student) at stride 8)")->capture_default_str()->group(kd);
    sub->add_option("--kd-temperature", l.kd_temperature, "KD temperature T")->capture_default_str()->group(kd);
    sub->add_option("--rdd", l.rdd_stages, "RDD stages: tfe,tse (the method), tse, tfe, or empty (plain CE)")->group(kd);
    sub->add_option("--warmup-iters", rdd.warmup_iters, "TFE for iterations < this, TSE after")
        ->capture_default_str()
        ->group(kd);
    sub->add_option("--warmup-fraction", rdd.warmup_fraction,
                    "TFE for this share of the run instead of --warmup-iters (0: off); with a budget, of the "
                    "resolved iterations")
        ->group(kd);
    sub->add_flag("--soft-switch", rdd.soft_switch, "Blend TFE into TSE linearly after the switch (released variant)")
        ->group(kd);
    add_enum_option(sub, "--tfe-direction", rdd.tfe.direction,
                    {method::TfeDirection::aux_main, method::TfeDirection::main_aux}, train::tfe_direction_name,
                    "released: KL(aux‖main); paper: KL(main‖aux)")
        ->group(kd);
    add_enum_option(sub, "--tse-mode", rdd.tse.mode,
                    {method::TseMode::xor_mode, method::TseMode::or_mode, method::TseMode::and_mode,
                     method::TseMode::ohem},
                    method::tse_mode_name, "xor | or | and | ohem")
        ->group(kd);
    sub->add_option("--tse-thresh", rdd.tse.thresh, "OHEM threshold t on the GT-class probability")
        ->capture_default_str()
        ->group(kd);
    sub->add_option("--min-kept", rdd.tse.min_kept, "OHEM min-kept pixels per GPU batch")->capture_default_str()->group(kd);
    sub->add_option("--tse-class-weights", l.tse_class_weights,
                    "auto (released Cityscapes weights for cityscapes) or none")
        ->capture_default_str()
        ->group(kd);
    sub->add_option("--cwd", l.cwd, "Channel-wise distillation weight (on the main logits)")->capture_default_str()->group(kd);
    sub->add_option("--cwd-temperature", l.cwd_temperature, "CWD temperature τ")->capture_default_str()->group(kd);
    add_kd_method_flags(sub, l, "Distillation: comparison methods");
  }

  const char* run = "Run";
  sub->add_option("--out", o.out,
                  "Output folder, one run's (locked while it runs): checkpoints, weights, metrics.jsonl, config.json, "
                  "tb/ (README: Outputs)")
      ->capture_default_str()
      ->group(run);
  sub->add_flag("--overwrite", o.overwrite, "Start again in an --out that holds an earlier run (its outputs are removed)")
      ->group(run);
  sub->add_flag("--tensorboard,!--no-tensorboard", o.tensorboard,
                "TensorBoard event files in --out/tb/: loss terms, lr, img/s, validation metrics and predictions (default on)")
      ->group(run);
  sub->add_option("--warn-zero-loss", o.warn_zero_loss,
                  "Warn when a weighted loss term is exactly 0 this many iterations in a row (0: never)")
      ->capture_default_str()
      ->group(run);
  sub->add_option("--seed", o.seed, "Seed for initialisation, sampling, augmentation and dropout")
      ->capture_default_str()
      ->group(run);
  sub->add_option("--val-every", o.val_every, "Validate every N iterations (0: only at the end)")
      ->capture_default_str()
      ->group(run);
  sub->add_option("--save-every", o.save_every, "Write the checkpoint every N iterations")->capture_default_str()->group(run);
  sub->add_option("--resume", o.resume, "Continue exactly from a checkpoint of the same run")->group(run);
  sub->add_option("--stop-after", o.stop_after,
                  "Stop after this iteration with a checkpoint (the schedule stays --iters; continue with --resume)")
      ->group(run);
  add_device_flag(sub, o.device)->group(run);
  add_tf32_flag(sub, o.tf32)->group(run);
  sub->add_option("--print-every", o.print_every, "Progress line every N iterations when not on a terminal")
      ->capture_default_str()
      ->group(run);
}

}  // namespace rdd::apps
