"""data/code_exec.py: the sandbox that runs HumanEval / MBPP programs. The reference solutions all
pass; wrong, hanging, exiting, forking, escaping and memory-hungry programs each score 0, within
the time limit, without stopping the run or touching anything outside their sandbox. On the split
path (run_tests: the solution and the benchmark's tests in separate sandboxes), a solution written
to forge the verdict scores 0 too.

Most tests run twice, once per mode: "sandbox" (Linux namespaces; skipped, with the reason, where
this machine cannot create them) and "fallback" (the audit hook, forced with T2L_CODE_SANDBOX). The
escapes that only the namespaces stop are sandbox-only: the fallback is documented as no security
boundary, and some of them (killing the parent) would kill the test run itself there."""
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from data import benchmarks
from data import code_exec
from data.code_exec import prepare_tests, run_program, run_programs, run_tests, trusted_tests

FETCHED = (benchmarks.BENCH_DIR / "mbpp" / "questions.jsonl.gz").is_file()
PROBLEM = code_exec.sandbox_problem()  # None where the namespace sandbox works (CI: root, unshare present)
needs_sandbox = pytest.mark.skipif(PROBLEM is not None, reason=f"no namespace sandbox on this machine ({PROBLEM}); "
                                                              "the fallback's tests (mode=fallback) still run")


@pytest.fixture(params=["sandbox", "fallback"])
def mode(request, monkeypatch):
    """Run the test in the namespace sandbox, then in the forced audit-hook fallback."""
    if request.param == "sandbox":
        if PROBLEM is not None:
            pytest.skip(f"no namespace sandbox on this machine ({PROBLEM}); the mode=fallback run tests the fallback")
        monkeypatch.delenv(code_exec.SANDBOX_ENV, raising=False)
    else:
        monkeypatch.setenv(code_exec.SANDBOX_ENV, "fallback")
    return request.param


# The sweep's ways of switching the audit hook off from inside; in the sandbox they must not matter.
# "frame" and "gc" swap the hook's code for a no-op, so after them the hook refuses nothing at all.
TAMPER = {
    "frame": "import sys\nsys._getframe(1).f_globals['audit_hook'].__code__ = (lambda event, args: None).__code__\n",
    "gc": "import gc\nfor f in gc.get_objects():\n    if getattr(f, '__name__', '') == 'audit_hook':\n"
          "        f.__code__ = (lambda event, args: None).__code__\n",
    "realpath": "import os\nos.path.realpath = lambda path, *a, **k: os.getcwd()\n",
    "any": "import builtins\nbuiltins.any = lambda iterable: False\n",
}
HOOK_OFF = ("frame", "gc")  # after these the hook says nothing: what stops the program is the OS


