// OpenBLAS picks its matrix kernels for the CPU it recognises when the library loads. Debian 12's
// OpenBLAS 0.3.21 does not know some recent Xeons and falls back to its generic "Prescott" kernels,
// which run 3–6× slower than the AVX2/AVX-512 ones the same CPU supports — and the CPU path of rdd
// (the CPU demo, CI, training on machines without a GPU) lives on these matrix products.
//
// use_fast_openblas_kernels() is called first thing in main(): when OpenBLAS reports a generic core
// while the CPU has AVX-512 or AVX2, it restarts the process once (execv of /proc/self/exe, same
// arguments) with OPENBLAS_CORETYPE set to SkylakeX or Haswell. The kernel choice cannot be changed
// after the library has loaded, hence the restart. A user's own OPENBLAS_CORETYPE is never overridden,
// and a failed restart just continues with the slow kernels.
#pragma once

namespace rdd {

void use_fast_openblas_kernels(int argc, char** argv);
// The core OpenBLAS uses ("SkylakeX", "Prescott", ...), or "" when the BLAS is not OpenBLAS.
const char* openblas_core_name();

}  // namespace rdd
