// `rdd selftest`: run every component's checks here (CPU, and GPU when present) and print a table.
#include <cstdio>

#include "apps/commands.h"
#include "train/golden.h"
#include "apps/cmd_selftest.h"
#include "engine/device.h"
#include "engine/error.h"

namespace rdd::apps {

std::vector<std::pair<std::string, CheckGroup>> selftest_groups() {
  return {{"engine", selftest_engine}, {"layers-ops", selftest_layers_ops},
          {"layers-conv-bn", selftest_layers_conv_bn}, {"rdd", selftest_rdd},
          {"models", selftest_models}};
}

namespace {
struct Args {
  std::string only;
  bool cpu_only = false;
  uint64_t seed = 1;
  std::string golden;  // run these golden cases instead of the component checks
  double rtol = 1e-4;
  double envelope_factor = 3;
};

int run_selftest(const Args& a) {
  if (!a.golden.empty()) return train::run_golden(a.golden, a.rtol, has_gpu() && !a.cpu_only, a.envelope_factor);
  SelftestOptions o;
  o.gpu = has_gpu() && !a.cpu_only;
  o.seed = a.seed;
  if (!has_gpu()) std::printf("no GPU (%s): CPU checks only\n", no_gpu_reason().c_str());
  std::printf("%-12s %-44s %-7s %11s %10s  %s\n", "component", "check", "device", "max error", "tolerance", "result");
  int failed = 0, total = 0;
  bool matched = false;
  for (auto& [name, group] : selftest_groups()) {
    if (!a.only.empty() && a.only != name) continue;
    matched = true;
    std::vector<CheckRow> rows;
    try {
      rows = group(o);
    } catch (const std::exception& e) {
      rows.push_back({name, "(group aborted)", "-", 0, 0, false, e.what()});
    }
    for (const CheckRow& r : rows) {
      ++total;
      if (!r.pass) ++failed;
      std::printf("%-12s %-44s %-7s %11.3g %10.3g  %s\n", r.component.c_str(), r.check.c_str(), r.device.c_str(),
                  r.max_error, r.tolerance, r.pass ? "pass" : "FAIL");
      if (!r.pass && !r.detail.empty()) std::printf("    %s\n", r.detail.c_str());
    }
  }
  RDD_CHECK(matched, "selftest: no component named '", a.only, "'");
  std::printf("%d passed, %d failed\n", total - failed, failed);
  return failed == 0 ? 0 : 1;
}
}  // namespace

Command add_selftest_command(CLI::App& app) {
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("selftest",
                                     "Run the correctness checks of every component here (CPU, and GPU when "
                                     "present) and print a table; exits 1 when any check fails");
  sub->add_option("--only", args->only, "Run one component's checks (e.g. engine)");
  sub->add_flag("--cpu-only", args->cpu_only, "Skip the GPU checks even when a GPU is present");
  sub->add_option("--seed", args->seed, "Seed for the random inputs")->capture_default_str();
  sub->add_option("--golden", args->golden,
                  "Run the golden cases in FILE_OR_DIR (safetensors from scripts/make_golden_*.py) instead of "
                  "the component checks; exits 1 when any output's error exceeds its limit");
  sub->add_option("--rtol", args->rtol,
                  "Relative error allowed by --golden (or envelope-factor × the case's float32 envelope on the "
                  "output, when larger; train_steps cases have fixed limits of their own)")
      ->capture_default_str();
  sub->add_option("--envelope-factor", args->envelope_factor,
                  "--golden: an output may be this many times the reference's own float32 error on it "
                  "(golden.f32_err.*); 0: --rtol alone")
      ->capture_default_str();
  return {sub, [args] { return run_selftest(*args); }};
}

}  // namespace rdd::apps
