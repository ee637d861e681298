#!/usr/bin/env python3
"""Makes a quantized-matmul variant of a laid-out llama module.

    quantize_linear.py IN.mlir WEIGHT QUANT.mlir DENSE.mlir

Replaces the [K, N] f32 weight WEIGHT (an llm.weight read by one
llm.linear per function) by seeded 4-bit data: QUANT.mlir reads it through
llm.matmul_nbits over llm.constant packed integers, scales and packed zero
points (one block of K per row, the ONNX MatMulNBits layout), DENSE.mlir
through the same llm.linear over the dequantized dense llm.constant. Every
dequantized value is exact in f32, so the two artifacts must agree.
"""
import random
import re
import sys


def main():
    src, weight, quant_path, dense_path = sys.argv[1:5]
    text = open(src).read()
    decl = re.compile(r'(%\w+) = llm\.weight "' + re.escape(weight) +
                      r'"\(.*?\) : tensor<(\d+)x(\d+)xf32>')
    m = decl.search(text)
    K, N = int(m.group(2)), int(m.group(3))
    rng = random.Random(7)
    q = [[rng.randrange(16) for _ in range(K)] for _ in range(N)]
    zero = [rng.randrange(4, 12) for _ in range(N)]
    scale = [rng.randrange(1, 64) / 1024.0 for _ in range(N)]
    # [N, 1, K / 2] bytes, element k in the low nibble for even k.
    packed = bytes(q[n][k] | (q[n][k + 1] << 4)
                   for n in range(N) for k in range(0, K, 2))
    dense = [[(q[n][k] - zero[n]) * scale[n] for n in range(N)]
             for k in range(K)]

    def quantized(match):
        v = match.group(1)
        t = 'tensor<%dx1x%dxui8>' % (N, K // 2)
        return ('%%scales%s = llm.constant dense<%s> : tensor<%dx1xf32> : '
                'tensor<%dx1xf32>\n'
                '    %%zp%s = llm.constant dense<%s> : tensor<%dx1xui8> : '
                'tensor<%dx1xui8>\n'
                '    %s = llm.constant dense<"0x%s"> : %s : %s'
                % (v[1:], [[s] for s in scale], N, N, v[1:],
                   [[z] for z in zero], N, N, v, packed.hex().upper(), t, t))

    def dense_weight(match):
        t = 'tensor<%dx%dxf32>' % (K, N)
        return '%s = llm.constant dense<%s> : %s : %s' % (
            match.group(1), dense, t, t)

    linear = re.compile(r'(%\w+) = llm\.linear (%\w+), (%\w+) : '
                        r'\((tensor<\?x\d+xf32>), tensor<\d+x\d+xf32>\) -> '
                        r'(tensor<\?x\d+xf32>)')
    out = []
    for func in re.split(r'(?=  func\.func )', text):
        m = decl.search(func)
        if not m:
            out.append(func)
            continue
        v = m.group(1)

        def to_nbits(lm):
            if lm.group(3) != v:
                return lm.group(0)
            return ('%s = llm.matmul_nbits %s, %s, %%scales%s zero_points %%zp%s '
                    '{K = %d : i64, N = %d : i64, bits = 4 : i64, '
                    'block_size = %d : i64} : (%s, tensor<%dx1x%dxui8>, '
                    'tensor<%dx1xf32>, tensor<%dx1xui8>) -> %s'
                    % (lm.group(1), lm.group(2), v, v[1:], v[1:], K, N, K,
                       lm.group(4),
                       N, K // 2, N, N, lm.group(5)))
        out.append(linear.sub(to_nbits, decl.sub(quantized, func)))
    open(quant_path, 'w').write(''.join(out))
    open(dense_path, 'w').write(decl.sub(dense_weight, text))


if __name__ == '__main__':
    main()
