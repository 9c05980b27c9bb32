// The doctest main shared by every test executable.
//
// `--rdd-gpu-only` (used by the <folder>_gpu CTest entries together with --test-suite=gpu) exits with
// code 77 — CTest's "Skipped" — when this machine has no GPU, so GPU cases are reported as skipped,
// never as passed or silently absent. `--rdd-silicon-only` (the <folder>_silicon entries of an emulated
// build) does the same on the emulated device, which has no cuDNN or NCCL.
#define DOCTEST_CONFIG_IMPLEMENT
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Under a sanitizer, its own handler reports a crash with the faulting address and a hint. doctest's
// handler would catch SIGSEGV first and re-raise it with raise(), whose siginfo carries the process id
// where the address was: ASan then names the pid as the address (one emulator crash read as a write to
// 0x5222 was process 21026's re-raised signal).
#define DOCTEST_CONFIG_NO_POSIX_SIGNALS
#endif
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "engine/blas_setup.h"
#include "engine/device.h"

int main(int argc, char** argv) {
  rdd::use_fast_openblas_kernels(argc, argv);  // the CPU suites spend their time in BLAS
  std::vector<char*> args;
  bool gpu_only = false, silicon_only = false;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rdd-gpu-only") == 0) gpu_only = true;
    else if (std::strcmp(argv[i], "--rdd-silicon-only") == 0) silicon_only = true;
    else args.push_back(argv[i]);
  }
  if ((gpu_only || silicon_only) && !rdd::has_gpu()) {
    std::printf("no GPU (%s): GPU test cases skipped\n", rdd::no_gpu_reason().c_str());
    return 77;
  }
  if (silicon_only && rdd::cuda_is_emulated()) {
    std::printf("emulated CUDA device: these cases need cuDNN or NCCL on a real GPU; skipped\n");
    return 77;
  }
  doctest::Context context(int(args.size()), args.data());
  return context.run();
}
