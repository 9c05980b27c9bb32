#include "apps/commands.h"

#include <cstdio>

namespace rdd::apps {

Command add_planned_command(CLI::App& app, const char* name, const char* description) {
  CLI::App* sub = app.add_subcommand(name, std::string(description) + " (not implemented yet)");
  sub->allow_extras();
  return {sub, [name] {
    std::fprintf(stderr, "rdd %s: not implemented yet in this build\n", name);
    return 2;
  }};
}

void register_commands(CLI::App& app, CommandTable& table) {
  auto add = [&](Command c) { table.push_back(std::move(c)); };
  add(add_planned_command(app, "train", "Train a model with supervision (teachers, baselines)"));
  add(add_planned_command(app, "distill", "Distill a student from a frozen teacher (KD, RDD, CWD)"));
  add(add_planned_command(app, "eval", "Evaluate a model: mIoU, pixel accuracy, per-class IoU"));
  add(add_planned_command(app, "predict", "Write colourised prediction PNGs for images"));
  add(add_planned_command(app, "bench", "Measure throughput: layers, models, training steps, the data loader"));
  add(add_planned_command(app, "synth", "Generate synthetic street scenes in the Cityscapes layout"));
  add(add_info_command(app));
  add(add_selftest_command(app));
}

}  // namespace rdd::apps
