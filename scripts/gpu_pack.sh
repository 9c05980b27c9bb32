#!/usr/bin/env bash
# Pack a built tree for a GPU machine that can build nothing and install nothing (a lent machine with
# the CUDA driver, cuDNN and NCCL but no Debian packages): the `rdd` binary, the test executables and the
# OpenBLAS/gfortran, ONNX and protobuf libraries they link, xz-compressed into .gpu/carry.tar.xz (about 9 MB).
#   BUILD_DIR=build bash scripts/gpu_pack.sh
# On the GPU machine, from the repository root (with .gpu/ carried along):
#   bash scripts/gpu_remote.sh [gpu_check steps...]
# .gpu/ is for carrying only: add `/.gpu/` to .git/info/exclude.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BUILD_DIR:-build}"
[ -x "$build/rdd" ] || { echo "gpu_pack: $build/rdd not built (cmake --build $build)" >&2; exit 1; }
ldd "$build/rdd" | grep -q libcudart || { echo "gpu_pack: $build/rdd is a CPU-only build (configure with -DRDD_CUDA=ON)" >&2; exit 1; }
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/build/tests" "$stage/.gpulib"
cp "$build/rdd" "$stage/build/"
for t in "$build"/tests/test_*; do [ -x "$t" ] && cp "$t" "$stage/build/tests/"; done
# The Debian libraries the lent machine lacks; CUDA, cuDNN and NCCL are found there by gpu_remote.sh.
# ONNX and protobuf: `rdd export` (deploy/).
for lib in $(ldd "$build/rdd" | awk '/openblas|gfortran|quadmath|onnx|protobuf/ {print $3}'); do cp -L "$lib" "$stage/.gpulib/"; done
echo "$root" > "$stage/build/BUILT_AT"  # the tests name sources by this absolute path
strip --strip-unneeded "$stage/build/rdd" "$stage"/build/tests/*
mkdir -p .gpu
tar -C "$stage" -cJf .gpu/carry.tar.xz build .gpulib
echo "gpu_pack: .gpu/carry.tar.xz $(du -h .gpu/carry.tar.xz | cut -f1) from $build ($(git rev-parse --short HEAD))"
