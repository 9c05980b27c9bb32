#!/usr/bin/env bash
# The GPU-machine half of scripts/gpu_pack.sh: unpack .gpu/carry.tar.xz into build/, find the CUDA
# runtime, cuBLAS, cuDNN and NCCL libraries wherever that machine keeps them (system folders or a Python
# environment's nvidia-* packages), then run scripts/gpu_check.sh with the given steps. Logs are packed
# into $OUT/gpu_check.tar.gz when OUT is set. The tests find sources by the absolute path of the machine
# that built them, so that path is linked to this checkout.
#   bash scripts/gpu_remote.sh [tests selftest golden bench distill e2e multi sanitize]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
[ -x build/rdd ] || tar -xJf .gpu/carry.tar.xz
built_at=$(cat build/BUILT_AT)  # where gpu_pack.sh ran: the tests' RDD_SOURCE_DIR
if [ "$root" != "$built_at" ] && [ ! -e "$built_at" ]; then mkdir -p "$(dirname "$built_at")" && ln -s "$root" "$built_at"; fi
libdirs="$root/.gpulib"
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libnccl.so.2; do
  f=$(find /usr/local/cuda*/ /usr/lib/x86_64-linux-gnu /opt -name "$lib" 2>/dev/null | head -1)
  echo "$lib -> ${f:-MISSING}"
  [ -n "$f" ] && libdirs="$libdirs:$(dirname "$f")"
done
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd build/rdd | grep "not found" && echo "gpu_remote: some libraries are missing (above)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
build/rdd info | head -20
LOG_DIR=/tmp/gpu_check PYTHON=python3 BUILD_DIR=build timeout "${CHECK_LIMIT:-560}" bash scripts/gpu_check.sh "$@"
[ -n "${OUT:-}" ] && tar -C /tmp -czf "$OUT/gpu_check.tar.gz" gpu_check
exit 0
