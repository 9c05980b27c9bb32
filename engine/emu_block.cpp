#if RDD_CUDA_EMULATED
#include "engine/emu_block.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "engine/error.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

// CUDA's built-in index variables, one copy per OS thread: the runner sets them before it starts or
// resumes an emulated thread (all fibers of a block run on the runner's OS thread).
thread_local uint3 threadIdx __attribute__((tls_model("initial-exec")));
thread_local uint3 blockIdx __attribute__((tls_model("initial-exec")));
thread_local dim3 blockDim __attribute__((tls_model("initial-exec")));
thread_local dim3 gridDim __attribute__((tls_model("initial-exec")));

namespace rdd::emu {

// ------------------------------------------------------------------------------------------------
// Schedule
// ------------------------------------------------------------------------------------------------

Schedule Schedule::parse(const std::string& text) {
  Schedule s;
  if (text == "forward") return s;
  if (text == "reverse") {
    s.kind = Kind::reverse;
    return s;
  }
  const std::string prefix = "shuffle:";
  if (text.rfind(prefix, 0) == 0) {
    const std::string n = text.substr(prefix.size());
    RDD_CHECK(!n.empty() && n.size() <= 19 && n.find_first_not_of("0123456789") == std::string::npos,
              "RDD_EMU_SCHEDULE=", text, ": the seed after 'shuffle:' must be a decimal number");
    s.kind = Kind::shuffle;
    s.seed = std::stoull(n);
    return s;
  }
  fail("RDD_EMU_SCHEDULE=", text, ": expected forward, reverse or shuffle:SEED");
}

std::string Schedule::str() const {
  switch (kind) {
    case Kind::forward: return "forward";
    case Kind::reverse: return "reverse";
    case Kind::shuffle: return "shuffle:" + std::to_string(seed);
  }
  return "?";
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::any: return "__any_sync";
    case WarpOp::all: return "__all_sync";
    case WarpOp::sync: return "__syncwarp";
  }
  return "?";
}

std::string hex(unsigned v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

std::string dims(uint3 d) {
  std::ostringstream os;  // (not string concatenation: GCC 12 warns falsely about it, -Wrestrict)
  os << "(" << d.x << "," << d.y << "," << d.z << ")";
  return os.str();
}

thread_local BlockRunner* t_runner = nullptr;       // the runner of the block in progress on this OS thread
thread_local BlockRunner* t_last_runner = nullptr;  // the runner that ran a block on this OS thread last

}  // namespace

// ------------------------------------------------------------------------------------------------
// Fibers
// ------------------------------------------------------------------------------------------------

struct BlockRunner::Slot {
  BlockRunner* runner;
  std::unique_ptr<Fiber> fiber;
};

BlockRunner& BlockRunner::for_this_thread() {
  // Never destroyed: a pool thread may still hold fibers when the process exits.
  static thread_local BlockRunner* runner = new BlockRunner;
  return *runner;
}

// Each fiber runs threads that have not started yet, in queue order, for as long as they end without
// waiting; then it offers itself for reuse. A thread that waits keeps the fiber (and its stack).
void BlockRunner::fiber_main(void* arg) {
  Slot* slot = static_cast<Slot*>(arg);
  BlockRunner* r = slot->runner;
  for (;;) {
    while (r->fiber_error_.empty() && r->pos_ < r->queue_.size() &&
           r->threads_[size_t(r->queue_[r->pos_])].state == State::not_started) {
      Thread& t = r->threads_[size_t(r->queue_[r->pos_++])];
      t.slot = slot;
      r->enter(t);
      try {
        r->grid_->body();
      } catch (const std::exception& e) {
        r->fiber_error_ = r->where(t) + ": the kernel threw: " + e.what();
      } catch (...) {
        r->fiber_error_ = r->where(t) + ": the kernel threw an unknown exception";
      }
      t.state = State::exited;
      t.slot = nullptr;
    }
    r->free_.push_back(slot);
    slot->fiber->suspend();
  }
}

BlockRunner::Slot* BlockRunner::free_slot() {
  if (!free_.empty()) {
    Slot* s = free_.back();
    free_.pop_back();
    return s;
  }
  auto s = std::make_unique<Slot>();
  s->runner = this;
  s->fiber = std::make_unique<Fiber>(&BlockRunner::fiber_main, s.get());
  slots_.push_back(std::move(s));
  return slots_.back().get();
}

