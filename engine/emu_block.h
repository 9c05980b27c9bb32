// One thread block of the emulated CUDA device: its threads as cooperative fibers, with CUDA's rules
// for __syncthreads and the warp collectives enforced, and a chosen order between barriers.
//
//   KernelGrid g{"fill_kernel<float>", grid, block, shared_bytes, body, schedule};
//   BlockRunner& r = BlockRunner::for_this_thread();
//   r.run(g, blockIdx);  // every thread of that block, to completion; throws KernelFault on a rule broken
//
// How a block runs: the scheduler takes the block's threads in the schedule's order and runs each on a
// fiber until it ends or has to wait (a barrier, a warp collective). A thread that ends frees its fiber
// for the next one, so a kernel without barriers runs a whole block on one fiber with no switch at all.
// When no thread can go on, the round ends: waiting warp collectives are checked (every lane named in
// the mask must be waiting at the same collective with the same mask) and computed; failing that, the
// barrier is checked (every live thread must wait at the same __syncthreads) and opened. The released
// threads run in the next round, again in the schedule's order, so that code that depends on an order
// CUDA does not promise (a missing barrier, a racy shared-memory use) gives different results under
// different schedules.
//
// Emulated-CUDA builds only. The kernel side of this (threadIdx, __syncthreads, __shfl_*_sync, ...) is
// in emu_kernel.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/emu_fiber.h"

namespace rdd::emu {

// The order in which the threads of a block run between two barriers (RDD_EMU_SCHEDULE).
struct Schedule {
  enum class Kind { forward, reverse, shuffle } kind = Kind::forward;
  uint64_t seed = 0;
  // "forward", "reverse", "shuffle:SEED" (SEED a decimal number). Throws rdd::Error on anything else.
  static Schedule parse(const std::string& text);
  std::string str() const;
};

// A kernel broke one of CUDA's rules; what() names the kernel, the block, the thread and the rule.
class KernelFault : public std::runtime_error {
 public:
  explicit KernelFault(const std::string& what) : std::runtime_error(what) {}
};

// What every block of one launch shares. `body` runs the kernel for the thread whose indices are in
// threadIdx/blockIdx (thread-local, set by the runner before each call or resumption).
struct KernelGrid {
  std::string name;
  dim3 grid, block;
  size_t shared_bytes = 0;
  std::function<void()> body;
  Schedule schedule;
};

enum class WarpOp : uint8_t { shfl, shfl_up, shfl_down, shfl_xor, ballot, any, all, sync };

class BlockRunner {
 public:
  static BlockRunner& for_this_thread();
  void run(const KernelGrid& grid, uint3 block_idx);

  // Called from kernel code on a fiber (through emu_kernel.h).
  void syncthreads(const char* file, int line);
  uint64_t warp_op(WarpOp op, unsigned mask, uint64_t bits, int operand, int width, const char* file, int line);
  void* dynamic_shared() { return dynamic_shared_.get(); }
  // The block's copy of the static shared array declared at `key` (RDD_SHARED): made by the first thread
  // that reaches the declaration, `bytes` long, on the heap so AddressSanitizer guards both ends.
  void* static_shared(const void* key, size_t bytes);
  // "kernel 'k' block (..) thread (..)" for the emulated thread running now, "" between threads.
  std::string current_thread_text() const;
  // "kernel 'k' block (..)": the block this runner ran last (it may be running it now); "" before the first.
  std::string last_block_text() const;

  BlockRunner() = default;
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

 private:
  enum class State : uint8_t { not_started, running, ready, at_barrier, at_warp, exited };
  struct Slot;  // a fiber and its owner
  struct Thread {
    uint3 idx{};
    State state = State::not_started;
    Slot* slot = nullptr;  // the fiber holding this thread's stack while it waits
    // The collective it waits at.
    WarpOp op = WarpOp::sync;
    unsigned mask = 0;
    int operand = 0, width = 32;
    uint64_t value = 0, result = 0;
    const char* file = "";
    int line = 0;
  };

  static void fiber_main(void* slot);
  Slot* free_slot();
  void enter(Thread& t);
  void wait(Thread& t);  // hand control back to the scheduler until released
  void order_queue(const std::vector<int>& ids, int round);
  bool resolve_warps();
  void open_barrier();
  [[noreturn]] void fault(const Thread& t, const std::string& what);
  std::string where(const Thread& t) const;
  void abandon();  // after a fault: every fiber back to the free list, reset

  const KernelGrid* grid_ = nullptr;  // valid while run() runs
  uint3 block_idx_{};
  std::string last_kernel_;  // grid_->name, kept after run() for AddressSanitizer's report (see last_block_text)
  std::vector<Thread> threads_;
  std::vector<int> queue_;
  size_t pos_ = 0;
  Thread* current_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> free_;
  // Shared memory lives for one block and starts as 0xff bytes (NaN as floats), so that a read before the
  // block wrote it shows; each array is its own exact-size heap allocation (ASan's redzones around it).
  std::unique_ptr<unsigned char[]> dynamic_shared_;
  std::vector<std::pair<const void*, std::unique_ptr<unsigned char[]>>> static_shared_;
  std::string fiber_error_;  // an exception that escaped a kernel body
};

// The entry points of emu_kernel.h's __syncthreads, __shfl_*_sync, ... and shared memory:
// they act on the block the calling OS thread is running (and abort outside a kernel).
void syncthreads(const char* file, int line);
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t bits, int operand, int width, const char* file, int line);
void* dynamic_shared_memory();
void* static_shared_memory(const void* key, size_t bytes);

}  // namespace rdd::emu
