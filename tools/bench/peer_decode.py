# Strongest PyTorch peer for decode: a gpt-fast-style Llama with a static KV cache,
# the decode step compiled with torch.compile (CUDA graphs), random bf16 weights.
# Usage: python3 peer_decode.py [shape] [batch...]   prints tok/s and % of copy bandwidth.
# (The project's copy of ../shared/peers/peer_decode.py, the peer PERFORMANCE.md measured;
# Kiln's additions: --prefill N times one eager prefill of N tokens at batch 1 and
# --matmul measures the bf16 matmul rate that kiln-bench's prefill floor divides by.
# tools/bench/bench-vs-peer.sh runs it and kiln-bench in one command.)
import sys, time, json, os, math, torch, torch.nn.functional as F
torch.manual_seed(0); dev = "cuda"; dt = torch.bfloat16
SHAPES = {
 "llama3.2-1b": dict(V=128256, D=2048, F=8192, L=16, H=32, KV=8),
 "llama3.1-8b": dict(V=128256, D=4096, F=14336, L=32, H=32, KV=8),
}
class Attn(torch.nn.Module):
    def __init__(s, D, H, KV, B, S):
        super().__init__(); s.H, s.KV, s.hd = H, KV, D // H
        s.wqkv = torch.nn.Linear(D, (H + 2 * KV) * s.hd, bias=False); s.wo = torch.nn.Linear(D, D, bias=False)
        s.register_buffer("kc", torch.zeros(B, KV, S, s.hd, dtype=dt)); s.register_buffer("vc", torch.zeros(B, KV, S, s.hd, dtype=dt))
    def forward(s, x, cos, sin, pos, mask):
        B, T, _ = x.shape
        q, k, v = s.wqkv(x).split([s.H * s.hd, s.KV * s.hd, s.KV * s.hd], -1)
        q = q.view(B, T, s.H, s.hd).transpose(1, 2); k = k.view(B, T, s.KV, s.hd).transpose(1, 2); v = v.view(B, T, s.KV, s.hd).transpose(1, 2)
        def rope(t):
            t1, t2 = t[..., : s.hd // 2], t[..., s.hd // 2:]
            return torch.cat([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1)
        q, k = rope(q), rope(k)
        s.kc.index_copy_(2, pos, k); s.vc.index_copy_(2, pos, v)
        o = F.scaled_dot_product_attention(q, s.kc, s.vc, attn_mask=mask, enable_gqa=True)
        return s.wo(o.transpose(1, 2).reshape(B, T, -1))
class Block(torch.nn.Module):
    def __init__(s, c, B, S):
        super().__init__(); s.a = Attn(c["D"], c["H"], c["KV"], B, S)
        s.w13 = torch.nn.Linear(c["D"], 2 * c["F"], bias=False); s.w2 = torch.nn.Linear(c["F"], c["D"], bias=False)
        s.n1 = torch.nn.RMSNorm(c["D"]); s.n2 = torch.nn.RMSNorm(c["D"])
    def forward(s, x, cos, sin, pos, mask):
        x = x + s.a(s.n1(x), cos, sin, pos, mask)
        g, u = s.w13(s.n2(x)).chunk(2, -1)
        return x + s.w2(F.silu(g) * u)
class LM(torch.nn.Module):
    def __init__(s, c, B, S):
        super().__init__(); s.emb = torch.nn.Embedding(c["V"], c["D"]); s.blocks = torch.nn.ModuleList([Block(c, B, S) for _ in range(c["L"])])
        s.norm = torch.nn.RMSNorm(c["D"]); s.head = torch.nn.Linear(c["D"], c["V"], bias=False)
        hd = c["D"] // c["H"]; inv = 1.0 / (500000.0 ** (torch.arange(0, hd, 2).float() / hd)); t = torch.outer(torch.arange(S).float(), inv)
        s.register_buffer("cos", t.cos().to(dt)); s.register_buffer("sin", t.sin().to(dt))
        s.register_buffer("causal", torch.tril(torch.ones(S, S, dtype=torch.bool)))
    def forward(s, ids, pos):
        x = s.emb(ids); cos, sin = s.cos[pos][None, None], s.sin[pos][None, None]; mask = s.causal[pos][None, None]
        for b in s.blocks: x = b(x, cos, sin, pos, mask)
        return s.head(s.norm(x))
def bw():
    x = torch.empty(2**30, dtype=torch.uint8, device=dev); y = torch.empty_like(x)
    for _ in range(3): y.copy_(x)
    torch.cuda.synchronize(); t = time.time()
    for _ in range(20): y.copy_(x)
    torch.cuda.synchronize(); return 2 * 2**30 * 20 / (time.time() - t) / 1e9
def matmul_tflops(n=8192, reps=20):
    a = torch.randn(n, n, device=dev, dtype=dt); b = torch.randn(n, n, device=dev, dtype=dt)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.time()
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); return 2 * n ** 3 * reps / (time.time() - t) / 1e12
if __name__ == "__main__":
    args = sys.argv[1:]; prefill = 0; matmul = False
    if "--matmul" in args: args.remove("--matmul"); matmul = True
    if "--prefill" in args: i = args.index("--prefill"); prefill = int(args[i + 1]); del args[i:i + 2]
    if matmul: print(f"matmul bf16 8192^3: {matmul_tflops():.0f} TFLOP/s", flush=True)
    shape = args[0] if args else "llama3.2-1b"; batches = [int(b) for b in args[1:]] or [1]
    c = SHAPES[shape]; B = max(batches); S = max(1024, prefill); BW = bw(); res = {"shape": shape, "copy_GBps": BW}
    with torch.device(dev): m = LM(c, B, S).to(dt).eval()
    # Weight bytes a decode step reads: the embedding table is gathered one
    # row per sequence (kiln-bench counts it the same way).
    emb = m.emb.weight
    wbytes = sum(p.numel() * p.element_size() for p in m.parameters()) - emb.numel() * emb.element_size()
    if prefill:
        with torch.no_grad():
            ids = torch.randint(0, c["V"], (1, prefill), device=dev); pos = torch.arange(prefill, device=dev)
            for _ in range(2): m(ids, pos)
            torch.cuda.synchronize(); t = time.time()
            for _ in range(5): m(ids, pos)
            torch.cuda.synchronize(); ms = (time.time() - t) / 5 * 1000
        res["prefill_ms"] = ms
        print(shape, f"prefill {prefill} tokens (eager, batch 1): {ms:.1f} ms", flush=True)
    step = torch.compile(m, mode="reduce-overhead", fullgraph=True)
    for b in batches:
        with torch.no_grad():
            ids = torch.randint(0, c["V"], (b, 1), device=dev)
            # prefill 128 tokens eagerly is not the point here: decode from position 128
            for i in range(5): step(ids if b == B else ids, torch.tensor([128 + i], device=dev))
            n = 256; torch.cuda.synchronize(); t = time.time()
            for i in range(n):
                logits = step(ids, torch.tensor([133 + i], device=dev)); ids = logits[:, -1:].argmax(-1)
            torch.cuda.synchronize(); el = time.time() - t
        # note: cache buffers are sized for max batch; smaller b decodes rows 0..b-1 only through slicing-free broadcast
        tps = b * n / el; ms = 1000 * el / n
        res[f"bs{b}_tok_s"] = tps; res[f"bs{b}_ms_per_step"] = ms
        read = wbytes + b * emb[0].numel() * emb.element_size()
        res[f"bs{b}_pct_of_bw_floor"] = 100 * (read / (BW * 1e9) * 1000) / ms
        print(shape, f"bs{b}: {tps:.0f} tok/s, {ms:.2f} ms/step, weights read {read/1e9:.2f} GB a step, floor {read/(BW*1e9)*1000:.2f} ms -> {res[f'bs{b}_pct_of_bw_floor']:.0f}% of copy-bandwidth roofline", flush=True)
    print(json.dumps(res)); json.dump(res, open(os.path.join(os.environ.get("OUT", "/tmp"), f"peer_{shape}.json"), "w"))
