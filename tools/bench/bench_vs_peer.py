#!/usr/bin/env python3
"""Runs the PyTorch peer (peer_decode.py) and kiln-bench on the same GPU in one
command and prints the ratios (issue: serving performance).

  python3 tools/bench/bench_vs_peer.py --kiln-bench build-rt/tools/kiln-bench/kiln-bench \
      --artifact llama1b.kiln --shape llama3.2-1b --batch 1,32 [--gen-len 256] \
      [--prompt-len 128] [--prefill 2048]

The peer decodes from position 128 with a static cache and CUDA graphs
(torch.compile reduce-overhead); each batch size runs in its own process (the
peer's cache is sized for the largest batch it is given). The matmul rate the
peer measures (bf16 8192^3) is passed to kiln-bench as its prefill floor's
denominator. Stdlib only; the peer needs torch."""
import argparse, json, os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_bench_output  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(out.stdout[-4000:])
    if out.returncode:
        sys.exit(f"bench_vs_peer: {cmd[0]} failed with status {out.returncode}")
    return out.stdout


def peer(shape, batch, extra=()):
    text = run([sys.executable, os.path.join(HERE, "peer_decode.py"), *extra, shape, str(batch)])
    result = json.loads(text.strip().splitlines()[-1])
    m = re.search(r"matmul bf16 8192\^3: ([0-9.]+) TFLOP/s", text)
    if m:
        result["matmul_tflops"] = float(m.group(1))
    return result


def kiln(bench, artifact, batches, prompt_len, gen_len, tflops, device):
    text = run([bench, artifact, "--batch", ",".join(map(str, batches)), "--prompt-len",
                str(prompt_len), "--gen-len", str(gen_len), "--matmul-tflops", f"{tflops:.0f}",
                "--device", device, "--repeats", "2"])
    return kiln_bench_output.parse(text)["rows"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-bench", required=True)
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--shape", default="llama3.2-1b")
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--gen-len", type=int, default=256)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    batches = [int(b) for b in a.batch.split(",")]
    peers = {}
    for i, b in enumerate(batches):
        extra = ["--matmul", "--prefill", str(a.prefill)] if i == 0 else []
        peers[b] = peer(a.shape, b, extra)
    tflops = peers[batches[0]].get("matmul_tflops", 790.0)
    rows = kiln(a.kiln_bench, a.artifact, batches, a.prompt_len, a.gen_len, tflops, a.device)
    pre = kiln(a.kiln_bench, a.artifact, [1], a.prefill, 1, tflops, a.device)[1]
    print(f"\n{a.shape}: matmul rate {tflops:.0f} TFLOP/s, peer copy bandwidth "
          f"{peers[batches[0]]['copy_GBps']:.0f} GB/s")
    print(f"{'batch':>5} {'peer tok/s':>10} {'kiln tok/s':>10} {'kiln/peer':>9} "
          f"{'peer %floor':>11} {'kiln %floor':>11}")
    for b in batches:
        p, k = peers[b], rows[b]
        print(f"{b:>5} {p[f'bs{b}_tok_s']:>10.0f} {k['tok_s']:>10.0f} "
              f"{k['tok_s'] / p[f'bs{b}_tok_s']:>8.2f}x {p[f'bs{b}_pct_of_bw_floor']:>10.0f}% "
              f"{k['decode_pct']:>10.1f}%")
    peer_pre = peers[batches[0]].get("prefill_ms")
    print(f"prefill {a.prefill} tokens: kiln {pre['prefill_ms']:.1f} ms "
          f"({pre['prefill_pct']:.1f}% of the matmul rate), peer (eager) "
          f"{peer_pre:.1f} ms" if peer_pre else "")


if __name__ == "__main__":
    main()
