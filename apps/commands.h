// The subcommands of the `rdd` binary. Each apps/cmd_<name>.cpp defines one add_<name>_command that
// adds its CLI11 subcommand and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <utility>
#include <vector>

namespace rdd::apps {

using RunFn = std::function<int()>;
using Command = std::pair<CLI::App*, RunFn>;  // the parsed subcommand and what runs it
using CommandTable = std::vector<Command>;

Command add_info_command(CLI::App& app);
Command add_selftest_command(CLI::App& app);
Command add_synth_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_distill_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_export_command(CLI::App& app);

void register_commands(CLI::App& app, CommandTable& table);

}  // namespace rdd::apps
