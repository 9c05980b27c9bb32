#if RDD_CUDA_EMULATED
#include "engine/emu_device.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/emu_device_state.h"
#include "engine/error.h"

namespace rdd::emu {

// ------------------------------------------------------------------------------------------------
// Settings
// ------------------------------------------------------------------------------------------------

namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* e = std::getenv(name);
  if (!e || !*e) return fallback;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (*end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "rdd: %s=%s is not a whole number in [%d, %d]; using %d\n", name, e, lo, hi, fallback);
    return fallback;
  }
  return int(v);
}

std::mutex g_schedule_mu;
Schedule* g_schedule = nullptr;

}  // namespace

Schedule schedule() {
  std::lock_guard<std::mutex> lock(g_schedule_mu);
  if (!g_schedule) {
    const char* e = std::getenv("RDD_EMU_SCHEDULE");
    g_schedule = new Schedule(e && *e ? Schedule::parse(e) : Schedule{});
  }
  return *g_schedule;
}

void set_schedule(const Schedule& s) {
  std::lock_guard<std::mutex> lock(g_schedule_mu);
  if (!g_schedule) g_schedule = new Schedule;
  *g_schedule = s;
}

int device_count() {
  static const int n = env_int("RDD_EMU_DEVICES", 1, 1, 8);
  return n;
}

int block_threads() {
  static const int n = env_int("RDD_EMU_THREADS", int(std::max(1u, std::thread::hardware_concurrency())), 1, 256);
  return n;
}

size_t device_memory_bytes() {
  static const size_t n = size_t(env_int("RDD_EMU_MEMORY_MB", 16384, 16, 1 << 22)) << 20;
  return n;
}

std::string kernel_name_from_signature(const char* pretty) {
  // "const char* rdd::emu::kernel_name() [with auto Kernel = rdd::kernels::{anonymous}::fill_kernel<float>]"
  std::string s = pretty;
  const size_t eq = s.find(" = ");
  if (eq == std::string::npos) return s;
  s = s.substr(eq + 3);
  if (!s.empty() && s.back() == ']') s.pop_back();
  // Drop the namespaces: everything up to the last "::" outside template brackets.
  int depth = 0;
  size_t cut = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '<') ++depth;
    else if (s[i] == '>') --depth;
    else if (depth == 0 && s[i] == ':' && s[i + 1] == ':') cut = i + 2;
  }
  return s.substr(cut);
}

// ------------------------------------------------------------------------------------------------
// Memory map
// ------------------------------------------------------------------------------------------------

MemoryMap& memory_map() {
  static auto* m = new MemoryMap;  // never destroyed: kernels may still run while the process exits
  return *m;
}

void MemoryMap::add(const Region& r) {
  std::lock_guard<std::mutex> lock(mu_);
  regions_[reinterpret_cast<uintptr_t>(r.base)] = r;
  if (r.kind == Region::Kind::device) used_[r.device] += r.bytes;
}

bool MemoryMap::remove(const void* base, Region::Kind kind, Region* removed) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = regions_.find(reinterpret_cast<uintptr_t>(base));
  if (it == regions_.end() || it->second.kind != kind) return false;
  if (removed) *removed = it->second;
  if (kind == Region::Kind::device) used_[it->second.device] -= it->second.bytes;
  regions_.erase(it);
  return true;
}

Region MemoryMap::find(const void* p) const {
  std::lock_guard<std::mutex> lock(mu_);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = regions_.upper_bound(a);
  if (it == regions_.begin()) return {};
  --it;
  const Region& r = it->second;
  // A zero-byte view at the very end of an allocation is a valid pointer too (it reads nothing).
  if (a < reinterpret_cast<uintptr_t>(r.base) + std::max<size_t>(r.bytes, 1)) return r;
  return {};
}

size_t MemoryMap::used(int device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = used_.find(device);
  return it == used_.end() ? 0 : it->second;
}

Region find_region(const void* p) { return memory_map().find(p); }

