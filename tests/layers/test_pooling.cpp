#include "layers/pooling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/rng.h"
#include "harness.h"
#include "layers/pooling_index.h"
#include "torch_parity_ops.h"

using namespace rdd;
using namespace rdd::layers;

namespace {
// f64 values that are all distinct and at least 2/numel apart (a Philox shuffle of an even grid), so
// a max-pool window never has a tie and a finite-difference step never changes an argmax.
Tensor distinct_values(const Shape& shape, uint64_t seed) {
  Tensor x = Tensor::empty(shape, DType::f64);
  const int64_t n = x.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  PhiloxStream s(seed, 0x5f1e);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(s.next_int(0, i + 1))]);
  for (int64_t i = 0; i < n; ++i) x.at<double>(i) = -1.0 + 2.0 * double(order[size_t(i)]) / double(n);
  return x;
}

std::vector<float> iota_values(int64_t n, float start = 1.f) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}
}  // namespace

TEST_CASE("maxpool2d output size follows PyTorch (floor, ceil, last window inside)") {
  CHECK(maxpool2d_output_size(4, {2, 2, 0, false}) == 2);
  CHECK(maxpool2d_output_size(5, {2, 2, 0, false}) == 2);
  CHECK(maxpool2d_output_size(5, {2, 2, 0, true}) == 3);
  CHECK(maxpool2d_output_size(112, {3, 2, 1, false}) == 56);  // the ResNet stem
  CHECK(maxpool2d_output_size(7, {3, 2, 1, true}) == 4);
  // ceil mode: a 3rd window would start at (3−1)·3 = 6 ≥ H + pad = 5 + 1, entirely in the right padding → dropped.
  CHECK(maxpool2d_output_size(5, {2, 3, 1, true}) == 2);
  CHECK(maxpool2d_output_size(5, {2, 3, 1, false}) == 2);
  CHECK(maxpool2d_output_size(2, {5, 1, 1, false}) == 0);  // kernel larger than the padded input
}

TEST_CASE("maxpool2d: closed-form values, argmax indices, ties to the first, and backward routing") {
  // 1x1x4x4, values 1..16 row-major: each 2x2 window's max is its bottom-right element.
  const Tensor x = Tensor::from_vector<float>(iota_values(16), {1, 1, 4, 4});
  Tensor idx;
  const Tensor y = maxpool2d_forward(x, {2, 2, 0, false}, &idx);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  CHECK(y.to_vector<float>() == std::vector<float>{6, 8, 14, 16});
  CHECK(idx.dtype() == DType::i32);
  CHECK(idx.to_vector<int32_t>() == std::vector<int32_t>{5, 7, 13, 15});
  const Tensor dy = Tensor::from_vector<float>({1.5f, -2.f, 3.f, 0.25f}, {1, 1, 2, 2});
  const std::vector<float> dx = maxpool2d_backward(dy, idx, 4, 4, {2, 2, 0, false}).to_vector<float>();
  std::vector<float> want(16, 0.f);
  want[5] = 1.5f, want[7] = -2.f, want[13] = 3.f, want[15] = 0.25f;
  CHECK(dx == want);

  // Padding 1, kernel 3, stride 2 (ResNet stem) on 4x4: windows rows {-1..1}, {1..3}; padding never wins
  // even when every real value is negative.
  const Tensor neg = Tensor::from_vector<float>(iota_values(16, -20.f), {1, 1, 4, 4});
  const Tensor yp = maxpool2d_forward(neg, {3, 2, 1, false}, &idx);
  CHECK(yp.to_vector<float>() == std::vector<float>{-15, -13, -7, -5});
  CHECK(idx.to_vector<int32_t>() == std::vector<int32_t>{5, 7, 13, 15});

  // Ties: the first maximum in row-major window order wins; overlapping windows (stride 1) that pick
  // the same element add their gradients there.
  const Tensor tie = Tensor::from_vector<float>({2, 7, 7, 1, 7, 3, 0, 7, 5}, {1, 1, 3, 3});
  const Tensor yt = maxpool2d_forward(tie, {2, 1, 0, false}, &idx);
  CHECK(yt.to_vector<float>() == std::vector<float>{7, 7, 7, 7});
  CHECK(idx.to_vector<int32_t>() == std::vector<int32_t>{1, 1, 4, 4});
  const Tensor ones = Tensor::from_vector<float>({1, 10, 100, 1000}, {1, 1, 2, 2});
  CHECK(maxpool2d_backward(ones, idx, 3, 3, {2, 1, 0, false}).to_vector<float>() ==
        std::vector<float>{0, 11, 0, 0, 1100, 0, 0, 0, 0});

  // ceil mode: 5x5, kernel 2 stride 2 → 3x3, the last row/column of windows is 1 element wide.
  const Tensor x5 = Tensor::from_vector<float>(iota_values(25), {1, 1, 5, 5});
  const Tensor yc = maxpool2d_forward(x5, {2, 2, 0, true}, &idx);
  CHECK(yc.to_vector<float>() == std::vector<float>{7, 9, 10, 17, 19, 20, 22, 24, 25});
  CHECK(maxpool2d_forward(x5, {2, 2, 0, false}).to_vector<float>() == std::vector<float>{7, 9, 17, 19});
}

