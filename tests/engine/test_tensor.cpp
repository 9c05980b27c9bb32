#include "engine/tensor.h"

#include <cmath>
#include <limits>

#include "harness.h"

using namespace rdd;

TEST_CASE("tensor creation, shape and dtype") {
  Tensor t = Tensor::zeros({2, 3, 4, 5});
  CHECK(t.defined());
  CHECK(t.ndim() == 4);
  CHECK(t.numel() == 120);
  CHECK(t.nbytes() == 480);
  CHECK(t.size(-1) == 5);
  CHECK(t.dtype() == DType::f32);
  CHECK(t.layout() == Layout::NCHW);
  CHECK(t.device().is_cpu());
  CHECK(t.desc() == "f32[2,3,4,5] NCHW cpu");
  for (float v : t.to_vector<float>()) CHECK(v == 0.0f);
  CHECK_FALSE(Tensor().defined());
  CHECK_THROWS_WITH_AS(t.size(4), doctest::Contains("no dimension 4"), Error);
  CHECK_THROWS_AS(Tensor::empty({2, -1}), Error);
  CHECK_THROWS_WITH_AS(Tensor::empty({2, 3}, DType::f32, Device::cpu(), Layout::NHWC),
                       doctest::Contains("needs a 4-D shape"), Error);
}

TEST_CASE("data<T>() refuses the wrong element type by name") {
  Tensor t = Tensor::empty({3}, DType::bf16);
  CHECK_THROWS_WITH_AS(t.data<float>(), doctest::Contains("accessed as f32"), Error);
  CHECK(t.data<bf16>() != nullptr);
}

TEST_CASE("views share storage; slices offset into it") {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {3, 4});
  Tensor v = t.view({2, -1});
  CHECK(v.shape() == Shape{2, 6});
  CHECK(v.shares_storage(t));
  v.data<float>()[7] = 70;
  CHECK(t.data<float>()[7] == 70);
  Tensor s = t.slice(1, 3);
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.data<float>()[0] == 4);
  CHECK(s.to_vector<float>().back() == 11);
  CHECK_THROWS_AS(t.view({5, 3}), Error);
  CHECK_THROWS_AS(t.view({-1, -1}), Error);
  CHECK_THROWS_AS(t.slice(2, 4), Error);
  CHECK(t.slice(3, 3).numel() == 0);
}

TEST_CASE("copies are deep; clone and copy_from check shapes") {
  Tensor a = test::random_tensor({4, 5}, 1);
  Tensor b = a.clone();
  CHECK_FALSE(b.shares_storage(a));
  CHECK(b.to_vector<float>() == a.to_vector<float>());
  b.data<float>()[0] += 1;
  CHECK(b.data<float>()[0] != a.data<float>()[0]);
  Tensor c = Tensor::empty({4, 5});
  c.copy_from(a);
  CHECK(c.to_vector<float>() == a.to_vector<float>());
  CHECK_THROWS_WITH_AS(c.copy_from(Tensor::empty({5, 4})), doctest::Contains("must match"), Error);
  CHECK_THROWS_AS(c.copy_from(Tensor::empty({4, 5}, DType::f64)), Error);
}

TEST_CASE("fill and dtype conversion round-trip every dtype") {
  Tensor a = test::random_tensor({3, 7}, 2, -3.0, 3.0);
  for (DType d : {DType::f64, DType::bf16, DType::f16}) {
    Tensor back = a.to_dtype(d).to_dtype(DType::f32);
    CHECK_TENSORS_CLOSE(back, a, default_tolerance(d));
  }
  Tensor i = Tensor::full({5}, 7, DType::i32);
  CHECK(i.to_vector<int32_t>() == std::vector<int32_t>(5, 7));
  Tensor u = Tensor::full({5}, 255, DType::u8);
  CHECK(u.to_dtype(DType::i64).to_vector<int64_t>() == std::vector<int64_t>(5, 255));
}

namespace {
const std::vector<int64_t> kLargeInt64 = {0, std::numeric_limits<int64_t>::max(), (int64_t(1) << 53) + 1,
                                          std::numeric_limits<int64_t>::min()};
}

TEST_CASE("to_vector of the stored type is exact: int64 beyond 2^53, INT64_MAX (a sentinel)") {
  CHECK(Tensor::from_vector<int64_t>(kLargeInt64, {4}).to_vector<int64_t>() == kLargeInt64);
  const std::vector<float> f = {1.5f, -0.0f, 3.4e38f};
  CHECK(Tensor::from_vector<float>(f, {3}).to_vector<float>() == f);
}

GPU_TEST_CASE("to_vector of a GPU int64 tensor is exact (the CE counters' sentinel)") {
  const Tensor t = Tensor::from_vector<int64_t>(kLargeInt64, {4}).to(Device::cuda(0));
  CHECK(t.to_vector<int64_t>() == kLargeInt64);
}

