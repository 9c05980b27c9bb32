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

TEST_CASE("parallel_for: many short calls in a row; the caller returns only when no worker still needs its state") {
  // Each call's completion state lives on the caller's stack: a worker that touched it after the caller
  // saw the count reach 0 (and returned) corrupted a later call's stack (a crash once in thousands).
  if (cpu_threads() < 2) {
    MESSAGE("one CPU thread: nothing runs concurrently here");
    return;
  }
  int64_t wrong = 0;
  for (int i = 0; i < 100000; ++i) {
    std::atomic<int64_t> sum{0};
    parallel_for(0, 4, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) sum += k + 1;
    });
    if (sum.load() != 10) ++wrong;
  }
  CHECK(wrong == 0);
}
