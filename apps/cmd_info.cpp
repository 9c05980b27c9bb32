// `rdd info`: what this build is and what this machine has.
#include <cstdio>

#include "apps/commands.h"
#include "engine/device.h"
#include "engine/thread_pool.h"

namespace rdd::apps {

namespace {
int run_info() {
  std::printf("rdd %s\n", RDD_VERSION);
  if (built_with_cuda()) {
    std::printf("build: CUDA %s, cuDNN %s, cuBLAS %s, NCCL %s\n", cuda_runtime_version().c_str(),
                cudnn_version().c_str(), cublas_version().c_str(), nccl_version().c_str());
    std::printf("driver: CUDA %s\n", cuda_driver_version().c_str());
  } else {
    std::printf("build: CPU-only build (no CUDA, cuDNN or NCCL)\n");
  }
  std::printf("cpu: %d threads\n", cpu_threads());
  const int n = gpu_count();
  if (n == 0) {
    std::printf("gpus: none (%s); rdd runs on the CPU\n", no_gpu_reason().c_str());
  } else {
    std::printf("gpus: %d\n", n);
    for (int i = 0; i < n; ++i) {
      const GpuInfo g = gpu_info(i);
      std::printf("  cuda:%d  %s  sm_%d%d  %.1f GiB  %d SMs\n", i, g.name.c_str(), g.sm_major, g.sm_minor,
                  double(g.memory_bytes) / double(1ull << 30), g.multiprocessors);
    }
  }
  return 0;
}
}  // namespace

Command add_info_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("info", "Show the build (CUDA, cuDNN, NCCL versions) and the GPUs found");
  return {sub, run_info};
}

}  // namespace rdd::apps