void BlockRunner::enter(Thread& t) {
  t.state = State::running;
  current_ = &t;
  threadIdx = t.idx;
}

void BlockRunner::wait(Thread& t) {
  t.slot->fiber->suspend();  // back in the scheduler; it calls enter(t) before resuming us
}

// ------------------------------------------------------------------------------------------------
// A block
// ------------------------------------------------------------------------------------------------

std::string BlockRunner::where(const Thread& t) const {
  return "kernel '" + grid_->name + "' block " + dims(block_idx_) + " thread " + dims(t.idx);
}

void BlockRunner::fault(const Thread& t, const std::string& what) {
  const std::string message = "emulated CUDA: " + where(t) + ": " + what;
  abandon();
  throw KernelFault(message);
}

void BlockRunner::abandon() {
  free_.clear();
  for (auto& s : slots_) {
    s->fiber->reset();
    free_.push_back(s.get());
  }
  for (Thread& t : threads_) t.slot = nullptr;
  current_ = nullptr;
}

void BlockRunner::order_queue(const std::vector<int>& ids, int round) {
  queue_ = ids;
  pos_ = 0;
  switch (grid_->schedule.kind) {
    case Schedule::Kind::forward: break;
    case Schedule::Kind::reverse: std::reverse(queue_.begin(), queue_.end()); break;
    case Schedule::Kind::shuffle: {
      // Deterministic for (seed, kernel, block, round): a failure under a schedule reproduces.
      const uint64_t block_linear =
          (uint64_t(block_idx_.z) * grid_->grid.y + block_idx_.y) * grid_->grid.x + block_idx_.x;
      uint64_t state = splitmix64(grid_->schedule.seed ^ hash_name(grid_->name)) ^ splitmix64(block_linear) ^
                       splitmix64(uint64_t(round) + 0x5851f42d4c957f2dull);
      for (size_t i = queue_.size(); i > 1; --i) {
        state = splitmix64(state);
        std::swap(queue_[i - 1], queue_[size_t(state % i)]);
      }
      break;
    }
  }
}

void BlockRunner::run(const KernelGrid& grid, uint3 block_idx) {
  RDD_CHECK(t_runner == nullptr, "emulated CUDA: a kernel launched from inside a kernel (", grid.name, ")");
  t_runner = this;
  t_last_runner = this;
  if (last_kernel_ != grid.name) last_kernel_ = grid.name;
  struct Reset {
    ~Reset() { t_runner = nullptr; }
  } reset;
  grid_ = &grid;
  block_idx_ = block_idx;
  blockIdx = block_idx;
  blockDim = grid.block;
  gridDim = grid.grid;
  fiber_error_.clear();
  const int n = int(grid.block.x * grid.block.y * grid.block.z);
  threads_.assign(size_t(n), Thread{});
  std::vector<int> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    ids[size_t(i)] = i;
    threads_[size_t(i)].idx = uint3{unsigned(i) % grid.block.x, (unsigned(i) / grid.block.x) % grid.block.y,
                                    unsigned(i) / (grid.block.x * grid.block.y)};
  }
  // A fresh, exact-size copy of the block's shared memory (see dynamic_shared_).
  dynamic_shared_.reset(new unsigned char[std::max<size_t>(grid.shared_bytes, 1)]);
  std::memset(dynamic_shared_.get(), 0xff, grid.shared_bytes);
  static_shared_.clear();

  for (int round = 0;; ++round) {
    order_queue(ids, round);
    while (pos_ < queue_.size()) {
      Thread& t = threads_[size_t(queue_[pos_])];
      if (t.state == State::not_started) {
        free_slot()->fiber->resume();  // runs queued threads from pos_ until one waits or all are done
      } else {
        ++pos_;
        enter(t);
        t.slot->fiber->resume();
      }
      if (!fiber_error_.empty()) {
        const std::string e = "emulated CUDA: " + fiber_error_;
        abandon();
        throw KernelFault(e);
      }
    }
    if (resolve_warps()) {
    } else if (std::any_of(threads_.begin(), threads_.end(), [](const Thread& t) { return t.state == State::at_barrier; })) {
      open_barrier();
    } else {
      break;  // every thread has exited
    }
    ids.clear();
    for (int i = 0; i < n; ++i)
      if (threads_[size_t(i)].state == State::ready) ids.push_back(i);
  }
  current_ = nullptr;
}

