"""
common.py: the plumbing every command shares, kept out of the method files so that model.py,
lora.py, t2l.py and the training scripts read as the paper does. A student may skip this file
(and checkpoint.py, its companion for run folders and checkpoints).

    UserError                 the base of every error a user can cause; entry points print it as ONE line
    read_json                 a JSON file a user gave -> its value, or ONE error line naming the file
    ArgParser                 argparse whose bad flag is ONE `error: ...` line (every CLI uses it)
    config_from_args          a settings @dataclass from the command line (one flag per field, --help from its comments)
    check_settings            one rule per setting -> a one-line SettingsError naming the flag
    DIST, start_processes     torchrun: this process's rank, the process group, gradient averaging
    check_output              THE output guard: may this command (re)place that folder?
    check_output_files        the same guard for loose files (a report's PREFIX.md / .json / .png)
    write_folder_atomically   write a folder beside its target and swap it in (a kill never leaves half)
    write_file_atomically     the same for one file (write_text_atomically: one text file)
    save_plot                 the one plotting helper (matplotlib, headless)
    plot_losses               a training run's loss curve (and T2L's text dependence) as loss.png

It sits below every other module (model.py, lora.py, checkpoint.py and data/ import it; it imports
nothing of the project), so the one guard is the same for every command, data/prepare_model.py
included.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import inspect
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


# -----------------------------------------------------------------------------
# Errors: one base class


class UserError(ValueError):
    """The base of every error a user can cause (a bad flag, file, folder or setting). Each module
    raises its own subclass (ModelError, LoraError, T2LError, DataError, EvalError, TrainError,
    OutputError, ...); each entry point catches UserError (and OSError, for paths) and prints ONE
    line, `error: ...`, with no traceback. Anything else is a bug and keeps its traceback."""


def read_json(path, error=UserError, what: str | None = None):
    """The value in a JSON file a user gave (a config, a checkpoint's settings, a results file).
    Bad bytes or bad JSON -> `error` ("<path>: not valid JSON (<why>)"); with `what`, the value
    must be an object, and `what` names it in the error ("<path>: expected a JSON object (<what>),
    got a list"). A missing file stays the caller's OSError: each caller says what it expected."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({getattr(e, 'msg', e)})") from None
    if what is not None and not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object ({what}), got a {type(obj).__name__}")
    return obj


# -----------------------------------------------------------------------------
# Command lines


class ArgParser(argparse.ArgumentParser):
    """argparse, but a bad flag ends in ONE line, `error: ...`, like every other bad input
    (argparse's own habit is the usage block plus the message). Every CLI of the project uses it."""

    def error(self, message):
        sys.exit(f"error: {message} (--help lists the flags)")

    def parse_known_args(self, args=None, namespace=None):
        """argparse's parse, then one check for every CLI: each text value must be valid UTF-8.
        Python decodes the command line with surrogateescape, so raw bytes such as b"\\xff\\xfe"
        arrive as lone surrogates and fail later, deep inside (the tokenizer: "TextInputSequence must
        be str"; writing a JSON log). A file name that is not UTF-8 is refused too: the project
        writes its paths into UTF-8 JSON files. Subparsers are ArgParsers, so they check their own."""
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(ns, action.dest, None)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, (str, Path)) and not is_utf8(str(v)):
                    flag = "/".join(action.option_strings) or action.dest
                    self.error(f"argument {flag}: not valid UTF-8 text ({raw_bytes(str(v))[:60]})")
        return ns, rest


def raw_bytes(text: str) -> str:
    """The bytes the user gave, for an error message: b'\\xff\\xfe'."""
    try:
        return repr(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a surrogate that surrogateescape did not make
        return ascii(text)


def is_utf8(text: str) -> bool:
    """False for a str holding lone surrogates (undecodable bytes, kept by surrogateescape)."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


# -----------------------------------------------------------------------------
# Settings: a @dataclass whose every field is a command-line flag


class SettingsError(UserError):
    """A bad value of a setting (a flag): one line naming the flag and what it must be."""


def field_comments(cls) -> dict:
    """{field: its end-of-line comment} read from the dataclass source, so --help says what the
    code says (one place to document a setting)."""
    return dict(re.findall(r"^\s+(\w+):[^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(cls), re.M))


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each default, except None: those settings say where their default comes from."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def config_from_args(cls, argv, description: str):
    """A settings dataclass from the command line: one --flag per field, booleans as switches;
    --help lists every flag with its comment and default."""
    p = ArgParser(description=description, formatter_class=DefaultsHelp)
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        flag, text = f"--{f.name.replace('_', '-')}", comments.get(f.name, f.name).replace("%", "%%")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=text)
        elif f.type == "bool | None":  # on, off, or the recipe's: --center / --no-center
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            typ = {"int": int, "float": float}.get(f.type.removesuffix(" | None"), str)
            p.add_argument(flag, type=typ, default=f.default, help=text)
    return cls(**vars(p.parse_args(argv)))


def check_settings(cfg, rules: dict):
    """rules {field: (test, what it must be)} -> a one-line SettingsError naming the first bad flag."""
    for name, (ok, what) in rules.items():
        v = getattr(cfg, name)
        if not ok(v):
            raise SettingsError(f"--{name.replace('_', '-')} must be {what}, got {v!r}")


# Rules that several settings share (check_settings)
POSITIVE = (lambda v: v >= 1, "a positive integer")
NON_NEGATIVE_INT = (lambda v: v >= 0, "an integer >= 0")
FRACTION = (lambda v: math.isfinite(v) and 0 <= v < 1, "a number in [0, 1)")
NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
FINITE_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
DEVICE = (lambda v: v in ("auto", "cpu") or (v.startswith("cuda") and torch.cuda.is_available()),
          "auto, cpu, or cuda on a machine with a CUDA device")
PROMPT = (lambda v: v in ("definition", "bare"), "definition or bare")
TRAINING_RULES = {  # the optimisation settings train_sft.py and train_recon.py both have
    "steps": POSITIVE, "batch_size": POSITIVE, "weight_decay": NON_NEGATIVE, "grad_clip": FINITE_POSITIVE,
    "warmup_frac": (lambda v: math.isfinite(v) and 0 <= v <= 1, "a number in [0, 1]"), "ckpt_every": POSITIVE,
    "stop_after": NON_NEGATIVE_INT, "lr": FINITE_POSITIVE, "device": DEVICE,
    "latent": (lambda v: v >= 4 and v % 4 == 0, "a positive multiple of 4"), "head_in": POSITIVE,
}


def pick_device(name: str) -> torch.device:
    """--device auto: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


# -----------------------------------------------------------------------------
# Several processes: `torchrun --nproc_per_node N train_sft.py ...` (PyTorch's own launcher)
#
# Every process builds the same model and the same trainable (same seed), reads the same global
# batch i, and takes its slice of it; after the backward the gradients are averaged over the
# processes (one all-reduce per tensor, average_gradients), so every process takes the same step
# and the result does not depend on N. Only rank 0 writes logs, checkpoints and tables. NCCL
# between GPUs, gloo between CPU processes; several machines: torchrun's rendezvous (docs/scaling.md).


@dataclass
class Dist:
    rank: int = 0  # this process's index
    world: int = 1  # number of processes

    @property
    def main(self) -> bool:  # the one process that writes files and prints tables
        return self.rank == 0

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the processes (itself when alone)."""
        if self.world == 1:
            return t
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / self.world


    def any(self, flag: bool, device) -> bool:
        """True on every process when it is True on any (one tiny all-reduce; alone: the flag itself)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


DIST = Dist()  # this process; start_processes() fills it in (one object, so `from common import DIST` stays true)


def start_processes(device_name: str) -> torch.device:
    """Join the process group torchrun set up (WORLD_SIZE > 1); -> this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    gpu = device_name != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpu else "gloo")
    DIST.rank, DIST.world = rank, world
    return torch.device(f"cuda:{local}") if gpu else torch.device("cpu")


def end_processes():
    if dist.is_initialized():
        dist.destroy_process_group()


def my_slice(batch_size: int) -> slice:
    """This process's rows of a global batch: consecutive, equal shares."""
    if batch_size % DIST.world:
        raise SettingsError(f"--batch-size {batch_size} must be divisible by the {DIST.world} processes")
    k = batch_size // DIST.world
    return slice(DIST.rank * k, (DIST.rank + 1) * k)


def average_gradients(params):
    """With several processes: each parameter's gradient := its mean over the processes, i.e. the
    gradient of the whole global batch (one all-reduce per tensor). Alone: nothing to do."""
    if DIST.world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)  # sum over processes ...
        p.grad /= DIST.world  # ... -> mean


class DivergedError(UserError):
    """The training loss became NaN or inf: one line naming the last good checkpoint."""


def finite_mean(loss: torch.Tensor, step: int, ckpt) -> torch.Tensor:
    """The loss's mean over the processes; a NaN/inf one stops the run (every process sees the same
    mean, so all stop together, and the checkpoint on disk is the last good state)."""
    mean = DIST.mean(loss.detach())
    if not torch.isfinite(mean):
        raise DivergedError(f"loss is {mean.item()} at step {step + 1}; the last good checkpoint is {ckpt} "
                            "(lower --lr, then --resume)")
    return mean


def rng_states() -> list:
    """Every process's RNG state (dropout and NEFTune noise differ per process): rank r's at [r]."""
    mine = {"rng": torch.get_rng_state(), **({"cuda_rng": torch.cuda.get_rng_state()} if torch.cuda.is_available() else {})}
    if DIST.world == 1:
        return [mine]
    everyone = [None] * DIST.world
    dist.all_gather_object(everyone, mine)
    return everyone


# -----------------------------------------------------------------------------
# The output guard: a command never replaces what it did not write


class OutputError(UserError):
    """An output path the command must not write (a folder it did not write, the current
    directory, the input being read): one line naming it."""


def check_output(out_dir, owned: tuple, inputs=()) -> Path:
    """THE output guard. May a command (re)place the folder `out_dir`? Yes when it does not exist,
    is empty, or is a folder this project wrote: every entry in it is among `owned` ("name*": any
    name so starting). Anything else is a one-line OutputError, and no flag overrides it: the
    user's files are theirs. Refused as well: a symbolic link (it is never moved nor written
    through), the current directory or one of its parents, the home directory (by any path), a
    path that is a file, and a folder that holds (or is inside) one of `inputs`, the files the
    command is reading. (`check_output_files`: the same rules for loose files.)"""
    out = Path(out_dir)
    _refuse_link(out, "the folder")
    res, cwd = out.resolve(), Path.cwd().resolve()
    if res == cwd or res in cwd.parents:
        raise OutputError(f"{out_dir}: refusing to replace the current directory or one of its parents; give a new folder")
    if res == Path.home().resolve():
        raise OutputError(f"{out_dir}: refusing to write into the home directory; give a new folder")
    _refuse_input(out, inputs)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out_dir}: exists and is a file, expected a folder (or a new path)")
    if out.is_dir():
        odd = next((e for e in sorted(p.name for p in out.iterdir()) if not owns(owned, e)), None)
        if odd is not None:
            raise OutputError(f"{out_dir}: exists and is not a folder this command wrote (it holds {odd}); "
                              "give a new folder (nothing replaces files this project did not write)")
    return out