TEST_CASE("maxpool2d propagates NaN like PyTorch") {
  const Tensor x = Tensor::from_vector<float>({1, std::nanf(""), 3, 4}, {1, 1, 2, 2});
  Tensor idx;
  const Tensor y = maxpool2d_forward(x, {2, 2, 0, false}, &idx);
  CHECK(std::isnan(y.to_vector<float>()[0]));
  CHECK(idx.to_vector<int32_t>()[0] == 1);
}

TEST_CASE("maxpool2d: f64 finite-difference gradients (no ties), every option combination") {
  const MaxPool2dOptions cases[] = {{2, 2, 0, false}, {3, 2, 1, false}, {3, 2, 1, true}, {3, 1, 1, false},
                                    {2, 3, 1, true},  {3, 3, 0, true},  {1, 1, 0, false}};
  uint64_t seed = 40;
  for (const MaxPool2dOptions& o : cases) {
    INFO("kernel " << o.kernel << " stride " << o.stride << " padding " << o.padding << " ceil " << o.ceil_mode);
    Tensor x = distinct_values({2, 3, 9, 11}, ++seed);
    Tensor idx;
    const Tensor y = maxpool2d_forward(x, o, &idx);
    CHECK(y.size(2) == maxpool2d_output_size(9, o));
    CHECK(y.size(3) == maxpool2d_output_size(11, o));
    const Tensor r = test::random_tensor(y.shape(), ++seed, -1.0, 1.0, DType::f64);
    const Tensor dx = maxpool2d_backward(r, idx, 9, 11, o);
    test::check_gradient("maxpool2d dL/dx", x, [&] { return dot(maxpool2d_forward(x, o), r); }, dx, 1e-6,
                         Tolerance{1e-8, 1e-6});
  }
}

TEST_CASE("adaptive avgpool2d: closed-form overlapping bins, global pooling, upsampling") {
  // 3x3 → 2x2: bins rows/cols [0,2) and [1,3), overlapping in the middle.
  const Tensor x = Tensor::from_vector<float>(iota_values(9), {1, 1, 3, 3});
  CHECK(adaptive_avgpool2d_forward(x, 2, 2).to_vector<float>() == std::vector<float>{3, 4, 6, 7});
  const Tensor dy = Tensor::from_vector<float>({4, 8, 12, 16}, {1, 1, 2, 2});
  CHECK(adaptive_avgpool2d_backward(dy, 3, 3).to_vector<float>() ==
        std::vector<float>{1, 3, 2, 4, 10, 6, 3, 7, 4});
  // Global: the mean of each plane; backward spreads dy / (H·W).
  const Tensor x2 = Tensor::from_vector<float>(iota_values(24), {1, 2, 3, 4});
  CHECK(adaptive_avgpool2d_forward(x2, 1, 1).to_vector<float>() == std::vector<float>{6.5f, 18.5f});
  const std::vector<float> g = adaptive_avgpool2d_backward(Tensor::from_vector<float>({12, 24}, {1, 2, 1, 1}), 3, 4)
                                   .to_vector<float>();
  for (int i = 0; i < 24; ++i) CHECK(g[size_t(i)] == (i < 12 ? 1.f : 2.f));
  // 2 → 3 bins: [0,1), [0,2), [1,2).
  const Tensor x3 = Tensor::from_vector<float>({2, 4}, {1, 1, 1, 2});
  CHECK(adaptive_avgpool2d_forward(x3, 1, 3).to_vector<float>() == std::vector<float>{2, 3, 4});
  // 7 → 3 bins: [0,3), [2,5), [4,7).
  const Tensor x7 = Tensor::from_vector<float>(iota_values(7, 0.f), {1, 1, 7, 1});
  CHECK(adaptive_avgpool2d_forward(x7, 3, 1).to_vector<float>() == std::vector<float>{1, 3, 5});
}

