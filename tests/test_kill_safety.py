"""A writer killed with SIGKILL at any instant while it replaces an adapter folder, a T2L
checkpoint folder or a training checkpoint leaves something that loads: the old version or the
new one, never half of one and never nothing. Both ways of swapping folders are tested: the
atomic RENAME_EXCHANGE and the two-rename fallback (with its recovery on the next write)."""
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import common
import lora
import t2l
import checkpoint
from conftest import ROOT

WRITER = r"""
import sys, torch
sys.path.insert(0, {root!r})
import checkpoint, common, lora, t2l
kind, out = sys.argv[1], sys.argv[2]
if kind == "adapter_fallback":
    common._exchange = lambda a, b: False  # force the two-rename path
shapes = {{"model.layers.0.self_attn.q_proj": (16, 16), "model.layers.0.self_attn.v_proj": (16, 8)}}
cfg = t2l.T2LConfig(variant="S", d_task=8, latent=8, head_in=16, rank=2, targets=["q_proj", "v_proj"], n_layers=2,
                  module_dims={{"q_proj": [16, 16], "v_proj": [16, 8]}},
                  base_model={{"model_type": "llama", "hidden_size": 16, "num_hidden_layers": 2}})  # t2l.load requires it
net = t2l.HyperNetwork(cfg)
opt = torch.optim.AdamW(net.parameters())
print("ready", flush=True)
i = 0
while True:
    i += 1
    if kind.startswith("adapter"):
        ad = {{n: (torch.full((2, d_in), float(i)), torch.full((d_out, 2), float(i))) for n, (d_in, d_out) in shapes.items()}}
        lora.save_peft(ad, lora.LoraConfig(r=2), out)
    elif kind == "t2l":
        with torch.no_grad():
            net.offsets["q_proj"].fill_(float(i))
        t2l.save(net, out)
    else:
        checkpoint.save_ckpt(__import__("pathlib").Path(out), net, opt, i, cfg, [float(i)])
"""


def loads(kind, out):
    """-> the version number of what is on disk, or raise."""
    if kind.startswith("adapter"):
        ad, _ = lora.load_peft(out)
        A = ad["model.layers.0.self_attn.q_proj"][0]
        assert torch.all(A == A.flatten()[0]) and torch.all(ad["model.layers.0.self_attn.v_proj"][1] == A.flatten()[0])
        return int(A.flatten()[0])
    if kind == "t2l":
        return int(t2l.load(out).offsets["q_proj"].flatten()[0])
    return checkpoint.read_ckpt(out)["step"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["adapter", "adapter_fallback", "t2l", "ckpt"])
def test_sigkill_at_any_moment_leaves_a_loadable_old_or_new_version(tmp_path, kind):
    out = tmp_path / ("ckpt.pt" if kind == "ckpt" else "thing")
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    rng = random.Random(0)
    seen = []
    for trial in range(8):
        p = subprocess.Popen([sys.executable, str(script), kind, str(out)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6) if trial else 0.3)  # let a few writes happen, then kill mid-way
        p.send_signal(signal.SIGKILL)
        p.wait()
        if kind == "adapter_fallback":
            common.recover_folder(out, lora.ADAPTER_FILES)  # what the next write does first, after a kill between the renames
        seen.append(loads(kind, out))  # must load: the old or the new version, never half
        leftovers = [q.name for q in tmp_path.iterdir() if q.name.startswith(".old-")]
        assert not leftovers or kind == "adapter_fallback", leftovers
    assert all(v >= 1 for v in seen) and len(set(seen)) > 1, seen  # kills landed at different points


def test_a_crash_between_the_two_fallback_renames_is_recovered_by_the_next_write(tmp_path, monkeypatch):
    """The deterministic version of the worst instant of the fallback path: the old folder has been
    renamed aside and the new one not yet renamed in."""
    import os
    shapes = {"model.layers.0.self_attn.q_proj": (4, 4)}
    ad = lambda v: {n: (torch.full((2, i), v), torch.full((o, 2), v)) for n, (i, o) in shapes.items()}
    lora.save_peft(ad(1.0), lora.LoraConfig(r=2), tmp_path / "a")
    monkeypatch.setattr(common, "_exchange", lambda a, b: False)
    real, calls = os.replace, []

    def dies_on_second(src, dst):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("killed")  # the process ends here
        return real(src, dst)
    monkeypatch.setattr(common.os, "replace", dies_on_second)
    with pytest.raises(SystemExit):
        lora.save_peft(ad(2.0), lora.LoraConfig(r=2), tmp_path / "a")
    monkeypatch.setattr(common.os, "replace", real)
    assert not (tmp_path / "a").exists() and (tmp_path / ".old-a").is_dir()
    lora.save_peft(ad(3.0), lora.LoraConfig(r=2), tmp_path / "b")  # another folder: untouched by the recovery
    common.recover_folder(tmp_path / "a", lora.ADAPTER_FILES)  # what the next write of "a" (or a reader wanting it) does first
    assert lora.load_peft(tmp_path / "a")[0]["model.layers.0.self_attn.q_proj"][0][0, 0] == 1.0
    lora.save_peft(ad(4.0), lora.LoraConfig(r=2), tmp_path / "a")
    assert lora.load_peft(tmp_path / "a")[0]["model.layers.0.self_attn.q_proj"][0][0, 0] == 4.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
