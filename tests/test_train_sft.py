"""train_sft.py with plain LoRAs, on the real default model (a few tiny steps)."""
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import checkpoint
import common
import lora
import train_sft
from data.collection import load_collection
from model import load_pretrained, load_tokenizer

FAST = ["--batch-size", "2", "--eval-examples", "2", "--max-len", "96"]


def read_losses(path):
    return [json.loads(l)["loss"] for l in path.read_text().splitlines()]


@pytest.mark.slow
def test_lora_run_writes_everything_and_resume_is_exact(tmp_path, default_model_dir):
    full = tmp_path / "full"
    train_sft.main(["--variant", "lora", "--task", "list_first", "--steps", "6", "--out", str(full), "--ckpt-every", "3", *FAST])
    run = full / "list_first"
    for f in ("log.jsonl", "loss.png", "ckpt.pt", "config.json", "adapter/adapter_config.json",
              "adapter/adapter_model.safetensors", "adapter/result.json"):
        assert (run / f).is_file(), f
    ref = read_losses(run / "log.jsonl")
    assert len(ref) == 6 and all(l > 0 for l in ref)
    assert json.loads((run / "config.json").read_text())["steps"] == 6  # settings saved with the run
    assert torch.load(run / "ckpt.pt", weights_only=True)["config"]["task"] == "list_first"

    part = tmp_path / "part"
    train_sft.main(["--variant", "lora", "--task", "list_first", "--steps", "6", "--out", str(part), "--stop-after", "4", *FAST])
    assert not (part / "list_first" / "adapter").exists()
    train_sft.main(["--variant", "lora", "--task", "list_first", "--steps", "6", "--out", str(part), "--resume", *FAST])
    assert read_losses(part / "list_first" / "log.jsonl") == ref  # bit-for-bit the same losses


