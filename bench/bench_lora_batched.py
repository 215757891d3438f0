"""
bench/bench_lora_batched.py: what does giving every example its own LoRA cost?

T2L trains with a different generated adapter for every example in the batch (paper section 3),
and serving many task descriptions at once needs the same. lora.py applies per-example adapters
with two batched matmuls, (B, T, d_in) @ (B, d_in, r) then (B, T, r) @ (B, r, d_out); a shared
adapter uses plain matmuls. This measures forward+backward time (gradients flowing into the
adapter tensors, as when the hypernetwork is trained) for both, on SmolLM2-135M, at batch 8 and 64.

    python bench/bench_lora_batched.py                 # CPU fp32
    python bench/bench_lora_batched.py --device cuda --dtype bfloat16
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import lora as L  # noqa: E402
import model as M  # noqa: E402


def main():
    p = argparse.ArgumentParser(description="Per-example vs shared LoRA adapters: forward+backward time.")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    p.add_argument("--batches", default="8,64", help="batch sizes")
    p.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    m = M.load_pretrained(None, device=a.device, dtype=dtype)
    cfg = L.LoraConfig()
    L.inject(m, cfg)
    shapes = L.module_shapes(m, cfg)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    rows = []
    for B in map(int, a.batches.split(",")):
        ids = torch.randint(3, 49152, (B, a.seq), device=a.device)
        labels = ids.clone()
        labels[:, : a.seq // 2] = -100
        res = {}
        for kind in ("shared", "per-example"):
            lead = (B,) if kind == "per-example" else ()
            ad = {n: (torch.randn(*lead, cfg.r, di, device=a.device, dtype=dtype, requires_grad=True),
                      torch.randn(*lead, do, cfg.r, device=a.device, dtype=dtype, requires_grad=True))
                  for n, (di, do) in shapes.items()}
            times = []
            for i in range(a.steps + 1):
                sync()
                t0 = time.perf_counter()
                with L.use_adapter(m, ad, cfg.scaling):
                    m.loss(ids, labels).backward()
                sync()
                if i:
                    times.append(time.perf_counter() - t0)
            res[kind] = sorted(times)[len(times) // 2]
        rows.append((B, res["shared"], res["per-example"]))
        print(f"B={B}: shared {res['shared'] * 1e3:.1f} ms, per-example {res['per-example'] * 1e3:.1f} ms", flush=True)
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print("\n| batch x tokens | device | dtype | shared adapter | per-example adapters | cost |\n| --- | --- | --- | --- | --- | --- |")
    for B, s, pe in rows:
        print(f"| {B} x {a.seq} | {dev} | {a.dtype} | {s * 1e3:.0f} ms | {pe * 1e3:.0f} ms | {pe / s:.2f}x |")


if __name__ == "__main__":
    main()
