// Golden cases: safetensors files written by the PyTorch reference scripts (scripts/make_golden_*.py),
// run by `rdd selftest --golden FILE_OR_DIR [--rtol 1e-4]`.
//
// File conventions: metadata `kind` picks the runner; inputs and expected outputs are tensors named
// `golden.*` (expected ones `golden.expected.*`). Each runner returns one GoldenOutput per expected
// output with its error: the relative error ‖rdd − expected‖₂ / ‖expected‖₂ (the absolute ‖rdd − expected‖₂
// when the expected output is all zero; against a floor scaled by the whole group's norm where a runner
// measures a tensor within a group: models::golden_error).
//
// The rule (models::golden_limit): an output passes at ≤ rtol, or, where the case carries the reference's
// own float32 error envelope on it (golden.f32_err.<output>), at ≤ max(3·envelope, rtol). A runner that
// judges by fixed limits of its own (kind=train_steps) sets GoldenOutput::tolerance. run_golden prints
// the error, the envelope and the limit of every output.
//
// Kinds: `loss` (scripts/make_golden_losses.py; stage tfe|tse|none|blend: the losses of the distiller
// make_distiller builds), `model` (scripts/make_golden_models.py; models/golden.h does the work) and
// `train_steps` (scripts/make_golden_train_steps.py; k iterations of the trainer's step,
// golden_train_steps.cpp). Adding a kind is one entry in golden_runners() in golden.cpp plus its runner
// function.
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
  std::string name;      // "task", "grad.s_main", ...
  double error = 0;      // relative (absolute when the expected output is zero)
  bool pass = false;     // the runner's verdict; run_golden re-judges outputs with tolerance 0 by the rule
  double tolerance = 0;  // a fixed limit set by the runner; 0: the rule (rtol and the case's envelope)
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

// Runs every case on the CPU and, when `gpu`, on cuda:0; prints one line per output (error, the case's
// float32 envelope on it, the limit), one line per case and device (its worst error/limit and
// error/envelope) and a summary. `envelope_factor` is the rule's 3 (0: rtol alone, the envelope ignored).
// Returns 0 when every output of every case passes, 1 otherwise (a case that cannot run counts as failed).
int run_golden(const std::string& file_or_dir, double rtol, bool gpu, double envelope_factor = 3.0);

// Reading a case: metadata and tensors, with messages that name the file.
struct CaseReader {
  const SafetensorsFile& f;
  const std::string& what;

  std::string meta(const std::string& key) const;
  double number(const std::string& key) const;  // metadata that must parse as a number
  bool has(const std::string& name) const { return f.tensors.count(name) > 0; }
  Tensor tensor(const std::string& name, Device d) const;
  Tensor optional(const std::string& name, Device d) const { return has(name) ? tensor(name, d) : Tensor(); }
};

// kind=loss: the losses of rdd/distill.h against scripts/make_golden_losses.py.
std::vector<GoldenOutput> run_golden_loss(const SafetensorsFile& file, const std::string& what, Device device,
                                          double rtol);
// kind=model: a model's outputs (and, in training mode, gradients and buffers) against
// scripts/make_golden_models.py.
std::vector<GoldenOutput> run_golden_model(const SafetensorsFile& file, const std::string& what, Device device,
                                           double rtol);
// kind=train_steps: `steps` iterations of train_step (train/train_step.h) from a saved student and teacher
// against scripts/make_golden_train_steps.py; fixed limits per output (golden_train_steps.cpp), rtol unused.
std::vector<GoldenOutput> run_golden_train_steps(const SafetensorsFile& file, const std::string& what, Device device,
                                                 double rtol);

}  // namespace rdd::train