std::string describe(const Region& r) {
  std::ostringstream os;
  if (r.kind == Region::Kind::device)
    os << "a cuda:" << r.device << " allocation of " << r.bytes << " bytes at " << static_cast<const void*>(r.base);
  else if (r.kind == Region::Kind::pinned)
    os << "a pinned host buffer of " << r.bytes << " bytes at " << static_cast<const void*>(r.base);
  else
    os << "host memory";
  return os.str();
}

// ------------------------------------------------------------------------------------------------
// Errors: the thread's last error (cleared by cudaGetLastError) and the sticky kernel fault
// ------------------------------------------------------------------------------------------------

namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_last_detail;
std::mutex g_fault_mu;
std::atomic<bool> g_faulted{false};
std::string g_fault_detail;
}  // namespace

cudaError_t fail_call(cudaError_t e, const std::string& detail) {
  t_last_error = e;
  t_last_detail = detail;
  return e;
}

cudaError_t sticky_error() {
  if (!g_faulted.load(std::memory_order_acquire)) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_fault_mu);
  return fail_call(cudaErrorLaunchFailure, g_fault_detail);
}

void record_fault(const std::string& detail) {
  {
    std::lock_guard<std::mutex> lock(g_fault_mu);
    if (g_faulted.load()) return;  // the first fault is the one to read
    g_fault_detail = detail;
    g_faulted.store(true, std::memory_order_release);
  }
  std::fprintf(stderr, "rdd %s\n  (sticky: every later CUDA call fails with cudaErrorLaunchFailure)\n", detail.c_str());
}

cudaError_t take_last_error(bool reset) {
  if (const cudaError_t s = sticky_error()) return s;
  const cudaError_t e = t_last_error;
  if (reset) t_last_error = cudaSuccess;
  return e;
}

std::string last_error_detail() {
  if (g_faulted.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(g_fault_mu);
    return g_fault_detail;
  }
  return t_last_detail;
}

void clear_fault_for_tests() {
  std::lock_guard<std::mutex> lock(g_fault_mu);
  g_faulted.store(false);
  g_fault_detail.clear();
  t_last_error = cudaSuccess;
  t_last_detail.clear();
}

// ------------------------------------------------------------------------------------------------
// The block pool: OS threads that run the blocks of whatever grids are in flight
// ------------------------------------------------------------------------------------------------

namespace {

struct GridRun {
  const KernelGrid* grid;
  uint64_t blocks;
  std::atomic<uint64_t> next{0};
  uint64_t finished = 0;  // under mu
  std::atomic<bool> failed{false};
  std::string fault;  // under mu
  std::mutex mu;
  std::condition_variable cv;
};

class BlockPool {
 public:
  explicit BlockPool(int helpers) {
    for (int i = 0; i < helpers; ++i) std::thread([this] { work(); }).detach();
  }

  // Runs every block of `g` (the caller works too) and returns the first fault, or "".
  std::string run(const KernelGrid& g) {
    auto run = std::make_shared<GridRun>();
    run->grid = &g;
    run->blocks = uint64_t(g.grid.x) * g.grid.y * g.grid.z;
    if (run->blocks > 1) {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(run);
      cv_.notify_all();
    }
    while (run_one(*run)) {
    }
    std::unique_lock<std::mutex> lock(run->mu);
    run->cv.wait(lock, [&] { return run->finished == run->blocks; });
    lock.unlock();
    if (run->blocks > 1) {
      std::lock_guard<std::mutex> jobs_lock(mu_);
      jobs_.erase(std::remove(jobs_.begin(), jobs_.end(), run), jobs_.end());
    }
    return run->fault;
  }

 private:
  // Claims and runs one block; false when none is left to claim.
  static bool run_one(GridRun& r) {
    const uint64_t b = r.next.fetch_add(1);
    if (b >= r.blocks) return false;
    if (!r.failed.load(std::memory_order_relaxed)) {
      const KernelGrid& g = *r.grid;
      const uint3 idx{unsigned(b % g.grid.x), unsigned(b / g.grid.x % g.grid.y), unsigned(b / (uint64_t(g.grid.x) * g.grid.y))};
      try {
        BlockRunner::for_this_thread().run(g, idx);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(r.mu);
        if (!r.failed.exchange(true)) r.fault = e.what();
      }
    }
    std::lock_guard<std::mutex> lock(r.mu);
    if (++r.finished == r.blocks) r.cv.notify_all();
    return true;
  }

