"""
eval.py: zero-shot evaluation of a base model, with or without adapters, on task test examples.

The paper (section 4) compares, on tasks never trained on: the base model given only the input,
the base model with the task description prepended, k-shot in-context learning, per-task
"oracle" LoRAs, a multi-task LoRA, and T2L. This file holds the shared machinery: batched
greedy generation under an adapter (shared or per-example), answer extraction and scoring.

    python eval.py --tasks list_sort_asc,add_7 --modes input,description,icl
    python eval.py --tasks list_sort_asc --lora runs/lora/list_sort_asc/adapter
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

import lora as L
import model as M
from data import format as fmt
from data.metrics import score
from data.tasks import builtin_tasks, splits


def clean_answer(text: str) -> str:
    """The model's answer is the first line it writes (the suite's answers are one line)."""
    text = text.strip()
    return text.split("\n")[0].strip() if text else ""


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
            out.append(clean_answer(tok.decode(row)))
    return out


def evaluate_task(model, tok, task, split="test", n=None, mode="input", adapter=None, scaling=0.0,
                  description=None, shots=0, max_new_tokens=32, batch_size=32, return_predictions=False):
    """Mean score of one task. mode: input | description | icl (k = shots, drawn from train)."""
    examples = task.examples(split, n)
    desc = description or (task.eval_descriptions[0] if mode in ("description",) else None)
    shot_ex = task.examples("train", shots) if mode == "icl" else ()
    prompts = [fmt.prompt_ids(tok, e.input, mode, desc, shot_ex) for e in examples]
    preds = answer(model, tok, prompts, adapter, scaling, max_new_tokens, batch_size)
    scores = [score(task.metric, p, e.answer, task.labels, e.alternatives) for p, e in zip(preds, examples)]
    mean = sum(scores) / max(1, len(scores))
    if return_predictions:
        return mean, [{"input": e.input, "gold": e.answer, "pred": p, "score": s} for e, p, s in zip(examples, preds, scores)]
    return mean


def main(argv=None):
    p = argparse.ArgumentParser(description="Score the base model (optionally with a LoRA) on built-in tasks.")
    p.add_argument("--tasks", default="val", help="comma-separated task names, or a split: train | val | test")
    p.add_argument("--modes", default="input", help="comma-separated: input, description, icl")
    p.add_argument("--lora", default=None, help="PEFT adapter folder applied in every mode")
    p.add_argument("--model", default=None, help="base model folder (default SmolLM2-135M-Instruct)")
    p.add_argument("--n", type=int, default=None, help="test examples per task (default all)")
    p.add_argument("--shots", type=int, default=3, help="examples for mode icl")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    a = p.parse_args(argv)
    try:
        model = M.load_pretrained(a.model, device=a.device, dtype=torch.bfloat16 if a.device == "cuda" else torch.float32)
        tok = M.load_tokenizer(a.model)
        adapter, scaling = None, 0.0
        if a.lora:
            adapter, lcfg = L.load_peft(a.lora, device=a.device)
            L.inject(model, lcfg)
            L.check_adapter(model, adapter, a.lora)
            scaling = lcfg.scaling
    except (M.ModelError, L.LoraError) as e:
        sys.exit(f"error: {e}")
    tasks = builtin_tasks()
    sp = splits(tasks)
    names = sp[a.tasks] if a.tasks in sp else a.tasks.split(",")
    unknown = [n for n in names if n not in tasks]
    if unknown:
        sys.exit(f"error: unknown task {unknown[0]!r} (python -m data lists them)")
    results = {}
    for mode in a.modes.split(","):
        for name in tqdm(names, desc=f"eval {mode}"):
            results.setdefault(name, {})[mode] = evaluate_task(model, tok, tasks[name], n=a.n, mode=mode, adapter=adapter,
                                                               scaling=scaling, shots=a.shots)
    modes = a.modes.split(",")
    print("| task | " + " | ".join(modes) + " |\n| --- |" + " --- |" * len(modes))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{100 * results[name][m]:.1f}" for m in modes) + " |")
    print("| **mean** | " + " | ".join(f"{100 * sum(results[n][m] for n in names) / len(names):.1f}" for m in modes) + " |")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