TEST_CASE("adaptive avgpool2d: f64 finite-difference gradients for sizes that do not divide") {
  const std::pair<int, int> outs[] = {{1, 1}, {2, 2}, {3, 3}, {6, 6}, {4, 2}, {8, 10}};
  uint64_t seed = 60;
  for (auto [oh, ow] : outs) {
    INFO("out " << oh << "x" << ow);
    Tensor x = test::random_tensor({2, 3, 7, 9}, ++seed, -1.0, 1.0, DType::f64);
    const Tensor y = adaptive_avgpool2d_forward(x, oh, ow);
    CHECK(y.shape() == Shape{2, 3, oh, ow});
    const Tensor r = test::random_tensor(y.shape(), ++seed, -1.0, 1.0, DType::f64);
    const Tensor dx = adaptive_avgpool2d_backward(r, 7, 9);
    test::check_gradient("adaptive avgpool2d dL/dx", x, [&] { return dot(adaptive_avgpool2d_forward(x, oh, ow), r); },
                         dx, 1e-6, Tolerance{1e-8, 1e-6});
  }
}

TEST_CASE("MaxPool2d and AdaptiveAvgPool2d modules: train caches, eval does not") {
  const Tensor x = test::random_tensor({2, 3, 9, 10}, 70);
  const Tensor dy = test::random_tensor({2, 3, 5, 5}, 71);
  MaxPool2d pool(3, 2, 1, false);
  CHECK(pool.options().kernel == 3);
  Tensor idx;
  const Tensor want = maxpool2d_forward(x, pool.options(), &idx);
  CHECK_TENSORS_CLOSE(pool.forward(x), want, Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(pool.backward(dy), maxpool2d_backward(dy, idx, 9, 10, pool.options()), Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(pool.backward(dy), doctest::Contains("no cached indices"), Error);
  pool.set_mode(Mode::eval);
  CHECK_TENSORS_CLOSE(pool.forward(x), want, Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(pool.backward(dy), doctest::Contains("eval mode"), Error);

  AdaptiveAvgPool2d gap(2, 3);
  const Tensor r = test::random_tensor({2, 3, 2, 3}, 72);
  CHECK_TENSORS_CLOSE(gap.forward(x), adaptive_avgpool2d_forward(x, 2, 3), Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(gap.backward(r), adaptive_avgpool2d_backward(r, 9, 10), Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(gap.backward(r), doctest::Contains("no forward"), Error);
  gap.set_mode(Mode::eval);
  CHECK_TENSORS_CLOSE(gap.forward(x), adaptive_avgpool2d_forward(x, 2, 3), Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(gap.backward(r), doctest::Contains("eval mode"), Error);
}

TEST_CASE("pooling: argument errors name the layer and the shapes") {
  const Tensor x = test::random_tensor({1, 3, 2, 2}, 80);
  CHECK_THROWS_WITH_AS(maxpool2d_forward(x, {5, 1, 1, false}),
                       doctest::Contains("kernel 5 is larger than the padded input 4x4 (input f32[1,3,2,2]"), Error);
  CHECK_THROWS_WITH_AS(maxpool2d_forward(x, {3, 1, 2, false}), doctest::Contains("padding 2 must be at most half"),
                       Error);
  CHECK_THROWS_WITH_AS(MaxPool2d(3, 2, 2), doctest::Contains("MaxPool2d: padding 2"), Error);
  CHECK_THROWS_WITH_AS(MaxPool2d(3, 0, 1), doctest::Contains("stride 0"), Error);
  CHECK_THROWS_WITH_AS(maxpool2d_forward(Tensor::zeros({3, 4, 4}), {2, 2, 0, false}),
                       doctest::Contains("MaxPool2d: input must be 4-D, got f32[3,4,4]"), Error);
  CHECK_THROWS_WITH_AS(maxpool2d_forward(Tensor::zeros({1, 1, 4, 4}, DType::i32), {2, 2, 0, false}),
                       doctest::Contains("i32[1,1,4,4]"), Error);
  CHECK_THROWS_WITH_AS(maxpool2d_forward(x.to_layout(Layout::NHWC), {2, 2, 0, false}),
                       doctest::Contains("only NCHW"), Error);
  Tensor idx;
  const Tensor y = maxpool2d_forward(test::random_tensor({1, 2, 8, 8}, 81), {2, 2, 0, false}, &idx);
  CHECK_THROWS_WITH_AS(maxpool2d_backward(y, idx, 9, 9, {3, 2, 1, false}),
                       doctest::Contains("not the output size of a 9x9 input"), Error);
  CHECK_THROWS_WITH_AS(maxpool2d_backward(y, idx.view({1, 2, 16}), 8, 8, {2, 2, 0, false}),
                       doctest::Contains("do not match dy"), Error);
  CHECK_THROWS_WITH_AS(adaptive_avgpool2d_forward(x, 0, 3), doctest::Contains("AdaptiveAvgPool2d: output size 0x3"),
                       Error);
  CHECK_THROWS_WITH_AS(adaptive_avgpool2d_forward(Tensor::zeros({2, 3}), 1, 1),
                       doctest::Contains("AdaptiveAvgPool2d: input must be 4-D, got f32[2,3]"), Error);
  CHECK_THROWS_WITH_AS(AdaptiveAvgPool2d(1, 1).backward(y), doctest::Contains("no forward"), Error);
}

GPU_TEST_CASE("maxpool2d on the GPU matches the CPU exactly (values, indices, gradients)") {
  const Device g = Device::cuda(0);
  const Shape shapes[] = {{1, 3, 7, 9}, {2, 5, 13, 17}, {3, 3, 64, 128}, {1, 1, 1, 1}};
  const MaxPool2dOptions cases[] = {{2, 2, 0, false}, {3, 2, 1, false}, {3, 2, 1, true}, {3, 1, 1, false},
                                    {1, 1, 0, false}};
  uint64_t seed = 90;
  for (const Shape& shape : shapes) {
    for (const MaxPool2dOptions& o : cases) {
      if (maxpool2d_output_size(shape[2], o) < 1 || maxpool2d_output_size(shape[3], o) < 1) continue;
      for (DType d : {DType::f32, DType::f64}) {
        INFO(shape_str(shape) << " kernel " << o.kernel << " stride " << o.stride << " padding " << o.padding
                              << " ceil " << o.ceil_mode << " " << dtype_name(d));
        // Quantised values: plenty of ties, so the first-maximum rule is exercised on both sides.
        Tensor x = test::random_tensor(shape, ++seed, -4.0, 4.0, d);
        for (int64_t i = 0; i < x.numel(); i += 2) {
          if (d == DType::f32) x.at<float>(i) = std::round(x.at<float>(i));
          else x.at<double>(i) = std::round(x.at<double>(i));
        }
        Tensor idx, idx_g;
        const Tensor y = maxpool2d_forward(x, o, &idx);
        const Tensor yg = maxpool2d_forward(x.to(g), o, &idx_g);
        CHECK_TENSORS_CLOSE(yg, y, Tolerance{0, 0});
        CHECK(idx_g.to_vector<int32_t>() == idx.to_vector<int32_t>());
        CHECK_TENSORS_CLOSE(maxpool2d_forward(x.to(g), o), y, Tolerance{0, 0});  // eval path, no indices
        const Tensor dy = test::random_tensor(y.shape(), ++seed, -1.0, 1.0, d);
        CHECK_TENSORS_CLOSE(maxpool2d_backward(dy.to(g), idx_g, shape[2], shape[3], o),
                            maxpool2d_backward(dy, idx, shape[2], shape[3], o), Tolerance{0, 0});
      }
    }
  }
}

GPU_TEST_CASE("adaptive avgpool2d on the GPU matches the CPU") {
  const Device g = Device::cuda(0);
  const Shape shapes[] = {{1, 3, 7, 9}, {2, 5, 13, 17}, {2, 3, 64, 128}, {1, 5, 2, 3}};
  const std::pair<int, int> outs[] = {{1, 1}, {2, 2}, {3, 3}, {6, 6}, {5, 7}};
  uint64_t seed = 120;
  for (const Shape& shape : shapes) {
    for (auto [oh, ow] : outs) {
      for (DType d : {DType::f32, DType::f64}) {
        INFO(shape_str(shape) << " → " << oh << "x" << ow << " " << dtype_name(d));
        const Tensor x = test::random_tensor(shape, ++seed, -1.0, 1.0, d);
        CHECK_TENSORS_CLOSE(adaptive_avgpool2d_forward(x.to(g), oh, ow), adaptive_avgpool2d_forward(x, oh, ow),
                            default_tolerance(d));
        const Tensor dy = test::random_tensor({shape[0], shape[1], oh, ow}, ++seed, -1.0, 1.0, d);
        CHECK_TENSORS_CLOSE(adaptive_avgpool2d_backward(dy.to(g), shape[2], shape[3]),
                            adaptive_avgpool2d_backward(dy, shape[2], shape[3]), Tolerance{0, 0});
      }
    }
  }
}

TEST_CASE("maxpool2d and adaptive avgpool2d match PyTorch (forward, indices, autograd backward)") {
  test::TorchCases cases;
  struct Pool {
    std::string name;
    Shape shape;
    MaxPool2dOptions o;
  };
  const Pool pools[] = {{"mp_a", {2, 3, 13, 17}, {3, 2, 1, false}}, {"mp_b", {2, 3, 13, 17}, {3, 2, 1, true}},
                        {"mp_c", {1, 5, 7, 9}, {2, 2, 0, true}},    {"mp_d", {1, 5, 7, 9}, {2, 2, 0, false}},
                        {"mp_e", {2, 3, 64, 128}, {3, 2, 1, true}}, {"mp_f", {1, 3, 5, 5}, {2, 3, 1, true}},
                        {"mp_g", {1, 3, 10, 11}, {4, 3, 2, true}}};
  uint64_t seed = 200;
  for (const Pool& p : pools) {
    const Tensor x = test::random_tensor(p.shape, ++seed);
    const int64_t oh = maxpool2d_output_size(p.shape[2], p.o), ow = maxpool2d_output_size(p.shape[3], p.o);
    cases.tensors[p.name + ".x"] = x;
    cases.tensors[p.name + ".r"] = test::random_tensor({p.shape[0], p.shape[1], oh, ow}, ++seed);
    cases.add(p.name, "maxpool " + std::to_string(p.o.kernel) + " " + std::to_string(p.o.stride) + " " +
                          std::to_string(p.o.padding) + " " + std::to_string(int(p.o.ceil_mode)));
  }
  const Shape in_shapes[] = {{2, 3, 7, 9}, {1, 5, 13, 17}, {2, 3, 64, 128}};
  const int outs[] = {1, 2, 3, 6};
  for (size_t s = 0; s < 3; ++s) {
    for (int o : outs) {
      const std::string name = "ad_" + std::to_string(s) + "_" + std::to_string(o);
      cases.tensors[name + ".x"] = test::random_tensor(in_shapes[s], ++seed);
      cases.tensors[name + ".r"] = test::random_tensor({in_shapes[s][0], in_shapes[s][1], o, o}, ++seed);
      cases.add(name, "adaptive " + std::to_string(o) + " " + std::to_string(o));
    }
  }
  cases.tensors["ad_rect.x"] = test::random_tensor({1, 3, 7, 9}, ++seed);
  cases.tensors["ad_rect.r"] = test::random_tensor({1, 3, 4, 11}, ++seed);  // 4 < 7 rows, 11 > 9 columns
  cases.add("ad_rect", "adaptive 4 11");

  const auto torch = test::run_torch_parity_ops(cases, "pooling-torch");
  if (torch.empty()) return;
  const Tolerance tol = default_tolerance(DType::f32);
  for (const Pool& p : pools) {
    INFO(p.name << " " << shape_str(p.shape) << " kernel " << p.o.kernel << " stride " << p.o.stride << " padding "
                << p.o.padding << " ceil " << p.o.ceil_mode);
    Tensor idx;
    const Tensor y = maxpool2d_forward(cases.tensors[p.name + ".x"], p.o, &idx);
    REQUIRE(torch.count(p.name + ".y"));
    CHECK(y.shape() == torch.at(p.name + ".y").shape());
    CHECK_TENSORS_CLOSE(y, torch.at(p.name + ".y"), Tolerance{0, 0});
    CHECK(idx.to_vector<int32_t>() == torch.at(p.name + ".idx").to_vector<int32_t>());
    CHECK_TENSORS_CLOSE(maxpool2d_backward(cases.tensors[p.name + ".r"], idx, p.shape[2], p.shape[3], p.o),
                        torch.at(p.name + ".dx"), tol);
  }
  for (const auto& [name, spec] : cases.metadata) {
    if (name.rfind("case.ad_", 0) != 0) continue;
    const std::string c = name.substr(5);
    INFO(c << ": " << spec);
    const Tensor& x = cases.tensors[c + ".x"];
    const Tensor& r = cases.tensors[c + ".r"];
    const Tensor y = adaptive_avgpool2d_forward(x, int(r.size(2)), int(r.size(3)));
    REQUIRE(torch.count(c + ".y"));
    CHECK(y.shape() == torch.at(c + ".y").shape());
    CHECK_TENSORS_CLOSE(y, torch.at(c + ".y"), tol);
    CHECK_TENSORS_CLOSE(adaptive_avgpool2d_backward(r, x.size(2), x.size(3)), torch.at(c + ".dx"), tol);
  }
}

TEST_CASE("pooling gather ranges (used by the GPU backward) match brute force") {
  using namespace rdd::layers::pool_index;
  for (int64_t in = 1; in <= 40; ++in) {
    for (int64_t out = 1; out <= 45; ++out) {
      for (int64_t r = 0; r < in; ++r) {
        int64_t lo = out, hi = -1;
        for (int64_t i = 0; i < out; ++i) {
          if (bin_start(i, in, out) <= r && r < bin_end(i, in, out)) {
            lo = std::min(lo, i);
            hi = std::max(hi, i);
          }
        }
        INFO("adaptive in " << in << " out " << out << " row " << r);
        REQUIRE(hi >= lo);  // every row is in some bin ...
        for (int64_t i = lo; i <= hi; ++i)  // ... and the bins containing it are contiguous
          REQUIRE((bin_start(i, in, out) <= r && r < bin_end(i, in, out)));
        REQUIRE(first_bin_containing(r, in, out) == lo);
        REQUIRE(last_bin_containing(r, in, out) == hi);
      }
    }
  }
  for (int kernel = 1; kernel <= 5; ++kernel) {
    for (int stride = 1; stride <= 4; ++stride) {
      for (int padding = 0; padding <= kernel / 2; ++padding) {
        for (bool ceil : {false, true}) {
          const MaxPool2dOptions o{kernel, stride, padding, ceil};
          for (int64_t in = 1; in <= 20; ++in) {
            const int64_t out = maxpool2d_output_size(in, o);
            if (out < 1) continue;
            for (int64_t r = 0; r < in; ++r) {
              int64_t lo = out, hi = -1;
              for (int64_t i = 0; i < out; ++i) {
                if (i * stride - padding <= r && r < i * stride - padding + kernel) {
                  lo = std::min(lo, i);
                  hi = std::max(hi, i);
                }
              }
              INFO("maxpool kernel " << kernel << " stride " << stride << " padding " << padding << " ceil " << ceil
                                     << " in " << in << " row " << r);
              const int64_t first = first_window_containing(r, kernel, stride, padding);
              const int64_t last = last_window_containing(r, stride, padding, out);
              if (hi < 0) {
                REQUIRE(first > last);  // a row no window covers (stride > kernel)
              } else {
                REQUIRE(first == lo);
                REQUIRE(last == hi);
              }
            }
          }
        }
      }
    }
  }
}
