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
  add(add_train_command(app));
  add(add_distill_command(app));
  add(add_eval_command(app));
  add(add_predict_command(app));
  add(add_export_command(app));
  add(add_bench_command(app));
  add(add_synth_command(app));
  add(add_info_command(app));
  add(add_selftest_command(app));
}

}  // namespace rdd::apps
