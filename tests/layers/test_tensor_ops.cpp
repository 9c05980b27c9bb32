#include "layers/tensor_ops.h"

#include <numeric>

#include "harness.h"

using namespace rdd;
using namespace rdd::layers;

namespace {
Tensor iota_tensor(const Shape& shape, float start) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  std::iota(v.begin(), v.end(), start);
  return Tensor::from_vector(v, shape);
}
}  // namespace

TEST_CASE("concat_channels: closed-form layout, and split_channels undoes it") {
  const Tensor a = iota_tensor({2, 1, 2, 2}, 1);    // image n: 4 values
  const Tensor b = iota_tensor({2, 2, 2, 2}, 101);  // image n: 8 values
  const Tensor y = concat_channels({a, b});
  CHECK(y.shape() == Shape{2, 3, 2, 2});
  CHECK(y.to_vector<float>() == std::vector<float>{1,   2,   3,   4,   101, 102, 103, 104, 105, 106, 107, 108,
                                                   5,   6,   7,   8,   109, 110, 111, 112, 113, 114, 115, 116});
  const std::vector<Tensor> parts = split_channels(y, {1, 2});
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].shape() == a.shape());
  CHECK(parts[1].shape() == b.shape());
  CHECK(parts[0].to_vector<float>() == a.to_vector<float>());
  CHECK(parts[1].to_vector<float>() == b.to_vector<float>());
  CHECK_FALSE(parts[0].shares_storage(y));
  // A zero-channel part is allowed on both sides.
  const std::vector<Tensor> with_empty = split_channels(y, {0, 3, 0});
  CHECK(with_empty[0].shape() == Shape{2, 0, 2, 2});
  CHECK(with_empty[1].to_vector<float>() == y.to_vector<float>());
  CHECK(concat_channels(with_empty).to_vector<float>() == y.to_vector<float>());
}

TEST_CASE("concat/split round trip for odd sizes and every dtype") {
  for (DType d : {DType::f32, DType::f64, DType::i32, DType::u8, DType::bf16}) {
    INFO(dtype_name(d));
    std::vector<Tensor> xs;
    for (int64_t c : {3, 5, 1}) {
      Tensor t = test::random_tensor({3, c, 5, 7}, uint64_t(10 + c), 1.0, 100.0, DType::f64);
      if (d != DType::f64) {
        Tensor conv = Tensor::empty(t.shape(), d);
        for (int64_t i = 0; i < t.numel(); ++i) {
          const double v = t.at<double>(i);
          if (d == DType::f32) conv.at<float>(i) = float(v);
          else if (d == DType::i32) conv.at<int32_t>(i) = int32_t(v);
          else if (d == DType::u8) conv.at<uint8_t>(i) = uint8_t(v);
          else conv.at<bf16>(i) = bf16(float(v));
        }
        t = conv;
      }
      xs.push_back(t);
    }
    const Tensor y = concat_channels(xs);
    CHECK(y.shape() == Shape{3, 9, 5, 7});
    CHECK(y.dtype() == d);
    const std::vector<Tensor> back = split_channels(y, {3, 5, 1});
    for (size_t i = 0; i < xs.size(); ++i) CHECK_TENSORS_CLOSE(back[i], xs[i], Tolerance{0, 0});
    // Spot-check placement: element (n=2, c=3+5, h=4, w=6) of y is the last element of image 2 of xs[2].
    CHECK(compare_tensors(y.slice(2, 3).view({9, 35}).slice(8, 9), xs[2].slice(2, 3).view({1, 35}), {0, 0}).ok);
  }
}

TEST_CASE("concat gradient is split; add gradient flows to both: f64 finite differences") {
  Tensor a = test::random_tensor({2, 3, 4, 5}, 20, -1.0, 1.0, DType::f64);
  Tensor b = test::random_tensor({2, 2, 4, 5}, 21, -1.0, 1.0, DType::f64);
  const Tensor r = test::random_tensor({2, 5, 4, 5}, 22, -1.0, 1.0, DType::f64);
  auto loss = [&] { const Tensor y = concat_channels({a, b}); return dot(y, r) + 0.5 * dot(y, y); };
  const Tensor y = concat_channels({a, b});
  const Tensor dy = add(r, y);  // d/dy of dot(y, r) + ½|y|²
  const std::vector<Tensor> g = split_channels(dy, {3, 2});
  test::check_gradient("concat dL/da", a, loss, g[0], 1e-6, {1e-8, 1e-6});
  test::check_gradient("concat dL/db", b, loss, g[1], 1e-6, {1e-8, 1e-6});

  Tensor p = test::random_tensor({3, 7}, 23, -1.0, 1.0, DType::f64);
  Tensor q = test::random_tensor({3, 7}, 24, -1.0, 1.0, DType::f64);
  const Tensor rr = test::random_tensor({3, 7}, 25, -1.0, 1.0, DType::f64);
  auto add_loss = [&] { const Tensor s = add(p, q); return dot(s, rr) + dot(s, s); };
  const Tensor s = add(p, q);
  Tensor ds = s.clone();
  add_(ds, s);       // 2s
  add_(ds, rr);      // rr + 2s
  test::check_gradient("add dL/da", p, add_loss, ds, 1e-6, {1e-8, 1e-6});
  test::check_gradient("add dL/db", q, add_loss, ds, 1e-6, {1e-8, 1e-6});
}

