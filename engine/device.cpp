#include "engine/device.h"

#include <cstdio>
#include <mutex>

#include "engine/error.h"

#if RDD_WITH_CUDA
#include <cuda_runtime.h>
#endif
#if RDD_WITH_CUDA && !RDD_CUDA_EMULATED
#include <cublas_v2.h>
#include <cudnn.h>
#include <nccl.h>
#endif

namespace rdd {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string n = s.substr(5);
    RDD_CHECK(!n.empty() && n.find_first_not_of("0123456789") == std::string::npos,
              "bad device '", s, "': expected cpu, cuda or cuda:N");
    return cuda(std::stoi(n));
  }
  fail("bad device '", s, "': expected cpu, cuda or cuda:N");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

bool built_with_cuda() { return RDD_WITH_CUDA != 0; }
bool cuda_is_emulated() { return RDD_CUDA_EMULATED != 0; }

namespace {
struct GpuProbe {
  int count = 0;
  std::string reason;
};

const GpuProbe& probe() {
  static const GpuProbe p = [] {
    GpuProbe r;
#if RDD_WITH_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
      // No driver (typical of a machine without a GPU) or one older than this build's CUDA runtime.
      r.reason = e == cudaErrorNoDevice ? "no NVIDIA GPU found"
                                        : "no NVIDIA GPU or driver found (or the driver is older than CUDA " +
                                              cuda_runtime_version() + ")";
      cudaGetLastError();
    } else if (e != cudaSuccess) {
      r.reason = std::string("no usable CUDA device (") + cudaGetErrorString(e) + ")";
      cudaGetLastError();  // clear the sticky error so later calls are not poisoned
    } else if (n == 0) {
      r.reason = "no CUDA device visible";
    }
    r.count = e == cudaSuccess ? n : 0;
#else
    r.reason = "CPU-only build";
#endif
    return r;
  }();
  return p;
}
}  // namespace

int gpu_count() { return probe().count; }
std::string no_gpu_reason() { return probe().reason; }

void announce_compute_device() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (cuda_is_emulated())
      std::fprintf(stderr, "rdd: emulated CUDA build: running on the CPU; --device cuda runs the GPU code on the "
                           "emulated device (slowly)\n");
    else if (!has_gpu())
      std::fprintf(stderr, "rdd: %s; running on the CPU\n", no_gpu_reason().c_str());
  });
}

void announce_emulated_device(Device d) {
  if (!cuda_is_emulated() || !d.is_cuda()) return;
  static std::once_flag once;
  std::call_once(once, [&] {
    std::fprintf(stderr, "rdd: %s is the emulated CUDA device: rdd's GPU code path, run on the CPU (slowly); no "
                         "cuDNN or NCCL\n", d.str().c_str());
  });
}

std::string device_label(Device d) { return d.is_cuda() && cuda_is_emulated() ? d.str() + " (emulated)" : d.str(); }

Device default_device() {
  announce_compute_device();
  // The emulated device is for proving the GPU code, at a fraction of the CPU path's speed: asked for, never a default.
  return has_gpu() && !cuda_is_emulated() ? Device::cuda(0) : Device::cpu();
}

void bind_thread_to_device(Device d) {
  if (!d.is_cuda()) return;
  RDD_CHECK(d.index >= 0 && d.index < gpu_count(), d.str(), " does not exist (", gpu_count(), " GPUs found)");
#if RDD_WITH_CUDA
  const cudaError_t e = cudaSetDevice(d.index);
  RDD_CHECK(e == cudaSuccess, "cudaSetDevice(", d.index, ") failed: ", cudaGetErrorString(e));
#endif
}

#if RDD_WITH_CUDA
GpuInfo gpu_info(int index) {
  RDD_CHECK(index >= 0 && index < gpu_count(), "gpu_info: no GPU ", index, " (", gpu_count(), " found)");
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, index);
  return {index, p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount};
}
static std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
std::string cuda_runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return cuda_version_string(v);
}
std::string cuda_driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) return "none";
  return cuda_version_string(v);
}
#if RDD_CUDA_EMULATED
std::string cudnn_version() { return ""; }  // the emulated build links none of the three
std::string nccl_version() { return ""; }
std::string cublas_version() { return ""; }
#else
std::string cudnn_version() {
  const size_t v = cudnnGetVersion();  // 9.19.0 → 91900
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}
std::string nccl_version() {
  int v = 0;
  ncclGetVersion(&v);  // 2.28.x → 22800 + x
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}
std::string cublas_version() {
  const int v = CUBLAS_VERSION;  // header version; the runtime query needs a handle (and a GPU)
  return std::to_string(v / 10000) + "." + std::to_string(v % 10000 / 100) + "." + std::to_string(v % 100);
}
#endif
#else
GpuInfo gpu_info(int index) { fail("gpu_info: this is a CPU-only build of rdd"); }
std::string cuda_runtime_version() { return ""; }
std::string cuda_driver_version() { return ""; }
std::string cudnn_version() { return ""; }
std::string nccl_version() { return ""; }
std::string cublas_version() { return ""; }
#endif

}  // namespace rdd