def sandbox_processes() -> list[int]:
    """Host processes of the sandbox's users: programs and solutions, and test runners (no other user
    has those uids)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            uid_line = next(l for l in Path(f"/proc/{entry}/status").read_text().splitlines() if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) in (code_exec.SANDBOX_UID, code_exec.RUNNER_UID):
            pids.append(int(entry))
    return pids


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def outside(tmp_path):
    """Folders outside the sandbox that it must leave alone: one in pytest's tmp_path (hidden from the
    sandbox by its own /tmp) and one in /var/tmp, which the sandbox sees. Both are writable by anyone
    (mode 777, files 666), so only the sandbox (read-only mounts), not file permissions, protects them.
    Returns (folders, snapshot()) where snapshot() maps every path under them to (mode, content)."""
    folders = [tmp_path / "outside"]
    if Path("/var/tmp").is_dir():
        folders.append(Path(tempfile.mkdtemp(prefix="t2l_outside_", dir="/var/tmp")))
    for f in folders:
        f.mkdir(exist_ok=True)
        (f / "keep_dir").mkdir()
        (f / "keep_dir" / "inner.txt").write_text("inner")
        (f / "keep.txt").write_text("keep")
        for p in [f, f / "keep_dir", f / "keep_dir" / "inner.txt", f / "keep.txt"]:
            p.chmod(0o777 if p.is_dir() else 0o666)

    def snapshot():
        return {str(p): (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
                for f in folders for p in sorted([f, *f.rglob("*")])}
    yield folders, snapshot
    for f in folders[1:]:
        shutil.rmtree(f, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not FETCHED, reason="benchmarks not fetched: run python -m data.benchmarks --fetch")
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_percent(name):
    """On the split path that eval.py uses: every call forwarded as plain data, no in-process fallback."""
    ex = benchmarks.load_benchmark(name, scoring="generate").examples("test")
    # HumanEval's canonical solution is the body: prompt + body; MBPP's is the whole program
    jobs = [(e.prompt + e.answer if name == "humaneval" else e.answer, trusted_tests(name, e.prompt, e.tests), e.entry_point)
            for e in ex]
    outcomes = run_programs(jobs, timeout=30)  # generous: a loaded CI machine must not fail a right answer
    failed = [(i, o.status, o.output[-200:]) for i, o in enumerate(outcomes) if not o.passed]
    assert not failed and len(outcomes) == len(ex) == {"humaneval": 164, "mbpp": 500}[name]


def test_a_wrong_solution_fails_and_a_right_one_passes(mode):
    tests = "\nassert add(1, 2) == 3\nassert add(-1, 1) == 0"
    right, wrong = run_program("def add(a, b):\n    return a + b" + tests), run_program("def add(a, b):\n    return a - b" + tests)
    assert (right.passed, right.status) == (True, "passed")
    assert (wrong.passed, wrong.status) == (False, "failed") and "AssertionError" in wrong.output


@pytest.mark.slow
def test_hazards_score_zero_within_the_limit_and_the_run_goes_on(tmp_path, mode):
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


@pytest.mark.slow
def test_nothing_outlives_a_killed_program(mode):
    """A hanging program is killed and reaped at the time limit, and its directory removed (the
    fallback's temporary directory; the sandbox's tmpfs goes with its namespace, and no process of
    the sandbox's user is left on the host)."""
    o = run_program("import os, time\nprint('PID', os.getpid(), 'DIR', os.getcwd(), flush=True)\ntime.sleep(1000)", timeout=1.5)
    assert o.status == "timed out"
    _, pid, _, folder = o.output.split()
    if mode == "fallback":
        assert not Path(f"/proc/{pid}").exists() and not Path(folder).exists()
    elif os.geteuid() == 0:
        assert sandbox_processes() == []


# ---------------------------------------------------------------------------------------------------
# The verdict: decided by the evaluator, not forgeable by printing, exiting or reading anything.

FORGERIES = {
    "print what a pass prints": "print(" + repr(code_exec.REPORT.decode()) + ")\nprint('passed')\nassert False",
    "os._exit(0) before the asserts": "import os\nos._exit(0)\nassert False",
    "sys.exit(0) before the asserts": "import sys\nsys.exit(0)\nassert False",
    **{f"os._exit({s}) before the asserts": f"import os\nos._exit({s})\nassert False" for s in (1, 2, 42, 255)},
    "exec a program that exits 0": "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])\nassert False",
    "kill itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\nassert False",
    "read every secret there could be, print it, exit 0": (
        "import gc, os, sys\n"
        "print(open('/proc/self/cmdline', 'rb').read(), open('/proc/self/environ', 'rb').read())\n"
        "print(vars(sys.modules['__main__']))\n"
        "frame = sys._getframe()\n"
        "while frame:\n    print({k: repr(v)[:300] for k, v in frame.f_globals.items()})\n    frame = frame.f_back\n"
        "print([o for o in gc.get_objects() if isinstance(o, (str, bytes)) and 8 < len(o) < 100][:5000])\n"
        "sys.stdout.flush()\nos._exit(0)\nassert False"),
}


@pytest.mark.parametrize("tamper", ["", "frame"])
def test_a_forged_pass_scores_zero(mode, tamper):
    """Printing anything, ending early with any status, exec, killing itself, reading its memory,
    argv, environment and /proc for a secret: all score 0, with the audit hook on or switched off."""
    if mode == "fallback" and tamper:
        pytest.skip("the fallback with its hook switched off is no sandbox; the verdict is the same code")
    names = list(FORGERIES)
    outcomes = run_programs([TAMPER.get(tamper, "") + FORGERIES[n] for n in names], timeout=10)
    scored = {n: o.passed for n, o in zip(names, outcomes)}
    assert not any(scored.values()), scored


@pytest.mark.parametrize("redirect", [
    "import io, sys\nsys.stdout = io.StringIO()\nsys.stderr = io.StringIO()\n",
    "import os\nos.dup2(os.open('sink.txt', os.O_WRONLY | os.O_CREAT), 1)\n",
    "import os, sys\nos.close(1)\nos.close(2)\nsys.stdout = sys.stderr = open('sink.txt', 'w')\n",
])
def test_a_program_that_redirects_stdout_is_scored_by_its_tests(mode, redirect):
    tests = "print('hidden')\nassert add(1, 2) == 3\n"
    right = run_program(redirect + "def add(a, b):\n    return a + b\n" + tests)
    wrong = run_program(redirect + "def add(a, b):\n    return a - b\n" + tests)
    assert right.passed and not wrong.passed, (right, wrong)


# ---------------------------------------------------------------------------------------------------
# Escapes found by the sweep: none may touch anything outside, kill the evaluator, outlive the run,
# or stretch the time limit. Sandbox-only: the fallback is documented as no security boundary.

ESCAPES = {
    "dir_fd create": "fd = os.open({dir!r}, os.O_RDONLY)\nos.close(os.open('made_by_program', os.O_CREAT | os.O_WRONLY, dir_fd=fd))",
    "dir_fd unlink": "fd = os.open({dir!r}, os.O_RDONLY)\nos.unlink('keep.txt', dir_fd=fd)",
    "dir_fd rmtree": "import shutil\nfd = os.open({dir!r}, os.O_RDONLY)\nshutil.rmtree('keep_dir', dir_fd=fd)",
    "fchmod": "fd = os.open({dir!r} + '/keep.txt', os.O_RDONLY)\nos.fchmod(fd, 0o4777)",
    "sqlite": "import sqlite3\ndb = sqlite3.connect({dir!r} + '/made.db')\ndb.execute('create table t (x)')\ndb.commit()",
    "write": "open({dir!r} + '/keep.txt', 'w').write('changed')",
    "create": "open({dir!r} + '/made_by_program', 'w').write('x')",
    "rmtree": "import shutil\nshutil.rmtree({dir!r})",
}


@needs_sandbox
@pytest.mark.parametrize("tamper", ["", *TAMPER])
def test_escapes_touch_nothing_outside(outside, tamper):
    folders, snapshot = outside
    before = snapshot()
    cases = [(name, folder) for name in ESCAPES for folder in folders]
    programs = [TAMPER.get(tamper, "") + "import os\n" + ESCAPES[name].format(dir=str(folder)) for name, folder in cases]
    outcomes = run_programs(programs, timeout=10)
    assert snapshot() == before
    for (name, folder), o in zip(cases, outcomes):
        assert not o.passed, (name, str(folder), o.output)  # the OS refused: an exception
        if tamper in HOOK_OFF:  # the refusal came from the OS, not from the (switched-off) hook
            assert "sandbox:" not in o.output and any(
                refusal in o.output for refusal in ("Read-only file system", "No such file", "unable to open database")), (name, o.output)


@needs_sandbox
@pytest.mark.parametrize("tamper", HOOK_OFF)
def test_the_evaluator_survives_its_programs(tamper):
    """A program can signal nothing outside its PID namespace: not the evaluator through a pidfd of
    its parent, not its parent, not everything (-1), not its process group."""
    kills = ("import os, signal\n"
             "for kill in (lambda: signal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL),\n"
             "             lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.kill(1, signal.SIGKILL),\n"
             "             lambda: os.kill(-1, signal.SIGKILL), lambda: os.killpg(0, signal.SIGKILL)):\n"
             "    try:\n        kill()\n    except OSError as e:\n        print(e)\n")
    me, parent = os.getpid(), os.getppid()
    outcomes = run_programs([TAMPER[tamper] + kills, "assert 1 + 1 == 2"], timeout=10, workers=1)
    assert not outcomes[0].passed and outcomes[1].passed
    assert os.getpid() == me and os.getppid() == parent  # still here, and so is whoever started us


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("tamper", HOOK_OFF)
@pytest.mark.parametrize("ending", ["exits at once", "hangs until the time limit"])
def test_a_grandchild_does_not_outlive_the_sandbox(tamper, ending):
    """With the hook off a program may start a few processes; one that detaches (new session, double
    fork) still dies with the sandbox's PID namespace, when the program ends or is killed."""
    marker = f"t2l_marker_{uuid.uuid4().hex}"
    sleeper = f"[sys.executable, '-c', 'import time; time.sleep(1000)', {marker!r}]"
    program = (TAMPER[tamper] + "import os, subprocess, sys, time\n"
               f"subprocess.Popen({sleeper}, start_new_session=True)\n"  # a child in its own session
               "if os.fork() == 0:\n    os.setsid()\n"  # a daemon: new session, then exec
               f"    os.execv(sys.executable, {sleeper})\n"
               "time.sleep(1)\nprint('started', flush=True)\n"
               + ("time.sleep(1000)\n" if ending.startswith("hangs") else ""))
    o = run_program(program, timeout=3)
    assert "started" in o.output, o  # the processes really started: the OS, not the hook, ends them
    assert processes_with(marker) == []  # and none of them is left
    if os.geteuid() == 0:
        assert sandbox_processes() == []


@pytest.mark.slow
@pytest.mark.parametrize("tamper", ["", "frame"])
def test_a_mkdir_loop_ends_within_the_limit(mode, tamper):
    """Creating directories until the time limit: the sandbox's tmpfs runs out of inodes, the fallback's
    hook out of writes, and nothing on disk is left to remove for minutes."""
    if mode == "fallback" and tamper:
        pytest.skip("the fallback with its hook switched off is no sandbox (its temporary directory fills the disk)")
    loop = ("import os\ni = 0\nwhile True:\n    try:\n        os.mkdir(f'd{i}')\n        os.makedirs(f'n{i}/' + 'x/' * 50)\n"
            "    except OSError:\n        pass\n    i += 1\n")
    start = time.monotonic()
    o = run_program(TAMPER.get(tamper, "") + loop, timeout=3)
    assert not o.passed and time.monotonic() - start < 3 + 2, o


@needs_sandbox
def test_the_sandbox_is_what_the_docstring_says():
    """Checked from inside, with the audit hook switched off: no capabilities, no_new_privs, read-only
    everywhere but /tmp, /run empty, the home directory hidden, no network, its own PID namespace, an
    init it cannot trace, no user namespaces, mounts it cannot change, a process limit, the limits as set,
    the project directory hidden."""
    closed, interpreter_dir = code_exec._interpreter_exposure()  # e.g. /root, which hides /root/.pyenv/versions/3.11.7
    shown = os.path.relpath(interpreter_dir, closed).split(os.sep)[0] if closed else ""
    program = TAMPER["frame"] + f"""
import ctypes, errno, os, resource, socket, sys
if {closed!r}:  # the evaluator's home (or whatever hid the interpreter) holds just the way to the interpreter
    assert os.listdir({closed!r}) == [{shown!r}], os.listdir({closed!r})
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
assert all(int(status[k], 16) == 0 for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')), status
assert status['NoNewPrivs'].strip() == '1'
assert os.getuid() == 1000 and os.getcwd() == '/tmp'
for folder in ('/var/tmp', '/dev/shm', '/usr', '/', sys.prefix, {closed!r} or '/'):  # /var/tmp, /dev/shm: anyone may write there outside
    try:
        open(os.path.join(folder, 'x'), 'w')
        raise AssertionError(folder + ' is writable')
    except OSError as e:
        assert e.errno in (errno.EROFS, errno.EACCES), (folder, e)
open('/tmp/x', 'w').write('scratch is writable')
assert os.listdir('/run') == []
for folder in {code_exec._hidden_dirs()!r}:  # the project: benchmark files with the expected answers, reference solutions
    assert os.listdir(folder) == [], folder
assert [name for _, name in socket.if_nameindex()] == ['lo']
try:
    socket.create_connection(('127.0.0.1', 9), timeout=1)
    raise AssertionError('network')
except OSError as e:
    assert e.errno in (errno.ENETUNREACH, errno.ECONNREFUSED, errno.EADDRNOTAVAIL), e
assert os.getppid() == 1 and len([p for p in os.listdir('/proc') if p.isdigit()]) < 10
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x10000000) == -1  # CLONE_NEWUSER
assert libc.mount(None, b'/', None, 0x20 | 0x1000, None) == -1  # MS_REMOUNT | MS_BIND: make / writable again
assert libc.ptrace(16, 1, None, None) == -1  # PTRACE_ATTACH to the init shell
assert resource.getrlimit(resource.RLIMIT_NPROC) == ({3 + code_exec.EXTRA_TASKS},) * 2
assert resource.getrlimit(resource.RLIMIT_AS) == ({code_exec.MEMORY_BYTES},) * 2
children = []
try:
    for _ in range({code_exec.EXTRA_TASKS + 2}):
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(5)
            os._exit(0)
        children.append(pid)
    raise AssertionError('more processes than the limit')
except BlockingIOError:
    assert len(children) <= {code_exec.EXTRA_TASKS}, children
"""
    o = run_program(program, timeout=20)
    assert o.passed, o.output


# ---------------------------------------------------------------------------------------------------
# run_tests, the split path that eval.py uses: the solution (untrusted) and the benchmark's tests
# (trusted) run in two processes, two sandboxes; every call from the tests into the solution crosses
# a pipe as plain data, and the verdict comes from the tests' side, which the solution cannot reach.

ADD_TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(10, 5) == 15\n"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"
# A HumanEval-style question whose tests call a helper of the prompt (as find_zero's call poly).
POLY_PROMPT = ("def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n\n\n"
               "def find_zero(xs):\n    \"\"\"A zero of the polynomial poly(xs, x).\"\"\"\n")
POLY_TESTS = "def check(candidate):\n    assert abs(poly([-2, 1], candidate([-2, 1]))) < 1e-6\n\n\ncheck(find_zero)\n"
ABS_TESTS = "assert abs(add(1, 2) - 3) < 1e-9\nassert abs(add(2, 2) - 4) < 1e-9\n"


@pytest.mark.slow
def test_split_right_passes_wrong_fails_hang_times_out(mode):
    right, wrong, raising, hanging = run_programs([
        (RIGHT_ADD, ADD_TESTS, "add"), (WRONG_ADD, ADD_TESTS, "add"),
        ("def add(a, b):\n    raise ValueError('no')\n", ADD_TESTS, "add"),
        ("def add(a, b):\n    while True:\n        pass\n", ADD_TESTS, "add")], timeout=3)
    assert (right.passed, right.status) == (True, "passed"), right
    assert (wrong.passed, wrong.status) == (False, "failed") and "tests.py line 1: AssertionError" in wrong.output, wrong
    assert not raising.passed and "ValueError: no" in raising.output, raising
    assert (hanging.passed, hanging.status) == (False, "timed out") and hanging.seconds < 3 + 2, hanging


# Each is (solution, tests, entry point) and scores 0 on the split path. Those in BEATS_RUN_PROGRAM
# pass run_program (solution + tests in one process): they are real attacks, not strawmen.
SPLIT_FORGERIES = {
    "print what a pass prints": (f"print({code_exec.REPORT.decode()!r})\nprint('passed')\n" + WRONG_ADD, ADD_TESTS, "add"),
    "sys.exit(0) while loading": ("import sys\nsys.exit(0)\n" + RIGHT_ADD, ADD_TESTS, "add"),
    "os._exit(0) while loading": ("import os\nos._exit(0)\n", ADD_TESTS, "add"),
    "os._exit(0) in the first call": ("import os\ndef add(a, b):\n    os._exit(0)\n", ADD_TESTS, "add"),
    "REPORT on every fd it holds, then exit 0": (
        "import os\nfor fd in range(64):\n    try:\n        os.write(fd, " + repr(code_exec.REPORT) + ")\n"
        "    except OSError:\n        pass\nos._exit(0)\n" + WRONG_ADD, ADD_TESTS, "add"),
    "answers on the pipe before it is asked": (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, b'{\"value\": null}\\n' + b'{\"value\": 3}\\n' * 10)\n"
        "    except OSError:\n        pass\n" + WRONG_ADD, ADD_TESTS, "add"),
    "an answer equal to everything": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n"
        "    def __bool__(self):\n        return True\n    __hash__ = object.__hash__\n"
        "def add(a, b):\n    return Anything()\n", ADD_TESTS, "add"),
    "an int equal to everything": (
        "class Anything(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Anything(0)\n", ADD_TESTS, "add"),
    "builtins, json and the server patched": (
        "import builtins, json, sys\nbuiltins.abs = lambda x: 0\nbuiltins.isinstance = lambda *a: True\n"
        "json.loads = lambda *a, **k: {'value': True}\n"
        "sys._getframe(1).f_globals['to_plain'] = lambda x, other: True\n" + WRONG_ADD, ABS_TESTS, "add"),
    "StopIteration ends the tests' loop early": (
        "def add(a, b):\n    if a == -1:\n        raise StopIteration\n    return a + b\n",
        "for a, b, c in [(1, 2, 3), (-1, 1, 5), (10, 5, 15)]:\n    for got in map(add, [a], [b]):\n        assert got == c\n", "add"),
    "the prompt's helper redefined": (POLY_PROMPT + "    return 0.0\n\n\ndef poly(xs, x):\n    return 0\n",
                                      trusted_tests("humaneval", POLY_PROMPT, POLY_TESTS), "find_zero"),
}
BEATS_RUN_PROGRAM = ["REPORT on every fd it holds, then exit 0", "an answer equal to everything", "an int equal to everything",
                     "builtins, json and the server patched", "StopIteration ends the tests' loop early",
                     "the prompt's helper redefined"]


