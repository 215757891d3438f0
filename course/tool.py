"""
course/tool.py: assignments made from the project's own source, graded by its own tests.

An assignment is code that really runs in this project, marked in place by two comment lines at
the indentation of the code between them (several regions may share a number):

    # assignment N: begin
    ...
    # assignment N: end

`make` copies the project with region N replaced by a stub that raises NotImplementedError with a
hint; `check` runs the tests that grade it. What each assignment is (what to read, its grading
tests, its hints) is data: course/assignments.json. Because the regions live in the real code, the
course cannot drift from it: every check must pass on the project itself (tests/test_course.py).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import common
from course import questions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the project the assignments are made from
MARKER = re.compile(r"^(?P<indent>[ \t]*)# assignment (?P<n>\d+): (?P<kind>begin|end)[ \t]*$")
# Never in a copy: the solution answers. A folder `make` wrote may also hold what running its tests leaves.
SOLUTIONS = "course/solutions/"
REGENERATED = ("__pycache__", ".pytest_cache", ".benchmarks")  # pytest-benchmark makes the last


class CourseError(common.UserError):
    """A bad assignment number, a misplaced marker, a folder `make` must not write: one line."""


def assignments() -> dict:
    """{n: the assignment's entry in course/assignments.json}."""
    return {a["n"]: a for a in json.loads((HERE / "assignments.json").read_text(encoding="utf-8"))}


def get(n) -> dict:
    """The assignment numbered n (an int or the text of one)."""
    table = assignments()
    try:
        return table[int(n)]
    except (ValueError, KeyError):
        raise CourseError(f"no assignment {n}; the assignments are {', '.join(map(str, table))}") from None


# -----------------------------------------------------------------------------
# Regions


def regions(text: str, path: str) -> list:
    """[(n, first line, last line, indent)] of every marked region of a file: the 0-based line
    numbers of its begin and end markers. A marker out of place is an error, never skipped."""
    out, open_ = [], None
    for i, line in enumerate(text.splitlines()):
        m = MARKER.match(line)
        if not m:
            continue
        n = int(m["n"])
        if m["kind"] == "begin":
            if open_:
                raise CourseError(f"{path}:{i + 1}: assignment {n} begins inside assignment {open_[0]} (line {open_[1] + 1})")
            open_ = (n, i, m["indent"])
        elif open_ is None or (open_[0], open_[2]) != (n, m["indent"]):
            raise CourseError(f"{path}:{i + 1}: 'assignment {n}: end' has no begin of the same number and indentation")
        else:
            out.append((n, open_[1], i, open_[2]))
            open_ = None
    if open_:
        raise CourseError(f"{path}:{open_[1] + 1}: assignment {open_[0]} begins and never ends")
    return out


def stub(a: dict, hint: str, indent: str) -> list:
    """The lines that replace a region: raise NotImplementedError("assignment N: <hint>"), the
    hint split into string literals that Python joins, so that the source reads as a paragraph."""
    width = max(40, 100 - len(indent) - 6)
    parts = textwrap.wrap(f"assignment {a['n']} ({a['where']}): {hint}", width, break_on_hyphens=False)
    parts = [p + " " for p in parts[:-1]] + parts[-1:]  # wrap drops the spaces between the pieces
    inner = indent + "    "
    return ([f"{indent}raise NotImplementedError(\n"] + [f"{inner}{json.dumps(p)}\n" for p in parts[:-1]]
            + [f"{inner}{json.dumps(parts[-1])})\n"])


def project_files(root: Path) -> list:
    """The files of a copy, relative to root: what git tracks, and new files it does not ignore, as
    they are now in the working tree (so never checkpoints/ or runs/), minus the solutions."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise CourseError(f"{root}: make copies the files git tracks there, and it is not a git checkout") from None
    names = sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n})
    return [n for n in names if (root / n).is_file() and not n.startswith(SOLUTIONS)]


def blanked(a: dict, root: Path, files: list) -> dict:
    """{file: its text with every region of assignment a replaced by a stub}, checked against the
    hints: one hint per region, in file then line order."""
    found = []  # (file, text, region)
    for f in files:
        try:
            text = (root / f).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary file holds no region
        if "# assignment" in text:
            found += [(f, text, r) for r in regions(text, f) if r[0] == a["n"]]
    if len(found) != len(a["hints"]):
        raise CourseError(f"assignment {a['n']}: {len(found)} marked regions in the source, but course/assignments.json "
                          f"has {len(a['hints'])} hints for it")
    lines = {f: text.splitlines(keepends=True) for f, text, _ in found}
    for (f, _, (_, first, last, indent)), hint in reversed(list(zip(found, a["hints"]))):  # bottom up: line numbers hold
        lines[f][first + 1:last] = stub(a, hint, indent)
    return {f: "".join(ls) for f, ls in lines.items()}


# -----------------------------------------------------------------------------
# make and check


def make(n, out) -> Path:
    """Write a copy of the project into `out` with assignment n's regions blanked (and, for an
    assignment with questions, an answers template in place of the solution). `out` may be new,
    empty, or a copy this command wrote before (common.check_output); it is swapped in whole."""
    a = get(n)
    files = project_files(ROOT)
    texts = blanked(a, ROOT, files)
    owned = tuple(sorted({f.split("/")[0] for f in files})) + REGENERATED

    def write(tmp: Path):
        for f in files:
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            if f in texts:
                (tmp / f).write_text(texts[f], encoding="utf-8")
            else:
                shutil.copy2(ROOT / f, tmp / f)
        if "questions" in a:
            template = {"results": None, "answers": {q: None for q in a["questions"]},
                        "about": {"results": a["results_hint"], **a["questions"]}}
            (tmp / a["answers"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp / a["answers"]).write_text(json.dumps(template, indent=2) + "\n", encoding="utf-8")

    return common.write_folder_atomically(out, write, owned, inputs=[ROOT])


def run_tests(tests: list, folder: Path) -> list:
    """[(test, passed, why)]: pytest on the node ids, in `folder` (its own code and tests), each
    outcome read from the file course/pytest_report.py writes. A node id that ran no test
    (renamed, or its file failed to import) is a failure too."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        report.touch()
        # the grader's own plugin, under a name of its own: the folder graded may hold any course/ or none
        shutil.copy(HERE / "pytest_report.py", Path(tmp) / "course_pytest_report.py")
        env = {**os.environ, "COURSE_REPORT": str(report),
               "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "pytest", "-q", "--tb=short", "--no-header", "-p", "no:cacheprovider",
               "-p", "course_pytest_report", "--rootdir", str(folder), *tests]  # node ids relative to the folder
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        ran = [(r["test"], r["passed"], r["why"]) for r in map(json.loads, report.read_text(encoding="utf-8").splitlines())]
    covers = lambda t, name: name == t or name.startswith((t + "[", t + "::"))
    rows = [row for row in ran if any(covers(t, row[0]) for t in tests)]
    for t in tests:
        if not any(covers(t, name) for name, _, _ in rows):
            why = next((w for name, _, w in ran if t.startswith(name)), "")  # its file did not import
            last = (proc.stdout.strip().splitlines() or proc.stderr.strip().splitlines() or [""])[-1]
            rows.append((t, False, why or f"no test ran ({last[:200]})"))
    return rows


def answers_path(a: dict, folder: Path, given=None) -> Path:
    """The answers a check grades: --answers, else the student's (course/answers/N.json, which make
    writes), else the project's own solution (so that the project itself passes)."""
    if given:
        return Path(given)
    mine = folder / a["answers"]
    return mine if mine.exists() else folder / a["solution"]


def check(n, folder=None, answers=None) -> list:
    """[(test or question, passed, why)] for assignment n, in `folder` (default: this project)."""
    a = get(n)
    folder = Path(folder) if folder else ROOT
    if not folder.is_dir():
        raise CourseError(f"{folder}: not a folder (give the copy that `python -m course make {a['n']}` wrote)")
    rows = run_tests(a["tests"], folder)
    if "questions" in a:
        rows += questions.grade(answers_path(a, folder, answers), folder)
    return rows


def describe(a: dict) -> str:
    """One line of `list`: the number first."""
    return f"{a['n']}  {a['title']} ({a['where']}); read: {a['read']}; check: {a['minutes']:g} min on 2 CPU cores"

