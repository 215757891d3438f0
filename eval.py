"""
eval.py: the zero-shot table of the paper (section 4, Tables 1-2) on tasks never trained on.

Methods (one column each), all on the same test examples of the same unseen tasks:
  base         the base model, user turn = the input only
  description  the base model with a task description prepended (3 unseen descriptions, averaged)
  icl          3-shot in-context learning (3 solved training examples as earlier chat turns)
  oracle       the task's own LoRA (train_sft.py --variant lora --task NAME): an upper bound
  mt_lora      one LoRA trained on all training tasks (train_sft.py --variant mt_lora)
  avg_lora     the mean of the training tasks' oracle LoRAs: the mean of their Delta W, exactly
  t2l          T2L: one adapter from each of the task's 3 unseen descriptions, scores averaged
  t2l_wrong    control: T2L given the description of another task (of another family)
  t2l_random   control: T2L given a random string of the same length as the description
Several T2L checkpoints (say SFT- and reconstruction-trained) each get a `t2l` column.

Generation tasks are scored from the greedy answer (data/metrics.py, after `extract_answer`);
multiple-choice benchmarks (ARC, BoolQ, HellaSwag, ...) by the log-likelihood of each answer
choice given the prompt (per-character normalised, as OLMES does), no generation.
Outputs: a markdown table, <out>/results.json (every score) and <out>/zero_shot.png (bar chart).

    python eval.py --tasks test --n 32 --t2l runs/t2l_S/best
    python eval.py --tasks test --methods base,description,icl,oracle,mt_lora,avg_lora,t2l,t2l_wrong,t2l_random \\
        --t2l runs/t2l_S/best --t2l runs/recon_S/best --oracles runs/lora --mt-lora runs/mt_lora/adapter
    python eval.py --benchmarks arc_easy,boolq --n 200 --methods base,t2l --t2l runs/t2l_S/best
    python eval.py --tasks list_sort_asc --lora runs/lora/list_sort_asc/adapter --methods lora
    python eval.py --merge runs/eval_a,runs/eval_b --out runs/eval        # join runs split over processes
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import lora as L
import model as M
from data import format as fmt
from data.metrics import extract_answer, score
from data.tasks import _stable_seed, builtin_tasks, splits

METHODS = ("base", "description", "icl", "oracle", "mt_lora", "avg_lora", "lora", "t2l", "t2l_wrong", "t2l_random")


# -----------------------------------------------------------------------------
# Generation and scoring


@torch.no_grad()
def answer(model, tok, prompts: list[list[int]], adapter=None, scaling=0.0, max_new_tokens=32, batch_size=32):
    """Greedy answers for many prompts. `adapter` is one shared adapter, or a per-example adapter
    whose leading dim equals len(prompts) (it is sliced batch by batch)."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = prompts[i:i + batch_size]
        ad = adapter
        if adapter is not None and next(iter(adapter.values()))[0].dim() == 3:
            ad = {n: (A[i:i + batch_size], B[i:i + batch_size]) for n, (A, B) in adapter.items()}
        ids, mask = M.left_pad(chunk, tok.pad_token_id)
        with L.use_adapter(model, ad, scaling):
            gen = model.generate(ids.to(device), mask.to(device), max_new_tokens=max_new_tokens,
                                 eos_token_ids=tok.eos_token_ids, pad_token_id=tok.pad_token_id)
        for row in gen.tolist():
            row = [t for t in row if t not in tok.eos_token_ids and t != tok.pad_token_id]
            out.append(extract_answer(tok.decode(row)))  # first line, lead-ins removed
    return out


