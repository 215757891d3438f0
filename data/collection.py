"""
data/collection.py: one entry point for every task collection, and its split by task.

    load_collection("builtin")        the offline built-in suite (data/tasks.py)
    load_collection("sni")            the 120 Super-Natural-Instructions tasks shipped in data/sni120/
    load_collection("path/to/folder") any folder in SNI's own layout

T2L is trained on some tasks and judged on tasks it never saw (paper section 4), so a collection
is split by *task*: "train" (the hypernetwork sees them), "val" (unseen, to choose checkpoints)
and "test" (unseen, for the final table).

An SNI-format folder holds `tasks/*.json` (or the *.json files directly), optionally
`descriptions.json` ({task: [descriptions]}), and optionally the allenai/natural-instructions
split files `splits/default/train_tasks.txt` and `test_tasks.txt` (one task name per line). With
split files, their test tasks are the unseen test split and a seeded tenth of their train tasks
the validation split; without them, a seeded shuffle gives 80% / 10% / 10%.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from data import DataError
from data.sni import DEFAULT_SNI_DIR, load_sni
from data.tasks import SEED, Task, builtin_tasks, splits, stable_seed


@dataclass
class Collection:
    name: str  # "builtin", "sni", or the folder it was read from
    tasks: dict  # task name -> Task
    splits: dict  # "train" | "val" | "test" -> sorted task names, disjoint

    def only(self, families: list[str]) -> "Collection":
        """The same collection with every split cut to these task families (all tasks stay
        readable, the splits say what is trained on and scored); an unknown family is an error."""
        known = sorted({t.family for t in self.tasks.values()})
        unknown = [f for f in families if f not in known]
        if unknown:
            raise DataError(f"unknown task family {unknown[0]!r} in {self.name} (families: {', '.join(known)})")
        keep = set(families)
        return Collection(self.name, self.tasks, {k: [n for n in v if self.tasks[n].family in keep] for k, v in self.splits.items()})

    def training_tasks(self, k: int = 0, seed: int = SEED) -> list[str]:
        """The training split, or its first k tasks after a seeded shuffle (k 0: all). The paper's
        ablation of the number of training tasks (--n-train-tasks): one shuffle per seed, so the
        12-task set lies inside the 24-task one."""
        names = list(self.splits["train"])
        if not k:
            return names
        if k > len(names):
            raise DataError(f"--n-train-tasks {k}: --data {self.name} has only {len(names)} training tasks")
        random.Random(stable_seed(seed, "n-train-tasks")).shuffle(names)
        return sorted(names[:k])


def load_collection(name_or_path: str = "builtin", seed: int = SEED) -> Collection:
    """-> the collection's tasks and their train / unseen-validation / unseen-test split."""
    if name_or_path == "builtin":
        tasks = builtin_tasks(seed)
        return Collection("builtin", tasks, splits(tasks, seed))
    folder = DEFAULT_SNI_DIR if name_or_path == "sni" else Path(name_or_path)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected --data builtin, sni, or a folder of SNI task files)")
    tasks = load_sni(folder)
    return Collection(name_or_path, tasks, sni_splits(folder, tasks, seed))


def sni_splits(folder: Path, tasks: dict[str, Task], seed: int) -> dict[str, list[str]]:
    """The split of an SNI-format folder: its own split files when it has them, else seeded."""
    split_dir = folder / "splits" / "default"
    if (split_dir / "test_tasks.txt").is_file():
        listed = {k: read_names(split_dir / f"{k}_tasks.txt") for k in ("train", "test")
                  if (split_dir / f"{k}_tasks.txt").is_file()}
        for k, names in listed.items():  # a name with no task file would be dropped from its split without a word
            unknown = [n for n in names if n not in tasks]
            if unknown:
                raise DataError(f"{split_dir / f'{k}_tasks.txt'}: {unknown[0]!r} is not a task of {folder} "
                                f"({len(unknown)} unknown name(s); remove them or add their task files)")
        test = [n for n in listed["test"] if n in tasks]
        train = [n for n in listed.get("train", sorted(set(tasks) - set(test))) if n in tasks and n not in test]
        rng = random.Random(seed)
        rng.shuffle(train)
        k = max(1, len(train) // 10) if len(train) > 1 else 0
        out = {"val": sorted(train[:k]), "test": sorted(test), "train": sorted(train[k:])}
    else:
        names = sorted(tasks)
        random.Random(seed).shuffle(names)
        k = max(1, len(names) // 10)
        out = {"val": sorted(names[:k]), "test": sorted(names[k:2 * k]), "train": sorted(names[2 * k:])}
    return out  # a split may be empty for a tiny folder; whoever needs it says so


def read_names(path: Path) -> list[str]:
    """One task name per line; blank lines and # comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file of task names") from None
    return [s.strip() for s in lines if s.strip() and not s.startswith("#")]


def resolve_names(coll: Collection, spec: str) -> list[str]:
    """--tasks value -> task names: 'all', or comma-separated splits (train | val | test) and task
    names, in that order without repeats ("val,test": both unseen splits)."""
    if spec == "all":
        return sorted(coll.tasks)
    parts = [n.strip() for n in spec.split(",") if n.strip()]
    names = list(dict.fromkeys(n for p in parts for n in (coll.splits[p] if p in coll.splits else [p])))
    unknown = [n for n in names if n not in coll.tasks]
    if unknown or not names:
        hint = "python -m data lists them" if coll.name == "builtin" else f"see {coll.name}"
        raise DataError(f"unknown task {unknown[0] if unknown else spec!r} in collection {coll.name} ({hint})")
    return names