@pytest.mark.slow
def test_only_lora_parameters_move(default_model_dir):
    model = load_pretrained(default_model_dir)
    tok = load_tokenizer(default_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = train_sft.TrainConfig(steps=3, batch_size=2, lr=1e-2, max_len=96)
    lcfg = lora.LoraConfig()
    lora.inject(model, lcfg)
    coll = load_collection("builtin")
    import tempfile, pathlib
    trainable, losses, _ = train_sft.train(model, tok, coll.tasks, ["list_max"], [], cfg, lcfg, pathlib.Path(tempfile.mkdtemp()) / "run",
                                   torch.device("cpu"))
    assert any(p.abs().sum() > 0 for n, p in trainable.named_parameters() if n.startswith("B."))  # B left zero: LoRA moved
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # base weights bitwise unchanged
    assert not any(p.requires_grad for p in model.parameters())


def test_lr_schedule():
    cfg = train_sft.TrainConfig(steps=100, lr=1.0, warmup_frac=0.2)
    lrs = [train_sft.get_lr(i, cfg) for i in range(100)]
    assert lrs[0] == 1 / 20 and lrs[19] == 1.0 and max(lrs) == 1.0
    assert all(a >= b for a, b in zip(lrs[19:], lrs[20:])) and lrs[-1] < 0.05


def test_bad_task_and_variant(capsys):
    with pytest.raises(SystemExit, match="unknown task 'no_such_task'"):
        train_sft.main(["--variant", "lora", "--task", "no_such_task", *FAST])
    with pytest.raises(SystemExit, match="--variant must be"):
        train_sft.main(["--variant", "XL"])


T2L_FAST = ["--variant", "S", "--steps", "6", "--batch-size", "4", "--max-len", "96", "--val-every", "2", "--val-examples", "1",
            "--final-tasks", "1", "--final-examples", "2", "--latent", "32", "--head-in", "64", "--ckpt-every", "3",
            "--steering-inputs", "1", "--probe-inputs", "1"]


@pytest.mark.slow
def test_t2l_run_writes_everything_and_resume_is_exact(tmp_path, default_model_dir):
    full = tmp_path / "full"
    train_sft.main([*T2L_FAST, "--out", str(full)])
    for f in ("log.jsonl", "loss.png", "ckpt.pt", "config.json", "zero_shot.json", "zero_shot.png",
              "best/hypernet.safetensors", "best/t2l_config.json", "best/train_config.json", "final/hypernet.safetensors"):
        assert (full / f).is_file(), f
    log = [json.loads(l) for l in (full / "log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and "val_loss" in log[1] and len(log[0]["tasks"]) == 4
    assert json.loads((full / "best" / "train_config.json").read_text())["variant"] == "S"
    # text dependence at every validation, and the closing table's controls and steering test
    assert 0 <= log[1]["task_share"] <= 1 and log[1]["steering_chance"] == pytest.approx(1 / 6)
    z = json.loads((full / "zero_shot.json").read_text())
    assert set(z["means"]) == {"base", "T2L-S", "t2l_random", "t2l_wrong"}
    assert {p["reference"] for p in z["paired"]} >= {"t2l_random", "t2l_wrong"}
    for setting in ("seen", "unseen"):
        st = z["steering"][setting]
        # chance = 1 / (members described): 6 trained members a group (seen), 4-5 unseen ones (unseen)
        assert {"accuracy", "chance", "n"} <= set(st) and 0 < st["chance"] <= (0.17 if setting == "seen" else 0.25) and st["n"] > 0
    ref = [r["loss"] for r in log]

    part = tmp_path / "part"
    train_sft.main([*T2L_FAST, "--out", str(part), "--stop-after", "3"])
    assert not (part / "final").exists()
    with open(part / "log.jsonl", "a") as f:  # a kill after step 4 logged but before its checkpoint
        f.write(json.dumps({**log[3], "loss": -1.0}) + "\n")
    train_sft.main([*T2L_FAST, "--out", str(part), "--resume"])
    assert read_losses(part / "log.jsonl") == ref  # cut back to the checkpoint, then the same losses
    a, b = (load_file(d / "final" / "hypernet.safetensors") for d in (full, part))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bitwise the same hypernetwork


@pytest.mark.slow
def test_packed_and_padded_training_give_the_same_losses(tmp_path, default_model_dir):
    """--pack (the default) against --no-pack, with every random draw inside the step off (NEFTune, both
    dropouts): the same losses, step 1 on the same weights and step 2 after an update from the same
    gradients."""
    same = ["--neftune", "0", "--lora-dropout", "0", "--hyper-dropout", "0", "--stop-after", "3", "--val-every", "100"]
    for name, flag in (("packed", "--pack"), ("padded", "--no-pack")):
        train_sft.main([*T2L_FAST, *same, flag, "--out", str(tmp_path / name)])
    packed, padded = (read_losses(tmp_path / name / "log.jsonl") for name in ("packed", "padded"))
    assert len(packed) == 3 and packed == pytest.approx(padded, abs=1e-5)
    assert json.loads((tmp_path / "packed" / "config.json").read_text())["pack"] is True


def test_an_embedding_depends_on_its_text_alone_not_on_what_was_encoded_before():
    """Why a resumed T2L run is bitwise equal: the encoder cache is not in the checkpoint, so a
    resumed run encodes in another order and other company; each text is encoded alone."""
    import t2l
    texts = ["Sort the numbers from smallest to largest.", "Say yes or no", "Reverse the word, letter by letter."]
    a = t2l.TaskEncoder()(texts)
    enc = t2l.TaskEncoder()
    enc([texts[2]])
    enc(["Something else entirely, and much longer than the others, to change any padding."])
    assert torch.equal(enc(texts), a)


@pytest.mark.slow
def test_t2l_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, default_model_dir, monkeypatch):
    real = train_sft.sft_loss
    calls = []

    def poisoned(*args, **kw):  # the third step's loss is NaN
        calls.append(1)
        loss = real(*args, **kw)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(train_sft, "sft_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit, match=r"loss is nan at step 3; the last good checkpoint is .*ckpt\.pt"):
        train_sft.main([*T2L_FAST, "--out", str(out), "--ckpt-every", "2"])
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == 2  # saved after step 2, before the bad one


@pytest.mark.parametrize("script", ["train_sft", "train_recon"])
def test_help_lists_every_setting_with_its_comment_and_default(script, capsys):
    """The training settings are documented once, as comments on the config dataclass; --help must
    show each of them with its default, so `python train_sft.py --help` is the settings reference."""
    import dataclasses
    import re
    import train_recon
    mod = {"train_sft": train_sft, "train_recon": train_recon}[script]
    cls = {"train_sft": train_sft.TrainConfig, "train_recon": train_recon.ReconConfig}[script]
    with pytest.raises(SystemExit):
        mod.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare word streams
    comments = common.field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name == "objective":  # train_recon writes it itself; not a flag
            continue
        assert f.name in comments, f"{cls.__name__}.{f.name} has no comment"
        flag = f"--{f.name.replace('_', '-')}"
        first_words = " ".join(comments[f.name].split()[:4])
        assert re.search(re.escape(flag) + r"(, --no-\S+)? (\S+ )?" + re.escape(first_words), text), f"{flag}: comment missing from --help"
        if f.default is None:  # a recipe's setting: its comment says so, no "(default: None)"
            assert "default: the recipe's" in comments[f.name] and f"{flag} {f.name.upper()} (default: None)" not in text
        else:
            assert f"(default: {f.default})" in text


def test_a_crafted_pickle_checkpoint_is_refused_without_running(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "PWNED",))
    (tmp_path / "ckpt.pt").write_bytes(pickle.dumps({"params": {}, "x": Boom()}))
    with pytest.raises(checkpoint.CheckpointError, match="refused, nothing was run"):
        checkpoint.read_ckpt(tmp_path / "ckpt.pt")
    assert not (tmp_path / "PWNED").exists()
    pickle.loads((tmp_path / "ckpt.pt").read_bytes())  # the file really is armed: plain pickle runs it
    assert (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_ctrl_c_checkpoints_then_says_how_to_continue(tmp_path, default_model_dir):
    """SIGINT during training (issue 21): the step in flight ends, its checkpoint is written, then ONE
    line `interrupted at step N; --resume continues` and exit code 130, no traceback; --resume then
    continues from step N."""
    import signal
    import subprocess
    import sys
    import os
    import time
    from conftest import ROOT
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: on a busy machine two spinning ones make a step 30x slower
    out, err = tmp_path / "run", tmp_path / "stderr.txt"
    args = [sys.executable, str(ROOT / "train_sft.py"), "--variant", "lora", "--task", "list_first", "--steps", "1000",
            "--out", str(out), *FAST]
    with open(err, "w") as f:  # a file, not a pipe: the progress bar never fills a buffer nobody reads
        p = subprocess.Popen([*args, "--ckpt-every", "2"], stdout=subprocess.DEVNULL, stderr=f, env=env)
        try:
            deadline = time.time() + 120
            while not (out / "list_first" / "ckpt.pt").is_file():  # training is under way
                assert p.poll() is None and time.time() < deadline, err.read_text()[-2000:]
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=60)
        finally:
            p.kill() if p.poll() is None else None
    text = err.read_text()
    last = [x.strip() for x in text.splitlines() if x.strip()][-1]
    assert rc == 130 and "Traceback" not in text, text[-2000:]
    n = int(re.fullmatch(r"interrupted at step (\d+); --resume continues", last).group(1))
    assert torch.load(out / "list_first" / "ckpt.pt", weights_only=True)["step"] == n >= 2
    assert len(read_losses(out / "list_first" / "log.jsonl")) == n
    r = subprocess.run([*args, "--ckpt-every", "2", "--resume", "--stop-after", "1"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0 and f"resumed at step {n}" in r.stderr, r.stderr[-2000:]
    assert len(read_losses(out / "list_first" / "log.jsonl")) == n + 1
