// Where a tensor lives and what the machine has.
//
// A machine without a GPU is a supported machine: gpu_count() is 0, everything runs on the CPU, and
// announce_compute_device() says so once per process.
#pragma once

#include <string>

namespace rdd {

struct Device {
  enum class Kind : unsigned char { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {Kind::cpu, 0}; }
  static Device cuda(int i = 0) { return {Kind::cuda, i}; }
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1", "gpu" — throws on anything else

  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;  // "cpu", "cuda:0"
  bool operator==(const Device& o) const { return kind == o.kind && (kind == Kind::cpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// Built with CUDA? (RDD_WITH_CUDA at compile time.)
bool built_with_cuda();
// Built for the emulated CUDA device (RDD_CUDA=EMULATE)? Then cuda:N are CPU-backed emulated GPUs that run
// rdd's own kernels (engine/emu_device.h), never the default device, with no cuDNN, NCCL or cuBLAS.
bool cuda_is_emulated();
// Number of usable GPUs at run time: 0 in a CPU-only build, when no driver is loaded, or when
// CUDA_VISIBLE_DEVICES hides every device. Probed once, then cached.
int gpu_count();
inline bool has_gpu() { return gpu_count() > 0; }
// Why gpu_count() is 0, in words ("CPU-only build", "no CUDA driver: ...", ...); empty when GPUs exist.
std::string no_gpu_reason();
// The default compute device: cuda:0 when present, else cpu. Prints one line (once per process) to
// stderr when it falls back to the CPU.
Device default_device();
void announce_compute_device();
// In an emulated-CUDA build, says once on stderr that `d` (a cuda device) is the emulated one: the GPU
// code path on the CPU, slowly. Nothing otherwise.
void announce_emulated_device(Device d);
// "cuda:0", or "cuda:0 (emulated)" in an emulated-CUDA build: for tables that report per device.
std::string device_label(Device d);

// Makes `d` the calling thread's current GPU, for threads that touch CUDA without a tensor of theirs
// (the loader's workers allocating pinned batches): without it a thread's first runtime call makes a
// context on GPU 0, in every rank of a multi-GPU run. No-op for the CPU.
void bind_thread_to_device(Device d);

// Descriptions for `rdd info`.
struct GpuInfo {
  int index;
  std::string name;
  int sm_major, sm_minor;
  size_t memory_bytes;
  int multiprocessors;
};
GpuInfo gpu_info(int index);
std::string cuda_runtime_version();  // "13.0" or "" in a CPU-only build
std::string cuda_driver_version();
std::string cudnn_version();         // "9.19.0" (the loaded library's, not the header's); "" when not built
std::string nccl_version();
std::string cublas_version();

}  // namespace rdd