TEST_CASE("bf16 and f16 conversions round to nearest even, with known bit patterns") {
  CHECK(bf16(1.0f).bits == 0x3f80);
  CHECK(bf16(-2.0f).bits == 0xc000);
  CHECK(float(bf16(3.140625f)) == 3.140625f);
  // 1 + 2^-8 is exactly between two bf16 values (1 and 1 + 2^-7): ties go to the even one, 1.
  CHECK(bf16(1.00390625f).bits == 0x3f80);
  CHECK(bf16(1.01171875f).bits == 0x3f82);  // 1 + 3·2^-8 → tie → even (1 + 2·2^-7)
  CHECK(f16(1.0f).bits == 0x3c00);
  CHECK(f16(65504.0f).bits == 0x7bff);
  CHECK(f16(65520.0f).bits == 0x7c00);          // rounds to infinity
  CHECK(f16(5.9604645e-8f).bits == 0x0001);     // smallest subnormal
  CHECK(f16(2.9802322e-8f).bits == 0x0000);     // exactly half of it: tie to even (zero)
  CHECK(f16::to_float(0x0001) == 5.9604645e-8f);
  CHECK(f16::to_float(0xc000) == -2.0f);
  CHECK(std::isinf(f16::to_float(0x7c00)));
  for (float v : {0.1f, -7.25f, 3e-4f, 1234.5f, 6.2e-5f})  // normal halves: 11-bit precision
    CHECK(std::fabs(float(f16(v)) - v) <= std::fabs(v) * 1e-3f);
}

TEST_CASE("NCHW <-> NHWC reorder keeps logical values") {
  Tensor a = test::random_tensor({2, 3, 4, 5}, 3);
  Tensor nhwc = a.to_layout(Layout::NHWC);
  CHECK(nhwc.layout() == Layout::NHWC);
  CHECK(nhwc.shape() == a.shape());
  // element (n=1, c=2, h=3, w=4) sits at ((1*4+3)*5+4)*3+2 in NHWC memory
  CHECK(nhwc.data<float>()[((1 * 4 + 3) * 5 + 4) * 3 + 2] == a.data<float>()[((1 * 3 + 2) * 4 + 3) * 5 + 4]);
  CHECK_TENSORS_CLOSE(nhwc, a, Tolerance{0, 0});  // compare_tensors compares logical elements
  Tensor back = nhwc.to_layout(Layout::NCHW);
  CHECK(back.to_vector<float>() == a.to_vector<float>());
  CHECK_THROWS_AS(nhwc.view({6, 20}), Error);
}

TEST_CASE("require_* name the caller and the tensor") {
  Tensor t = Tensor::empty({1, 2, 3, 4}, DType::bf16);
  CHECK_THROWS_WITH_AS(require_dtype(t, DType::f32, "conv2d", "input"),
                       doctest::Contains("conv2d: input is bf16[1,2,3,4] NCHW cpu, but only f32"), Error);
  CHECK_THROWS_WITH_AS(require_layout(t.with_layout(Layout::NHWC), Layout::NCHW, "bn", "x"),
                       doctest::Contains("only NCHW"), Error);
  CHECK_THROWS_WITH_AS(require_ndim(t, 2, "linear", "x"), doctest::Contains("must be 2-D"), Error);
}

TEST_CASE("a CUDA tensor on a machine without one is refused clearly") {
  if (has_gpu()) return;
  CHECK_THROWS_WITH_AS(Tensor::empty({2}, DType::f32, Device::cuda(0)), doctest::Contains("does not exist"), Error);
}

TEST_CASE("device strings parse") {
  CHECK(Device::parse("cpu").is_cpu());
  CHECK(Device::parse("cuda:3").index == 3);
  CHECK(Device::parse("cuda") == Device::cuda(0));
  CHECK_THROWS_AS(Device::parse("tpu"), Error);
  CHECK_THROWS_AS(Device::parse("cuda:x"), Error);
}

// ------------------------------------------------------------------------------------------------
// GPU
// ------------------------------------------------------------------------------------------------

GPU_TEST_CASE("host <-> device copies round-trip every dtype") {
  Tensor a = test::random_tensor({3, 5, 7, 9}, 4, -2.0, 2.0);
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    Tensor h = a.to_dtype(d);
    Tensor g = h.to(Device::cuda(0));
    CHECK(g.device().is_cuda());
    Tensor back = g.to(Device::cpu());
    CHECK_TENSORS_CLOSE(back, h, Tolerance{0, 0});
  }
  Tensor i = Tensor::full({100}, 42, DType::i32).to(Device::cuda(0));
  CHECK(i.to_vector<int32_t>() == std::vector<int32_t>(100, 42));
  Tensor p = Tensor::empty_pinned({3, 5, 7, 9});
  CHECK(p.is_pinned());
  p.copy_from(a);
  Tensor g2 = p.to(Device::cuda(0));
  CHECK_TENSORS_CLOSE(g2, a, Tolerance{0, 0});
}

GPU_TEST_CASE("GPU fill, conversion and reorder match the CPU") {
  Tensor a = test::random_tensor({2, 3, 5, 7}, 5);
  Tensor g = a.to(Device::cuda(0));
  CHECK_TENSORS_CLOSE(g.to_layout(Layout::NHWC), a.to_layout(Layout::NHWC), Tolerance{0, 0});
  CHECK_TENSORS_CLOSE(g.to_layout(Layout::NHWC).to_layout(Layout::NCHW), a, Tolerance{0, 0});
  for (DType d : {DType::bf16, DType::f16, DType::f64})
    CHECK_TENSORS_CLOSE(g.to_dtype(d), a.to_dtype(d), Tolerance{0, 0});
  Tensor f = Tensor::empty({1000}, DType::bf16, Device::cuda(0));
  f.fill_(1.5);
  CHECK(f.to_vector<float>() == std::vector<float>(1000, 1.5f));
}
