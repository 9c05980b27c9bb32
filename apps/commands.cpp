#include "apps/commands.h"

namespace rdd::apps {

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
