#include "engine/rng.h"

#include <cmath>
#include <set>

#include "engine/philox.h"
#include "harness.h"

using namespace rdd;

// Known-answer vectors from Random123's tests/kat_vectors (the three "philox4x32 10" lines).
TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors") {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    const philox::U32x4 r =
        philox::philox4x32_10(philox::U32x4{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == k.out[i]);
  }
}

TEST_CASE("stream convention: element i of (seed, offset) is lane i%4 of block i/4") {
  const uint64_t seed = 0x0123456789abcdefull, offset = 0xfedcba9876543210ull;
  for (uint64_t i : {0ull, 1ull, 5ull, 4000000003ull, (1ull << 40) + 2}) {
    const uint64_t b = i / 4;
    const philox::U32x4 r = philox::philox4x32_10(
        philox::U32x4{{uint32_t(b), uint32_t(b >> 32), uint32_t(offset), uint32_t(offset >> 32)}}, uint32_t(seed),
        uint32_t(seed >> 32));
    CHECK(philox::u32(seed, offset, i) == r.v[i % 4]);
  }
}

TEST_CASE("fills are deterministic, stream-separated, and have the right moments") {
  Tensor a = Tensor::empty({10000}), b = Tensor::empty({10000}), c = Tensor::empty({10000});
  fill_uniform(a, -1, 1, 7, 0);
  fill_uniform(b, -1, 1, 7, 0);
  fill_uniform(c, -1, 1, 7, 1);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  CHECK(a.to_vector<float>() != c.to_vector<float>());
  double mean = 0, lo = 1, hi = -1;
  for (float v : a.to_vector<float>()) {
    mean += v;
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
  }
  mean /= 10000;
  CHECK(std::fabs(mean) < 0.03);
  CHECK(lo >= -1.0);
  CHECK(hi < 1.0);
  CHECK(hi > 0.99);

  Tensor n = Tensor::empty({20000});
  fill_normal(n, 2.0, 3.0, 11, 0);
  double m = 0, m2 = 0;
  for (float v : n.to_vector<float>()) {
    m += v;
    m2 += double(v) * v;
  }
  m /= 20000;
  const double var = m2 / 20000 - m * m;
  CHECK(std::fabs(m - 2.0) < 0.1);
  CHECK(std::fabs(std::sqrt(var) - 3.0) < 0.1);

  Tensor k = Tensor::empty({5000}, DType::i32);
  fill_randint(k, 3, 8, 5, 0);
  std::set<int32_t> seen;
  for (int32_t v : k.to_vector<int32_t>()) {
    CHECK(v >= 3);
    CHECK(v < 8);
    seen.insert(v);
  }
  CHECK(seen.size() == 5);
  CHECK_THROWS_AS(fill_uniform(k, 0, 1, 1, 0), Error);
}

TEST_CASE("PhiloxStream is resumable from its position and unbiased in range") {
  PhiloxStream s(3, 9);
  for (int i = 0; i < 10; ++i) s.next_u32();
  PhiloxStream resumed(3, 9, s.position());
  for (int i = 0; i < 20; ++i) CHECK(s.next_u32() == resumed.next_u32());
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 3000; ++i) ++counts[s.next_int(0, 3)];
  for (int c : counts) CHECK(c > 850);
  CHECK_THROWS_AS(s.next_int(2, 2), Error);
}

GPU_TEST_CASE("GPU fills give the same numbers as the CPU") {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    Tensor cpu = Tensor::empty({3, 1001}, d), gpu = Tensor::empty({3, 1001}, d, Device::cuda(0));
    fill_uniform(cpu, -2, 3, 99, 17);
    fill_uniform(gpu, -2, 3, 99, 17);
    CHECK_TENSORS_CLOSE(gpu, cpu, Tolerance{0, 0});  // uniform: bit-identical
    fill_normal(cpu, 0.5, 2, 99, 18);
    fill_normal(gpu, 0.5, 2, 99, 18);
    // normal() runs in float (logf, cosf): glibc and CUDA differ in the last float bit, whatever d is.
    CHECK_TENSORS_CLOSE(gpu, cpu, d == DType::f64 ? Tolerance{1e-6, 1e-6} : default_tolerance(d));
  }
  Tensor ci = Tensor::empty({4096}, DType::i32), gi = Tensor::empty({4096}, DType::i32, Device::cuda(0));
  fill_randint(ci, -5, 19, 1, 2);
  fill_randint(gi, -5, 19, 1, 2);
  CHECK(gi.to_vector<int32_t>() == ci.to_vector<int32_t>());
}

TEST_CASE("fill_randint refuses ranges it cannot cover with one 32-bit draw") {
  Tensor k = Tensor::empty({4}, DType::i64);
  CHECK_THROWS_WITH_AS(fill_randint(k, 0, int64_t(1) << 33, 1, 0), doctest::Contains("wider than 2^32"), Error);
  fill_randint(k, -(int64_t(1) << 31), int64_t(1) << 31, 1, 0);  // exactly 2^32 values: fine
}
