"""
data/metrics.py: the three task metrics.

  exact   normalised exact match (case, surrounding space and a trailing full stop ignored)
  label   the first label word the prediction starts with must be the gold label
          (so "Yes, it is." counts as "yes"; with labels "divisible"/"not divisible" the longest
          matching label wins)
  rougeL  ROUGE-L F1 on lower-cased word tokens (longest common subsequence), as SNI evaluation does

Before scoring, `extract_answer` takes the answer out of what a chat model writes: the first
non-empty line, without lead-ins such as "Answer:", "The answer is", markdown bold or quotes.
When the gold answer is a single number, a prediction holding exactly one number is compared by value, thousands
separators and all ("1,000" = "1000", "The result is 10." = "10").
"""
from __future__ import annotations

import re


def normalise(s: str) -> str:
    """Lower case, single spaces, no surrounding space."""
    return re.sub(r"\s+", " ", s.strip().lower())


LEAD_INS = re.compile(r"^(?:(?:the\s+)?(?:final\s+|correct\s+)?answer(?:\s+is)?\s*[:=]?|output\s*:|a\s*:|result\s*:)\s*", re.I)
NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")
NUMBERS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")


def extract_answer(text: str) -> str:
    """The answer in a chat model's reply: first non-empty line, lead-in and decoration removed."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    if not lines:
        return ""
    line = lines[0]
    if LEAD_INS.sub("", line.strip("*_ ")) == "" and len(lines) > 1:  # "Answer:" alone on its line
        line = lines[1]
    line = line.strip()
    for _ in range(2):  # "**Answer:** B" -> "Answer: B" -> "B"
        line = LEAD_INS.sub("", line.replace("**", "").strip()).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


def _number(s: str):
    """The one number in s as a float ("1,000" -> 1000.0); None when s holds none or several
    (a list "93, 12" must not pass for its first element)."""
    found = NUMBERS.findall(s)
    return float(found[0].replace(",", "")) if len(found) == 1 else None


def exact(pred: str, gold: str) -> float:
    """A trailing full stop the gold answer does not have is forgiven ("42." for "42"); a numeric
    gold answer is compared by value with the prediction's only number."""
    p, g = normalise(pred), normalise(gold)
    if p == g or (p.endswith(".") and not g.endswith(".") and p[:-1].rstrip() == g):
        return 1.0
    if NUMBER.match(g.replace(",", "")):
        n = _number(p)
        return float(n is not None and abs(n - float(g.replace(",", ""))) < 1e-9)
    return 0.0


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
