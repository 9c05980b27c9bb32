// MaxPool2d and AdaptiveAvgPool2d: CPU reference (templated on the element type, parallel over the
// (n, c) planes) and device dispatch.
#include "layers/pooling.h"
#include "layers/pooling_cuda.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/op_profile.h"
#include "engine/thread_pool.h"
#include "layers/pooling_index.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

namespace {

void require_float_nchw(const Tensor& t, const char* who, const char* what) {
  require_ndim(t, 4, who, what);
  RDD_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, who, ": ", what, " is ", t.desc(),
            ", but only f32 and f64 are supported here");
  require_layout(t, Layout::NCHW, who, what);
}

void validate(const MaxPool2dOptions& o, const char* who) {
  RDD_CHECK(o.kernel >= 1 && o.stride >= 1 && o.padding >= 0, who, ": kernel ", o.kernel, ", stride ", o.stride,
            " and padding ", o.padding, " must be >= 1, >= 1 and >= 0");
  RDD_CHECK(o.padding <= o.kernel / 2, who, ": padding ", o.padding, " must be at most half the kernel size ",
            o.kernel, " (PyTorch refuses it too: a window could lie entirely in the padding)");
}

using pool_index::bin_end;
using pool_index::bin_start;

// x: (planes, h, w) → y, indices: (planes, oh, ow). indices may be null.
template <class T>
void maxpool2d_forward_cpu(const T* x, T* y, int32_t* indices, int64_t planes, int64_t h, int64_t w, int64_t oh,
                           int64_t ow, const MaxPool2dOptions& o) {
  parallel_for(0, planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * h * w;
      T* yp = y + p * oh * ow;
      int32_t* ip = indices ? indices + p * oh * ow : nullptr;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t h0 = i * o.stride - o.padding;
        const int64_t hs = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + o.kernel, h);
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t w0 = j * o.stride - o.padding;
          const int64_t ws = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + o.kernel, w);
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = hs * w + ws;
          for (int64_t r = hs; r < he; ++r) {
            for (int64_t c = ws; c < we; ++c) {
              const T v = xp[r * w + c];
              if (v > best || std::isnan(v)) {  // strict: ties keep the first; NaN propagates
                best = v;
                arg = r * w + c;
              }
            }
          }
          yp[i * ow + j] = best;
          if (ip) ip[i * ow + j] = int32_t(arg);
        }
      }
    }
  });
}

// dy, indices: (planes, oh, ow) → dx: (planes, h, w), zero-initialised here.
template <class T>
void maxpool2d_backward_cpu(const T* dy, const int32_t* indices, T* dx, int64_t planes, int64_t h, int64_t w,
                            int64_t oh, int64_t ow) {
  parallel_for(0, planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      T* dxp = dx + p * h * w;
      std::fill(dxp, dxp + h * w, T(0));
      const T* dyp = dy + p * oh * ow;
      const int32_t* ip = indices + p * oh * ow;
      for (int64_t j = 0; j < oh * ow; ++j) {
        RDD_CHECK(ip[j] >= 0 && ip[j] < h * w, "MaxPool2d backward: index ", ip[j], " outside the ", h, "x", w,
                  " input plane (indices not from this forward?)");
        dxp[ip[j]] += dyp[j];
      }
    }
  });
}

// x: (planes, h, w) → y: (planes, oh, ow); sums in double.
template <class T>
void adaptive_avgpool2d_forward_cpu(const T* x, T* y, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  parallel_for(0, planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      const T* xp = x + p * h * w;
      T* yp = y + p * oh * ow;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t hs = bin_start(i, h, oh), he = bin_end(i, h, oh);
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t ws = bin_start(j, w, ow), we = bin_end(j, w, ow);
          double sum = 0;
          for (int64_t r = hs; r < he; ++r)
            for (int64_t c = ws; c < we; ++c) sum += double(xp[r * w + c]);
          yp[i * ow + j] = T(sum / double((he - hs) * (we - ws)));
        }
      }
    }
  });
}

// dy: (planes, oh, ow) → dx: (planes, h, w): every element of a bin gets dy / bin area; overlapping
// bins add up (in ascending bin order, as the GPU gather does).
template <class T>
void adaptive_avgpool2d_backward_cpu(const T* dy, T* dx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                     int64_t ow) {
  parallel_for(0, planes, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; ++p) {
      T* dxp = dx + p * h * w;
      std::fill(dxp, dxp + h * w, T(0));
      const T* dyp = dy + p * oh * ow;
      for (int64_t i = 0; i < oh; ++i) {
        const int64_t hs = bin_start(i, h, oh), he = bin_end(i, h, oh);
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t ws = bin_start(j, w, ow), we = bin_end(j, w, ow);
          const T g = dyp[i * ow + j] / T((he - hs) * (we - ws));
          for (int64_t r = hs; r < he; ++r)
            for (int64_t c = ws; c < we; ++c) dxp[r * w + c] += g;
        }
      }
    }
  });
}

