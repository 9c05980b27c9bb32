// Tensor: shared storage + shape + dtype + device + layout. Contiguous only; views share storage.
//
// For 4-D tensors shape() is always the logical (N, C, H, W), whatever the memory layout; layout()
// says how the elements are ordered in memory (NCHW: w fastest; NHWC: c fastest). Tensors of any
// other rank are plain row-major and carry Layout::NCHW.
//
//   Tensor x = Tensor::empty({8, 3, 512, 1024}, DType::f32, Device::cuda(0));
//   Tensor rows = x.view({8, -1});          // same storage, new shape
//   Tensor first = x.slice(0, 2);           // images 0 and 1, same storage
//   Tensor host = x.to(Device::cpu());      // a copy
//   float* p = host.data<float>();          // checked: the dtype must be f32
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"

namespace rdd {

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "[8,3,512,1024]"

// A block of memory on one device; freed (returned to its allocator) with the last tensor using it.
class Storage {
 public:
  Storage(size_t bytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: !defined()

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
                      Layout layout = Layout::NCHW);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu(),
                      Layout layout = Layout::NCHW);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
  // Page-locked host memory: asynchronous copies to the GPU (ordinary host memory without a GPU).
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::f32);
  // A CPU tensor holding a copy of `values` (numel must match the shape).
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  Layout layout() const { return layout_; }
  bool is_pinned() const { return storage_ && storage_->pinned(); }

  void* raw() const;  // first element (storage + offset)
  template <class T>
  T* data() const {
    RDD_CHECK(dtype_of<T>() == dtype_, "tensor ", desc(), " accessed as ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw());
  }
  // Host-side element access for tests and small tools (CPU tensors only; no bounds check in release).
  template <class T>
  T& at(int64_t flat_index) const {
    RDD_CHECK(device().is_cpu(), "at<>: ", desc(), " is not on the CPU (copy it with .to(Device::cpu()) first)");
    return data<T>()[flat_index];
  }

  // Views: share storage, no copy.
  Tensor view(const Shape& shape) const;                // same numel; one dim may be -1
  Tensor slice(int64_t begin, int64_t end) const;       // rows [begin, end) of dim 0
  Tensor with_layout(Layout layout) const;              // relabel the memory order (no data movement)
  bool shares_storage(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  // Copies.
  Tensor to(Device device) const;       // a copy on `device` (a copy even when already there)
  Tensor clone() const { return to(device()); }
  void copy_from(const Tensor& src);    // same shape, dtype and layout; any pair of devices
  Tensor to_dtype(DType dtype) const;   // converted copy (CPU: every pair; CUDA: float types)
  Tensor to_layout(Layout layout) const;  // 4-D NCHW ↔ NHWC reorder (a copy)

  // Fill in place (any device).
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // Host values as a vector (copies from the GPU when needed; converts 16-bit floats to float).
  template <class T>
  std::vector<T> to_vector() const;
  double item() const;  // one-element tensors

  std::string desc() const;  // "f32[2,3,8,8] NCHW cpu"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes from the start of storage_
  Shape shape_;
  DType dtype_ = DType::f32;
  Layout layout_ = Layout::NCHW;
};

// Argument checks shared by layers and losses: the message names `who` and the tensor.
void require_dtype(const Tensor& t, DType dtype, const char* who, const char* what);
void require_layout(const Tensor& t, Layout layout, const char* who, const char* what);
void require_ndim(const Tensor& t, int ndim, const char* who, const char* what);
void require_same_device(const Tensor& a, const Tensor& b, const char* who);
// The element types the losses compute in: f32, or f64 on the CPU (their finite-difference checks).
void require_float_compute(const Tensor& t, const char* who, const char* what);

// Synchronise the device's compute stream (no-op on the CPU).
void synchronize(Device d);

}  // namespace rdd
