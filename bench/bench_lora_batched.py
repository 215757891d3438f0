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
import lora  # noqa: E402
from data import prepare_model  # noqa: E402
from model import load_pretrained  # noqa: E402


def main():
    p = argparse.ArgumentParser(description="Per-example vs shared LoRA adapters: forward+backward time.")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    p.add_argument("--batches", default="8,64", help="batch sizes")
    p.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    p.add_argument("--targets", default="q_proj,v_proj", help="adapted Linears")
    p.add_argument("--fuse", action="store_true", help="sibling Linears' LoRA-A products as one batched matmul (lora.SharedInput)")
    p.add_argument("--peft-mixed", type=int, default=0, metavar="B",
                   help="instead: B prompts, each with its own adapter, forward only: lora.py vs PEFT's mixed-adapter batch")
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    if a.peft_mixed:
        return peft_mixed(a, dtype)
    m = load_pretrained(prepare_model.model_dir(), device=a.device, dtype=dtype)
    cfg = lora.LoraConfig(target_modules=a.targets.split(","))
    lora.inject(m, cfg, fuse=a.fuse)
    shapes = lora.module_shapes(m, cfg)
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
                with lora.use_adapter(m, ad, cfg.scaling):
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


@torch.no_grad()
def peft_mixed(a, dtype):
    """Serving many task descriptions at once: B prompts, B different rank-8 q/v adapters, one
    forward pass. lora.py: per-example bmm. PEFT: B named adapters loaded, `adapter_names=[...]`
    (its mixed-batch inference, which groups the rows of each adapter)."""
    import peft
    import transformers as tf
    B, d = a.peft_mixed, prepare_model.model_dir()
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    ids = torch.randint(3, 49152, (B, a.seq), device=a.device)
    cfg = lora.LoraConfig()
    m = load_pretrained(d, device=a.device, dtype=dtype)
    lora.inject(m, cfg)
    g = torch.Generator().manual_seed(0)
    ads = [{n: (torch.randn(cfg.r, di, generator=g) * 0.02, torch.randn(do, cfg.r, generator=g) * 0.02)
            for n, (di, do) in lora.module_shapes(m, cfg).items()} for _ in range(B)]
    stacked = {k: (v[0].to(a.device, dtype), v[1].to(a.device, dtype)) for k, v in lora.stack(ads).items()}
    hf = tf.AutoModelForCausalLM.from_pretrained(d, dtype=dtype).to(a.device).eval()
    pm = peft.get_peft_model(hf, peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=cfg.target_modules),
                             adapter_name="a0").eval()
    for i in range(1, B):
        pm.add_adapter(f"a{i}", peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=cfg.target_modules))
    sd = {}
    for i, ad in enumerate(ads):
        for n, (A, Bm) in ad.items():
            sd[f"base_model.model.{n}.lora_A.a{i}.weight"] = A.to(a.device, dtype)
            sd[f"base_model.model.{n}.lora_B.a{i}.weight"] = Bm.to(a.device, dtype)
    pm.load_state_dict(sd, strict=False)
    names = [f"a{i}" for i in range(B)]

    def timed(fn):
        fn()
        ts = []
        for _ in range(a.steps):
            sync()
            t0 = time.perf_counter()
            out = fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return sorted(ts)[len(ts) // 2], out

    def ours():
        with lora.use_adapter(m, stacked, cfg.scaling):
            return m(ids)
    t_ours, lo = timed(ours)
    t_peft, lp = timed(lambda: pm(input_ids=ids, adapter_names=names).logits)
    err = float((lo.float() - lp.float()).abs().max())
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"| {B} prompts x {a.seq} tokens, {B} adapters | {dev} | {a.dtype} | {t_peft * 1e3:.0f} ms | {t_ours * 1e3:.0f} ms | "
          f"{t_peft / t_ours:.2f}x | max logit diff {err:.2g} |")


if __name__ == "__main__":
    main()