// ------------------------------------------------------------------------------------------------
// Barriers and warp collectives
// ------------------------------------------------------------------------------------------------

void BlockRunner::syncthreads(const char* file, int line) {
  Thread& t = *current_;
  t.state = State::at_barrier;
  t.file = file;
  t.line = line;
  wait(t);
}

uint64_t BlockRunner::warp_op(WarpOp op, unsigned mask, uint64_t bits, int operand, int width, const char* file,
                              int line) {
  Thread& t = *current_;
  t.state = State::at_warp;
  t.op = op;
  t.mask = mask;
  t.value = bits;
  t.operand = operand;
  t.width = width;
  t.file = file;
  t.line = line;
  wait(t);
  return t.result;
}

// Checks and computes every pending warp collective; false when none was pending.
bool BlockRunner::resolve_warps() {
  const int n = int(threads_.size());
  bool any = false;
  for (int w = 0; w * 32 < n; ++w) {
    const int base = w * 32, lanes = std::min(32, n - base);
    for (int l = 0; l < lanes; ++l) {
      const Thread& t = threads_[size_t(base + l)];
      if (t.state != State::at_warp) continue;
      any = true;
      // The messages are built only when a rule is broken: this loop runs for every lane of every collective.
      auto call = [&] {
        return std::string(op_name(t.op)) + " at " + t.file + ":" + std::to_string(t.line) + " with mask " + hex(t.mask);
      };
      if (!(t.mask >> l & 1u)) fault(t, call() + " does not name the calling lane " + std::to_string(l));
      if (t.width < 1 || t.width > 32 || (t.width & (t.width - 1)))
        fault(t, call() + ": width " + std::to_string(t.width) + " is not a power of two in [1, 32]");
      for (int j = 0; j < 32; ++j) {
        if (!(t.mask >> j & 1u)) continue;
        if (j >= lanes)
          fault(t, call() + " names lane " + std::to_string(j) + ", but warp " + std::to_string(w) + " has only " +
                       std::to_string(lanes) + " threads (blockDim " + dims(grid_->block) + ")");
        const Thread& o = threads_[size_t(base + j)];
        if (o.state == State::at_warp && o.op == t.op && o.mask == t.mask && o.width == t.width) continue;
        const std::string lane = "lane " + std::to_string(j) + " (thread " + dims(o.idx) + ")";
        if (o.state == State::exited)
          fault(t, call() + ": " + lane + " exited without reaching it (a diverged warp collective)");
        if (o.state == State::at_barrier)
          fault(t, call() + ": " + lane + " waits at __syncthreads at " + o.file + ":" + std::to_string(o.line) +
                       " instead (a diverged warp collective)");
        fault(t, call() + ": " + lane + " waits at " + op_name(o.op) + " at " + o.file + ":" + std::to_string(o.line) +
                     " with mask " + hex(o.mask) + " (width " + std::to_string(o.width) + ") instead");
      }
    }
    // Every lane that waits has a consistent group: compute.
    for (int l = 0; l < lanes; ++l) {
      Thread& t = threads_[size_t(base + l)];
      if (t.state != State::at_warp) continue;
      const int seg = l / t.width * t.width;  // first lane of this lane's width-segment
      int src = l;
      switch (t.op) {
        case WarpOp::shfl: src = seg + (t.operand % t.width + t.width) % t.width; break;
        case WarpOp::shfl_up: src = l - t.operand >= seg ? l - t.operand : l; break;
        case WarpOp::shfl_down: src = l + t.operand < seg + t.width ? l + t.operand : l; break;
        case WarpOp::shfl_xor: src = (l ^ t.operand) < seg + t.width ? (l ^ t.operand) : l; break;
        default: break;
      }
      switch (t.op) {
        case WarpOp::shfl: case WarpOp::shfl_up: case WarpOp::shfl_down: case WarpOp::shfl_xor:
          if (!(t.mask >> src & 1u) || src >= lanes)
            fault(t, std::string(op_name(t.op)) + " at " + t.file + ":" + std::to_string(t.line) + " reads lane " +
                         std::to_string(src) + ", which is not in the mask " + hex(t.mask) + " (undefined on a GPU)");
          t.result = threads_[size_t(base + src)].value;
          break;
        case WarpOp::ballot: case WarpOp::any: case WarpOp::all: {
          unsigned ballot = 0;
          for (int j = 0; j < 32; ++j)
            if ((t.mask >> j & 1u) && threads_[size_t(base + j)].value) ballot |= 1u << j;
          t.result = t.op == WarpOp::ballot ? ballot : t.op == WarpOp::any ? ballot != 0 : ballot == t.mask;
          break;
        }
        case WarpOp::sync: t.result = 0; break;
      }
    }
    for (int l = 0; l < lanes; ++l) {
      Thread& t = threads_[size_t(base + l)];
      if (t.state == State::at_warp) t.state = State::ready;
    }
  }
  return any;
}

