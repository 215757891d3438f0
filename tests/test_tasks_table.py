"""data/tasks.py as a family table: the built-in suite is pinned byte for byte by a golden hash,
every task carries a definition of its own, and the file stays readable (short lines, short
functions). Pure Python, no torch: runs in a second on a CPU."""
import ast
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # so the file also runs without tests/conftest.py (--noconftest)

from data.tasks import builtin_tasks, splits  # noqa: E402

TASKS_PY = ROOT / "data" / "tasks.py"

# SHA-256 of the built-in suite for the default seed (0), measured before data/tasks.py was
# rewritten as a family table; see suite_hash() for what it covers (the definitions are not in
# it). If the suite is changed on purpose (a new task, a new paraphrase, another generator),
# regenerate it with
#   python -c "import tests.test_tasks_table as t; print(t.suite_hash(0))"
# and say in the commit why every model trained on the old suite is now on a different one.
GOLDEN_SUITE_SHA256 = "33d26e62f6e5b62dd588134b26e74e0a74036e2b5d9844bd8a0b8ddc244934e2"


def suite_hash(seed: int = 0) -> str:
    """SHA-256 over: the task names in dict order; per task its name, family, metric, labels,
    train and eval descriptions, the first 50 train examples and all val and test examples
    (every Example field); and splits() of the suite."""
    h = hashlib.sha256()

    def put(x):
        h.update((repr(x) + "\n").encode())

    tasks = builtin_tasks(seed)
    put(list(tasks))
    for name, t in tasks.items():
        put((name, t.name, t.family, t.metric, tuple(t.labels), list(t.train_descriptions),
             list(t.eval_descriptions)))
        for split, n in (("train", 50), ("val", None), ("test", None)):
            for e in t.examples(split, n):
                put((split, e.input, e.answer, e.choices, e.contexts, e.alternatives))
    put(splits(tasks, seed))
    return h.hexdigest()


def test_suite_is_byte_identical_to_golden():
    assert suite_hash(0) == GOLDEN_SUITE_SHA256
    assert suite_hash(1) != GOLDEN_SUITE_SHA256  # the hash does see the seed


def test_every_task_has_its_own_definition():
    tasks = builtin_tasks()
    assert len(tasks) == 207
    for name, t in tasks.items():
        d = t.definition
        assert isinstance(d, str) and d.strip(), name
        assert d.endswith("."), (name, d)
        assert d[0].isupper(), (name, d)
        assert d not in t.train_descriptions, (name, d)
        assert d not in t.eval_descriptions, (name, d)


def test_no_line_over_100_characters():
    long = [(i, len(line)) for i, line in enumerate(TASKS_PY.read_text().splitlines(), 1)
            if len(line) > 100]
    assert long == [], f"data/tasks.py lines over 100 characters (line, length): {long}"


def test_no_function_over_60_lines():
    tree = ast.parse(TASKS_PY.read_text())
    funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert len(funcs) > 20  # the walk does find the file's functions (methods and nested ones too)
    long = [(f.name, f.lineno, f.end_lineno - f.lineno + 1) for f in funcs
            if f.end_lineno - f.lineno + 1 > 60]
    assert long == [], f"data/tasks.py functions over 60 lines (name, line, length): {long}"