@torch.no_grad()
def choice_loglik(model, tok, examples, adapter=None, scaling=0.0, mode="input", description=None, batch_size=32, norm="char"):
    """Multiple choice by log-likelihood: for every (question, choice) pair, the summed log-prob of
    the choice's tokens given the chat-formatted question, divided by the choice's length in
    characters (norm="char", OLMES's normalisation; "none": the raw sum, which favours short
    choices); the highest wins. -> accuracy per example (list of 0/1)."""
    device = next(model.parameters()).device
    pairs, owner = [], []  # one row per (example, choice)
    for i, ex in enumerate(examples):
        for j, choice in enumerate(ex.choices):
            ctx = ex.contexts[j] if ex.contexts else ex.input
            ids, labels = fmt.encode(tok, fmt.messages_for(ctx, mode, description), choice.strip(), max_len=10**6)
            last = max(k for k, y in enumerate(labels) if y != -100)
            labels[last] = -100  # score the choice itself, not the end-of-turn token after it
            pairs.append((ids, labels))
            owner.append((i, j, max(1, len(choice.strip())) if norm == "char" else 1))
    scores = []
    for s in range(0, len(pairs), batch_size):
        ids, labels, mask = (t.to(device) for t in fmt.collate(pairs[s:s + batch_size], tok.pad_token_id))
        with L.use_adapter(model, adapter, scaling):
            scores += (-model.loss(ids, labels, mask, reduction="per_example_sum")).tolist()  # (b,) log-likelihood of each choice
    best = {}
    for (i, j, n_chars), ll in zip(owner, scores):
        if i not in best or ll / n_chars > best[i][1]:
            best[i] = (j, ll / n_chars)
    return [float(best[i][0] == gold_index(ex)) for i, ex in enumerate(examples)]


def gold_index(ex) -> int:
    """Which choice is right: the one whose (context, continuation) is the example's own. By
    index, not by text: Winogrande's choices share one continuation and differ in context."""
    for j, choice in enumerate(ex.choices):
        if choice == ex.answer and (not ex.contexts or ex.contexts[j] == ex.input):
            return j
    raise ValueError(f"example {ex.input[:40]!r}: its answer is not among its choices")


def evaluate_task(model, tok, task, split="test", n=None, mode="input", adapter=None, scaling=0.0,
                  description=None, shots=0, max_new_tokens=32, batch_size=32, return_predictions=False):
    """Mean score of one task. mode: input | description | icl (k = shots, drawn from train)."""
    examples = task.examples(split, n)
    desc = description or (task.eval_descriptions[0] if mode == "description" else None)
    if examples and examples[0].choices:  # multiple choice: log-likelihood, no generation
        scores = choice_loglik(model, tok, examples, adapter, scaling, mode if mode != "icl" else "input", desc, batch_size)
        preds = ["(log-likelihood)"] * len(examples)
    else:
        shot_ex = task.examples("train", shots) if mode == "icl" else ()
        prompts = [fmt.prompt_ids(tok, e.input, mode, desc, shot_ex) for e in examples]
        preds = answer(model, tok, prompts, adapter, scaling, max_new_tokens, batch_size)
        scores = [score(task.metric, p, e.answer, task.labels, e.alternatives) for p, e in zip(preds, examples)]
    mean = sum(scores) / max(1, len(scores))
    if return_predictions:
        return mean, [{"input": e.input, "gold": e.answer, "pred": p, "score": s} for e, p, s in zip(examples, preds, scores)]
    return mean


# -----------------------------------------------------------------------------
# What each method needs: adapters and hypernetworks, loaded once


@dataclass
class Setup:
    n: int | None = None  # test examples per task (None = all)
    shots: int = 3  # ICL examples
    n_desc: int = 3  # unseen descriptions per task for description / t2l (paper: 3)
    oracles: dict = field(default_factory=dict)  # task name -> (adapter, scaling)
    mt_lora: tuple | None = None  # (adapter, scaling)
    avg_lora: tuple | None = None  # (adapter, scaling): mean Delta W of the training tasks' oracles
    lora: tuple | None = None  # (adapter, scaling): one given adapter (--lora)
    t2l: list = field(default_factory=list)  # [(column name, HyperNetwork)]
    encoder: object = None  # t2l.TaskEncoder
    wrong: dict = field(default_factory=dict)  # task name -> (another task, its descriptions), for t2l_wrong


def average_lora(adapters: list[dict]) -> dict:
    """Mean of N LoRAs' Delta W, exactly: stacking the A's along the rank and the B's (divided by
    N) gives a rank N*r adapter with B_cat A_cat = (1/N) sum_i B_i A_i. (Averaging A and B
    separately would not average Delta W: the mean of products is not the product of means.)"""
    N = len(adapters)
    return {k: (torch.cat([a[k][0] for a in adapters], 0),  # (N*r, d_in)
                torch.cat([a[k][1] for a in adapters], 1) / N)  # (d_out, N*r)
            for k in adapters[0]}


def load_adapter(path, model) -> tuple:
    """A PEFT folder -> (adapter, scaling), its modules injected into `model` and checked against it."""
    ad, cfg = L.load_peft(path, device=next(model.parameters()).device)
    L.inject(model, cfg)
    L.check_adapter(model, ad, str(path))
    return ad, cfg.scaling


