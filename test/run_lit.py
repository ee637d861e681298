#!/usr/bin/env python3
"""Runs lit on Kiln's suites and ends with the line 'N passed, N failed'.

Usage: run_lit.py LIT_BINARY SUITE_DIR [SUITE_DIR...]
"""
import re
import subprocess
import sys

lit, suites = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen([sys.executable if lit.endswith(".py") else lit,
                         "-sv", *suites] if not lit.endswith(".py") else
                        [sys.executable, lit, "-sv", *suites],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True)
counts = {}
for line in proc.stdout:
    sys.stdout.write(line)
    m = re.match(r"\s*(Passed|Failed|Unsupported|Expectedly Failed|"
                 r"Unexpectedly Passed|Unresolved|Timed Out|Skipped)\s*:\s*(\d+)",
                 line)
    if m:
        counts[m.group(1)] = int(m.group(2))
rc = proc.wait()
passed = counts.get("Passed", 0) + counts.get("Expectedly Failed", 0)
failed = sum(counts.get(k, 0) for k in
             ("Failed", "Unexpectedly Passed", "Unresolved", "Timed Out"))
skipped = counts.get("Unsupported", 0) + counts.get("Skipped", 0)
if rc != 0 and failed == 0:
    failed = 1  # lit itself failed (configuration error)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
