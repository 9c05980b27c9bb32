// The training loop behind `rdd train` (supervised: teachers and baselines) and `rdd distill` (a frozen
// teacher + KD / RDD / CWD terms). One iteration:
//
//   batch = loader.next()               images (N, 3, H, W) f32, labels (N, H, W) i32
//   run_step(models, options, it, ...)  train_step (train_step.h) at poly_lr(lr, it, iters, power)
//   log the loss terms; validate every --val-every; checkpoint every --save-every
//
// Before the first step: --out is locked for this run (train/run_folder.h), every sample of the data is
// checked (train/data_gate.h), a --resume checkpoint's configuration is compared with this run's
// (train/run_identity.h: the data by identity, not path). SIGINT/SIGTERM end the run after the current
// step with a checkpoint (train/signals.h); so does a data error the check could not foresee.
//
// Outputs in --out: config.json (the resolved configuration), metrics.jsonl (one record per iteration
// and per validation, with wall-clock time), checkpoint.safetensors (everything needed to resume exactly,
// written atomically every --save-every iterations and when stopped), weights.safetensors (final
// weights), best.safetensors (best validation mIoU, when validating during training), eval.json (the
// final evaluation), tb/ (TensorBoard event files), rdd.lock (while running), data_check.json (the data
// check's cache) and bad_samples.txt (with --skip-bad-samples, when there are any).
#pragma once

#include <functional>
#include <string>

#include "dist/communicator.h"
#include "engine/device.h"
#include "train/run_options.h"
#include "train/train_step.h"

namespace rdd::train {

struct TrainResult {
  double final_miou = 0;  // on the validation split
  double best_miou = 0;
  int64_t iterations = 0;
  double images_per_second = 0;
  bool finished = true;   // false when --stop-after or a signal ended the run early (no final evaluation)
  bool validated = true;  // false: no validation data (--dataset list without --val-list)
  // SIGINT/SIGTERM that stopped the run: after a step or within a validation (a checkpoint was written), or,
  // with `finished` still true, within the final evaluation (the weights were written; not validated).
  int stopped_by_signal = 0;
  std::string checkpoint;     // the last checkpoint written (rank 0), "" if none
  std::string weights;        // the final weights (rank 0), "" until written
};

// Data parallelism: `comm` null (or one that is not data_parallel()) is the single-process run. With N
// ranks (or NCCL with one: `--gpus 1`), each rank runs this on its own device with batch/N images; the
// student's BN is synchronised (SyncBN), gradients are averaged over ranks in buckets of the flat
// buffer, validation confusion matrices are summed, and only rank 0 writes files or prints progress.
// `device_override` replaces options.device (workers use the GPU the launcher gave them).
TrainResult run_training(const RunOptions& options, bool distill, dist::Communicator* comm = nullptr,
                         const std::string& device_override = "");

// The models of a run as run_training builds them: the student from --model/--width, initialised from
// --seed (and --init), with its SGD; with `distill`, the frozen teacher from --teacher-weights; the
// distiller from the loss options (`dataset` picks --tse-class-weights auto).
StepModels make_run_models(const RunOptions& options, bool distill, int num_classes, const std::string& dataset,
                           Device device);
// The same with the weights from elsewhere (the train_steps golden cases: a saved state): `fill_student` is
// called on the materialized student in place of its initialisation, `fill_teacher` on the materialized
// teacher in place of reading --teacher-weights.
using ModelFill = std::function<void(models::SegModel&)>;
StepModels make_run_models(const RunOptions& options, bool distill, int num_classes, const std::string& dataset,
                           Device device, const ModelFill& fill_student, const ModelFill& fill_teacher);

// One iteration of run_training: train_step at iteration `it` with the run's learning rate and seed.
method::LossTerms run_step(StepModels& m, const RunOptions& options, int64_t it, const Tensor& images,
                           const Tensor& labels, dist::OverlappedGradReducer* grad_reducer = nullptr);

}  // namespace rdd::train
