#include "engine/thread_pool.h"

#include <atomic>
#include <vector>

#include "harness.h"

using namespace rdd;

TEST_CASE("parallel_for covers the range exactly once, nested calls included") {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(0, 1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ++hits[size_t(i)];
      parallel_for(0, 3, [&](int64_t, int64_t) {});  // nested: runs inline, no deadlock
    }
  });
  for (auto& h : hits) CHECK(h.load() == 1);
  int calls = 0;
  parallel_for(5, 5, [&](int64_t, int64_t) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel_for propagates exceptions from workers") {
  CHECK_THROWS_WITH_AS(parallel_for(0, 100, [](int64_t b, int64_t e) {
                         for (int64_t i = b; i < e; ++i)
                           if (i == 77) rdd::fail("element ", i, " is bad");
                       }),
                       "element 77 is bad", Error);
}
