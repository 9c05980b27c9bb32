#include "apps/run_options.h"

#include "apps/config_file.h"
#include "engine/error.h"
#include "models/seg_model.h"

namespace rdd::apps {

namespace {
std::string known_models() {
  std::string s;
  for (const auto& n : models::model_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}
}  // namespace

CLI::Option* add_tf32_flag(CLI::App* sub, bool& tf32) {
  return sub->add_flag("--tf32", tf32,
                       "GPU: let f32 convolutions use TF32 tensor cores (inputs rounded to 10 mantissa bits, as "
                       "PyTorch does by default for cuDNN convolutions; several times faster). Default: strict f32");
}

void add_run_options(CLI::App* sub, RunOptions& o, bool distill) {
  add_config_file_option(sub);  // CLI11 2.1 reads set_config() files only for the main app
  const std::string model_help =
      "Model to " + std::string(distill ? "train as the student" : "train") + ": " + known_models();
  sub->add_option("--model", o.model, model_help)->capture_default_str()->group("Model");
  sub->add_option("--width", o.width, "Channel width multiplier (1 = the reference model)")->capture_default_str()->group("Model");
  sub->add_option("--init", o.init, "Initial weights (safetensors), e.g. an ImageNet backbone")->group("Model");
  sub->add_flag("--non-strict", o.non_strict, "Let --init miss or add tensors (they are listed)")->group("Model");

  add_data_options(sub, o.data, /*required=*/true);
  sub->add_option("--val-split", o.val_data.split, "Split used for validation")->capture_default_str()->group("Data");
  sub->add_option("--preset", o.preset, "Augmentation preset: cirkd (the released code's) or mmseg")
      ->capture_default_str()->group("Data");
  sub->add_option("--crop", o.crop_h, "Crop height (see --crop-w)")->capture_default_str()->group("Data");
  sub->add_option("--crop-w", o.crop_w, "Crop width")->capture_default_str()->group("Data");
  sub->add_option("--batch", o.batch, "Global batch size (split over GPUs)")->capture_default_str()->group("Data");
  sub->add_option("--workers", o.workers, "Loader threads")->capture_default_str()->group("Data");
  sub->add_flag("--cache", o.cache, "Keep decoded images in memory (datasets that fit)")->group("Data");

  sub->add_option("--iters", o.iters, "Training iterations")->capture_default_str()->group("Schedule");
  sub->add_option("--lr", o.lr, "Base learning rate (poly decay, power --power)")->capture_default_str()->group("Schedule");
  sub->add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str()->group("Schedule");
  sub->add_option("--weight-decay", o.weight_decay, "Weight decay (all parameters)")->capture_default_str()->group("Schedule");
  sub->add_option("--power", o.power, "Poly LR power")->capture_default_str()->group("Schedule");
  sub->add_option("--aux-weight", o.aux_weight, "Weight of the aux head's CE")->capture_default_str()->group("Schedule");

  if (distill) {
    sub->add_option("--teacher", o.teacher, "Teacher model name")->required()->group("Teacher");
    sub->add_option("--teacher-weights", o.teacher_weights, "Teacher weights (safetensors from rdd train)")
        ->required()->group("Teacher");
    sub->add_option("--teacher-width", o.teacher_width, "Teacher channel width multiplier")->capture_default_str()->group("Teacher");
    sub->add_option("--kd", o.kd, "Logit KD weight λ (KL(teacher‖student) at stride 8)")->capture_default_str()->group("Distillation");
    sub->add_option("--kd-temperature", o.kd_temperature, "KD temperature T")->capture_default_str()->group("Distillation");
    sub->add_option("--rdd", o.rdd, "RDD stages: tfe,tse (the method), tse, tfe, or empty (plain CE)")->group("Distillation");
    sub->add_option("--warmup-iters", o.warmup_iters, "TFE for iterations < this, TSE after")->capture_default_str()->group("Distillation");
    sub->add_flag("--soft-switch", o.soft_switch, "Blend TFE into TSE linearly after the switch (released variant)")->group("Distillation");
    sub->add_option("--tfe-direction", o.tfe_direction, "released: KL(aux‖main); paper: KL(main‖aux)")
        ->capture_default_str()->group("Distillation");
    sub->add_option("--tse-mode", o.tse_mode, "xor | or | and | ohem")->capture_default_str()->group("Distillation");
    sub->add_option("--tse-thresh", o.tse_thresh, "OHEM threshold t on the GT-class probability")->capture_default_str()->group("Distillation");
    sub->add_option("--min-kept", o.min_kept, "OHEM min-kept pixels per GPU batch")->capture_default_str()->group("Distillation");
    sub->add_option("--tse-class-weights", o.tse_class_weights,
                    "auto (released Cityscapes weights for cityscapes) or none")->capture_default_str()->group("Distillation");
    sub->add_option("--cwd", o.cwd, "Channel-wise distillation weight (on the main logits)")->capture_default_str()->group("Distillation");
    sub->add_option("--cwd-temperature", o.cwd_temperature, "CWD temperature τ")->capture_default_str()->group("Distillation");
  }

  sub->add_option("--out", o.out, "Output folder: checkpoints, weights, metrics.jsonl, config.json")
      ->capture_default_str()->group("Run");
  sub->add_option("--seed", o.seed, "Seed for initialisation, sampling, augmentation and dropout")->capture_default_str()->group("Run");
  sub->add_option("--val-every", o.val_every, "Validate every N iterations (0: only at the end)")->capture_default_str()->group("Run");
  sub->add_option("--save-every", o.save_every, "Write the checkpoint every N iterations")->capture_default_str()->group("Run");
  sub->add_option("--resume", o.resume, "Continue exactly from a checkpoint of the same run")->group("Run");
  sub->add_option("--stop-after", o.stop_after,
                  "Stop after this iteration with a checkpoint (the schedule stays --iters; continue with --resume)")
      ->group("Run");
  sub->add_option("--device", o.device, "auto (GPU when present), cpu, cuda or cuda:N")->capture_default_str()->group("Run");
  add_tf32_flag(sub, o.tf32)->group("Run");
  sub->add_option("--print-every", o.print_every, "Progress line every N iterations when not on a terminal")
      ->capture_default_str()->group("Run");
}

void validate_run_options(const RunOptions& o, bool distill) {
  RDD_CHECK(models::is_model_name(o.model), "--model: unknown model '", o.model, "' (known: ", known_models(), ")");
  RDD_CHECK(o.width > 0 && o.width <= 4, "--width ", o.width, " is outside (0, 4]");
  RDD_CHECK(o.preset == "cirkd" || o.preset == "mmseg", "--preset: '", o.preset, "' (cirkd or mmseg)");
  RDD_CHECK(o.crop_h >= 8 && o.crop_w >= 8, "--crop ", o.crop_h, "x", o.crop_w, " is too small");
  RDD_CHECK(o.batch >= 1, "--batch must be ≥ 1");
  RDD_CHECK(o.workers >= 1, "--workers must be ≥ 1");
  RDD_CHECK(o.iters >= 1, "--iters must be ≥ 1");
  RDD_CHECK(o.lr > 0, "--lr must be positive");
  RDD_CHECK(o.save_every >= 1, "--save-every must be ≥ 1");
  RDD_CHECK(o.val_every >= 0, "--val-every must be ≥ 0");
  RDD_CHECK(o.stop_after >= 0 && o.stop_after <= o.iters, "--stop-after ", o.stop_after, " is outside [0, --iters ", o.iters, "]");
  if (!distill) return;
  RDD_CHECK(models::is_model_name(o.teacher), "--teacher: unknown model '", o.teacher, "' (known: ", known_models(), ")");
  RDD_CHECK(o.rdd.empty() || o.rdd == "tfe,tse" || o.rdd == "tse" || o.rdd == "tfe",
            "--rdd: '", o.rdd, "' (tfe,tse | tse | tfe | empty)");
  RDD_CHECK(o.tse_mode == "xor" || o.tse_mode == "or" || o.tse_mode == "and" || o.tse_mode == "ohem",
            "--tse-mode: '", o.tse_mode, "' (xor, or, and, ohem)");
  RDD_CHECK(o.tfe_direction == "released" || o.tfe_direction == "paper", "--tfe-direction: '", o.tfe_direction,
            "' (released or paper)");
  RDD_CHECK(o.tse_class_weights == "auto" || o.tse_class_weights == "none", "--tse-class-weights: '",
            o.tse_class_weights, "' (auto or none)");
  RDD_CHECK(o.kd >= 0 && o.cwd >= 0, "--kd and --cwd must be ≥ 0");
  RDD_CHECK(o.kd_temperature > 0 && o.cwd_temperature > 0, "temperatures must be positive");
  RDD_CHECK(o.tse_thresh > 0 && o.tse_thresh <= 1, "--tse-thresh ", o.tse_thresh, " is outside (0, 1]");
  RDD_CHECK(o.min_kept >= 0, "--min-kept must be ≥ 0");
  RDD_CHECK(o.warmup_iters >= 0, "--warmup-iters must be ≥ 0");
}

nlohmann::json RunOptions::to_json(bool distill) const {
  nlohmann::json j = {
      {"command", distill ? "distill" : "train"},
      {"model", model}, {"width", width}, {"init", init},
      {"dataset", data.dataset}, {"data_root", data.root}, {"split", data.split}, {"val_split", val_data.split},
      {"num_classes", data.num_classes}, {"ignore_value", data.ignore_value},
      {"preset", preset}, {"crop", {crop_h, crop_w}}, {"batch", batch},
      {"iters", iters}, {"lr", lr}, {"momentum", momentum}, {"weight_decay", weight_decay}, {"power", power},
      {"aux_weight", aux_weight}, {"seed", seed},
  };
  if (tf32) j["tf32"] = true;  // only when on: checkpoints from before the flag still match
  if (distill) {
    j["teacher"] = teacher;
    j["teacher_weights"] = teacher_weights;
    j["teacher_width"] = teacher_width;
    j["kd"] = kd;
    j["kd_temperature"] = kd_temperature;
    j["rdd"] = rdd;
    j["warmup_iters"] = warmup_iters;
    j["soft_switch"] = soft_switch;
    j["tfe_direction"] = tfe_direction;
    j["tse_mode"] = tse_mode;
    j["tse_thresh"] = tse_thresh;
    j["min_kept"] = min_kept;
    j["tse_class_weights"] = tse_class_weights;
    j["cwd"] = cwd;
    j["cwd_temperature"] = cwd_temperature;
  }
  return j;
}

}  // namespace rdd::apps
