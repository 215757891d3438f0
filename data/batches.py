"""
data/batches.py: what the training loop reads. Batch i is a function of (seed, i) only, so a
resumed run sees exactly the batches an uninterrupted run would; the validation set is encoded once.

    Batches          the global batch of step i: --batch-size examples (paper: 8 tasks x 1 example),
                     each with one of its task's training descriptions; with --siblings, rows that
                     share one input across tasks wanting different answers
    validation_set   unseen-task examples under their evaluation descriptions (T2L), or a task's own

`cfg` is train_sft.py's TrainConfig (seed, batch_size, prompt, max_len, siblings, descs_per_task,
val_examples).
"""
from __future__ import annotations

import random
import sys

from tqdm import tqdm

from common import DIST
from data import DataError
from data import format as fmt
from data.tasks import Example, stable_seed


class Batches:
    """Batch i is a function of (seed, i) only, so a resumed run sees exactly the batches an
    uninterrupted run would. A task's examples are formatted and tokenised the first time a batch
    draws it (all n_train of them, once); a task none of whose examples fits --max-len is left out
    up front, with a warning (examples are dropped, never cut)."""

    def __init__(self, tok, tasks, names, cfg, n_train=1000):
        self.tok, self.tasks, self.cfg = tok, tasks, cfg
        # Encoding all 1000 examples of every task up front took 18 s before the main job's first
        # step, and most of a 6-step test run, which draws a few dozen tasks. Only whether a task
        # can take part is decided here (usually its first example fits), so the lists a batch
        # draws from, and so every batch, are what encoding everything up front gave.
        self.raw, self.cache = {}, {}  # task -> its n_train training Examples; -> those that fit, encoded
        self.names = []
        for name in tqdm(names, desc="reading training tasks", leave=False, disable=len(names) < 20 or not DIST.main):
            self.raw[name] = tasks[name].examples("train", n_train)
            if any(self._encode([ex], tasks[name]) for ex in self.raw[name]):  # stops at the first that fits
                self.names.append(name)
        # --siblings: families whose training tasks can answer any input of the family (Task.solve):
        # a sibling batch asks several of them about one shared input
        self.families = {}
        if cfg.siblings:
            for n in self.names:
                if tasks[n].solve is not None:
                    self.families.setdefault(tasks[n].family, []).append(n)
            self.families = {f: ns for f, ns in self.families.items() if len(ns) >= 2}
        left_out = [n for n in names if n not in self.names]
        if not self.names:
            raise DataError(f"every training example of {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
                             f"is longer than --max-len {cfg.max_len}")
        if left_out and DIST.main:
            print(f"warning: {len(left_out)} training task(s) left out, no example fits --max-len {cfg.max_len}: "
                  f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}", file=sys.stderr)

    def _encode(self, examples: list, task) -> list:
        """Examples of `task` under this run's prompt -> the encoded ones that fit --max-len."""
        definition = task.definition if self.cfg.prompt == "definition" else None
        return fmt.encode_examples(self.tok, examples, self.cfg.max_len, definition=definition)[0]

    def encoded(self, name: str) -> list:
        """Task `name`'s training examples that fit, encoded on the first call."""
        if name not in self.cache:
            self.cache[name] = self._encode(self.raw[name], self.tasks[name])
        return self.cache[name]

    def get(self, i: int):
        """-> (input_ids, labels, attention_mask, task names, one random training description per row)."""
        examples, rows, descs = self.examples(i)
        return (*fmt.collate(examples, self.tok.pad_token_id), rows, descs)

    def examples(self, i: int):
        """-> (encoded examples [(input_ids, labels)], task names, one random training description each)."""
        rng = random.Random(stable_seed(self.cfg.seed, "batch", i))
        siblings, examples = self.sibling_rows(rng)
        k = self.cfg.batch_size - len(siblings)
        others = [n for n in self.names if n not in siblings]
        if len(others) >= k:  # different tasks in one batch (paper: 8 tasks x 1 example)
            rows = rng.sample(others, k)
        else:
            rows = [rng.choice(self.names) for _ in range(k)]
        examples += [rng.choice(self.encoded(n)) for n in rows]
        rows = siblings + rows
        drng = random.Random(stable_seed(self.cfg.seed, "desc", i))  # the reference draws one of up to 128 per task
        descs = [drng.choice(self.tasks[n].train_descriptions[: self.cfg.descs_per_task or None]) for n in rows]
        return examples, rows, descs

    def tensors(self, examples: list, device, one_row: bool = False):
        """The examples as the model reads them -> (input_ids, labels, attention_mask, segments) on
        `device`: padded to the longest (segments None), or with --pack end to end (attention_mask
        None; segments: the example index of every slot), in ONE row when the model attends example
        by example (one_row: Transformer.by_span), else in rows of --max-len tokens."""
        if self.cfg.pack:
            ids, labels, segments = fmt.pack(examples, self.tok.pad_token_id, None if one_row else self.cfg.max_len)
            return ids.to(device), labels.to(device), None, segments.to(device)
        ids, labels, mask = fmt.collate(examples, self.tok.pad_token_id)
        return ids.to(device), labels.to(device), mask.to(device), None

    def sibling_rows(self, rng) -> tuple[list, list]:
        """--siblings K: K tasks of one family (drawn with `rng`), all asked about ONE input, drawn
        from the first one's training examples; each row's answer is its own task's (Task.solve).
        Only the description tells these rows apart, so the loss pays the hypernetwork for reading
        it (RESULTS.md, "Whether the text matters"). -> (task names, encoded rows); ([], []) when off or
        when a row does not fit --max-len."""
        if not self.families:
            return [], []
        fam = rng.choice(sorted(self.families))
        names = rng.sample(self.families[fam], min(self.cfg.siblings, len(self.families[fam]), self.cfg.batch_size))
        x = rng.choice(self.raw[names[0]]).input
        enc = [e for n in names for e in self._encode([Example(x, self.tasks[n].solve(x))], self.tasks[n])]
        return (names, enc) if len(enc) == len(names) else ([], [])  # one did not fit


def validation_set(tok, tasks, names, cfg, device, split="val") -> list:
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