def one_program(name: str) -> str:
    """The forgery as run_program gets it: the solution with the benchmark's tests appended (HumanEval's
    prompt is already in the solution)."""
    solution, tests, _ = SPLIT_FORGERIES[name]
    return solution + "\n" + (POLY_TESTS if tests.startswith(POLY_PROMPT) else tests)


@pytest.mark.parametrize("tamper", ["", "frame"])
def test_a_forged_pass_scores_zero_on_the_split_path(mode, tamper):
    """Printing, exiting early, writing REPORT (or answers) to every fd it holds, an object equal to
    everything, patching builtins, json or the server code around it, redefining the tests' helper:
    all score 0, with the solution's audit hook on or switched off. The right answers still pass."""
    if mode == "fallback" and tamper:
        pytest.skip("the fallback with its hook switched off is no sandbox")
    names = list(SPLIT_FORGERIES)
    jobs = [(TAMPER.get(tamper, "") + SPLIT_FORGERIES[n][0], *SPLIT_FORGERIES[n][1:]) for n in names]
    rights = [(TAMPER.get(tamper, "") + RIGHT_ADD, ABS_TESTS, "add"),
              (POLY_PROMPT + "    return -xs[0] / xs[1]\n", trusted_tests("humaneval", POLY_PROMPT, POLY_TESTS), "find_zero")]
    outcomes = run_programs(jobs + rights, timeout=10)
    scored = {n: o.passed for n, o in zip(names, outcomes)}
    assert not any(scored.values()), scored
    assert all(o.passed for o in outcomes[len(names):]), outcomes[len(names):]
    if not tamper:  # the same attacks do beat the one-process verdict
        in_one = run_programs([one_program(n) for n in BEATS_RUN_PROGRAM], timeout=10)
        assert all(o.passed for o in in_one), dict(zip(BEATS_RUN_PROGRAM, in_one))


