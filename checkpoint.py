"""
checkpoint.py: run folders and checkpoints for train_sft.py and train_recon.py (plumbing, like
nanochat's checkpoint manager; a student may skip it).

    check_run / open_run    is --out a folder this run may write? start it, or pick up its checkpoint
    save_ckpt / read_ckpt   everything --resume needs, written atomically, read without unpickling code
    check_resume / restore  a resumed run must be the run it continues; load its state back
    read_log                log.jsonl, one JSON line per step (a line cut by a kill is dropped)
    CtrlC, Interrupted      the first Ctrl-C finishes the step in flight, checkpoints it and stops

A run folder holds only files a training script writes (RUN_FILES); a folder holding anything else
is refused by common.check_output, the project's one output guard.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import signal
import sys
import warnings
from pathlib import Path

import torch

import common
from common import DIST


class CheckpointError(common.UserError):
    """A missing, foreign or damaged checkpoint, or a --resume that does not fit it: one line."""


class Interrupted(Exception):
    """Ctrl-C during training, raised once the checkpoint of the last finished step is written: the
    CLI prints its one line and exits 130 (the shell's code for SIGINT), with no traceback."""


# Files a run folder may hold: a folder holding anything else is not one a training script wrote.
RUN_FILES = ("config.json", "log.jsonl", "ckpt.pt", "loss.png", "best", "final", "adapter", "zero_shot.json",
             "zero_shot.png", "steering.png", "table.md", "summary.json", "report.md", "report.json", "sweep.json", "sweep.png", "sweep_*")


def check_run(out: Path, cfg, inputs=(), subfolders: dict | None = None) -> dict | None:
    """May this run write --out? Checks only, writing nothing (the scripts call it before any slow
    work). `subfolders` {name: the files that folder may hold} (best/ and final/ of T2L, adapter/ of
    a LoRA) are checked now too, not after training when the first one is written.
    -> the checkpoint to resume from, or None for a fresh run."""
    if cfg.resume and cfg.force:  # one continues the run, the other starts it over: which was meant?
        raise CheckpointError("--resume and --force together: --resume continues the run in --out, --force starts it over; give one")
    common.check_output(out, RUN_FILES, inputs=inputs)
    for sub, owned in (subfolders or {}).items():
        if (out / sub).exists():
            common.check_output(out / sub, owned)
    ckpt = out / "ckpt.pt"
    if cfg.resume:
        if not ckpt.is_file():
            raise CheckpointError(f"--resume: {ckpt} not found (no run to continue there; start without --resume)")
        state = read_ckpt(ckpt)
        check_resume(state, cfg, ckpt)
        return state
    if any((out / f).exists() for f in ("config.json", "log.jsonl", "ckpt.pt")) and not cfg.force:
        raise common.OutputError(f"{out}: holds an earlier run; --resume to continue it, --force to start over, or another --out")
    return None


def open_run(out: Path, cfg, inputs=(), subfolders: dict | None = None) -> tuple[dict | None, object]:
    """check_run, then -> (the checkpoint state to resume from or None, the log file to append to).
    A fresh run needs a new or empty folder (or --force over an earlier run: only the files a run
    writes are replaced); --resume cuts log.jsonl back to the checkpoint's step so that steps after
    it are not logged twice."""
    if not DIST.main:  # rank 0 checks and writes; the others only read the checkpoint to resume
        return (read_ckpt(out / "ckpt.pt") if cfg.resume else None), open(os.devnull, "w")
    state = check_run(out, cfg, inputs, subfolders)
    if cfg.resume:
        kept = [line for line in read_log(out / "log.jsonl") if line["step"] <= state["step"]]
        common.write_text_atomically(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        return state, open(out / "log.jsonl", "a")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ckpt.pt").unlink(missing_ok=True)  # a stale checkpoint of the earlier run must not be resumed
    for sub, owned in (subfolders or {}).items():  # nor its outputs read as this run's (only folders a run wrote)
        if (out / sub).is_dir() and any((out / sub).iterdir()) and all(common.owns(owned, p.name) for p in (out / sub).iterdir()):
            shutil.rmtree(out / sub)
    common.write_text_atomically(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    return None, open(out / "log.jsonl", "w")


def task_runs(root: Path, names: list[str], cfg) -> list[tuple[Path, list[str], object]]:
    """[(root/<task>, [task], its settings)] for a run of one LoRA per task. With --resume over many
    tasks, a task with a checkpoint continues; one never started, or killed before its first
    checkpoint, starts (over): its folder may then hold only a run's own files (checked here, so
    --force is never needed for them and foreign files are still refused)."""
    jobs = []
    for n in names:
        out, job = root / n, cfg
        if cfg.resume and len(names) > 1 and not (out / "ckpt.pt").is_file():
            common.check_output(out, RUN_FILES)
            job = dataclasses.replace(cfg, resume=False, force=True)
        jobs.append((out, [n], job))
    return jobs


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: drop it
            pass
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), int)]


