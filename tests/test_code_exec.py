"""data/code_exec.py: the sandbox that runs HumanEval / MBPP programs. The reference solutions all
pass; wrong, hanging, exiting, forking, escaping and memory-hungry programs each score 0, within
the time limit, without stopping the run or touching anything outside their sandbox.

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

from data import benchmarks as B
from data import code_exec as C
from data.code_exec import run_program, run_programs

FETCHED = (B.BENCH_DIR / "mbpp" / "questions.jsonl.gz").is_file()
PROBLEM = C.sandbox_problem()  # None where the namespace sandbox works (CI: root, unshare present)
needs_sandbox = pytest.mark.skipif(PROBLEM is not None, reason=f"no namespace sandbox on this machine ({PROBLEM}); "
                                                              "the fallback's tests (mode=fallback) still run")


@pytest.fixture(params=["sandbox", "fallback"])
def mode(request, monkeypatch):
    """Run the test in the namespace sandbox, then in the forced audit-hook fallback."""
    if request.param == "sandbox":
        if PROBLEM is not None:
            pytest.skip(f"no namespace sandbox on this machine ({PROBLEM}); the mode=fallback run tests the fallback")
        monkeypatch.delenv(C.SANDBOX_ENV, raising=False)
    else:
        monkeypatch.setenv(C.SANDBOX_ENV, "fallback")
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
    """Host processes of the sandbox's user (there is no other user with that uid)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            uid_line = next(l for l in Path(f"/proc/{entry}/status").read_text().splitlines() if l.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid_line.split()[1]) == C.SANDBOX_UID:
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


@pytest.mark.skipif(not FETCHED, reason="benchmarks not fetched: run python -m data.benchmarks --fetch")
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_percent(name):
    ex = B.load_benchmark(name, scoring="generate").examples("test")
    # HumanEval's canonical solution is the body: prompt + body; MBPP's is the whole program
    programs = [(e.prompt + e.answer if name == "humaneval" else e.answer) + "\n" + e.tests for e in ex]
    outcomes = run_programs(programs, timeout=30)  # generous: a loaded CI machine must not fail a right answer
    failed = [(i, o.status, o.output[-200:]) for i, o in enumerate(outcomes) if not o.passed]
    assert not failed and len(outcomes) == len(ex) == {"humaneval": 164, "mbpp": 500}[name]


def test_a_wrong_solution_fails_and_a_right_one_passes(mode):
    tests = "\nassert add(1, 2) == 3\nassert add(-1, 1) == 0"
    right, wrong = run_program("def add(a, b):\n    return a + b" + tests), run_program("def add(a, b):\n    return a - b" + tests)
    assert (right.passed, right.status) == (True, "passed")
    assert (wrong.passed, wrong.status) == (False, "failed") and "AssertionError" in wrong.output


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
    "print what a pass prints": "print(" + repr(C.REPORT.decode()) + ")\nprint('passed')\nassert False",
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
    init it cannot trace, no user namespaces, mounts it cannot change, a process limit, the limits as set."""
    closed, interpreter_dir = C._interpreter_exposure()  # e.g. /root, which hides /root/.pyenv/versions/3.11.7
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
assert resource.getrlimit(resource.RLIMIT_NPROC) == ({3 + C.EXTRA_TASKS},) * 2
assert resource.getrlimit(resource.RLIMIT_AS) == ({C.MEMORY_BYTES},) * 2
children = []
try:
    for _ in range({C.EXTRA_TASKS + 2}):
        pid = os.fork()
        if pid == 0:
            import time
            time.sleep(5)
            os._exit(0)
        children.append(pid)
    raise AssertionError('more processes than the limit')
except BlockingIOError:
    assert len(children) <= {C.EXTRA_TASKS}, children
"""
    o = run_program(program, timeout=20)
    assert o.passed, o.output


# ---------------------------------------------------------------------------------------------------
# The fallback.

def test_the_fallback_is_announced_once(monkeypatch, capfd):
    monkeypatch.setenv(C.SANDBOX_ENV, "fallback")
    monkeypatch.setattr(C, "_warned", set())
    assert C.sandbox_problem() == f"{C.SANDBOX_ENV}=fallback is set"
    assert run_program("assert True").passed and run_program("assert True").passed
    err = capfd.readouterr().err
    assert err.count("WARNING") == 1 and "NO security boundary" in err and C.SANDBOX_ENV in err


def test_where_namespaces_fail_programs_run_in_the_fallback(monkeypatch, capfd):
    """An `unshare` that cannot create namespaces (as in a container without user namespaces): the
    trial run fails, the reason is remembered and announced once, and programs still get scored."""
    fake = Path(tempfile.mkdtemp(prefix="t2l_fake_bin_", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    try:
        (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
        (fake / "unshare").chmod(0o755)
        fake.chmod(0o755)  # the sandbox's user must be able to run it
        monkeypatch.setattr(C, "PATH", f"{fake}:{C.PATH}")
        monkeypatch.setattr(C, "_probe_result", [])
        monkeypatch.setattr(C, "_warned", set())
        monkeypatch.delenv(C.SANDBOX_ENV, raising=False)
        problem = C.sandbox_problem()
        assert problem is not None and "trial run" in problem and "Operation not permitted" in problem, problem
        right, wrong = run_program("assert 1 + 1 == 2"), run_program("assert 1 + 1 == 3")
        assert right.passed and not wrong.passed
        assert C.sandbox_problem() == problem  # tried once, remembered
        err = capfd.readouterr().err
        assert err.count("WARNING") == 1 and "NO security boundary" in err and "Operation not permitted" in err
    finally:
        shutil.rmtree(fake, ignore_errors=True)
