#include "engine/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/error.h"

namespace rdd {

namespace {

thread_local bool t_inside_pool = false;

class ThreadPool {
 public:
  explicit ThreadPool(int n) {
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return int(workers_.size()) + 1; }

  void run(const std::vector<std::function<void()>>& tasks) {
    std::atomic<size_t> remaining{tasks.size()};
    std::exception_ptr error;
    std::mutex error_mu;
    std::condition_variable done_cv;
    std::mutex done_mu;
    auto wrap = [&](const std::function<void()>& f) {
      return [&, f] {
        try {
          f();
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error) error = std::current_exception();
        }
        // Decrement under done_mu: the caller reads `remaining` only under it, so it cannot see 0 (and
        // return, destroying done_mu and done_cv on its stack) before this thread is done with them.
        std::lock_guard<std::mutex> lock(done_mu);
        if (--remaining == 0) done_cv.notify_all();
      };
    };
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 1; i < tasks.size(); ++i) queue_.push_back(wrap(tasks[i]));
    }
    cv_.notify_all();
    t_inside_pool = true;
    wrap(tasks[0])();
    // Help with the queue instead of idling (keeps progress when all workers are busy).
    for (;;) {
      std::function<void()> job;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty()) break;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
    t_inside_pool = false;
    std::unique_lock<std::mutex> lock(done_mu);
    done_cv.wait(lock, [&] { return remaining.load() == 0; });
    if (error) std::rethrow_exception(error);
  }

 private:
  void loop() {
    t_inside_pool = true;
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

int g_requested_threads = 0;

int default_threads() {
  if (const char* env = std::getenv("RDD_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& pool() {
  static ThreadPool p(g_requested_threads > 0 ? g_requested_threads : default_threads());
  return p;
}

}  // namespace

int cpu_threads() { return pool().size(); }

void set_cpu_threads(int n) {
  RDD_CHECK(n >= 1, "set_cpu_threads: need at least one thread, got ", n);
  g_requested_threads = n;
}

void parallel_for(int64_t begin, int64_t end, const std::function<void(int64_t, int64_t)>& body, int64_t grain) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = t_inside_pool ? 1 : cpu_threads();
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  if (chunks <= 1) {
    body(begin, end);
    return;
  }
  std::vector<std::function<void()>> tasks;
  tasks.reserve(size_t(chunks));
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = begin + n * c / chunks, e = begin + n * (c + 1) / chunks;
    tasks.emplace_back([&body, b, e] { body(b, e); });
  }
  pool().run(tasks);
}

}  // namespace rdd
