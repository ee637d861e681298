"""Writes DIR/w.bin: the f32 weights of llm-quantize-weights.mlir and
llm-sparsify-2to4.mlir (deterministic, stdlib only): proj [32, 64] at 0,
head [32, 16] at 8192."""
import math
import struct
import sys

out = sys.argv[1] + "/w.bin"
values = [0.05 * math.sin(0.37 * i + 0.1) * (1 + (i % 5)) for i in range(32 * 64)]
values += [0.02 * math.cos(0.11 * i) for i in range(32 * 16)]
with open(out, "wb") as f:
    f.write(struct.pack("<%df" % len(values), *values))
