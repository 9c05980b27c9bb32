// Model golden cases: a safetensors file written by scripts/make_golden_models.py (weights under their
// state_dict names + golden.* tensors, metadata kind=model, model, num_classes, width, mode), run
// through rdd's model and compared output by output.
//
//   SafetensorsFile f = read_safetensors(path);            // the caller opens the file
//   std::vector<GoldenCheck> checks = run_model_golden(f, Device::cpu());
//
// Each check is the error of one output (golden_error, judged by golden_limit): main, aux and feature
// logits; in training mode (dropout off, BN on batch statistics) also every parameter gradient (against
// the whole gradient's norm where its own is ~0) and every buffer after the step (running statistics,
// num_batches_tracked).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/safetensors.h"

namespace rdd::models {

struct GoldenCheck {
  std::string what;        // "main", "grad.pretrained.conv1.weight", "buffer.pretrained.bn1.running_mean", ...
  double rel_error = 0;    // golden_error (gradients against the whole gradient's norm)
  double envelope = NAN;   // the reference's float32 envelope (golden.f32_err.<what>), NaN when absent
  double tolerance = 0;    // golden_limit(tolerance given, envelope)
  bool pass = false;
  std::string detail;      // shapes on a mismatch
};

// ‖got − want‖ / max(‖want‖, tiny), both read as double (any devices).
double relative_error(const Tensor& got, const Tensor& want);

// The golden rule for outputs whose reference is float64 arithmetic on float32 inputs. Relative error
// ≤ 1e-4 is not reachable everywhere even by the reference itself in float32 (ReLU inputs within rounding
// of 0 flip masks; BN over a few values per channel cancels; some gradients are structurally zero), so:
//   - a tensor's error is ‖got − want‖ / max(‖want‖, kGoldenFloor·‖its group‖), the group being e.g. all
//     of a model's parameter gradients: a tensor whose reference is ~0 is measured against the scale of
//     the whole (golden_error);
//   - where the case carries the reference's own float32 error envelope on an output
//     (golden.f32_err.<output>: the largest error, measured the same way, of several float32 runs of the
//     reference against its float64 run), the output passes within max(factor·envelope, rtol)
//     (golden_limit; factor 3); without one, within rtol.
constexpr double kGoldenFloor = 1e-4;
double golden_error(const Tensor& got, const Tensor& want, double group_norm);
double golden_limit(double rtol, double envelope, double factor = 3.0);  // envelope NaN: none
// golden.f32_err.<output> of the case, NaN when it has none.
double golden_envelope(const SafetensorsFile& file, const std::string& output);
// ‖t‖₂ over several tensors (read as double).
double golden_group_norm(const std::vector<Tensor>& tensors);

std::vector<GoldenCheck> run_model_golden(const SafetensorsFile& file, Device device, double tolerance = 1e-4,
                                          const std::string& what = "golden case");

}  // namespace rdd::models
