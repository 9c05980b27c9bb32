#!/usr/bin/env bash
# The test command: set-up, configure, build, run CTest. Exits non-zero on any failure.
#   scripts/test.sh                 everything (see below)
#   BUILD_DIR=b RDD_CUDA=OFF scripts/test.sh    a CPU-only build in ./b (and no emulated pass)
#   RDD_TEST_EMULATED=0 scripts/test.sh         skip the emulated-GPU pass
#   scripts/test.sh -R layers       extra arguments go to ctest (both passes)
#
# Two passes:
#  1. The build the machine supports (RDD_CUDA=AUTO: the CUDA build when the toolkit is installed, so
#     every .cu file is compiled by nvcc) and all its tests; GPU cases run where a GPU exists, else they
#     are reported "Skipped".
#  2. The emulated CUDA device (RDD_CUDA=EMULATE) under AddressSanitizer, in $BUILD_DIR-emu-asan: every
#     GPU case runs on the CPU with CUDA's semantics — under the reverse schedule, then under a shuffled
#     one with the race check — plus the end-to-end CPU-vs-emulated-GPU run. cuDNN/NCCL cases (the
#     <folder>_silicon entries) are reported "Skipped": they need a real GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh

build="${BUILD_DIR:-build}"
jobs="${JOBS:-$(nproc)}"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRDD_CUDA="${RDD_CUDA:-AUTO}" -DRDD_WERROR=ON
cmake --build "$build" -j "$jobs"

# ctest prints its own summary ("100% tests passed, 0 tests failed out of N", skipped tests listed).
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900 "$@"

if [ "${RDD_TEST_EMULATED:-1}" = "1" ] && [ "${RDD_CUDA:-AUTO}" != "OFF" ]; then
  emu="$build-emu-asan"
  echo "== emulated CUDA device, AddressSanitizer: $emu"
  cmake -S . -B "$emu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRDD_CUDA=EMULATE -DRDD_SANITIZE=address -DRDD_WERROR=ON
  cmake --build "$emu" -j "$jobs"
  # The CPU cases ran in pass 1; here the GPU entries (their fixtures come along) and the e2e run.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" \
    ctest --test-dir "$emu" --output-on-failure -j "$jobs" --timeout 1800 \
      -R '_gpu$|_gpu_shuffled$|_silicon$|_emulated_gpu$' "$@"
fi
