#include "layers/eval_ops.h"

#include <cmath>

#include "harness.h"

using namespace rdd;
using namespace rdd::layers;

TEST_CASE("flip_width mirrors columns; twice is the identity") {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  CHECK(flip_width(x).to_vector<float>() == std::vector<float>{3, 2, 1, 6, 5, 4});
  Tensor r = test::random_tensor({2, 3, 5, 7}, 1);
  CHECK(flip_width(flip_width(r)).to_vector<float>() == r.to_vector<float>());
}

TEST_CASE("crop_window copies a window and pads outside with zeros; add_window_ accumulates and clips") {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  CHECK(crop_window(x, 1, 1, 2, 2).to_vector<float>() == std::vector<float>{5, 6, 8, 9});
  CHECK(crop_window(x, 2, 2, 2, 2).to_vector<float>() == std::vector<float>{9, 0, 0, 0});
  Tensor acc = Tensor::zeros({1, 1, 3, 3});
  add_window_(acc, Tensor::full({1, 1, 2, 2}, 1.0), 0, 0);
  add_window_(acc, Tensor::full({1, 1, 2, 2}, 2.0), 2, 2);  // only its top-left lands inside
  CHECK(acc.to_vector<float>() == std::vector<float>{1, 1, 0, 1, 1, 0, 0, 0, 2});
  CHECK_THROWS_AS(add_window_(acc, Tensor::zeros({1, 2, 2, 2}), 0, 0), Error);
  CHECK_THROWS_AS(crop_window(x, 0, 0, 0, 2), Error);
}

TEST_CASE("softmax_channels: probabilities summing to one, argmax kept, large logits stable") {
  Tensor x = test::random_tensor({2, 5, 3, 4}, 2, -30, 30);
  Tensor p = softmax_channels(x);
  const std::vector<float> v = p.to_vector<float>(), xv = x.to_vector<float>();
  for (int n = 0; n < 2; ++n)
    for (int q = 0; q < 12; ++q) {
      double s = 0;
      int best_x = 0, best_p = 0;
      for (int c = 0; c < 5; ++c) {
        const size_t i = size_t((n * 5 + c) * 12 + q);
        s += v[i];
        if (xv[i] > xv[size_t((n * 5 + best_x) * 12 + q)]) best_x = c;
        if (v[i] > v[size_t((n * 5 + best_p) * 12 + q)]) best_p = c;
      }
      CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
      CHECK(best_x == best_p);
    }
  // Closed form: logits (0, ln 3) → (1/4, 3/4).
  Tensor two = Tensor::from_vector<double>({0.0, std::log(3.0)}, {1, 2, 1, 1});
  const std::vector<double> q = softmax_channels(two).to_vector<double>();
  CHECK(q[0] == doctest::Approx(0.25));
  CHECK(q[1] == doctest::Approx(0.75));
}

TEST_CASE("divide_by_map_ divides every channel plane") {
  Tensor x = Tensor::full({1, 2, 1, 2}, 6.0);
  divide_by_map_(x, Tensor::from_vector<float>({2, 3}, {1, 2}));
  CHECK(x.to_vector<float>() == std::vector<float>{3, 2, 3, 2});
  CHECK_THROWS_AS(divide_by_map_(x, Tensor::full({2, 1}, 1.0)), Error);  // wrong map shape
}

GPU_TEST_CASE("eval ops on the GPU equal the CPU") {
  const Device g = Device::cuda(0);
  Tensor x = test::random_tensor({2, 3, 7, 9}, 3, -5, 5);
  CHECK_TENSORS_CLOSE(flip_width(x.to(g)), flip_width(x), Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(crop_window(x.to(g), -1, 4, 5, 6), crop_window(x, -1, 4, 5, 6), Tolerance{0, 0});
  Tensor acc_c = test::random_tensor({2, 3, 7, 9}, 4), acc_g = acc_c.to(g);
  Tensor win = test::random_tensor({2, 3, 4, 5}, 5);
  add_window_(acc_c, win, 5, 6);
  add_window_(acc_g, win.to(g), 5, 6);
  CHECK_TENSORS_CLOSE(acc_g, acc_c, Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(softmax_channels(x.to(g)), softmax_channels(x), Tolerance{1e-6, 1e-5});
  Tensor map = test::random_tensor({7, 9}, 6, 1, 3);
  Tensor dc = x.clone(), dg = x.to(g);
  divide_by_map_(dc, map);
  divide_by_map_(dg, map.to(g));
  CHECK_TENSORS_CLOSE(dg, dc, Tolerance{1e-6, 1e-6});
}
