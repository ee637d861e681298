#!/usr/bin/env python3
"""Runs the ONNX backend node test suite through kiln-check.

Usage: onnx-node-tests.py [--kiln-check build/bin/kiln-check]
                          [--data /usr/share/libonnx-testdata/data/node]
                          [--filter SUBSTRING] [--verbose]

Each case directory holds model.onnx and test_data_set_*/. A case is
'unsupported' when the importer has no table entry for one of its ops (or a
value type Kiln does not model: sequences, strings), 'passed' when kiln-check
accepts every output, 'failed' otherwise. Prints a line per failure, a table
per ONNX op, and 'N passed, N failed, N unsupported'. Exits non-zero if any
case of a supported op fails.
"""
import argparse
import collections
import concurrent.futures
import os
import subprocess
import sys

UNSUPPORTED_MARKERS = (
    "unsupported ONNX op", "is supported from opset",
    "only tensor values are supported", "unsupported ONNX element type",
    "has unsupported data type", "with subgraphs (control flow) is unsupported",
    "is unsupported at inference",
)


def op_of(model_path):
    """The op types of a node test model (parsed without the onnx package)."""
    try:
        import onnx  # noqa: F401
        m = onnx.load(model_path, load_external_data=False)
        return sorted({n.op_type for n in m.graph.node})
    except Exception:
        return ["?"]


def run_case(args, case_dir):
    try:
        p = subprocess.run(
            [args.kiln_check, case_dir, "--tolerance", str(args.tolerance),
             "--precision=storage"],
            capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        rc = p.returncode
    except subprocess.TimeoutExpired:
        return "failed", "timeout"
    if rc == 0:
        return "passed", ""
    if any(m in out for m in UNSUPPORTED_MARKERS):
        return "unsupported", out.strip().splitlines()[0] if out.strip() else ""
    if rc < 0 or rc > 128:
        return "failed", f"crashed with signal {-rc if rc < 0 else rc - 128}"
    lines = [l for l in out.splitlines() if "FAIL" in l or "error" in l]
    return "failed", (lines[0] if lines else out.strip()[-300:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-check", default="build/bin/kiln-check")
    ap.add_argument("--data", default="/usr/share/libonnx-testdata/data/node")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--filter", default="")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    cases = sorted(d for d in os.listdir(args.data)
                   if args.filter in d and
                   os.path.isfile(os.path.join(args.data, d, "model.onnx")))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_case, args, os.path.join(args.data, c)): c
                   for c in cases}
        for f in concurrent.futures.as_completed(futures):
            results[futures[f]] = f.result()

    by_op = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    for case in cases:
        status, why = results[case]
        totals[status] += 1
        for op in op_of(os.path.join(args.data, case, "model.onnx")):
            by_op[op][status] += 1
        if status == "failed" or (args.verbose and status == "unsupported"):
            print(f"{status.upper():12s} {case}: {why}")

    print(f"\n{'op':28s} {'passed':>7s} {'failed':>7s} {'unsupp':>7s}")
    for op in sorted(by_op):
        c = by_op[op]
        print(f"{op:28s} {c['passed']:7d} {c['failed']:7d} {c['unsupported']:7d}")
    print(f"\n{totals['passed']} passed, {totals['failed']} failed, "
          f"{totals['unsupported']} unsupported ({len(cases)} node cases)")
    sys.exit(1 if totals["failed"] else 0)


if __name__ == "__main__":
    main()
