// fold_batchnorm: the closed form per channel, and conv(x; W', b') = BN(conv(x; W, b)) on random data, with
// and without a conv bias, for a grouped (depthwise) conv too; a BN of another width is refused.
#include <cmath>
#include <memory>

#include "deploy/bn_folding.h"
#include "engine/params.h"
#include "harness.h"

using namespace rdd;

namespace {
// A conv and a BN (eps 1e-3) with random parameters and running statistics (the BN's replace the store's views).
struct ConvBn {
  ParamStore store;
  std::unique_ptr<layers::Conv2d> conv;
  std::unique_ptr<layers::BatchNorm2d> bn;
  ConvBn(int cin, int cout, int k, layers::Conv2dOptions o, uint64_t seed)
      : conv(std::make_unique<layers::Conv2d>(store, "c", cin, cout, k, o)),
        bn(std::make_unique<layers::BatchNorm2d>(store, "bn", cout, 1e-3)) {
    store.materialize(Device::cpu(), false);
    conv->reset_parameters(seed, 0);
    bn->weight()->value = test::random_tensor({cout}, seed + 1, 0.5, 1.5);
    bn->bias()->value = test::random_tensor({cout}, seed + 2, -0.5, 0.5);
    bn->running_mean()->value = test::random_tensor({cout}, seed + 3, -0.5, 0.5);
    bn->running_var()->value = test::random_tensor({cout}, seed + 4, 0.2, 3.0);
  }
};
}  // namespace

TEST_CASE("fold_batchnorm: a = γ/√(var+ε), W' = a·W, b' = a·(b − mean) + β, per output channel") {
  layers::Conv2dOptions o;
  o.bias = true;
  ConvBn m(3, 4, 3, o, 5);
  const deploy::FoldedConv f = deploy::fold_batchnorm(*m.conv, *m.bn);
  REQUIRE(f.weight.shape() == Shape{4, 3, 3, 3});
  REQUIRE(f.bias.shape() == Shape{4});
  for (int64_t k = 0; k < 4; ++k) {
    const double a = double(m.bn->weight()->value.at<float>(k)) /
                     std::sqrt(double(m.bn->running_var()->value.at<float>(k)) + 1e-3);
    for (int64_t i = 0; i < 27; ++i)
      CHECK(f.weight.at<float>(k * 27 + i) ==
            doctest::Approx(a * m.conv->weight()->value.at<float>(k * 27 + i)).epsilon(1e-6));
    const double b = a * (double(m.conv->bias()->value.at<float>(k)) - m.bn->running_mean()->value.at<float>(k)) +
                     m.bn->bias()->value.at<float>(k);
    CHECK(f.bias.at<float>(k) == doctest::Approx(b).epsilon(1e-6));
  }
}

TEST_CASE("the folded conv computes BN(conv(x)) (no bias, bias, depthwise with stride and dilation)") {
  layers::Conv2dOptions plain, biased, depthwise;
  biased.bias = true;
  depthwise.groups = 6;
  depthwise.stride = 2;
  depthwise.dilation = 2;
  depthwise.padding = 2;
  const struct {
    int cin, cout, k;
    layers::Conv2dOptions o;
  } cases[] = {{5, 7, 1, plain}, {3, 4, 3, biased}, {6, 6, 3, depthwise}};
  uint64_t seed = 20;
  for (const auto& c : cases) {
    ConvBn m(c.cin, c.cout, c.k, c.o, seed++);
    const Tensor x = test::random_normal({2, c.cin, 9, 11}, seed++);
    const Tensor want = layers::batchnorm2d_forward_eval(
        layers::conv2d_forward(x, m.conv->weight()->value, m.conv->bias() ? m.conv->bias()->value : Tensor(), c.o),
        m.bn->weight()->value, m.bn->bias()->value, m.bn->running_mean()->value, m.bn->running_var()->value,
        m.bn->eps());
    const deploy::FoldedConv f = deploy::fold_batchnorm(*m.conv, *m.bn);
    const Tensor got = layers::conv2d_forward(x, f.weight, f.bias, c.o);
    CHECK_TENSORS_CLOSE(got, want, Tolerance{1e-5, 1e-5});
  }
}

TEST_CASE("fold_batchnorm refuses a BN whose width is not the conv's") {
  ParamStore store;
  layers::Conv2d conv(store, "conv", 3, 4, 1);
  layers::BatchNorm2d bn(store, "norm", 5);
  store.materialize(Device::cpu(), false);
  const std::string msg = test::error_message([&] { deploy::fold_batchnorm(conv, bn); });
  CHECK(msg.find("norm has 5 channels but conv has 4 outputs") != std::string::npos);
}
