#include "layers/eval_ops.h"
#include "layers/eval_ops_cuda.h"
#include "layers/eval_ops_math.h"

#include <algorithm>
#include <cmath>

#include "engine/thread_pool.h"

namespace rdd::layers {

namespace {

void check_nchw(const Tensor& x, const char* who, const char* what) {
  require_ndim(x, 4, who, what);
  require_layout(x, Layout::NCHW, who, what);
  RDD_CHECK(x.dtype() == DType::f32 || (x.dtype() == DType::f64 && x.device().is_cpu()), who, ": ", what, " is ",
            x.desc(), " (f32, or f64 on the CPU)");
}

}  // namespace

Tensor flip_width(const Tensor& x) {
  check_nchw(x, "flip_width", "x");
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::flip_width(x.device().index, x.data<float>(), y.data<float>(), planes, H, W);
#endif
    return y;
  }
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    parallel_for(0, planes * H, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t j = 0; j < W; ++j) dst[r * W + j] = src[r * W + (W - 1 - j)];
    }, 64);
  });
  return y;
}

Tensor crop_window(const Tensor& x, int64_t top, int64_t left, int64_t h, int64_t w) {
  check_nchw(x, "crop_window", "x");
  RDD_CHECK(h > 0 && w > 0, "crop_window: window ", h, "x", w, " is empty");
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({x.size(0), x.size(1), h, w}, x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::crop_window(x.device().index, x.data<float>(), y.data<float>(), planes, H, W, top, left, h, w);
#endif
    return y;
  }
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          const int64_t sy = top + i, sx = left + j;
          dst[(p * h + i) * w + j] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[(p * H + sy) * W + sx] : T(0);
        }
  });
  return y;
}

void add_window_(Tensor& acc, const Tensor& win, int64_t top, int64_t left) {
  check_nchw(acc, "add_window_", "acc");
  check_nchw(win, "add_window_", "window");
  RDD_CHECK(acc.dtype() == win.dtype() && acc.device() == win.device() && acc.size(0) == win.size(0) &&
                acc.size(1) == win.size(1),
            "add_window_: window ", win.desc(), " does not match accumulator ", acc.desc());
  const int64_t planes = acc.size(0) * acc.size(1), H = acc.size(2), W = acc.size(3), h = win.size(2), w = win.size(3);
  if (acc.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::add_window(acc.device().index, acc.data<float>(), win.data<float>(), planes, H, W, top, left, h, w);
#endif
    return;
  }
  with_float_type(acc.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* dst = acc.data<T>();
    const T* src = win.data<T>();
    for (int64_t p = 0; p < planes; ++p)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < w; ++j) {
          const int64_t y = top + i, x = left + j;
          if (y >= 0 && y < H && x >= 0 && x < W) dst[(p * H + y) * W + x] += src[(p * h + i) * w + j];
        }
  });
}

Tensor softmax_channels(const Tensor& x) {
  check_nchw(x, "softmax_channels", "x");
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::softmax_channels(x.device().index, x.data<float>(), y.data<float>(), N, C, HW);
#endif
    return y;
  }
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* src = x.data<T>();
    T* dst = y.data<T>();
    parallel_for(0, N * HW, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t n = i / HW, p = i % HW;
        eval_ops_math::softmax_pixel(src + n * C * HW + p, dst + n * C * HW + p, C, HW);
      }
    }, 1024);
  });
  return y;
}

void divide_by_map_(Tensor& x, const Tensor& map) {
  check_nchw(x, "divide_by_map_", "x");
  RDD_CHECK(map.ndim() == 2 && map.size(0) == x.size(2) && map.size(1) == x.size(3) && map.dtype() == x.dtype() &&
                map.device() == x.device(),
            "divide_by_map_: map ", map.desc(), " does not match ", x.desc());
  const int64_t planes = x.size(0) * x.size(1), HW = x.size(2) * x.size(3);
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cuda::divide_by_map(x.device().index, x.data<float>(), map.data<float>(), planes, HW);
#endif
    return;
  }
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = x.data<T>();
    const T* m = map.data<T>();
    for (int64_t q = 0; q < planes; ++q)
      for (int64_t i = 0; i < HW; ++i) p[q * HW + i] /= m[i];
  });
}

}  // namespace rdd::layers
