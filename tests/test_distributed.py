"""Several processes under torchrun (gloo, CPU) train exactly what one process trains on the same
global batch: each takes its slice, gradients are averaged (common.average_gradients). With dropout and
noise off, the hypernetwork after 3 steps matches within 1e-5 (at lr 1e-4: Adam turns the last-bit
differences of differently shaped matmuls into differences of up to ~lr/100 per step); a torchrun
run resumes bit for bit."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import torch

import pytest
from safetensors.torch import load_file

from conftest import ROOT

pytestmark = pytest.mark.slow  # torchrun training runs, minutes

COMMON = ["--variant", "S", "--steps", "3", "--batch-size", "4", "--max-len", "96", "--latent", "32", "--head-in", "64",
          "--val-every", "100", "--val-examples", "1", "--final-tasks", "1", "--final-examples", "1", "--ckpt-every", "1",
          "--hyper-dropout", "0", "--lora-dropout", "0", "--neftune", "0", "--lr", "1e-4",
          "--steering-inputs", "0", "--probe-inputs", "0",  # the text-dependence tests are not what is compared here
          "--n-train-tasks", "16"]  # encode 16 training tasks, not 137: the comparison needs no more, CI time does


def run(args, procs=1):
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else [sys.executable]
    r = subprocess.run([*head, str(ROOT / "train_sft.py"), *args], capture_output=True, text=True, timeout=900,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                            "PYTHONPATH": str(ROOT), "HOME": "/tmp"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def max_diff(a, b):
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    return max(float((x[k] - y[k]).abs().max()) for k in x)


@pytest.mark.parametrize("weighting", ["example", "token"])
def test_two_processes_train_the_same_hypernetwork_as_one(tmp_path, default_model_dir, weighting):
    one, two = tmp_path / "one", tmp_path / "two"
    run([*COMMON, "--loss-weighting", weighting, "--out", str(one)])
    run([*COMMON, "--loss-weighting", weighting, "--out", str(two)], procs=2)
    d = max_diff(one / "final" / "hypernet.safetensors", two / "final" / "hypernet.safetensors")
    assert d <= 1e-5, d
    l1 = [json.loads(x)["loss"] for x in (one / "log.jsonl").read_text().splitlines()]
    l2 = [json.loads(x)["loss"] for x in (two / "log.jsonl").read_text().splitlines()]
    assert len(l1) == len(l2) == 3 and max(abs(a - b) for a, b in zip(l1, l2)) < 1e-4, (l1, l2)
    assert not any(p.name.startswith("rank") for p in two.iterdir())  # one writer: rank 0


def test_a_torchrun_run_resumes(tmp_path, default_model_dir):
    full, part = tmp_path / "full", tmp_path / "part"
    args = COMMON
    run([*args, "--out", str(full), "--lora-dropout", "0.05"], procs=2)  # dropout on: per-rank RNG states resume too
    run([*args, "--out", str(part), "--lora-dropout", "0.05", "--stop-after", "2"], procs=2)
    assert not (part / "final").exists()
    run([*args, "--out", str(part), "--lora-dropout", "0.05", "--resume"], procs=2)
    assert max_diff(full / "final" / "hypernet.safetensors", part / "final" / "hypernet.safetensors") == 0.0


def test_ctrl_c_under_torchrun_checkpoints_every_rank_at_one_step(tmp_path, default_model_dir):
    """Ctrl-C in a terminal reaches torchrun and both workers (one process group), and torchrun passes
    it on to the workers once more: the step in flight ends on both ranks (they agree once per step),
    rank 0 writes the checkpoint of that step, ONE line `interrupted at step N; --resume continues`,
    and a --resume continues from step N. (What torchrun itself prints after its workers stop is
    its own.)"""
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(ROOT / "train_sft.py"),
            *COMMON, "--steps", "1000", "--ckpt-every", "1000", "--out", str(out)]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "HOME": "/tmp"}
    with open(err, "w") as f:
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=f, env=env, start_new_session=True)
        try:
            deadline = time.time() + 300
            while max(map(int, re.findall(r"(\d+)/1000", err.read_text())), default=0) < 2:  # the progress bar: 2 steps done
                assert p.poll() is None and time.time() < deadline, err.read_text()[-3000:]
                time.sleep(0.2)
            os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
            p.wait(timeout=120)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    text = err.read_text()
    lines = re.findall(r"^interrupted at step (\d+); --resume continues$", text, re.M)
    assert len(lines) == 1, text[-3000:]  # one line, from rank 0
    n = int(lines[0])
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == n >= 2  # --ckpt-every 1000: written by the Ctrl-C
    assert len((out / "log.jsonl").read_text().splitlines()) >= n
    r = run([*COMMON, "--steps", "1000", "--ckpt-every", "1000", "--out", str(out), "--resume", "--stop-after", "1"], procs=2)
    assert f"resumed at step {n}" in r.stderr, r.stderr[-2000:]
