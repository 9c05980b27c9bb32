// Training checkpoints: everything needed to continue a run exactly.
//
// One safetensors file (written atomically: temporary file, fsync, rename — a crash leaves the last
// good checkpoint):
//   model.<state_dict name>   every parameter and buffer of the trained model (BN running stats too)
//   optim.momentum            the SGD momentum buffer over the flat parameter array
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

namespace rdd::train {

struct CheckpointInfo {
  int64_t iteration = 0;
  std::string model;
  nlohmann::json config;                     // as saved
  std::map<std::string, std::string> extra;  // free-form metadata (e.g. "best_miou")
};

void save_checkpoint(const std::string& path, const ParamStore& model, const Sgd& optimizer, const CheckpointInfo& info);

// The checkpoint's info alone (its header; no tensors read): to refuse a mismatched resume early.
CheckpointInfo read_checkpoint_info(const std::string& path);

// Restores model (strict: every tensor must match) and optimizer state; returns the info. Throws
// naming the file and the problem (not a checkpoint, another model, a missing tensor...).
CheckpointInfo load_checkpoint(const std::string& path, ParamStore& model, Sgd& optimizer);

// The keys of two run configurations that differ, ignoring `ignored` keys (e.g. "resume",
// "max_iters" is NOT ignored: a resumed run must keep its schedule). "key: saved X, now Y" lines.
std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                            const std::vector<std::string>& ignored);

}  // namespace rdd::train
