// `rdd selftest`: the correctness checks of each component, run on the machine at hand, printed as a
// table (component, check, device, max error, tolerance, pass/fail). Each component contributes a
// group in apps/cmd_selftest_<component>.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace rdd::apps {

struct CheckRow {
  std::string component;  // "engine", "conv2d", ...
  std::string check;      // "philox KAT", "forward vs CPU", "dL/dx finite differences", ...
  std::string device;     // "cpu", "cuda:0"
  double max_error = 0;   // the measured error (0 for exact checks)
  double tolerance = 0;
  bool pass = false;
  std::string detail;     // shown when the check fails
};

struct SelftestOptions {
  bool gpu = false;       // run the GPU checks too
  uint64_t seed = 1;
};

using CheckGroup = std::function<std::vector<CheckRow>(const SelftestOptions&)>;

// The groups, in the order they run.
std::vector<std::pair<std::string, CheckGroup>> selftest_groups();

// Component groups (one per apps/cmd_selftest_<component>.cpp).
std::vector<CheckRow> selftest_engine(const SelftestOptions& o);
std::vector<CheckRow> selftest_layers_conv_bn(const SelftestOptions& o);
std::vector<CheckRow> selftest_layers_ops(const SelftestOptions& o);
std::vector<CheckRow> selftest_rdd(const SelftestOptions& o);
std::vector<CheckRow> selftest_models(const SelftestOptions& o);

}  // namespace rdd::apps
