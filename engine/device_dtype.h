// The element type a DType stands for in device code: one switch for every kernel family that works on
// any dtype (fills, conversions, random fills). For .cu files (C++17).
//
//   with_device_type(t.dtype(), [&](auto zero) { using T = decltype(zero); launch<fill_kernel<T>>(...)(...); });
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "engine/dtype.h"

namespace rdd {

template <class F>
void with_device_type(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::bf16: f(__nv_bfloat16{}); break;
    case DType::f16: f(__half{}); break;
    case DType::i32: f(int32_t{}); break;
    case DType::i64: f(int64_t{}); break;
    case DType::u8: f(uint8_t{}); break;
  }
}

}  // namespace rdd