def load_oracles(folder, model, names) -> dict:
    """{task: (adapter, scaling)} for every <folder>/<task>/adapter that exists."""
    paths = {name: Path(folder) / name / "adapter" for name in names}
    return {name: load_adapter(p, model) for name, p in paths.items() if (p / "adapter_config.json").is_file()}


def random_description(task_name: str, like: str) -> str:
    """The random-string control: lower-case letters and spaces, as long as `like`, seeded by task."""
    rng = random.Random(_stable_seed("random-description", task_name))
    words, n = [], 0
    while n < len(like):
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        words.append(w)
        n += len(w) + 1
    return " ".join(words)[: max(1, len(like))]


def wrong_tasks(tasks, names) -> dict:
    """Each task -> the next task in the list from another family (any other task if none)."""
    out = {}
    for i, name in enumerate(names):
        others = names[i + 1:] + names[:i]
        diff = [o for o in others if tasks[o].family != tasks[name].family]
        out[name] = (diff or others or [name])[0]
    return out


def method_score(method: str, task, model, tok, s: Setup, t2l_index: int = 0):
    """Mean score of one method on one task, or None when the method does not apply (no oracle,
    no descriptions, no training examples for ICL)."""
    import t2l as H
    descs = task.eval_descriptions[: s.n_desc]
    if method == "base":
        return evaluate_task(model, tok, task, n=s.n)
    if method == "description":
        return _mean([evaluate_task(model, tok, task, n=s.n, mode="description", description=d) for d in descs])
    if method == "icl":
        return None if task.source == "benchmark" else evaluate_task(model, tok, task, n=s.n, mode="icl", shots=s.shots)
    if method in ("oracle", "mt_lora", "avg_lora", "lora"):
        ad = s.oracles.get(task.name) if method == "oracle" else getattr(s, method)
        return None if ad is None else evaluate_task(model, tok, task, n=s.n, adapter=ad[0], scaling=ad[1])
    if not s.t2l:
        return None
    net = s.t2l[t2l_index][1]
    scaling = net.cfg.lora_config().scaling
    if method == "t2l_wrong":
        descs = s.wrong[task.name][1] if task.name in s.wrong else []
    elif method == "t2l_random":
        descs = [random_description(task.name, d) for d in descs]
    if not descs:
        return None
    return _mean([evaluate_task(model, tok, task, n=s.n, adapter=H.adapter_for(net, s.encoder, d), scaling=scaling) for d in descs])


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def run_table(model, tok, tasks: dict, names: list, methods: list, s: Setup, desc="eval") -> dict:
    """-> {task: {column: score or None}}; a progress bar over (task, column)."""
    cols = columns(methods, s)
    s.wrong = {n: (o, tasks[o].eval_descriptions[: s.n_desc]) for n, o in wrong_tasks(tasks, names).items()}
    results = {}
    with tqdm(total=len(names) * len(cols), desc=desc) as bar:
        for name in names:
            for col, method, k in cols:
                results.setdefault(name, {})[col] = method_score(method, tasks[name], model, tok, s, k)
                bar.update()
    return results


def columns(methods, s: Setup):
    """[(column name, method, T2L checkpoint index)]: one `t2l` column per checkpoint."""
    cols = []
    for m in methods:
        if m == "t2l":
            cols += [(name, "t2l", k) for k, (name, _) in enumerate(s.t2l)] or [("t2l", "t2l", 0)]
        else:
            cols.append((m, m, 0))
    return cols


def markdown(results: dict, families: dict) -> str:
    """results {task: {column: score}}, families {task: family} -> a markdown table with a mean row."""
    cols = list(dict.fromkeys(c for row in results.values() for c in row))
    fmt_ = lambda v: "-" if v is None else f"{100 * v:.1f}"
    lines = ["| task | family | " + " | ".join(cols) + " |", "| --- | --- |" + " --- |" * len(cols)]
    for name, row in results.items():
        lines.append(f"| {name} | {families.get(name, '')} | " + " | ".join(fmt_(row.get(c)) for c in cols) + " |")
    means = means_of(results)
    lines.append("| **mean** | | " + " | ".join(f"**{fmt_(means[c])}**" for c in cols) + " |")
    return "\n".join(lines)


