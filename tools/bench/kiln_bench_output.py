"""Reads kiln-bench's report: the header line and the per-batch table rows.
Shared by the benchmark scripts in this folder (stdlib only)."""
import re


def _num(value):
    return float(value.rstrip("%")) if value != "-" else 0.0


def parse(text):
    """{"weights_gb": float or None, "rows": {batch: {prefill_ms, prefill_pct,
    ms_step, tok_s, decode_pct}}} from kiln-bench's stdout."""
    weights = re.search(r"weights ([0-9.]+) GB", text)
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 8 and f[0].isdigit():
            rows[int(f[0])] = dict(prefill_ms=_num(f[2]), prefill_pct=_num(f[3]),
                                   ms_step=_num(f[4]), tok_s=_num(f[5]),
                                   decode_pct=_num(f[6]))
    return {"weights_gb": float(weights.group(1)) if weights else None, "rows": rows}
