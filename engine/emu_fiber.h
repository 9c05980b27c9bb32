// Fibers for the emulated CUDA device: each emulated GPU thread that has to wait (at __syncthreads or a
// warp collective) keeps its own stack, and the block's scheduler switches between them by hand.
//
//   Fiber f(entry, arg);
//   f.resume();                        // scheduler: run f until it calls f.suspend()
//   f.suspend();                       // inside f: continue the scheduler after its resume()
//
// A switch saves the callee-saved registers on the current stack and loads the other stack pointer: a
// few nanoseconds on x86-64 (hand-written in emu_fiber.cpp). Elsewhere, or with RDD_EMU_FIBERS=ucontext,
// glibc's ucontext is used, which costs a system call per switch (signal masks) but is portable.
//
// Under AddressSanitizer every switch is announced (__sanitizer_start/finish_switch_fiber), so ASan
// knows which stack is live and reports an access from a kernel with the right frames.
// Emulated-CUDA builds only (RDD_CUDA_EMULATED).
#pragma once

#include <cstddef>

namespace rdd::emu {

class Fiber {
 public:
  using Entry = void (*)(void* arg);  // must never return
  static constexpr size_t kStackBytes = size_t(256) << 10;

  Fiber(Entry entry, void* arg);
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  void resume();   // from the scheduler's stack
  void suspend();  // from inside this fiber
  // Forget the frames on the stack (a block abandoned after an error): the next resume() starts at entry.
  void reset();

  struct Impl;

 private:
  Impl* impl_;
};

// "asm" or "ucontext": how fibers switch in this process (for `rdd info` and the emulator's tests).
const char* fiber_switch_kind();

}  // namespace rdd::emu
