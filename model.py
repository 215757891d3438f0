"""
model.py: a Mistral / Llama / Gemma-2 / Gemma-3 / Qwen2 / Qwen3 decoder written by hand in plain PyTorch.

It reads the official Hugging Face layout (config.json, model.safetensors or
model.safetensors.index.json + shards, tokenizer.json, tokenizer_config.json) directly,
with no `transformers` import. Module names follow the Hugging Face keys
(model.layers.0.self_attn.q_proj.weight ...) so loading is a straight copy and LoRA
targets have the names PEFT uses.

Read top to bottom:
  ModelConfig      config.json -> one dataclass, one family switch
  RMSNorm          (Gemma-2 and Gemma-3 use (1 + w))
  rope_*           rotary embeddings, incl. Llama-3.1 "llama3" and linear frequency scaling;
                   Gemma-3 gives its local and global layers different bases
  attention_mask   causal + sliding window + padding, as one boolean (B, 1, T, S) mask
  Attention        GQA, q/k norms (Qwen3, Gemma-3), SDPA fast path, explicit path for logit soft-capping
  MLP              SwiGLU (silu) / GeGLU (gelu-tanh)
  Block
  head_cross_entropy  the loss's vocabulary head fused with the cross-entropy: slices of the
                   vocabulary, online logsumexp, d loss / d h built on the way, no (N, vocab) logits
  Transformer      embeddings, blocks, loss (answer tokens only)
  KVCache, generate  batched, left-padded, greedy or sampling
  load_pretrained  strict safetensors loading
  Tokenizer        tokenizers + the jinja2 chat template
  CLI              python model.py --prompt "What is the capital of France?"

T2L never changes the base model: everything here is frozen during training (paper
section 3); only the LoRA deltas that lora.py injects into the Linear layers move.
"""
from __future__ import annotations

import json
import math
import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from torch.utils.checkpoint import checkpoint

from common import ArgParser, UserError, read_json  # the one-line-error argument parser, the base error, the JSON reader (plumbing, common.py)
from tokenizers import Tokenizer as HFTok

SUPPORTED_MODEL_TYPES = ("mistral", "llama", "gemma2", "gemma3_text", "qwen2", "qwen3")
GEMMA_TYPES = ("gemma2", "gemma3_text")  # (1 + w) norms, four norms per block, embeddings times sqrt(hidden)
ROPE_TYPES = ("default", "llama3", "linear")  # rope_type values rope_inv_freq implements
# Where `python -m data.prepare_model` writes the default base model (git-ignored). model.py only
# reads it; converting the GGUF is a step the scripts take (or the user runs), never a side
# effect of loading.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "checkpoints" / "SmolLM2-135M-Instruct"
PREPARE_HINT = "python -m data.prepare_model"


class ModelError(UserError):
    """A bad model folder or config: the message is one line naming the file and what was expected."""


# -----------------------------------------------------------------------------
# Config


@dataclass
class ModelConfig:
    model_type: str  # one of SUPPORTED_MODEL_TYPES: selects the family details below
    vocab_size: int  # rows of the embedding matrix and of lm_head
    hidden_size: int  # residual stream width d_model
    intermediate_size: int  # MLP inner width
    num_hidden_layers: int  # number of transformer blocks
    num_attention_heads: int  # query heads
    num_key_value_heads: int  # key/value heads (GQA: each serves n_heads / n_kv_heads query heads)
    head_dim: int  # per-head width; Gemma-2/3 and Qwen3 have head_dim != hidden / heads
    rms_norm_eps: float = 1e-6  # epsilon inside every RMSNorm
    rope_theta: float = 10000.0  # RoPE base (of the global, full-attention layers where the two differ)
    rope_scaling: dict | None = None  # {"rope_type": "llama3", factor, low/high_freq_factor, original_max_position_embeddings}
    # or {"rope_type": "linear", "factor"} (Gemma-3 4B+: its global layers' positions divided by factor)
    local_rope_theta: float | None = None  # Gemma-3: RoPE base of the sliding-window layers (10k against 1M global)
    max_position_embeddings: int = 4096  # longest sequence the model was trained for
    tie_word_embeddings: bool = False  # lm_head shares embed_tokens.weight (SmolLM2, Gemma, small Qwen3)
    hidden_act: str = "silu"  # "silu" -> SwiGLU (Llama/Mistral/Qwen), "gelu_pytorch_tanh" -> GeGLU (Gemma)
    attention_bias: bool = False  # bias on q/k/v/o (Qwen2 has it on q/k/v only)
    qkv_bias_only: bool = False  # Qwen2: bias on q,k,v but not on o_proj
    mlp_bias: bool = False  # Llama option: bias on gate/up/down
    qk_norm: bool = False  # Qwen3, Gemma-3: an RMSNorm over each head's q and k (q_norm, k_norm) before RoPE
    layer_types: list = field(default_factory=list)  # per layer "full_attention" | "sliding_attention"
    sliding_window: int | None = None  # keys further back than this are masked on sliding layers
    # Gemma-2 and Gemma-3 only (Gemma-3 ships both caps as null: off; it has no attention cap at all):
    query_pre_attn_scalar: float | None = None  # attention scale is query_pre_attn_scalar ** -0.5 (not head_dim ** -0.5)
    attn_logit_softcapping: float | None = None  # scores -> cap * tanh(scores / cap) before softmax
    final_logit_softcapping: float | None = None  # logits -> cap * tanh(logits / cap)
    bos_token_id: int | None = None  # from config.json, used by the tokenizer wrapper
    eos_token_id: list = field(default_factory=list)  # every id that ends generation
    pad_token_id: int | None = None  # id used for padding (falls back to eos)

    @property
    def is_gemma(self) -> bool:
        """Gemma-2 and Gemma-3: (1 + w) norms, four norms per block, embeddings times sqrt(hidden)."""
        return self.model_type in GEMMA_TYPES

    @staticmethod
    def from_dict(cfg: dict, source: str = "config.json") -> "ModelConfig":
        if not isinstance(cfg, dict):
            raise ModelError(f"{source}: expected a JSON object of model settings, got a {type(cfg).__name__}")
        mt = cfg.get("model_type")
        if mt not in SUPPORTED_MODEL_TYPES:
            raise ModelError(f"{source}: model_type {mt!r} is not supported (expected one of {', '.join(SUPPORTED_MODEL_TYPES)})")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if key not in cfg:
                raise ModelError(f"{source}: missing required key {key!r} for model_type {mt!r}")
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "sliding_window", "max_position_embeddings"):
            v = cfg.get(key)  # a string "30" or a float would fail far away, inside torch
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ModelError(f"{source}: {key} must be a positive integer, got {v!r}")
        n_layers = cfg["num_hidden_layers"]
        n_heads = cfg["num_attention_heads"]
        # head_dim from the config: Qwen3-0.6B has 16 heads of 128 for a hidden size of 1024, Gemma-3-270M
        # 4 heads of 256 for 640; only configs without the key mean hidden / heads.
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
        gemma3 = mt == "gemma3_text"
        if gemma3 and cfg.get("use_bidirectional_attention"):  # EmbeddingGemma: an encoder, not a causal LM
            raise ModelError(f"{source}: use_bidirectional_attention is true (an embedding model); expected a causal LM")
        rope_theta, rope_scaling, local_rope_theta = _rope_settings(cfg, gemma3, source)

        # Which layers use a sliding window. An explicit layer_types list wins; otherwise the family's rule.
        window = cfg.get("sliding_window")
        if mt in ("qwen2", "qwen3") and not cfg.get("use_sliding_window", False):
            window = None
        layer_types = cfg.get("layer_types")
        if layer_types is None:
            if mt == "gemma2":  # even layers local, odd layers global (Gemma-2 report, section 2)
                layer_types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n_layers)]
            elif gemma3:  # five local layers, then one global (Gemma-3 report, section 2): sliding_window_pattern 6
                pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern") or 6
                layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n_layers)]
            elif mt in ("qwen2", "qwen3") and window is not None:
                first = cfg.get("max_window_layers", n_layers)
                layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(n_layers)]
            else:  # Mistral: a window (when set) on every layer
                layer_types = ["sliding_attention" if window else "full_attention"] * n_layers
        if len(layer_types) != n_layers:
            raise ModelError(f"{source}: layer_types has {len(layer_types)} entries, expected num_hidden_layers={n_layers}")

        eos = cfg.get("eos_token_id")
        eos = [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])
        gemma = mt in GEMMA_TYPES
        act = cfg.get("hidden_activation") or cfg.get("hidden_act") or ("gelu_pytorch_tanh" if gemma else "silu")
        if act not in ("silu", "gelu_pytorch_tanh", "gelu"):
            raise ModelError(f"{source}: activation {act!r} is not supported (expected silu or gelu_pytorch_tanh)")
        return ModelConfig(
            model_type=mt,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_hidden_layers=n_layers,
            num_attention_heads=n_heads,
            num_key_value_heads=cfg.get("num_key_value_heads") or n_heads,
            head_dim=head_dim,
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=rope_theta,
            rope_scaling=rope_scaling,
            local_rope_theta=local_rope_theta,
            max_position_embeddings=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=cfg.get("tie_word_embeddings", gemma),
            hidden_act=act,
            # attention_bias: Qwen2 always has a bias on q, k, v (none on o_proj) and its config does not say
            # so; Qwen3, Gemma and Llama read the key, and then it covers all four projections.
            attention_bias=bool(cfg.get("attention_bias", False)) or mt == "qwen2",
            qkv_bias_only=mt == "qwen2",
            mlp_bias=bool(cfg.get("mlp_bias", False)),
            qk_norm=mt in ("qwen3", "gemma3_text"),
            layer_types=list(layer_types),
            sliding_window=window,
            # Gemma-3 scales by query_pre_attn_scalar too (256 = head_dim for 270M and 1B; hidden / heads
            # for 27B), hence transformers' default 256 when the key is absent.
            query_pre_attn_scalar=cfg.get("query_pre_attn_scalar", 256 if gemma3 else None) if gemma else None,
            # Gemma-3 replaced the attention soft-cap by the q/k norms: its configs carry the key (null),
            # and transformers' Gemma-3 attention (5.23) never applies it, nor does llama.cpp; we follow them.
            attn_logit_softcapping=cfg.get("attn_logit_softcapping") if mt == "gemma2" else None,
            final_logit_softcapping=cfg.get("final_logit_softcapping") if gemma else None,
            bos_token_id=cfg.get("bos_token_id"),
            eos_token_id=eos,
            pad_token_id=cfg.get("pad_token_id"),
        )

    @staticmethod
    def from_json(path) -> "ModelConfig":
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: config.json not found (expected an official Hugging Face model folder)")
        return ModelConfig.from_dict(read_json(path, ModelError), str(path))