// Every thread that has not exited waits at a barrier (nothing else is left): they must all wait at the
// same one.
void BlockRunner::open_barrier() {
  const Thread* first = nullptr;
  int count_first = 0;
  for (const Thread& t : threads_) {
    if (t.state != State::at_barrier) continue;
    if (!first) first = &t;
    if (t.file == first->file && t.line == first->line) ++count_first;
  }
  for (const Thread& t : threads_) {
    if (t.state != State::at_barrier) continue;
    if (t.line != first->line || (t.file != first->file && std::strcmp(t.file, first->file) != 0))
      fault(t, "__syncthreads at " + std::string(t.file) + ":" + std::to_string(t.line) + " while " +
                   std::to_string(count_first) + " thread(s), the first " + dims(first->idx) +
                   ", wait at the __syncthreads at " + first->file + ":" + std::to_string(first->line) +
                   " (a barrier not reached by every live thread of the block)");
  }
  for (Thread& t : threads_)
    if (t.state == State::at_barrier) t.state = State::ready;
}

}  // namespace rdd::emu

// ------------------------------------------------------------------------------------------------
// The entry points of emu_kernel.h
// ------------------------------------------------------------------------------------------------

namespace rdd::emu {

std::string BlockRunner::current_thread_text() const {
  return current_ && grid_ ? where(*current_) : std::string();
}

std::string BlockRunner::last_block_text() const {
  return last_kernel_.empty() ? std::string() : "kernel '" + last_kernel_ + "' block " + dims(block_idx_);
}

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer's report names frames; this names the emulated GPU thread that made the access, so an
// out-of-bounds kernel access reads like compute-sanitizer's memcheck. A report from a thread of the
// emulated device outside any kernel (a stream's or the block pool's) names the block it ran last: a
// kernel's stray write into memory that is valid (another thread's stack, say) shows only later, there.
namespace {
void name_the_kernel(const char*) {
  const std::string who = t_runner ? t_runner->current_thread_text() : std::string();
  if (!who.empty()) {
    std::fprintf(stderr, "rdd emulated CUDA: the access above was made by %s\n", who.c_str());
    return;
  }
  const std::string last = t_last_runner ? t_last_runner->last_block_text() : std::string();  // set with t_runner
  if (!last.empty())
    std::fprintf(stderr, "rdd emulated CUDA: the fault above happened outside a kernel's code, on an OS thread of the "
                 "emulated device; the last block it ran: %s\n", last.c_str());
}
struct InstallAsanCallback {
  InstallAsanCallback() { __asan_set_error_report_callback(&name_the_kernel); }
} g_install_asan_callback;
}  // namespace
#endif

static BlockRunner& runner_in_kernel(const char* what) {
  if (!t_runner) {
    std::fprintf(stderr, "rdd emulated CUDA: %s called outside a kernel\n", what);
    std::abort();
  }
  return *t_runner;
}

void syncthreads(const char* file, int line) { runner_in_kernel("__syncthreads").syncthreads(file, line); }

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t bits, int operand, int width, const char* file, int line) {
  return runner_in_kernel(op_name(op)).warp_op(op, mask, bits, operand, width, file, line);
}

void* dynamic_shared_memory() { return runner_in_kernel("extern __shared__").dynamic_shared(); }

void* static_shared_memory(const void* key, size_t bytes) {
  return runner_in_kernel("RDD_SHARED").static_shared(key, bytes);
}

void* BlockRunner::static_shared(const void* key, size_t bytes) {
  for (auto& [k, memory] : static_shared_)
    if (k == key) return memory.get();
  std::unique_ptr<unsigned char[]> memory(new unsigned char[std::max<size_t>(bytes, 1)]);
  std::memset(memory.get(), 0xff, bytes);
  static_shared_.emplace_back(key, std::move(memory));
  return static_shared_.back().second.get();
}

}  // namespace rdd::emu
#endif