PLAIN = ("[None, True, False, 0, -7, 3 ** 10000, 1.5, float('inf'), float('-inf'), 'é\\n\\x00', b'\\x00\\xff', "
         "(1, (2,)), [1, [2, []]], {1: 'a', (2, 3): [4], 'k': {5}}, {1, 2}, frozenset({3}), 2 + 3j, (), [], {}, set()]")


def test_plain_data_crosses_unchanged(mode):
    solution = ("import collections, enum\n"
                "def echo(x=None, **kw):\n    return x if not kw else kw\n"
                "def subclasses():\n"
                "    Point = collections.namedtuple('Point', 'x y')\n"
                "    class Colour(enum.IntEnum):\n        RED = 1\n"
                "    return [collections.Counter('aab'), collections.OrderedDict(a=1), collections.defaultdict(int, b=2),"
                " Point(1, 2), Colour.RED, bytearray(b'x')]\n"
                "def scalars():\n    try:\n        import numpy as np\n    except ImportError:\n        return [3, 0.5, True]\n"
                "    return [np.int64(3), np.float64(0.5), np.bool_(True)]\n")
    tests = (f"import math\nfor v in {PLAIN}:\n    r = echo(v)\n    assert r == v and type(r) is type(v), (v, r)\n"
             "assert math.isnan(echo(float('nan'))) and math.copysign(1, echo(-0.0)) == -1\n"
             "assert echo(k=(1,)) == {'k': (1,)}\n"
             "assert subclasses() == [{'a': 2, 'b': 1}, {'a': 1}, {'b': 2}, (1, 2), 1, b'x']\n"
             "assert [type(v) for v in subclasses()] == [dict, dict, dict, tuple, int, bytes]\n"
             "assert scalars() == [3, 0.5, True] and [type(v) for v in scalars()] == [int, float, bool]\n")
    o = run_tests(solution, tests, "echo", timeout=20)
    assert o.passed, o.output


