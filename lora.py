"""
lora.py: LoRA by hand (Hu et al. 2021), on the activation side, with per-example adapters.

    y = x W^T + s * (x A^T) B^T          A: (r, d_in), B: (d_out, r), s = alpha / r   (section 2: W + Delta W, Delta W = s B A)

T2L (paper section 3) generates a *different* adapter for every example of a batch: a batch of
8 tasks carries 8 adapters, and one server can answer many task descriptions at once. So every
adapted Linear accepts either one adapter for the whole batch, A (r, d_in) and B (d_out, r), or
one per example, A (B, r, d_in) and B (B, d_out, r), applied with two batched matmuls. The
delta is never materialised as a (d_out, d_in) matrix on the hot path, and no Python loop runs
over examples. Training packs a batch's examples end to end in rows (data/format.pack, no
padding); there each *token* applies its own example's adapter (lora_delta_routed).

An *adapter* here is a plain dict {module name: (A, B)} with Hugging Face module names
("model.layers.3.self_attn.q_proj"), so the same dict comes from a trainable `LoRA` module, from
the hypernetwork (t2l.py) or from a PEFT folder, and saves to PEFT's format unchanged.

One scaling convention everywhere: s = alpha / r, or alpha / sqrt(r) with use_rslora=True;
the choice is stored in adapter_config.json (the reference implementation trains with rsLoRA
but evaluates with alpha / r, a silent 2.8x mismatch that this file cannot make).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from common import UserError, read_json, recover_folder, write_folder_atomically  # the JSON reader, the output guard (plumbing, common.py)

ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraError(UserError):
    """A LoRA that does not fit its model, or a malformed adapter folder; the message is one line."""


# The LoRA every script trains or generates unless told otherwise: the paper's (and the reference's)
# rank 8, alpha 16, on q_proj and v_proj. Defined here only; LoraConfig, t2l.T2LConfig and the
# training scripts' settings take their defaults from these three names.
RANK = 8
ALPHA = 16.0
TARGETS = ("q_proj", "v_proj")


@dataclass
class LoraConfig:
    r: int = RANK  # rank of every adapter
    alpha: float = ALPHA  # LoRA alpha; the update is scaled by alpha / r
    target_modules: list = field(default_factory=lambda: list(TARGETS))  # Linear names to adapt
    layers: list | None = None  # layer indices to adapt; None = every layer
    use_rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r) instead of alpha / r

    @property
    def scaling(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r

    def __post_init__(self):
        bad = [t for t in self.target_modules if t not in ALL_TARGETS]
        if bad:
            raise LoraError(f"target module {bad[0]!r} is not a Linear this project adapts (expected some of {', '.join(ALL_TARGETS)})")
        if self.r < 1:
            raise LoraError(f"LoRA rank must be >= 1, got {self.r}")
        self.target_modules = [t for t in ALL_TARGETS if t in self.target_modules]  # canonical order


# -----------------------------------------------------------------------------
# The adapted Linear


def lora_delta(x, A, B):
    """s-less LoRA update (x A^T) B^T for a shared or a per-example adapter.

    x (Bsz, T, d_in); shared: A (r, d_in), B (d_out, r); per-example: A (Bsz, r, d_in), B (Bsz, d_out, r)."""
    if A.dim() == 2:
        return (x @ A.t()) @ B.t()  # (Bsz, T, r) -> (Bsz, T, d_out)
    if A.shape[0] != x.shape[0]:
        raise LoraError(f"per-example adapter batch {A.shape[0]} does not match input batch {x.shape[0]}")
    # assignment 1: begin
    h = torch.bmm(x, A.transpose(1, 2))  # (Bsz, T, d_in) @ (Bsz, d_in, r) -> (Bsz, T, r)
    return torch.bmm(h, B.transpose(1, 2))  # (Bsz, T, r) @ (Bsz, r, d_out) -> (Bsz, T, d_out)
    # assignment 1: end


def lora_delta_routed(x, A, B, segments):
    """Per-token adapters for packed rows (data/format.pack): each token applies the adapter of the
    example it belongs to, so examples of different tasks can share one row with no padding.

    x (R, T, d_in); A (n, r, d_in), B (n, d_out, r): one adapter per example; segments (R, T): the
    example index of every token, -1 on padding (no update). All n adapters are stacked along the
    rank into one rank-n*r LoRA, and each token keeps only its own example's r columns of x A^T:

        h = (x [A_0; ...; A_n-1]^T) * onehot(segment)      then   delta = h [B_0, ..., B_n-1]^T

    Two dense matmuls, exact (the other blocks are multiplied by zero), no gather of per-token
    (d_out, r) matrices: the one-hot form of Punica's SGMV, which a GPU runs as well as a CPU. It
    costs n times the FLOPs of per-example bmm on the LoRA path, which is small beside the frozen
    weight's matmul (rank 8 x 8 examples = 64 columns against d_out = 576 for SmolLM2's q_proj)."""
    n, r, d_in = A.shape
    R, T, _ = x.shape
    h = x @ A.reshape(n * r, d_in).t()  # (R, T, d_in) @ (d_in, n*r) -> (R, T, n*r)
    own = segments[..., None] == torch.arange(n, device=x.device)  # (R, T, n): which example's block to keep
    h = (h.view(R, T, n, r) * own[..., None].to(h.dtype)).view(R, T, n * r)  # other examples' columns -> 0
    return h @ B.transpose(1, 2).reshape(n * r, -1)  # (R, T, n*r) @ (n*r, d_out) -> (R, T, d_out)


class LoRALinear(nn.Module):
    """A Linear with an optional LoRA. It holds the *same* weight and bias Parameters as the
    nn.Linear it replaces (no copy, same state_dict keys, so model loading and PEFT names are
    untouched); the adapter tensors are set from outside for each forward pass."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight  # (d_out, d_in), frozen
        self.bias = base.bias
        self.lora_A = None  # (r, d_in) or (Bsz, r, d_in)
        self.lora_B = None  # (d_out, r) or (Bsz, d_out, r)
        self.scaling = 0.0
        self.dropout = 0.0  # dropout on the LoRA input during training (reference: 0.05); 0 at evaluation
        self.shared = None  # a SharedInput when this module's LoRA-A product is fused with its siblings'
        self.segments = None  # (R, T) example index of every token of a packed batch: per-token adapters

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.lora_A is None:
            return y
        if self.segments is not None and self.lora_A.dim() == 3:  # packed rows: each token its example's adapter
            xa = F.dropout(x, self.dropout) if self.dropout > 0 else x
            return y + self.scaling * lora_delta_routed(xa.to(self.lora_A.dtype), self.lora_A, self.lora_B, self.segments).to(y.dtype)
        if self.shared is not None and self.dropout == 0 and self.lora_A.dim() == 3:
            h = self.shared.product(x, self)  # (Bsz, T, r): this module's slice of the fused x A^T
            return y + self.scaling * torch.bmm(h, self.lora_B.transpose(1, 2)).to(y.dtype)  # (Bsz, T, d_out)
        xa = F.dropout(x, self.dropout) if self.dropout > 0 else x  # only the LoRA path sees the dropout
        return y + self.scaling * lora_delta(xa.to(self.lora_A.dtype), self.lora_A, self.lora_B).to(y.dtype)

    def call_state(self):
        """The per-call adapter state; model.py's activation checkpointing restores it for the recomputation."""
        return self.lora_A, self.lora_B, self.scaling, self.dropout, self.segments

    def set_call_state(self, state):
        A, B, self.scaling, self.dropout, self.segments = state
        object.__setattr__(self, "lora_A", A)
        object.__setattr__(self, "lora_B", B)

    def extra_repr(self):
        shape = None if self.lora_A is None else tuple(self.lora_A.shape)
        return f"in={self.in_features}, out={self.out_features}, lora_A={shape}"