def _rope_settings(cfg: dict, gemma3: bool, source: str):
    """config.json's RoPE keys -> (rope_theta, rope_scaling, local_rope_theta).

    Three spellings exist. transformers >= 5 writes "rope_parameters": one dict {rope_type,
    rope_theta, factor...}, or, for a model whose layer types differ (Gemma-3), one such dict per
    layer type: {"full_attention": {...}, "sliding_attention": {...}}. Older configs say rope_theta
    + rope_scaling, and Gemma-3's old config adds rope_local_base_freq, the sliding layers' base
    (rope_scaling then applies to the global layers only, as transformers reads it)."""
    params = cfg.get("rope_parameters") or {}
    per_type = isinstance(params.get("full_attention"), dict) or isinstance(params.get("sliding_attention"), dict)
    glob = dict(params.get("full_attention") or {}) if per_type else dict(params)
    glob.update(cfg.get("rope_scaling") or {})
    if "rope_theta" in cfg:
        glob["rope_theta"] = cfg["rope_theta"]
    local = dict(params.get("sliding_attention") or {}) if per_type else {}
    if "rope_local_base_freq" in cfg:
        local["rope_theta"] = cfg["rope_local_base_freq"]
    # Gemma-3's defaults (transformers' Gemma3TextConfig.default_theta): 1M global, 10k local.
    theta = float(glob.get("rope_theta", 1_000_000.0 if gemma3 else 10000.0))

    def kind(d, what):
        rtype = d.get("rope_type", d.get("type", "default"))
        if rtype not in ROPE_TYPES:
            raise ModelError(f"{source}: {what}rope type {rtype!r} is not supported (expected one of {', '.join(ROPE_TYPES)})")
        return rtype

    rtype = kind(glob, "")
    scaling = dict(glob, rope_type=rtype) if rtype != "default" else None
    if not gemma3:
        return theta, scaling, None
    if kind(local, "sliding_attention ") != "default":  # no released Gemma-3 scales its local layers
        raise ModelError(f"{source}: a scaled RoPE on the sliding layers is not supported (expected rope_type 'default')")
    return theta, scaling, float(local.get("rope_theta", 10000.0))


# -----------------------------------------------------------------------------
# Layers


class RMSNorm(nn.Module):
    """x / rms(x) * w over the last dim, computed in fp32. Gemma-2 and Gemma-3 store w - 1, so they
    multiply by (1 + w) (a zero-initialised weight is the identity)."""

    def __init__(self, dim: int, eps: float, gemma: bool = False):
        super().__init__()
        self.eps, self.gemma = eps, gemma
        self.weight = nn.Parameter(torch.zeros(dim) if gemma else torch.ones(dim))

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.gemma:  # Gemma multiplies in fp32, then casts
            return (x * (1.0 + self.weight.float())).to(dtype)
        return self.weight * x.to(dtype)  # Llama casts first, then multiplies


def rope_inv_freq(cfg: ModelConfig, local: bool = False) -> torch.Tensor:
    """Inverse frequencies theta^(-2i/d), (head_dim/2,). With Llama-3.1 scaling, long wavelengths
    are divided by `factor` and the band between low/high_freq_factor is smoothly interpolated;
    with linear scaling every frequency is divided by `factor` (positions count factor times slower).
    local=True: Gemma-3's sliding-window layers, with their own base (local_rope_theta), unscaled."""
    d = cfg.head_dim
    theta = cfg.local_rope_theta if local else cfg.rope_theta
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))  # (d/2,)
    rs = None if local else cfg.rope_scaling
    if rs is None:
        return inv_freq
    if rs["rope_type"] == "linear":
        return inv_freq / rs["factor"]
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_ctx / lo, old_ctx / hi
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)  # long waves: slowed down
    smooth = (old_ctx / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_cos_sin(inv_freq: torch.Tensor, positions: torch.Tensor, dtype):
    """positions (B, T) -> cos, sin (B, T, head_dim), in the "rotate half" layout HF checkpoints use."""
    freqs = positions[..., None].float() * inv_freq[None, None, :]  # (B, T, d/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (B, T, d)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    """x (B, H, T, d); rotate pairs (x_i, x_{i+d/2}) by the position angle."""
    # assignment 2: begin
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, d/2) each
    rotated = torch.cat([-x2, x1], dim=-1)  # (B, H, T, d)
    return x * cos[:, None] + rotated * sin[:, None]
    # assignment 2: end


