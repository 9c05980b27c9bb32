// CPU reference and device dispatch of the bilinear resize (see resize.h).
#include "layers/resize.h"
#include "layers/resize_cuda.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

namespace {

template <class T>
struct Taps {  // one output index along one axis: the two source indices and their weights
  int i0, i1;
  T l0, l1;
};

template <class T>
std::vector<Taps<T>> axis_taps(int in, int out, bool align_corners) {
  // As PyTorch's CPU kernel: the scale in T, the source index and λ in double, λ then rounded to T.
  const double scale = double(detail::resize_scale<T>(in, out, align_corners));
  std::vector<Taps<T>> taps(static_cast<size_t>(out));
  for (int d = 0; d < out; ++d) {
    double src = align_corners ? scale * d : scale * (d + 0.5) - 0.5;
    if (src < 0) src = 0;
    const int i0 = std::min(int(std::floor(src)), in - 1);
    const T l1 = T(std::min(std::max(src - i0, 0.0), 1.0));
    taps[size_t(d)] = {i0, i0 + (i0 < in - 1 ? 1 : 0), T(1) - l1, l1};
  }
  return taps;
}

template <class T>
void forward_cpu(const Tensor& x, Tensor& y, bool align_corners) {
  // x: (N, C, H, W); y: (N, C, out_h, out_w)
  const int in_h = int(x.size(2)), in_w = int(x.size(3)), out_h = int(y.size(2)), out_w = int(y.size(3));
  const auto th = axis_taps<T>(in_h, out_h, align_corners), tw = axis_taps<T>(in_w, out_w, align_corners);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  parallel_for(0, x.size(0) * x.size(1), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T* xs = xp + p * in_h * in_w;
      T* ys = yp + p * out_h * out_w;
      for (int oh = 0; oh < out_h; ++oh) {
        const Taps<T>& h = th[size_t(oh)];
        const T* r0 = xs + int64_t(h.i0) * in_w;
        const T* r1 = xs + int64_t(h.i1) * in_w;
        for (int ow = 0; ow < out_w; ++ow) {
          const Taps<T>& w = tw[size_t(ow)];
          ys[int64_t(oh) * out_w + ow] =
              h.l0 * (w.l0 * r0[w.i0] + w.l1 * r0[w.i1]) + h.l1 * (w.l0 * r1[w.i0] + w.l1 * r1[w.i1]);
        }
      }
    }
  });
}

template <class T>
void backward_cpu(const Tensor& dy, Tensor& dx, bool align_corners) {
  // dy: (N, C, out_h, out_w); dx: (N, C, in_h, in_w), zero on entry
  const int in_h = int(dx.size(2)), in_w = int(dx.size(3)), out_h = int(dy.size(2)), out_w = int(dy.size(3));
  const auto th = axis_taps<T>(in_h, out_h, align_corners), tw = axis_taps<T>(in_w, out_w, align_corners);
  const T* gp = dy.data<T>();
  T* dp = dx.data<T>();
  parallel_for(0, dy.size(0) * dy.size(1), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T* gs = gp + p * out_h * out_w;
      T* ds = dp + p * in_h * in_w;
      for (int oh = 0; oh < out_h; ++oh) {
        const Taps<T>& h = th[size_t(oh)];
        T* r0 = ds + int64_t(h.i0) * in_w;
        T* r1 = ds + int64_t(h.i1) * in_w;
        for (int ow = 0; ow < out_w; ++ow) {
          const Taps<T>& w = tw[size_t(ow)];
          const T g = gs[int64_t(oh) * out_w + ow];
          r0[w.i0] += h.l0 * w.l0 * g;
          r0[w.i1] += h.l0 * w.l1 * g;
          r1[w.i0] += h.l1 * w.l0 * g;
          r1[w.i1] += h.l1 * w.l1 * g;
        }
      }
    }
  });
}

