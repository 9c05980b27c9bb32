// Convolutions on the GPU through the cuDNN graph (backend) API — forward, backward-data and
// backward-filter — with execution plans cached by (op, shapes, dtype, layout, conv params).
//
// cuDNN 9 deprecates the legacy cudnnConvolution* entry points; rdd uses none of them. Each call
// here builds (once per configuration) an operation graph with a single convolution node, asks the
// heuristics for engine configs, finalises the first that works as an execution plan, and caches it;
// later calls with the same configuration only fill a variant pack and execute on the device's
// compute stream, with scratch memory from the device's workspace.
//
// Shapes (logical NCHW order whatever the layout; all tensors on the same cuda device, same dtype
// and layout):
//   x  (N, C, H, W)           w  (K, C/groups, R, S)          y  (N, K, P, Q)
//   P = (H + 2·pad_h − dil_h·(R − 1) − 1) / stride_h + 1, likewise Q.
//
//   conv_forward:          y  = conv(x, w)        + beta·y
//   conv_backward_data:    dx = conv_transpose(dy, w) + beta·dx
//   conv_backward_filter:  dw = corr(x, dy)      + beta·dw      (beta = 1 accumulates)
//
// Supported now: f32 NCHW (compute f32), bf16/f16 NCHW or NHWC (compute f32). Anything else is
// refused with a message naming the op and the tensors.
#pragma once

#include <cstddef>

#include "engine/tensor.h"

namespace rdd::cudnn {

struct ConvParams {
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

// Output spatial size for an input size (the formula above); throws when the kernel does not fit.
int conv_output_size(int in, int kernel, int pad, int stride, int dilation);

void conv_forward(const Tensor& x, const Tensor& w, Tensor& y, const ConvParams& p, float beta = 0.f);
void conv_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvParams& p, float beta = 0.f);
void conv_backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, const ConvParams& p, float beta = 0.f);

struct PlanCacheStats {
  size_t plans = 0;   // distinct configurations built
  size_t hits = 0;    // calls served by a cached plan
  size_t misses = 0;  // calls that had to build one
};
PlanCacheStats plan_cache_stats();
void clear_plan_cache();

}  // namespace rdd::cudnn
