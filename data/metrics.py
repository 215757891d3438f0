"""
data/metrics.py: the three task metrics.

  exact   normalised exact match (case, surrounding space and a trailing full stop ignored)
  label   the first label word the prediction starts with must be the gold label
          (so "Yes, it is." counts as "yes"; with labels "divisible"/"not divisible" the longest
          matching label wins)
  rougeL  ROUGE-L F1 on lower-cased word tokens (longest common subsequence), as SNI evaluation does
"""
from __future__ import annotations

import re


def normalise(s: str) -> str:
    """Lower case, single spaces, no surrounding space."""
    return re.sub(r"\s+", " ", s.strip().lower())


def exact(pred: str, gold: str) -> float:
    """A trailing full stop the gold answer does not have is forgiven ("42." for "42")."""
    p, g = normalise(pred), normalise(gold)
    return float(p == g or (p.endswith(".") and not g.endswith(".") and p[:-1].rstrip() == g))


def label(pred: str, gold: str, labels=()) -> float:
    p = normalise(pred).strip(" \"'`*")
    cands = sorted(labels or (gold,), key=len, reverse=True)  # "not divisible" before "divisible"
    for lab in cands:
        l = normalise(lab)
        if p == l or p.startswith(l + " ") or p.startswith(l + ",") or p.startswith(l + "."):
            return float(l == normalise(gold))
    return 0.0


def _lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, gold: str) -> float:
    p, g = re.findall(r"\w+", pred.lower()), re.findall(r"\w+", gold.lower())
    if not p or not g:
        return float(p == g)
    l = _lcs(p, g)
    if l == 0:
        return 0.0
    prec, rec = l / len(p), l / len(g)
    return 2 * prec * rec / (prec + rec)


def score(metric: str, pred: str, gold: str, labels=(), alternatives=()) -> float:
    """Score one prediction in [0, 1]; with several gold answers (SNI), the best one counts."""
    golds = [gold, *alternatives]
    if metric == "exact":
        return max(exact(pred, g) for g in golds)
    if metric == "label":
        return max(label(pred, g, labels) for g in golds)
    if metric == "rougeL":
        return max(rouge_l(pred, g) for g in golds)
    raise ValueError(f"unknown metric {metric!r} (expected exact, label or rougeL)")