class SharedInput:
    """Sibling Linears that read the same input (q, k, v in attention; gate, up in the MLP): with
    per-example adapters, their x A^T products run as ONE batched matmul over the A's stacked
    along the rank, x (Bsz, T, d_in) @ [A_q; A_k; A_v]^T -> (Bsz, T, 3r), done by the first sibling
    called and sliced by the others (the second matmul, with each B, stays per module). Fewer,
    larger kernels: a launch-bound GPU gains, a CPU does not (bench/RESULTS.md), so it is opt-in
    (`inject(..., fuse=True)`). Only without LoRA dropout: dropout draws one mask per module."""

    def __init__(self, members: list):
        self.members, self.x, self.h, self.used = members, None, None, 0

    def product(self, x, mod) -> torch.Tensor:
        if self.x is not x:  # the first sibling to run on this input: one bmm for all of them
            A = [m.lora_A for m in self.members]
            if any(a is None or a.dim() != 3 for a in A):  # a sibling without a per-example adapter
                return torch.bmm(x.to(mod.lora_A.dtype), mod.lora_A.transpose(1, 2))
            A_cat = torch.cat(A, dim=1)  # (Bsz, sum r, d_in)
            self.x, self.used = x, 0
            self.h = torch.bmm(x.to(A_cat.dtype), A_cat.transpose(1, 2)).split([a.shape[1] for a in A], dim=-1)
        i = self.members.index(mod)
        h = self.h[i]  # (Bsz, T, r)
        self.used += 1
        if self.used == len(self.members):  # every sibling served: let go of the input
            self.x, self.h = None, None
        return h


