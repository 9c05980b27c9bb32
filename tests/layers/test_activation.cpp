#include "layers/activation.h"

#include <cmath>

#include "engine/rng.h"
#include "harness.h"
#include "torch_parity_ops.h"

using namespace rdd;
using namespace rdd::layers;

namespace {
// Random f64 values in [lo, hi) pushed at least `gap` away from the kinks 0 and 6, so that central
// differences never straddle one.
Tensor away_from_kinks(const Shape& shape, uint64_t seed, double lo, double hi, double gap) {
  Tensor x = test::random_tensor(shape, seed, lo, hi, DType::f64);
  double* p = x.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    for (double k : {0.0, 6.0})
      if (std::fabs(p[i] - k) < gap) p[i] = p[i] < k ? k - gap : k + gap;
  }
  return x;
}
}  // namespace

TEST_CASE("relu and relu6: closed-form values and gradients") {
  const Tensor x = Tensor::from_vector<float>({-2.f, -0.5f, 0.f, 0.25f, 3.f, 6.f, 7.5f, 1e-3f}, {2, 1, 2, 2});
  const Tensor dy = Tensor::from_vector<float>({1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f, 8.f}, {2, 1, 2, 2});
  const Tensor y = relu_forward(x, false);
  CHECK(y.shape() == x.shape());
  CHECK(y.to_vector<float>() == std::vector<float>{0, 0, 0, 0.25f, 3, 6, 7.5f, 1e-3f});
  const Tensor y6 = relu_forward(x, true);
  CHECK(y6.to_vector<float>() == std::vector<float>{0, 0, 0, 0.25f, 3, 6, 6, 1e-3f});
  // Gradient 0 at the kinks (x == 0; x == 6 for relu6), as in PyTorch.
  CHECK(relu_backward(dy, y, false).to_vector<float>() == std::vector<float>{0, 0, 0, 4, 5, 6, 7, 8});
  CHECK(relu_backward(dy, y6, true).to_vector<float>() == std::vector<float>{0, 0, 0, 4, 5, 0, 0, 8});
  // From the input instead of the output: the same answer.
  CHECK(relu_backward(dy, x, false).to_vector<float>() == relu_backward(dy, y, false).to_vector<float>());
  CHECK(relu_backward(dy, x, true).to_vector<float>() == relu_backward(dy, y6, true).to_vector<float>());
}

TEST_CASE("relu passes NaN through the forward") {
  const Tensor x = Tensor::from_vector<float>({std::nanf(""), -1.f, 8.f}, {3});
  for (bool six : {false, true}) {
    const std::vector<float> y = relu_forward(x, six).to_vector<float>();
    CHECK(std::isnan(y[0]));
    CHECK(y[1] == 0.f);
    CHECK(y[2] == (six ? 6.f : 8.f));
  }
}

TEST_CASE("relu and relu6: f64 finite-difference gradients, from the output and from the input") {
  for (bool six : {false, true}) {
    INFO("relu6 = " << six);
    Tensor x = away_from_kinks({2, 3, 5, 7}, six ? 11 : 12, -4.0, 9.0, 0.05);
    const Tensor r = test::random_tensor({2, 3, 5, 7}, 13, -1.0, 1.0, DType::f64);
    const Tensor y = relu_forward(x, six);
    const Tensor dx_from_y = relu_backward(r, y, six);
    const Tensor dx_from_x = relu_backward(r, x, six);
    CHECK_TENSORS_CLOSE(dx_from_x, dx_from_y, Tolerance{0, 0});
    test::check_gradient(six ? "relu6 dL/dx" : "relu dL/dx", x, [&] { return dot(relu_forward(x, six), r); },
                         dx_from_y, 1e-6, Tolerance{1e-8, 1e-6});
    // The data must exercise every branch (negative, linear part, and > 6 for relu6).
    int neg = 0, mid = 0, top = 0;
    for (double v : x.to_vector<double>()) (v < 0 ? neg : v < 6 ? mid : top)++;
    CHECK(neg > 10);
    CHECK(mid > 10);
    CHECK(top > 10);
  }
}

