"""The paper's ablations as settings: --n-train-tasks, --descs-per-task, --encoder base-llm / one-hot,
and a checkpoint of each kind read back by eval.py and t2l.py (they bring their own encoder)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import checkpoint
import common
import lora
import t2l
import train_sft
from data import DataError
from data.batches import Batches
from data.collection import load_collection
from model import ModelConfig, load_pretrained, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--variant", "S", "--steps", "3", "--batch-size", "2", "--max-len", "96", "--val-every", "3", "--val-examples", "1",
         "--final-tasks", "1", "--final-examples", "2", "--latent", "32", "--head-in", "64", "--steering-inputs", "0",
         "--probe-inputs", "0"]


def test_llm_encoder_is_the_mean_pooled_final_states_normalised(default_model_dir):
    model, tok = load_pretrained(default_model_dir), load_tokenizer(default_model_dir)
    enc = t2l.LLMEncoder(model, tok)
    texts = ["Sort the numbers", "Say yes or no."]
    e = enc(texts)
    assert e.shape == (2, model.config.hidden_size) and enc.dim == model.config.hidden_size
    ids = torch.tensor([tok.encode("Sort the numbers.")])  # the full stop is added, as for MiniLM
    want = F.normalize(model.hidden_states(ids)[0].mean(0), dim=0) * model.config.hidden_size ** 0.5
    assert torch.allclose(e[0], want, atol=1e-5)
    assert not torch.allclose(e[0], e[1])
    again = t2l.LLMEncoder(model, tok)
    again(["something else first, much longer, to change nothing"])
    assert torch.equal(again(texts[::-1]), e.flip(0))  # a function of the text alone
    model.train()
    enc2 = t2l.LLMEncoder(model, tok)
    enc2(texts)
    assert model.training  # the mode it found is restored


def test_llm_encoder_reads_the_active_adapter_so_the_loop_calls_it_before_use_adapter(default_model_dir):
    """The encoder must read the plain LLM: the training loop calls it before use_adapter."""
    model, tok = load_pretrained(default_model_dir), load_tokenizer(default_model_dir)
    cfg = lora.LoraConfig(r=2, alpha=4, target_modules=["q_proj", "v_proj"])
    lora.inject(model, cfg)
    plain = t2l.LLMEncoder(model, tok)(["Sort the numbers"])
    trainable = lora.LoRA(model, cfg)
    for p in trainable.parameters():
        torch.nn.init.normal_(p, std=0.5)
    with lora.use_adapter(model, trainable.adapter(), cfg.scaling):
        changed = t2l.LLMEncoder(model, tok)(["Sort the numbers"])
    assert not torch.allclose(plain, changed)  # so the order in the loop matters, and it is tested here
    assert torch.equal(t2l.LLMEncoder(model, tok)(["Sort the numbers"]), plain)


def test_one_hot_encoder_maps_each_training_description_to_its_id_and_others_to_zero():
    coll = load_collection("builtin")
    names = coll.splits["train"][:5]
    enc = t2l.OneHotEncoder(names, coll.tasks)
    assert enc.dim == 5
    d = coll.tasks[names[3]].train_descriptions[2]
    unseen = coll.tasks[coll.splits["test"][0]].eval_descriptions[0]
    e = enc([d, unseen, "anything"])
    assert e[0].tolist() == [0, 0, 0, 1, 0] and e[1].abs().sum() == 0 and e[2].abs().sum() == 0


def test_n_train_tasks_is_a_nested_seeded_subset_and_too_many_is_an_error():
    coll = load_collection("builtin")
    sub12, sub24 = coll.training_tasks(12, seed=0), coll.training_tasks(24, seed=0)
    assert len(sub12) == 12 and len(sub24) == 24 and set(sub12) < set(sub24) < set(coll.splits["train"])
    assert coll.training_tasks(0) == coll.splits["train"]
    assert coll.training_tasks(12, seed=1) != sub12
    with pytest.raises(DataError, match="only 137 training tasks"):
        coll.training_tasks(1000)


def test_descs_per_task_limits_the_descriptions_drawn(default_model_dir):
    coll = load_collection("builtin")
    tok = load_tokenizer(default_model_dir)
    names = coll.splits["train"][:6]
    for k in (1, 2):
        b = Batches(tok, coll.tasks, names, train_sft.TrainConfig(batch_size=4, descs_per_task=k, max_len=96))
        seen = {d for i in range(30) for d in b.get(i)[4]}
        allowed = {d for n in names for d in coll.tasks[n].train_descriptions[:k]}
        assert seen <= allowed and len(seen) > 1
    b = Batches(tok, coll.tasks, names, train_sft.TrainConfig(batch_size=4, max_len=96))
    assert len({d for i in range(30) for d in b.get(i)[4]}) > 12  # 0 = all of them


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["one-hot", "base-llm"])
def test_ablation_checkpoints_train_and_are_read_back_by_eval_and_the_cli(tmp_path, default_model_dir, encoder):
    out = tmp_path / "run"
    train_sft.main([*SMALL, "--encoder", encoder, "--n-train-tasks", "10", "--descs-per-task", "2", "--out", str(out)])
    cfg = json.loads((out / "best" / "t2l_config.json").read_text())
    assert cfg["encoder"] == encoder
    hidden = ModelConfig.from_json(Path(default_model_dir) / "config.json").hidden_size
    assert cfg["d_task"] == (10 if encoder == "one-hot" else hidden)
    assert len(cfg["one_hot_tasks"]) == (10 if encoder == "one-hot" else 0)
    assert json.loads((out / "zero_shot.json").read_text())["means"]["T2L-S"] is not None
    ev = subprocess.run([sys.executable, "eval.py", "--tasks", "add_1,list_last,is_technology", "--n", "1", "--methods", "t2l",
                         "--descriptions", "1",
                         "--t2l", str(out / "best"), "--out", str(tmp_path / "ev")], cwd=ROOT, capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "T2L-S" in json.loads((tmp_path / "ev" / "results.json").read_text())["means"]
    cli = subprocess.run([sys.executable, "t2l.py", "--checkpoint", str(out / "best"), "--description", "Reverse the list.",
                          "--out", str(tmp_path / "ad"), "--prompt", "3, 1, 2", "--base", "--definition", "Reverse the list."],
                         cwd=ROOT, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "T2L adapter: " in cli.stdout and "base model:  " in cli.stdout  # --base prints both answers
    assert (tmp_path / "ad" / "adapter_model.safetensors").is_file()
    if encoder == "one-hot":  # an unseen description has no id: the zero vector, and the CLI says so
        assert "unknown-task adapter" in cli.stderr
        net = t2l.load(out / "best")
        enc = t2l.encoder_for(net, tasks=load_collection("builtin").tasks)
        a, b = (t2l.adapter_for(net, enc, d) for d in ("Reverse the list.", "Something else entirely."))
        assert all(torch.equal(a[k][0], b[k][0]) for k in a)


def test_a_bad_ablation_setting_is_one_error_line():
    r = subprocess.run([sys.executable, "train_sft.py", "--n-train-tasks", "-1"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.strip().startswith("error:") and "n-train-tasks" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_task_of_a_multi_task_resume_without_checkpoint_starts_over_but_foreign_files_are_refused(tmp_path):
    cfg = train_sft.TrainConfig(variant="lora", resume=True)
    out = tmp_path / "task_a"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "log.jsonl").write_text("")
    job = lambda names: dict((o.name, j) for o, _, j in checkpoint.task_runs(tmp_path, names, cfg))["task_a"]
    assert not job(["task_a", "task_b"]).resume and job(["task_a", "task_b"]).force  # killed before its first checkpoint: start it over
    (out / "ckpt.pt").write_bytes(b"")
    assert job(["task_a", "task_b"]).resume  # a checkpoint: continue it
    (out / "ckpt.pt").unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(common.OutputError):
        job(["task_a", "task_b"])
    assert job(["task_a"]) is cfg  # one task: --resume means what it says