#if RDD_WITH_CUDA
cudaStream_t stream_of(const Tensor& t) { return cuda_context(t.device().index).compute_stream(); }
#endif

}  // namespace

int64_t maxpool2d_output_size(int64_t in, const MaxPool2dOptions& o) {
  const int64_t num = in + 2 * int64_t(o.padding) - o.kernel + (o.ceil_mode ? o.stride - 1 : 0);
  // Division rounding toward −∞ (num may be negative for a kernel larger than the padded input).
  int64_t out = (num >= 0 ? num / o.stride : -((-num + o.stride - 1) / o.stride)) + 1;
  if (o.ceil_mode && (out - 1) * o.stride >= in + o.padding) --out;  // last window starts inside
  return out;
}

Tensor maxpool2d_forward(const Tensor& x, const MaxPool2dOptions& o, Tensor* indices) {
  const char* who = "MaxPool2d";
  require_float_nchw(x, who, "input");
  validate(o, who);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  RDD_CHECK(c >= 1 && h >= 1 && w >= 1, who, ": input ", x.desc(), " has an empty channel or spatial dim");
  RDD_CHECK(h * w <= std::numeric_limits<int32_t>::max(), who, ": input plane ", h, "x", w,
            " is too large for int32 argmax indices");
  const int64_t oh = maxpool2d_output_size(h, o), ow = maxpool2d_output_size(w, o);
  RDD_CHECK(oh >= 1 && ow >= 1, who, ": kernel ", o.kernel, " is larger than the padded input ", h + 2 * o.padding,
            "x", w + 2 * o.padding, " (input ", x.desc(), ", padding ", o.padding, "): the output would be ", oh, "x",
            ow);
  RDD_CHECK(h * w <= std::numeric_limits<int32_t>::max(), who, ": input plane of ", x.desc(),
            " too large for i32 indices");
  Tensor y = Tensor::empty({n, c, oh, ow}, x.dtype(), x.device());
  if (indices) *indices = Tensor::empty({n, c, oh, ow}, DType::i32, x.device());
  int32_t* ip = indices ? indices->data<int32_t>() : nullptr;
  const int64_t planes = n * c;
  if (planes == 0) return y;
  OpScope profile("maxpool2d forward", x.device(), 0, double(x.nbytes() + y.nbytes()));
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (x.device().is_cuda()) {
      cuda::maxpool2d_forward(x.data<T>(), y.data<T>(), ip, planes, h, w, oh, ow, o.kernel, o.stride, o.padding, stream_of(x));
      return;
    }
#endif
    maxpool2d_forward_cpu(x.data<T>(), y.data<T>(), ip, planes, h, w, oh, ow, o);
  });
  return y;
}

Tensor maxpool2d_backward(const Tensor& dy, const Tensor& indices, int64_t in_h, int64_t in_w,
                          const MaxPool2dOptions& o) {
  const char* who = "MaxPool2d backward";
  require_float_nchw(dy, who, "dy");
  validate(o, who);
  require_dtype(indices, DType::i32, who, "indices");
  RDD_CHECK(indices.shape() == dy.shape(), who, ": indices ", indices.desc(), " do not match dy ", dy.desc());
  require_same_device(dy, indices, who);
  RDD_CHECK(in_h >= 1 && in_w >= 1 && in_h * in_w <= std::numeric_limits<int32_t>::max(), who, ": input size ",
            in_h, "x", in_w, " must be positive and fit int32 argmax indices");
  const int64_t n = dy.size(0), c = dy.size(1), oh = dy.size(2), ow = dy.size(3);
  RDD_CHECK(maxpool2d_output_size(in_h, o) == oh && maxpool2d_output_size(in_w, o) == ow, who, ": dy ", dy.desc(),
            " is not the output size of a ", in_h, "x", in_w, " input (kernel ", o.kernel, ", stride ", o.stride,
            ", padding ", o.padding, ", ceil_mode ", o.ceil_mode, ")");
  Tensor dx = Tensor::empty({n, c, in_h, in_w}, dy.dtype(), dy.device());
  const int64_t planes = n * c;
  if (planes == 0) return dx;
  OpScope profile("maxpool2d backward", dy.device(), 0, double(dy.nbytes() + indices.nbytes() + dx.nbytes()));
  with_float_type(dy.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (dy.device().is_cuda()) {
      cuda::maxpool2d_backward(dy.data<T>(), indices.data<int32_t>(), dx.data<T>(), planes, in_h, in_w, oh, ow, o.kernel, o.stride, o.padding, stream_of(dy));
      return;
    }
#endif
    maxpool2d_backward_cpu(dy.data<T>(), indices.data<int32_t>(), dx.data<T>(), planes, in_h, in_w, oh, ow);
  });
  return dx;
}