def means_of(results: dict) -> dict:
    cols = list(dict.fromkeys(c for row in results.values() for c in row))
    return {c: _mean([row.get(c) for row in results.values()]) for c in cols}


def bar_chart(results: dict, path: Path, title: str):
    """One bar per column (mean over tasks), one dot per task."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    means = means_of(results)
    cols = [c for c in means if means[c] is not None]
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 2, 4))
    ax.bar(range(len(cols)), [100 * means[c] for c in cols], color=["#8c8c8c" if not c.startswith("T2L") and c != "t2l" else "#2a7ab9" for c in cols])
    for i, c in enumerate(cols):
        vals = [100 * r[c] for r in results.values() if r.get(c) is not None]
        jit = [i + 0.25 * ((k * 0.618) % 1 - 0.5) for k in range(len(vals))]
        ax.scatter(jit, vals, s=6, color="black", alpha=0.35, zorder=3)
        ax.text(i, 100 * means[c] + 1.5, f"{100 * means[c]:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_ylabel("test score (%)"), ax.set_ylim(0, 105), ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -----------------------------------------------------------------------------
# CLI


def main(argv=None):
    p = argparse.ArgumentParser(description="Zero-shot table: base / description / ICL / LoRA baselines / T2L on unseen tasks.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", default="test", help="built-in task names (comma-separated) or a split: train | val | test")
    p.add_argument("--data", default="builtin", help="builtin | sni (the SNI split of train_sft.py --data sni)")
    p.add_argument("--benchmarks", default="", help="benchmarks instead of tasks: comma-separated names or 'all' (python -m data.benchmarks)")
    p.add_argument("--methods", default="base,description,icl,oracle,mt_lora,avg_lora,t2l,t2l_wrong,t2l_random",
                   help=f"comma-separated, of: {', '.join(METHODS)}; those whose inputs are not given are skipped")
    p.add_argument("--t2l", action="append", default=[], help="T2L checkpoint folder (repeatable: one column each)")
    p.add_argument("--oracles", default="runs/lora", help="folder of per-task LoRAs, <folder>/<task>/adapter")
    p.add_argument("--mt-lora", default="runs/mt_lora/adapter", help="multi-task LoRA adapter folder")
    p.add_argument("--lora", default=None, help="any PEFT adapter folder: column 'lora'")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2 from its wheel)")
    p.add_argument("--model", default=None, help="base model folder (default SmolLM2-135M-Instruct)")
    p.add_argument("--n", type=int, default=None, help="test examples per task (default: all)")
    p.add_argument("--shots", type=int, default=3, help="examples for icl")
    p.add_argument("--descriptions", type=int, default=3, help="unseen descriptions per task for description / t2l / controls (paper: 3)")
    p.add_argument("--out", default="runs/eval", help="folder for results.json and zero_shot.png")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--merge", default="", help="comma-separated --out folders of earlier runs: join them into --out, run nothing")
    a = p.parse_args(argv)
    if a.merge:
        return merge(a.merge.split(","), Path(a.out))
    import t2l as H
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        sys.exit(f"error: unknown method {bad[0]!r} (expected some of {', '.join(METHODS)})")
    try:
        model = M.load_pretrained(a.model, device=a.device, dtype=torch.bfloat16 if a.device == "cuda" else torch.float32)
        tok = M.load_tokenizer(a.model)
        tasks, names, train_names = pick_tasks(a)
        s = Setup(n=a.n, shots=a.shots, n_desc=a.descriptions)
        if "oracle" in methods:
            s.oracles = load_oracles(a.oracles, model, names)
        if "avg_lora" in methods:
            train = [n for n in train_names if n not in names]  # the library: training tasks only, never those scored
            lib = load_oracles(a.oracles, model, train)
            if lib:
                scal = {sc for _, sc in lib.values()}
                if len(scal) > 1:
                    sys.exit(f"error: the oracle LoRAs in {a.oracles} use different scalings {sorted(scal)}; cannot average")
                s.avg_lora = (average_lora([ad for ad, _ in lib.values()]), scal.pop())
                print(f"avg_lora: mean Delta W of {len(lib)} training-task oracle LoRAs", file=sys.stderr)
        for key, path in (("mt_lora", a.mt_lora), ("lora", a.lora)):
            if key in methods and path and (Path(path) / "adapter_config.json").is_file():
                setattr(s, key, load_adapter(path, model))
            elif key == "lora" and key in methods:
                sys.exit(f"error: --methods lora needs --lora PATH to a PEFT adapter folder (got {path})")
        if a.t2l:
            s.encoder = H.TaskEncoder(a.encoder, device=a.device)
        for path in a.t2l:
            net = H.load(path, a.device)
            H.check_fits(net.cfg, model.config, path)
            if net.cfg.d_task != s.encoder.dim:
                sys.exit(f"error: {path}: trained with a {net.cfg.d_task}-dim task encoder, the encoder given has {s.encoder.dim}")
            L.inject(model, net.cfg.lora_config())
            s.t2l.append((column_name(path, net), net))
    except (M.ModelError, L.LoraError, H.T2LError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    skipped = [m for m in methods if (m == "oracle" and not s.oracles) or (m in ("mt_lora", "avg_lora") and getattr(s, m) is None)
               or (m.startswith("t2l") and not s.t2l)]
    if skipped:
        print(f"skipping {', '.join(skipped)}: no adapters / checkpoint given or found", file=sys.stderr)
    methods = [m for m in methods if m not in skipped]
    results = run_table(model, tok, tasks, names, methods, s)
    families = {n: tasks[n].family for n in names}
    write_outputs(results, families, Path(a.out), f"zero-shot on {len(names)} unseen {'benchmarks' if a.benchmarks else 'tasks'}", {
        "n_examples": a.n, "methods": methods,
        "t2l": {name: str(path) for (name, _), path in zip(s.t2l, a.t2l)}, "wrong_description_from": {n: o for n, (o, _) in s.wrong.items()},
        "model": a.model or "SmolLM2-135M-Instruct", "device": a.device})


def write_outputs(results: dict, families: dict, out: Path, title: str, extra: dict, stem: str = "results"):
    """Print the table; write <stem>.json, table.md and zero_shot.png into `out`."""
    table = markdown(results, families)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({"tasks": results, "means": means_of(results), "families": families, **extra}, indent=2))
    (out / "table.md").write_text(table + "\n")
    bar_chart(results, out / "zero_shot.png", title)
    print(f"\nwrote {out / f'{stem}.json'}, {out / 'table.md'}, {out / 'zero_shot.png'}")


def merge(folders: list, out: Path):
    """Join eval runs split over processes or machines (by tasks, or by columns) into one table."""
    results, families, sources = {}, {}, []
    for f in folders:
        path = Path(f) / "results.json"
        if not path.is_file():
            sys.exit(f"error: {path}: not found (expected the --out folder of an eval.py run)")
        r = json.loads(path.read_text())
        for name, row in r["tasks"].items():
            results.setdefault(name, {}).update(row)
        families.update(r.get("families", {}))
        sources.append(str(f))
    write_outputs(results, families, out, f"zero-shot on {len(results)} unseen tasks", {"merged_from": sources})


def column_name(path, net) -> str:
    """'T2L-S' for an SFT checkpoint, 'T2L-S recon' for a reconstruction-trained one."""
    tc = Path(path) / "train_config.json"
    kind = json.loads(tc.read_text()).get("objective", "sft") if tc.is_file() else "sft"
    return f"T2L-{net.cfg.variant}" + ("" if kind == "sft" else f" {kind}")


def pick_tasks(a):
    """-> (tasks by name, names to evaluate, training-task names) for --tasks / --benchmarks / --data."""
    if a.benchmarks:
        from data.benchmarks import BENCHMARKS, load_benchmark
        names = [n for n in BENCHMARKS if BENCHMARKS[n][0].split("/")[0] not in ("codex_humaneval", "codex_mbpp")] \
            if a.benchmarks == "all" else a.benchmarks.split(",")
        code = [n for n in names if n in ("humaneval", "mbpp")]
        if code:
            raise ValueError(f"benchmark {code[0]} is scored by running code, which eval.py does not do")
        return {n: load_benchmark(n) for n in names}, names, splits(builtin_tasks())["train"]
    if a.data == "sni":
        from train_sft import TrainConfig, load_tasks
        tasks, sp = load_tasks(TrainConfig(data="sni"))
    else:
        tasks = builtin_tasks()
        sp = splits(tasks)
    names = sp[a.tasks] if a.tasks in sp else a.tasks.split(",")
    unknown = [n for n in names if n not in tasks]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r} (python -m data lists them)")
    return tasks, names, sp["train"]


if __name__ == "__main__":
    main()
