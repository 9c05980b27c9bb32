// 2-D convolution (cross-correlation, as PyTorch's conv2d): stride, padding, dilation, groups
// (depthwise included), optional bias.
//
//   x (N, C, H, W)   w (K, C/groups, R, S)   b (K) or undefined   y (N, K, P, Q)
//   P = (H + 2·padding − dilation·(R − 1) − 1) / stride + 1, likewise Q.
//
//   Tensor y = conv2d_forward(x, w, b, {.stride = 2, .padding = 1});
//   Conv2dGrads g = conv2d_backward(dy, x, w, opt, /*need_dx=*/true, /*has_bias=*/true);
//
// CPU (f32 and f64, NCHW): im2col + BLAS gemm per image and group, in bands of output rows so the
// column buffer stays small; 1×1/stride-1/unpadded convolutions skip im2col; depthwise convolutions
// (C/groups == 1) use direct loops; with stride 1, dL/dx runs as the forward convolution of dy with the
// flipped, transposed weight. Images are spread over the thread pool (rdd::parallel_for) when they
// balance; otherwise the work inside an image is split. BLAS runs single-threaded (see
// cpu_blas_single_threaded below): the parallelism is ours.
// CUDA (f32, NCHW): cuDNN graph API (engine/cudnn_graph.h) plus bias kernels in conv2d.cu.
#pragma once

#include <cstdint>
#include <string>

#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/module.h"

namespace rdd::layers {

struct Conv2dOptions {
  int stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
};

// Output spatial size of a convolution along one axis; throws (naming `who` and the sizes) when the
// kernel does not fit into the padded input.
int conv2d_output_size(int in, int kernel, int padding, int stride, int dilation, const char* who = "conv2d");

// y = conv(x, w) + b. `b` undefined means no bias.
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt);

struct Conv2dGrads {
  Tensor dx, dw, db;  // dx undefined unless need_dx; db undefined unless has_bias
};
Conv2dGrads conv2d_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                            bool need_dx = true, bool has_bias = false);

// The accumulating form the module uses: dw += dL/dw, db += dL/db (db may be undefined: no bias);
// returns dL/dx when need_dx (else undefined). dw/db must have w's/b's shape, dtype and device.
Tensor conv2d_backward_accumulate(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                                  bool need_dx, Tensor& dw, Tensor* db);

class Conv2d : public Module {
 public:
  // Registers "<name>.weight" (out, in/groups, k, k) and, with opt.bias, "<name>.bias" (out).
  Conv2d(ParamStore& store, const std::string& name, int in_channels, int out_channels, int kernel_size,
         Conv2dOptions opt = {});

  Tensor forward(const Tensor& x);                // train mode caches x (shares its storage: keep it unchanged)
  Tensor backward(const Tensor& dy);              // accumulates into weight()->grad (+bias), returns dx
  Tensor backward_params_only(const Tensor& dy);  // the first layer: no dx; returns undefined

  // PyTorch's default initialisation (kaiming_uniform_(a=√5): U(±1/√fan_in) for weight and bias),
  // drawn from Philox(seed, offset) so it is the same on every device. Needs a materialized store.
  void reset_parameters(uint64_t seed, uint64_t offset);

  Param* weight() const { return weight_; }
  Param* bias() const { return bias_; }  // nullptr when absent
  const Conv2dOptions& options() const { return opt_; }
  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  int kernel_size() const { return kernel_size_; }
  const std::string& name() const { return name_; }

 private:
  Tensor backward_impl(const Tensor& dy, bool need_dx);
  std::string name_;
  int in_channels_, out_channels_, kernel_size_;
  Conv2dOptions opt_;
  Param* weight_ = nullptr;
  Param* bias_ = nullptr;
  Tensor cached_x_;  // (N, C, H, W), train mode only, until backward
};

// Makes the BLAS library single-threaded (once per process): rdd's CPU kernels parallelise over images
// and bands themselves, and OpenBLAS (pthreads) serialises concurrent multi-threaded calls on one lock.
void cpu_blas_single_threaded();

#if RDD_WITH_CUDA
namespace detail {
// conv2d.cu: the CUDA path (f32 NCHW, arguments already checked).
void conv2d_forward_cuda(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, const Conv2dOptions& opt);
void conv2d_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt, Tensor* dx,
                          Tensor& dw, Tensor* db);  // dw, db accumulate; dx overwritten
#if RDD_CUDA_EMULATED
// conv2d.cpp: what cuDNN does in conv2d.cu, for the emulated device (which has no cuDNN): the CPU
// reference, queued in order on the device's compute stream. y = conv(x, w); dx = conv_transpose(dy, w)
// (overwritten, when dx is given), dw += corr(x, dy).
void conv2d_forward_emulated_cudnn(const Tensor& x, const Tensor& w, Tensor& y, const Conv2dOptions& opt);
void conv2d_backward_emulated_cudnn(const Tensor& dy, const Tensor& x, const Tensor& w, const Conv2dOptions& opt,
                                    Tensor* dx, Tensor& dw);
#endif
}  // namespace detail
#endif

}  // namespace rdd::layers