def check_output_files(paths, ours, inputs=()) -> list[Path]:
    """THE output guard for a command that writes loose files rather than a folder of its own (a
    report's results/x.md, results/x.json, results/x.png, beside other files in results/). May it
    (re)place each of `paths`? Yes when the path does not exist, or is a file this command wrote:
    ours(path) -> bool says so, from a mark the command leaves in its files (a folder's names are
    not enough here: the folder is shared). Anything else is a one-line OutputError, and no flag
    overrides it. Refused as well, as by `check_output`: a symbolic link (never written through),
    a folder, and a path that is, or lies inside, one of `inputs` (the files and folders being
    read). Every path is checked before any is written, so a refusal leaves all of them as they were."""
    paths = [Path(p) for p in paths]
    for p in paths:
        _refuse_link(p, "the file")
        _refuse_input(p, inputs)
        if p.is_dir():
            raise OutputError(f"{p}: exists and is a folder, expected a file (or a new path)")
    for p in paths:
        if p.exists() and not ours(p):
            raise OutputError(f"{p}: exists and was not written by this command; give another output path "
                              "(nothing replaces a file this project did not write)")
    return paths


def _refuse_link(out: Path, what: str):
    """A symbolic link is never replaced, moved nor written through (it may point anywhere)."""
    if out.is_symlink():
        raise OutputError(f"{out}: is a symbolic link; give {what} itself (a link is never replaced or written through)")


