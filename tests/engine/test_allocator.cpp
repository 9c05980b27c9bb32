#include "engine/allocator.h"

#include <cstdlib>
#include <map>

#include "harness.h"

using namespace rdd;

namespace {
// A raw allocator over malloc that counts calls and can be told to run out of memory.
struct CountingBackend {
  int allocs = 0, frees = 0;
  size_t limit = SIZE_MAX, live = 0;
  std::map<void*, size_t> blocks;
  CachingAllocator make() {
    return CachingAllocator(
        "test allocator",
        [this](size_t n) -> void* {
          if (live + n > limit) return nullptr;
          ++allocs;
          live += n;
          void* p = std::malloc(n);
          blocks[p] = n;
          return p;
        },
        [this](void* p) {
          ++frees;
          live -= blocks[p];
          blocks.erase(p);
          std::free(p);
        });
  }
};
}  // namespace

TEST_CASE("caching allocator reuses freed blocks: no raw calls in a steady-state step") {
  CountingBackend be;
  {
    CachingAllocator a = be.make();
    auto step = [&] {
      void* x = a.allocate(1000);
      void* y = a.allocate(5 << 20);
      void* z = a.allocate(1024);
      a.free(y);
      a.free(x);
      a.free(z);
    };
    step();
    const int after_first = be.allocs;
    CHECK(after_first == 3);
    for (int i = 0; i < 10; ++i) step();
    CHECK(be.allocs == after_first);  // every later step is served from the cache
    const AllocatorStats s = a.stats();
    CHECK(s.cache_hits == 30);
    CHECK(s.in_use_bytes == 0);
    CHECK(s.cached_bytes > 0);
    CHECK(s.peak_in_use_bytes >= (5u << 20) + 2000);
    a.empty_cache();
    CHECK(be.frees == 3);
    CHECK(a.stats().cached_bytes == 0);
  }
  CHECK(be.blocks.empty());  // the destructor returns everything cached
}

TEST_CASE("caching allocator rounds sizes and never serves a block more than twice too big") {
  CHECK(CachingAllocator::round_size(1) == 512);
  CHECK(CachingAllocator::round_size(513) == 1024);
  CHECK(CachingAllocator::round_size((1 << 20) + 1) == size_t(2) << 20);  // 2 MiB granule above 1 MiB
  CountingBackend be;
  CachingAllocator a = be.make();
  void* big = a.allocate(64 << 20);
  a.free(big);
  void* small = a.allocate(1000);
  CHECK(small != big);  // a 64 MiB block is not handed out for 1000 bytes
  CHECK(be.allocs == 2);
  void* big2 = a.allocate(40 << 20);  // ≤ 2× → reuses the cached 64 MiB block
  CHECK(big2 == big);
  a.free(small);
  a.free(big2);
}

TEST_CASE("caching allocator empties its cache and retries when the raw allocator runs out") {
  CountingBackend be;
  be.limit = 10 << 20;
  CachingAllocator a = be.make();
  void* p = a.allocate(6 << 20);
  a.free(p);  // cached, still counted against the backend's limit
  void* q = a.allocate(1 << 10);  // small: fits beside it
  void* r = a.allocate(8 << 20);  // needs the cached 6 MiB back first... 6+8 > 10 → empty cache, retry
  CHECK(r != nullptr);
  CHECK(be.frees == 1);
  a.free(q);
  a.free(r);
  be.limit = 0;
  a.empty_cache();
  CHECK_THROWS_WITH_AS(a.allocate(1 << 20), doctest::Contains("out of memory"), Error);
  CHECK_THROWS_WITH_AS(a.free(reinterpret_cast<void*>(0x1234)), doctest::Contains("did not allocate"), Error);
}

GPU_TEST_CASE("the CUDA allocator serves repeated tensors from its cache") {
  CachingAllocator& a = cuda_allocator(0);
  { Tensor warm = Tensor::empty({1 << 20}, DType::f32, Device::cuda(0)); }
  const size_t raw_before = a.stats().raw_allocations;
  for (int i = 0; i < 20; ++i) {
    Tensor t = Tensor::empty({1 << 20}, DType::f32, Device::cuda(0));
    t.fill_(i);
  }
  CHECK(a.stats().raw_allocations == raw_before);
}
