// `rdd selftest` group "layers-conv-bn": Conv2d and BatchNorm2d — a worked 3×3 example, f64 finite-difference
// gradients for every input and parameter on the CPU, and (with a GPU) the CUDA/cuDNN paths against the
// CPU reference, forward and backward.
#include <functional>
#include <string>
#include <vector>

#include "apps/cmd_selftest.h"
#include "engine/numeric_check.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "layers/batchnorm2d.h"
#include "layers/conv2d.h"

namespace rdd::apps {

namespace {
using namespace rdd::layers;

CheckRow row(const std::string& component, const std::string& check, const std::string& device, const Comparison& c,
             Tolerance tol) {
  return {component, check, device, c.max_abs_err, tol.atol, c.ok, c.ok ? "" : c.message()};
}

Tensor uniform(const Shape& shape, uint64_t seed, uint64_t offset, double lo, double hi, DType d = DType::f32) {
  Tensor t = Tensor::empty(shape, d);
  fill_uniform(t, lo, hi, seed, offset);
  return t;
}

// Finite differences of loss() with respect to x against the analytic gradient (f64).
CheckRow gradient_row(const std::string& component, const std::string& check, Tensor& x,
                      const std::function<double()>& loss, const Tensor& analytic) {
  const Tolerance tol{1e-7, 1e-6};
  return row(component, check, "cpu", compare_tensors(analytic, numeric_gradient(x, loss, 1e-6), tol), tol);
}
}  // namespace

std::vector<CheckRow> selftest_layers_conv_bn(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  const uint64_t seed = o.seed;
  {  // x = 1..9 in 3×3, w = the 3×3 identity, padding 1, bias 0.5: y[p,q] = x[p−1,q−1] + x[p,q] + x[p+1,q+1] + 0.5
    const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
    const Tensor w = Tensor::from_vector<float>({1, 0, 0, 0, 1, 0, 0, 0, 1}, {1, 1, 3, 3});
    const Tensor b = Tensor::from_vector<float>({0.5f}, {1});
    const Tensor want = Tensor::from_vector<float>({6.5f, 8.5f, 3.5f, 12.5f, 15.5f, 8.5f, 7.5f, 12.5f, 14.5f},
                                                   {1, 1, 3, 3});
    rows.push_back(row("conv2d", "3x3 worked example", "cpu",
                       compare_tensors(conv2d_forward(x, w, b, {.padding = 1, .bias = true}), want, {0, 0}), {0, 0}));
  }
  // Conv2d gradients, f64: a strided, dilated, grouped case with bias, and a depthwise one.
  struct ConvCase {
    const char* label;
    Shape x, w;
    Conv2dOptions opt;
  };
  const ConvCase conv_cases[] = {
      {"s2 d2 g2", {2, 4, 7, 6}, {6, 2, 3, 3}, {.stride = 2, .padding = 2, .dilation = 2, .groups = 2, .bias = true}},
      {"depthwise", {1, 3, 6, 5}, {3, 1, 3, 3}, {.padding = 1, .groups = 3, .bias = true}},
  };
  uint64_t offset = 0;
  for (const ConvCase& cc : conv_cases) {
    Tensor x = uniform(cc.x, seed, offset++, -1, 1, DType::f64);
    Tensor w = uniform(cc.w, seed, offset++, -0.5, 0.5, DType::f64);
    Tensor b = uniform({cc.w[0]}, seed, offset++, -1, 1, DType::f64);
    const Tensor y = conv2d_forward(x, w, b, cc.opt);
    const Tensor r = uniform(y.shape(), seed, offset++, -1, 1, DType::f64);
    const Conv2dGrads g = conv2d_backward(r, x, w, cc.opt, true, true);
    auto loss = [&] { return dot(conv2d_forward(x, w, b, cc.opt), r); };
    const std::string l = cc.label;
    rows.push_back(gradient_row("conv2d", "dL/dx finite differences f64 (" + l + ")", x, loss, g.dx));
    rows.push_back(gradient_row("conv2d", "dL/dw finite differences f64 (" + l + ")", w, loss, g.dw));
    rows.push_back(gradient_row("conv2d", "dL/db finite differences f64 (" + l + ")", b, loss, g.db));
  }
  {  // BatchNorm2d training gradients, f64
    Tensor x = uniform({2, 3, 4, 5}, seed, offset++, -2, 3, DType::f64);
    Tensor gamma = uniform({3}, seed, offset++, 0.5, 1.5, DType::f64);
    Tensor beta = uniform({3}, seed, offset++, -1, 1, DType::f64);
    const Tensor rm = Tensor::zeros({3}, DType::f64), rv = Tensor::full({3}, 1.0, DType::f64);
    const Tensor r = uniform(x.shape(), seed, offset++, -1, 1, DType::f64);
    Tensor rm1 = rm.clone(), rv1 = rv.clone();
    BatchNormSaved saved;
    batchnorm2d_forward_train(x, gamma, beta, rm1, rv1, 1e-5, 0.1, &saved);
    const BatchNorm2dGrads g = batchnorm2d_backward(r, x, gamma, saved);
    auto loss = [&] {
      Tensor m = rm.clone(), v = rv.clone();
      return dot(batchnorm2d_forward_train(x, gamma, beta, m, v, 1e-5, 0.1, nullptr), r);
    };
    rows.push_back(gradient_row("batchnorm2d", "dL/dx finite differences f64 (train)", x, loss, g.dx));
    rows.push_back(gradient_row("batchnorm2d", "dL/dgamma finite differences f64", gamma, loss, g.dgamma));
    rows.push_back(gradient_row("batchnorm2d", "dL/dbeta finite differences f64", beta, loss, g.dbeta));
  }
  if (!o.gpu) return rows;

  const Device gpu = Device::cuda(0);
  const std::string dev = device_label(gpu);
  const Tolerance fwd_tol{2e-5, 1e-4}, grad_tol{1e-4, 1e-4};
  for (const ConvCase& cc : conv_cases) {
    const Shape xs{cc.x[0] * 2, cc.x[1], cc.x[2] * 3 + 1, cc.x[3] * 3};  // larger, odd sizes
    const Tensor x = uniform(xs, seed, offset++, -1, 1);
    const Tensor w = uniform(cc.w, seed, offset++, -0.5, 0.5);
    const Tensor b = uniform({cc.w[0]}, seed, offset++, -1, 1);
    const Tensor y = conv2d_forward(x, w, b, cc.opt);
    const Tensor r = uniform(y.shape(), seed, offset++, -1, 1);
    const std::string l = cc.label;
    rows.push_back(row("conv2d", "forward vs CPU (" + l + ")", dev,
                       compare_tensors(conv2d_forward(x.to(gpu), w.to(gpu), b.to(gpu), cc.opt), y, fwd_tol), fwd_tol));
    const Conv2dGrads want = conv2d_backward(r, x, w, cc.opt, true, true);
    const Conv2dGrads got = conv2d_backward(r.to(gpu), x.to(gpu), w.to(gpu), cc.opt, true, true);
    rows.push_back(row("conv2d", "dx vs CPU (" + l + ")", dev, compare_tensors(got.dx, want.dx, grad_tol), grad_tol));
    rows.push_back(row("conv2d", "dw vs CPU (" + l + ")", dev, compare_tensors(got.dw, want.dw, grad_tol), grad_tol));
    rows.push_back(row("conv2d", "db vs CPU (" + l + ")", dev, compare_tensors(got.db, want.db, grad_tol), grad_tol));
  }
  {
    const Shape xs{4, 5, 19, 23};
    const Tensor x = uniform(xs, seed, offset++, -2, 3);
    const Tensor gamma = uniform({5}, seed, offset++, 0.5, 1.5);
    const Tensor beta = uniform({5}, seed, offset++, -1, 1);
    const Tensor rm0 = uniform({5}, seed, offset++, -0.5, 0.5);
    const Tensor rv0 = uniform({5}, seed, offset++, 0.5, 2);
    const Tensor r = uniform(xs, seed, offset++, -1, 1);
    Tensor rm = rm0.clone(), rv = rv0.clone();
    BatchNormSaved saved;
    const Tensor y = batchnorm2d_forward_train(x, gamma, beta, rm, rv, 1e-5, 0.1, &saved);
    const BatchNorm2dGrads want = batchnorm2d_backward(r, x, gamma, saved);
    Tensor grm = rm0.to(gpu), grv = rv0.to(gpu);
    BatchNormSaved gsaved;
    const Tensor gy =
        batchnorm2d_forward_train(x.to(gpu), gamma.to(gpu), beta.to(gpu), grm, grv, 1e-5, 0.1, &gsaved);
    const BatchNorm2dGrads got = batchnorm2d_backward(r.to(gpu), x.to(gpu), gamma.to(gpu), gsaved);
    rows.push_back(row("batchnorm2d", "train forward vs CPU", dev, compare_tensors(gy, y, fwd_tol), fwd_tol));
    rows.push_back(row("batchnorm2d", "running_var update vs CPU", dev, compare_tensors(grv, rv, fwd_tol), fwd_tol));
    rows.push_back(row("batchnorm2d", "dx vs CPU", dev, compare_tensors(got.dx, want.dx, grad_tol), grad_tol));
    rows.push_back(
        row("batchnorm2d", "dgamma vs CPU", dev, compare_tensors(got.dgamma, want.dgamma, grad_tol), grad_tol));
    const Tensor ye = batchnorm2d_forward_eval(x, gamma, beta, rm0, rv0, 1e-5);
    const Tensor gye = batchnorm2d_forward_eval(x.to(gpu), gamma.to(gpu), beta.to(gpu), rm0.to(gpu), rv0.to(gpu), 1e-5);
    rows.push_back(row("batchnorm2d", "eval forward vs CPU", dev, compare_tensors(gye, ye, fwd_tol), fwd_tol));
  }
  return rows;
}

}  // namespace rdd::apps
