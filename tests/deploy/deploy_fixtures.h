// Models for the deploy tests: small, with BatchNorm parameters and running statistics that are not the
// initial 1/0/0/1 (folding a BN that does nothing would prove nothing).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.h"

#include "engine/rng.h"
#include "harness.h"
#include "models/seg_model.h"
#include "models/weights_io.h"

namespace rdd::test {

// Every BN "<p>.running_mean" gets weight U(0.5, 1.5), bias U(−0.3, 0.3), running_mean U(−0.3, 0.3),
// running_var U(0.5, 2), from Philox(seed).
inline void randomize_batchnorms(models::SegModel& model, uint64_t seed) {
  uint64_t offset = 1000;
  const std::string tail = ".running_mean";
  for (const Param& p : model.params().entries()) {
    if (p.name.size() <= tail.size() || p.name.compare(p.name.size() - tail.size(), tail.size(), tail) != 0) continue;
    const std::string bn = p.name.substr(0, p.name.size() - tail.size());
    auto fill = [&](const std::string& suffix, double lo, double hi) {
      Tensor& t = model.params().at(bn + suffix).value;
      fill_uniform(t, lo, hi, seed, offset++);
    };
    fill(".weight", 0.5, 1.5);
    fill(".bias", -0.3, 0.3);
    fill(".running_mean", -0.3, 0.3);
    fill(".running_var", 0.5, 2.0);
  }
}

// A model on the CPU in eval mode: reference initialisation from `seed`, then randomized BNs.
inline std::unique_ptr<models::SegModel> deploy_test_model(const std::string& name, double width, int classes,
                                                           uint64_t seed) {
  auto m = models::build_model(name, {classes, width});
  m->params().materialize(Device::cpu(), /*with_grads=*/false);
  m->init_weights(seed);
  randomize_batchnorms(*m, seed + 1);
  m->set_mode(layers::Mode::eval);
  return m;
}

// Parses `args` (without the program name) like main() does and runs the chosen command in-process.
inline int run_rdd(std::vector<std::string> args) {
  CLI::App app{"rdd test", "rdd"};
  app.require_subcommand(1);
  apps::CommandTable commands;
  apps::register_commands(app, commands);
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last-first
  app.parse(args);
  for (auto& [sub, run] : commands)
    if (sub->parsed()) return run();
  return -1;
}

// Saves the model's weights as `rdd train` does (with its metadata) and returns the path.
inline std::string save_test_weights(const models::SegModel& m, const std::string& path) {
  models::save_weights(m.params(), path,
                       {{"kind", "weights"},
                        {"model", m.name()},
                        {"num_classes", std::to_string(m.options().num_classes)},
                        {"width", std::to_string(m.options().width)}});
  return path;
}

}  // namespace rdd::test
