// Conv2d on the GPU (conv2d.cu): the convolution through the cuDNN graph API, bias add and bias gradient
// as our own kernels; f32 NCHW on one GPU, arguments already checked by conv2d.cpp.
// Private to layers/: included by conv2d.cpp and conv2d.cu. C++17.
#pragma once

#if RDD_WITH_CUDA
#include "engine/tensor.h"
#include "layers/conv2d.h"

namespace rdd::layers::cuda {

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dOptions& opt);
// x (N, C, H, W), w (K, C/groups, R, S), b (K) or undefined, y (N, K, P, Q).
// dy (N, K, P, Q); dx overwritten (when given), dw and db accumulate.
void conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt, Tensor* dx,
                     Tensor& dw, Tensor* db);
#if RDD_CUDA_EMULATED
// conv2d.cpp: what cuDNN does in conv2d.cu, for the emulated device (which has no cuDNN): the CPU
// reference, queued in order on the device's compute stream. y = conv(x, w); dx = conv_transpose(dy, w)
// (overwritten, when dx is given), dw += corr(x, dy).
void conv2d_forward_emulated_cudnn(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dOptions& opt);
void conv2d_backward_emulated_cudnn(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                                    Tensor* dx, Tensor& dw);
#endif

}  // namespace rdd::layers::cuda
#endif
