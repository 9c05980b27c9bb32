// The flags of `rdd train` and (with distill = true) the teacher/KD/RDD flags of `rdd distill`, bound to
// the fields of train::RunOptions (train/run_options.h says what each is).
//
// Every flag can also come from a config file (`--config FILE`, CLI11's INI/TOML format:
// `model = "deeplabv3_resnet18"`, `lr = 0.02`, ...); flags given on the command line win. configs/
// holds presets that reproduce the published recipes.
#pragma once

#include <CLI/CLI.hpp>

#include "train/run_options.h"

namespace rdd::apps {

void add_run_flags(CLI::App* sub, train::RunOptions& o, bool distill);

}  // namespace rdd::apps
