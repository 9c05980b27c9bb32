#!/usr/bin/env bash
# Installs what rdd's build and tests need: Debian packages, and ONNX Runtime for Debian's Python (PyPI; the
# `rdd export --check` runner and its tests). Idempotent: a second run checks and exits quickly. The CUDA toolkit, cuDNN and NCCL are not installed here (they come with GPU machines);
# without them the build is CPU-only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcli11-dev doctest-dev libstb-dev nlohmann-json3-dev libopenblas-dev
  libonnx-dev libprotobuf-dev
  python3 python3-numpy python3-torch python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# From PyPI for /usr/bin/python3 (Debian's Python, which the checks use; Debian packages neither):
# onnxruntime for the export checks, tensorboard for reading the event files a run writes. Debian marks its
# Python externally managed, hence --break-system-packages; pip leaves Debian's numpy alone when it
# satisfies them. Without network access this fails: those checks then report themselves skipped.
pip_install() {  # MODULE PACKAGE
  if /usr/bin/python3 -c "import $1" 2>/dev/null; then
    echo "setup: $2 present ($(/usr/bin/python3 -c "import $1; print($1.__version__)"))"
    return
  fi
  echo "setup: installing $2 for /usr/bin/python3 (pip)"
  local pip_flags=(--quiet --disable-pip-version-check)
  if /usr/bin/python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
    pip_flags+=(--break-system-packages)
  fi
  $sudo /usr/bin/python3 -m pip install "${pip_flags[@]}" "$2" ||
    echo "setup: could not install $2 (no network?); the checks that need it will be skipped"
}
pip_install onnxruntime onnxruntime
pip_install tensorboard tensorboard
echo "setup: done"
