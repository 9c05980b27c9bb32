// The emulated CUDA device: rdd's own kernels executed on the CPU with CUDA's semantics, so the GPU code
// path runs (and is tested) on machines without a GPU — CI above all. Built with RDD_CUDA=EMULATE.
//
// What it is made of:
//  - the kernel vocabulary (emu_kernel.h) and the block runner (emu_block.h): threads as fibers,
//    barriers and warp collectives checked against CUDA's rules, a chosen order between barriers;
//  - this file's device: a tracked memory map (device allocations and pinned host buffers), streams
//    that run their work in order on a worker thread each (so the host really runs ahead of the device,
//    and a missing synchronisation shows), events, a block pool that runs a grid's blocks in parallel,
//    launch checks (configuration limits; every pointer argument must lie in device or pinned memory),
//    and sticky kernel faults as on a GPU;
//  - emu_runtime.cpp: the subset of the CUDA runtime API rdd calls (cudaMalloc, cudaMemcpyAsync,
//    cudaStreamWaitEvent, ...), with the toolkit's own declarations, linked instead of libcudart.
//
// What only a real GPU proves: cuDNN (the emulated build runs convolutions through the CPU reference,
// in stream order), NCCL (the emulated build has the in-process communicator only), timing, and real
// concurrency between the threads of a warp.
//
// Settings (environment, read once):
//   RDD_EMU_SCHEDULE  forward (default) | reverse | shuffle:SEED   order of a block's threads between barriers
//   RDD_EMU_RACECHECK 1: run every launch twice, under the schedule and a second one, from the same memory,
//                     and fault when the results differ (a missing barrier, a racy shared-memory use)
//   RDD_EMU_THREADS   OS threads that run blocks (default: the machine's cores)
//   RDD_EMU_DEVICES   emulated GPUs (default 1, at most 8)
//   RDD_EMU_MEMORY_MB memory of each emulated GPU (default 16384)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/emu_block.h"

namespace rdd::emu {

Schedule schedule();
void set_schedule(const Schedule& s);  // for the emulator's own tests
bool racecheck_enabled();
void set_racecheck(bool on);           // for the emulator's own tests
int device_count();
int block_threads();  // OS threads running blocks

// Where an address lives: inside a live device allocation (of `device`), a registered pinned host
// buffer, or neither (ordinary host memory, or nothing).
struct Region {
  enum class Kind { none, device, pinned } kind = Kind::none;
  int device = -1;
  const char* base = nullptr;
  size_t bytes = 0;
};
Region find_region(const void* p);

// One pointer argument of a launch: its position and value.
struct PointerArg {
  int index;
  const void* value;
};

// Checks a launch (configuration, stream, pointer arguments) and queues it on `stream`. A bad launch
// records the error for cudaGetLastError (RDD_CUDA_CHECK_LAUNCH throws it, with the detail).
void submit_launch(KernelGrid grid, cudaStream_t stream, const std::vector<PointerArg>& pointers);

// Host work that runs in stream order on the stream's worker (the emulated cuDNN calls).
void enqueue_host_work(cudaStream_t stream, std::function<void()> work);
// The emulator's own bookkeeping in stream order (the caching allocator's ASan poisoning): unlike host
// work it still runs after a kernel fault, as completions do, so the bookkeeping never falls behind.
void enqueue_bookkeeping(cudaStream_t stream, std::function<void()> work);

// What the emulator knows about the calling thread's last failed runtime call (or the sticky kernel
// fault): which kernel, which pointer, which rule. "" when it has nothing to add.
std::string last_error_detail();
// Clears a sticky kernel fault, which otherwise fails every later call as on a GPU. For the emulator's
// own tests of planted bugs only.
void clear_fault_for_tests();

// "fill_kernel<float>" from GCC's __PRETTY_FUNCTION__ of kernel_name<K>() (see launch_kernel).
std::string kernel_name_from_signature(const char* pretty_function);

template <auto Kernel>
const char* kernel_name() {
  static const std::string name = kernel_name_from_signature(__PRETTY_FUNCTION__);
  return name.c_str();
}

// The emulated side of rdd::launch (engine/cuda_launch.h): the arguments are converted to the kernel's
// parameter types once, as a launch does, and every emulated thread calls the kernel with a copy.
template <auto Kernel, class... P, class... A>
void launch_kernel(void (*)(P...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "rdd::launch: wrong number of kernel arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  auto params = std::make_shared<Params>(std::forward<A>(args)...);
  std::vector<PointerArg> pointers;
  std::apply(
      [&pointers](const auto&... p) {
        int i = 0;
        auto note = [&](const auto& v) {
          if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>) pointers.push_back({i, static_cast<const void*>(v)});
          ++i;
        };
        (note(p), ...);
      },
      *params);
  KernelGrid g;
  g.name = kernel_name<Kernel>();
  g.grid = grid;
  g.block = block;
  g.shared_bytes = shared_bytes;
  g.body = [params] { std::apply(Kernel, *params); };
  g.schedule = schedule();
  submit_launch(std::move(g), stream, pointers);
}

}  // namespace rdd::emu
