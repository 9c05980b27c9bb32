// `rdd bench --model`: throughput of a model's forward, a training step, or a distillation step, split
// into phases (teacher forward, student forward, losses, backward, optimizer), with the achieved
// GFLOP/s from the model's multiply-add count. Timing waits for the device at every phase boundary,
// so phases add up to the step (this costs a little overlap; the per-step number is the honest one
// for the loop as it runs). With `ops`, a second set of timed iterations runs with the op profile on
// (engine/op_profile.h) and prints the time, GFLOP/s and GB/s of each kind of operation; with `layers`,
// another round does the same per named layer (conv and batch-norm modules), slowest first.
#pragma once

#include <cstdint>
#include <string>

namespace rdd::apps {

struct ModelBenchOptions {
  std::string model = "deeplabv3_resnet18";
  double width = 1.0;
  std::string teacher;            // set: a distillation step (KD + RDD-TSE terms)
  double teacher_width = 1.0;
  std::string mode = "train";     // forward | train | distill
  int num_classes = 19;
  int batch = 8;
  int height = 512, width_px = 1024;
  int iterations = 20, warmup = 3;
  std::string device = "auto";
  uint64_t seed = 1;
  bool ops = false;               // also print the per-op table (bench --ops)
  bool tf32 = false;              // f32 convolutions on TF32 tensor cores (bench --tf32)
  bool layers = false;            // also print the per-layer table (bench --layers)
  int top_layers = 25;            // rows of that table
  bool fold_bn = false;           // --mode forward: also time the BN-folded forward (bench --fold-bn)
};

// Prints a table (phase, ms per step, share) and img/s, GFLOP/s; returns 0.
int run_model_bench(const ModelBenchOptions& o);

}  // namespace rdd::apps
