// `rdd selftest` group "layers-ops": ReLU/ReLU6, MaxPool2d, AdaptiveAvgPool2d, concat/split, add,
// bilinear resize and the evaluation ops (GPU rows) and Dropout/Dropout2d — closed-form answers and f64 finite-difference gradients on the CPU, and (with a
// GPU) the CUDA kernels against the CPU reference.
#include <cmath>
#include <numeric>

#include "apps/cmd_selftest.h"
#include "engine/numeric_check.h"
#include "engine/philox.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/eval_ops.h"
#include "layers/pooling.h"
#include "layers/resize.h"
#include "layers/tensor_ops.h"

namespace rdd::apps {

namespace {
using namespace rdd::layers;

CheckRow row(const std::string& check, const std::string& device, const Comparison& c, Tolerance tol) {
  return {"layers-ops", check, device, c.max_abs_err, tol.atol, c.ok, c.ok ? "" : c.message()};
}
CheckRow exact(const std::string& check, bool ok, const std::string& detail) {
  return {"layers-ops", check, "cpu", 0, 0, ok, ok ? "" : detail};
}

Tensor uniform(const Shape& shape, uint64_t seed, uint64_t offset, double lo, double hi, DType d = DType::f32) {
  Tensor t = Tensor::empty(shape, d);
  fill_uniform(t, lo, hi, seed, offset);
  return t;
}

// f64 values all distinct and ≥ 2/numel apart: no max-pool ties, no argmax flips under a 1e-6 step.
Tensor distinct(const Shape& shape, uint64_t seed) {
  Tensor x = Tensor::empty(shape, DType::f64);
  const int64_t n = x.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  PhiloxStream s(seed, 0x0b5);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(s.next_int(0, i + 1))]);
  for (int64_t i = 0; i < n; ++i) x.at<double>(i) = -1.0 + 2.0 * double(order[size_t(i)]) / double(n);
  return x;
}

// Finite differences of Σ f(x)·r against the analytic gradient.
CheckRow gradient_row(const std::string& check, Tensor& x, const std::function<Tensor()>& forward, const Tensor& r,
                      const Tensor& analytic) {
  // The ops are piecewise linear and the data keeps ≥ 3e-3 from every kink: a step of 1e-4 stays on
  // one piece and keeps rounding noise far below the tolerance.
  const Tensor numeric = numeric_gradient(x, [&] { return dot(forward(), r); }, 1e-4);
  const Tolerance tol{1e-8, 1e-6};
  return row(check, "cpu", compare_tensors(analytic, numeric, tol), tol);
}
}  // namespace

