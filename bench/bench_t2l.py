"""
bench/bench_t2l.py: how fast T2L turns descriptions into adapters (paper: 35 ms on an A100).

Two numbers per hypernetwork variant, both with the task encoder included and its cache empty:
  latency     one description -> one complete adapter (every layer and module), median of --reps
  throughput  descriptions per second for a batch of --batch distinct descriptions, encoded in one
              call and turned into adapters in chunks of --chunk (the adapters stay on the device)

Weights are random: speed does not depend on training. The hypernetwork is sized for the base
model of --base-config (default: SmolLM2-135M-Instruct's config.json).

    python bench/bench_t2l.py                                   # CPU, SmolLM2 dims, variants S M L
    python bench/bench_t2l.py --device cuda --base-config mistral7b/config.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import t2l  # noqa: E402
from data import prepare_model  # noqa: E402
from model import ModelConfig  # noqa: E402

WORDS = "sort reverse count the words letters numbers list sentence answer with only a single digit reply uppercase".split()


def descriptions(n: int, seed: int = 0) -> list[str]:
    """n distinct plausible-length descriptions (12-20 words), so no cache hit is possible."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = int(torch.randint(12, 21, (1,), generator=g))
        idx = torch.randint(0, len(WORDS), (k,), generator=g).tolist()
        out.append(f"Task {i}: " + " ".join(WORDS[j] for j in idx) + ".")
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def bench(net, enc, device, reps: int, batch: int, chunk: int) -> dict:
    for d in descriptions(3, seed=99):  # warm-up: kernels, allocator, tokenizer
        net(enc([d]).to(device))
    sync(device)
    times = []
    for d in descriptions(reps, seed=1):
        enc.cache.clear()
        t0 = time.perf_counter()
        adapter = net(enc([d]).to(device))
        sync(device)
        times.append(time.perf_counter() - t0)
    assert len(adapter) == net.cfg.n_layers * len(net.cfg.targets)
    enc.cache.clear()
    many = descriptions(batch, seed=2)
    t0 = time.perf_counter()
    emb = enc.encode_batch(many).to(device)  # (batch, d_task), padded batches of 128
    sync(device)
    t_enc = time.perf_counter() - t0
    for s in range(0, batch, chunk):
        net(emb[s:s + chunk])
    sync(device)
    total = time.perf_counter() - t0
    return {"latency_ms": 1000 * statistics.median(times), "batch": batch, "batch_s": total,
            "encoder_s": t_enc, "descriptions_per_s": batch / total}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--base-config", default=None, help="config.json of the base model (default: SmolLM2-135M-Instruct)")
    p.add_argument("--variants", default="S,M,L")
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--latent", type=int, default=128)
    p.add_argument("--head-in", type=int, default=512)
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=50, help="descriptions per hypernetwork call in the batch run")
    p.add_argument("--json", default=None, help="append the results here, one JSON line each")
    a = p.parse_args()
    device = torch.device(a.device)
    cfg_path = Path(a.base_config) if a.base_config else prepare_model.model_dir() / "config.json"
    mcfg = ModelConfig.from_json(cfg_path)
    enc = t2l.TaskEncoder(a.encoder, device=device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"| base model | variant | params | latency, 1 description (ms) | descriptions/s, batch of {a.batch} | device |")
    print("| --- | --- | --- | --- | --- | --- |")
    for v in a.variants.split(","):
        cfg = t2l.T2LConfig.for_base(mcfg, variant=v, d_task=enc.dim, latent=a.latent, head_in=a.head_in, targets=a.targets.split(","))
        net = t2l.HyperNetwork(cfg).to(device).eval()
        r = bench(net, enc, device, a.reps, a.batch, a.chunk)
        r.update(variant=v, params=t2l.n_params(net), base=f"{mcfg.model_type} {mcfg.num_hidden_layers}L", device=name, encoder=enc.name)
        print(f"| {r['base']} | {v} | {r['params'] / 1e6:.1f}M | {r['latency_ms']:.1f} | {r['descriptions_per_s']:.0f} | {name} |", flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
