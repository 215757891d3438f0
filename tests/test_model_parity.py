"""model.py must reproduce transformers' logits for every family, whole and sharded checkpoints."""
import json

import pytest
import torch

from model import ModelConfig, Transformer, load_pretrained, rope_inv_freq
from conftest import FAMILIES, VOCAB, build_tiny_hf


def hf_logits(hf, ids, mask):
    # HF's forward does not derive positions from the mask (generate does); give them explicitly.
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_whole(family, tiny_dirs):
    hf, d = tiny_dirs[family]
    ours = load_pretrained(d)
    torch.manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 24))  # 24 > sliding window 5, > llama3 original context 8
    mask = torch.ones_like(ids)
    ref = hf_logits(hf, ids, mask)
    got = ours(ids, mask)
    assert got.shape == (2, 24, VOCAB)
    assert (got - ref).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_padded(family, tiny_dirs):
    """Left padding (generation) and right padding (training): real positions must match HF."""
    hf, d = tiny_dirs[family]
    ours = load_pretrained(d)
    torch.manual_seed(2)
    ids = torch.randint(3, VOCAB, (3, 20))
    mask = torch.ones_like(ids)
    mask[0, :6] = 0  # left padded
    mask[1, 15:] = 0  # right padded
    ref, got = hf_logits(hf, ids, mask), ours(ids, mask)
    keep = mask.bool()
    assert torch.isfinite(got).all()
    assert (got[keep] - ref[keep]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen3", "gemma3"])
def test_parity_sharded(family, tmp_path):
    hf = build_tiny_hf(family, seed=3)
    hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="60KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1, "the test must really shard"
    ours = load_pretrained(tmp_path)
    ids = torch.randint(3, VOCAB, (2, 16))
    ref = hf_logits(hf, ids, torch.ones_like(ids))
    assert (ours(ids) - ref).abs().max().item() <= 1e-4


def test_parity_gemma3_with_soft_caps(tmp_path):
    """Gemma-3 ships attn_logit_softcapping and final_logit_softcapping as null (the fixture too). A
    config that sets them: the final cap applies; the attention cap is ignored, as transformers'
    Gemma-3 attention ignores it (the q/k norms took its place)."""
    hf = build_tiny_hf("gemma3", seed=4, attn_logit_softcapping=2.0, final_logit_softcapping=3.0)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_pretrained(tmp_path)
    assert ours.config.attn_logit_softcapping is None and ours.config.final_logit_softcapping == 3.0
    torch.manual_seed(5)
    ids = torch.randint(3, VOCAB, (2, 20))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    ref, got = hf_logits(hf, ids, mask), ours(ids, mask)
    assert (got[mask.bool()] - ref[mask.bool()]).abs().max().item() <= 1e-4


def test_gemma3_old_style_config_reads_as_transformers_does(tiny_dirs):
    """google/gemma-3-270m's config.json was written before transformers 5: rope_theta (global),
    rope_local_base_freq (sliding layers), rope_scaling (global only), sliding_window_pattern and no
    rope_parameters; the layer types, bases and scaling must come out as transformers 5 reads them."""
    import transformers as tf

    _, d = tiny_dirs["gemma3"]
    new = json.loads((d / "config.json").read_text())
    old = {k: v for k, v in new.items() if k not in ("rope_parameters", "layer_types", "_sliding_window_pattern")}
    old.update(rope_theta=10000.0, rope_local_base_freq=100.0, rope_scaling={"rope_type": "linear", "factor": 4.0},
               sliding_window_pattern=2)  # layers 0, 2 local, layer 1 global: the fixture's layer_types
    a, b = ModelConfig.from_dict(new), ModelConfig.from_dict(old)
    theirs = ModelConfig.from_dict(tf.Gemma3TextConfig.from_dict(dict(old)).to_dict())
    for c in (b, theirs):
        assert c.layer_types == a.layer_types and c.local_rope_theta == a.local_rope_theta
        assert torch.equal(rope_inv_freq(c), rope_inv_freq(a))
        assert torch.equal(rope_inv_freq(c, local=True), rope_inv_freq(a, local=True))
    # no rope keys at all: transformers' Gemma-3 defaults, 1M global and 10k local, unscaled
    bare = ModelConfig.from_dict({k: v for k, v in old.items() if not k.startswith("rope")})
    assert (bare.rope_theta, bare.local_rope_theta, bare.rope_scaling) == (1e6, 1e4, None)


def test_features_bite(tiny_dirs):
    """The tiny configs are only useful if switching each feature off changes the logits."""
    _, d = tiny_dirs["gemma2"]
    ids = torch.randint(3, VOCAB, (1, 24))
    base = load_pretrained(d)
    ref = base(ids)
    for change in ({"attn_logit_softcapping": None}, {"final_logit_softcapping": None},
                   {"query_pre_attn_scalar": 16}, {"sliding_window": None}):
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(change)
        m = Transformer(ModelConfig.from_dict(cfg))
        m.load_state_dict(base.state_dict())
        assert (m(ids) - ref).abs().max().item() > 1e-3, f"{change} did not change the output"
    # Gemma-3: the local base, the global scaling, the window and the scalar each matter
    _, d = tiny_dirs["gemma3"]
    base = load_pretrained(d)
    ref = base(ids)
    rp = json.loads((d / "config.json").read_text())["rope_parameters"]
    for change in ({"rope_parameters": dict(rp, sliding_attention={"rope_type": "default", "rope_theta": 10000.0})},  # the global base
                   {"rope_parameters": dict(rp, full_attention={"rope_type": "default", "rope_theta": 10000.0})},
                   {"query_pre_attn_scalar": 16}, {"sliding_window": None}):
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(change)
        m = Transformer(ModelConfig.from_dict(cfg))
        m.load_state_dict(base.state_dict())
        assert (m(ids) - ref).abs().max().item() > 1e-3, f"gemma3 {change} did not change the output"
    # Qwen3: the window on its later layers (use_sliding_window) matters, and the q/k norms are loaded
    _, d = tiny_dirs["qwen3"]
    base = load_pretrained(d)
    assert base.model.layers[0].self_attn.q_norm.weight.shape == (16,) and base.model.layers[0].self_attn.o_proj.bias is not None
    cfg = json.loads((d / "config.json").read_text())
    cfg["use_sliding_window"] = False
    m = Transformer(ModelConfig.from_dict(cfg))
    m.load_state_dict(base.state_dict())
    assert (m(ids) - base(ids)).abs().max().item() > 1e-3
    # llama3 rope scaling must matter at these positions too
    _, d = tiny_dirs["llama"]
    base = load_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": cfg["rope_parameters"]["rope_theta"]}
    m = Transformer(ModelConfig.from_dict(cfg))
    m.load_state_dict(base.state_dict())
    assert (m(ids) - base(ids)).abs().max().item() > 1e-3


def test_old_style_rope_config_matches_new(tiny_dirs):
    """Official configs written before transformers 5 say rope_theta + rope_scaling."""
    _, d = tiny_dirs["llama"]
    new = json.loads((d / "config.json").read_text())
    old = dict(new)
    rp = old.pop("rope_parameters")
    old["rope_theta"] = rp["rope_theta"]
    old["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    a, b = ModelConfig.from_dict(new), ModelConfig.from_dict(old)
    assert torch.equal(rope_inv_freq(a), rope_inv_freq(b))


def test_logits_index_and_loss(tiny_dirs):
    """Logits at chosen positions equal the full logits there; loss on answer tokens equals the
    cross-entropy computed from the full logits."""
    _, d = tiny_dirs["mistral"]
    m = load_pretrained(d)
    ids = torch.randint(3, VOCAB, (2, 12))
    full = m(ids)
    idx = torch.tensor([[0, 5, 11], [3, 3, 7]])
    assert torch.allclose(m(ids, logits_index=idx), torch.gather(full, 1, idx[..., None].expand(-1, -1, VOCAB)), atol=1e-5)
    labels = torch.full_like(ids, -100)
    labels[0, 8:] = ids[0, 8:]
    labels[1, 4:6] = ids[1, 4:6]
    ref = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(m.loss(ids, labels), ref, atol=1e-5)
    per = m.loss(ids, labels, reduction="per_example")
    assert per.shape == (2,) and torch.allclose(per.mean(), (per[0] + per[1]) / 2)


def test_building_a_model_turns_cudnn_attention_off():
    """cuDNN's SDPA plans each new shape (every padded batch, every generated token): 4.3x slower
    training steps on an H200 (bench/RESULTS.md). Building a Transformer switches it off."""
    torch.backends.cuda.enable_cudnn_sdp(True)
    cfg = ModelConfig.from_dict(dict(model_type="llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                                     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8))
    Transformer(cfg)
    assert not torch.backends.cuda.cudnn_sdp_enabled()