Tensor adaptive_avgpool2d_forward(const Tensor& x, int out_h, int out_w) {
  const char* who = "AdaptiveAvgPool2d";
  require_float_nchw(x, who, "input");
  RDD_CHECK(out_h >= 1 && out_w >= 1, who, ": output size ", out_h, "x", out_w, " must be positive");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  RDD_CHECK(c >= 1 && h >= 1 && w >= 1, who, ": input ", x.desc(), " has an empty channel or spatial dim");
  Tensor y = Tensor::empty({n, c, out_h, out_w}, x.dtype(), x.device());
  const int64_t planes = n * c;
  if (planes == 0) return y;
  OpScope profile("adaptive_avgpool2d forward", x.device(), 0, double(x.nbytes() + y.nbytes()));
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (x.device().is_cuda()) {
      cuda::adaptive_avgpool2d_forward(x.data<T>(), y.data<T>(), planes, h, w, out_h, out_w, stream_of(x));
      return;
    }
#endif
    adaptive_avgpool2d_forward_cpu(x.data<T>(), y.data<T>(), planes, h, w, out_h, out_w);
  });
  return y;
}

Tensor adaptive_avgpool2d_backward(const Tensor& dy, int64_t in_h, int64_t in_w) {
  const char* who = "AdaptiveAvgPool2d backward";
  require_float_nchw(dy, who, "dy");
  RDD_CHECK(in_h >= 1 && in_w >= 1, who, ": input size ", in_h, "x", in_w, " must be positive");
  const int64_t n = dy.size(0), c = dy.size(1), oh = dy.size(2), ow = dy.size(3);
  RDD_CHECK(oh >= 1 && ow >= 1, who, ": dy ", dy.desc(), " has an empty spatial dim");
  Tensor dx = Tensor::empty({n, c, in_h, in_w}, dy.dtype(), dy.device());
  const int64_t planes = n * c;
  if (planes == 0) return dx;
  OpScope profile("adaptive_avgpool2d backward", dy.device(), 0, double(dy.nbytes() + dx.nbytes()));
  with_float_type(dy.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (dy.device().is_cuda()) {
      cuda::adaptive_avgpool2d_backward(dy.data<T>(), dx.data<T>(), planes, in_h, in_w, oh, ow, stream_of(dy));
      return;
    }
#endif
    adaptive_avgpool2d_backward_cpu(dy.data<T>(), dx.data<T>(), planes, in_h, in_w, oh, ow);
  });
  return dx;
}

MaxPool2d::MaxPool2d(int kernel, int stride, int padding, bool ceil_mode) : opt_{kernel, stride, padding, ceil_mode} {
  validate(opt_, "MaxPool2d");
}

Tensor MaxPool2d::forward(const Tensor& x) {
  if (!training()) {
    indices_ = Tensor();
    return maxpool2d_forward(x, opt_, nullptr);
  }
  Tensor y = maxpool2d_forward(x, opt_, &indices_);
  in_h_ = x.size(2);
  in_w_ = x.size(3);
  return y;
}

Tensor MaxPool2d::backward(const Tensor& dy) {
  RDD_CHECK(training(), "MaxPool2d backward: the module is in eval mode (eval keeps nothing to go back through)");
  RDD_CHECK(indices_.defined(), "MaxPool2d backward: no cached indices; call forward in train mode before each backward");
  Tensor dx = maxpool2d_backward(dy, indices_, in_h_, in_w_, opt_);
  indices_ = Tensor();
  return dx;
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int out_h, int out_w) : out_h_(out_h), out_w_(out_w) {
  RDD_CHECK(out_h >= 1 && out_w >= 1, "AdaptiveAvgPool2d: output size ", out_h, "x", out_w, " must be positive");
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  Tensor y = adaptive_avgpool2d_forward(x, out_h_, out_w_);
  in_h_ = training() ? x.size(2) : -1;
  in_w_ = training() ? x.size(3) : -1;
  return y;
}

Tensor AdaptiveAvgPool2d::backward(const Tensor& dy) {
  RDD_CHECK(training(), "AdaptiveAvgPool2d backward: the module is in eval mode (eval keeps nothing to go back through)");
  RDD_CHECK(in_h_ >= 1, "AdaptiveAvgPool2d backward: no forward in train mode to go back through");
  RDD_CHECK(dy.ndim() == 4 && dy.size(2) == out_h_ && dy.size(3) == out_w_, "AdaptiveAvgPool2d backward: dy ",
            dy.desc(), " is not the module's ", out_h_, "x", out_w_, " output");
  Tensor dx = adaptive_avgpool2d_backward(dy, in_h_, in_w_);
  in_h_ = in_w_ = -1;
  return dx;
}

}  // namespace rdd::layers
