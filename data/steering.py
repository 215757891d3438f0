"""
data/steering.py: the steering test's groups. Does the description decide what the adapter does?

A zero-shot score cannot tell. An adapter that only teaches the answer format (one number, a
list, a word) scores on many tasks whatever text wrote it, and the random-string control shows
that (RESULTS.md, "Whether the text matters"). The steering test asks the sharper question: take a
group of tasks that read the SAME input but want DIFFERENT answers (a list: sort it ascending,
descending, reverse it, its max, its min, ...), write one adapter from each member's
description, run every adapter on the same inputs, and check which member's answer each adapter
produces. Accuracy is the share of (adapter, input) pairs whose answer is the described member's.

Every input is kept only if all members of its group answer it differently (after
`data.metrics.normalise`), so for each input exactly one member's answer is right: a hypernetwork
that ignores the text writes one adapter for every member described, whose one answer per input
is the right one for at most one of them: it scores at most 1 / (members described). That is
chance. One that reads the text can reach 1.

Two settings (the split decides which members are which, so they follow --seed):
  seen     the group's training tasks, each described by its unseen evaluation descriptions;
           chance 1 / (training members)
  unseen   the group's tasks never trained on (validation and test split), described by their
           evaluation descriptions, each answer classified among ALL members of the group (the
           trained ones too); chance 1 / (unseen members): a text-blind adapter that always does
           one unseen member's task scores exactly that, so the larger pool of answers to
           classify among does not lower the bar

The groups are data: names of built-in tasks whose generators can answer any input of the
family's format (`Task.solve`, data/tasks.py); eval.steering scores them, tests check that each
member's `solve` reproduces its own test examples.
"""
from __future__ import annotations

import difflib
import random
from dataclasses import dataclass

from data.metrics import normalise
from data.tasks import NOUNS, stable_seed


def _list_input(rng):  # 4-6 distinct numbers in 0..99, as list_pick / list_order draw (distinct: fewer ties)
    return ", ".join(map(str, rng.sample(range(100), rng.randint(4, 6))))


def _number_input(rng):  # from 100 up: n + k, n - k and n * k never collide
    return str(rng.randint(100, 1999))


def _words_input(rng):  # 3-5 distinct nouns, as word_ops draws
    return " ".join(rng.sample(NOUNS, rng.randint(3, 5)))


# group -> (input generator, members). Members were chosen so that with the default seed each
# group has 6 training tasks and 4-5 tasks never trained on; words_upper / words_title are left out
# because the matching (like the exact metric) ignores case.
GROUPS = {
    "list": (_list_input, ["list_sort_asc", "list_sort_desc", "list_reverse", "list_max", "list_min", "list_second",
                           "list_first", "list_last", "list_rotate", "list_double", "list_drop_last"]),
    "number": (_number_input, ["add_10", "add_100", "subtract_1", "subtract_10", "times_2", "times_5",
                               "add_1", "subtract_20", "times_10", "times_3"]),
    "words": (_words_input, ["words_first_word", "words_last_word", "words_sort_words", "words_reverse_words",
                             "words_camel", "words_kebab", "words_longest_word", "words_shortest_word", "words_snake",
                             "words_drop_first_word", "words_acronym"]),
}
SETTINGS = ("seen", "unseen")


@dataclass
class Case:
    """One group in one setting: what to write adapters for, and what each member would answer."""
    group: str
    members: list  # the tasks an answer is classified among
    described: list  # the tasks whose descriptions write adapters (subset of members; chance = 1 / len(described))
    inputs: list  # shared inputs, each answered differently by every member
    answers: list  # answers[i][member]: that member's answer to inputs[i]

    @property
    def chance(self) -> float:
        """What a text-blind hypernetwork can score at best: its one answer per input is the
        described member's for at most one of the len(described) adapters."""
        return 1.0 / len(self.described)


def cases(tasks: dict, splits: dict, setting: str, n_inputs: int = 8, seed: int = 0, groups=None) -> list[Case]:
    """The steering cases of one setting: one Case per group that has at least two members to tell
    apart and a member to describe. Inputs are drawn from a seeded stream and kept only when every
    member's answer differs from every other's."""
    if setting not in SETTINGS:
        raise ValueError(f"steering setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    train = set(splits["train"])
    out = []
    for group in (groups or GROUPS):
        make_input, names = GROUPS[group]
        names = [n for n in names if n in tasks and tasks[n].solve is not None]
        seen = [n for n in names if n in train]
        members = seen if setting == "seen" else names
        described = seen if setting == "seen" else [n for n in names if n not in train]
        if len(members) < 2 or not described:
            continue
        rng = random.Random(stable_seed(seed, "steering", group))
        inputs, answers, tried = [], [], set()
        for _ in range(200 * n_inputs):
            x = make_input(rng)
            if x in tried:
                continue
            tried.add(x)
            a = {m: tasks[m].solve(x) for m in members}
            if len({normalise(v) for v in a.values()}) == len(members):  # every member answers differently
                inputs.append(x)
                answers.append(a)
                if len(inputs) == n_inputs:
                    break
        if inputs:
            out.append(Case(group, members, described, inputs, answers))
    return out


def which_member(pred: str, answers: dict) -> str | None:
    """The member whose answer `pred` is (normalised as the exact metric does), or None."""
    p = normalise(pred)
    return next((m for m, a in answers.items() if normalise(a) == p), None)


def nearest_member(pred: str, answers: dict, floor: float = 0.5) -> str | None:
    """The member whose answer `pred` is closest to (difflib's character similarity on normalised
    text), or None when the best is below `floor` or shared by two members. This asks which task
    the adapter TRIED to do ("97, 84, 50" after "sort descending" of 97, 84, 80, 50 is a descending
    sort with a slip), where `which_member` also asks that it did it right. Either way a text-blind
    hypernetwork stays at or below chance: its one reply per input is classified once."""
    p = normalise(pred)
    sims = sorted(((difflib.SequenceMatcher(None, p, normalise(a)).ratio(), m) for m, a in answers.items()), reverse=True)
    if sims[0][0] < floor or (len(sims) > 1 and sims[1][0] == sims[0][0]):
        return None
    return sims[0][1]
