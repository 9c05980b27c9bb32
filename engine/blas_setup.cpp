#include "engine/blas_setup.h"

#include <cstdlib>
#include <cstring>
#include <unistd.h>

// Weak: resolves to null when the linked BLAS is not OpenBLAS.
extern "C" char* openblas_get_corename(void) __attribute__((weak));

namespace rdd {

const char* openblas_core_name() { return openblas_get_corename ? openblas_get_corename() : ""; }

void use_fast_openblas_kernels(int argc, char** argv) {
  (void)argc;
  if (!openblas_get_corename || std::getenv("OPENBLAS_CORETYPE")) return;
  const char* core = openblas_get_corename();
  if (!core || std::strcmp(core, "Prescott") != 0) return;  // recognised (or deliberately chosen) core
  const char* better = nullptr;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) better = "SkylakeX";
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) better = "Haswell";
#endif
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);
  // execv only returns on failure: carry on with the generic kernels.
}

}  // namespace rdd
