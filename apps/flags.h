// Flags that several subcommands share, each declared once here.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "dist/launcher.h"

namespace rdd::apps {

// --gpus, --nnodes, --node-rank, --master-addr, --master-port, --rendezvous-timeout, --nccl-timeout
// (train, distill, eval).
void add_launch_flags(CLI::App& command, dist::LaunchOptions& launch);
// Refuses a --device other than auto together with --gpus: each worker uses its own GPU.
void check_no_device_with_gpus(const std::string& device);

}  // namespace rdd::apps
