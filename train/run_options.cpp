#include "train/run_options.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "engine/error.h"
#include "models/seg_model.h"

namespace rdd::train {

namespace {

// A finite value in a range, naming the flag: "--momentum 5 is outside [0, 1)".
void check_range(const char* flag, double v, double lo, double hi, bool lo_open, bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return;
  std::ostringstream range;
  range << (lo_open ? "(" : "[") << lo << ", ";
  if (std::isinf(hi)) range << "∞)";
  else range << hi << (hi_open ? ")" : "]");
  fail(flag, " ", v, std::isfinite(v) ? " is outside " : " is not a number in ", range.str());
}
constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

void check_model_width(double width, const char* width_flag) {
  // Below 1/64 the narrowest layers (16 channels) would round to nothing.
  check_range(width_flag, width, 1.0 / 64, 4, false, false);
}

void check_model_choice(const ModelChoice& m, const char* model_flag, const char* width_flag) {
  RDD_CHECK(models::is_model_name(m.name), model_flag, ": unknown model '", m.name, "' (known: ",
            models::known_model_names(), ")");
  check_model_width(m.width, width_flag);
}

void validate_run_options(const RunOptions& o, bool distill) {
  check_model_choice(o.model, "--model", "--width");
  RDD_CHECK(o.preset == "cirkd" || o.preset == "mmseg", "--preset: '", o.preset, "' (cirkd or mmseg)");
  RDD_CHECK(o.crop_h >= 8 && o.crop_w >= 8, "--crop ", o.crop_h, "x", o.crop_w, " is too small");
  RDD_CHECK(o.batch >= 1, "--batch must be ≥ 1");
  RDD_CHECK(o.workers >= 1, "--workers must be ≥ 1");
  RDD_CHECK(o.iters >= 1, "--iters must be ≥ 1");
  check_range("--lr", o.lr, 0, kInf, true, true);
  check_range("--power", o.power, 0, kInf, false, true);
  check_range("--momentum", o.sgd.momentum, 0, 1, false, true);
  check_range("--weight-decay", o.sgd.weight_decay, 0, 1, false, true);
  check_range("--aux-weight", o.loss.rdd.aux_weight, 0, kInf, false, true);
  RDD_CHECK(o.save_every >= 1, "--save-every must be ≥ 1");
  RDD_CHECK(o.val_every >= 0, "--val-every must be ≥ 0");
  check_range("--budget-seconds", o.budget_seconds, 0, kInf, false, true);
  check_range("--budget-tflop", o.budget_tflop, 0, kInf, false, true);
  RDD_CHECK(o.budget_seconds == 0 || o.budget_tflop == 0, "--budget-seconds and --budget-tflop: give one budget, not both");
  check_range("--warmup-fraction", o.loss.rdd.warmup_fraction, 0, 1, false, true);
  RDD_CHECK(o.print_every >= 1, "--print-every must be ≥ 1");
  RDD_CHECK(o.warn_zero_loss >= 0, "--warn-zero-loss must be ≥ 0");
  // With a budget the iterations are resolved at the start, so --stop-after is checked against them then.
  RDD_CHECK(o.stop_after >= 0 && (o.budget_seconds > 0 || o.budget_tflop > 0 || o.stop_after <= o.iters), "--stop-after ",
            o.stop_after, " is outside [0, --iters ", o.iters, "]");
  RDD_CHECK(!(o.overwrite && !o.resume.empty()), "--overwrite and --resume contradict each other: --resume continues "
            "the run in --out, --overwrite removes it");
  RDD_CHECK(o.val_list.empty() || o.data.kind == "list", "--val-list is for --dataset list; --dataset ", o.data.kind,
            " validates on --val-split");
  RDD_CHECK(o.data.kind != "list" || !o.val_list.empty() || o.val_every == 0, "--val-every with --dataset list needs "
            "--val-list (the validation list; give the training list itself to validate on it)");
  if (!distill) return;
  check_model_choice(o.teacher, "--teacher", "--teacher-width");
  const LossOptions& l = o.loss;
  RDD_CHECK(l.rdd_stages.empty() || l.rdd_stages == "tfe,tse" || l.rdd_stages == "tse" || l.rdd_stages == "tfe",
            "--rdd: '", l.rdd_stages, "' (tfe,tse | tse | tfe | empty)");
  RDD_CHECK(l.tse_class_weights == "auto" || l.tse_class_weights == "none", "--tse-class-weights: '",
            l.tse_class_weights, "' (auto or none)");
  check_range("--kd", l.kd, 0, kInf, false, true);
  check_range("--cwd", l.cwd, 0, kInf, false, true);
  check_range("--kd-temperature", l.kd_temperature, 0, kInf, true, true);
  check_range("--cwd-temperature", l.cwd_temperature, 0, kInf, true, true);
  check_range("--tse-thresh", l.rdd.tse.thresh, 0, 1, true, false);
  validate_kd_methods(l);
  RDD_CHECK(l.rdd.tse.min_kept >= 0, "--min-kept must be ≥ 0");
  RDD_CHECK(l.rdd.warmup_iters >= 0, "--warmup-iters must be ≥ 0");
}

void validate_kd_methods(const LossOptions& l) {
  const std::pair<const char*, double> weights[] = {{"--cwd-feature", l.cwd_feature}, {"--at", l.at},
                                                    {"--fitnet", l.fitnet},           {"--skd", l.skd},
                                                    {"--ifvd", l.ifvd},               {"--dsd", l.dsd},
                                                    {"--dsd-psd", l.dsd_psd},         {"--dsd-csd", l.dsd_csd},
                                                    {"--dist", l.dist},               {"--dist-beta", l.dist_beta},
                                                    {"--dist-gamma", l.dist_gamma},   {"--dist-aux-weight", l.dist_aux_weight}};
  for (const auto& [flag, v] : weights) RDD_CHECK(v >= 0, flag, " ", v, " must be ≥ 0");
  RDD_CHECK(l.dsd_temperature > 0, "--dsd-temperature ", l.dsd_temperature, " must be positive");
  RDD_CHECK(l.dist_temperature > 0, "--dist-temperature ", l.dist_temperature, " must be positive");
  for (const auto& [flag, v] : {std::pair<const char*, double>{"--cirkd", l.cirkd}, {"--cirkd-minibatch", l.cirkd_minibatch},
                                {"--cirkd-pixel", l.cirkd_pixel}, {"--cirkd-region", l.cirkd_region}})
    RDD_CHECK(v >= 0, flag, " ", v, " must be ≥ 0");
  RDD_CHECK(l.cirkd_pixel_memory >= 16 && l.cirkd_region_memory >= 1, "--cirkd-pixel-memory (", l.cirkd_pixel_memory,
            ") must be ≥ 16 (one step's pixels of a class) and --cirkd-region-memory (", l.cirkd_region_memory, ") ≥ 1");
  RDD_CHECK(l.cirkd_pixel_contrast >= 0 && l.cirkd_region_contrast >= 0, "--cirkd-pixel-contrast and --cirkd-region-contrast must be ≥ 0");
  RDD_CHECK(l.cirkd_temperature > 0 && l.cirkd_kd_temperature > 0, "--cirkd-temperature and --cirkd-kd-temperature must be positive");
  RDD_CHECK(l.cirkd_pixel_queue == "released" || l.cirkd_pixel_queue == "class", "--cirkd-pixel-queue: '",
            l.cirkd_pixel_queue, "' (released or class)");
  RDD_CHECK(l.adv >= 0 && l.adv_d >= 0, "--adv and --adv-d must be ≥ 0");
  RDD_CHECK(l.adv_lr > 0, "--adv-lr ", l.adv_lr, " must be positive");
  RDD_CHECK(l.adv_width >= 8 && l.adv_width % 8 == 0, "--adv-width ", l.adv_width, " must be a positive multiple of 8");
}

void add_kd_method_keys(nlohmann::json& j, const LossOptions& l) {
  // Only the methods that are on: configurations (and checkpoints) of runs without them keep their keys.
  if (l.cwd_feature > 0) j["cwd_feature"] = l.cwd_feature;
  if (l.at > 0) j["at"] = l.at;
  if (l.fitnet > 0) j["fitnet"] = l.fitnet;
  if (l.skd > 0) j["skd"] = l.skd;
  if (l.ifvd > 0) j["ifvd"] = l.ifvd;
  if (l.dsd > 0) {
    j["dsd"] = l.dsd;
    j["dsd_psd"] = l.dsd_psd;
    j["dsd_csd"] = l.dsd_csd;
    j["dsd_temperature"] = l.dsd_temperature;
  }
  if (l.dist > 0) {
    j["dist"] = l.dist;
    j["dist_beta"] = l.dist_beta;
    j["dist_gamma"] = l.dist_gamma;
    j["dist_temperature"] = l.dist_temperature;
    j["dist_aux_weight"] = l.dist_aux_weight;
  }
  if (l.cirkd > 0) {
    j["cirkd"] = l.cirkd;
    j["cirkd_minibatch"] = l.cirkd_minibatch;
    j["cirkd_pixel"] = l.cirkd_pixel;
    j["cirkd_region"] = l.cirkd_region;
    j["cirkd_pixel_memory"] = l.cirkd_pixel_memory;
    j["cirkd_region_memory"] = l.cirkd_region_memory;
    j["cirkd_pixel_contrast"] = l.cirkd_pixel_contrast;
    j["cirkd_region_contrast"] = l.cirkd_region_contrast;
    j["cirkd_temperature"] = l.cirkd_temperature;
    j["cirkd_kd_temperature"] = l.cirkd_kd_temperature;
    j["cirkd_pixel_queue"] = l.cirkd_pixel_queue;
  }
  if (l.adv > 0) {
    j["adv"] = l.adv;
    j["adv_d"] = l.adv_d;
    j["adv_lr"] = l.adv_lr;
    j["adv_width"] = l.adv_width;
  }
}

nlohmann::json RunOptions::to_json(bool distill) const {
  // The keys and values of the first releases, so their checkpoints still resume.
  nlohmann::json j = {
      {"command", distill ? "distill" : "train"},
      {"model", model.name}, {"width", model.width}, {"init", init},
      {"dataset", data.kind}, {"data_root", data.root}, {"split", data.split}, {"val_split", val_split},
      {"num_classes", data.num_classes}, {"ignore_value", data.ignore_value},
      {"preset", preset}, {"crop", {crop_h, crop_w}}, {"batch", batch},
      {"iters", iters}, {"lr", lr}, {"momentum", sgd.momentum}, {"weight_decay", sgd.weight_decay}, {"power", power},
      {"aux_weight", loss.rdd.aux_weight}, {"seed", seed},
  };
  if (!val_list.empty()) j["val_list"] = val_list;  // only when given: earlier checkpoints still match
  if (tf32) j["tf32"] = true;  // only when on: checkpoints from before the flag still match
  if (budget_seconds > 0) {
    j["budget_seconds"] = budget_seconds;
    j["budget_step_seconds"] = budget_step_seconds;
  }
  if (budget_tflop > 0) {
    j["budget_tflop"] = budget_tflop;
    j["budget_step_gflop"] = budget_step_gflop;
  }
  if (distill) {
    j["teacher"] = teacher.name;
    j["teacher_weights"] = teacher_weights;
    j["teacher_width"] = teacher.width;
    j["kd"] = loss.kd;
    j["kd_temperature"] = loss.kd_temperature;
    j["rdd"] = loss.rdd_stages;
    j["warmup_iters"] = loss.rdd.warmup_iters;
    if (loss.rdd.warmup_fraction > 0) j["warmup_fraction"] = loss.rdd.warmup_fraction;
    j["soft_switch"] = loss.rdd.soft_switch;
    j["tfe_direction"] = tfe_direction_name(loss.rdd.tfe.direction);
    j["tse_mode"] = method::tse_mode_name(loss.rdd.tse.mode);
    j["tse_thresh"] = loss.rdd.tse.thresh;
    j["min_kept"] = loss.rdd.tse.min_kept;
    j["tse_class_weights"] = loss.tse_class_weights;
    j["cwd"] = loss.cwd;
    j["cwd_temperature"] = loss.cwd_temperature;
    add_kd_method_keys(j, loss);
  }
  return j;
}

}  // namespace rdd::train
