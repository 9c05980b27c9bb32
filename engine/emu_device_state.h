// The emulated device's state, shared by emu_device.cpp (launches, streams, the block pool) and
// emu_runtime.cpp (the CUDA runtime API on top of them). Internal to engine/.
#pragma once

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/emu_device.h"

namespace rdd::emu {

size_t device_memory_bytes();

// Every live device allocation and pinned host buffer, by base address.
class MemoryMap {
 public:
  void add(const Region& r);
  bool remove(const void* base, Region::Kind kind, Region* removed);  // false: not a base of that kind
  Region find(const void* p) const;
  size_t used(int device) const;

 private:
  mutable std::mutex mu_;
  std::map<uintptr_t, Region> regions_;
  std::map<int, size_t> used_;
};
MemoryMap& memory_map();
std::string describe(const Region& r);  // "a cuda:0 allocation of 4096 bytes at 0x..."

// Errors. fail_call records e (and what the emulator knows) as the calling thread's last error and
// returns it; sticky_error() is the kernel fault that fails every call after it (cudaSuccess if none).
cudaError_t fail_call(cudaError_t e, const std::string& detail);
cudaError_t sticky_error();
void record_fault(const std::string& detail);
cudaError_t take_last_error(bool reset);

// The completion of one cudaEventRecord.
struct Token {
  void complete();
  void wait();
  bool is_done();

 private:
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

struct Event {
  int device = 0;
  std::mutex mu;
  std::shared_ptr<Token> latest;  // null until recorded
};

// A stream: its work runs in order on a worker thread of its own. Tickets number the work: wait_for(t)
// returns once the t-th item has run.
class Stream {
 public:
  Stream(int device, bool blocking, bool legacy);
  uint64_t enqueue(std::function<void()> fn, bool always_run);
  uint64_t submitted();
  void wait_for(uint64_t ticket);
  bool reached(uint64_t ticket);
  int device() const { return device_; }
  bool is_blocking() const { return blocking_; }
  bool is_legacy() const { return legacy_; }

 private:
  struct Work {
    std::function<void()> fn;
    bool always_run = false;  // runs even after a kernel fault (event completions, waits)
  };
  void work();

  int device_;
  bool blocking_, legacy_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Work> queue_;
  uint64_t submitted_ = 0, completed_ = 0;
};

struct DeviceState {
  std::mutex mu;
  Stream* legacy = nullptr;       // the legacy default stream (handle 0)
  std::vector<Stream*> streams;   // created by cudaStreamCreate*, not yet destroyed
  Stream* add_stream(int device, bool blocking);
  std::vector<Stream*> live_streams();  // the created ones and the legacy stream
  bool retire(Stream* s);
};
DeviceState& device_state(int device);

int current_device();
void set_current_device(int d);

// The stream a handle names (0 and cudaStreamLegacy: the current device's legacy stream); null with
// *error filled when it names none.
Stream* resolve_stream(cudaStream_t handle, std::string* error);
// Queues fn on s, after the legacy-stream dependencies CUDA defines; returns its ticket.
uint64_t submit(Stream* s, std::function<void()> fn, bool always_run);

}  // namespace rdd::emu