def make_attention_mask(q_pos, k_pos, key_valid, window: int | None, segments=None):
    """Boolean mask (B, 1, T, S), True = may attend.

    q_pos (B, T) and k_pos (B, S) are the *sequence slots* of queries and keys (0..S-1, shared by
    the batch), key_valid (B, S) marks real (non-padding) keys. A query sees keys at or before its
    slot and, on sliding-window layers, only the last `window` of them (q - k < window, as HF).
    segments (B, S), packed rows only (data/format.pack, no cache): a query also sees only the keys
    of its own example, so the mask is block-diagonal causal and examples never read each other."""
    diff = q_pos[:, :, None] - k_pos[:, None, :]  # (B, T, S)
    allowed = diff >= 0
    if window is not None:
        allowed = allowed & (diff < window)
    allowed = allowed & key_valid[:, None, :]
    if segments is not None:
        allowed = allowed & (segments[:, :, None] == segments[:, None, :])  # (B, T, S): same example
    # A padding query would see no key at all and softmax would give NaN, which then leaks through
    # 0 * NaN into real rows of later layers. Letting every slot see itself keeps all rows finite.
    allowed = allowed | (diff == 0)
    return allowed[:, None]  # (B, 1, T, S)


def segment_positions(segments):
    """Packed rows: segments (B, T), the example index of every slot -> RoPE positions (B, T) that
    restart at 0 with every example, as if each sat alone at the start of a padded row. (RoPE only
    sees q - k inside an example, so this changes the result by rounding only, but it keeps the
    angles as small as the padded batch's, and a new position scheme would not be so forgiving.)"""
    B, T = segments.shape
    slots = torch.arange(T, device=segments.device).expand(B, T)  # (B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)  # (B, T): True where an example (or the padding) begins
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    start_slot = torch.where(starts, slots, 0).cummax(-1).values  # (B, T): the slot of my example's first token
    return slots - start_slot  # (B, T): 0, 1, 2, ... within every example


def segment_spans(segments) -> list[list[tuple[int, int]]]:
    """Packed rows: segments (B, T) -> for every row, the (start, end) slots of its examples, in
    order; padding (-1) is left out. data/format.pack lays each example in one run of slots; an
    example split over two runs is refused (the mask would join them, the spans would not)."""
    out = []
    for row in segments.tolist():
        spans, start = [], 0
        for t in range(1, len(row) + 1):
            if t == len(row) or row[t] != row[start]:
                if row[start] >= 0:
                    spans.append((start, t))
                start = t
        ids = [row[a] for a, _ in spans]
        if len(set(ids)) != len(ids):
            raise ValueError("packed row: an example's slots must be contiguous (data/format.pack)")
        out.append(spans)
    return out


def span_attention(q, k, v, spans, window, scale, gqa: bool):
    """Attention over packed rows, example by example, with no mask. q (B, n_heads, T, hd), k and v
    (B, n_kv, T, hd), spans[b]: the (start, end) slots of row b's examples (`segment_spans`).

    Every example is a causal sequence of its own, so SDPA runs on its slots alone with
    is_causal=True. A block-diagonal (T, T) mask gives the same numbers (tests/test_pack.py), but a
    masked kernel computes every block and then throws most away: three examples of 128 tokens in a
    384-slot row do 1/3 of a masked row's work here, and the causal kernel skips half of that
    again. Without a mask a row need not stop at --max-len either, so data/format.pack can lay the
    whole batch in ONE row with no padding at all (Transformer.by_span). An example longer than a
    sliding window gets its own small (n, n) window mask. Padding slots read nothing and give zeros
    (later layers attend by span too; the loss skips them)."""
    B, H, T, hd = q.shape
    rows = []
    for b in range(B):
        pieces, end = [], 0  # (start, end, is an example) covering the row's slots 0..T
        for s, e in spans[b]:
            if s > end:  # padding before this example (data/format.pack puts none there, but be exact)
                pieces.append((end, s, False))
            pieces.append((s, e, True))
            end = e
        if end < T:  # trailing padding
            pieces.append((end, T, False))
        # One split per tensor, not a slice per example: the backward of a split writes every
        # example's gradient into one buffer, where slices would each build a row-sized zero
        # gradient and add them up (8 examples x 30 layers x q, k, v): 3% of a step (bench/RESULTS.md).
        sizes = [e - s for s, e, _ in pieces]
        qs, ks, vs = (t[b:b + 1].split(sizes, dim=2) for t in (q, k, v))  # (1, heads, n, hd) each
        parts = []
        for (s, e, real), qe, ke, ve in zip(pieces, qs, ks, vs):
            if not real:  # padding slots read nothing
                parts.append(q.new_zeros(1, H, e - s, hd))
                continue
            local = None
            if window is not None and e - s > window:  # sliding-window layer: q - k < window, as the mask
                i = torch.arange(e - s, device=q.device)
                diff = i[:, None] - i[None, :]  # (n, n): query slot - key slot
                local = (diff >= 0) & (diff < window)
            parts.append(F.scaled_dot_product_attention(qe, ke, ve, attn_mask=local, is_causal=local is None,
                                                        scale=scale, enable_gqa=gqa))  # (1, n_heads, n, hd)
        rows.append(torch.cat(parts, dim=2))  # (1, n_heads, T, hd)
    return torch.cat(rows, dim=0)  # (B, n_heads, T, hd)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.cfg, self.layer_idx = cfg, layer_idx
        self.n_heads, self.n_kv, self.hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        qkv_bias = cfg.attention_bias
        self.q_proj = nn.Linear(cfg.hidden_size, self.n_heads * self.hd, bias=qkv_bias)
        self.k_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.hd, bias=qkv_bias)
        self.v_proj = nn.Linear(cfg.hidden_size, self.n_kv * self.hd, bias=qkv_bias)
        self.o_proj = nn.Linear(self.n_heads * self.hd, cfg.hidden_size, bias=cfg.attention_bias and not cfg.qkv_bias_only)
        # Qwen3 and Gemma-3 normalise every head's query and key vector (over its hd numbers, one
        # weight vector shared by all heads) before RoPE: it bounds the attention logits, which
        # Gemma-2 did with soft-capping. Gemma's norms are (1 + w) like its others.
        self.q_norm = RMSNorm(self.hd, cfg.rms_norm_eps, cfg.is_gemma) if cfg.qk_norm else None
        self.k_norm = RMSNorm(self.hd, cfg.rms_norm_eps, cfg.is_gemma) if cfg.qk_norm else None
        # Gemma scales by query_pre_attn_scalar ** -0.5; everybody else by head_dim ** -0.5.
        self.scale = (cfg.query_pre_attn_scalar or self.hd) ** -0.5
        self.softcap = cfg.attn_logit_softcapping
        sliding = cfg.layer_types[layer_idx] == "sliding_attention"
        self.window = cfg.sliding_window if sliding else None
        # Which RoPE table this layer reads: Gemma-3's local layers turn with base 10k, its global ones 1M.
        self.rope = "local" if sliding and cfg.local_rope_theta is not None else "global"

    def forward(self, x, cos, sin, mask, cache=None):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.hd)  # (B, T, n_heads, hd)
        k = self.k_proj(x).view(B, T, self.n_kv, self.hd)  # (B, T, n_kv, hd)
        if self.q_norm is not None:  # Qwen3 / Gemma-3: RMSNorm over the last dim, hd, of each head
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, n_heads, T, hd), (B, n_kv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)  # (B, n_kv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # append this step's keys/values, attend over everything so far
            k, v = cache.update(self.layer_idx, k, v)  # (B, n_kv, S, hd)
        if isinstance(mask, list):  # packed rows: the spans of their examples, no mask (span_attention)
            y = span_attention(q, k, v, mask, self.window, self.scale, self.n_kv != self.n_heads)
        elif self.softcap is None:
            # Fast path: fused SDPA kernel; GQA handled inside (enable_gqa), no copy of K/V per head.
            # mask None means "plain causal" (see Transformer.hidden_states); one new token sees every key.
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                                               scale=self.scale, enable_gqa=self.n_kv != self.n_heads)
        else:
            # Gemma-2: scores are soft-capped before softmax, which no fused kernel does.
            # assignment 2: begin
            g = self.n_heads // self.n_kv
            k = k.repeat_interleave(g, dim=1)  # (B, n_heads, S, hd)
            v = v.repeat_interleave(g, dim=1)  # (B, n_heads, S, hd)
            scores = (q @ k.transpose(-2, -1)) * self.scale  # (B, n_heads, T, S)
            scores = self.softcap * torch.tanh(scores / self.softcap)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            y = torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v  # (B, n_heads, T, hd)
            # assignment 2: end
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.hd)  # (B, T, n_heads*hd)
        return self.o_proj(y)


