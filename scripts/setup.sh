#!/usr/bin/env bash
# Installs what rdd's build and tests need, from Debian packages. Idempotent: a second run checks and
# exits quickly. The CUDA toolkit, cuDNN and NCCL are not installed here (they come with GPU machines);
# without them the build is CPU-only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcli11-dev doctest-dev libstb-dev nlohmann-json3-dev libopenblas-dev
  python3 python3-numpy python3-torch python3-matplotlib
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
