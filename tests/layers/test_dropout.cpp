#include "layers/dropout.h"

#include <cmath>
#include <cstdio>

#include "engine/philox.h"
#include "harness.h"
#include "torch_parity_ops.h"

using namespace rdd;
using namespace rdd::layers;

TEST_CASE("dropout mask is philox uniform(seed, offset, i) >= p, scaled by 1/(1-p)") {
  const uint64_t seed = 1234, offset = 77;
  for (double p : {0.1, 0.5, 0.9}) {
    INFO("p = " << p);
    const Tensor x = test::random_tensor({2, 3, 5, 7}, 1, 0.5, 2.0);  // never 0: a drop is visible
    const Tensor y = dropout_forward(x, p, false, seed, offset);
    const Tensor mask = dropout_keep_mask(x.shape(), p, false, seed, offset);
    const float scale = float(1.0 / (1.0 - p));
    int dropped = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const bool keep = double(philox::uniform(seed, offset, uint64_t(i))) >= p;
      CHECK(mask.at<uint8_t>(i) == (keep ? 1 : 0));
      CHECK(y.at<float>(i) == (keep ? x.at<float>(i) * scale : 0.f));
      dropped += !keep;
    }
    CHECK(dropped > 0);
    CHECK(dropped < x.numel());
  }
}

TEST_CASE("dropout2d drops whole (n, c) planes with mask index n*C + c") {
  const uint64_t seed = 99, offset = 5;
  const double p = 0.4;
  const Tensor x = test::random_tensor({3, 5, 4, 6}, 2, 0.5, 2.0);
  const Tensor y = dropout_forward(x, p, true, seed, offset);
  const float scale = float(1.0 / (1.0 - p));
  int dropped = 0;
  for (int64_t n = 0; n < 3; ++n) {
    for (int64_t c = 0; c < 5; ++c) {
      const bool keep = double(philox::uniform(seed, offset, uint64_t(n * 5 + c))) >= p;
      dropped += !keep;
      for (int64_t k = 0; k < 24; ++k) {
        const int64_t i = (n * 5 + c) * 24 + k;
        CHECK(y.at<float>(i) == (keep ? x.at<float>(i) * scale : 0.f));
      }
    }
  }
  CHECK(dropped > 0);
  CHECK(dropped < 15);
  const Tensor mask = dropout_keep_mask(x.shape(), p, true, seed, offset);
  CHECK(mask.at<uint8_t>(0) == mask.at<uint8_t>(23));
}

TEST_CASE("dropout statistics: fraction dropped ~ p, the expectation is preserved") {
  for (bool channelwise : {false, true}) {
    for (double p : {0.1, 0.3, 0.5}) {
      INFO("channelwise " << channelwise << " p " << p);
      // Channelwise: 2·40000 planes of 1x3 (Dropout2d's mask has one entry per plane).
      const Shape shape = channelwise ? Shape{2, 40000, 1, 3} : Shape{4, 50000};
      const Tensor x = test::random_tensor(shape, 3, 0.5, 1.5);
      const Tensor y = dropout_forward(x, p, channelwise, 2024, 11);
      const int64_t units = channelwise ? 80000 : 200000;
      int64_t zeros = 0;
      double sum_x = 0, sum_y = 0;
      for (int64_t i = 0; i < x.numel(); ++i) {
        zeros += y.at<float>(i) == 0.f;
        sum_x += x.at<float>(i);
        sum_y += y.at<float>(i);
      }
      const double frac = double(zeros) / double(x.numel());
      const double sigma = std::sqrt(p * (1 - p) / double(units));
      CHECK(std::fabs(frac - p) < 5 * sigma);
      CHECK(std::fabs(sum_y / sum_x - 1.0) < 0.02);
    }
  }
}

