"""data/code_exec.py: the sandbox that runs HumanEval / MBPP programs. The reference solutions all
pass; wrong, hanging, exiting, forking, escaping and memory-hungry programs each score 0, within
the time limit, without stopping the run or touching anything outside their directory."""
import time
import uuid
from pathlib import Path

import pytest

from data import benchmarks as B
from data.code_exec import run_program, run_programs

FETCHED = (B.BENCH_DIR / "mbpp" / "questions.jsonl.gz").is_file()


@pytest.mark.skipif(not FETCHED, reason="benchmarks not fetched: run python -m data.benchmarks --fetch")
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_percent(name):
    ex = B.load_benchmark(name, scoring="generate").examples("test")
    # HumanEval's canonical solution is the body: prompt + body; MBPP's is the whole program
    programs = [(e.prompt + e.answer if name == "humaneval" else e.answer) + "\n" + e.tests for e in ex]
    outcomes = run_programs(programs, timeout=30)  # generous: a loaded CI machine must not fail a right answer
    failed = [(i, o.status, o.output[-200:]) for i, o in enumerate(outcomes) if not o.passed]
    assert not failed and len(outcomes) == len(ex) == {"humaneval": 164, "mbpp": 500}[name]


def test_a_wrong_solution_fails_and_a_right_one_passes():
    tests = "\nassert add(1, 2) == 3\nassert add(-1, 1) == 0"
    right, wrong = run_program("def add(a, b):\n    return a + b" + tests), run_program("def add(a, b):\n    return a - b" + tests)
    assert (right.passed, right.status) == (True, "passed")
    assert (wrong.passed, wrong.status) == (False, "failed") and "AssertionError" in wrong.output


def test_hazards_score_zero_within_the_limit_and_the_run_goes_on(tmp_path):
    outside = tmp_path / f"outside_{uuid.uuid4().hex}"
    keep = tmp_path / "keep.txt"
    keep.write_text("keep")
    hazards = {
        "infinite loop": "while True:\n    pass",
        "sleep": "import time\ntime.sleep(1000)",
        "sys.exit(0)": "import sys\nsys.exit(0)",
        "os._exit(0)": "import os\nos._exit(0)",
        "fork bomb": "import os\nwhile True:\n    os.fork()",
        "subprocess bomb": "import subprocess\nwhile True:\n    subprocess.Popen(['sleep', '100'])",
        "multiprocessing": "import multiprocessing as mp\nmp.set_start_method('spawn')\nmp.Process(target=print).start()",
        "C fork": "import ctypes\nctypes.CDLL(None).fork()",
        "write outside": f"open({str(outside)!r}, 'w').write('x')",
        "delete outside": f"import os\nos.remove({str(keep)!r})",
        "rmtree outside": f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
        "10 GB": "x = bytearray(10 * 1024 ** 3)",
        "network": "import socket\nsocket.create_connection(('127.0.0.1', 9))",
        "print flood": "while True:\n    print('x' * 10000)",
    }
    good = "def f():\n    return 1\nassert f() == 1\nopen('scratch.txt', 'w').write('inside is fine')"
    programs = list(hazards.values()) + [good]
    start = time.monotonic()
    outcomes = run_programs(programs, timeout=3, workers=2)
    elapsed = time.monotonic() - start
    for name, o in zip(hazards, outcomes):
        assert not o.passed, name
        assert o.seconds < 3 + 2, (name, o.seconds)  # the time limit, plus the kill and clean-up
    assert outcomes[-1].passed  # the run went on, and a program may write inside its own directory
    assert dict(zip(hazards, [o.status for o in outcomes]))["infinite loop"] == "timed out"
    assert "PermissionError" in outcomes[list(hazards).index("fork bomb")].output
    assert "MemoryError" in outcomes[list(hazards).index("10 GB")].output
    assert not outside.exists() and keep.read_text() == "keep" and tmp_path.is_dir()
    assert elapsed < 60


def test_nothing_outlives_a_killed_program():
    """A hanging program's process group is killed and reaped, and its directory removed."""
    o = run_program("import os, time\nprint('PID', os.getpid(), 'DIR', os.getcwd(), flush=True)\ntime.sleep(1000)", timeout=1.5)
    assert o.status == "timed out"
    _, pid, _, folder = o.output.split()
    assert not Path(f"/proc/{pid}").exists() and not Path(folder).exists()