class MLP(nn.Module):
    """down(act(gate(x)) * up(x)): SwiGLU with silu, GeGLU with tanh-approximated gelu (Gemma-2/3,
    hidden_activation "gelu_pytorch_tanh")."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = F.silu if cfg.hidden_act == "silu" else (lambda t: F.gelu(t, approximate="tanh"))

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        g = cfg.is_gemma
        self.self_attn = Attention(cfg, layer_idx)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, g)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, g)
        if g:  # Gemma-2/3 "sandwich" norms: every sub-layer output is normalised again before the residual add
            self.pre_feedforward_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, g)
            self.post_feedforward_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, g)
        self.gemma = g

    def forward(self, x, cos, sin, mask, cache=None):
        if self.gemma:
            x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, mask, cache))
            return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


def as_called_now(blk: nn.Module):
    """blk, frozen as it is called now, for activation checkpointing. Some submodules carry per-call
    state set from outside (lora.py's LoRALinear: the adapter of this batch, set by use_adapter):
    the recomputation in the backward may run after that state was cleared, so it is captured
    here and put back around the recomputation. Modules expose it as call_state / set_call_state."""
    holders = [m for m in blk.modules() if hasattr(m, "call_state")]
    captured = [m.call_state() for m in holders]

    def run(*args):
        now = [m.call_state() for m in holders]
        for m, st in zip(holders, captured):
            m.set_call_state(st)
        try:
            return blk(*args)
        finally:
            for m, st in zip(holders, now):
                m.set_call_state(st)
    return run


# -----------------------------------------------------------------------------
# The loss's vocabulary head, fused with the cross-entropy (the token loss inside eq. (5))

# Logits head_cross_entropy holds at once: answer positions x a slice of the vocabulary (16 MiB in
# fp32). Small enough for a CPU's cache, large enough that a GPU runs few slices (Gemma-2's 256k
# vocabulary at 512 answer tokens: 32 slices).
HEAD_CHUNK = 2**22


def head_cross_entropy(h, weight, y, label_smoothing: float = 0.0, softcap: float | None = None):
    """Per-token cross-entropy of the logits z = h @ weight.T (Gemma: softcap * tanh(z / softcap))
    against targets y, without ever holding the (n, vocab) logits.

    h (n, d) final hidden states at the answer positions, weight (vocab, d) the frozen vocabulary
    head, y (n,) target ids -> (n,) losses in fp32, as F.cross_entropy(reduction="none",
    label_smoothing=eps) on the logits would give them:
        loss = logsumexp(z) - (1 - eps) * z_y - eps * mean_v(z_v)
    The vocabulary is read in slices. logsumexp is kept online across slices, as flash attention
    keeps its softmax: a running maximum m and sum s = sum_v exp(z_v - m), rescaled by
    exp(m_old - m_new) whenever the maximum grows.

    When h needs a gradient, it is built in the same pass, because the weight is frozen and h is
    all that needs one. d loss / d z = softmax(z) - (1 - eps) * onehot(y) - eps / vocab (times
    1 - tanh^2 through Gemma's cap), and d loss / d h = (d loss / d z) @ weight. The softmax part is
    accumulated online like s: acc = sum_v exp(z_v - m) * dz_v * weight_v (dz_v = 1 without a cap),
    then divided by s at the end.
    The backward only scales the stored (n, d) gradient by each token's incoming gradient.

    Against the plain path (logits, then F.cross_entropy, then autograd), this does the same two
    matmuls per token and vocabulary entry (three with label smoothing under Gemma's cap: the
    smoothing term's sum of dz_v * weight_v is not rescaled with the softmax's). But it never
    writes, zeroes or re-reads an (n, vocab) tensor: 54 MB in fp32 for a SmolLM2 batch of 274
    answer tokens, 1 GiB for Gemma-2 at 1024.
    A trained head (full fine-tuning) needs d loss / d weight, a sum over tokens weighted by
    gradients the forward cannot know, so it takes the plain path (Transformer.loss)."""
    if torch.is_grad_enabled() and weight.requires_grad:
        raise ValueError("head_cross_entropy computes no gradient for the head's weight; a trained head needs the plain path")
    lo, hi = torch.stack(torch.aminmax(y)).tolist() if len(y) else (0, 0)  # one host sync, not two per bound
    if lo < 0 or hi >= weight.shape[0]:  # F.cross_entropy refuses them too
        raise ValueError(f"target ids must lie in [0, {weight.shape[0]}), got {lo}..{hi}")
    if torch.is_grad_enabled() and h.requires_grad:
        return _HeadCrossEntropy.apply(h, weight, y, label_smoothing, softcap)
    return _head_ce_pass(h, weight, y, label_smoothing, softcap, with_grad=False)[0]


def _head_ce_pass(h, weight, y, eps, softcap, with_grad):
    """head_cross_entropy's one pass over the vocabulary: (n,) losses, and (n, d) d loss / d h in
    fp32 when with_grad (else None)."""
    n, d = h.shape
    V = weight.shape[0]
    f32 = dict(device=h.device, dtype=torch.float32)
    m = torch.full((n,), -math.inf, **f32)  # running max of each token's logits
    s = torch.zeros(n, **f32)  # running sum of exp(z - m)
    z_y = torch.zeros(n, **f32)  # the target's logit
    z_sum = torch.zeros(n, **f32)  # sum of all logits (label smoothing)
    cap_y = torch.ones(n, **f32)  # d z / d (h @ weight.T) at the target: 1 - tanh^2 under a cap
    acc = torch.zeros(n, d, **f32) if with_grad else None  # sum_v exp(z_v - m) * dz_v * weight_v
    smooth = torch.zeros(n, d, **f32) if with_grad and eps and softcap is not None else None  # sum_v dz_v * weight_v
    step = max(256, HEAD_CHUNK // max(n, 1))
    for v0 in range(0, V, step):
        w = weight[v0:v0 + step]  # (c, d): a contiguous slice of the head
        z = h @ w.t()  # (n, c) this slice's logits, in the model's dtype as logits_from_hidden gives them
        if softcap is not None:  # Gemma's final soft-cap, in the model's dtype, then fp32
            t = torch.tanh(z / softcap)  # (n, c)
            z, dz = (softcap * t).float(), 1 - t.float().square()  # (n, c) each
        else:
            z, dz = z.float(), None
        hit = (y >= v0) & (y < v0 + w.shape[0])  # (n,) targets inside this slice
        col = (y - v0).clamp(0, w.shape[0] - 1)[:, None]  # (n, 1) their column (any column elsewhere)
        z_y = torch.where(hit, z.gather(1, col)[:, 0], z_y)  # no host sync: a GPU never waits here
        if dz is not None:
            cap_y = torch.where(hit, dz.gather(1, col)[:, 0], cap_y)
        if eps:
            z_sum += z.sum(-1)
        m_new = torch.maximum(m, z.amax(-1))  # (n,)
        rescale = torch.exp(m - m_new)  # (n,) 0 on the first slice (m = -inf)
        e = z.sub_(m_new[:, None]).exp_()  # (n, c) exp(z - m_new), in place of z
        s = s * rescale + e.sum(-1)
        if with_grad:
            if dz is not None:
                e.mul_(dz)  # through the cap: d softcap*tanh(x/softcap) / dx = 1 - tanh^2
            acc.mul_(rescale[:, None]).add_(e.to(weight.dtype) @ w)  # (n, c) @ (c, d) -> (n, d)
            if smooth is not None:
                smooth += dz.to(weight.dtype) @ w  # (n, c) @ (c, d) -> (n, d)
        m = m_new
    lse = m + s.log()  # (n,) logsumexp of every token's logits
    loss = lse - (1 - eps) * z_y - (eps / V) * z_sum  # (n,)
    if not with_grad:
        return loss, None
    grad = acc / s[:, None] - (1 - eps) * cap_y[:, None] * weight[y].float()  # (n, d): softmax @ W - onehot @ W
    if eps:  # the uniform part of label smoothing: - eps / vocab * sum_v dz_v * weight_v
        grad -= (eps / V) * (smooth if smooth is not None else weight.sum(0, dtype=torch.float32))
    return loss, grad


class _HeadCrossEntropy(torch.autograd.Function):
    """head_cross_entropy with its gradient: computed in the forward pass, scaled in the backward."""

    @staticmethod
    def forward(ctx, h, weight, y, eps, softcap):
        loss, grad = _head_ce_pass(h, weight, y, eps, softcap, with_grad=True)
        ctx.save_for_backward(grad)  # (n, d) fp32, rounded to h's dtype once, in the backward
        ctx.dtype = h.dtype
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable  # the stored gradient is a constant: no second derivative
    def backward(ctx, g):  # g (n,): d total / d loss of each token
        grad, = ctx.saved_tensors
        return (g[:, None].float() * grad).to(ctx.dtype), None, None, None, None  # (n, d)


class Inner(nn.Module):
    """The `model.` prefix of HF keys: embeddings, blocks, final norm."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, cfg.is_gemma)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.model = Inner(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        if cfg.local_rope_theta is not None:  # Gemma-3: the sliding layers' own RoPE base
            self.register_buffer("inv_freq_local", rope_inv_freq(cfg, local=True), persistent=False)
        # Memory savers for training (train_sft.py --grad-checkpoint; bench_model.py --ce-chunk), off by default:
        self.grad_checkpoint = False  # keep only each block's input; recompute the block in the backward
        self.ce_chunk = 0  # a TRAINED head only: answer positions per chunk of its logits in `loss` (0 = all at once)
        # Packed rows attend example by example (span_attention), with no mask; False: through the
        # block-diagonal mask (same numbers, slower; bench/bench_pack.py compares them). Gemma-2's
        # soft-capped scores take the mask path whatever this says: no fused kernel soft-caps.
        self.attend_by_span = True
        # No cuDNN attention (a process-wide switch of PyTorch's SDPA): cuDNN builds a plan for every
        # new shape, and training meets a new padded length at nearly every step (generation, a new
        # key length at every token). On an H200 it made train_sft.py's steps 4.3x slower (median,
        # bench/RESULTS.md, 2026-12-04); SDPA's flash and memory-efficient kernels need no plan.
        # A no-op on a CPU.
        torch.backends.cuda.enable_cudnn_sdp(False)

    # -- pieces ---------------------------------------------------------------
    @property
    def by_span(self) -> bool:
        """Packed rows take span_attention (no mask; a row may then hold the whole batch)."""
        return self.attend_by_span and self.config.attn_logit_softcapping is None

    def head_weight(self):
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def logits_from_hidden(self, h):
        """Final hidden states (..., d) -> logits (..., vocab), with Gemma's final soft-cap when set."""
        logits = h @ self.head_weight().t()  # (..., vocab)
        cap = self.config.final_logit_softcapping
        if cap is not None:
            logits = cap * torch.tanh(logits / cap)
        return logits

    def hidden_states(self, input_ids, attention_mask=None, cache=None, segments=None):
        """input_ids (B, T) -> final normed hidden states (B, T, d).

        attention_mask (B, S) marks real tokens (1) and padding (0) over the whole sequence seen so
        far (S = T without a cache, S = cached + T with one). Padding may sit anywhere (left padding
        for generation, right padding for training); positions count real tokens only, as HF does.
        segments (B, T) instead: packed rows (data/format.pack), the example index of every slot,
        -1 on padding; positions restart at 0 with every example and attention stays inside it."""
        cfg = self.config
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        S = past + T
        slots = torch.arange(S, device=input_ids.device)
        if segments is not None:
            if cache is not None or attention_mask is not None or segments.shape != (B, T):
                raise ValueError(f"segments {tuple(segments.shape)} need input_ids {(B, T)}, no attention_mask and no cache")
            attention_mask = (segments >= 0).long()
            positions = segment_positions(segments)  # (B, T)
        if attention_mask is None:
            attention_mask = torch.ones(B, S, dtype=torch.long, device=input_ids.device)
        if attention_mask.shape != (B, S):
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, S)}")
        valid = attention_mask.bool()
        if segments is None:  # RoPE positions: index among real tokens (pads get 0, they are masked anyway)
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
        q_slots = slots[past:].expand(B, T)  # (B, T)
        k_slots = slots.expand(B, S)  # (B, S)
        # Without padding, a plain causal mask is implied: SDPA then takes its fused causal kernel
        # (is_causal=True) instead of reading a (B, 1, T, S) mask. That holds when queries and keys
        # are aligned (no cache, or one new token) and no key falls out of a sliding window.
        plain_causal = (cfg.attn_logit_softcapping is None and (past == 0 or T == 1) and bool(valid.all())
                        and segments is None)
        windows = {blk.self_attn.window for blk in self.model.layers}
        if segments is not None and self.by_span:
            spans = segment_spans(segments)  # every attention layer reads the examples' spans, no mask
            masks = {w: spans for w in windows}
        else:
            masks = {w: None if plain_causal and (w is None or S <= w) else make_attention_mask(q_slots, k_slots, valid, w, segments)
                     for w in windows}

        x = self.model.embed_tokens(input_ids)  # (B, T, d)
        if cfg.is_gemma:  # Gemma scales embeddings by sqrt(d), rounded to the activation dtype as HF does
            x = x * torch.tensor(cfg.hidden_size**0.5, dtype=x.dtype)
        rope = {"global": rope_cos_sin(self.inv_freq, positions, x.dtype)}  # cos, sin (B, T, hd) each
        if cfg.local_rope_theta is not None:  # Gemma-3: a second table for the sliding-window layers
            rope["local"] = rope_cos_sin(self.inv_freq_local, positions, x.dtype)
        recompute = self.grad_checkpoint and torch.is_grad_enabled() and cache is None
        for blk in self.model.layers:
            cos, sin = rope[blk.self_attn.rope]
            if recompute:  # activation checkpointing: the block runs again in the backward (RNG state kept)
                x = checkpoint(as_called_now(blk), x, cos, sin, masks[blk.self_attn.window], use_reentrant=False)
            else:
                x = blk(x, cos, sin, masks[blk.self_attn.window], cache)
        if cache is not None:
            cache.length = S
        return self.model.norm(x)

    # -- public API -----------------------------------------------------------
    def forward(self, input_ids, attention_mask=None, cache=None, logits_index=None, segments=None):
        """Logits (B, T, vocab); with logits_index (B, K) of positions, only those: (B, K, vocab).
        The vocabulary head is the biggest matmul of a small model, so SFT asks only where the loss is.
        segments: packed rows instead of a padding mask (hidden_states)."""
        h = self.hidden_states(input_ids, attention_mask, cache, segments)  # (B, T, d)
        if logits_index is not None:
            h = torch.gather(h, 1, logits_index[..., None].expand(-1, -1, h.shape[-1]))  # (B, K, d)
        return self.logits_from_hidden(h)

    def loss(self, input_ids, labels, attention_mask=None, reduction="mean", label_smoothing=0.0, segments=None):
        """Next-token cross-entropy on the positions whose label is not -100 (the answer tokens).

        labels (B, T) are aligned with input_ids: labels[t] is the token at t, predicted from
        position t-1. The lm_head runs only on the N predicting positions: (N, d) @ (d, vocab).
        reduction: "mean" (over all N tokens), "sum", "per_example" (each example's mean, (B,)) or
        "per_example_sum". A frozen head (every training in this project) takes head_cross_entropy,
        which never holds the (N, vocab) logits. A trained head holds them, unless ce_chunk > 0:
        then each chunk of positions is a checkpoint whose logits are recomputed in the backward
        (a 256k vocabulary, Gemma-2, at 8 x 512 answer tokens would otherwise take 4 GiB in fp32).
        segments (B, T): packed rows (data/format.pack); "per_example" then means per packed example
        (segment), not per row, so a packed batch gives the padded batch's loss."""
        h = self.hidden_states(input_ids, attention_mask, segments=segments)  # (B, T, d)
        target = labels[:, 1:]  # (B, T-1)
        keep = target != -100  # (B, T-1)
        h, y = h[:, :-1][keep], target[keep]  # (N, d), (N,)
        if not (torch.is_grad_enabled() and self.head_weight().requires_grad):
            # The head is frozen (LoRA and T2L training, evaluation): the fused head, which never
            # holds the (N, vocab) logits and builds d loss / d h on the way.
            tok = head_cross_entropy(h, self.head_weight(), y, label_smoothing, self.config.final_logit_softcapping)  # (N,)
        else:  # the head itself trains: logits through autograd, in checkpointed chunks with ce_chunk
            n = self.ce_chunk if self.ce_chunk > 0 else max(1, len(y))
            per_tok = []  # (N,) cross-entropy of every answer token, chunk by chunk
            for s in range(0, len(y), n):
                if self.ce_chunk > 0:
                    per_tok.append(checkpoint(self._token_ce, h[s:s + n], y[s:s + n], label_smoothing, use_reentrant=False))
                else:
                    per_tok.append(self._token_ce(h[s:s + n], y[s:s + n], label_smoothing))
            tok = torch.cat(per_tok) if per_tok else h.new_zeros(0, dtype=torch.float32)  # (N,)
        if reduction in ("per_example", "per_example_sum"):  # mean (or summed) loss of each example, (n_examples,)
            if segments is None:  # one example per row
                ex, n_ex = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(keep)[keep], labels.shape[0]  # (N,)
            else:  # packed: the example of each answer token's target
                ex = segments[:, 1:][keep]  # (N,)
                n_ex = int(segments.max()) + 1
            sums = torch.zeros(n_ex, device=labels.device).index_add_(0, ex, tok)  # (n_examples,)
            if reduction == "per_example_sum":
                return sums
            return sums / torch.zeros(n_ex, device=labels.device).index_add_(0, ex, torch.ones_like(tok)).clamp(min=1)
        return tok.sum() if reduction == "sum" else tok.mean()

    def _token_ce(self, h, y, label_smoothing):
        """(n, d) hidden states, (n,) targets -> (n,) cross-entropy, logits in fp32."""
        return F.cross_entropy(self.logits_from_hidden(h).float(), y, reduction="none", label_smoothing=label_smoothing)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens=64, temperature=0.0, top_p=1.0,
                 eos_token_ids=None, pad_token_id=None, generator=None, stop=None, on_drop=None):
        """Batched generation with a KV cache. input_ids (B, T) left-padded; returns the new tokens
        (B, <= max_new_tokens), rows that finished early filled with pad_token_id.
        temperature 0 = greedy; otherwise sampling with optional nucleus top_p.
        stop: optional function (b, n) new tokens so far -> (b,) bool, rows to end here as if they
        had written an end-of-turn token (eval.answer: the answer line is complete).
        Finished rows leave the batch once they are a quarter of it (their cache rows dropped), so a
        long reply does not keep a whole batch decoding. on_drop(kept row indices) lets the caller
        drop its own per-row state with them (eval.generate_texts: the per-example adapters).
        Bad settings or inputs are a one-line ModelError (check_generation), not a torch error
        from deep inside (a NaN temperature in torch.multinomial, a 10^9-slot KV cache)."""
        cfg = self.config
        if not (torch.is_tensor(input_ids) and input_ids.dim() == 2 and input_ids.numel() > 0
                and not input_ids.is_floating_point() and not input_ids.is_complex()):
            raise ModelError(f"generate: input_ids must be a non-empty (batch, length) tensor of token ids, "
                             f"got {tuple(input_ids.shape) if torch.is_tensor(input_ids) else type(input_ids).__name__}")
        B, T = input_ids.shape
        if attention_mask is not None and tuple(attention_mask.shape) != (B, T):
            raise ModelError(f"generate: attention_mask has shape {tuple(attention_mask.shape)}, expected {(B, T)} like input_ids")
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= cfg.vocab_size:  # the embedding lookup would fail with an index error
            raise ModelError(f"generate: token id {lo if lo < 0 else hi} is outside the vocabulary (0..{cfg.vocab_size - 1})")
        check_generation(max_new_tokens, temperature, top_p, prompt_len=T, max_positions=cfg.max_position_embeddings)
        eos = torch.tensor(eos_token_ids if eos_token_ids is not None else cfg.eos_token_id, device=input_ids.device, dtype=torch.long)
        pad = pad_token_id if pad_token_id is not None else (cfg.pad_token_id if cfg.pad_token_id is not None else (int(eos[0]) if len(eos) else 0))
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        cache = KVCache(self, B, T + max_new_tokens, input_ids.device, self.model.embed_tokens.weight.dtype)
        out = torch.full((B, max_new_tokens), pad, dtype=torch.long, device=input_ids.device)  # finished rows keep pad
        alive = torch.arange(B, device=input_ids.device)  # the rows still in the batch, as indices into it
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)  # of those rows, the finished ones
        ids, mask, n = input_ids, attention_mask, 0
        for t in range(max_new_tokens):
            last = torch.full((len(alive), 1), ids.shape[1] - 1, device=ids.device)
            logits = self.forward(ids, mask, cache=cache, logits_index=last)[:, -1]  # (b, vocab)
            nxt = sample_next(logits.float(), temperature, top_p, generator)  # (b,)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            out[alive, t] = nxt
            n = t + 1
            done = done | torch.isin(nxt, eos)
            if stop is not None:
                done = done | stop(out[alive, :n])
            if bool(done.all()):
                break
            ids = nxt[:, None]  # (b, 1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)  # (b, S+1)
            if 4 * int(done.sum()) >= len(alive):  # a quarter of the rows finished: the others go on without them
                keep = (~done).nonzero()[:, 0]  # (b',)
                alive, ids, mask, done = alive[keep], ids[keep], mask[keep], done[keep]
                cache.keep(keep)
                if on_drop is not None:
                    on_drop(keep)
        return out[:, :n]  # (B, n_new)


