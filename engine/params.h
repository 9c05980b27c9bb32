// The parameter registry: every model registers its parameters and buffers by name at construction,
// then materialize() lays all parameters out in ONE flat f32 buffer (and one flat gradient buffer) on
// a device, and points each Param's value/grad at its slice.
//
// Why flat: all-reduce buckets, the SGD update, gradient clipping and checkpoints become loops over
// ranges of one array instead of walks over hundreds of small tensors.
//
//   ParamStore store;
//   Param* w = store.add_parameter("backbone.conv1.0.weight", {64, 3, 3, 3});
//   Param* rm = store.add_buffer("backbone.bn1.running_mean", {64});
//   store.materialize(Device::cuda(0));   // now w->value and w->grad are views
//
// Names are the reference PyTorch state_dict keys, so weight files move between the two by name.
// Each parameter starts at a multiple of 64 elements (256 bytes) so vectorised kernels and cuDNN get
// aligned pointers; the padding is zero and is not counted by parameter_count().
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace rdd {

struct Param {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;  // parameters are f32 (master weights); buffers any dtype (f32 stats, i64 counters)
  bool trainable = true;     // parameter (flat value + grad) or buffer (running statistics, counters)
  int64_t offset = -1;       // parameters: element offset in the flat buffers
  Tensor value;              // valid after materialize()
  Tensor grad;               // parameters only
  int64_t numel() const { return shape_numel(shape); }
};

class ParamStore {
 public:
  static constexpr int64_t kAlignment = 64;  // elements

  ParamStore() = default;
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // Registration (before materialize). Names must be unique. The returned pointer stays valid for
  // the store's lifetime.
  Param* add_parameter(const std::string& name, const Shape& shape);
  Param* add_buffer(const std::string& name, const Shape& shape, DType dtype = DType::f32);

  // Allocate the flat buffers on `device` (values and grads zeroed, buffers zeroed) — or, when already
  // materialized, move everything to `device`, keeping values and buffers (gradients start at zero
  // again). Registering after this is an error. with_grads = false: no gradient buffer (Param::grad and
  // flat_grads() stay undefined) — for models that only run forward (a frozen teacher, eval, predict:
  // 4 bytes per parameter saved, 240 MB for a ResNet-101 teacher).
  void materialize(Device device, bool with_grads = true);
  bool materialized() const { return materialized_; }
  Device device() const { return device_; }

  Tensor flat_values() const { return flat_values_; }  // f32 [padded_count]
  Tensor flat_grads() const { return flat_grads_; }    // f32 [padded_count]
  void zero_grad();

  const std::deque<Param>& entries() const { return entries_; }  // registration order
  std::vector<Param*> parameters();                             // trainable only
  std::vector<Param*> buffers();
  Param* find(const std::string& name);                         // nullptr when absent
  const Param* find(const std::string& name) const;
  Param& at(const std::string& name);                           // throws naming the missing key

  int64_t parameter_count() const;  // Σ numel of trainable parameters (no padding)
  int64_t padded_count() const { return padded_count_; }

  // name → value for every parameter and buffer (views, not copies).
  std::map<std::string, Tensor> state_dict() const;

 private:
  Param* add(const std::string& name, const Shape& shape, DType dtype, bool trainable);
  std::deque<Param> entries_;  // deque: pointers stay valid as entries are added
  std::map<std::string, size_t> index_;
  bool materialized_ = false;
  Device device_;
  int64_t padded_count_ = 0;
  Tensor flat_values_, flat_grads_;
};

}  // namespace rdd
