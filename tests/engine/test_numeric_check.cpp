#include "engine/numeric_check.h"

#include <cmath>

#include "harness.h"

using namespace rdd;

TEST_CASE("compare_tensors applies |got - want| <= atol + rtol |want| and names the worst element") {
  Tensor want = Tensor::from_vector<float>({1, 2, 3, 100}, {4});
  Tensor got = Tensor::from_vector<float>({1, 2.00001f, 3, 100.5f}, {4});
  Comparison c = compare_tensors(got, want, {1e-4, 1e-3});
  CHECK_FALSE(c.ok);
  CHECK(c.mismatches == 1);
  CHECK(c.worst_index == 3);
  CHECK(c.message().find("got 100.5") != std::string::npos);
  CHECK(compare_tensors(got, want, {1e-4, 1e-2}).ok);
  Tensor nan = Tensor::from_vector<float>({1, 2, 3, NAN}, {4});
  CHECK_FALSE(compare_tensors(nan, want, {1, 1}).ok);
  CHECK_THROWS_AS(compare_tensors(got, Tensor::empty({2, 2}), {}), Error);
}

TEST_CASE("numeric_gradient recovers known derivatives in f64 and f32") {
  // loss = Σ sin(x_i) · (i + 1)  ⇒  dloss/dx_i = cos(x_i) · (i + 1)
  for (DType d : {DType::f64, DType::f32}) {
    Tensor x = test::random_tensor({7}, 3, -2, 2, d);
    auto loss = [&] {
      double s = 0;
      const std::vector<double> v = x.to_vector<double>();
      for (size_t i = 0; i < v.size(); ++i) s += std::sin(v[i]) * double(i + 1);
      return s;
    };
    std::vector<double> want;
    for (size_t i = 0; i < 7; ++i) want.push_back(std::cos(x.to_vector<double>()[i]) * double(i + 1));
    const Tensor analytic = Tensor::from_vector(want, {7});
    const Tensor before = x.clone();
    if (d == DType::f64) test::check_gradient("sin", x, loss, analytic, 1e-6, {1e-8, 1e-7});
    else test::check_gradient("sin", x, loss, analytic, 1e-2, {2e-3, 1e-3});
    CHECK(x.to_vector<double>() == before.to_vector<double>());  // restored
  }
}
