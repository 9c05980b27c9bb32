// Runs scripts/torch_parity_ops.py on cases written by a test and returns PyTorch's answers (shared
// by test_activation.cpp, test_pooling.cpp and test_dropout.cpp; see the script for the case format).
#pragma once

#include <map>
#include <string>

#include "engine/safetensors.h"
#include "harness.h"

namespace rdd::test {

struct TorchCases {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
  void add(const std::string& name, const std::string& spec) {
    const std::string list = metadata["cases"];
    metadata["cases"] = list.empty() ? name : list + "," + name;
    metadata["case." + name] = spec;
  }
};

// The script's output tensors; fails the test (and returns an empty map) when the script fails.
inline std::map<std::string, Tensor> run_torch_parity_ops(const TorchCases& cases, const std::string& tag) {
  const std::string dir = temp_dir(tag);
  const std::string in = dir + "/in.safetensors", out = dir + "/out.safetensors";
  write_safetensors(in, cases.tensors, cases.metadata);
  std::string log;
  const int rc =
      run_command(python() + " " + source_path("scripts/torch_parity_ops.py") + " " + in + " " + out, &log);
  INFO("torch_parity_ops.py: " << log);
  CHECK(rc == 0);
  if (rc != 0) return {};
  return read_safetensors(out).tensors;
}

}  // namespace rdd::test