TEST_CASE("ReLU module: caches its output in train mode only; backward needs a forward") {
  const Tensor x = test::random_tensor({2, 3, 4, 5}, 21, -2.0, 8.0);
  const Tensor dy = test::random_tensor({2, 3, 4, 5}, 22);
  ReLU relu6(true);
  CHECK(relu6.relu6());
  const Tensor y = relu6.forward(x);
  CHECK_TENSORS_CLOSE(y, relu_forward(x, true), Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(relu6.backward(dy), relu_backward(dy, x, true), Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(relu6.backward(dy), doctest::Contains("no cached output"), Error);  // released
  relu6.set_mode(Mode::eval);
  CHECK_TENSORS_CLOSE(relu6.forward(x), y, Tolerance{0, 0});
  CHECK_THROWS_WITH_AS(relu6.backward(dy), doctest::Contains("eval mode"), Error);
}

TEST_CASE("relu: argument errors name the op and the tensors") {
  CHECK_THROWS_WITH_AS(relu_forward(Tensor::zeros({2, 3}, DType::i32), false), doctest::Contains("relu: input is i32[2,3]"),
                       Error);
  CHECK_THROWS_WITH_AS(relu_forward(Tensor(), true), doctest::Contains("relu6: input is undefined"), Error);
  const Tensor a = test::random_tensor({2, 3, 4, 4}, 1), b = test::random_tensor({2, 3, 4, 5}, 2);
  CHECK_THROWS_WITH_AS(relu_backward(a, b, false), doctest::Contains("f32[2,3,4,4]"), Error);
  CHECK_THROWS_WITH_AS(relu_backward(a, b, false), doctest::Contains("f32[2,3,4,5]"), Error);
  CHECK_THROWS_AS(relu_backward(a, a.to_dtype(DType::f64), true), Error);
}

GPU_TEST_CASE("relu and relu6 on the GPU match the CPU reference exactly") {
  const Device g = Device::cuda(0);
  for (const Shape& shape : {Shape{1, 3, 7, 9}, Shape{2, 5, 13, 17}, Shape{3, 1000003}}) {
    for (DType d : {DType::f32, DType::f64}) {
      for (bool six : {false, true}) {
        INFO(shape_str(shape) << " " << dtype_name(d) << " relu6=" << six);
        const Tensor x = test::random_tensor(shape, 31, -3.0, 9.0, d);
        const Tensor dy = test::random_tensor(shape, 32, -1.0, 1.0, d);
        const Tensor y = relu_forward(x, six);
        const Tensor yg = relu_forward(x.to(g), six);
        CHECK(yg.device() == g);
        CHECK_TENSORS_CLOSE(yg, y, Tolerance{0, 0});
        CHECK_TENSORS_CLOSE(relu_backward(dy.to(g), yg, six), relu_backward(dy, y, six), Tolerance{0, 0});
      }
    }
  }
}

TEST_CASE("relu and relu6 match PyTorch (forward and autograd backward)") {
  test::TorchCases cases;
  for (int six : {0, 1}) {
    const std::string name = six ? "relu6" : "relu";
    cases.tensors[name + ".x"] = test::random_tensor({2, 3, 7, 9}, 40 + uint64_t(six), -3.0, 9.0);
    cases.tensors[name + ".r"] = test::random_tensor({2, 3, 7, 9}, 42 + uint64_t(six));
    cases.add(name, "relu " + std::to_string(six));
  }
  const auto torch = test::run_torch_parity_ops(cases, "relu-torch");
  if (torch.empty()) return;
  for (int six : {0, 1}) {
    const std::string name = six ? "relu6" : "relu";
    INFO(name);
    const Tensor y = relu_forward(cases.tensors[name + ".x"], six);
    CHECK_TENSORS_CLOSE(y, torch.at(name + ".y"), Tolerance{0, 0});
    CHECK_TENSORS_CLOSE(relu_backward(cases.tensors[name + ".r"], y, six), torch.at(name + ".dx"), Tolerance{0, 0});
  }
}