  // The job is picked by the same look that finds one: blocks are claimed without mu_ (run_one), so a
  // second look could find every grid taken and leave `job` empty (a null grid run: the SEGV that
  // "many small grids from two streams" catches). A grid claimed out after the pick is fine: run_one
  // then claims nothing.
  void work() {
    for (;;) {
      std::shared_ptr<GridRun> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          for (auto& j : jobs_)
            if (j->next.load() < j->blocks) {
              job = j;
              return true;
            }
          return false;
        });
      }
      while (run_one(*job)) {
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GridRun>> jobs_;
};

BlockPool& block_pool() {
  static auto* p = new BlockPool(block_threads() - 1);  // the stream's worker is the last one
  return *p;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Streams and events
// ------------------------------------------------------------------------------------------------

void Token::complete() {
  std::lock_guard<std::mutex> lock(mu);
  done = true;
  cv.notify_all();
}

void Token::wait() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
}

bool Token::is_done() {
  std::lock_guard<std::mutex> lock(mu);
  return done;
}

Stream::Stream(int device, bool blocking, bool legacy) : device_(device), blocking_(blocking), legacy_(legacy) {
  std::thread([this] { work(); }).detach();
}

uint64_t Stream::enqueue(std::function<void()> fn, bool always_run) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back({std::move(fn), always_run});
  cv_.notify_all();
  return ++submitted_;
}

uint64_t Stream::submitted() {
  std::lock_guard<std::mutex> lock(mu_);
  return submitted_;
}

void Stream::wait_for(uint64_t ticket) {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return completed_ >= ticket; });
}

bool Stream::reached(uint64_t ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_ >= ticket;
}

void Stream::work() {
  set_current_device(device_);  // host work (the emulated cuDNN) allocates on the stream's device
  for (;;) {
    Work w;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty(); });
      w = std::move(queue_.front());
      queue_.pop_front();
    }
    // After a kernel fault the device runs nothing more, but completions and waits still happen so
    // that no host thread waits forever.
    if (w.always_run || !g_faulted.load(std::memory_order_acquire)) {
      try {
        w.fn();
      } catch (const std::exception& e) {
        record_fault(std::string("emulated CUDA: work on a stream failed: ") + e.what());
      }
    }
    // What the work holds (tensors the emulated cuDNN captured) goes before the work counts as done:
    // memory in use after a synchronize is what the host still holds, as on a GPU.
    w.fn = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    ++completed_;
    done_cv_.notify_all();
  }
}

DeviceState& device_state(int device) {
  static std::mutex mu;
  static auto* states = new std::vector<std::unique_ptr<DeviceState>>(size_t(device_count()));
  std::lock_guard<std::mutex> lock(mu);
  auto& s = (*states)[size_t(device)];
  if (!s) {
    s = std::make_unique<DeviceState>();
    s->legacy = new Stream(device, true, true);
  }
  return *s;
}

namespace {
thread_local int t_current_device = 0;
}
int current_device() { return t_current_device; }
void set_current_device(int d) { t_current_device = d; }

Stream* DeviceState::add_stream(int device, bool blocking) {
  auto* s = new Stream(device, blocking, false);  // streams are few; a destroyed one is parked, not freed
  std::lock_guard<std::mutex> lock(mu);
  streams.push_back(s);
  return s;
}

std::vector<Stream*> DeviceState::live_streams() {
  std::lock_guard<std::mutex> lock(mu);
  std::vector<Stream*> out = streams;
  out.push_back(legacy);
  return out;
}

bool DeviceState::retire(Stream* s) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = std::find(streams.begin(), streams.end(), s);
  if (it == streams.end()) return false;
  streams.erase(it);
  return true;
}

Stream* resolve_stream(cudaStream_t handle, std::string* error) {
  if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread)
    return device_state(current_device()).legacy;
  for (int d = 0; d < device_count(); ++d) {
    for (Stream* s : device_state(d).live_streams())
      if (reinterpret_cast<cudaStream_t>(s) == handle) return s;
  }
  if (error) {
    std::ostringstream os;
    os << "stream " << static_cast<const void*>(handle) << " is not a live stream (destroyed, or never created)";
    *error = os.str();
  }
  return nullptr;
}

