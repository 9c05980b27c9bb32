// --device: which device a run, an evaluation or a benchmark uses.
#pragma once

#include <string>

#include "engine/device.h"

namespace rdd::train {

// "auto" → the GPU when present (else the CPU, said once), "cpu", "cuda", "cuda:N". Refuses a GPU
// request on a machine without one, naming the reason.
Device resolve_device(const std::string& spec);

}  // namespace rdd::train
