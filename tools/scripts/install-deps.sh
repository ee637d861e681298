#!/usr/bin/env bash
# Installs Kiln's build and test dependencies from Debian's packages.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22 lld-22 \
  cmake ninja-build libonnx-dev libprotobuf-dev protobuf-compiler \
  libgtest-dev libsentencepiece-dev python3 >/dev/null
