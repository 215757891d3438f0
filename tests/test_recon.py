"""train_recon.py: a hypernetwork that compresses a library of LoRAs (paper eq. (4))."""
from pathlib import Path

import pytest
import torch

import lora
import train_recon
from model import ModelConfig, load_pretrained


def random_library(mcfg, lcfg, n, seed=0):
    """n random adapters (B non-zero, so Delta W is a real rank-r matrix) as library entries."""
    g = torch.Generator().manual_seed(seed)
    entries = []
    for i in range(n):
        ad = {k: (torch.randn(lcfg.r, d_in, generator=g) / d_in ** 0.5, torch.randn(d_out, lcfg.r, generator=g) * 0.1)
              for k, (d_in, d_out) in lora.module_shapes(mcfg, lcfg).items()}
        entries.append(train_recon.Entry(f"task{i}", Path(f"task{i}"), ad, [f"task {i}"]))
    return entries


def test_one_hot_reconstruction_of_four_adapters_is_tight_and_gives_the_oracle_logits(tiny_dirs, tmp_path):
    folder = tiny_dirs["llama"][1]
    mcfg = ModelConfig.from_json(folder / "config.json")
    lcfg = lora.LoraConfig(r=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    entries = random_library(mcfg, lcfg, 4)
    cfg = train_recon.ReconConfig(variant="L", one_hot=True, steps=300, batch_size=4, lr=2e-3, latent=64, head_in=128, device="cpu")
    net, losses, errs, condition, _ = train_recon.train(cfg, entries, lcfg, mcfg, tmp_path, torch.device("cpu"))
    assert losses[-1] < 0.2 * losses[0]
    assert max(errs.values()) < 0.05, errs  # relative L1 error of Delta W below 5% for every adapter

    model = load_pretrained(folder)
    lora.inject(model, lcfg)
    ids = torch.randint(3, mcfg.vocab_size, (2, 10))
    with torch.no_grad():
        base = model(ids)
        for i, e in enumerate(entries):
            rec = {k: (A[0], B[0]) for k, (A, B) in net(condition([i])).items()}
            with lora.use_adapter(model, e.adapter, lcfg.scaling):
                want = model(ids)
            with lora.use_adapter(model, rec, lcfg.scaling):
                got = model(ids)
            moved = (want - base).abs().max()
            assert moved > 1e-2  # the oracle adapter changes the logits ...
            assert (got - want).abs().max() < 0.1 * moved  # ... and the reconstruction changes them the same way


def test_standardised_ab_loss_also_fits(tiny_dirs, tmp_path):
    mcfg = ModelConfig.from_json(tiny_dirs["mistral"][1] / "config.json")
    lcfg = lora.LoraConfig(r=2, target_modules=["v_proj"])
    entries = random_library(mcfg, lcfg, 3, seed=1)
    cfg = train_recon.ReconConfig(variant="M", one_hot=True, loss="ab", steps=300, batch_size=3, lr=1e-2, latent=32, head_in=64)
    _, losses, errs, _, _ = train_recon.train(cfg, entries, lcfg, mcfg, tmp_path, torch.device("cpu"))
    assert losses[-1] < 0.1 * losses[0] and max(errs.values()) < 0.2, (losses[-1], errs)  # measured: 1.4% of start, <= 11%



def test_factored_squared_error_loss_is_exact_and_fits(tiny_dirs, tmp_path):
    g = torch.Generator().manual_seed(0)
    A, tA = torch.randn(3, 4, 20, generator=g), torch.randn(3, 4, 20, generator=g)  # (n, r, d_in)
    B, tB = torch.randn(3, 12, 4, generator=g), torch.randn(3, 12, 4, generator=g)  # (n, d_out, r)
    torch.testing.assert_close(train_recon.delta_sq_norm(*train_recon.lora_difference(A, B, tA, tB)), ((B @ A - tB @ tA) ** 2).sum((1, 2)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(train_recon.delta_sq_norm(A, B), ((B @ A) ** 2).sum((1, 2)), rtol=1e-4, atol=1e-3)
    mcfg = ModelConfig.from_json(tiny_dirs["mistral"][1] / "config.json")
    lcfg = lora.LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    entries = random_library(mcfg, lcfg, 3, seed=2)
    cfg = train_recon.ReconConfig(variant="L", one_hot=True, loss="delta_l2", steps=300, batch_size=3, lr=2e-3, latent=32, head_in=64)
    _, losses, errs, _, _ = train_recon.train(cfg, entries, lcfg, mcfg, tmp_path, torch.device("cpu"))
    assert losses[0] > 0.9 and losses[-1] < 0.01 and max(errs.values()) < 0.1, (losses[0], losses[-1], errs)

def save(adapter, lcfg, path, base="tiny"):
    return lora.save_peft(adapter, lcfg, path, base_model=base, extra={"task": path.parent.name, "description": "Do the thing."})


def test_library_that_disagrees_names_the_adapter(tiny_dirs, tmp_path):
    mcfg = ModelConfig.from_json(tiny_dirs["llama"][1] / "config.json")
    l4 = lora.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    a, b = random_library(mcfg, l4, 2)
    save(a.adapter, l4, tmp_path / "lib" / "a" / "adapter")
    save(b.adapter, l4, tmp_path / "lib" / "b" / "adapter")
    entries, cfg = train_recon.load_library(tmp_path / "lib", mcfg, {})
    assert [e.name for e in entries] == ["a", "b"] and cfg.r == 4 and entries[0].descriptions == ["Do the thing."]

    l2 = lora.LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    lq = lora.LoraConfig(r=4, target_modules=["q_proj"])
    cases = [
        ("rank", lambda p: save(random_library(mcfg, l2, 1)[0].adapter, l2, p)),
        ("targets", lambda p: save(random_library(mcfg, lq, 1)[0].adapter, lq, p)),
        ("base model", lambda p: save(b.adapter, l4, p, base="another-model")),
    ]
    for what, write in cases:
        bad = tmp_path / f"lib_{what.replace(' ', '_')}"
        save(a.adapter, l4, bad / "a" / "adapter")
        write(bad / "z" / "adapter")
        with pytest.raises(lora.LoraError) as e:
            train_recon.load_library(bad, mcfg, {})
        msg = str(e.value)
        assert what in msg and str(bad / "z" / "adapter") in msg and "\n" not in msg, msg

    other = ModelConfig.from_json(tiny_dirs["llama"][1] / "config.json")
    other.num_hidden_layers = 2  # a base model with fewer layers: the library's layer-2 modules do not exist in it
    with pytest.raises(lora.LoraError, match="not in the base model"):
        train_recon.load_library(tmp_path / "lib", other, {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(lora.LoraError, match="no PEFT adapters found"):
        train_recon.load_library(tmp_path / "empty", mcfg, {})
    with pytest.raises(lora.LoraError, match="library folder not found"):
        train_recon.load_library(tmp_path / "missing", mcfg, {})
    (tmp_path / "lib" / "c" / "adapter").mkdir(parents=True)  # an adapter without its config: never skipped
    (tmp_path / "lib" / "c" / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    with pytest.raises(lora.LoraError, match="without adapter_config.json"):
        train_recon.load_library(tmp_path / "lib", mcfg, {})


def test_cli_writes_checkpoint_report_and_a_sweep_gathered_across_runs(tiny_dirs, tmp_path):
    folder = tiny_dirs["llama"][1]
    mcfg = ModelConfig.from_json(folder / "config.json")
    lcfg = lora.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    for e in random_library(mcfg, lcfg, 4):
        save(e.adapter, lcfg, tmp_path / "lib" / e.name / "adapter")
    out = tmp_path / "recon"
    common = ["--library", str(tmp_path / "lib"), "--model", str(folder), "--one-hot", "--steps", "20", "--eval-n", "0",
              "--variant", "L", "--latent", "32", "--head-in", "64", "--out", str(out)]
    train_recon.main([*common, "--sweep", "2,all"])
    for f in ("final/hypernet.safetensors", "final/t2l_config.json", "report.md", "report.json", "loss.png",
              "sweep_2/report.md", "sweep.json", "sweep.png"):
        assert (out / f).is_file(), f
    import json
    assert json.loads((out / "final" / "train_config.json").read_text())["objective"] == "recon"
    assert [s["n_tasks"] for s in json.loads((out / "sweep.json").read_text())] == [2, 4]
    train_recon.main([*common, "--sweep", "3"])  # another process, another size: the sweep gathers all three
    assert [s["n_tasks"] for s in json.loads((out / "sweep.json").read_text())] == [2, 3, 4]


def test_lora_difference_is_the_difference_of_the_two_products():
    """The loss computes B A - tB tA as one rank-2r product; it must equal the two products apart."""
    g = torch.Generator().manual_seed(0)
    A, tA = torch.randn(3, 4, 20, generator=g), torch.randn(3, 4, 20, generator=g)  # (n, r, d_in)
    B, tB = torch.randn(3, 12, 4, generator=g), torch.randn(3, 12, 4, generator=g)  # (n, d_out, r)
    torch.testing.assert_close(train_recon.delta(*train_recon.lora_difference(A, B, tA, tB)), B @ A - tB @ tA, rtol=1e-5, atol=1e-5)


def test_generated_adapter_backward_is_correct(tiny_dirs):
    """HyperNetwork.forward hands out per-layer views with unbind (a linear-time backward, see
    t2l.py); its gradients must match finite differences, with a different weight on every layer
    of every module so that every view's gradient path counts."""
    import t2l
    mcfg = ModelConfig.from_json(tiny_dirs["llama"][1] / "config.json")
    hcfg = t2l.T2LConfig.for_base(mcfg, variant="S", d_task=6, latent=16, head_in=8, rank=2, alpha=4.0,
                                use_rslora=False, targets=["q_proj", "v_proj"], encoder="x", dropout=0.0)
    net = t2l.HyperNetwork(hcfg).double()
    for p in net.heads.parameters():  # non-zero heads, so B depends on the input
        torch.nn.init.normal_(p, std=0.1)
    assert len(net(torch.randn(1, 6, dtype=torch.float64))) == 2 * mcfg.num_hidden_layers

    def f(emb):
        return sum((A * (i + 1)).sum() + (B ** 2).sum() * (i + 2) for i, (A, B) in enumerate(net(emb).values()))
    assert torch.autograd.gradcheck(f, (torch.randn(3, 6, dtype=torch.float64, requires_grad=True),))


@pytest.mark.slow
def test_ctrl_c_checkpoints_then_resume_continues(tiny_dirs, tmp_path):
    """SIGINT during reconstruction training: as train_sft.py (checkpoint.CtrlC), the step in flight
    ends, its checkpoint is written, ONE line `interrupted at step N; --resume continues`, exit code
    130, no traceback; --resume continues from step N."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    from conftest import ROOT
    folder = tiny_dirs["llama"][1]
    mcfg = ModelConfig.from_json(folder / "config.json")
    lcfg = lora.LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    for e in random_library(mcfg, lcfg, 4):
        save(e.adapter, lcfg, tmp_path / "lib" / e.name / "adapter")
    out, err = tmp_path / "recon", tmp_path / "stderr.txt"
    args = [sys.executable, str(ROOT / "train_recon.py"), "--library", str(tmp_path / "lib"), "--model", str(folder),
            "--one-hot", "--steps", "100000", "--eval-n", "0", "--variant", "L", "--latent", "32", "--head-in", "64",
            "--out", str(out), "--ckpt-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(err, "w") as f:  # a file, not a pipe: the progress bar never fills a buffer nobody reads
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=f, env=env)
        try:
            deadline = time.time() + 120
            while not (out / "ckpt.pt").is_file():  # training is under way
                assert p.poll() is None and time.time() < deadline, err.read_text()[-2000:]
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            rc = p.wait(timeout=60)
        finally:
            p.kill() if p.poll() is None else None
    text = err.read_text()
    last = [x.strip() for x in text.splitlines() if x.strip()][-1]
    assert rc == 130 and "Traceback" not in text, text[-2000:]
    n = int(re.fullmatch(r".*interrupted at step (\d+); --resume continues", last).group(1))
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == n >= 5
    r = subprocess.run([*args, "--resume", "--stop-after", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and f"resumed at step {n}" in r.stderr, r.stderr[-2000:]
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == n + 1
