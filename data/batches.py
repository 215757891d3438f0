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
    uninterrupted run would. Every task's examples are formatted and tokenised once, up front; a
    task none of whose examples fits --max-len is left out, with a warning (examples are dropped,
    never cut)."""

    def __init__(self, tok, tasks, names, cfg, n_train=1000):
        self.tok, self.tasks, self.cfg, self.cache, self.dropped = tok, tasks, cfg, {}, 0
        for name in tqdm(names, desc="encoding training tasks", leave=False, disable=len(names) < 20 or not DIST.main):
            task = tasks[name]
            definition = task.definition if cfg.prompt == "definition" else None
            enc, dropped = fmt.encode_examples(tok, task.examples("train", n_train), cfg.max_len, definition=definition)
            self.dropped += dropped
            if enc:
                self.cache[name] = enc
        self.names = [n for n in names if n in self.cache]
        # --siblings: families whose training tasks can answer any input of the family (Task.solve),
        # with their raw examples: a sibling batch asks several of them about one shared input
        self.families = {}
        if cfg.siblings:
            for n in self.names:
                if tasks[n].solve is not None:
                    self.families.setdefault(tasks[n].family, []).append(n)
            self.families = {f: ns for f, ns in self.families.items() if len(ns) >= 2}
            self.raw = {n: tasks[n].examples("train", n_train) for ns in self.families.values() for n in ns}
        left_out = [n for n in names if n not in self.cache]
        if not self.names:
            raise DataError(f"every training example of {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
                             f"is longer than --max-len {cfg.max_len}")
        if left_out and DIST.main:
            print(f"warning: {len(left_out)} training task(s) left out, no example fits --max-len {cfg.max_len}: "
                  f"{', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}", file=sys.stderr)

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
        examples += [rng.choice(self.cache[n]) for n in rows]
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
        enc, dropped = [], 0
        for n in names:
            definition = self.tasks[n].definition if self.cfg.prompt == "definition" else None
            e, d = fmt.encode_examples(self.tok, [Example(x, self.tasks[n].solve(x))], self.cfg.max_len, definition=definition)
            enc, dropped = enc + e, dropped + d
        return ([], []) if dropped else (names, enc)


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
