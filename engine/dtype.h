// Element types and memory layouts a Tensor can carry.
//
// All seven dtypes exist from day one, even where a kernel only implements f32: a kernel that meets a
// dtype it does not support refuses it by name (require_dtype), never silently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace rdd {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8 };
enum class Layout : uint8_t { NCHW, NHWC };  // only meaningful for 4-D tensors; others are row-major

size_t dtype_size(DType t);
const char* dtype_name(DType t);    // "f32", "bf16", ...
const char* layout_name(Layout l);  // "NCHW", "NHWC"
bool is_floating(DType t);

// The one dtype switch of the ops whose CPU reference and GPU kernels are templates on the element type
// (f32 everywhere, f64 for the finite-difference checks): calls f(float{}) or f(double{}).
//   with_float_type(x.dtype(), [&](auto zero) { using T = decltype(zero); run(x.data<T>()); });
// Callers have refused other dtypes by name first; anything else here is f32.
template <class F>
void with_float_type(DType t, F&& f) {
  if (t == DType::f64) f(double{});
  else f(float{});
}

// 16-bit float storage types for host code. Conversions round to nearest even, as the hardware does.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  explicit operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f);
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

// The DType of a C++ element type: dtype_of<float>() == DType::f32.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }

}  // namespace rdd
