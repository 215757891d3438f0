"""Bad input to the five CLIs (model.py, t2l.py, train_sft.py, train_recon.py, eval.py) and to data/'s
two (python -m data.prepare_model, python -m data), each run as a user would, in a subprocess: the
exit code is not 0, stderr is ONE line naming the file or flag at fault (`error: ...`), no Python
traceback, and every file that existed before is byte for byte unchanged afterwards, with no file
added (never a half-written output). Then the same promises in-process: prepare_model replaces only
a folder it wrote and never leaves half a model; Transformer.generate checks its own arguments."""
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

import common
import lora
import t2l
from model import ModelConfig, ModelError, load_pretrained
from conftest import ROOT, build_tiny_hf
from data import prepare_model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One folder of inputs, good and broken, that every case runs in (its cwd)."""
    w = tmp_path_factory.mktemp("world")
    build_tiny_hf("llama").save_pretrained(w / "tiny", safe_serialization=True)
    real = prepare_model.model_dir()
    # a T2L checkpoint for the real model (MiniLM: 384-dim descriptions), and broken copies of it
    mcfg = ModelConfig.from_json(real / "config.json")
    net = t2l.HyperNetwork(t2l.T2LConfig.for_base(mcfg, variant="S", d_task=384, latent=16, head_in=32))
    t2l.save(net, w / "ckpt")
    for name in ("ckpt_garbled", "ckpt_nan", "ckpt_badcfg", "ckpt_oddkey"):
        t2l.save(net, w / name)
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
    (w / "userbest" / "best").mkdir(parents=True)  # a run folder whose best/ holds a user's file
    (w / "userbest" / "best" / "notes.txt").write_text("mine")
    # SNI-format folders: one with a malformed task file
    (w / "sni_bad" / "tasks").mkdir(parents=True)
    (w / "sni_bad" / "tasks" / "task1_x.json").write_text('{"Definition": ["Do it."], "Instances": [')
    # adapter libraries: one adapter without its config, one with garbled weights
    lcfg = lora.LoraConfig(r=2)
    ad = {n: (torch.randn(2, i), torch.zeros(o, 2)) for n, (i, o) in lora.module_shapes(mcfg, lcfg).items()}
    lora.save_peft(ad, lcfg, w / "lib_noconfig" / "a" / "adapter")
    lora.save_peft(ad, lcfg, w / "lib_noconfig" / "b" / "adapter")
    (w / "lib_noconfig" / "b" / "adapter" / "adapter_config.json").unlink()
    lora.save_peft(ad, lcfg, w / "lib_garbled" / "a" / "adapter")
    (w / "lib_garbled" / "a" / "adapter" / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{bad")
    (w / "runs").mkdir()
    # for prepare_model: links to a user's folder and to an empty one, a stand-in home directory (the
    # test points HOME at it), a user's folder where a killed swap's leftovers would be, files that
    # are not GGUF models, and a folder that holds the GGUF being read
    (w / "empty").mkdir()
    (w / "link_mine").symlink_to("mine")
    (w / "link_empty").symlink_to("empty")
    (w / "home").mkdir()
    (w / ".old-fresh").mkdir()
    (w / ".old-fresh" / "notes.txt").write_text("mine too")
    (w / "cut.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01" * 30)  # a GGUF header cut short
    (w / "gg").mkdir()
    (w / "gg" / "m.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    # t2l_config.json values of the wrong type, NaN or missing (issue 21): refused on load, before any use
    for name, edit in [("ckpt_alpha_str", {"alpha": "16"}), ("ckpt_alpha_nan", {"alpha": float("nan")}),
                       ("ckpt_alpha_neg", {"alpha": -16.0}), ("ckpt_rank_zero", {"rank": 0}), ("ckpt_nobase", None)]:
        t2l.save(net, w / name)
        cfg = json.loads((w / name / "t2l_config.json").read_text())
        cfg = {k: v for k, v in cfg.items() if k != "base_model"} if edit is None else {**cfg, **edit}
        (w / name / "t2l_config.json").write_text(json.dumps(cfg))  # (json writes NaN as NaN)
    # train_config.json beside a checkpoint, of the wrong shape (scripts/adapter_map.py reads its defaults there)
    for name, tc in (("ckpt_tclist", [1, 2]), ("ckpt_tcseed", {"seed": "zero"})):
        t2l.save(net, w / name, {"train_config.json": tc})
    # adapter_config.json whose r disagrees with the tensors' rank (2), or whose lora_alpha is not > 0
    for name, edit in (("lib_rank", {"r": 4}), ("lib_alpha", {"lora_alpha": -16})):
        lora.save_peft(ad, lcfg, w / name / "a" / "adapter")
        f = w / name / "a" / "adapter" / "adapter_config.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), **edit}))
    # run folders to --resume: checkpoints with a wrong type, a step past --steps, other settings
    ok = {"params": {}, "opt": {}, "step": 3, "rng": torch.get_rng_state(), "losses": [1.0] * 3, "config": {}}
    for name, edit in (("run_steptype", {"step": "3"}), ("run_losses", {"losses": "1,1,1"}),
                       ("run_far", {"step": 10 ** 4, "losses": [1.0] * 10 ** 4}),
                       ("run_lr", {"config": {"lr": 0.001, "batch_size": 8, "out": "run_lr", "device": "cpu"}})):
        (w / name).mkdir()
        (w / name / "config.json").write_text("{}")
        torch.save({**ok, **edit}, w / name / "ckpt.pt")
    # eval.py --merge / scripts/report.py table inputs of the wrong shape
    for name, r in (("res_badrow", {"tasks": {"t1": 0.5}}), ("res_badfam", {"tasks": {"t1": {"base": 0.5}}, "families": ["x"]})):
        (w / name).mkdir()
        (w / name / "results.json").write_text(json.dumps(r))
    # SNI-format folders: a description or a split file naming no task, an empty input, an empty output
    good = {"Definition": ["Copy the input."], "Instances": [{"input": f"in {i}", "output": [f"in {i}"]} for i in range(5)]}
    for name, task, extra in [
            ("sni_desc_typo", good, {"descriptions.json": json.dumps({"task1_ok": ["Copy it."], "task1_okk": ["Copy it."]})}),
            ("sni_split_typo", good, {"splits/default/test_tasks.txt": "task1_ok\ntask9_gone\n"}),
            ("sni_empty_in", {**good, "Instances": good["Instances"] + [{"input": "", "output": ["x"]}]}, {}),
            ("sni_empty_out", {**good, "Instances": good["Instances"] + [{"input": "y", "output": [" "]}]}, {})]:
        (w / name / "tasks").mkdir(parents=True)
        (w / name / "tasks" / "task1_ok.json").write_text(json.dumps(task))
        for rel, text in extra.items():
            (w / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (w / name / rel).write_text(text)
    # an SNI task whose every test input is 1 MB (more tokens than the model has positions), and one
    # where one of its two test inputs is (10 instances: the last 2 are its test split)
    long = "lorem ipsum " * 90000
    short = [{"input": f"{i}", "output": [f"{i}"]} for i in range(10)]
    (w / "sni_long" / "tasks").mkdir(parents=True)
    (w / "sni_long" / "tasks" / "task1_long.json").write_text(json.dumps(
        {"Definition": "Copy.", "Instances": short[:4] + [{"input": long, "output": ["x"]}]}))
    (w / "sni_long" / "tasks" / "task2_some.json").write_text(json.dumps(
        {"Definition": "Copy.", "Instances": short[:8] + [{"input": long, "output": ["x"]}, short[9]]}))
    return w


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


M_ = "model.py"
T_ = "t2l.py"
S_ = "train_sft.py"
R_ = "train_recon.py"
E_ = "eval.py"
P_ = "-m data.prepare_model"  # run as modules, the way their docs say
D_ = "-m data"
RP_ = "-m scripts.report"
AM_ = "-m scripts.adapter_map"
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
    ("model-temperature-nan", M_, ["--prompt", "hi", "--temperature", "nan"], "--temperature"),
    ("model-temperature-inf", M_, ["--prompt", "hi", "--temperature", "inf"], "--temperature"),
    ("model-temperature-negative", M_, ["--prompt", "hi", "--temperature", "-1"], "--temperature"),
    ("model-top-p-nan", M_, ["--prompt", "hi", "--temperature", "1", "--top-p", "nan"], "--top-p"),
    ("model-top-p-zero", M_, ["--prompt", "hi", "--top-p", "0"], "--top-p"),
    ("model-top-p-above-one", M_, ["--prompt", "hi", "--top-p", "1.5"], "--top-p"),
    ("model-max-new-tokens-zero", M_, ["--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens"),
    ("model-max-new-tokens-negative", M_, ["--prompt", "hi", "--max-new-tokens", "-3"], "--max-new-tokens"),
    ("model-max-new-tokens-billion", M_, ["--prompt", "hi", "--max-new-tokens", "1000000000"], "max_position_embeddings"),
    ("model-cuda-without-gpu", M_, ["--prompt", "hi", "--device", "cuda" if not torch.cuda.is_available() else "tpu"], "--device"),
    ("model-seed-overflow", M_, ["--prompt", "hi", "--seed", str(2 ** 70)], "--seed"),
    ("model-prompt-not-utf8", M_, ["--prompt", b"\xff\xfe"], "--prompt"),  # raw bytes: argv keeps them as surrogates
    ("t2l-missing-checkpoint", T_, ["--checkpoint", "nope", *DESC, "--out", "new1"], "t2l_config.json"),
    ("t2l-empty-description", T_, ["--checkpoint", "ckpt", "--description", "  ", "--out", "new2"], "description"),
    ("t2l-out-is-users-folder", T_, ["--checkpoint", "ckpt", *DESC, "--out", "mine"], "thesis.txt"),
    ("t2l-out-is-cwd", T_, ["--checkpoint", "ckpt", *DESC, "--out", "."], "current directory"),
    ("t2l-out-is-the-checkpoint", T_, ["--checkpoint", "ckpt", *DESC, "--out", "ckpt"], "ckpt"),
    ("t2l-out-is-a-link", T_, ["--checkpoint", "ckpt", *DESC, "--out", "link_empty"], "symbolic link"),
    ("t2l-force-is-gone", T_, ["--checkpoint", "ckpt", *DESC, "--out", "mine", "--force"], "--force"),
    ("t2l-out-is-a-file", T_, ["--checkpoint", "ckpt", *DESC, "--out", "afile"], "afile"),
    ("t2l-garbled-checkpoint", T_, ["--checkpoint", "ckpt_garbled", *DESC, "--out", "new3"], "hypernet.safetensors"),
    ("t2l-nan-checkpoint", T_, ["--checkpoint", "ckpt_nan", *DESC, "--out", "new4"], "NaN"),
    ("t2l-config-not-json", T_, ["--checkpoint", "ckpt_badcfg", *DESC, "--out", "new5"], "t2l_config.json"),
    ("t2l-config-odd-key", T_, ["--checkpoint", "ckpt_oddkey", *DESC, "--out", "new6"], "evil"),
    ("t2l-count-params-no-config", T_, ["--count-params"], "--base-config"),
    ("t2l-bad-variant", T_, ["--count-params", "--variant", "XL"], "--variant"),
    ("t2l-missing-encoder", T_, ["--checkpoint", "ckpt", *DESC, "--out", "new7", "--encoder", "no_encoder"], "no_encoder"),
    ("t2l-nothing-to-do", T_, ["--checkpoint", "ckpt", *DESC], "--out"),
    ("t2l-description-not-utf8", T_, ["--checkpoint", "ckpt", "--description", b"Sort \xff\xfe", "--out", "new8"], "--description"),
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
    ("sft-out-users-folder-force", S_, ["--out", "mine", "--force"], "thesis.txt"),
    ("sft-out-is-a-link", S_, ["--out", "link_empty"], "symbolic link"),
    ("sft-best-holds-users-file", S_, ["--out", "userbest", "--force"], "notes.txt"),
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
    ("eval-out-is-cwd", E_, ["--methods", "base", "--out", "."], "current directory"),
    ("eval-out-is-a-link", E_, ["--methods", "base", "--out", "link_mine"], "symbolic link"),
    ("eval-out-is-users-folder", E_, ["--methods", "base", "--out", "mine"], "mine"),
    ("prep-out-is-users-folder", P_, ["--out", "mine"], "thesis.txt"),
    ("prep-out-is-users-folder-force", P_, ["--out", "mine", "--force"], "thesis.txt"),
    ("prep-out-is-cwd", P_, ["--out", "."], "current directory"),
    ("prep-out-is-cwd-force", P_, ["--out", ".", "--force"], "current directory"),
    ("prep-out-is-parent-force", P_, ["--out", "..", "--force"], "current directory"),
    ("prep-out-is-root-force", P_, ["--out", "/", "--force"], "current directory"),
    ("prep-out-is-home-force", P_, ["--out", "home", "--force"], "home directory"),  # HOME is world/home, empty
    ("prep-out-is-link-to-users", P_, ["--out", "link_mine", "--force"], "symbolic link"),
    ("prep-out-is-link-to-empty", P_, ["--out", "link_empty"], "symbolic link"),
    ("prep-out-is-a-file", P_, ["--out", "afile"], "afile"),
    ("prep-out-holds-the-gguf", P_, ["--gguf", "gg/m.gguf", "--out", "gg", "--force"], "gg/m.gguf"),
    ("prep-old-aside-is-users", P_, ["--out", "fresh"], ".old-fresh"),
    ("prep-out-not-utf8", P_, ["--out", b"new\xff"], "--out"),
    ("prep-gguf-not-gguf", P_, ["--gguf", "afile", "--out", "newp1"], "afile"),
    ("prep-gguf-missing", P_, ["--gguf", "nope.gguf", "--out", "newp2"], "nope.gguf"),
    ("prep-gguf-is-a-folder", P_, ["--gguf", "mine", "--out", "newp3"], "mine"),
    ("prep-gguf-cut-short", P_, ["--gguf", "cut.gguf", "--out", "newp4"], "cut.gguf"),
    ("prep-flag-without-value", P_, ["--out"], "--out"),
    ("prep-model-unknown", P_, ["--model", "gemma9", "--out", "newp5"], "--model"),
    ("data-show-negative", D_, ["--show", "-1"], "--show"),
    ("data-show-not-a-number", D_, ["--show", "two"], "--show"),
    ("data-per-family-negative", D_, ["--names", "test", "--per-family", "-1"], "--per-family"),
    # issue 21, item 3
    ("t2l-config-alpha-string", T_, ["--checkpoint", "ckpt_alpha_str", *DESC, "--out", "new9"], "'alpha'"),
    ("t2l-config-alpha-nan", T_, ["--checkpoint", "ckpt_alpha_nan", *DESC, "--out", "new10"], "'alpha'"),
    ("t2l-config-alpha-negative", T_, ["--checkpoint", "ckpt_alpha_neg", *DESC, "--out", "new11"], "'alpha'"),
    ("t2l-config-rank-zero", T_, ["--checkpoint", "ckpt_rank_zero", *DESC, "--out", "new12"], "'rank'"),
    ("t2l-config-no-base-model", T_, ["--checkpoint", "ckpt_nobase", *DESC, "--out", "new13"], "missing 'base_model'"),
    ("recon-adapter-rank-mismatch", R_, ["--library", "lib_rank", "--eval-n", "0"], "r is 4"),
    ("recon-adapter-alpha-negative", R_, ["--library", "lib_alpha", "--eval-n", "0"], "lora_alpha"),
    ("eval-lora-rank-mismatch", E_, ["--methods", "lora", "--lora", "lib_rank/a/adapter", "--out", "runs/e7"], "adapter_config.json"),
    ("sft-resume-step-not-int", S_, ["--resume", "--out", "run_steptype"], "'step'"),
    ("sft-resume-losses-not-list", S_, ["--resume", "--out", "run_losses"], "'losses'"),
    ("sft-resume-step-past-steps", S_, ["--resume", "--out", "run_far", "--steps", "300"], "step 10000 is past --steps 300"),
    ("sft-resume-changed-settings", S_, ["--resume", "--out", "run_lr", "--lr", "0.002", "--batch-size", "4"],
     "(--batch-size: 8 in the run, 4 now; --lr: 0.001 in the run, 0.002 now)"),
    ("sft-resume-and-force", S_, ["--resume", "--force", "--out", "run_lr"], "--resume and --force"),
    ("eval-device-tpu", E_, ["--device", "tpu", "--methods", "base", "--out", "runs/e8"], "--device"),
    ("eval-merge-row-not-object", E_, ["--merge", "res_badrow", "--out", "runs/e9"], "res_badrow/results.json"),
    ("eval-merge-families-list", E_, ["--merge", "res_badfam", "--out", "runs/e10"], "'families'"),
    ("report-row-not-object", RP_, ["table", "res_badrow", "--out", "rep1"], "res_badrow/results.json"),
    ("report-families-list", RP_, ["table", "res_badfam", "--out", "rep2"], "'families'"),
    ("map-train-config-list", AM_, ["ckpt_tclist", "--out", "map1"], "ckpt_tclist/train_config.json"),
    ("map-train-config-seed-string", AM_, ["ckpt_tcseed", "--out", "map2"], "'seed'"),
    ("data-description-of-no-task", D_, ["--data", "sni_desc_typo"], "'task1_okk'"),
    ("data-split-names-no-task", D_, ["--data", "sni_split_typo"], "'task9_gone'"),
    ("data-empty-input", D_, ["--data", "sni_empty_in"], "empty 'input'"),
    ("data-empty-output", D_, ["--data", "sni_empty_out"], "instance 5 'output'"),
]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_harms_nothing(world, script, args, names):
    before = snapshot(world)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if script.startswith("-m "):  # a module of the repository, run from the world folder
        cmd = [sys.executable, *script.split()]
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    else:
        cmd = [sys.executable, str(ROOT / script)]
    if script == P_:
        env["HOME"] = str(world / "home")  # "the home directory" is then a folder the snapshot watches
    r = subprocess.run([*cmd, *args], cwd=world, capture_output=True, text=True, timeout=300, env=env)
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert r.returncode != 0, r.stdout[-500:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert names in lines[0], lines[0]
    assert snapshot(world) == before  # nothing changed, nothing added, nothing removed
    assert not (world / "PWNED").exists()  # the crafted pickle never ran


@pytest.mark.slow
@pytest.mark.parametrize("task,left", [("task1_long", 0), ("task2_some", 1)])
def test_eval_leaves_out_an_input_longer_than_the_model(world, tmp_path, task, left):
    """A 1 MB SNI input is more tokens than the model has positions: eval.py leaves that example out
    with a warning naming the task and the count, or ends in one error line when none is left, instead
    of running out of memory. Not a row of CASES: a run that scores something prints progress bars
    and writes its --out (here outside the world folder, which stays unchanged)."""
    before = snapshot(world)
    r = subprocess.run([sys.executable, str(ROOT / E_), "--data", "sni_long", "--tasks", task, "--methods", "base",
                        "--out", str(tmp_path / "e")], cwd=world, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})  # one thread: fast on a busy machine
    lines = [x.strip() for x in r.stderr.splitlines() if x.strip()]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if left:
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"warning: task {task}: 1 of 2 examples have a prompt longer than" in r.stderr
        assert json.loads((tmp_path / "e" / "results.json").read_text())["tasks"][task]["base"] is not None
    else:
        assert r.returncode != 0 and lines[-1].startswith(f"error: task {task}: 1 of 1 examples"), r.stderr[-2000:]
        assert not (tmp_path / "e").exists()
    assert snapshot(world) == before


def test_there_are_at_least_forty_cases_over_the_seven_clis():
    assert len(CASES) >= 40 and {c[1] for c in CASES} >= {M_, T_, S_, R_, E_, P_, D_}


# -----------------------------------------------------------------------------
# prepare_model in-process: the GGUF reading is replaced by a tiny stand-in (the real one takes
# seconds), the folder logic (check_out, write_model, lora.write_folder_atomically) is the real one.


@pytest.fixture
def tiny_gguf(tmp_path, monkeypatch):
    """A file that passes check_gguf, and read_header / read_weights that return a tiny 'model'."""
    g = tmp_path / "tiny.gguf"
    g.write_bytes(b"GGUF\x03\x00\x00\x00")
    calls = {"n": 0}

    def header(path):
        calls["n"] += 1
        return None, {"model_type": "llama", "build": calls["n"]}, {"version": "1.0"}, {"chat_template": "x"}
    monkeypatch.setattr(prepare_model, "read_header", header)
    monkeypatch.setattr(prepare_model, "read_weights", lambda path, reader, config: {"w": torch.zeros(2)})
    return g


def test_prepare_model_rebuilds_only_a_folder_it_wrote(tmp_path, tiny_gguf):
    prep = lambda out, force=False: prepare_model.prepare_smollm2(tmp_path / out, force, tiny_gguf)
    ours = prep("ours")
    assert sorted(p.name for p in ours.iterdir()) == sorted(prepare_model.MODEL_FILES)
    assert prepare_model.written_here(ours) and json.loads((ours / "config.json").read_text())["build"] == 1
    prep("ours")  # again without --force: a no-op
    assert json.loads((ours / "config.json").read_text())["build"] == 1
    prep("ours", force=True)  # --force rebuilds a folder this script wrote
    assert json.loads((ours / "config.json").read_text())["build"] == 2
    # the same four names but not written here (a downloaded model: no GGUF mark), and a user's
    # folder: refused, --force or not, and left as they were
    (tmp_path / "download").mkdir()
    for f in prepare_model.MODEL_FILES:
        (tmp_path / "download" / f).write_bytes((ours / f).read_bytes())
    save_file({"w": torch.ones(2)}, tmp_path / "download" / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("two years of work")
    before = snapshot(tmp_path)
    for out, says in (("download", "not converted by this script"), ("mine", "thesis.txt")):
        for force in (False, True):
            if force or out == "mine":  # (download holds config.json: without --force it is a no-op)
                with pytest.raises(common.OutputError, match=says):
                    prep(out, force)
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_prepare_model_failure_leaves_the_old_folder_or_none(tmp_path, tiny_gguf, monkeypatch):
    ours = prepare_model.prepare_smollm2(tmp_path / "ours", False, tiny_gguf)
    before = snapshot(tmp_path)

    def disk_full(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a model")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(prepare_model, "save_file", disk_full)
    for out, force in ((ours, True), (tmp_path / "new", False)):
        with pytest.raises(OSError, match="No space"):
            prepare_model.prepare_smollm2(out, force, tiny_gguf)
    assert snapshot(tmp_path) == before  # the old model whole, no new folder, no temporary one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "tiny.gguf"]


# -----------------------------------------------------------------------------
# Transformer.generate's own arguments: a library caller gets model.ModelError, not torch's error


@pytest.mark.parametrize("kw,says", [
    (dict(max_new_tokens=0), "max_new_tokens"), (dict(max_new_tokens=-3), "max_new_tokens"),
    (dict(max_new_tokens=2.5), "max_new_tokens"), (dict(max_new_tokens=10 ** 9), "max_position_embeddings"),
    (dict(temperature=float("nan")), "temperature"), (dict(temperature=float("inf")), "temperature"),
    (dict(temperature=-1.0), "temperature"), (dict(temperature=1.0, top_p=float("nan")), "top_p"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(input_ids=torch.tensor([3, 4])), "input_ids"), (dict(input_ids=torch.tensor([[0.5, 1.0]])), "input_ids"),
    (dict(input_ids=torch.tensor([[3, 10 ** 6]])), "vocabulary"), (dict(attention_mask=torch.ones(1, 5)), "attention_mask"),
], ids=lambda v: "" if isinstance(v, str) else ",".join(f"{k}={v[k].tolist() if torch.is_tensor(v[k]) else v[k]}" for k in v))
def test_generate_checks_its_own_arguments(tiny_dirs, kw, says):
    m = load_pretrained(tiny_dirs["llama"][1])  # the same tiny llama as world / "tiny", without world's ~10 s
    kw = {"input_ids": torch.tensor([[3, 4, 5]]), **kw}
    with pytest.raises(ModelError, match=says):
        m.generate(**kw)
