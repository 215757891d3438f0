"""
bench/bench_pack.py: the T2L-S SFT step on real SNI batches, padded against packed (train_sft.py
--pack) against transformers + hooks, each as a fraction of what this machine's matmuls can do.

    python bench/bench_pack.py                          # CPU, fp32, SmolLM2-135M, 8 SNI tasks x 1 example
    python bench/bench_pack.py --device cuda --dtype bfloat16
    python bench/bench_pack.py --profile                # + where a packed step's time goes (torch.profiler)
    python bench/bench_pack.py --device cuda --dtype bfloat16 --arch gemma2-2b --no-hf   # a GPU-sized base

What it does, in one process, on the same weights and the same batches:
  1. peak: torch.mm at the model's own shapes (every Linear of a block and the vocabulary head, on
     as many rows as a batch has tokens); the best GFLOP/s is the machine's peak for this work.
     Measured again beside every pass of every row (this CPU drifts); each row is held to the
     highest peak measured beside it, and to the run's best.
  2. the batches: train_sft.py's own Batches on the shipped SNI tasks (reference recipe: the task
     definition in the prompt, max-len 384, batch 8 = 8 tasks x 1 example), steps 0..N-1.
  3. one T2L-S SFT step per batch (hypernetwork -> per-example adapters -> frozen LLM -> eq. (5)
     loss -> backward -> AdamW), NEFTune and dropouts off so that padded and packed must give the
     same loss (printed side by side). --arch gemma2-2b / mistral-7b: that published shape with random
     weights (bench/stand_in.py's init; SmolLM2's token ids folded into a smaller vocabulary), our
     side only; Gemma-2 soft-caps, so it has no spans row:
       ours, padded           lora.py per-example bmm, rows padded to the longest
       ours, packed, mask     data/format.pack rows of --max-len (384) tokens, per-token adapters
                              (lora_delta_routed), a block-diagonal causal mask (attend_by_span off)
       ours, packed, spans    the whole batch in ONE row, no padding, attention example by example
                              with no mask (model.span_attention): what train_sft.py --pack runs
                              (Gemma-2, which soft-caps, keeps the mask and rows of --max-len)
       transformers + hooks, padded   forward hooks adding the per-example deltas, as the reference
  4. useful FLOPs: counted for the real tokens only (padding is waste), from the config: the
     frozen Linears forward and their input gradient backward (2 + 2 x params per token; layer
     0's q, k, v and their LoRA A products have no input gradient: they read the normed frozen
     embeddings, which need none), attention over each example's own causal context (forward +
     backward), the vocabulary head at the answer positions, the LoRA path at rank r; plus the
     hypernetwork's forward and backward, which every row runs alike (torch.utils.flop_counter
     counts it). Reported as tokens/s, GFLOP/s and the fraction of the peak.
  5. Every row runs one untimed warm-up step, then reports its batches' best step (the roofline),
     its mean over every timed step (what a training run feels) and, on the CPU, its page faults
     per step. --malloc keep: an experiment, not what train_sft.py does; glibc keeps the memory a
     step frees instead of unmapping it (keep_freed_memory; bench/RESULTS.md, "malloc keeping the
     memory a step frees": not adopted).
"""
from __future__ import annotations

