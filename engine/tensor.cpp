#include "engine/tensor.h"

#include <cstring>
#include <sstream>

#include "engine/allocator.h"

#if RDD_WITH_CUDA
#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#include "engine/tensor_cuda.h"
#endif

namespace rdd {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << ']';
  return os.str();
}

Storage::Storage(size_t bytes, Device device, bool pinned)
    : data_(device_allocate(device, bytes, pinned)), bytes_(bytes), device_(device), pinned_(pinned) {}

Storage::~Storage() { device_free(device_, data_, pinned_); }

// ---------------------------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, Layout layout) {
  for (int64_t d : shape) RDD_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
  RDD_CHECK(layout == Layout::NCHW || shape.size() == 4, "Tensor::empty: layout ", layout_name(layout),
            " needs a 4-D shape, got ", shape_str(shape));
  if (device.is_cuda()) {
    RDD_CHECK(device.index < gpu_count(), "Tensor::empty: ", device.str(), " does not exist (",
              gpu_count() == 0 ? no_gpu_reason() : std::to_string(gpu_count()) + " GPUs found", ")");
  }
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), device);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.layout_ = layout;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, Layout layout) {
  Tensor t = empty(shape, dtype, device, layout);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(dtype), Device::cpu(), true);
  t.shape_ = shape;
  t.dtype_ = dtype;
  return t;
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  RDD_CHECK(int64_t(values.size()) == shape_numel(shape), "Tensor::from_vector: ", values.size(),
            " values for shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<uint8_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bf16>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<f16>&, const Shape&);

// ---------------------------------------------------------------------------------------------
// Shape and views
// ---------------------------------------------------------------------------------------------

int64_t Tensor::size(int dim) const {
  const int d = dim < 0 ? dim + ndim() : dim;
  RDD_CHECK(d >= 0 && d < ndim(), "tensor ", desc(), ": no dimension ", dim);
  return shape_[size_t(d)];
}

void* Tensor::raw() const {
  RDD_CHECK(defined(), "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

Tensor Tensor::view(const Shape& shape) const {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      RDD_CHECK(infer < 0, "view ", shape_str(shape), ": only one dimension may be -1");
      infer = int(i);
    } else {
      RDD_CHECK(s[i] >= 0, "view ", shape_str(shape), ": negative size");
      known *= s[i];
    }
  }
  if (infer >= 0) {
    RDD_CHECK(known > 0 && numel() % known == 0, "view of ", desc(), " as ", shape_str(shape), ": sizes do not divide");
    s[size_t(infer)] = numel() / known;
  }
  RDD_CHECK(shape_numel(s) == numel(), "view of ", desc(), " as ", shape_str(s), ": element counts differ");
  RDD_CHECK(layout_ == Layout::NCHW || s.size() == 4, "view of ", desc(), " as ", shape_str(s),
            ": an NHWC tensor keeps its 4-D shape (reorder to NCHW first)");
  Tensor t = *this;
  t.shape_ = std::move(s);
  return t;
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  RDD_CHECK(ndim() >= 1, "slice of a 0-D tensor");
  RDD_CHECK(0 <= begin && begin <= end && end <= shape_[0], "slice [", begin, ", ", end, ") of ", desc());
  const int64_t row = numel() / std::max<int64_t>(shape_[0], 1);
  Tensor t = *this;
  t.offset_ += size_t(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::with_layout(Layout layout) const {
  RDD_CHECK(layout == Layout::NCHW || ndim() == 4, "with_layout(", layout_name(layout), ") of ", desc());
  Tensor t = *this;
  t.layout_ = layout;
  return t;
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream os;
  os << dtype_name(dtype_) << shape_str(shape_);
  if (ndim() == 4) os << " " << layout_name(layout_);
  os << " " << device().str();
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// Copies
// ---------------------------------------------------------------------------------------------

void synchronize(Device d) {
#if RDD_WITH_CUDA
  if (d.is_cuda()) cuda_context(d.index).synchronize();
#else
  (void)d;
#endif
}

void Tensor::copy_from(const Tensor& src) {
  RDD_CHECK(defined() && src.defined(), "copy_from: undefined tensor");
  RDD_CHECK(shape_ == src.shape_ && dtype_ == src.dtype_ && (layout_ == src.layout_ || ndim() != 4),
            "copy_from: ", src.desc(), " into ", desc(), " (shape, dtype and layout must match)");
  const size_t n = nbytes();
  if (n == 0 || raw() == src.raw()) return;
  const Device dd = device(), sd = src.device();
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memmove(raw(), src.raw(), n);
    return;
  }
#if RDD_WITH_CUDA
  // Every copy is ordered on the compute stream of the GPU involved. Copies that end on the host
  // wait for completion so the caller can read the data; copies from pageable host memory are
  // synchronous in CUDA anyway.
  const int dev = dd.is_cuda() ? dd.index : sd.index;
  CudaContext& ctx = cuda_context(dev);
  if (dd.is_cuda() && sd.is_cuda() && dd.index != sd.index) {
    // Between GPUs: make the source ready, then a peer copy on the destination's stream.
    synchronize(sd);
    RDD_CUDA_CHECK(cudaMemcpyPeerAsync(raw(), dd.index, src.raw(), sd.index, n, ctx.compute_stream()));
    // The source's allocator orders reuse on the source's stream only: wait, so that its block cannot be
    // handed out and overwritten while the copy still reads it.
    ctx.synchronize();
    return;
  }
  const cudaMemcpyKind kind = dd.is_cuda() ? (sd.is_cuda() ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                           : cudaMemcpyDeviceToHost;
  RDD_CUDA_CHECK(cudaMemcpyAsync(raw(), src.raw(), n, kind, ctx.compute_stream()));
  if (kind == cudaMemcpyDeviceToHost || (kind == cudaMemcpyHostToDevice && !src.is_pinned())) ctx.synchronize();
#else
  fail("copy_from: ", src.desc(), " → ", desc(), ": this is a CPU-only build of rdd");
#endif
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device, layout_);
  t.copy_from(*this);
  return t;
}

namespace {
template <class T>
double load_as_double(const void* p, int64_t i) {
  return double(static_cast<const T*>(p)[i]);
}
template <>
double load_as_double<bf16>(const void* p, int64_t i) {
  return double(float(static_cast<const bf16*>(p)[i]));
}
template <>
double load_as_double<f16>(const void* p, int64_t i) {
  return double(float(static_cast<const f16*>(p)[i]));
}

double load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return load_as_double<float>(p, i);
    case DType::f64: return load_as_double<double>(p, i);
    case DType::bf16: return load_as_double<bf16>(p, i);
    case DType::f16: return load_as_double<f16>(p, i);
    case DType::i32: return load_as_double<int32_t>(p, i);
    case DType::i64: return load_as_double<int64_t>(p, i);
    case DType::u8: return load_as_double<uint8_t>(p, i);
  }
  return 0;
}

void store(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::bf16: static_cast<bf16*>(p)[i] = bf16(float(v)); break;
    case DType::f16: static_cast<f16*>(p)[i] = f16(float(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
  }
}
}  // namespace

Tensor Tensor::to_dtype(DType dtype) const {
  Tensor out = empty(shape_, dtype, device(), layout_);
  const int64_t n = numel();
  if (device().is_cpu()) {
    if (dtype == dtype_) {
      out.copy_from(*this);
    } else {
      for (int64_t i = 0; i < n; ++i) store(out.raw(), dtype, i, load(raw(), dtype_, i));
    }
    return out;
  }
#if RDD_WITH_CUDA
  if (dtype == dtype_) {
    out.copy_from(*this);
  } else {
    cuda::convert(raw(), dtype_, out.raw(), dtype, n, cuda_context(device().index).compute_stream());
  }
#endif
  return out;
}

Tensor Tensor::to_layout(Layout layout) const {
  RDD_CHECK(ndim() == 4, "to_layout(", layout_name(layout), "): ", desc(), " is not 4-D");
  if (layout == layout_) return clone();
  Tensor out = empty(shape_, dtype_, device(), layout);
  const int64_t N = shape_[0], C = shape_[1], H = shape_[2], W = shape_[3];
  const size_t es = dtype_size(dtype_);
  const bool to_nhwc = layout == Layout::NHWC;
  if (device().is_cpu()) {
    const char* s = static_cast<const char*>(raw());
    char* d = static_cast<char*>(out.raw());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            const int64_t nchw = ((n * C + c) * H + h) * W + w, nhwc = ((n * H + h) * W + w) * C + c;
            std::memcpy(d + size_t(to_nhwc ? nhwc : nchw) * es, s + size_t(to_nhwc ? nchw : nhwc) * es, es);
          }
    return out;
  }
#if RDD_WITH_CUDA
  cuda::reorder_4d(raw(), out.raw(), N, C, H, W, es, to_nhwc, cuda_context(device().index).compute_stream());
#endif
  return out;
}

Tensor& Tensor::fill_(double value) {
  const int64_t n = numel();
  if (n == 0) return *this;
  if (device().is_cpu()) {
    if (value == 0.0) {
      std::memset(raw(), 0, nbytes());
    } else {
      for (int64_t i = 0; i < n; ++i) store(raw(), dtype_, i, value);
    }
    return *this;
  }
#if RDD_WITH_CUDA
  cuda::fill(raw(), n, dtype_, value, cuda_context(device().index).compute_stream());
#endif
  return *this;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  const Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<T> out(static_cast<size_t>(numel()));
  if (dtype_ == dtype_of<T>()) {  // exact: int64 values beyond 2^53 do not survive a trip through double
    if (!out.empty()) std::memcpy(out.data(), host.raw(), out.size() * sizeof(T));
    return out;
  }
  for (int64_t i = 0; i < numel(); ++i) out[size_t(i)] = T(load(host.raw(), dtype_, i));
  return out;
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<int32_t> Tensor::to_vector() const;
template std::vector<int64_t> Tensor::to_vector() const;
template std::vector<uint8_t> Tensor::to_vector() const;

double Tensor::item() const {
  RDD_CHECK(numel() == 1, "item() of ", desc(), ": not a one-element tensor");
  return to_vector<double>()[0];
}

// ---------------------------------------------------------------------------------------------
// Argument checks
// ---------------------------------------------------------------------------------------------

void require_dtype(const Tensor& t, DType dtype, const char* who, const char* what) {
  RDD_CHECK(t.defined(), who, ": ", what, " is undefined");
  RDD_CHECK(t.dtype() == dtype, who, ": ", what, " is ", t.desc(), ", but only ", dtype_name(dtype),
            " is supported here");
}

void require_layout(const Tensor& t, Layout layout, const char* who, const char* what) {
  RDD_CHECK(t.layout() == layout, who, ": ", what, " is ", t.desc(), ", but only ", layout_name(layout),
            " is supported here");
}

void require_ndim(const Tensor& t, int ndim, const char* who, const char* what) {
  RDD_CHECK(t.defined(), who, ": ", what, " is undefined");
  RDD_CHECK(t.ndim() == ndim, who, ": ", what, " must be ", ndim, "-D, got ", t.desc());
}

void require_same_device(const Tensor& a, const Tensor& b, const char* who) {
  RDD_CHECK(a.device() == b.device(), who, ": tensors on different devices (", a.desc(), " and ", b.desc(), ")");
}

void require_float_compute(const Tensor& t, const char* who, const char* what) {
  RDD_CHECK(t.defined(), who, ": ", what, " is undefined");
  RDD_CHECK(t.dtype() == DType::f32 || (t.dtype() == DType::f64 && t.device().is_cpu()), who, ": ", what, " is ",
            t.desc(), "; expected f32 (or f64 on the CPU)");
}

}  // namespace rdd