def _refuse_input(out: Path, inputs):
    """Nothing is written into or over what the command reads: not the input itself, not a folder
    holding it, not a path inside it (compared after resolving links, so no other path gets there)."""
    res = out.resolve()
    for src in inputs:
        s = Path(src).resolve()
        how = "is" if s == res else "holds" if res in s.parents else "lies inside" if s in res.parents else None
        if how:
            raise OutputError(f"{out}: {how} the input {src} being read; write somewhere else")


def owns(owned: tuple, name: str) -> bool:
    """Is `name` one of the files a command writes? `owned` lists names, "prefix*" for a family."""
    return any(name == o or (o.endswith("*") and name.startswith(o[:-1])) for o in owned)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0  # -100: AT_FDCWD
    except (OSError, AttributeError):
        return False


def _normal_permissions(folder: Path):
    """mkdtemp makes a private folder and safetensors writes 0600 files: give both the modes any
    ordinary file gets (0666 / 0777 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.rglob("*"):
        f.chmod((0o777 if f.is_dir() else 0o666) & ~umask)


def write_folder_atomically(out_dir, write, owned: tuple, inputs=()) -> Path:
    """Call write(tmp) on a fresh folder beside out_dir, then put it in place so that a kill at
    ANY instant leaves a loadable folder at out_dir (the old one or the new one), never half of
    one and never none: the old folder and the new are swapped in one atomic rename
    (RENAME_EXCHANGE), then the old is removed. Without that syscall: the old folder is renamed
    aside, the new renamed in, the old removed; `recover_folder` undoes a kill between the two.
    Only folders `check_output` allows are replaced. Used for adapters and T2L checkpoints."""
    out_dir = check_output(out_dir, owned, inputs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(out_dir, owned)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".tmp-{out_dir.name}-"))
    try:
        write(tmp)
        _normal_permissions(tmp)
        if not out_dir.exists():
            os.replace(tmp, out_dir)
        elif _exchange(tmp, out_dir):  # out_dir now holds the new files, tmp the old ones
            shutil.rmtree(tmp)
        else:
            aside = out_dir.parent / f".old-{out_dir.name}"
            os.replace(out_dir, aside)
            os.replace(tmp, out_dir)
            shutil.rmtree(aside)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def recover_folder(out_dir: Path, owned: tuple):
    """After a kill between the two renames of the fallback path: put the old folder back (only a
    real folder of this command's files; anything else named .old-NAME is not ours to move)."""
    aside = out_dir.parent / f".old-{out_dir.name}"
    if (aside.is_dir() and not aside.is_symlink() and not out_dir.exists()
            and all(owns(owned, p.name) for p in aside.iterdir())):
        os.replace(aside, out_dir)


def write_file_atomically(path, fill):
    """Write one file so that a kill leaves the old file or the new one, never half of one:
    fill(tmp) writes the content to a fresh temporary file beside `path` (its name ends like
    `path`'s, so matplotlib reads the format from it), which one rename then puts in place. The
    temporary file is created new (mkstemp, O_EXCL): it never is, nor writes through, a file or
    link already there, so a user's file that happens to bear a temporary-looking name is safe.
    Only paths the output guard allowed are written (`check_output`, `check_output_files`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        fill(tmp)
        umask = os.umask(0)  # mkstemp makes a private 0600 file: give it the mode any ordinary file gets
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomically(path, text: str):
    """Write a text file (UTF-8) so that a kill leaves the old file or the new one, never half of one."""
    write_file_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# -----------------------------------------------------------------------------
# Plots


def save_plot(path, draw, figsize=(6, 3.5)):
    """The project's one plotting helper: draw(fig, ax) on a fresh figure, saved as a PNG.
    matplotlib is imported here, lazily, with its headless backend (a display-only dependency)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(fig, ax)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def plot_losses(losses: list, path: Path, title: str, records=()):
    """The training curve: every step's loss, a running mean and the validation loss; with T2L's
    validation records, on a second axis, the task-specific share of the adapters and the probe's
    steering accuracy against its chance: when the hypernetwork starts to read the text."""
    k = max(1, len(losses) // 20)
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1]) for i in range(len(losses))]
    records = [r for r in records if "val_loss" in r]

    def draw(fig, ax):
        ax.plot(range(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="step loss")
        if len(losses) >= 2 * k:
            ax.plot(range(1, len(losses) + 1), smooth, lw=1.5, label=f"mean of {k}")
        if records:
            ax.plot([r["step"] for r in records], [r["val_loss"] for r in records], "o-", lw=1.5, label="validation loss")
        ax.set_xlabel("step"), ax.set_ylabel("loss"), ax.set_title(title), ax.legend(loc="upper left", fontsize=7)
        text = [r for r in records if "task_share" in r]
        if text:
            ax2 = ax.twinx()
            steps = [r["step"] for r in text]
            ax2.plot(steps, [r["task_share"] for r in text], "s--", color="tab:green", label="task-specific share of dW")
            if any("steering" in r for r in text):
                ax2.plot(steps, [r.get("steering") for r in text], "^--", color="tab:red", label="steering (exact)")
                ax2.plot(steps, [r.get("steering_nearest") for r in text], "v:", color="tab:purple", label="steering (nearest)")
                if any("steering_preferred" in r for r in text):  # logs from before 2026-12-03 lack it
                    ax2.plot(steps, [r.get("steering_preferred") for r in text], "D-", color="tab:orange",
                             label="steering (preferred)")
                ax2.axhline(text[-1]["steering_chance"], color="tab:red", lw=0.8, ls=":", label="steering chance")
            ax2.set_ylim(0, 1), ax2.set_ylabel("text dependence"), ax2.legend(loc="upper right", fontsize=7)
    save_plot(path, draw, figsize=(7, 4))
