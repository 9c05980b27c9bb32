// ReLU / ReLU6: CPU reference (templated on the element type) and device dispatch.
#include "layers/activation.h"

#include "engine/op_profile.h"
#include "engine/thread_pool.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_context.h"
#endif

namespace rdd::layers {

#if RDD_WITH_CUDA
namespace kernels {  // activation.cu
template <class T>
void relu_forward(const T* x, T* y, int64_t n, bool relu6, cudaStream_t stream);
template <class T>
void relu_backward(const T* dy, const T* v, T* dx, int64_t n, bool relu6, cudaStream_t stream);
}  // namespace kernels
#endif

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
    if (relu6) {
      for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? T(0) : (x[i] > T(6) ? T(6) : x[i]);
    } else {
      for (int64_t i = b; i < e; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];  // NaN passes
    }
  }, kGrain);
}

// dy, v, dx: n elements; v is the forward's output (or input).
template <class T>
void relu_backward_cpu(const T* dy, const T* v, T* dx, int64_t n, bool relu6) {
  parallel_for(0, n, [&](int64_t b, int64_t e) {
    if (relu6) {
      for (int64_t i = b; i < e; ++i) dx[i] = (v[i] > T(0) && v[i] < T(6)) ? dy[i] : T(0);
    } else {
      for (int64_t i = b; i < e; ++i) dx[i] = v[i] > T(0) ? dy[i] : T(0);
    }
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
  if (x.device().is_cuda()) {
#if RDD_WITH_CUDA
    cudaStream_t s = cuda_context(x.device().index).compute_stream();
    if (x.dtype() == DType::f32) kernels::relu_forward(x.data<float>(), y.data<float>(), n, relu6, s);
    else kernels::relu_forward(x.data<double>(), y.data<double>(), n, relu6, s);
#endif
    return y;
  }
  if (x.dtype() == DType::f32) relu_forward_cpu(x.data<float>(), y.data<float>(), n, relu6);
  else relu_forward_cpu(x.data<double>(), y.data<double>(), n, relu6);
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
  if (dy.device().is_cuda()) {
#if RDD_WITH_CUDA
    cudaStream_t s = cuda_context(dy.device().index).compute_stream();
    if (dy.dtype() == DType::f32)
      kernels::relu_backward(dy.data<float>(), y_or_x.data<float>(), dx.data<float>(), n, relu6, s);
    else
      kernels::relu_backward(dy.data<double>(), y_or_x.data<double>(), dx.data<double>(), n, relu6, s);
#endif
    return dx;
  }
  if (dy.dtype() == DType::f32)
    relu_backward_cpu(dy.data<float>(), y_or_x.data<float>(), dx.data<float>(), n, relu6);
  else
    relu_backward_cpu(dy.data<double>(), y_or_x.data<double>(), dx.data<double>(), n, relu6);
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