def target_names(model, cfg: LoraConfig) -> list[str]:
    """Module names LoRA adapts in this model, e.g. model.layers.0.self_attn.q_proj."""
    n_layers = getattr(model, "config", model).num_hidden_layers  # a model or its ModelConfig
    layers = range(n_layers) if cfg.layers is None else cfg.layers
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise LoraError(f"LoRA layer {bad[0]} does not exist: the model has {n_layers} layers")
    return [module_name(i, t) for i in layers for t in cfg.target_modules]


def module_name(layer: int, target: str) -> str:
    """(3, "q_proj") -> "model.layers.3.self_attn.q_proj": the Hugging Face / PEFT name."""
    sub = "self_attn" if target in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return f"model.layers.{layer}.{sub}.{target}"


def module_shapes(model, cfg: LoraConfig) -> dict[str, tuple[int, int]]:
    """{module name: (d_in, d_out)} of every adapted Linear, read from the model config alone
    (t2l.py uses this to size its heads without loading any weights)."""
    c = getattr(model, "config", model)  # a model or its ModelConfig
    q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    dims = {"q_proj": (c.hidden_size, q), "k_proj": (c.hidden_size, kv), "v_proj": (c.hidden_size, kv),
            "o_proj": (q, c.hidden_size), "gate_proj": (c.hidden_size, c.intermediate_size),
            "up_proj": (c.hidden_size, c.intermediate_size), "down_proj": (c.intermediate_size, c.hidden_size)}
    return {n: dims[n.rsplit(".", 1)[1]] for n in target_names(model, cfg)}


SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # Linears that read the same input


def inject(model, cfg: LoraConfig, fuse: bool = False) -> list[str]:
    """Replace each target nn.Linear by a LoRALinear sharing its weights. Idempotent. fuse=True:
    adapted siblings (SIBLINGS) compute their per-example LoRA-A products together (SharedInput)."""
    names = target_names(model, cfg)
    for name in names:
        parent_name, attr = name.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        mod = getattr(parent, attr)
        if isinstance(mod, nn.Linear):
            setattr(parent, attr, LoRALinear(mod))
    for blk in model.model.layers:
        for sub, group in ((blk.self_attn, SIBLINGS[0]), (blk.mlp, SIBLINGS[1])):
            mods = [getattr(sub, n) for n in group if isinstance(getattr(sub, n), LoRALinear)]
            for m in mods:
                m.shared = SharedInput(mods) if fuse and len(mods) > 1 else None
    return names