TEST_CASE("add and add_: closed form, in place, aliasing") {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, -4, 5, 6}, {1, 2, 3, 1});
  const Tensor b = Tensor::from_vector<float>({10, 20, 30, 40, 50, -60}, {1, 2, 3, 1});
  const Tensor s = add(a, b);
  CHECK(s.to_vector<float>() == std::vector<float>{11, 22, 33, 36, 55, -54});
  CHECK_FALSE(s.shares_storage(a));
  CHECK(a.to_vector<float>() == std::vector<float>{1, 2, 3, -4, 5, 6});  // inputs untouched
  Tensor c = a.clone();
  add_(c, b);
  CHECK(c.to_vector<float>() == s.to_vector<float>());
  add_(c, c);  // c += c
  CHECK(c.to_vector<float>() == std::vector<float>{22, 44, 66, 72, 110, -108});
  const Tensor big_a = test::random_tensor({3, 100003}, 30, -1.0, 1.0, DType::f64);
  const Tensor big_b = test::random_tensor({3, 100003}, 31, -1.0, 1.0, DType::f64);
  const Tensor big = add(big_a, big_b);
  for (int64_t i : {int64_t(0), int64_t(77777), int64_t(300008)})
    CHECK(big.at<double>(i) == big_a.at<double>(i) + big_b.at<double>(i));
}

TEST_CASE("tensor ops: argument errors name the op and the shapes") {
  const Tensor a = test::random_tensor({2, 3, 4, 5}, 40);
  CHECK_THROWS_WITH_AS(concat_channels({a, test::random_tensor({2, 3, 4, 6}, 41)}),
                       doctest::Contains("concat_channels: inputs differ in N, H, W, dtype or device: f32[2,3,4,5] "
                                         "NCHW cpu, f32[2,3,4,6] NCHW cpu"),
                       Error);
  CHECK_THROWS_WITH_AS(concat_channels({a, test::random_tensor({1, 3, 4, 5}, 42)}), doctest::Contains("f32[1,3,4,5]"),
                       Error);
  CHECK_THROWS_WITH_AS(concat_channels({a, a.to_dtype(DType::f64)}), doctest::Contains("f64[2,3,4,5]"), Error);
  CHECK_THROWS_WITH_AS(concat_channels({}), doctest::Contains("concat_channels: no inputs"), Error);
  CHECK_THROWS_WITH_AS(concat_channels({a.view({6, 20})}), doctest::Contains("must be 4-D, got f32[6,20]"), Error);
  CHECK_THROWS_WITH_AS(split_channels(a, {1, 1}), doctest::Contains("parts 1+1 = 2 channels, but dy f32[2,3,4,5]"),
                       Error);
  CHECK_THROWS_WITH_AS(split_channels(a, {4, -1}), doctest::Contains("negative"), Error);
  CHECK_THROWS_WITH_AS(add(a, a.view({2, 3, 5, 4})),
                       doctest::Contains("add: operands f32[2,3,4,5] NCHW cpu and f32[2,3,5,4] NCHW cpu"), Error);
  Tensor c = a.clone();
  CHECK_THROWS_WITH_AS(add_(c, a.to_dtype(DType::f64)), doctest::Contains("add_: operands"), Error);
  CHECK_THROWS_WITH_AS(add(a.to_layout(Layout::NHWC), a), doctest::Contains("NHWC"), Error);
  const Tensor i = Tensor::full({3}, 1, DType::i32);
  CHECK_THROWS_WITH_AS(add(i, i), doctest::Contains("i32[3]"), Error);
}

GPU_TEST_CASE("concat, split and add on the GPU match the CPU exactly") {
  const Device g = Device::cuda(0);
  for (int64_t n : {1, 2}) {
    std::vector<Tensor> xs, xs_g;
    uint64_t seed = 50;
    for (int64_t c : {3, 5, 1}) {
      xs.push_back(test::random_tensor({n, c, 7, 9}, ++seed));
      xs_g.push_back(xs.back().to(g));
    }
    const Tensor y = concat_channels(xs);
    const Tensor yg = concat_channels(xs_g);
    CHECK(yg.device() == g);
    CHECK_TENSORS_CLOSE(yg, y, Tolerance{0, 0});
    const std::vector<Tensor> parts = split_channels(yg, {3, 5, 1});
    for (size_t i = 0; i < xs.size(); ++i) CHECK_TENSORS_CLOSE(parts[i], xs[i], Tolerance{0, 0});
  }
  for (DType d : {DType::f32, DType::f64}) {
    const Tensor a = test::random_tensor({2, 5, 13, 17}, 60, -1.0, 1.0, d);
    const Tensor b = test::random_tensor({2, 5, 13, 17}, 61, -1.0, 1.0, d);
    const Tensor ag = a.to(g), bg = b.to(g);
    CHECK_TENSORS_CLOSE(add(ag, bg), add(a, b), Tolerance{0, 0});
    Tensor c = ag.clone();
    add_(c, bg);
    add_(c, c);
    Tensor want = add(a, b);
    add_(want, want);
    CHECK_TENSORS_CLOSE(c, want, Tolerance{0, 0});
    CHECK_THROWS_WITH_AS(add(ag, b), doctest::Contains("different devices"), Error);
  }
}