GENERATION_ARGS = {"max_new_tokens": "max_new_tokens", "temperature": "temperature", "top_p": "top_p"}  # name each as a caller does


def check_generation(max_new_tokens, temperature, top_p, prompt_len=None, max_positions=None, names=GENERATION_ARGS):
    """A one-line ModelError unless the generation settings mean something: max_new_tokens a whole
    number >= 1, and with prompt_len and max_positions, prompt + new tokens within the positions the
    model was trained for (the KV cache is sized prompt + max_new_tokens); temperature finite and
    >= 0 (0 = greedy); top_p in (0, 1]. NaN is named on its own: it passes every `<` test, so top_p
    NaN was silently ignored and temperature NaN broke torch.multinomial. `names`: how the caller
    spells each setting (the CLI: --max-new-tokens)."""
    n, t, p = names["max_new_tokens"], names["temperature"], names["top_p"]
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ModelError(f"{n} must be a whole number >= 1, got {max_new_tokens!r}")
    if prompt_len is not None and max_positions is not None and prompt_len + max_new_tokens > max_positions:
        room = max_positions - prompt_len
        say = f"give at most {room}" if room >= 1 else "the prompt alone fills them"
        raise ModelError(f"{n} {max_new_tokens}: the prompt takes {prompt_len} tokens and the model holds "
                         f"{max_positions} positions (max_position_embeddings); {say}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not math.isfinite(temperature) or temperature < 0:
        raise ModelError(f"{t} must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not (0 < top_p <= 1):  # NaN fails 0 < top_p
        raise ModelError(f"{p} must be in (0, 1] (1 = no nucleus cut), got {top_p!r}")


def sample_next(logits, temperature, top_p, generator=None):
    """logits (B, vocab) -> next token ids (B,)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:  # nucleus: keep the smallest set of tokens whose mass reaches top_p
        p_sorted, idx = probs.sort(-1, descending=True)
        drop = p_sorted.cumsum(-1) - p_sorted > top_p
        p_sorted = p_sorted.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, idx, p_sorted)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class KVCache:
    """Preallocated keys/values per layer, (B, n_kv, max_len, hd); `length` slots are filled."""

    def __init__(self, model: Transformer, batch: int, max_len: int, device, dtype):
        cfg = model.config
        shape = (batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.num_hidden_layers)]
        self.length = 0

    def keep(self, rows):
        """Keep only these batch rows (index tensor): generation drops its finished rows."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]

    def update(self, layer, k, v):
        T = k.shape[2]
        self.k[layer][:, :, self.length:self.length + T] = k
        self.v[layer][:, :, self.length:self.length + T] = v
        end = self.length + T
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # (B, n_kv, S, hd)


# -----------------------------------------------------------------------------
# Loading


def _safe_open(path: Path):
    """safetensors' reader, with a truncated or garbled file reported as one line naming it."""
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) on bad bytes
        raise ModelError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None


def _read_safetensors_index(model_dir: Path):
    """-> {tensor name: shard file} for a single or sharded checkpoint, checking every file exists."""
    single = model_dir / "model.safetensors"
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index, ModelError, "with a 'weight_map'").get("weight_map")
        if not isinstance(weight_map, dict):
            raise ModelError(f"{index}: expected JSON with a 'weight_map' object")
        for shard in sorted(set(weight_map.values())):
            if not (model_dir / shard).is_file():
                raise ModelError(f"{model_dir / shard}: shard listed in {index.name} is missing")
        return {name: model_dir / shard for name, shard in weight_map.items()}
    if single.is_file():
        with _safe_open(single) as f:
            return {name: single for name in f.keys()}
    raise ModelError(f"{model_dir}: no model.safetensors or model.safetensors.index.json found")


