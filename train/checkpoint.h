// Training checkpoints: everything needed to continue a run exactly.
//
// One safetensors file (written atomically: temporary file, fsync, rename — a crash leaves the last
// good checkpoint):
//   model.<state_dict name>   every parameter and buffer of the trained model (BN running stats too)
//   optim.momentum            the SGD momentum buffer over the flat parameter array
//   distill.<name>            the distillation terms' parameters and buffers (adapters, projection
//                             heads, memory queues and their pointers), when the run has any
//   optim.distill_momentum    the SGD momentum over those parameters
//   distill_state.<name>      the terms' other state (the discriminator's own optimizer)
//   metadata: kind=checkpoint, rdd_version, model, iteration (completed iterations), config (the
//             resolved run configuration as JSON), and free-form extras (best mIoU, ...)
// The loader's position is the iteration itself (one batch per iteration per rank) and every random
// stream is keyed by (seed, iteration), so nothing else is needed to resume exactly.
//
// A resume must come from the same run configuration: the keys that define the run (model, data,
// schedule, losses, seed ...) are compared and any difference is refused by name. The world size is
// not one of them: a run may resume on any number of GPUs that divides the global batch. Rank r takes
// positions r, r + world, ... of each epoch, so a global batch holds the same samples whatever the
// world size when the dataset size is a multiple of it; their split over ranks (SyncBN's rounding) differs.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/sgd.h"
#include "rdd/distill.h"

namespace rdd::train {

struct CheckpointInfo {
  int64_t iteration = 0;
  std::string model;
  nlohmann::json config;                     // as saved
  std::map<std::string, std::string> extra;  // free-form metadata (e.g. "best_miou")
};

// The distillation terms' part of a checkpoint (null members: none).
struct DistillCheckpoint {
  method::Distiller* distiller = nullptr;
  Sgd* sgd = nullptr;  // over distiller->params(), when it has parameters
};

void save_checkpoint(const std::string& path, const ParamStore& model, const Sgd& optimizer, const CheckpointInfo& info,
                     const DistillCheckpoint& distill = {});

// The checkpoint's info alone (its header; no tensors read): to refuse a mismatched resume early.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Restores model (strict: every tensor must match) and optimizer state, and the distillation terms'
// state (strict too); returns the info. Throws naming the file and the problem (not a checkpoint,
// another model, a missing tensor...).
CheckpointInfo load_checkpoint(const std::string& path, ParamStore& model, Sgd& optimizer,
                               const DistillCheckpoint& distill = {});

// The keys of two run configurations that differ, ignoring `ignored` keys (e.g. "resume",
// "max_iters" is NOT ignored: a resumed run must keep its schedule). "key: saved X, now Y" lines.
std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            const std::vector<std::string>& ignored);

}  // namespace rdd::train
