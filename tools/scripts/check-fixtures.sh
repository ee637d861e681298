#!/usr/bin/env bash
# Runs kiln-check on every model directory under the given roots (for
# example ../shared/fixtures/onnx and ../shared/models/pycoder), printing one
# summary line per model and "N passed, N failed" for the models.
# Usage: check-fixtures.sh [--tolerance T] [--kiln-check PATH] DIR...
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
check="$here/../../build/bin/kiln-check"
tolerance=1e-4
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tolerance) tolerance=$2; shift 2 ;;
    --kiln-check) check=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
passed=0; failed=0
for root in "${args[@]}"; do
  for model in $(find "$root" -name model.onnx | sort); do
    dir=$(dirname "$model")
    ls -d "$dir"/test_data_set_* >/dev/null 2>&1 || continue
    out=$("$check" "$dir" --tolerance "$tolerance" 2>&1)
    rc=$?
    leftover=$(echo "$out" | grep -o '[0-9]* generic ops left' | head -1)
    worst=$(echo "$out" | grep -o 'rel [0-9.e+-]*' | sort -t' ' -k2 -g | tail -1)
    if [ $rc = 0 ]; then passed=$((passed+1)); s=PASS; else failed=$((failed+1)); s=FAIL; fi
    echo "$s $dir: worst $worst; $leftover"
    [ $rc = 0 ] || echo "$out" | grep -E "FAIL|error" | head -5 | sed 's/^/    /'
  done
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
