#include "engine/params.h"

namespace rdd {

Param* ParamStore::add(const std::string& name, const Shape& shape, DType dtype, bool trainable) {
  RDD_CHECK(!materialized_, "ParamStore: '", name, "' registered after materialize()");
  RDD_CHECK(!name.empty(), "ParamStore: empty parameter name");
  RDD_CHECK(index_.find(name) == index_.end(), "ParamStore: '", name, "' registered twice");
  for (int64_t d : shape) RDD_CHECK(d > 0, "ParamStore: '", name, "' has shape ", shape_str(shape));
  Param p;
  p.name = name;
  p.shape = shape;
  p.dtype = dtype;
  p.trainable = trainable;
  if (trainable) {
    RDD_CHECK(dtype == DType::f32, "ParamStore: parameter '", name, "' must be f32 (master weights)");
    p.offset = padded_count_;
    padded_count_ += (p.numel() + kAlignment - 1) / kAlignment * kAlignment;
  }
  index_[name] = entries_.size();
  entries_.push_back(std::move(p));
  return &entries_.back();
}

Param* ParamStore::add_parameter(const std::string& name, const Shape& shape) {
  return add(name, shape, DType::f32, true);
}

Param* ParamStore::add_buffer(const std::string& name, const Shape& shape, DType dtype) {
  return add(name, shape, dtype, false);
}

void ParamStore::materialize(Device device, bool with_grads) {
  if (materialized_ && device == device_ && with_grads == flat_grads_.defined()) return;
  Tensor values = Tensor::zeros({padded_count_}, DType::f32, device);
  Tensor grads = with_grads ? Tensor::zeros({padded_count_}, DType::f32, device) : Tensor();
  if (materialized_) values.copy_from(flat_values_.to(device));
  for (Param& p : entries_) {
    if (p.trainable) {
      p.value = values.slice(p.offset, p.offset + p.numel()).view(p.shape);
      p.grad = with_grads ? grads.slice(p.offset, p.offset + p.numel()).view(p.shape) : Tensor();
    } else {
      Tensor b = materialized_ ? p.value.to(device) : Tensor::zeros(p.shape, p.dtype, device);
      p.value = b;
    }
  }
  flat_values_ = values;
  flat_grads_ = grads;
  device_ = device;
  materialized_ = true;
}

void ParamStore::zero_grad() {
  RDD_CHECK(materialized_, "ParamStore::zero_grad before materialize()");
  RDD_CHECK(flat_grads_.defined(), "ParamStore::zero_grad: this store has no gradients (materialized for forward only)");
  flat_grads_.zero_();
}

std::vector<Param*> ParamStore::parameters() {
  std::vector<Param*> r;
  for (Param& p : entries_)
    if (p.trainable) r.push_back(&p);
  return r;
}

std::vector<Param*> ParamStore::buffers() {
  std::vector<Param*> r;
  for (Param& p : entries_)
    if (!p.trainable) r.push_back(&p);
  return r;
}

Param* ParamStore::find(const std::string& name) {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

const Param* ParamStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Param& ParamStore::at(const std::string& name) {
  Param* p = find(name);
  RDD_CHECK(p, "no parameter or buffer named '", name, "'");
  return *p;
}

int64_t ParamStore::parameter_count() const {
  int64_t n = 0;
  for (const Param& p : entries_)
    if (p.trainable) n += p.numel();
  return n;
}

std::map<std::string, Tensor> ParamStore::state_dict() const {
  RDD_CHECK(materialized_, "ParamStore::state_dict before materialize()");
  std::map<std::string, Tensor> d;
  for (const Param& p : entries_) d[p.name] = p.value;
  return d;
}

}  // namespace rdd