def load_pretrained(path=None, device="cpu", dtype=torch.float32) -> Transformer:
    """Build the model from config.json and copy every tensor in, strictly:
    every parameter must be found with the right shape, and no checkpoint tensor may be left over."""
    model_dir = Path(path) if path is not None else default_model_dir()
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model folder not found")
    cfg = ModelConfig.from_json(model_dir / "config.json")
    with torch.device("meta"):
        model = Transformer(cfg)
    expected = dict(model.named_parameters())
    files = _read_safetensors_index(model_dir)
    # Checkpoints may carry extra tensors we do not model: rotary caches, and a redundant lm_head when tied.
    ignorable = lambda n: n.endswith("rotary_emb.inv_freq") or (cfg.tie_word_embeddings and n == "lm_head.weight")
    missing = sorted(set(expected) - set(files))
    unexpected = sorted(n for n in set(files) - set(expected) if not ignorable(n))
    if missing:
        raise ModelError(f"{model_dir}: {len(missing)} tensor(s) missing from the checkpoint, first: {missing[0]}")
    if unexpected:
        raise ModelError(f"{model_dir}: {len(unexpected)} unexpected tensor(s) in the checkpoint, first: {unexpected[0]}")

    state = {}
    by_file = {}
    for name in expected:
        by_file.setdefault(files[name], []).append(name)
    for file, names in by_file.items():
        with _safe_open(file) as f:
            for name in names:
                shape = tuple(f.get_slice(name).get_shape())
                want = tuple(expected[name].shape)
                if shape != want:
                    raise ModelError(f"{file.name}: tensor {name} has shape {shape}, expected {want}")
                try:
                    t = f.get_tensor(name)
                except Exception as e:  # a file cut short after its header
                    raise ModelError(f"{file}: tensor {name} cannot be read ({str(e).splitlines()[0][:120]})") from None
                if t.is_floating_point() and not torch.isfinite(t).all():  # NaN/inf weights answer with garbage
                    raise ModelError(f"{file}: tensor {name} holds NaN or inf values (a corrupted checkpoint?)")
                state[name] = t.to(device=device, dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    model.inv_freq = rope_inv_freq(cfg).to(device)  # buffers are not in the checkpoint: computed here, off `meta`
    if cfg.local_rope_theta is not None:
        model.inv_freq_local = rope_inv_freq(cfg, local=True).to(device)
    # Every weight here is frozen: T2L trains only the hypernetwork (section 3).
    model.requires_grad_(False)
    return model.eval()


def default_model_dir() -> Path:
    """The default base model's folder; a one-line error says how to prepare it if it is not there."""
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        raise ModelError(f"{DEFAULT_MODEL_DIR}: the default base model is not prepared yet; run: {PREPARE_HINT}")
    return DEFAULT_MODEL_DIR


# -----------------------------------------------------------------------------
# Tokenizer


class Tokenizer:
    """tokenizer.json (via `tokenizers`) + the chat template of tokenizer_config.json (via jinja2)."""

    def __init__(self, model_dir):
        model_dir = Path(model_dir)
        tj = model_dir / "tokenizer.json"
        if not tj.is_file():
            raise ModelError(f"{tj}: tokenizer.json not found (expected the fast-tokenizer file of the model)")
        try:
            self.tok = HFTok.from_file(str(tj))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            raise ModelError(f"{tj}: not a readable tokenizer.json ({str(e).splitlines()[0][:120]})") from None
        tc_path = model_dir / "tokenizer_config.json"
        tc = read_json(tc_path, ModelError, "tokenizer settings") if tc_path.is_file() else {}
        cfg_path = model_dir / "config.json"
        cfg = read_json(cfg_path, ModelError, "model settings") if cfg_path.is_file() else {}

        def tok_str(v):  # tokenizer_config stores special tokens as a string or an AddedToken dict
            return v.get("content") if isinstance(v, dict) else v

        self.bos_token = tok_str(tc.get("bos_token"))
        self.eos_token = tok_str(tc.get("eos_token"))
        self.pad_token = tok_str(tc.get("pad_token"))
        self.chat_template = tc.get("chat_template")
        if isinstance(self.chat_template, list):  # some repos store [{"name": "default", "template": ...}]
            self.chat_template = next((t["template"] for t in self.chat_template if t.get("name") == "default"), None)
        self.bos_token_id = self.tok.token_to_id(self.bos_token) if self.bos_token else cfg.get("bos_token_id")
        eos_ids = cfg.get("eos_token_id")
        eos_ids = [] if eos_ids is None else (eos_ids if isinstance(eos_ids, list) else [eos_ids])
        if self.eos_token and self.tok.token_to_id(self.eos_token) is not None:
            eos_ids = [self.tok.token_to_id(self.eos_token)] + [i for i in eos_ids if i != self.tok.token_to_id(self.eos_token)]
        # Chat models also stop at their end-of-turn token (Gemma: <end_of_turn>).
        for extra in ("<end_of_turn>", "<|eot_id|>", "<|im_end|>"):
            i = self.tok.token_to_id(extra)
            if i is not None and i not in eos_ids:
                eos_ids.append(i)
        self.eos_token_ids = eos_ids
        pid = self.tok.token_to_id(self.pad_token) if self.pad_token else None
        self.pad_token_id = pid if pid is not None else (eos_ids[0] if eos_ids else 0)
        self._template = None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Plain text -> ids. add_special_tokens lets tokenizer.json's post-processor add BOS where
        the family wants one (Llama, Mistral, Gemma); never for chat text, whose template has it."""
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True):
        """Render messages [{"role", "content"}] with the model's own jinja2 template, as HF does
        (trim_blocks, lstrip_blocks, sandboxed), then tokenize without adding specials again."""
        if self.chat_template is None:
            raise ModelError("tokenizer_config.json: no chat_template (expected one for a chat model)")
        if self._template is None:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(msg):
                raise ModelError(f"chat template: {msg}")

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = raise_exception
            env.filters["tojson"] = lambda x, indent=None, **kw: json.dumps(x, ensure_ascii=False, indent=indent)
            self._template = env.from_string(self.chat_template)
        text = self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos_token or "", eos_token=self.eos_token or "")
        return self.encode(text, add_special_tokens=False) if tokenize else text


def load_tokenizer(path=None) -> Tokenizer:
    return Tokenizer(Path(path) if path is not None else default_model_dir())


def left_pad(seqs, pad_id):
    """list of id lists -> input_ids, attention_mask (B, T_max), padded on the left for generation."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, T - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, T - len(s):] = 1
    return ids, mask


def chat_batch(tok, prompts, system=None):
    """The left-padded input_ids, attention_mask (B, T) that `chat` generates from."""
    # system=None: no system message (the template may add its default); "" : an empty one, as the reference sends
    msgs = [([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": p}]
            for p in prompts]
    return left_pad([tok.apply_chat_template(m) for m in msgs], tok.pad_token_id)


def chat(model, tok, prompts, max_new_tokens=64, temperature=0.0, top_p=1.0, system=None):
    """Answer a list of user prompts in one batched generate call; returns the decoded answers."""
    device = next(model.parameters()).device
    ids, mask = chat_batch(tok, prompts, system)
    out = model.generate(ids.to(device), mask.to(device), max_new_tokens=max_new_tokens, temperature=temperature,
                         top_p=top_p, eos_token_ids=tok.eos_token_ids, pad_token_id=tok.pad_token_id)
    return [tok.decode([t for t in row.tolist() if t not in tok.eos_token_ids and t != tok.pad_token_id]).strip() for row in out]


def check_device(name: str, flag: str = "--device") -> torch.device:
    """A device this machine has, or a one-line ModelError naming the flag (not torch's traceback on
    the first tensor moved there)."""
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ModelError(f"{flag} {name!r}: not a device (expected cpu or cuda)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelError(f"{flag} {name}: this machine has no CUDA device (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModelError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ModelError(f"{flag} {name}: not supported (expected cpu or cuda)")
    return dev


# -----------------------------------------------------------------------------
# CLI


CLI_NAMES = {"max_new_tokens": "--max-new-tokens", "temperature": "--temperature", "top_p": "--top-p"}


def main(argv=None):
    p = ArgParser(description="Chat with a base model loaded by hand from its official safetensors folder.")
    p.add_argument("--prompt", action="append", required=True, help="user message (repeat for a batch)")
    p.add_argument("--model", default=None, help=f"model folder (default: SmolLM2-135M-Instruct, prepared by `{PREPARE_HINT}`)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation length cap (>= 1; prompt + this fit the model's positions)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy, else > 0 (finite)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass, in (0, 1]")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="weight dtype")
    args = p.parse_args(argv)
    try:
        # Settings first, before seconds of loading; the length against the prompt once it is tokenized.
        check_generation(args.max_new_tokens, args.temperature, args.top_p, names=CLI_NAMES)
        device = check_device(args.device)
        try:
            torch.manual_seed(args.seed)
        except (RuntimeError, ValueError):  # "Overflow when unpacking long long"
            raise ModelError(f"--seed {args.seed}: out of range (expected a 64-bit integer)") from None
        model = load_pretrained(args.model, device=device, dtype=getattr(torch, args.dtype))
        tok = load_tokenizer(args.model)
        ids, _ = chat_batch(tok, args.prompt)
        check_generation(args.max_new_tokens, args.temperature, args.top_p, prompt_len=ids.shape[1],
                         max_positions=model.config.max_position_embeddings, names=CLI_NAMES)
        answers = chat(model, tok, args.prompt, args.max_new_tokens, args.temperature, args.top_p)
    except (ModelError, OSError) as e:
        sys.exit(f"error: {e}")
    for prompt, answer in zip(args.prompt, answers):
        print(f"> {prompt}\n{answer}")


if __name__ == "__main__":
    main()
