#include "engine/rng.h"
#include "engine/rng_cuda.h"

#include "engine/philox.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd {


namespace {
enum FillKind { kUniform = 0, kNormal = 1, kRandint = 2 };

template <class T>
void fill_host(T* p, int64_t n, int kind, double a, double b, uint64_t seed, uint64_t offset) {
  for (int64_t i = 0; i < n; ++i) {
    double v;
    if (kind == kUniform) {
      v = a + (b - a) * double(philox::uniform(seed, offset, uint64_t(i)));
    } else if (kind == kNormal) {
      v = a + b * double(philox::normal(seed, offset, uint64_t(i)));
    } else {
      const uint64_t range = uint64_t(b - a);
      v = double(int64_t(a) + int64_t(uint64_t(philox::u32(seed, offset, uint64_t(i))) % range));
    }
    if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) p[i] = T(float(v));
    else p[i] = T(v);
  }
}

void fill(Tensor& t, int kind, double a, double b, uint64_t seed, uint64_t offset, const char* who) {
  RDD_CHECK(t.defined(), who, ": undefined tensor");
  if (kind == kRandint) {
    RDD_CHECK(!is_floating(t.dtype()), who, ": ", t.desc(), " is not an integer tensor");
    RDD_CHECK(b > a, who, ": empty range [", a, ", ", b, ")");
    RDD_CHECK(b - a <= 4294967296.0, who, ": range [", a, ", ", b, ") is wider than 2^32 (one 32-bit draw per element)");
  } else {
    RDD_CHECK(is_floating(t.dtype()), who, ": ", t.desc(), " is not a floating tensor");
  }
  const int64_t n = t.numel();
  if (t.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::philox_fill(t.raw(), t.dtype(), n, kind, a, b, seed, offset, cuda_context(t.device().index).compute_stream());
#endif
    return;
  }
  switch (t.dtype()) {
    case DType::f32: fill_host(t.data<float>(), n, kind, a, b, seed, offset); break;
    case DType::f64: fill_host(t.data<double>(), n, kind, a, b, seed, offset); break;
    case DType::bf16: fill_host(t.data<bf16>(), n, kind, a, b, seed, offset); break;
    case DType::f16: fill_host(t.data<f16>(), n, kind, a, b, seed, offset); break;
    case DType::i32: fill_host(t.data<int32_t>(), n, kind, a, b, seed, offset); break;
    case DType::i64: fill_host(t.data<int64_t>(), n, kind, a, b, seed, offset); break;
    case DType::u8: fill_host(t.data<uint8_t>(), n, kind, a, b, seed, offset); break;
  }
}
}  // namespace

void fill_uniform(Tensor& t, double lo, double hi, uint64_t seed, uint64_t offset) {
  fill(t, kUniform, lo, hi, seed, offset, "fill_uniform");
}
void fill_normal(Tensor& t, double mean, double std, uint64_t seed, uint64_t offset) {
  fill(t, kNormal, mean, std, seed, offset, "fill_normal");
}
void fill_randint(Tensor& t, int64_t lo, int64_t hi, uint64_t seed, uint64_t offset) {
  fill(t, kRandint, double(lo), double(hi), seed, offset, "fill_randint");
}

uint32_t PhiloxStream::next_u32() { return philox::u32(seed_, offset_, pos_++); }

float PhiloxStream::next_uniform() { return float(next_u32() >> 8) * (1.0f / 16777216.0f); }

int64_t PhiloxStream::next_int(int64_t lo, int64_t hi) {
  RDD_CHECK(hi > lo, "PhiloxStream::next_int: empty range [", lo, ", ", hi, ")");
  const uint64_t range = uint64_t(hi - lo);
  if (range > 0xffffffffull) {
    const uint64_t r = (uint64_t(next_u32()) << 32) | next_u32();
    return lo + int64_t(r % range);
  }
  // Rejection sampling: no modulo bias.
  const uint32_t r32 = uint32_t(range);
  const uint32_t limit = uint32_t(0x100000000ull - (0x100000000ull % r32));
  for (;;) {
    const uint32_t r = next_u32();
    if (limit == 0 || r < limit) return lo + int64_t(r % r32);
  }
}

}  // namespace rdd
