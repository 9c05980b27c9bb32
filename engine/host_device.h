// RDD_HD marks a function that the CPU reference and a CUDA kernel both call — the shared *_math.h-style
// headers (philox.h, resize_taps.h, pooling_index.h, pixel_math.h, augment_pixel.h, ...), which make the
// CPU tests exercise the GPU's arithmetic and indexing. Under nvcc it is host + device; for the host
// compiler (CPU builds, the emulated device) a plain inline function. C++17 (included by .cu files).
//
// hd::exp / hd::log / hd::sqrt / hd::max: the math those headers share, the same call on both sides (the device's
// expf/logf, the host's std::exp/std::log; max as a < b ? b : a, so NaN handling is the same too).
#pragma once

#if defined(__CUDACC__)
#define RDD_HD __host__ __device__ __forceinline__
#else
#define RDD_HD inline
#endif

#include <cmath>

namespace rdd::hd {

RDD_HD float exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}
RDD_HD double exp(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
RDD_HD float log(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return std::log(x);
#endif
}
RDD_HD double log(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}
RDD_HD float sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
RDD_HD double sqrt(double x) {
#if defined(__CUDA_ARCH__)
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}
template <class T>
RDD_HD T max(T a, T b) {
  return a < b ? b : a;
}

}  // namespace rdd::hd
