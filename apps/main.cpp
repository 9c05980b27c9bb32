// rdd — the one binary: train, distill, eval, predict, bench, synth, info, selftest.
//
// Each subcommand lives in its own apps/cmd_<name>.cpp and registers itself here. This file only
// builds the command line, runs the chosen command and turns errors into a message and an exit code.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "apps/commands.h"
#include "engine/blas_setup.h"
#include "engine/error.h"

int main(int argc, char** argv) {
  rdd::use_fast_openblas_kernels(argc, argv);  // may restart the process once (see blas_setup.h)
  CLI::App app{
      "rdd — semantic-segmentation knowledge distillation on CUDA/cuDNN, no framework.\n"
      "Trains DeepLabV3/PSPNet teachers and students and distills them with Relative Difficulty\n"
      "Distillation (RDD). Runs on the GPU when there is one, on the CPU otherwise.",
      "rdd"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("rdd ") + RDD_VERSION);
  app.footer("Run `rdd <command> --help` for the options of a command.");

  rdd::apps::CommandTable commands;
  rdd::apps::register_commands(app, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const rdd::Error& e) {
    std::fprintf(stderr, "rdd: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rdd: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