def test_objects_exceptions_and_functions_across_the_pipe(mode):
    """An object that is not plain data stays in the solution: the tests may pass it back, read or set
    its attributes (MBPP's tree question), iterate over it and take its len(), but not compare it, test
    its truth or hash it. The solution's exceptions arrive by name (builtin ones as themselves), and
    nothing but plain data can be sent to it (not a function)."""
    solution = ("class Node:\n    def __init__(self, data):\n        self.data, self.left, self.right = data, None, None\n"
                "def depth(node):\n    return 0 if node is None else 1 + max(depth(node.left), depth(node.right))\n"
                "def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n"
                "class Mine(Exception):\n    pass\n"
                "def mine():\n    raise Mine('custom')\n"
                "def apply(f, x):\n    return f(x)\n"
                "def evens(n):\n    return (i for i in range(0, n, 2))\n"
                "def upto(n):\n    return range(n)\n")
    tests = ("t = Node(1)\nt.left = Node(2)\nt.left.left = Node(3)\n"
             "assert depth(t) == 3 and t.left.data == 2 and t.left.left is t.left.left\n"
             "assert tuple(evens(5)) == (0, 2, 4) and sorted(evens(3), reverse=True) == [2, 0] and 2 in evens(3)\n"
             "assert len(upto(7)) == 7 and list(upto(3)) == [0, 1, 2]\n"
             "for use in (lambda: t == t, lambda: t != 1, lambda: bool(t), lambda: {t}):\n"
             "    try:\n        use()\n        raise AssertionError('an object of the solution was usable')\n"
             "    except TypeError:\n        pass\n"
             "try:\n    root(-1)\n    raise AssertionError('no exception')\nexcept ValueError as e:\n    assert str(e) == 'negative'\n"
             "try:\n    mine()\n    raise AssertionError('no exception')\n"
             "except Exception as e:\n    assert type(e).__name__ == 'SolutionError' and 'Mine: custom' in str(e)\n"
             "try:\n    apply(len, [1])\n    raise AssertionError('a function was sent')\n"
             "except TypeError as e:\n    assert 'only plain data' in str(e)\n")
    o = run_tests(solution, tests, None, timeout=10)
    assert o.passed, o.output


