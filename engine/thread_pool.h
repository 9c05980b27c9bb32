// The CPU context's thread pool: parallel_for over an index range.
//
//   parallel_for(0, n_images, [&](int64_t begin, int64_t end) { for (...) ... });
//
// The range is cut into about one chunk per thread (at least `grain` items each); the calling
// thread works too. Nested calls run inline, so a CPU kernel may use parallel_for without caring
// who called it. RDD_NUM_THREADS overrides the thread count (default: hardware concurrency).
#pragma once

#include <cstdint>
#include <functional>

namespace rdd {

int cpu_threads();
void set_cpu_threads(int n);  // before first use; ≥ 1
void parallel_for(int64_t begin, int64_t end, const std::function<void(int64_t, int64_t)>& body,
                  int64_t grain = 1);

}  // namespace rdd
