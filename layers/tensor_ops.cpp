// Channel concat / split (strided block copies) and elementwise add: CPU and device dispatch.
#include "layers/tensor_ops.h"
#include "layers/tensor_ops_cuda.h"

#include <cstring>
#include <sstream>

#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel_for chunk

std::string descs(const std::vector<Tensor>& xs) {
  std::ostringstream os;
  for (size_t i = 0; i < xs.size(); ++i) os << (i ? ", " : "") << xs[i].desc();
  return os.str();
}

// Copies `rows` rows of `row_bytes` each from src (rows `src_pitch` bytes apart) to dst (rows
// `dst_pitch` apart), on the tensors' device.
void copy_rows(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t row_bytes, int64_t rows,
               Device device) {
  if (row_bytes == 0 || rows == 0) return;
  if (device.is_cuda()) {
#if RDD_WITH_CUDA
    cudaStream_t stream = cuda_context(device.index).compute_stream();
    constexpr size_t kMaxPitch = size_t(1) << 30;  // cudaMemcpy2D refuses pitches past cudaDevAttrMaxPitch (2^31 − 1)
    if (dst_pitch <= kMaxPitch && src_pitch <= kMaxPitch) {
      RDD_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, size_t(rows),
                                       cudaMemcpyDeviceToDevice, stream));
    } else {  // images over 1 GiB: one copy per image
      for (int64_t r = 0; r < rows; ++r)
        RDD_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + size_t(r) * dst_pitch,
                                       static_cast<const char*>(src) + size_t(r) * src_pitch, row_bytes,
                                       cudaMemcpyDeviceToDevice, stream));
    }
#endif
    return;
  }
  parallel_for(0, rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      std::memcpy(static_cast<char*>(dst) + size_t(r) * dst_pitch,
                  static_cast<const char*>(src) + size_t(r) * src_pitch, row_bytes);
  });
}

void check_same(const Tensor& a, const Tensor& b, const char* who) {
  RDD_CHECK(a.defined() && b.defined(), who, ": undefined operand");
  RDD_CHECK(a.shape() == b.shape() && a.dtype() == b.dtype() && a.layout() == b.layout(), who, ": operands ",
            a.desc(), " and ", b.desc(), " differ in shape, dtype or layout");
  require_same_device(a, b, who);
  RDD_CHECK(a.dtype() == DType::f32 || a.dtype() == DType::f64, who, ": ", a.desc(),
            " is not supported (f32 and f64 only)");
}

template <class T>
void add_cpu(const T* a, const T* b, T* out, int64_t n) {
  parallel_for(0, n, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  }, kGrain);
}

void add_into(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.numel();
  if (n == 0) return;
  with_float_type(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (a.device().is_cuda()) {
      cuda::add(a.data<T>(), b.data<T>(), out.data<T>(), n, cuda_context(a.device().index).compute_stream());
      return;
    }
#endif
    add_cpu(a.data<T>(), b.data<T>(), out.data<T>(), n);
  });
}

}  // namespace

Tensor concat_channels(const std::vector<Tensor>& xs) {
  const char* who = "concat_channels";
  RDD_CHECK(!xs.empty(), who, ": no inputs");
  for (const Tensor& x : xs) {
    require_ndim(x, 4, who, "an input");
    require_layout(x, Layout::NCHW, who, "an input");
  }
  const Tensor& x0 = xs[0];
  int64_t channels = 0;
  for (const Tensor& x : xs) {
    RDD_CHECK(x.size(0) == x0.size(0) && x.size(2) == x0.size(2) && x.size(3) == x0.size(3) && x.dtype() == x0.dtype() &&
                  x.device() == x0.device(),
              who, ": inputs differ in N, H, W, dtype or device: ", descs(xs));
    channels += x.size(1);
  }
  const int64_t n = x0.size(0), hw = x0.size(2) * x0.size(3);
  const size_t elem = dtype_size(x0.dtype());
  Tensor y = Tensor::empty({n, channels, x0.size(2), x0.size(3)}, x0.dtype(), x0.device());
  OpScope profile("concat channels", y.device(), 0, 2.0 * y.nbytes());
  const size_t y_pitch = size_t(channels * hw) * elem;
  size_t at = 0;  // byte offset of input i's block within one image of y
  for (const Tensor& x : xs) {
    const size_t block = size_t(x.size(1) * hw) * elem;
    copy_rows(static_cast<char*>(y.raw()) + at, y_pitch, x.raw(), block, block, n, y.device());
    at += block;
  }
  return y;
}

std::vector<Tensor> split_channels(const Tensor& dy, const std::vector<int64_t>& channels) {
  const char* who = "split_channels";
  require_ndim(dy, 4, who, "dy");
  require_layout(dy, Layout::NCHW, who, "dy");
  RDD_CHECK(!channels.empty(), who, ": no parts requested");
  int64_t total = 0;
  std::ostringstream parts;
  for (size_t i = 0; i < channels.size(); ++i) {
    RDD_CHECK(channels[i] >= 0, who, ": negative channel count ", channels[i]);
    total += channels[i];
    parts << (i ? "+" : "") << channels[i];
  }
  RDD_CHECK(total == dy.size(1), who, ": parts ", parts.str(), " = ", total, " channels, but dy ", dy.desc(), " has ",
            dy.size(1));
  const int64_t n = dy.size(0), hw = dy.size(2) * dy.size(3);
  const size_t elem = dtype_size(dy.dtype());
  const size_t dy_pitch = size_t(total * hw) * elem;
  std::vector<Tensor> out;
  OpScope profile("split channels", dy.device(), 0, 2.0 * dy.nbytes());
  out.reserve(channels.size());
  size_t at = 0;
  for (int64_t c : channels) {
    Tensor part = Tensor::empty({n, c, dy.size(2), dy.size(3)}, dy.dtype(), dy.device());
    const size_t block = size_t(c * hw) * elem;
    copy_rows(part.raw(), block, static_cast<const char*>(dy.raw()) + at, dy_pitch, block, n, dy.device());
    at += block;
    out.push_back(std::move(part));
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  check_same(a, b, "add");
  OpScope profile("add", a.device(), 0, 3.0 * a.nbytes());
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device(), a.layout());
  add_into(a, b, out);
  return out;
}

void add_(Tensor& a, const Tensor& b) {
  check_same(a, b, "add_");
  OpScope profile("add", a.device(), 0, 3.0 * a.nbytes());
  add_into(a, b, a);
}

}  // namespace rdd::layers