TEST_CASE("dropout: streams are separated by offset and seed, reproducible by (seed, offset)") {
  const Tensor x = test::random_tensor({4, 1000}, 4, 0.5, 1.5);
  const auto a = dropout_forward(x, 0.5, false, 1, 0).to_vector<float>();
  CHECK(a == dropout_forward(x, 0.5, false, 1, 0).to_vector<float>());
  CHECK(a != dropout_forward(x, 0.5, false, 1, 1).to_vector<float>());
  CHECK(a != dropout_forward(x, 0.5, false, 2, 0).to_vector<float>());
}

TEST_CASE("dropout backward regenerates the forward's mask: f64 finite differences") {
  for (bool channelwise : {false, true}) {
    INFO("channelwise " << channelwise);
    Tensor x = test::random_tensor({2, 3, 5, 7}, 5, -1.0, 1.0, DType::f64);
    const Tensor r = test::random_tensor({2, 3, 5, 7}, 6, -1.0, 1.0, DType::f64);
    const Tensor dx = dropout_backward(r, 0.3, channelwise, 8, 9);
    const Tensor mask = dropout_keep_mask(x.shape(), 0.3, channelwise, 8, 9);
    for (int64_t i = 0; i < x.numel(); ++i)
      CHECK(dx.at<double>(i) == (mask.at<uint8_t>(i) ? r.at<double>(i) * (1.0 / 0.7) : 0.0));
    test::check_gradient("dropout dL/dx", x, [&] { return dot(dropout_forward(x, 0.3, channelwise, 8, 9), r); }, dx,
                         1e-6, {1e-8, 1e-6});
  }
}

TEST_CASE("Dropout module: identity in eval mode and for p == 0; backward reuses the mask") {
  const Tensor x = test::random_tensor({2, 4, 3, 3}, 7, 0.5, 1.5);
  const Tensor dy = test::random_tensor({2, 4, 3, 3}, 8);
  for (bool channelwise : {false, true}) {
    Dropout d(0.25, channelwise);
    CHECK(d.p() == 0.25);
    CHECK(d.channelwise() == channelwise);
    const Tensor y = d.forward(x, 3, 4);
    CHECK_TENSORS_CLOSE(y, dropout_forward(x, 0.25, channelwise, 3, 4), Tolerance{0, 0});
    CHECK_TENSORS_CLOSE(d.backward(dy), dropout_forward(dy, 0.25, channelwise, 3, 4), Tolerance{0, 0});
    CHECK_THROWS_WITH_AS(d.backward(dy), doctest::Contains("no forward in train mode"), Error);
    d.forward(x, 3, 4);
    CHECK_THROWS_WITH_AS(d.backward(dy.view({2, 4, 9})), doctest::Contains("does not match the forward's input"), Error);
    d.set_mode(Mode::eval);
    const Tensor e = d.forward(x, 3, 4);
    CHECK(e.shares_storage(x));
    CHECK_THROWS_WITH_AS(d.backward(dy), doctest::Contains("eval mode"), Error);
  }
  Dropout zero(0.0, false);
  CHECK(zero.forward(x, 1, 2).shares_storage(x));
  CHECK(zero.backward(dy).shares_storage(dy));
  CHECK(dropout_forward(x, 0.0, true, 1, 2).shares_storage(x));
}

