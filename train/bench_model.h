// `rdd bench --model`: throughput of a model's forward, a training step, or a distillation step (the
// trainer's train_step), split into phases (student forward, teacher forward, losses, backward,
// optimizer), with the achieved
// GFLOP/s from the model's multiply-add count. Timing waits for the device at every phase boundary,
// so phases add up to the step (this costs a little overlap; the per-step number is the honest one
// for the loop as it runs). With `ops`, a second set of timed iterations runs with the op profile on
// (engine/op_profile.h) and prints the time, GFLOP/s and GB/s of each kind of operation; with `layers`,
// another round does the same per named layer (conv and batch-norm modules), slowest first. With `fold_bn`
// (--mode forward), the exported graph's forward is timed beside the eval forward, BN kept and folded.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/tensor.h"
#include "models/seg_model.h"
#include "train/run_options.h"
#include "train/train_step.h"

namespace rdd::train {

struct ModelBenchOptions {
  ModelChoice model;
  ModelChoice teacher{.name = {}};  // set: a distillation step (KD + RDD-TSE terms)
  std::string mode = "train";     // forward | train | distill
  int num_classes = 19;
  int batch = 8;
  int height = 512, width_px = 1024;
  int iterations = 20, warmup = 2;
  std::string device = "auto";
  uint64_t seed = 1;
  bool ops = false;               // also print the per-op table (bench --ops)
  bool tf32 = false;              // f32 convolutions on TF32 tensor cores (bench --tf32)
  bool layers = false;            // also print the per-layer table (bench --layers)
  int top_layers = 25;            // rows of that table
  bool fold_bn = false;           // --mode forward: also time the BN-folded forward (bench --fold-bn)
  // --mode distill: comparison KD methods added to the step (their weights and hyper-parameters; the
  // task and KD fields are the bench's own: TSE + KD λ 1). Each term is a row of --ops ("loss: AT", ...).
  LossOptions methods = {};
};

// Milliseconds per forward of the exported (main-head) graph of `model` on `images` (N, 3, H, W), BN folded or
// kept, the mean of `iterations` runs after `warmup`. train/ does not see deploy/ (dependencies point one
// way): apps/ hands in deploy's GraphExecutor timed (apps/bench_folded.h).
using GraphForwardTimer = std::function<double(const models::SegModel& model, const Tensor& images, bool fold_bn,
                                               int warmup, int iterations)>;

// Prints a table (phase, ms per step, share) and img/s, GFLOP/s; returns 0. `time_graph_forward` is
// needed with o.fold_bn only.
int run_model_bench(const ModelBenchOptions& o, const GraphForwardTimer& time_graph_forward = {});

// What a benchmarked step works on, as `rdd distill` would build it but with random weights (the student
// from `seed`, the teacher from seed + 1): for --mode distill the TSE stage (its two OHEM selections per
// head pair make it RDD's dearest step) + logit KD (λ 1, T 1) + the methods of o.methods, for --mode
// train the task CE alone.
StepModels make_bench_models(const ModelBenchOptions& o, Device device);
// One benchmarked step: train_step at iteration i of `total` with learning rate 0.01.
method::LossTerms bench_step(StepModels& m, const ModelBenchOptions& o, int i, int total, const Tensor& images,
                             const Tensor& labels, const PhaseHook& phase_done = {});

}  // namespace rdd::train
