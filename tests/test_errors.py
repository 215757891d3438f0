"""Bad input gets one line naming the file or tensor, never a traceback from inside torch."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import ModelError, load_pretrained, load_tokenizer
from conftest import ROOT, build_tiny_hf


@pytest.fixture
def tiny(tmp_path):
    build_tiny_hf("llama").save_pretrained(tmp_path / "m", safe_serialization=True)
    return tmp_path / "m"


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_unknown_model_type(tiny):
    cfg = json.loads((tiny / "config.json").read_text())
    cfg["model_type"] = "gpt_neox"
    (tiny / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError) as e:
        load_pretrained(tiny)
    msg = one_line(e)
    assert "config.json" in msg and "gpt_neox" in msg


def test_wrong_tensor_shape(tiny):
    sd = load_file(tiny / "model.safetensors")
    sd["model.layers.1.mlp.up_proj.weight"] = torch.zeros(7, 48)
    save_file(sd, tiny / "model.safetensors")
    with pytest.raises(ModelError) as e:
        load_pretrained(tiny)
    msg = one_line(e)
    assert "model.layers.1.mlp.up_proj.weight" in msg and "(7, 48)" in msg and "(96, 48)" in msg


def test_missing_tensor(tiny):
    sd = load_file(tiny / "model.safetensors")
    del sd["model.layers.0.self_attn.v_proj.weight"]
    save_file(sd, tiny / "model.safetensors")
    with pytest.raises(ModelError) as e:
        load_pretrained(tiny)
    assert "model.layers.0.self_attn.v_proj.weight" in one_line(e)


def test_missing_shard(tmp_path):
    build_tiny_hf("mistral").save_pretrained(tmp_path, safe_serialization=True, max_shard_size="60KB")
    shard = sorted(tmp_path.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(ModelError) as e:
        load_pretrained(tmp_path)
    assert shard.name in one_line(e)


def test_missing_tokenizer(tiny):
    with pytest.raises(ModelError) as e:
        load_tokenizer(tiny)
    assert "tokenizer.json" in one_line(e)


def test_cli_error_is_one_line(tiny):
    (tiny / "model.safetensors").unlink()
    r = subprocess.run([sys.executable, str(ROOT / "model.py"), "--model", str(tiny), "--prompt", "hi"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "model.safetensors" in r.stderr
