// Golden cases: safetensors files written by the PyTorch reference scripts (scripts/make_golden_*.py),
// run by `rdd selftest --golden FILE_OR_DIR [--rtol 1e-4]`.
//
// File conventions: metadata `kind` picks the runner; inputs and expected outputs are tensors named
// `golden.*` (expected ones `golden.expected.*`). Each runner returns one GoldenOutput per expected
// output with the relative error ‖rdd − expected‖₂ / ‖expected‖₂ (the absolute ‖rdd − expected‖₂ when the
// expected output is all zero); an output passes at ≤ rtol.
//
// Kinds: `loss` (scripts/make_golden_losses.py; stage tfe|tse|none|blend: the losses of the distiller
// make_distiller builds) and `model` (scripts/make_golden_models.py; models/golden.h does the work).
// Adding a kind is one entry in golden_runners() in golden.cpp plus its runner function.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace rdd::train {

struct GoldenOutput {
  std::string name;  // "task", "grad.s_main", ...
  double error = 0;  // relative (absolute when the expected output is zero)
  bool pass = false;
};

using GoldenRunner = std::function<std::vector<GoldenOutput>(const SafetensorsFile& file, const std::string& what,
                                                             Device device, double rtol)>;
// kind → runner.
const std::map<std::string, GoldenRunner>& golden_runners();

// ‖got − expected‖₂ / ‖expected‖₂ over all elements (any devices, float dtypes; shapes must match);
// ‖got − expected‖₂ when expected is all zero. NaN in `got` gives +inf.
double golden_relative_error(const Tensor& got, const Tensor& expected);
GoldenOutput golden_compare(const std::string& name, const Tensor& got, const Tensor& expected, double rtol);

// The *.safetensors files of a directory (sorted), or the one file named.
std::vector<std::string> golden_files(const std::string& file_or_dir);

// Runs every case on the CPU and, when `gpu`, on cuda:0; prints one line per output and a summary.
// Returns 0 when every output of every case passes, 1 otherwise (a case that cannot run counts as failed).
int run_golden(const std::string& file_or_dir, double rtol, bool gpu);

// kind=loss: the losses of rdd/distill.h against scripts/make_golden_losses.py.
std::vector<GoldenOutput> run_golden_loss(const SafetensorsFile& file, const std::string& what, Device device,
                                          double rtol);
// kind=model: a model's outputs (and, in training mode, gradients and buffers) against
// scripts/make_golden_models.py.
std::vector<GoldenOutput> run_golden_model(const SafetensorsFile& file, const std::string& what, Device device,
                                           double rtol);

}  // namespace rdd::train