import argparse
import ctypes
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lora  # noqa: E402
import t2l  # noqa: E402
import train_sft  # noqa: E402
from bench.bench_model import SHAPES, add_delta_hooks, cpu_name  # noqa: E402
from bench.stand_in import init_stand_in_  # noqa: E402
from data import format as fmt  # noqa: E402
from data import prepare_model  # noqa: E402
from data.batches import Batches  # noqa: E402
from data.collection import load_collection  # noqa: E402
from model import ModelConfig, Transformer, load_pretrained, load_tokenizer, rope_inv_freq  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(mcfg, n_rows: int, device, dtype, repeats: int = 5) -> dict:
    """GFLOP/s of torch.mm (n_rows, d_in) @ (d_in, d_out) at every Linear shape of the model."""
    q, kv = mcfg.num_attention_heads * mcfg.head_dim, mcfg.num_key_value_heads * mcfg.head_dim
    shapes = {"q/o": (mcfg.hidden_size, q), "k/v": (mcfg.hidden_size, kv), "gate/up": (mcfg.hidden_size, mcfg.intermediate_size),
              "down": (mcfg.intermediate_size, mcfg.hidden_size), "lm_head (128 rows)": (mcfg.hidden_size, mcfg.vocab_size)}
    out = {}
    for name, (d_in, d_out) in shapes.items():
        rows = 128 if "lm_head" in name else n_rows
        x, w = torch.randn(rows, d_in, device=device, dtype=dtype), torch.randn(d_in, d_out, device=device, dtype=dtype)
        torch.mm(x, w)
        best = float("inf")
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            torch.mm(x, w)
            sync(device)
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * rows * d_in * d_out / best / 1e9
    return out


def keep_freed_memory() -> bool:
    """--malloc keep: glibc serves every block from its heap (M_MMAP_MAX = 0: no block gets an mmap
    of its own, which would be unmapped when freed) and never trims the heap (M_TRIM_THRESHOLD = -1),
    so a step reuses the pages the last one freed instead of faulting fresh ones in. -> False where
    there is no glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # <malloc.h>
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1


def faults() -> int:
    """Minor page faults of this process so far (a fault per fresh 4 KiB page touched)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def useful_flops(mcfg, examples, lcfg, hyper: float = 0.0) -> float:
    """FLOPs of one T2L SFT step on a frozen base, counted on real tokens only (see the docstring);
    hyper: the hypernetwork's own forward and backward (hyper_flops). Assumes what the bench runs:
    every layer adapted, on q, k or v among others, so that the gradient reaches every layer's
    attention and stops only at layer 0's input (with o_proj or MLP targets alone, autograd would
    skip more of layer 0 than this subtracts)."""
    if lcfg.layers is not None or not {"q_proj", "k_proj", "v_proj"} & set(lcfg.target_modules):
        raise ValueError("useful_flops counts LoRAs on every layer's q, k or v only (bench_pack's recipe)")
    d, L = mcfg.hidden_size, mcfg.num_hidden_layers
    q, kv = mcfg.num_attention_heads * mcfg.head_dim, mcfg.num_key_value_heads * mcfg.head_dim
    linear = L * (d * (q + 2 * kv) + q * d + 3 * d * mcfg.intermediate_size)  # weights of every block's Linears
    shapes = {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d)}
    shapes.update({"gate_proj": (d, mcfg.intermediate_size), "up_proj": (d, mcfg.intermediate_size), "down_proj": (mcfg.intermediate_size, d)})
    lora_per_tok = L * sum(2 * lcfg.r * (shapes[t][0] + shapes[t][1]) for t in lcfg.target_modules)
    # Layer 0's q, k and v read the normed frozen embeddings, which need no gradient: autograd skips
    # the input gradient of those Linears and of their LoRA A products (2 FLOPs per weight per token).
    first = 2 * d * (q + 2 * kv) + sum(2 * lcfg.r * shapes[t][0] for t in lcfg.target_modules if t in ("q_proj", "k_proj", "v_proj"))
    total = hyper
    for ids, labels in examples:
        n = len(ids)
        answers = sum(t != -100 for t in labels[1:])
        total += (4 * linear - first) * n  # forward 2 x params, input gradient 2 x params (frozen: no weight gradient), less layer 0's
        total += attention_flops(mcfg, n)
        total += 4 * d * mcfg.vocab_size * answers  # the vocabulary head at the answer positions, forward + backward
        total += 3 * lora_per_tok * n  # the LoRA path, forward + backward (gradients into A and B too)
    return total


def attention_flops(mcfg, n: int) -> float:
    """QK^T and AV of one n-token example over its causal context, forward + 2 x backward."""
    return 3 * 2 * 2 * mcfg.num_hidden_layers * mcfg.num_attention_heads * mcfg.head_dim * n * (n + 1) / 2


