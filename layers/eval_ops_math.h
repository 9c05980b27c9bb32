// The evaluation ops per pixel: the arithmetic the CPU reference (eval_ops.cpp) and the CUDA kernels
// (eval_ops.cu) share, so the CPU tests exercise the GPU's. C++17, host and device.
#pragma once

#include <cstdint>

#include "engine/host_device.h"

namespace rdd::layers::eval_ops_math {

// Softmax over the c channels of one pixel: px[k·hw] → py[k·hw], k < c (the pixel's logits in NCHW).
// The maximum is subtracted first; one division, then multiplications.
template <class T>
RDD_HD void softmax_pixel(const T* px, T* py, int64_t c, int64_t hw) {
  T m = px[0];
  for (int64_t k = 1; k < c; ++k) m = hd::max(m, px[k * hw]);
  T s = T(0);
  for (int64_t k = 0; k < c; ++k) s += (py[k * hw] = hd::exp(px[k * hw] - m));
  const T inv = T(1) / s;
  for (int64_t k = 0; k < c; ++k) py[k * hw] *= inv;
}

}  // namespace rdd::layers::eval_ops_math
