#!/usr/bin/env python3
"""Runs kiln-bench on a baseline artifact and its variants (quantized, 2:4,
a kernel option or a KILN_* switch) in one command on one device and prints
each figure beside the baseline's, as the quantization issue asks ("same
command as the bf16 run").

  python3 tools/bench/bench_variants.py --kiln-bench build-rt/tools/kiln-bench/kiln-bench \\
      --baseline bf16=llama8b.kiln --variant int4=llama8b-int4.kiln \\
      --variant int4-separate=llama8b-int4.kiln@KILN_MULTI_GEMV=0 \\
      [--batch 1,16] [--prompt-len 512] [--gen-len 64] [--repeats 2] \\
      [--device cuda] [--matmul-tflops 790] [--json out.json]

A variant is NAME=ARTIFACT[@VAR=VALUE[,VAR=VALUE..]]: the environment
assignments apply to its run only. Speedups are baseline time / variant
time (prefill ms, decode ms/step) at the same batch size; decode% is each
artifact's own floor (its weight bytes / the measured copy bandwidth).
Stdlib only."""
import argparse, json, os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_bench_output  # noqa: E402


def parse_spec(text, flag):
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        sys.exit(f"bench_variants: {flag} '{text}': expected NAME=ARTIFACT[@VAR=VALUE,..]")
    artifact, _, env_text = rest.partition("@")
    env = {}
    for item in filter(None, env_text.split(",")):
        var, sep, value = item.partition("=")
        if not sep or not var:
            sys.exit(f"bench_variants: {flag} '{text}': '{item}' is not VAR=VALUE")
        env[var] = value
    if not os.path.exists(artifact):
        sys.exit(f"bench_variants: {flag} '{text}': no artifact at {artifact}")
    return dict(name=name, artifact=artifact, env=env)


def bench(args, spec):
    cmd = [args.kiln_bench, spec["artifact"], "--batch", args.batch, "--prompt-len",
           str(args.prompt_len), "--gen-len", str(args.gen_len), "--repeats",
           str(args.repeats), "--device", args.device, "--matmul-tflops",
           str(args.matmul_tflops)]
    shown = " ".join(f"{k}={v}" for k, v in spec["env"].items())
    print("+", shown, " ".join(cmd), flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, **spec["env"]})
    sys.stdout.write(out.stdout[-2000:])
    if out.returncode:
        sys.exit(f"bench_variants: kiln-bench failed on {spec['name']} "
                 f"(status {out.returncode})")
    result = kiln_bench_output.parse(out.stdout)
    if not result["rows"]:
        sys.exit(f"bench_variants: no result rows from kiln-bench on {spec['name']}")
    return result


def ratio(base, value):
    return f"{base / value:.2f}x" if base > 0 and value > 0 else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln-bench", required=True)
    ap.add_argument("--baseline", required=True, help="NAME=ARTIFACT[@VAR=VALUE,..]")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=ARTIFACT[@VAR=VALUE,..] (repeatable)")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--gen-len", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--matmul-tflops", type=float, default=790)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not args.variant:
        sys.exit("bench_variants: give at least one --variant to compare")
    specs = [parse_spec(args.baseline, "--baseline")]
    specs += [parse_spec(v, "--variant") for v in args.variant]
    results = [dict(spec, **bench(args, spec)) for spec in specs]

    base = results[0]
    print(f"\nsame command, --prompt-len {args.prompt_len} --gen-len {args.gen_len} "
          f"--device {args.device}; baseline {base['name']}")
    header = ("name", "weights_GB", "batch", "prefill_ms", "vs_base", "ms/step",
              "tok/s", "vs_base", "decode%")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for r in results:
        for batch, row in sorted(r["rows"].items()):
            b = base["rows"].get(batch, {})
            weights = f"{r['weights_gb']:.3f}" if r["weights_gb"] is not None else "-"
            print(f"| {r['name']} | {weights} | {batch} | {row['prefill_ms']:.2f} | "
                  f"{ratio(b.get('prefill_ms', 0), row['prefill_ms'])} | "
                  f"{row['ms_step']:.3f} | {row['tok_s']:.1f} | "
                  f"{ratio(b.get('ms_step', 0), row['ms_step'])} | "
                  f"{row['decode_pct']:.1f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
