// Batch normalisation per channel and per element: the arithmetic the CPU reference (batchnorm2d.cpp)
// and the CUDA kernels (batchnorm2d.cu) share, so the CPU tests exercise the GPU's. The sums over a
// channel (Σx, Σx², Σdy, Σdy·x̂) are accumulated in double by both; these are the steps after them.
// C++17, host and device.
#pragma once

#include "engine/host_device.h"

namespace rdd::layers::batchnorm_math {

// Eval mode's scale γ / √(running_var + ε), in double then rounded once.
template <class T>
RDD_HD T eval_scale(T gamma, T running_var, double eps) {
  return T(double(gamma) / hd::sqrt(double(running_var) + eps));
}

// y = (x − mean)·scale + β, scale = γ·invstd (train) or eval_scale (eval).
template <class T>
RDD_HD T normalize(T x, T mean, T scale, T beta) {
  return (x - mean) * scale + beta;
}

// The backward's per-channel means of the reduced sums: Σdy / M and Σdy·x̂ / M, in double then rounded.
template <class T>
RDD_HD T sum_over_count(T sum, T count) {
  return T(double(sum) / double(count));
}

// dx = γ·invstd·(dy − Σdy/M − x̂·Σdy·x̂/M) with a = γ·invstd, b1 = Σdy/M, b2 = Σdy·x̂/M, x̂ = (x − mean)·invstd.
template <class T>
RDD_HD T grad_input(T dy, T x, T mean, T invstd, T a, T b1, T b2) {
  return a * (dy - b1 - (x - mean) * invstd * b2);
}

}  // namespace rdd::layers::batchnorm_math
