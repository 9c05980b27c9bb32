// `rdd synth`: synthetic street scenes in the Cityscapes layout (leftImg8bit/ + gtFine/ labelIds).
#include <chrono>
#include <cstdio>

#include "apps/commands.h"
#include "apps/flags.h"
#include "data/synth.h"
#include "engine/thread_pool.h"

namespace rdd::apps {

namespace {
int run_synth(const data::SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const data::SynthSummary s = data::write_synthetic_cityscapes(o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("synth: wrote %d train + %d val scenes of %dx%d to %s (%.1f MiB, %.2f s, %d threads)\n", s.train, s.val,
              o.height, o.width, o.out.c_str(), double(s.bytes) / (1 << 20), secs, cpu_threads());
  std::printf("synth: use it with --dataset cityscapes --data-root %s\n", o.out.c_str());
  return 0;
}
}  // namespace

Command add_synth_command(CLI::App& app) {
  auto a = std::make_shared<data::SynthOptions>();
  CLI::App* sub = app.add_subcommand("synth", "Generate synthetic street scenes in the Cityscapes layout");
  sub->add_option("--out", a->out, "Output dataset folder (leftImg8bit/ and gtFine/ are created)")->required();
  sub->add_option("--train", a->train, "Number of training scenes")->capture_default_str();
  sub->add_option("--val", a->val, "Number of validation scenes")->capture_default_str();
  add_hw_option(sub, "--size", a->height, a->width, "Image size HxW");
  sub->add_option("--seed", a->seed, "Seed: the same seed gives the same files")->capture_default_str();
  return {sub, [a] { return run_synth(*a); }};
}

}  // namespace rdd::apps