def test_prepare_tests_forwards_only_the_solutions_names():
    code, names = prepare_tests(trusted_tests("humaneval", POLY_PROMPT, POLY_TESTS), "find_zero")
    assert names == ["find_zero"] and "def poly" in code and "def find_zero" not in code
    assert code.count("\n") == (POLY_PROMPT + "\n" + POLY_TESTS).count("\n")  # blanked line for line
    assert prepare_tests("assert sum(1, 2) == 3\nassert abs(len([1])) == 1\n", "sum")[1] == ["sum"]  # MBPP's `sum`
    assert prepare_tests("x = Node(1)\nassert balanced(x)\n", "balanced")[1] == ["Node", "balanced"]
    assert prepare_tests("import math\ny = 2\ndef f():\n    global z\n    z = 1\nassert g(math.pi, y, [i for i in y], z)\n")[1] == ["g"]
    assert not run_tests(RIGHT_ADD, "assert add(1, 2) ==", "add").passed  # tests that do not parse: nothing passes


@needs_sandbox
@pytest.mark.parametrize("tamper", HOOK_OFF)
def test_the_solution_cannot_reach_the_runner(tamper):
    """With its hook off, the solution kills every process it can see (and everything with kill(-1)),
    and looks for the runner: it is not there (another PID namespace), so a right answer still passes.
    Writing REPORT into every fd of every process it can see, then exiting 0, scores 0."""
    look = ("import os, signal\nseen = []\n"
            "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
            "    try:\n        seen.append(open(f'/proc/{pid}/cmdline', 'rb').read())\n    except OSError:\n        pass\n")
    kill_all = (look + "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n        pass\n"
                "for sig in (signal.SIGKILL, signal.SIGSTOP):\n    try:\n        os.kill(-1, sig)\n    except OSError:\n        pass\n"
                "assert not any(b'\"role\": \"runner\"' in c for c in seen), seen\n")
    write_all = (look + "    try:\n        fds = os.listdir(f'/proc/{pid}/fd')\n    except OSError:\n        fds = []\n"
                 "    for fd in fds:\n        try:\n"
                 f"            with open(f'/proc/{{pid}}/fd/{{fd}}', 'wb', buffering=0) as f:\n                f.write({code_exec.REPORT!r})\n"
                 "        except OSError:\n            pass\nos._exit(0)\n")
    kills, writes = run_programs([(TAMPER[tamper] + kill_all + RIGHT_ADD, ADD_TESTS, "add"),
                                  (TAMPER[tamper] + write_all + WRONG_ADD, ADD_TESTS, "add")], timeout=10)
    assert kills.passed, kills.output
    assert not writes.passed, writes.output


