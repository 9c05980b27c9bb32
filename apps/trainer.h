// The training loop behind `rdd train` (supervised: teachers and baselines) and `rdd distill` (a frozen
// teacher + KD / RDD / CWD terms). One iteration:
//
//   batch  = loader.next()                          images (N, 3, H, W) f32, labels (N, H, W) i32
//   lr     = poly_lr(base, it, iters, 0.9)
//   s      = student.forward(images)                 main/aux logits at stride 8 (train mode)
//   t      = teacher.forward(images)                 (distill only; eval mode, nothing cached)
//   terms  = distiller.compute(it, s, t, labels, g)  loss terms + d loss / d student outputs
//   student.backward(g.main, g.aux, g.feature)       into the flat gradient buffer
//   sgd.step(lr)                                      one fused pass over the flat buffers
//
// Outputs in --out: config.json (the resolved configuration), metrics.jsonl (one record per iteration
// and per validation), checkpoint.safetensors (everything needed to resume exactly, written
// atomically every --save-every iterations), weights.safetensors (final weights), best.safetensors
// (best validation mIoU, when validating during training) and eval.json (the final evaluation).
#pragma once

#include <string>

#include "apps/run_options.h"
#include "dist/communicator.h"
#include "engine/device.h"

namespace rdd::apps {

// "auto" → the GPU when present (else the CPU, said once), "cpu", "cuda", "cuda:N". Refuses a GPU
// request on a machine without one, naming the reason.
Device resolve_device(const std::string& spec);

struct TrainResult {
  double final_miou = 0;  // on the validation split
  double best_miou = 0;
  int64_t iterations = 0;
  double images_per_second = 0;
  bool finished = true;   // false when --stop-after ended the run early (no final evaluation)
};

// Data parallelism: `comm` null (or one that is not data_parallel()) is the single-process run. With N
// ranks (or NCCL with one: `--gpus 1`), each rank runs this on its own device with batch/N images; the
// student's BN is synchronised (SyncBN), gradients
// are averaged over ranks in buckets of the flat buffer, validation confusion matrices are summed, and
// only rank 0 writes files or prints progress. `device` overrides options.device (workers use the GPU
// the launcher gave them).
TrainResult run_training(const RunOptions& options, bool distill, dist::Communicator* comm = nullptr,
                         const std::string& device_override = "");

}  // namespace rdd::apps