def hyper_flops(net, emb) -> float:
    """The hypernetwork's matmul FLOPs for one batch of descriptions, forward and backward (its
    weights are trained), as torch.utils.flop_counter counts them: the same in every row."""
    with FlopCounterMode(display=False) as counter:
        adapter = net(emb)
        sum(A.sum() + B.sum() for A, B in adapter.values()).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def hooks_step(hf, net, lcfg):
    """The transformers side: forward hooks on the adapted Linears add the per-example bmm deltas."""
    current = add_delta_hooks(hf, lcfg)  # bench_model.py's, the reference's hooks.py way

    def step(emb, ids, labels, mask):
        current.clear()
        current.update(net(emb))
        out = hf(input_ids=ids, attention_mask=mask)
        logits = out.logits[:, :-1].float()  # transformers computes the head at every position
        tok = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), reduction="none")
        keep = (labels[:, 1:] != -100).float()
        return ((tok.view_as(keep) * keep).sum(1) / keep.sum(1).clamp(min=1)).mean()  # per-example mean, then mean
    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--arch", default="smollm2", choices=["smollm2", *SHAPES],
                   help="the real SmolLM2-135M, or a published shape with random weights (our side only)")
    p.add_argument("--data", default="sni", help="task collection of the batches (sni: the shipped data/sni120)")
    p.add_argument("--batches", type=int, default=4, help="batches timed (steps 0..N-1 of seed 0)")
    p.add_argument("--repeats", type=int, default=2, help="passes over the batches; the best per batch counts")
    p.add_argument("--no-hf", action="store_true", help="skip the transformers + hooks rows")
    p.add_argument("--capacity", type=int, default=0, help="packed row length; 0 = --max-len, 384 (train_sft.py --pack)")
    p.add_argument("--profile", action="store_true", help="torch.profiler table of one packed step (spans, train_sft.py's)")
    p.add_argument("--malloc", default="default", choices=["default", "keep"],
                   help="CPU: glibc's defaults (as train_sft.py), or keep freed memory for the next step (an experiment)")
    a = p.parse_args()
    device, dtype = torch.device(a.device), getattr(torch, a.dtype)
    if a.malloc == "keep" and (device.type != "cpu" or not keep_freed_memory()):
        sys.exit("error: --malloc keep is for the CPU, with glibc (Linux)")
    torch.manual_seed(0)
    cfg = train_sft.apply_recipe(train_sft.TrainConfig(data=a.data, recipe="reference", neftune=0.0, lora_dropout=0.0, hyper_dropout=0.0))
    model_dir = prepare_model.model_dir()
    tok = load_tokenizer(model_dir)
    if a.arch == "smollm2":
        llm = load_pretrained(model_dir, device=device, dtype=dtype).requires_grad_(False)
    else:  # built on the device itself: a 7B model initialised on the CPU would take minutes
        a.no_hf = True  # the transformers side would need the same random weights: bench_model.py compares at these shapes
        with torch.device(device):
            llm = init_stand_in_(Transformer(ModelConfig.from_dict(SHAPES[a.arch])).to(dtype)).requires_grad_(False)
        llm.inv_freq = rope_inv_freq(llm.config).to(device)  # RoPE frequencies stay fp32, as load_pretrained keeps them
    lcfg = lora.LoraConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.targets.split(","))
    lora.inject(llm, lcfg)
    coll = load_collection(a.data, cfg.seed)
    names = coll.training_tasks()
    batches = Batches(tok, coll.tasks, names, cfg)
    work = [batches.examples(i)[0] for i in range(a.batches)]
    V = llm.config.vocab_size  # SmolLM2's token ids (< 49152) folded into a smaller vocabulary (Mistral's 32000)
    work = [[([t % V for t in x], [t if t == -100 else t % V for t in y]) for x, y in ex] for ex in work]
    net = t2l.HyperNetwork(t2l.T2LConfig.for_base(llm.config, variant="S", d_task=384, dropout=0.0)).to(device=device, dtype=dtype).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    emb = torch.randn(cfg.batch_size, 384, device=device, dtype=dtype)
    real = [sum(len(x) for x, _ in ex) for ex in work]
    padded_slots = [len(ex) * max(len(x) for x, _ in ex) for ex in work]
    packed_slots = [fmt.pack(ex, 0, a.capacity or cfg.max_len)[0].numel() for ex in work]  # rows of 384 (one row: = real)
    hyper = hyper_flops(net, emb)  # the same batch size in every step
    flops = [useful_flops(llm.config, ex, lcfg, hyper) for ex in work]

    def ours(packed, spans=False):
        def step(ex):
            llm.attend_by_span = spans
            if packed:  # spans: one row holding the batch (train_sft.py); mask: rows of --max-len
                capacity = None if llm.by_span else a.capacity or cfg.max_len
                ids, labels, seg = (t.to(device) for t in fmt.pack(ex, tok.pad_token_id, capacity))
                mask = None
            else:
                ids, labels, mask = (t.to(device) for t in fmt.collate(ex, tok.pad_token_id))
                seg = None
            with lora.use_adapter(llm, net(emb), lcfg.scaling, segments=seg):
                return llm.loss(ids, labels, mask, reduction="per_example", segments=seg).mean()
        return step

    impls = {"ours, padded": ours(False), "ours, packed, mask": ours(True), "ours, packed, spans": ours(True, spans=True)}
    if llm.config.attn_logit_softcapping is not None:  # Gemma-2: no attention by span (the mask carries the soft-cap)
        del impls["ours, packed, spans"]
    if not a.no_hf:
        import transformers
        hf = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).requires_grad_(False).eval()
        hstep = hooks_step(hf, net, lcfg)

        def hf_padded(ex):
            ids, labels, mask = (t.to(device) for t in fmt.collate(ex, tok.pad_token_id))
            return hstep(emb, ids, labels, mask)
        impls["transformers + hooks, padded"] = hf_padded
    every = {k: [] for k in impls}  # every timed step, pass after pass: what a training run feels
    faulted = {k: 0 for k in impls}  # page faults inside the timed steps
    losses = {k: [0.0] * len(work) for k in impls}
    n_rows = int(statistics.median(real))
    # This CPU's speed drifts (the peak moved 17% in 20 minutes, bench/RESULTS.md), so the peak is
    # measured beside every pass of every row, and each row is held to the highest peak measured
    # beside it: the fraction can only come out low, never flattered by a slow moment.
    peaks = {k: [] for k in impls}
    for k, step in impls.items():  # one untimed step each: the first touches every page and builds every plan
        step(work[0]).backward()
        opt.zero_grad(set_to_none=True)
    for _ in range(a.repeats):
        for k, step in impls.items():  # alternate, so drift of the machine hits every row alike
            peaks[k].append(matmul_peak(llm.config, n_rows, device, dtype))
            for i, ex in enumerate(work):
                sync(device)
                f0, t0 = faults(), time.perf_counter()
                loss = step(ex)
                loss.backward()
                opt.zero_grad(set_to_none=True)  # no opt.step(): every row sees the same weights
                sync(device)
                every[k].append(time.perf_counter() - t0)
                faulted[k] += faults() - f0
                losses[k][i] = loss.item()
    times = {k: [min(v[i::len(work)]) for i in range(len(work))] for k, v in every.items()}  # each batch's best step
    # The peak of THIS mix of shapes: the time a block's Linears would take if each ran at its own
    # shape's best rate (q, o: d x d; k, v: d x kv; gate, up: d x ffn; down: ffn x d).
    c = llm.config
    kv = c.num_key_value_heads * c.head_dim
    mix = {"q/o": 2 * c.hidden_size * c.num_attention_heads * c.head_dim, "k/v": 2 * c.hidden_size * kv,
           "gate/up": 2 * c.hidden_size * c.intermediate_size, "down": c.intermediate_size * c.hidden_size}  # FLOPs / 2 per token

    def mixed_of(pk):
        return sum(mix.values()) / sum(f / pk[k] for k, f in mix.items())
    row_top = {k: max(max(pk.values()) for pk in v) for k, v in peaks.items()}  # each row's highest best-shape peak
    row_mix = {k: max(mixed_of(pk) for pk in v) for k, v in peaks.items()}
    peak = {s: max(pk[s] for v in peaks.values() for pk in v) for s in next(iter(peaks.values()))[0]}  # the run's best per shape
    top, mixed = max(peak.values()), mixed_of(peak)
    where = f"{a.device} ({cpu_name()}, {torch.get_num_threads()} threads)" if device.type == "cpu" else torch.cuda.get_device_name()
    base_name = "SmolLM2-135M" if a.arch == "smollm2" else f"{a.arch} (random weights)"
    print(f"\n{where}, {a.dtype}, torch {torch.__version__}; {base_name}, T2L-S on q_proj/v_proj r={lcfg.r}, "
          f"{a.batches} {a.data} batches of {cfg.batch_size} (seed 0), best and mean of {a.repeats} passes"
          + (f"; malloc: {a.malloc}" if device.type == "cpu" else ""))
    print(f"real tokens per batch {sum(real) / len(real):.0f}; padded slots {sum(padded_slots) / len(work):.0f} "
          f"(real/slots {sum(real) / sum(padded_slots):.3f}); packed in rows of {a.capacity or cfg.max_len} "
          f"(mask) {sum(packed_slots) / len(work):.0f} (real/slots {sum(real) / sum(packed_slots):.3f}); packed in one row "
          "(spans): the real tokens, no padding")
    print("matmul peak at the model's shapes, the best of the run (GFLOP/s): " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    print(f"peak of the block's mix of shapes (each Linear at its own shape's best): {mixed:.0f} GFLOP/s")
    print(f"useful work per step {sum(flops) / len(flops) / 1e9:.0f} GFLOP, of which the hypernetwork {hyper / 1e9:.1f} "
          f"({100 * hyper * len(flops) / sum(flops):.1f}%)")
    print("\n| step | s/step (each batch's best) | mean s/step (every step) | CPU page faults/step | real tokens/s | useful GFLOP/s | peak beside it: best shape / mix | of the best shape's peak | "
          f"of the mix's peak | of the run's best peak ({top:.0f}) | vs ours, padded | loss |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base = sum(times["ours, padded"])
    for k in impls:
        t = sum(times[k])
        gf = sum(flops) / t / 1e9
        flt = f"{faulted[k] / len(every[k]):.0f}" if device.type == "cpu" else "-"  # a GPU step's faults are the host's
        print(f"| {k} | {t / len(work):.2f} | {statistics.mean(every[k]):.2f} | {flt} | {sum(real) / t:.0f} | {gf:.0f} | {row_top[k]:.0f} / {row_mix[k]:.0f} | "
              f"{100 * gf / row_top[k]:.1f}% | {100 * gf / row_mix[k]:.1f}% | {100 * gf / top:.1f}% | {base / t:.2f}x | "
              f"{statistics.mean(losses[k]):.6f} |")
    for k in [k for k in ("ours, packed, mask", "ours, packed, spans") if k in impls]:
        diff = max(abs(x - y) for x, y in zip(losses["ours, padded"], losses[k]))
        print(f"max |loss padded - loss {k.split(', ', 1)[1]}| over the batches: {diff:.2e}")
    if a.profile:
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            impls["ours, packed, spans" if "ours, packed, spans" in impls else "ours, packed, mask"](work[0]).backward()
            opt.zero_grad(set_to_none=True)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print("\nwhere one packed step's time goes (torch.profiler, top 12 by self time):\n")
        print(prof.key_averages().table(sort_by=sort, row_limit=12, max_name_column_width=40))


if __name__ == "__main__":
    main()
