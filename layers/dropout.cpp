// Dropout / Dropout2d: Philox masks regenerated from (seed, offset); CPU reference and dispatch.
#include "layers/dropout.h"
#include "layers/dropout_cuda.h"
#include "layers/dropout_math.h"

#include <cmath>

#include "engine/philox.h"
#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

namespace {

const char* name_of(bool channelwise) { return channelwise ? "Dropout2d" : "Dropout"; }

void check_p(double p, bool channelwise) {
  RDD_CHECK(p >= 0.0 && p < 1.0, name_of(channelwise), ": p = ", p, " must lie in [0, 1)");
}

// philox::uniform(seed, offset, i) ≥ p  ⇔  (u32 >> 8) ≥ ceil(p·2^24), exactly (p·2^24 is exact in double).
uint32_t keep_threshold(double p) { return uint32_t(std::ceil(p * 16777216.0)); }

// Elements per mask entry: 1 (Dropout) or H·W (Dropout2d, one entry per (n, c) plane).
int64_t plane_size(const Tensor& x, bool channelwise) {
  if (!channelwise) return 1;
  require_ndim(x, 4, "Dropout2d", "input");
  require_layout(x, Layout::NCHW, "Dropout2d", "input");
  return x.size(2) * x.size(3);
}

// x, y: n elements; mask entry of element i is i / plane. y may be x.
template <class T>
void dropout_apply_cpu(const T* x, T* y, int64_t n, int64_t plane, uint32_t threshold, T scale, uint64_t seed,
                       uint64_t offset) {
  if (plane == 1) {  // one Philox call gives the mask of 4 consecutive elements
    const int64_t quads = (n + 3) / 4;
    parallel_for(0, quads, [&](int64_t qb, int64_t qe) {
      for (int64_t q = qb; q < qe; ++q) {
        const philox::U32x4 r = dropout_math::quad_draws(q, seed, offset);
        for (int k = 0; k < 4 && 4 * q + k < n; ++k) {
          const int64_t i = 4 * q + k;
          y[i] = x[i] * dropout_math::mask_factor(r.v[k], threshold, scale);
        }
      }
    }, 1 << 13);
    return;
  }
  const int64_t planes = n / plane;
  parallel_for(0, planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T f = dropout_math::mask_factor(dropout_math::plane_draw(p, seed, offset), threshold, scale);
      for (int64_t i = p * plane; i < (p + 1) * plane; ++i) y[i] = x[i] * f;
    }
  }, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(plane, 1)));
}

Tensor apply(const Tensor& x, double p, bool channelwise, uint64_t seed, uint64_t offset, const char* what) {
  const char* who = name_of(channelwise);
  RDD_CHECK(x.defined(), who, ": ", what, " is undefined");
  check_p(p, channelwise);
  RDD_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f64, who, ": ", what, " is ", x.desc(),
            ", but only f32 and f64 are supported here");
  const int64_t plane = plane_size(x, channelwise);
  if (p == 0.0) return x;
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), x.layout());
  require_layout(x, Layout::NCHW, who, what);  // mask index = logical index = memory index
  const int64_t n = x.numel();
  if (n == 0) return y;
  OpScope profile(channelwise ? "dropout2d" : "dropout", x.device(), 0, 2.0 * x.nbytes());
  const uint32_t threshold = keep_threshold(p);
  const double scale = 1.0 / (1.0 - p);
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (x.device().is_cuda()) {
      cudaStream_t s = cuda_context(x.device().index).compute_stream();
      cuda::dropout_apply(x.data<T>(), y.data<T>(), n, plane, threshold, T(scale), seed, offset, s);
      return;
    }
#endif
    dropout_apply_cpu(x.data<T>(), y.data<T>(), n, plane, threshold, T(scale), seed, offset);
  });
  return y;
}

}  // namespace

Tensor dropout_forward(const Tensor& x, double p, bool channelwise, uint64_t seed, uint64_t offset) {
  return apply(x, p, channelwise, seed, offset, "input");
}

Tensor dropout_backward(const Tensor& dy, double p, bool channelwise, uint64_t seed, uint64_t offset) {
  return apply(dy, p, channelwise, seed, offset, "dy");
}

Tensor dropout_keep_mask(const Shape& shape, double p, bool channelwise, uint64_t seed, uint64_t offset) {
  check_p(p, channelwise);
  Tensor mask = Tensor::empty(shape, DType::u8);
  const int64_t plane = plane_size(mask, channelwise);
  const uint32_t threshold = keep_threshold(p);
  uint8_t* m = mask.data<uint8_t>();
  for (int64_t i = 0; i < mask.numel(); ++i)
    m[i] = dropout_math::mask_factor<uint8_t>(dropout_math::plane_draw(i / plane, seed, offset), threshold, 1);
  return mask;
}

Dropout::Dropout(double p, bool channelwise) : p_(p), channelwise_(channelwise) { check_p(p, channelwise); }

Tensor Dropout::forward(const Tensor& x, uint64_t seed, uint64_t offset) {
  pending_ = false;
  if (!training()) return x;
  Tensor y = dropout_forward(x, p_, channelwise_, seed, offset);
  pending_ = true;
  identity_ = p_ == 0.0;
  seed_ = seed;
  offset_ = offset;
  shape_ = x.shape();
  return y;
}

Tensor Dropout::backward(const Tensor& dy) {
  const char* who = channelwise_ ? "Dropout2d backward" : "Dropout backward";
  RDD_CHECK(training(), who, ": the module is in eval mode (eval keeps nothing to go back through)");
  RDD_CHECK(pending_, who, ": no forward in train mode to go back through");
  RDD_CHECK(dy.defined() && dy.shape() == shape_, who, ": dy ", dy.desc(), " does not match the forward's input ",
            shape_str(shape_));
  pending_ = false;
  return identity_ ? dy : dropout_backward(dy, p_, channelwise_, seed_, offset_);
}

}  // namespace rdd::layers
