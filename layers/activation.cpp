// ReLU / ReLU6: CPU reference (templated on the element type) and device dispatch.
#include "layers/activation.h"
#include "layers/activation_cuda.h"
#include "layers/activation_math.h"

#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per parallel_for chunk

const char* op_name(bool relu6) { return relu6 ? "relu6" : "relu"; }

void require_float(const Tensor& t, const char* who, const char* what) {
  RDD_CHECK(t.defined(), who, ": ", what, " is undefined");
  RDD_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64, who, ": ", what, " is ", t.desc(),
            ", but only f32 and f64 are supported here");
}

// x, y: n elements.
template <class T>
void relu_forward_cpu(const T* x, T* y, int64_t n, bool relu6) {
  parallel_for(0, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = activation_math::relu(x[i], relu6);
  }, kGrain);
}

// dy, v, dx: n elements; v is the forward's output (or input).
template <class T>
void relu_backward_cpu(const T* dy, const T* v, T* dx, int64_t n, bool relu6) {
  parallel_for(0, n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = activation_math::relu_grad(dy[i], v[i], relu6);
  }, kGrain);
}

}  // namespace

Tensor relu_forward(const Tensor& x, bool relu6) {
  const char* who = op_name(relu6);
  require_float(x, who, "input");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device(), x.layout());
  const int64_t n = x.numel();
  if (n == 0) return y;
  OpScope profile(relu6 ? "relu6 forward" : "relu forward", x.device(), 0, 2.0 * x.nbytes());
  with_float_type(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (x.device().is_cuda()) {
      cudaStream_t s = cuda_context(x.device().index).compute_stream();
      cuda::relu_forward(x.data<T>(), y.data<T>(), n, relu6, s);
      return;
    }
#endif
    relu_forward_cpu(x.data<T>(), y.data<T>(), n, relu6);
  });
  return y;
}

Tensor relu_backward(const Tensor& dy, const Tensor& y_or_x, bool relu6) {
  const char* who = relu6 ? "relu6 backward" : "relu backward";
  require_float(dy, who, "dy");
  require_float(y_or_x, who, "the forward's output");
  RDD_CHECK(dy.shape() == y_or_x.shape() && dy.dtype() == y_or_x.dtype() && dy.layout() == y_or_x.layout(), who,
            ": dy ", dy.desc(), " does not match the forward's output ", y_or_x.desc());
  require_same_device(dy, y_or_x, who);
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device(), dy.layout());
  const int64_t n = dy.numel();
  if (n == 0) return dx;
  OpScope profile(relu6 ? "relu6 backward" : "relu backward", dy.device(), 0, 3.0 * dy.nbytes());
  with_float_type(dy.dtype(), [&](auto zero) {
    using T = decltype(zero);
#if RDD_WITH_CUDA
    if (dy.device().is_cuda()) {
      cudaStream_t s = cuda_context(dy.device().index).compute_stream();
      cuda::relu_backward(dy.data<T>(), y_or_x.data<T>(), dx.data<T>(), n, relu6, s);
      return;
    }
#endif
    relu_backward_cpu(dy.data<T>(), y_or_x.data<T>(), dx.data<T>(), n, relu6);
  });
  return dx;
}

Tensor ReLU::forward(const Tensor& x) {
  Tensor y = relu_forward(x, relu6_);
  y_ = training() ? y : Tensor();
  return y;
}

Tensor ReLU::backward(const Tensor& dy) {
  const char* who = relu6_ ? "ReLU6 backward" : "ReLU backward";
  RDD_CHECK(training(), who, ": the module is in eval mode (eval keeps nothing to go back through)");
  RDD_CHECK(y_.defined(), who, ": no cached output; call forward in train mode before each backward");
  Tensor dx = relu_backward(dy, y_, relu6_);
  y_ = Tensor();
  return dx;
}

}  // namespace rdd::layers