def remove(model):
    """Undo `inject`: put plain nn.Linear modules back (same Parameters)."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, LoRALinear):
            parent_name, attr = name.rsplit(".", 1)
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None, device="meta")
            lin.weight, lin.bias = mod.weight, mod.bias
            setattr(model.get_submodule(parent_name), attr, lin)


def check_adapter(model, adapter: dict, source: str = "adapter"):
    """Every adapter entry must name an adapted Linear and fit its (d_in, d_out)."""
    for name, (A, B) in adapter.items():
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise LoraError(f"{source}: target {name} does not exist in the {model.config.model_type} model") from None
        if not isinstance(mod, (nn.Linear, LoRALinear)):
            raise LoraError(f"{source}: target {name} is not a Linear layer")
        r = A.shape[-2]
        if A.shape[-1] != mod.in_features or B.shape[-2] != mod.out_features or B.shape[-1] != r:
            raise LoraError(f"{source}: {name} has lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)}, "
                            f"expected ({r}, {mod.in_features}) and ({mod.out_features}, {r}) for this model")


def set_adapter(model, adapter: dict | None, scaling: float, dropout: float = 0.0, segments=None):
    """Point every adapted Linear at its (A, B) from `adapter` (others get none). None clears all.
    dropout > 0 (training only) drops elements of the LoRA input x before x A^T. segments (R, T):
    the batch is packed (data/format.pack) and per-example adapters are routed per token."""
    adapter = adapter or {}
    n_ex = {A.shape[0] for A, _ in adapter.values() if A.dim() == 3}
    if segments is not None and n_ex and int(segments.max()) >= min(n_ex):
        raise LoraError(f"packed batch holds {int(segments.max()) + 1} examples but the adapter {min(n_ex)}")
    for name, mod in model.named_modules():
        if isinstance(mod, LoRALinear):
            A, B = adapter.get(name, (None, None))
            # Plain attributes, not registered Parameters: the adapter belongs to whoever made it
            # (a LoRA module, the hypernetwork), never to the model's parameters or state_dict.
            object.__setattr__(mod, "lora_A", A)
            object.__setattr__(mod, "lora_B", B)
            mod.scaling, mod.dropout, mod.segments = scaling, dropout, segments
    missing = [n for n in adapter if not isinstance(model.get_submodule(n), LoRALinear)]
    if missing:
        raise LoraError(f"adapter target {missing[0]} was not injected; call lora.inject(model, cfg) with its target modules first")


@contextmanager
def use_adapter(model, adapter: dict | None, scaling: float, dropout: float = 0.0, segments=None):
    """with use_adapter(model, adapter, s): ...  -- the adapter is cleared again on exit."""
    set_adapter(model, adapter, scaling, dropout, segments)
    try:
        yield model
    finally:
        set_adapter(model, None, 0.0)


def stack(adapters: list[dict]) -> dict:
    """[{name: (A, B)}] * Bsz -> {name: (A (Bsz, r, d_in), B (Bsz, d_out, r))}, one adapter per example."""
    return {n: (torch.stack([a[n][0] for a in adapters]), torch.stack([a[n][1] for a in adapters])) for n in adapters[0]}


def delta_gram(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """P adapters of one module, A (P, r, d_in) and B (P, d_out, r) -> their Gram matrix
    G_ij = <B_i A_i, B_j A_j>_F, (P, P), without forming any d_out x d_in Delta W:
    <B_i A_i, B_j A_j> = tr(A_i^T B_i^T B_j A_j) = sum_kl (B_i^T B_j)_kl (A_i A_j^T)_kl."""
    BtB = torch.einsum("iok,jol->ijkl", B.float(), B.float())  # (P, P, r, r): B_i^T B_j
    AAt = torch.einsum("ikd,jld->ijkl", A.float(), A.float())  # (P, P, r, r): A_i A_j^T
    return (BtB * AAt).sum((-1, -2))  # (P, P)


# -----------------------------------------------------------------------------
# Trainable LoRA (oracle per-task LoRAs, the multi-task LoRA baseline)


class LoRA(nn.Module):
    """The trainable A and B of one adapter. A starts like PEFT's (Kaiming-uniform, a = sqrt(5)),
    B at zero, so the adapted model equals the base model at step 0."""

    def __init__(self, model, cfg: LoraConfig):
        super().__init__()
        self.cfg = cfg
        self.names = target_names(model, cfg)
        self.A = nn.ParameterDict()
        self.B = nn.ParameterDict()
        device = model.model.embed_tokens.weight.device
        for name, (d_in, d_out) in module_shapes(model, cfg).items():
            key = name.replace(".", "__")  # ParameterDict keys cannot hold dots
            a = torch.empty(cfg.r, d_in, device=device)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            self.A[key] = nn.Parameter(a)
            self.B[key] = nn.Parameter(torch.zeros(d_out, cfg.r, device=device))

    def adapter(self) -> dict:
        return {n: (self.A[n.replace(".", "__")], self.B[n.replace(".", "__")]) for n in self.names}


# -----------------------------------------------------------------------------
# Merge / unmerge (inference with a single adapter at zero extra cost)


@torch.no_grad()
def merge(model, adapter: dict, scaling: float):
    """W <- W + s * B A, in place. Only for a shared (unbatched) adapter."""
    check_adapter(model, adapter)
    for name, (A, B) in adapter.items():
        if A.dim() != 2:
            raise LoraError(f"cannot merge a per-example adapter ({name} lora_A {tuple(A.shape)}); merge one example's adapter")
        W = model.get_submodule(name).weight
        W += (scaling * (B.float() @ A.float())).to(W.dtype)  # (d_out, r) @ (r, d_in) -> (d_out, d_in)


@torch.no_grad()
def unmerge(model, adapter: dict, scaling: float):
    """Inverse of `merge` (exact up to floating-point rounding)."""
    merge(model, {n: (A, -B) for n, (A, B) in adapter.items()}, scaling)


# -----------------------------------------------------------------------------
# PEFT-format files

PEFT_PREFIX = "base_model.model."


def save_peft(adapter: dict, cfg: LoraConfig, out_dir, base_model: str = "", extra: dict | None = None,
              inputs=(), more: dict | None = None):
    """Write adapter_config.json + adapter_model.safetensors with PEFT's key names, atomically
    (write_folder_atomically), so a crash never leaves half an adapter. `extra` (e.g. the task
    description) goes into the safetensors metadata; `more` {file name: JSON object} beside."""
    out_dir = Path(out_dir)
    tensors = {}
    for name, (A, B) in adapter.items():
        if A.dim() != 2:
            raise LoraError(f"cannot save a per-example adapter ({name} lora_A {tuple(A.shape)}); save one example's")
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = A.detach().float().cpu().contiguous()
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = B.detach().float().cpu().contiguous()
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(base_model),
        "r": cfg.r, "lora_alpha": cfg.alpha, "use_rslora": cfg.use_rslora, "target_modules": cfg.target_modules,
        "layers_to_transform": cfg.layers, "layers_pattern": "layers" if cfg.layers is not None else None,
        "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "modules_to_save": None,
    }
    bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
    if bad:
        raise LoraError(f"{out_dir}: refusing to save an adapter with NaN or inf values (first: {bad[0]})")

    def write(tmp):
        save_file(tensors, str(tmp / "adapter_model.safetensors"), metadata={k: str(v) for k, v in (extra or {}).items()})
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
        for name, obj in (more or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2))
    return write_folder_atomically(out_dir, write, ADAPTER_FILES, inputs)


# Files a PEFT adapter folder written by this project may hold (save_peft, plus train_sft's score).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "result.json")


def load_peft(path, model=None, device="cpu") -> tuple[dict, LoraConfig]:
    """Read a PEFT LoRA folder -> (adapter, LoraConfig). With `model`, every tensor is checked
    against the module it targets."""
    path = Path(path)
    recover_folder(path, ADAPTER_FILES)  # a writer killed between its two fallback renames left the old folder aside
    cfg_path, w_path = path / "adapter_config.json", path / "adapter_model.safetensors"
    for f in (cfg_path, w_path):
        if not f.is_file():
            raise LoraError(f"{f}: not found (expected a PEFT LoRA folder with adapter_config.json and adapter_model.safetensors)")
    c = read_json(cfg_path, LoraError, "PEFT's LoraConfig")
    if c.get("peft_type", "LORA") != "LORA":
        raise LoraError(f"{cfg_path}: peft_type {c.get('peft_type')!r}, expected 'LORA'")
    targets = c.get("target_modules") or []
    if isinstance(targets, str):
        raise LoraError(f"{cfg_path}: target_modules is a regex ({targets!r}); expected a list of module names")
    layers = c.get("layers_to_transform")
    r, alpha = c.get("r"), c.get("lora_alpha")
    if (not isinstance(r, int) or isinstance(r, bool) or r < 1 or not isinstance(alpha, (int, float)) or isinstance(alpha, bool)
            or not math.isfinite(alpha) or alpha <= 0):  # the scaling alpha / r: a bad one silently rescales the update
        raise LoraError(f"{cfg_path}: expected a positive integer 'r' and a finite number 'lora_alpha' > 0, got r={r!r}, lora_alpha={alpha!r}")
    cfg = LoraConfig(r=r, alpha=float(alpha), target_modules=targets,
                     layers=[layers] if isinstance(layers, int) else layers, use_rslora=bool(c.get("use_rslora", False)))
    try:
        sd = load_file(str(w_path), device=str(device))  # safetensors wants "cuda:0", not torch.device
    except Exception as e:  # SafetensorError on a truncated or garbled file
        raise LoraError(f"{w_path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    adapter = {}
    for key in sd:
        if not key.endswith(".lora_A.weight"):
            continue
        name = key[: -len(".lora_A.weight")]
        name = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
        bkey = key.replace(".lora_A.weight", ".lora_B.weight")
        if bkey not in sd:
            raise LoraError(f"{w_path}: {key} has no matching lora_B")
        A, B = sd[key], sd[bkey]
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise LoraError(f"{w_path}: {name} has lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)}; expected (r, d_in) and (d_out, r)")
        if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
            raise LoraError(f"{w_path}: {name} holds NaN or inf values (a corrupted adapter?)")
        if A.shape[0] != r:  # the scaling alpha / r would be computed with the wrong r
            raise LoraError(f"{cfg_path}: r is {r}, but {name} in {w_path.name} has rank {A.shape[0]}")
        adapter[name] = (A, B)
    if not adapter:
        raise LoraError(f"{w_path}: no lora_A/lora_B tensors found")
    if model is not None:
        check_adapter(model, adapter, str(path))
    return adapter, cfg
