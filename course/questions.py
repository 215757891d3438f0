"""
course/questions.py: the questions of assignment 6, answered from a results file.

The student trains T2L, runs the controls (t2l_random, t2l_wrong) and the steering test, then
answers questions about what THEIR run shows. Nothing is compared with fixed numbers: each answer
is computed here from the results file the answers name (a zero_shot.json of train_sft.py, or a
results.json of eval.py: {"tasks": {task: {column: score}}, "paired": [...], "steering": {...}}).
"""
from __future__ import annotations

import json
from pathlib import Path

TIE = 1e-12  # eval.paired's tie: the same score up to the rounding of a mean over descriptions
QUESTIONS = ("t2l_minus_random", "wins_ties_losses", "interval_above_zero", "stronger_control", "largest_gain_task",
             "steering_above_chance")  # their wording: course/assignments.json


class Missing(Exception):
    """The results file lacks what a question needs (a control column, the steering test)."""


def columns(r: dict) -> tuple[str, str, str]:
    """(the first T2L column, its random-string control, its wrong-description control), named as
    eval.columns names them: 't2l_random' with one checkpoint, 't2l_random T2L-S' with several."""
    cols = list(dict.fromkeys(c for row in r["tasks"].values() for c in row))
    t2l = next((c for c in cols if c.startswith("T2L") and not c.endswith("+ ICL")), None)
    if t2l is None:
        raise Missing("the results file has no T2L column (evaluate a T2L checkpoint)")
    control = lambda name: next((c for c in (name, f"{name} {t2l}") if c in cols), None)
    return t2l, control("t2l_random"), control("t2l_wrong")


def differences(r: dict, a: str, b: str) -> dict:
    """{task: score a - score b} over the tasks that scored both."""
    return {t: row[a] - row[b] for t, row in r["tasks"].items() if row.get(a) is not None and row.get(b) is not None}


def mean_score(r: dict, col: str) -> float:
    xs = [row[col] for row in r["tasks"].values() if row.get(col) is not None]
    return sum(xs) / len(xs)


def expected(r: dict) -> dict:
    """{question: the answer this results file gives, or a Missing saying what to run}."""
    try:
        t2l, rand, wrong = columns(r)
    except Missing as e:  # nothing to grade on
        return {q: e for q in QUESTIONS}
    out = {}
    d = differences(r, t2l, rand) if rand else {}
    if not d:
        no_rand = Missing(f"no task has both a {t2l} and a {rand} score" if rand else
                          "the results file has no t2l_random column: run the controls (t2l_random, t2l_wrong)")
        out.update({q: no_rand for q in ("t2l_minus_random", "wins_ties_losses", "interval_above_zero", "largest_gain_task")})
    else:
        out["t2l_minus_random"] = 100 * sum(d.values()) / len(d)
        out["wins_ties_losses"] = [sum(x > TIE for x in d.values()), sum(abs(x) <= TIE for x in d.values()),
                                   sum(x < -TIE for x in d.values())]
        pair = next((p for p in r.get("paired") or [] if p.get("t2l") == t2l and p.get("reference") == rand), None)
        out["interval_above_zero"] = (pair["ci95"][0] > 0 if pair else
                                      Missing("the results file has no paired interval (eval.py writes it under 'paired')"))
        best = max(d.values())
        out["largest_gain_task"] = {t for t, x in d.items() if x >= best - TIE}  # a tie: any of them
    if rand is None or wrong is None:
        out["stronger_control"] = Missing("the results file lacks a control column: run both t2l_random and t2l_wrong")
    else:
        m_rand, m_wrong = mean_score(r, rand), mean_score(r, wrong)
        out["stronger_control"] = ({"t2l_random"} if m_rand > m_wrong else {"t2l_wrong"} if m_wrong > m_rand
                                   else {"t2l_random", "t2l_wrong"})  # equal means: either is right
    steering = r.get("steering") or {}
    out["steering_above_chance"] = ({s: v["nearest"] > v["chance"] for s, v in steering.items()} if steering else Missing(
        "the results file has no steering test: run it (eval.py --steering, or train_sft.py's closing table)"))
    return out


def right(given, want) -> bool:
    """Is `given` the answer `want`? Numbers to 0.1; a set: any member; the rest exactly (JSON types)."""
    if isinstance(want, set):  # of names
        return isinstance(given, str) and given in want
    if isinstance(want, float):
        return isinstance(given, (int, float)) and not isinstance(given, bool) and abs(given - want) <= 0.1 + 1e-9
    return given == want and type(given) is type(want)


def grade(answers_path: Path, folder: Path) -> list[tuple[str, bool, str]]:
    """[(question, passed, why)] for the answers file; its "results" path is relative to `folder`
    (the project the student ran). Never says the right answer: it is the student's to find."""
    try:
        ans = json.loads(answers_path.read_text(encoding="utf-8"))
        if not isinstance(ans, dict) or not isinstance(ans.get("answers"), dict):
            raise ValueError("expected {\"results\": PATH, \"answers\": {question: answer}}")
        if not isinstance(ans.get("results"), str):
            raise ValueError("\"results\" must name your results file (a path relative to the project folder)")
        results_path = folder / ans["results"]
        r = json.loads(results_path.read_text(encoding="utf-8"))
        if not isinstance(r, dict) or not isinstance(r.get("tasks"), dict):
            raise ValueError(f"{results_path}: not a results file of train_sft.py or eval.py (no 'tasks')")
    except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
        return [("answers", False, f"{answers_path}: {e}")]
    try:
        want_all = expected(r)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        return [("answers", False, f"{results_path}: not a results file this check reads ({type(e).__name__}: {e})")]
    rows = []
    for q, want in want_all.items():
        given = ans["answers"].get(q)
        if isinstance(want, Missing):
            rows.append((f"question {q}", False, str(want)))
        elif given is None:
            rows.append((f"question {q}", False, "not answered"))
        else:
            ok = right(given, want)
            rows.append((f"question {q}", ok, "" if ok else f"not what {ans['results']} shows (you said {json.dumps(given)})"))
    return rows