uint64_t submit(Stream* s, std::function<void()> fn, bool always_run) {
  // CUDA's legacy default stream waits for all blocking streams of its device and they wait for it.
  std::vector<std::pair<Stream*, uint64_t>> after;
  DeviceState& dev = device_state(s->device());
  if (s->is_legacy()) {
    for (Stream* o : dev.live_streams())
      if (o != s && o->is_blocking()) after.push_back({o, o->submitted()});
  } else if (s->is_blocking()) {
    after.push_back({dev.legacy, dev.legacy->submitted()});
  }
  if (!after.empty()) {
    fn = [after, fn = std::move(fn)] {
      for (auto& [o, ticket] : after) o->wait_for(ticket);
      fn();
    };
  }
  return s->enqueue(std::move(fn), always_run);
}

// ------------------------------------------------------------------------------------------------
// Launch
// ------------------------------------------------------------------------------------------------

std::string run_racechecked(KernelGrid& grid, const std::vector<std::pair<int, Region>>& reach);

void submit_launch(KernelGrid grid, cudaStream_t stream, const std::vector<PointerArg>& pointers) {
  if (sticky_error()) return;
  const std::string who = "kernel '" + grid.name + "'";
  const dim3 g = grid.grid, b = grid.block;
  const uint64_t threads = uint64_t(b.x) * b.y * b.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || b.x == 0 || b.y == 0 || b.z == 0 || g.x > 2147483647u || g.y > 65535 ||
      g.z > 65535 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024) {
    std::ostringstream os;
    os << "emulated CUDA: " << who << ": grid (" << g.x << "," << g.y << "," << g.z << ") × block (" << b.x << ","
       << b.y << "," << b.z << ") is outside CUDA's limits (grid ≤ (2^31−1, 65535, 65535), block ≤ (1024, 1024, 64) "
       << "and ≤ 1024 threads, none 0)";
    fail_call(cudaErrorInvalidConfiguration, os.str());
    return;
  }
  if (grid.shared_bytes > 48 * 1024) {
    fail_call(cudaErrorInvalidValue, "emulated CUDA: " + who + ": " + std::to_string(grid.shared_bytes) +
                                         " bytes of dynamic shared memory (more than the 48 KiB a launch gets by default)");
    return;
  }
  std::string stream_error;
  Stream* s = resolve_stream(stream, &stream_error);
  if (!s) {
    fail_call(cudaErrorInvalidResourceHandle, "emulated CUDA: " + who + ": " + stream_error);
    return;
  }
  for (const PointerArg& p : pointers) {
    if (!p.value) continue;  // optional arguments: a null pointer the kernel does not read
    const Region r = find_region(p.value);
    std::ostringstream os;
    os << "emulated CUDA: " << who << ": argument " << p.index << " (" << p.value << ") ";
    if (r.kind == Region::Kind::none) {
      os << "is not device memory: it lies in no live cudaMalloc allocation or pinned host buffer (a host pointer, "
            "or memory already freed?)";
      fail_call(cudaErrorInvalidValue, os.str());
      return;
    }
    if (r.kind == Region::Kind::device && r.device != s->device()) {
      os << "lies in " << describe(r) << ", but the kernel runs on cuda:" << s->device()
         << " (peer access is not enabled)";
      fail_call(cudaErrorInvalidValue, os.str());
      return;
    }
  }
  // The memory the kernel can reach through its arguments, for the race check.
  std::vector<std::pair<int, Region>> reach;
  for (const PointerArg& p : pointers) {
    if (!p.value) continue;
    const Region r = find_region(p.value);
    if (std::none_of(reach.begin(), reach.end(), [&](const auto& e) { return e.second.base == r.base; }))
      reach.push_back({p.index, r});
  }
  auto shared_grid = std::make_shared<KernelGrid>(std::move(grid));
  const bool racecheck = racecheck_enabled();  // the settings at the launch, like the schedule
  submit(s, [shared_grid, reach, racecheck] {
    const std::string fault = racecheck ? run_racechecked(*shared_grid, reach) : block_pool().run(*shared_grid);
    if (!fault.empty()) record_fault(fault);
  }, false);
}