std::vector<CheckRow> selftest_layers_ops(const SelftestOptions& o) {
  std::vector<CheckRow> rows;
  const uint64_t seed = o.seed;
  {
    const Tensor x = Tensor::from_vector<float>({-2.f, 0.f, 0.5f, 6.f, 7.5f}, {5});
    const Tensor dy = Tensor::from_vector<float>({1.f, 2.f, 3.f, 4.f, 5.f}, {5});
    const bool ok = relu_forward(x, false).to_vector<float>() == std::vector<float>{0, 0, 0.5f, 6, 7.5f} &&
                    relu_forward(x, true).to_vector<float>() == std::vector<float>{0, 0, 0.5f, 6, 6} &&
                    relu_backward(dy, x, true).to_vector<float>() == std::vector<float>{0, 0, 3, 0, 0};
    rows.push_back(exact("relu/relu6 closed form", ok, "values or kink gradients differ from the definition"));
  }
  {
    const bool ok = maxpool2d_output_size(112, {3, 2, 1, false}) == 56 && maxpool2d_output_size(5, {2, 2, 0, true}) == 3 &&
                    maxpool2d_output_size(5, {2, 3, 1, true}) == 2 && maxpool2d_output_size(5, {2, 2, 0, false}) == 2;
    rows.push_back(exact("maxpool2d output size (PyTorch rule)", ok, "floor/ceil/last-window rule broken"));
  }
  {
    const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
    const bool ok = adaptive_avgpool2d_forward(x, 2, 2).to_vector<float>() == std::vector<float>{3, 4, 6, 7};
    rows.push_back(exact("adaptive avgpool2d overlapping bins", ok, "3x3 -> 2x2 bins are not [0,2), [1,3)"));
  }
  {
    Tensor x = uniform({2, 3, 5, 7}, seed, 1, -4, 9, DType::f64);
    for (int64_t i = 0; i < x.numel(); ++i)
      for (double k : {0.0, 6.0})
        if (std::fabs(x.at<double>(i) - k) < 0.05) x.at<double>(i) = k + 0.05;
    const Tensor r = uniform(x.shape(), seed, 2, -1, 1, DType::f64);
    rows.push_back(gradient_row("relu6 dL/dx finite differences (f64)", x, [&] { return relu_forward(x, true); }, r,
                                relu_backward(r, relu_forward(x, true), true)));
  }
  {
    const MaxPool2dOptions opt{3, 2, 1, true};
    Tensor x = distinct({2, 3, 9, 11}, seed);
    Tensor idx;
    const Tensor y = maxpool2d_forward(x, opt, &idx);
    const Tensor r = uniform(y.shape(), seed, 3, -1, 1, DType::f64);
    rows.push_back(gradient_row("maxpool2d dL/dx finite differences (f64)", x, [&] { return maxpool2d_forward(x, opt); },
                                r, maxpool2d_backward(r, idx, 9, 11, opt)));
  }
  {
    Tensor x = uniform({2, 3, 7, 9}, seed, 4, -1, 1, DType::f64);
    const Tensor r = uniform({2, 3, 3, 3}, seed, 5, -1, 1, DType::f64);
    rows.push_back(gradient_row("adaptive avgpool2d dL/dx finite diff (f64)", x,
                                [&] { return adaptive_avgpool2d_forward(x, 3, 3); }, r,
                                adaptive_avgpool2d_backward(r, 7, 9)));
  }
  {
    const Tensor a = uniform({2, 3, 5, 7}, seed, 6, -1, 1), b = uniform({2, 5, 5, 7}, seed, 7, -1, 1);
    const std::vector<Tensor> parts = split_channels(concat_channels({a, b}), {3, 5});
    const Comparison c = compare_tensors(parts[1], b, {0, 0});
    const Comparison c0 = compare_tensors(parts[0], a, {0, 0});
    rows.push_back(row("concat/split round trip", "cpu", c0.ok ? c : c0, {0, 0}));
  }
  {
    const double p = 0.3;
    const Tensor x = uniform({4, 25000}, seed, 8, 0.5, 1.5);
    const Tensor y = dropout_forward(x, p, false, seed, 9);
    int64_t zeros = 0, wrong = 0;
    const float scale = float(1.0 / (1.0 - p));
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool keep = double(philox::uniform(seed, 9, uint64_t(i))) >= p;
      zeros += !keep;
      wrong += y.at<float>(i) != (keep ? x.at<float>(i) * scale : 0.f);
    }
    const double frac = double(zeros) / double(x.numel());
    const double sigma = std::sqrt(p * (1 - p) / double(x.numel()));
    rows.push_back({"layers-ops", "dropout mask rule and fraction dropped", "cpu", std::fabs(frac - p), 5 * sigma,
                    wrong == 0 && std::fabs(frac - p) < 5 * sigma,
                    wrong == 0 && std::fabs(frac - p) < 5 * sigma
                        ? ""
                        : std::to_string(wrong) + " elements off the rule; fraction dropped " + std::to_string(frac)});
  }
  if (!o.gpu) return rows;

  const Device g = Device::cuda(0);
  const std::string gs = device_label(g);
  const Tolerance zero{0, 0}, f32 = default_tolerance(DType::f32);
  const Tensor x = uniform({2, 5, 13, 17}, seed, 20, -3, 8);
  const Tensor xg = x.to(g);
  {
    const Tensor y = relu_forward(x, true), yg = relu_forward(xg, true);
    rows.push_back(row("relu6 forward vs CPU", gs, compare_tensors(yg, y, zero), zero));
    const Tensor dy = uniform(x.shape(), seed, 21, -1, 1);
    rows.push_back(row("relu6 backward vs CPU", gs, compare_tensors(relu_backward(dy.to(g), yg, true),
                                                                    relu_backward(dy, y, true), zero), zero));
  }
  {
    const MaxPool2dOptions opt{3, 2, 1, true};
    Tensor idx, idx_g;
    const Tensor y = maxpool2d_forward(x, opt, &idx), yg = maxpool2d_forward(xg, opt, &idx_g);
    rows.push_back(row("maxpool2d forward vs CPU", gs, compare_tensors(yg, y, zero), zero));
    rows.push_back(row("maxpool2d indices vs CPU", gs, compare_tensors(idx_g, idx, zero), zero));
    const Tensor dy = uniform(y.shape(), seed, 22, -1, 1);
    rows.push_back(row("maxpool2d backward vs CPU", gs,
                       compare_tensors(maxpool2d_backward(dy.to(g), idx_g, 13, 17, opt),
                                       maxpool2d_backward(dy, idx, 13, 17, opt), zero), zero));
  }
  {
    rows.push_back(row("adaptive avgpool2d forward vs CPU", gs,
                       compare_tensors(adaptive_avgpool2d_forward(xg, 6, 6), adaptive_avgpool2d_forward(x, 6, 6), f32),
                       f32));
    const Tensor dy = uniform({2, 5, 6, 6}, seed, 23, -1, 1);
    rows.push_back(row("adaptive avgpool2d backward vs CPU", gs,
                       compare_tensors(adaptive_avgpool2d_backward(dy.to(g), 13, 17),
                                       adaptive_avgpool2d_backward(dy, 13, 17), zero), zero));
  }
  {
    const Tensor b = uniform({2, 3, 13, 17}, seed, 24, -1, 1);
    rows.push_back(row("concat_channels vs CPU", gs,
                       compare_tensors(concat_channels({xg, b.to(g)}), concat_channels({x, b}), zero), zero));
    const Tensor c = uniform(x.shape(), seed, 25, -1, 1);
    rows.push_back(row("add vs CPU", gs, compare_tensors(add(xg, c.to(g)), add(x, c), zero), zero));
  }
  for (bool align_corners : {true, false}) {  // up (the heads' final upsample) and down, odd sizes
    const std::string ac = align_corners ? " (align_corners)" : "";
    for (const auto& [oh, ow] : {std::pair<int, int>{29, 40}, std::pair<int, int>{6, 9}}) {
      const std::string dir = oh > 13 ? "up" : "down";
      rows.push_back(row("bilinear resize " + dir + " forward vs CPU" + ac, gs,
                         compare_tensors(bilinear_resize_forward(xg, oh, ow, align_corners),
                                         bilinear_resize_forward(x, oh, ow, align_corners), f32),
                         f32));
      const Tensor dy = uniform({2, 5, oh, ow}, seed, 27, -1, 1);
      rows.push_back(row("bilinear resize " + dir + " backward vs CPU" + ac, gs,
                         compare_tensors(bilinear_resize_backward(dy.to(g), 13, 17, align_corners),
                                         bilinear_resize_backward(dy, 13, 17, align_corners), f32),
                         f32));
    }
  }
  {  // the evaluation ops (flip, sliding-window crop and accumulate, softmax, divide by the count map)
    rows.push_back(row("flip_width vs CPU", gs, compare_tensors(flip_width(xg), flip_width(x), zero), zero));
    rows.push_back(row("crop_window vs CPU", gs,
                       compare_tensors(crop_window(xg, 3, 5, 7, 9), crop_window(x, 3, 5, 7, 9), zero), zero));
    Tensor acc = uniform(x.shape(), seed, 28, -1, 1);
    Tensor acc_g = acc.to(g);
    const Tensor window = uniform({2, 5, 7, 9}, seed, 29, -1, 1);
    add_window_(acc, window, 3, 5);
    add_window_(acc_g, window.to(g), 3, 5);
    rows.push_back(row("add_window_ vs CPU", gs, compare_tensors(acc_g, acc, zero), zero));
    rows.push_back(row("softmax_channels vs CPU", gs, compare_tensors(softmax_channels(xg), softmax_channels(x), f32), f32));
    const Tensor map = uniform({13, 17}, seed, 30, 1, 4);
    Tensor q = x.clone(), q_g = xg.clone();
    divide_by_map_(q, map);
    divide_by_map_(q_g, map.to(g));
    rows.push_back(row("divide_by_map_ vs CPU", gs, compare_tensors(q_g, q, f32), f32));
  }
  for (bool channelwise : {false, true}) {
    rows.push_back(row(channelwise ? "dropout2d mask and values vs CPU" : "dropout mask and values vs CPU", gs,
                       compare_tensors(dropout_forward(xg, 0.3, channelwise, seed, 26),
                                       dropout_forward(x, 0.3, channelwise, seed, 26), zero), zero));
  }
  return rows;
}

}  // namespace rdd::apps
