"""
bench/bench_model.py: forward+backward tokens/s and peak memory of model.py against
Hugging Face transformers on the same weights and the same batch, side by side in one run.

The work is one SFT step: a batch of B sequences of T tokens whose last `--answer` tokens are
the answer (the only positions with a label, as in T2L's SFT loss). Every weight is trainable
so that backward does the full work. transformers computes logits at all B*T positions (its
loss API has no other way); model.py's `loss` runs the vocabulary head only at the answer
positions, which is most of the difference on a small-vocabulary-heavy model like SmolLM2.

Each implementation runs in its own subprocess, so peak memory (max RSS on CPU, max allocated
on CUDA) belongs to it alone; the two alternate, `--repeats` times each.

    python bench/bench_model.py                                # CPU, fp32, SmolLM2-135M, 8 x 128
    python bench/bench_model.py --device cuda --dtype bfloat16 --arch gemma2-2b --seq 512
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lora  # noqa: E402
import t2l  # noqa: E402
from data import prepare_model  # noqa: E402
from model import ModelConfig, Transformer, load_pretrained  # noqa: E402

# Gemma-2-2B's published config.json (google/gemma-2-2b), used with random weights.
GEMMA2_2B = dict(model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216,
                 num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                 rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=8192, sliding_window=4096,
                 query_pre_attn_scalar=256, attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                 hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, bos_token_id=2,
                 eos_token_id=1, pad_token_id=0)


# Mistral-7B-v0.2's published config.json shape, used with random weights.
MISTRAL_7B = dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                  num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                  rms_norm_eps=1e-5, rope_theta=1e6, max_position_embeddings=32768, sliding_window=None,
                  tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
SHAPES = {"gemma2-2b": GEMMA2_2B, "mistral-7b": MISTRAL_7B}


def cpu_name() -> str:
    """The CPU's model name and the vector unit torch's kernels use ("AMD EPYC ... (AVX2)",
    "Intel(R) Xeon(R) Processor (AVX512)"), not just "x86_64": the same step runs at a different
    fraction of the matmul peak on different x86 CPUs (bench/RESULTS.md)."""
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):  # not Linux, or no "model name" line (ARM)
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def t2l_step(impl, m, device, dtype):
    """A T2L SFT step: a T2L-S hypernetwork writes one rank-8 q/v adapter per example from a task
    embedding, the frozen LLM runs under them, only the hypernetwork gets gradients. Ours: lora.py's
    batched per-example LoRALinear. transformers: forward hooks on q_proj / v_proj that add the
    per-example bmm deltas, the way the reference implementation applies generated LoRAs (hooks.py)."""
    m.requires_grad_(False)
    cfg = lora.LoraConfig(r=8, alpha=16, target_modules=["q_proj", "v_proj"])
    mcfg = m.config if impl == "ours" else ModelConfig.from_dict(m.config.to_dict())
    net = t2l.HyperNetwork(t2l.T2LConfig.for_base(mcfg, variant="S", d_task=384)).to(device=device, dtype=dtype).train()
    for head in net.heads.values():  # non-zero heads, so B != 0 and every gradient path is exercised
        torch.nn.init.normal_(head.weight, std=0.01)
    if impl == "ours":
        lora.inject(m, cfg)

        def step(ids, labels):
            adapter = net(torch.randn(ids.shape[0], 384, device=device, dtype=dtype))
            with lora.use_adapter(m, adapter, cfg.scaling):
                return m.loss(ids, labels)
        return net, step, m
    current = add_delta_hooks(m, cfg)

    def step(ids, labels):
        current.update(net(torch.randn(ids.shape[0], 384, device=device, dtype=dtype)))
        return m(input_ids=ids, labels=labels).loss
    return net, step, m


def add_delta_hooks(hf, cfg) -> dict:
    """The reference's way of applying generated LoRAs to a transformers model (hooks.py): a forward
    hook on every adapted Linear adds s * (x A^T) B^T with per-example bmm. -> the dict to fill with
    {module name: (A (Bsz, r, d_in), B (Bsz, d_out, r))} before each forward."""
    current = {}

    def hook(name):
        def add_delta(module, inputs, out):
            A, B = current[name]  # (Bsz, r, d_in), (Bsz, d_out, r)
            return out + cfg.scaling * torch.bmm(torch.bmm(inputs[0], A.transpose(1, 2)), B.transpose(1, 2))  # (Bsz, T, d_out)
        return add_delta
    for name in lora.target_names(hf, cfg):
        hf.get_submodule(name).register_forward_hook(hook(name))
    return current


def build(impl: str, arch: str, device: str, dtype, with_lora: bool = False, with_t2l: bool = False):
    """Returns (module whose parameters get gradients, step_fn(ids, labels) -> loss) for 'ours' or 'hf'
    ('hf' = transformers, plus PEFT with --lora)."""
    if arch == "smollm2":
        d = prepare_model.model_dir()
        if impl == "ours":
            m = load_pretrained(d, device=device, dtype=dtype)
        else:
            import transformers as tf
            m = tf.AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="sdpa").to(device)
    else:
        import transformers as tf
        shape = SHAPES[arch]
        cfg = (tf.Gemma2Config if shape["model_type"] == "gemma2" else tf.MistralConfig)(**shape)
        torch.manual_seed(0)
        attn = "eager" if shape["model_type"] == "gemma2" else "sdpa"  # Gemma-2 soft-capping: eager in both
        if impl == "ours":
            with torch.device(device):
                m = Transformer(ModelConfig.from_dict(cfg.to_dict())).to(dtype)
        else:
            with torch.device(device):
                m = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation=attn, dtype=dtype)
    if with_t2l:
        return t2l_step(impl, m, device, dtype)
    if not with_lora:
        m.requires_grad_(True).train()
        return m, ((lambda ids, labels: m.loss(ids, labels)) if impl == "ours" else (lambda ids, labels: m(input_ids=ids, labels=labels).loss)), m
    # LoRA training: frozen base, rank-8 adapters on q_proj and v_proj, only A and B get gradients.
    m.requires_grad_(False)
    if impl == "ours":
        cfg = lora.LoraConfig(r=8, alpha=16, target_modules=["q_proj", "v_proj"])
        lora.inject(m, cfg)
        trainable = lora.LoRA(m, cfg).to(device)
        for p in trainable.B.values():  # non-zero B so that every gradient path is exercised
            torch.nn.init.normal_(p, std=0.01)

        def step(ids, labels):
            with lora.use_adapter(m, trainable.adapter(), cfg.scaling):
                return m.loss(ids, labels)
        return trainable, step, m
    import peft
    pm = peft.get_peft_model(m, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    for n, p in pm.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.01)
    return pm, (lambda ids, labels: pm(input_ids=ids, labels=labels).loss), pm


def worker(a):
    dtype = getattr(torch, a.dtype)
    torch.manual_seed(0)
    m, step, llm = build(a.impl, a.arch, a.device, dtype, a.lora, a.t2l)
    if a.impl == "ours":  # the memory savers: train_sft.py --grad-checkpoint; chunked logits of a trained head
        llm.grad_checkpoint, llm.ce_chunk = a.grad_checkpoint, a.ce_chunk
    elif a.grad_checkpoint:  # transformers' own activation checkpointing: its best memory setting
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    vocab = 49152 if a.arch == "smollm2" else SHAPES[a.arch]["vocab_size"]
    ids = torch.randint(3, vocab, (a.batch, a.seq), device=a.device)
    labels = torch.full_like(ids, -100)
    labels[:, -a.answer:] = ids[:, -a.answer:]
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    times = []
    for i in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss = step(ids, labels)
        loss.backward()
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
        for p in m.parameters():
            p.grad = None
    times.sort()
    med = times[len(times) // 2]
    peak = (torch.cuda.max_memory_allocated() if a.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps({"impl": a.impl, "tok_s": a.batch * a.seq / med, "step_s": med, "peak_gib": peak / 2**30,
                      "loss": float(loss)}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    p.add_argument("--arch", default="smollm2", choices=["smollm2", *SHAPES],
                   help="real SmolLM2 weights, or the Gemma-2-2B / Mistral-7B shape with random weights")
    p.add_argument("--batch", type=int, default=8, help="sequences per step")
    p.add_argument("--seq", type=int, default=128, help="tokens per sequence")
    p.add_argument("--answer", type=int, default=16, help="labelled (answer) tokens at the end of each sequence")
    p.add_argument("--steps", type=int, default=3, help="timed steps per repeat (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each implementation")
    p.add_argument("--lora", action="store_true", help="LoRA training (frozen base; ours: lora.py, reference: PEFT)")
    p.add_argument("--t2l", action="store_true", help="T2L-S SFT step (ours: lora.py; reference: hooks adding per-example deltas)")
    p.add_argument("--grad-checkpoint", action="store_true", help="activation checkpointing on both sides")
    p.add_argument("--ce-chunk", type=int, default=0, help="ours, a trained head only (neither --lora nor --t2l): answer positions per chunk of its logits; a frozen head never holds them (model.head_cross_entropy)")
    p.add_argument("--impl", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.impl:
        return worker(a)
    results = {"ours": [], "hf": []}
    for r in range(a.repeats):
        for impl in ("hf", "ours"):
            flags = ("lora", "t2l", "grad_checkpoint")
            cmd = [sys.executable, __file__, "--impl", impl] + [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                                                               if k not in ("impl", "repeats", *flags)]
            cmd += [f"--{f.replace('_', '-')}" for f in flags if getattr(a, f)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{impl} failed:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[impl].append(res)
            print(f"repeat {r} {impl:5s} {res['tok_s']:9.1f} tok/s  peak {res['peak_gib']:.2f} GiB  loss {res['loss']:.4f}", flush=True)
    best = {k: max(v, key=lambda x: x["tok_s"]) for k, v in results.items()}
    dev = torch.cuda.get_device_name() if a.device == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    ref = "transformers + PEFT" if a.lora else ("transformers + hooks" if a.t2l else "transformers")
    print(f"\n| work | device | dtype | {ref} tok/s | model.py tok/s | speed-up | {ref} peak | model.py peak |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    kind = "LoRA " if a.lora else ("T2L-S " if a.t2l else "")
    kind += "grad-ckpt " if a.grad_checkpoint else ""
    print(f"| {a.arch} {kind}fwd+bwd, B={a.batch} T={a.seq}, {a.answer} answer tokens | {dev} | {a.dtype} | "
          f"{best['hf']['tok_s']:.0f} | {best['ours']['tok_s']:.0f} | {best['ours']['tok_s'] / best['hf']['tok_s']:.2f}x | "
          f"{best['hf']['peak_gib']:.2f} GiB | {best['ours']['peak_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
