#!/usr/bin/env bash
# The test command: set-up, configure, build, run CTest. Exits non-zero on any failure.
#   scripts/test.sh                 everything (GPU cases run when a GPU is present, else skip)
#   BUILD_DIR=b RDD_CUDA=OFF scripts/test.sh    a CPU-only build in ./b
#   scripts/test.sh -R layers       extra arguments go to ctest
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