// ------------------------------------------------------------------------------------------------
// The race check (RDD_EMU_RACECHECK=1): every launch runs twice from the same memory, under the
// schedule and under a second one; memory that ends up different is a fault. What it finds: a missing
// __syncthreads, a racy use of shared memory, blocks that race on global memory — any result that
// depends on an order CUDA does not promise. Kernels whose results legitimately depend on the order
// (float atomics, "first one wins" atomics) are flagged too; rdd has none outside error reports.
// ------------------------------------------------------------------------------------------------

namespace {
std::atomic<int> g_racecheck{-1};  // -1: not read from the environment yet
}

bool racecheck_enabled() {
  int v = g_racecheck.load();
  if (v < 0) {
    v = env_int("RDD_EMU_RACECHECK", 0, 0, 1);
    g_racecheck.store(v);
  }
  return v == 1;
}

void set_racecheck(bool on) { g_racecheck.store(on ? 1 : 0); }

Schedule second_schedule(const Schedule& s) {
  Schedule o = s;
  switch (s.kind) {
    case Schedule::Kind::forward: o.kind = Schedule::Kind::reverse; break;
    case Schedule::Kind::reverse: o.kind = Schedule::Kind::forward; break;
    case Schedule::Kind::shuffle: o.seed = s.seed + 1; break;
  }
  return o;
}

// Whole allocations are copied and compared, including the slack the caching allocator poisons for
// AddressSanitizer: these two helpers are not instrumented (and their loops must not become memcpy
// calls, which ASan intercepts).
__attribute__((no_sanitize("address"), optimize("no-tree-loop-distribute-patterns"))) void copy_unchecked(
    char* dst, const char* src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = src[i];
}
__attribute__((no_sanitize("address"), optimize("no-tree-loop-distribute-patterns"))) size_t first_difference(
    const char* a, const char* b, size_t n) {
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

std::string run_racechecked(KernelGrid& grid, const std::vector<std::pair<int, Region>>& reach) {
  std::vector<std::vector<char>> before, first;
  auto snapshot = [&](std::vector<std::vector<char>>& out) {
    for (const auto& [index, r] : reach) {
      out.emplace_back(r.bytes);
      copy_unchecked(out.back().data(), r.base, r.bytes);
    }
  };
  snapshot(before);
  if (std::string fault = block_pool().run(grid); !fault.empty()) return fault;
  snapshot(first);
  for (size_t i = 0; i < reach.size(); ++i)
    copy_unchecked(const_cast<char*>(reach[i].second.base), before[i].data(), before[i].size());
  const Schedule a = grid.schedule;
  grid.schedule = second_schedule(a);
  std::string fault = block_pool().run(grid);
  grid.schedule = a;
  if (!fault.empty()) return fault;
  for (size_t i = 0; i < reach.size(); ++i) {
    const Region& r = reach[i].second;
    const size_t at = first_difference(first[i].data(), r.base, r.bytes);
    if (at == r.bytes) continue;
    std::ostringstream os;
    os << "emulated CUDA racecheck: kernel '" << grid.name << "' gives different results under the schedules "
       << a.str() << " and " << second_schedule(a).str() << ": argument " << reach[i].first << " (" << describe(r)
       << ") differs first at byte " << at << " — a missing __syncthreads, or a racy use of shared or global memory";
    return os.str();
  }
  return "";
}

void enqueue_host_work(cudaStream_t stream, std::function<void()> work) {
  std::string error;
  Stream* s = resolve_stream(stream, &error);
  RDD_CHECK(s, "emulated CUDA: host work on ", error);
  submit(s, std::move(work), false);
}

void enqueue_bookkeeping(cudaStream_t stream, std::function<void()> work) {
  std::string error;
  Stream* s = resolve_stream(stream, &error);
  RDD_CHECK(s, "emulated CUDA: bookkeeping on ", error);
  submit(s, std::move(work), true);
}

}  // namespace rdd::emu
#endif