@needs_sandbox
def test_the_runner_is_apart_from_the_solution():
    """Checked from the runner's side: not dumpable, every blockable signal blocked, no solution process
    in its view; the solution (asked through a call) sees no runner; and when the evaluator is root
    they are two host uids."""
    solution = ("import os\n"
                "def uid_map():\n    return open('/proc/self/uid_map').read().split()\n"
                "def view():\n    return [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]\n")
    tests = f"""
import ctypes, os, signal
assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE
status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)
blocked = int(status['SigBlk'], 16)
assert all(blocked & (1 << (s - 1)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGALRM))
mine = [open(f'/proc/{{p}}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]
assert not any(b'"role": "solution"' in c for c in mine)
assert not any(b'"role": "runner"' in c for c in view()) and any(b'"role": "solution"' in c for c in view())
if {os.geteuid() == 0}:
    assert open('/proc/self/uid_map').read().split()[1] == '{code_exec.RUNNER_UID}' and uid_map()[1] == '{code_exec.SANDBOX_UID}'
"""
    o = run_tests(solution, tests, None, timeout=10)
    assert o.passed, o.output


def test_killing_the_runner_is_a_fail(monkeypatch):
    """In the fallback (no namespaces) the solution can find the runner, its sibling process, and kill
    it: that scores 0 even with a right answer, never a pass."""
    monkeypatch.setenv(code_exec.SANDBOX_ENV, "fallback")
    kill = TAMPER["frame"] + (
        "import os, signal, time\n"
        "def runners():\n    found = []\n    for p in os.listdir('/proc'):\n        try:\n"
        "            ppid = int(open(f'/proc/{p}/stat', 'rb').read().rsplit(b')', 1)[1].split()[1])\n"
        "            if ppid == os.getppid() and b'\"role\": \"runner\"' in open(f'/proc/{p}/cmdline', 'rb').read():\n"
        "                found.append(int(p))\n"
        "        except (OSError, IndexError, ValueError):\n            pass\n    return found\n"
        "deadline = time.time() + 5\n"
        "while not runners() and time.time() < deadline:\n    time.sleep(0.01)\n"
        "killed = runners()\nfor pid in killed:\n    os.kill(pid, signal.SIGKILL)\n"
        "print('killed', killed, flush=True)\n") + RIGHT_ADD
    o = run_tests(kill, ADD_TESTS, "add", timeout=10)
    assert "killed [" in o.output and "killed []" not in o.output, o.output
    assert not o.passed


