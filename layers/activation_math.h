// ReLU / ReLU6 of one element and its gradient: the arithmetic the CPU reference (activation.cpp) and the
// CUDA kernels (activation.cu) share, so the CPU tests exercise the GPU's. C++17, host and device.
#pragma once

#include "engine/host_device.h"

namespace rdd::layers::activation_math {

// max(v, 0), capped at 6 for ReLU6. NaN passes through (comparisons with NaN are false).
template <class T>
RDD_HD T relu(T v, bool relu6) {
  return v < T(0) ? T(0) : ((relu6 && v > T(6)) ? T(6) : v);
}

// dy where the forward let the input through (v is the forward's output or input), else 0.
template <class T>
RDD_HD T relu_grad(T dy, T v, bool relu6) {
  return (v > T(0) && (!relu6 || v < T(6))) ? dy : T(0);
}

}  // namespace rdd::layers::activation_math
