#!/usr/bin/env bash
# Builds the importer with AddressSanitizer and libFuzzer instrumentation in
# build-fuzz/ and fuzzes it for SECONDS (default 600) from a corpus of the
# repository's ONNX fixtures. Prints libFuzzer's final stats.
# Usage: fuzz-importer.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -G Ninja -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld -DCMAKE_SHARED_LINKER_FLAGS=-fuse-ld=lld \
    -DCMAKE_CXX_FLAGS="-fsanitize=address,fuzzer-no-link" -DKILN_BUILD_FUZZERS=ON
fi
cmake --build build-fuzz --target kiln-fuzz-import
corpus=build-fuzz/corpus
mkdir -p "$corpus"
find test/fixtures -name model.onnx -size -600k | while read -r f; do
  cp "$f" "$corpus/$(echo "$f" | tr '/' '_')"
done
mkdir -p /tmp/kiln-fuzz
# allow_user_poisoning=0: LLVM's BumpPtrAllocator, inlined into instrumented
# Kiln code, poisons slab tails that the uninstrumented libMLIR.so then
# allocates from; without it ASan reports that as use-after-poison.
ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 build-fuzz/bin/kiln-fuzz-import "$corpus" \
  -max_total_time="$seconds" -max_len=600000 -rss_limit_mb=4096 \
  -print_final_stats=1 2>&1 | tail -25
