"""Bad input to the five CLIs (model.py, t2l.py, train_sft.py, train_recon.py, eval.py), each run as
a user would, in a subprocess: the exit code is not 0, stderr is ONE line naming the file or flag
at fault (`error: ...`), no Python traceback, and every file that existed before is byte for byte
unchanged afterwards, with no file added (never a half-written output)."""
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import lora as L
import model as M
import t2l as H
from conftest import ROOT, build_tiny_hf
from data import prepare_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One folder of inputs, good and broken, that every case runs in (its cwd)."""
    w = tmp_path_factory.mktemp("world")
    build_tiny_hf("llama").save_pretrained(w / "tiny", safe_serialization=True)
    real = prepare_model.model_dir()
    # a T2L checkpoint for the real model (MiniLM: 384-dim descriptions), and broken copies of it
    mcfg = M.ModelConfig.from_json(real / "config.json")
    net = H.HyperNetwork(H.T2LConfig.for_base(mcfg, variant="S", d_task=384, latent=16, head_in=32))
    H.save(net, w / "ckpt")
    for name in ("ckpt_garbled", "ckpt_nan", "ckpt_badcfg", "ckpt_oddkey"):
        H.save(net, w / name)
    blob = (w / "ckpt_garbled" / "hypernet.safetensors").read_bytes()
    (w / "ckpt_garbled" / "hypernet.safetensors").write_bytes(blob[:40] + b"\x00garbage" + blob[48:])
    sd = load_file(w / "ckpt_nan" / "hypernet.safetensors")
    sd["mlp1.body.1.weight"][0, 0] = float("nan")
    save_file(sd, w / "ckpt_nan" / "hypernet.safetensors")
    (w / "ckpt_badcfg" / "t2l_config.json").write_text("[1, 2")
    cfg = json.loads((w / "ckpt_oddkey" / "t2l_config.json").read_text())
    (w / "ckpt_oddkey" / "t2l_config.json").write_text(json.dumps({**cfg, "evil": 1}))
    # model folders, each broken in one way (config, weights, tokenizer)
    for name, edit in [("m_list", lambda d: (d / "config.json").write_text("[]")),
                       ("m_strlayers", lambda d: (d / "config.json").write_text(json.dumps(
                           {**json.loads((d / "config.json").read_text()), "num_hidden_layers": "2"}))),
                       ("m_type", lambda d: (d / "config.json").write_text(json.dumps(
                           {**json.loads((d / "config.json").read_text()), "model_type": "gpt_neox"}))),
                       ("m_badjson", lambda d: (d / "config.json").write_text("{model_type: llama")),
                       ("m_trunc", lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000])),
                       ("m_nan", lambda d: save_file({**load_file(d / "model.safetensors"),
                                                      "model.norm.weight": torch.full((48,), float("nan"))}, d / "model.safetensors"))]:
        build_tiny_hf("llama").save_pretrained(w / name, safe_serialization=True)
        edit(w / name)
    (w / "m_tok").mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (w / "m_tok" / f).write_bytes((real / f).read_bytes())
    (w / "m_tok" / "tokenizer.json").write_text('{"version": "1.0", "model": 7}')
    # a user's folder, a plain file, a crafted pickle where a checkpoint would be
    (w / "mine").mkdir()
    (w / "mine" / "thesis.txt").write_text("two years of work")
    (w / "afile").write_text("not a folder")
    (w / "evil").mkdir()
    (w / "evil" / "config.json").write_text("{}")

    class Boom:
        def __reduce__(self):
            return (Path.touch, (w / "PWNED",))
    (w / "evil" / "ckpt.pt").write_bytes(pickle.dumps({"step": 1, "x": Boom()}))
    (w / "earlier").mkdir()
    (w / "earlier" / "config.json").write_text("{}")
    (w / "earlier" / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    # SNI-format folders: one with a malformed task file
    (w / "sni_bad" / "tasks").mkdir(parents=True)
    (w / "sni_bad" / "tasks" / "task1_x.json").write_text('{"Definition": ["Do it."], "Instances": [')
    # adapter libraries: one adapter without its config, one with garbled weights
    lcfg = L.LoraConfig(r=2)
    ad = {n: (torch.randn(2, i), torch.zeros(o, 2)) for n, (i, o) in L.module_shapes(mcfg, lcfg).items()}
    L.save_peft(ad, lcfg, w / "lib_noconfig" / "a" / "adapter")
    L.save_peft(ad, lcfg, w / "lib_noconfig" / "b" / "adapter")
    (w / "lib_noconfig" / "b" / "adapter" / "adapter_config.json").unlink()
    L.save_peft(ad, lcfg, w / "lib_garbled" / "a" / "adapter")
    (w / "lib_garbled" / "a" / "adapter" / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    (w / "runs").mkdir()
    return w


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


M_ = "model.py"
T_ = "t2l.py"
S_ = "train_sft.py"
R_ = "train_recon.py"
E_ = "eval.py"
DESC = ["--description", "Sort the numbers."]
CASES = [  # (id, script, args, what the one line must name)
    ("model-missing-folder", M_, ["--model", "nope", "--prompt", "hi"], "nope"),
    ("model-config-is-a-list", M_, ["--model", "m_list", "--prompt", "hi"], "config.json"),
    ("model-layers-as-string", M_, ["--model", "m_strlayers", "--prompt", "hi"], "num_hidden_layers"),
    ("model-unknown-type", M_, ["--model", "m_type", "--prompt", "hi"], "gpt_neox"),
    ("model-config-not-json", M_, ["--model", "m_badjson", "--prompt", "hi"], "config.json"),
    ("model-truncated-weights", M_, ["--model", "m_trunc", "--prompt", "hi"], "model.safetensors"),
    ("model-nan-weights", M_, ["--model", "m_nan", "--prompt", "hi"], "model.norm.weight"),
    ("model-garbled-tokenizer", M_, ["--model", "m_tok", "--prompt", "hi"], "tokenizer.json"),
    ("model-bad-flag-value", M_, ["--prompt", "hi", "--max-new-tokens", "many"], "--max-new-tokens"),
    ("t2l-missing-checkpoint", T_, ["--checkpoint", "nope", *DESC, "--out", "new1"], "t2l_config.json"),
    ("t2l-empty-description", T_, ["--checkpoint", "ckpt", "--description", "  ", "--out", "new2"], "description"),
    ("t2l-out-is-users-folder", T_, ["--checkpoint", "ckpt", *DESC, "--out", "mine"], "--force"),
    ("t2l-out-is-cwd", T_, ["--checkpoint", "ckpt", *DESC, "--out", ".", "--force"], "current directory"),
    ("t2l-out-is-the-checkpoint", T_, ["--checkpoint", "ckpt", *DESC, "--out", "ckpt", "--force"], "ckpt"),
    ("t2l-out-is-a-file", T_, ["--checkpoint", "ckpt", *DESC, "--out", "afile"], "afile"),
    ("t2l-garbled-checkpoint", T_, ["--checkpoint", "ckpt_garbled", *DESC, "--out", "new3"], "hypernet.safetensors"),
    ("t2l-nan-checkpoint", T_, ["--checkpoint", "ckpt_nan", *DESC, "--out", "new4"], "NaN"),
    ("t2l-config-not-json", T_, ["--checkpoint", "ckpt_badcfg", *DESC, "--out", "new5"], "t2l_config.json"),
    ("t2l-config-odd-key", T_, ["--checkpoint", "ckpt_oddkey", *DESC, "--out", "new6"], "evil"),
    ("t2l-count-params-no-config", T_, ["--count-params"], "--base-config"),
    ("t2l-bad-variant", T_, ["--count-params", "--variant", "XL"], "--variant"),
    ("t2l-missing-encoder", T_, ["--checkpoint", "ckpt", *DESC, "--out", "new7", "--encoder", "no_encoder"], "no_encoder"),
    ("t2l-nothing-to-do", T_, ["--checkpoint", "ckpt", *DESC], "--out"),
    ("sft-steps-zero", S_, ["--steps", "0"], "--steps"),
    ("sft-steps-negative", S_, ["--steps", "-5"], "--steps"),
    ("sft-lr-nan", S_, ["--lr", "nan"], "--lr"),
    ("sft-lr-negative", S_, ["--lr", "-1"], "--lr"),
    ("sft-batch-size-zero", S_, ["--batch-size", "0"], "--batch-size"),
    ("sft-ckpt-every-zero", S_, ["--ckpt-every", "0"], "--ckpt-every"),
    ("sft-label-smoothing-1.5", S_, ["--label-smoothing", "1.5"], "--label-smoothing"),
    ("sft-bad-prompt", S_, ["--prompt", "chatty"], "--prompt"),
    ("sft-bad-variant", S_, ["--variant", "XL"], "--variant"),
    ("sft-steps-not-a-number", S_, ["--steps", "ten"], "--steps"),
    ("sft-cuda-without-gpu", S_, ["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], "--device"),
    ("sft-resume-without-checkpoint", S_, ["--resume", "--out", "runs/none"], "ckpt.pt"),
    ("sft-resume-crafted-pickle", S_, ["--resume", "--out", "evil"], "ckpt.pt"),
    ("sft-unknown-task", S_, ["--variant", "lora", "--task", "no_such_task", "--out", "runs/x"], "no_such_task"),
    ("sft-missing-data-folder", S_, ["--data", "no_sni_here"], "no_sni_here"),
    ("sft-malformed-task-file", S_, ["--data", "sni_bad"], "task1_x.json"),
    ("sft-out-is-users-folder", S_, ["--out", "mine"], "mine"),
    ("sft-out-is-a-file", S_, ["--out", "afile"], "afile"),
    ("sft-out-holds-earlier-run", S_, ["--out", "earlier"], "--resume"),
    ("sft-model-folder-missing", S_, ["--model", "nope"], "nope"),
    ("recon-missing-library", R_, ["--library", "no_lib", "--eval-n", "0"], "no_lib"),
    ("recon-adapter-without-config", R_, ["--library", "lib_noconfig", "--eval-n", "0"], "adapter_config.json"),
    ("recon-garbled-adapter", R_, ["--library", "lib_garbled", "--eval-n", "0"], "adapter_model.safetensors"),
    ("recon-bad-loss", R_, ["--loss", "l7"], "--loss"),
    ("recon-steps-zero", R_, ["--steps", "0"], "--steps"),
    ("recon-bad-sweep", R_, ["--sweep", "4,x"], "--sweep"),
    ("eval-n-zero", E_, ["--n", "0"], "--n"),
    ("eval-missing-oracles", E_, ["--methods", "oracle", "--oracles", "MISSING", "--out", "runs/e1"], "MISSING"),
    ("eval-unknown-method", E_, ["--methods", "base,magic", "--out", "runs/e2"], "magic"),
    ("eval-method-without-input", E_, ["--methods", "t2l", "--out", "runs/e3"], "--t2l"),
    ("eval-merge-missing", E_, ["--merge", "nowhere", "--out", "runs/e4"], "results.json"),
    ("eval-unknown-task", E_, ["--tasks", "no_such_task", "--methods", "base", "--out", "runs/e5"], "no_such_task"),
    ("eval-missing-t2l", E_, ["--t2l", "nope", "--methods", "t2l", "--out", "runs/e6"], "t2l_config.json"),
    ("eval-out-is-cwd", E_, ["--methods", "base", "--out", ".", "--force"], "current directory"),
    ("eval-out-is-users-folder", E_, ["--methods", "base", "--out", "mine"], "mine"),
]


@pytest.mark.parametrize("script,args,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_harms_nothing(world, script, args, names):
    before = snapshot(world)
    r = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=world, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert r.returncode != 0, r.stdout[-500:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert names in lines[0], lines[0]
    assert snapshot(world) == before  # nothing changed, nothing added, nothing removed
    assert not (world / "PWNED").exists()  # the crafted pickle never ran


def test_there_are_at_least_forty_cases_over_the_five_clis():
    assert len(CASES) >= 40 and {c[1] for c in CASES} == {M_, T_, S_, R_, E_}