TEST_CASE("dropout: argument errors name the layer, p and the shapes") {
  const Tensor x = test::random_tensor({2, 3, 4, 4}, 9);
  CHECK_THROWS_WITH_AS(Dropout(1.0, false), doctest::Contains("Dropout: p = 1 must lie in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(Dropout(-0.1, true), doctest::Contains("Dropout2d: p = -0.1 must lie in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(dropout_forward(x, 1.5, false, 1, 1), doctest::Contains("p = 1.5"), Error);
  CHECK_THROWS_WITH_AS(dropout_forward(x.view({6, 16}), 0.5, true, 1, 1),
                       doctest::Contains("Dropout2d: input must be 4-D, got f32[6,16]"), Error);
  CHECK_THROWS_WITH_AS(dropout_forward(Tensor::full({4}, 1, DType::i32), 0.5, false, 1, 1),
                       doctest::Contains("Dropout: input is i32[4]"), Error);
  CHECK_THROWS_WITH_AS(dropout_forward(x.to_layout(Layout::NHWC), 0.5, true, 1, 1), doctest::Contains("only NCHW"),
                       Error);
}

GPU_TEST_CASE("dropout on the GPU: the same masks and values as the CPU") {
  const Device g = Device::cuda(0);
  const Shape shapes[] = {{1, 3, 7, 9}, {2, 5, 13, 17}, {3, 1000003}, {1, 1, 1, 1}, {2, 3, 1, 1}};
  for (const Shape& shape : shapes) {
    for (DType d : {DType::f32, DType::f64}) {
      for (bool channelwise : {false, true}) {
        if (channelwise && shape.size() != 4) continue;
        for (double p : {0.1, 0.5}) {
          INFO(shape_str(shape) << " " << dtype_name(d) << " channelwise " << channelwise << " p " << p);
          const Tensor x = test::random_tensor(shape, 10, -1.0, 1.0, d);
          const Tensor y = dropout_forward(x, p, channelwise, 0xabcdef0123ull, (1ull << 33) + 5);
          const Tensor yg = dropout_forward(x.to(g), p, channelwise, 0xabcdef0123ull, (1ull << 33) + 5);
          CHECK(yg.device() == g);
          CHECK_TENSORS_CLOSE(yg, y, Tolerance{0, 0});
          CHECK_TENSORS_CLOSE(dropout_backward(x.to(g), p, channelwise, 3, 4),
                              dropout_backward(x, p, channelwise, 3, 4), Tolerance{0, 0});
        }
      }
    }
  }
  Dropout drop(0.2, true);
  const Tensor x = test::random_tensor({2, 5, 3, 3}, 11);
  const Tensor dy = test::random_tensor({2, 5, 3, 3}, 12);
  drop.forward(x.to(g), 6, 7);
  CHECK_TENSORS_CLOSE(drop.backward(dy.to(g)), dropout_backward(dy, 0.2, true, 6, 7), Tolerance{0, 0});
}

TEST_CASE("dropout statistics agree with PyTorch's dropout / dropout2d (fraction dropped, scale)") {
  test::TorchCases cases;
  struct Case {
    std::string name;
    Shape shape;
    double p;
    bool channelwise;
  };
  const Case list[] = {{"d1", {4, 16, 32, 32}, 0.1, false},
                       {"d5", {4, 16, 32, 32}, 0.5, false},
                       {"c1", {8, 2000, 2, 2}, 0.1, true},
                       {"c3", {8, 2000, 2, 2}, 0.3, true}};
  for (const Case& c : list) {
    const Tensor x = test::random_tensor(c.shape, 300, 0.5, 1.5);  // no zeros: a 0 in y is a drop
    cases.tensors[c.name + ".x"] = x;
    cases.tensors[c.name + ".y"] = dropout_forward(x, c.p, c.channelwise, 77, 1);
    char spec[64];
    std::snprintf(spec, sizeof spec, "dropout %.17g %d", c.p, int(c.channelwise));
    cases.add(c.name, spec);
  }
  const auto torch = test::run_torch_parity_ops(cases, "dropout-torch");
  if (torch.empty()) return;
  for (const Case& c : list) {
    INFO(c.name << " p " << c.p << " channelwise " << c.channelwise);
    const std::vector<double> s = torch.at(c.name + ".stats").to_vector<double>();  // torch frac, rdd frac, scales
    REQUIRE(s.size() == 4);
    const double units = double(c.channelwise ? c.shape[0] * c.shape[1] : shape_numel(c.shape));
    const double sigma = std::sqrt(c.p * (1 - c.p) / units);
    CHECK(std::fabs(s[0] - c.p) < 5 * sigma);
    CHECK(std::fabs(s[1] - c.p) < 5 * sigma);
    CHECK(std::fabs(s[2] - 1 / (1 - c.p)) < 1e-6);
    CHECK(std::fabs(s[3] - 1 / (1 - c.p)) < 1e-6);
  }
}