@pytest.mark.slow
@needs_sandbox
def test_nothing_outlives_a_split_run():
    o = run_tests("def add(a, b):\n    import time\n    time.sleep(1000)\n", ADD_TESTS, "add", timeout=1.5)
    assert o.status == "timed out"
    if os.geteuid() == 0:
        assert sandbox_processes() == []


# ---------------------------------------------------------------------------------------------------
# The fallback.

def test_the_fallback_is_announced_once(monkeypatch, capfd):
    monkeypatch.setenv(code_exec.SANDBOX_ENV, "fallback")
    monkeypatch.setattr(code_exec, "_warned", set())
    assert code_exec.sandbox_problem() == f"{code_exec.SANDBOX_ENV}=fallback is set"
    assert run_program("assert True").passed and run_program("assert True").passed
    err = capfd.readouterr().err
    assert err.count("WARNING") == 1 and "NO security boundary" in err and code_exec.SANDBOX_ENV in err


def test_where_namespaces_fail_programs_run_in_the_fallback(monkeypatch, capfd):
    """An `unshare` that cannot create namespaces (as in a container without user namespaces): the
    trial run fails, the reason is remembered and announced once, and programs still get scored."""
    fake = Path(tempfile.mkdtemp(prefix="t2l_fake_bin_", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    try:
        (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
        (fake / "unshare").chmod(0o755)
        fake.chmod(0o755)  # the sandbox's user must be able to run it
        monkeypatch.setattr(code_exec, "PATH", f"{fake}:{code_exec.PATH}")
        monkeypatch.setattr(code_exec, "_probe_result", [])
        monkeypatch.setattr(code_exec, "_warned", set())
        monkeypatch.delenv(code_exec.SANDBOX_ENV, raising=False)
        problem = code_exec.sandbox_problem()
        assert problem is not None and "trial run" in problem and "Operation not permitted" in problem, problem
        right, wrong = run_program("assert 1 + 1 == 2"), run_program("assert 1 + 1 == 3")
        assert right.passed and not wrong.passed
        assert code_exec.sandbox_problem() == problem  # tried once, remembered
        err = capfd.readouterr().err
        assert err.count("WARNING") == 1 and "NO security boundary" in err and "Operation not permitted" in err
    finally:
        shutil.rmtree(fake, ignore_errors=True)