def save_ckpt(path: Path, trainable: torch.nn.Module, opt, step: int, cfg, losses: list, **extra):
    """Everything --resume needs, the RNG state included (dropout and NEFTune noise then continue
    as if never stopped). Atomic: a crash mid-save keeps the previous checkpoint. Only tensors,
    numbers, strings, lists and dicts: read back with torch.load(weights_only=True), which
    refuses to run code a crafted file might carry."""
    rngs = common.rng_states()  # a collective call: every process takes part, rank 0 writes
    if not DIST.main:
        return
    tmp = path.with_suffix(".tmp")
    torch.save({"params": trainable.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": dataclasses.asdict(cfg), "losses": losses, **rngs[0], "rng_ranks": rngs, **extra}, tmp)
    tmp.replace(path)


def read_ckpt(path: Path) -> dict:
    """ckpt.pt -> its dict, never unpickling code: weights_only=True admits tensors and plain data only."""
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a crafted file: it names a callable; nothing was run
        raise CheckpointError(f"{path}: not a checkpoint this project wrote (it asks to run code; refused, nothing was run)") from None
    except Exception as e:  # RuntimeError / EOFError for a cut or garbled file
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not {"params", "opt", "step", "rng", "losses"} <= set(state):
        raise CheckpointError(f"{path}: not a checkpoint this project wrote (expected params, opt, step, rng, losses)")
    # weights_only admits any plain data, so each entry's type is checked here, where the file can be
    # named, rather than failing later inside the loop or the optimizer
    step, losses = state["step"], state["losses"]
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    for key, ok, what in (
            ("step", isinstance(step, int) and not isinstance(step, bool) and step >= 0, "an integer >= 0"),
            ("losses", isinstance(losses, list) and all(map(number, losses)), "a list of numbers (the loss of each step)"),
            ("params", isinstance(state["params"], dict) and all(map(torch.is_tensor, state["params"].values())), "a dict of tensors"),
            ("opt", isinstance(state["opt"], dict), "an optimizer state dict"),
            ("rng", torch.is_tensor(state["rng"]), "a tensor (torch's RNG state)"),
            ("config", isinstance(state.get("config", {}), dict), "a dict of the run's settings"),
            ("best", number(state.get("best", 0.0)), "a number")):
        if not ok:
            shown = f"a list of {len(state[key])}" if isinstance(state[key], list) else f"a {type(state[key]).__name__}: {repr(state[key])[:40]}"
            raise CheckpointError(f"{path}: '{key}' must be {what}, got {shown} (not a checkpoint this project wrote?)")
    return state


# Settings that do not change what a run computes (where it writes, how it is split into invocations,
# how fast or on what it runs, what is scored after training): --resume may change them. Any other
# difference from the checkpoint's settings is refused, so a resumed run is the run it continues and
# its config.json stays true. Names of both scripts' settings (a name a config lacks is unused).
RESUME_FREE = {"out", "resume", "force", "stop_after", "device", "ckpt_every", "compile", "grad_checkpoint",
               "fuse_lora", "trust_remote_code", "probe_inputs", "eval_examples", "steering_inputs", "steering_descs",
               "final_tasks", "final_examples", "final_descs", "eval_n", "sweep"}


# Settings added after checkpoints were written: a checkpoint without one ran as this value says
# (train_sft.py's packed batches came on 2026-12-03; an earlier run resumes padded, --no-pack).
LEGACY = {"pack": False}


def check_resume(state: dict, cfg, ckpt) -> None:
    """--resume: the command's settings must be the checkpoint's (but RESUME_FREE), and its step
    within --steps; else one line listing every difference."""
    saved, now = {**LEGACY, **(state.get("config") or {})}, dataclasses.asdict(cfg)
    show = lambda v: repr(v) if isinstance(v, str) else str(v)
    diffs = [f"--{k.replace('_', '-')}: {show(saved[k])} in the run, {show(now[k])} now"
             for k in now if k in saved and k not in RESUME_FREE and saved[k] != now[k]]
    if diffs:
        raise CheckpointError(f"--resume with other settings than {ckpt} was written with ({'; '.join(diffs)}); give the run's "
                              "settings, or start a new run (another --out, or --force without --resume)")
    if state["step"] > cfg.steps:
        raise CheckpointError(f"{ckpt}: step {state['step']} is past --steps {cfg.steps} (not a checkpoint of this run)")


def restore(state: dict, trainable: torch.nn.Module, opt, cfg):
    """Load read_ckpt's dict into the trainable module and optimizer, and the RNG state."""
    check_resume(state, cfg, "the checkpoint")  # rank 0 checked it in check_run already; the other ranks check here
    try:
        trainable.load_state_dict(state["params"], strict=True)
        opt.load_state_dict(state["opt"])
        ranks = state.get("rng_ranks") or [state]
        mine = ranks[DIST.rank] if len(ranks) == DIST.world else state  # run with another N: rank 0's state
        torch.set_rng_state(mine["rng"])
        if torch.cuda.is_available() and "cuda_rng" in mine:
            torch.cuda.set_rng_state(mine["cuda_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:  # a foreign or damaged file
        raise CheckpointError(f"the checkpoint does not fit this run ({str(e).splitlines()[0][:120]})") from None
    if DIST.main:
        print(f"resumed at step {state['step']}", file=sys.stderr)


class CtrlC:
    """The first Ctrl-C (SIGINT) during training only sets `hit`: the step in flight finishes (a
    KeyboardInterrupt inside it could come between the optimizer step and the loss record, and the
    checkpoint would be off by one), the loop checkpoints it and raises Interrupted. Alone, a second
    Ctrl-C stops at once, keeping the last checkpoint.

    Under torchrun every rank must stop at the same step (save_ckpt is collective), so the loop asks
    `stop(device)`, which agrees over the processes once per step. There the launcher passes the
    signal on to every worker (after the terminal's own Ctrl-C reached them: two SIGINTs) and
    sends SIGKILL after its shutdown timeout (30 s), so a worker treats every SIGINT or SIGTERM as
    the first: the step in flight ends, rank 0 checkpoints, every rank stops."""

    def __init__(self):
        self.hit, self.old = False, {}
        try:
            for sig in (signal.SIGINT,) if DIST.world == 1 else (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self.handler)
        except ValueError:  # not the main thread (a library caller): Ctrl-C stays as it was
            pass

    def handler(self, signum, frame):
        if self.hit and DIST.world == 1:
            raise KeyboardInterrupt
        self.hit = True

    def stop(self, device) -> bool:
        """Checkpoint and stop after this step? This process's Ctrl-C, or under torchrun any process's."""
        return DIST.any(self.hit, device)

    def release(self):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        self.old = {}


def run_cli(main_fn):
    """An entry point's error handling, the same for every training script: a UserError (or an OS
    error on a path) is ONE `error: ...` line; Ctrl-C exits 130 with one line; the torchrun process
    group is always closed."""
    try:
        main_fn()
    except (common.UserError, OSError) as e:
        sys.exit(f"error: {e}" if DIST.world == 1 else f"error: [rank {DIST.rank}] {e}")
    except Interrupted as e:  # Ctrl-C in the loop: checkpointed
        if DIST.main:  # under torchrun every rank stops here; one line says so
            print(e, file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # Ctrl-C elsewhere, or a second one in the loop: nothing more is written
        print("interrupted; --resume continues from the last checkpoint, if one was written", file=sys.stderr)
        sys.exit(130)
    finally:
        common.end_processes()
