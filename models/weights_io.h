// Model weights as safetensors, by the reference's state_dict names.
//
//   save_weights(model.params(), "r18.safetensors", {{"model", "deeplabv3_resnet18"}});
//   WeightsReport r = load_weights(model.params(), "r18.safetensors");            // strict
//   WeightsReport r = load_weights(model.params(), file.tensors, /*strict=*/false, "ckpt");
//
// Every parameter and buffer (running statistics, num_batches_tracked as i64) is written. Loading
// matches by name: a tensor the model lacks is "unexpected", a model entry the file lacks is
// "missing", one whose shape (or kind: float vs integer) differs is "mismatched". Strict loading
// (the default) refuses the file when any of the three lists is non-empty, with a message that
// names them; non-strict loading copies what matches and returns the lists of what it skipped.
// Floating tensors convert between float dtypes (F16/BF16/F64 → f32), integers between integer dtypes;
// a 0-d tensor and a one-element 1-d tensor count as the same shape (PyTorch's num_batches_tracked).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/tensor.h"

namespace rdd::models {

struct WeightsReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the model, not in the file
  std::vector<std::string> unexpected;  // in the file, not in the model
  std::vector<std::string> mismatched;  // "name: file f32[64,3,3,3], model f32[64,3,7,7]"
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;          // "loaded 245 tensors; missing 1: a.b; ..."
};

// `what` names the source in messages. Tensors named in `ignore_prefixes` (e.g. "golden.") are neither
// loaded nor reported as unexpected.
WeightsReport load_weights(ParamStore& store, const std::map<std::string, Tensor>& tensors, bool strict = true,
                           const std::string& what = "weights", const std::vector<std::string>& ignore_prefixes = {});
WeightsReport load_weights(ParamStore& store, const std::string& path, bool strict = true);

// All parameters and buffers, by name (host copies made by the writer).
void save_weights(const ParamStore& store, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace rdd::models