void check_input(const Tensor& t, const char* who, const char* what) {
  require_ndim(t, 4, who, what);
  require_layout(t, Layout::NCHW, who, what);
  if (t.device().is_cuda()) {
    require_dtype(t, DType::f32, who, what);
  } else {
    RDD_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, who, ": ", what, " is ", t.desc(),
              ", but only f32 and f64 are supported on the CPU");
  }
}

}  // namespace

Tensor bilinear_resize_forward(const Tensor& x, int out_h, int out_w, bool align_corners) {
  const char* who = "bilinear_resize_forward";
  check_input(x, who, "x");
  RDD_CHECK(out_h >= 1 && out_w >= 1, who, ": output size ", out_h, "x", out_w, " must be at least 1x1 (x is ",
            x.desc(), ")");
  RDD_CHECK(x.size(2) >= 1 && x.size(3) >= 1, who, ": x ", x.desc(), " has an empty spatial size");
  Tensor y = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  if (y.numel() == 0) return y;
  OpScope profile("bilinear resize forward", x.device(), 0, double(x.nbytes() + y.nbytes()));
#if RDD_WITH_CUDA
  if (x.device().is_cuda()) {
    CudaContext& ctx = cuda_context(x.device().index);
    const int in_h = int(x.size(2)), in_w = int(x.size(3));
    cuda::bilinear_resize_forward(x.data<float>(), y.data<float>(), x.size(0) * x.size(1), in_h, in_w, out_h, out_w,
                                  detail::resize_scale<float>(in_h, out_h, align_corners),
                                  detail::resize_scale<float>(in_w, out_w, align_corners), align_corners,
                                  ctx.compute_stream());
    return y;
  }
#endif
  if (x.dtype() == DType::f64) forward_cpu<double>(x, y, align_corners);
  else forward_cpu<float>(x, y, align_corners);
  return y;
}

Tensor bilinear_resize_backward(const Tensor& dy, int in_h, int in_w, bool align_corners) {
  const char* who = "bilinear_resize_backward";
  check_input(dy, who, "dy");
  RDD_CHECK(in_h >= 1 && in_w >= 1, who, ": input size ", in_h, "x", in_w, " must be at least 1x1 (dy is ",
            dy.desc(), ")");
  RDD_CHECK(dy.size(2) >= 1 && dy.size(3) >= 1, who, ": dy ", dy.desc(), " has an empty spatial size");
  OpScope profile("bilinear resize backward", dy.device(), 0,
                  double(dy.nbytes()) + double(dy.size(0) * dy.size(1) * in_h * in_w * dtype_size(dy.dtype())));
#if RDD_WITH_CUDA
  if (dy.device().is_cuda()) {  // a gather: every dx element is written, no zeroing
    Tensor dx = Tensor::empty({dy.size(0), dy.size(1), in_h, in_w}, dy.dtype(), dy.device());
    if (dx.numel() == 0) return dx;
    CudaContext& ctx = cuda_context(dy.device().index);
    const int out_h = int(dy.size(2)), out_w = int(dy.size(3));
    Tensor scratch = Tensor::empty({dy.size(0), dy.size(1), out_h, in_w}, DType::f32, dy.device());
    cuda::bilinear_resize_backward(dy.data<float>(), dx.data<float>(), dy.size(0) * dy.size(1), in_h, in_w, out_h,
                                   out_w, detail::resize_scale<float>(in_h, out_h, align_corners),
                                   detail::resize_scale<float>(in_w, out_w, align_corners), align_corners,
                                   scratch.data<float>(), ctx.compute_stream());
    return dx;
  }
#endif
  Tensor dx = Tensor::zeros({dy.size(0), dy.size(1), in_h, in_w}, dy.dtype(), dy.device());
  if (dx.numel() == 0) return dx;
  if (dy.dtype() == DType::f64) backward_cpu<double>(dy, dx, align_corners);
  else backward_cpu<float>(dy, dx, align_corners);
  return dx;
}

}  // namespace rdd::layers
