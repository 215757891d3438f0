"""
data/sni.py: Super-Natural-Instructions tasks from local JSON files, as `Task`s.

The original SNI schema (github.com/allenai/natural-instructions): each task file holds a
"Definition" (a string, or a one-element list in some versions), "Positive Examples" and
"Instances" [{"input": str, "output": [str, ...]}]. An optional descriptions.json maps task
name -> list of generated descriptions (the paper trains on such descriptions, not on the raw
definition). data/sni120/ holds 120 real tasks in this schema (copied with its README, sources
and licence notes), so a fresh clone has them; data/collection.py reads it as `--data sni`.

Each instance becomes Example(input, answer=", ".join(outputs), several=len(outputs) > 1), the
reference's target (utils/preprocessing.py); data/format.py builds the user turn from the
task's Definition as the reference does.

Instances are split by position into train / val / test (the files hold the first N instances of
each upstream task, so this is deterministic). The metric is ROUGE-L for free-text outputs and
label accuracy when a task has at most 12 distinct outputs (a classification task).
"""
from __future__ import annotations

import json
from pathlib import Path

from data import DataError
from data.tasks import Example, Task

DEFAULT_SNI_DIR = Path(__file__).resolve().parent / "sni120"


class TaskFileError(DataError):
    """A malformed task file; the message is one line naming the file and the problem."""


def _definition(d, path):
    """SNI's Definition, verbatim (the reference copies it untouched into the user turn)."""
    if isinstance(d, list):
        d = d[0] if d else None
    if not isinstance(d, str) or not d.strip():
        raise TaskFileError(f"{path}: 'Definition' must be a non-empty string or a list holding one")
    return d


def load_sni_task(path, descriptions: list | None = None, n_val: int = 5, frac_test: float = 0.2) -> Task:
    path = Path(path)
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise TaskFileError(f"{path}: expected a JSON object with 'Definition' and 'Instances'")
    if "Definition" not in raw:
        raise TaskFileError(f"{path}: missing 'Definition'")
    definition = _definition(raw["Definition"], path)
    inst = raw.get("Instances")
    if not isinstance(inst, list) or not inst:
        raise TaskFileError(f"{path}: 'Instances' must be a non-empty list")
    examples = []
    for i, x in enumerate(inst):
        if not isinstance(x, dict) or not isinstance(x.get("input"), str):
            raise TaskFileError(f"{path}: instance {i} has no string 'input'")
        if not x["input"].strip():  # nothing to answer: it would be trained on and scored as if it were a question
            raise TaskFileError(f"{path}: instance {i} has an empty 'input'")
        out = x.get("output")
        if isinstance(out, str):
            out = [out]
        if not isinstance(out, list) or not out or not all(isinstance(o, str) and o.strip() for o in out):
            raise TaskFileError(f"{path}: instance {i} 'output' must be a non-empty list of non-empty strings")
        # The reference's target: every output, joined with ", " (and the prompt then asks for a list).
        examples.append(Example(x["input"], ", ".join(out), several=len(out) > 1))
    if len(examples) < 3:
        raise TaskFileError(f"{path}: {len(examples)} instances, need at least 3 for train/val/test")
    n_test = max(1, int(len(examples) * frac_test))
    n_val = min(n_val, max(1, (len(examples) - n_test) // 4))
    test, val = examples[-n_test:], examples[-n_test - n_val:-n_test]
    held = {e.input for e in test + val}  # SNI files repeat some inputs: keep them out of train
    fixed = {"test": test, "val": val, "train": [e for e in examples[:-n_test - n_val] if e.input not in held]}
    outputs = {e.answer for e in examples}
    metric = "label" if len(outputs) <= 12 and len(examples) >= 2 * len(outputs) else "rougeL"
    descs = list(descriptions) if descriptions else [definition]
    # The last 3 descriptions are kept for evaluation (as the built-in suite does), when there are enough.
    train_d, eval_d = (descs[:-3], descs[-3:]) if len(descs) >= 6 else (descs, descs[:3])
    return Task(name=path.stem, family="sni", metric=metric, train_descriptions=train_d, eval_descriptions=eval_d,
                definition=definition,
                labels=tuple(sorted(outputs)) if metric == "label" else (), fixed=fixed, source="sni")


def load_sni(folder=DEFAULT_SNI_DIR) -> dict[str, Task]:
    """Every tasks/*.json under `folder` (or `folder` itself), with folder/descriptions.json if present."""
    folder = Path(folder)
    task_dir = folder / "tasks" if (folder / "tasks").is_dir() else folder
    files = sorted(task_dir.glob("*.json"))
    files = [f for f in files if f.name not in ("descriptions.json", "manifest.json")]
    if not files:
        raise TaskFileError(f"{task_dir}: no task .json files found (expected SNI task files)")
    descs = {}
    dpath = folder / "descriptions.json"
    if dpath.is_file():
        descs = read_json(dpath)
        if not isinstance(descs, dict):
            raise TaskFileError(f"{dpath}: expected an object mapping task name -> list of descriptions")
        bad = [k for k, v in descs.items() if not isinstance(v, list) or not all(isinstance(d, str) and d.strip() for d in v)]
        if bad:
            raise TaskFileError(f"{dpath}: descriptions of {bad[0]!r} must be a list of non-empty strings")
        unknown = sorted(set(descs) - {f.stem for f in files})
        if unknown:  # a misspelt name would leave its task on its definition alone, without a word
            raise TaskFileError(f"{dpath}: {unknown[0]!r} is not a task of {task_dir} ({len(unknown)} unknown name(s))")
    return {f.stem: load_sni_task(f, descs.get(f.stem)) for f in files}


def read_json(path: Path):
    """Parse one JSON file; bad bytes or bad JSON -> one TaskFileError line naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise TaskFileError(f"{path}: not valid JSON ({getattr(e, 'msg', e)}{where})") from None
