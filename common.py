"""
common.py: the plumbing every command shares, kept out of the method files so that model.py,
lora.py and t2l.py read as the paper does. A student may skip this file.

    ArgParser                 argparse whose bad flag is ONE `error: ...` line (every CLI uses it)
    OutputError               an output path a command must not write
    check_output              THE output guard: may this command (re)place that folder?
    write_folder_atomically   write a folder beside its target and swap it in (a kill never leaves half)

It sits below every other module (model.py, lora.py and data/ import it; it imports nothing of the
project), so the one guard is the same for every command, data/prepare_model.py included.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile
from pathlib import Path


# -----------------------------------------------------------------------------
# Errors: one base class


class UserError(ValueError):
    """The base of every error a user can cause (a bad flag, file, folder or setting). Each module
    raises its own subclass (ModelError, LoraError, T2LError, DataError, EvalError, TrainError,
    OutputError, ...); each entry point catches UserError (and OSError, for paths) and prints ONE
    line, `error: ...`, with no traceback. Anything else is a bug and keeps its traceback."""


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
    command is reading."""
    out = Path(out_dir)
    if out.is_symlink():
        raise OutputError(f"{out_dir}: is a symbolic link; give the folder itself (a link is never replaced or written through)")
    res, cwd = out.resolve(), Path.cwd().resolve()
    if res == cwd or res in cwd.parents:
        raise OutputError(f"{out_dir}: refusing to replace the current directory or one of its parents; give a new folder")
    if res == Path.home().resolve():
        raise OutputError(f"{out_dir}: refusing to write into the home directory; give a new folder")
    for src in inputs:
        s = Path(src).resolve()
        if s == res or res in s.parents or s in res.parents:
            raise OutputError(f"{out_dir}: is (or holds) the input {src} being read; write somewhere else")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out_dir}: exists and is a file, expected a folder (or a new path)")
    if out.is_dir():
        odd = next((e for e in sorted(p.name for p in out.iterdir()) if not owns(owned, e)), None)
        if odd is not None:
            raise OutputError(f"{out_dir}: exists and is not a folder this command wrote (it holds {odd}); "
                              "give a new folder (nothing replaces files this project did not write)")
    return out


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
