"""
scripts/report.py: finished runs -> the result files committed under results/ (tables with error bars,
paired comparisons, plots), so that every number RESULTS.md quotes comes from one command.

    python -m scripts.report table RUN_DIR --out PREFIX
        RUN_DIR is an eval.py --out folder (results.json). Writes PREFIX.md (the per-task table,
        then per column: mean, standard error over tasks, tasks scored; then every T2L column
        against each reference column present (mt_lora, base, t2l_random, t2l_wrong, avg_lora)
        over the tasks both scored: mean difference, a 95% paired bootstrap interval and
        wins / ties / losses), PREFIX.json (results.json plus those statistics), and copies of
        RUN_DIR's zero_shot.png and benchmarks.png as PREFIX.png and PREFIX_benchmarks.png.

    python -m scripts.report ablation LABEL=RUN_DIR [LABEL=RUN_DIR ...] --xlabel TEXT --out PREFIX
        each RUN_DIR is a train_sft.py T2L run folder (zero_shot.json). Writes PREFIX.md (one row
        per arm, in the order given: T2L mean and its standard error, the base model's mean, tasks,
        the run folder and its training settings), PREFIX.json, and PREFIX.png: T2L score per arm
        with standard-error bars and a dashed line at the base model's mean. Numeric labels
        (say 1=runs/a 4=runs/b) give a line plot on a numeric x axis, others bars.

    python -m scripts.report seeds RUN_DIR [RUN_DIR ...] --out PREFIX
        each RUN_DIR a train_sft.py T2L run of one recipe with another --seed. Writes PREFIX.md and
        PREFIX.json: per run and pooled over every (run, task), T2L beside its two controls, T2L
        minus each paired with a 95% bootstrap interval, and the steering test pooled over every
        run's inputs: one run shows the direction of the text's effect, several its size.

    python -m scripts.report table runs/eval --out results/zero_shot_test
    python -m scripts.report ablation 6=runs/tasks6 24=runs/tasks24 96=runs/tasks96 --xlabel "training tasks" --out results/n_tasks

PREFIX is a file prefix (results/name), not a folder. The command never replaces a file it did not
write: an existing PREFIX.json must carry its marker ("report": ...), an existing PREFIX.md its
first line, and PREFIX.png / PREFIX_benchmarks.png count as ours only beside our PREFIX.json;
anything else is a one-line error (no flag overrides it: a user's file is never replaced). The rules
are the project's one output guard (common.check_output_files: no symbolic link written through, no
output into or over the run folders being read); this script only says which marks are its own.

Statistics, all over tasks (the unit the paper averages over):
  mean      the plain mean of a column's scored tasks (as eval.py's mean row)
  s.e.      the sample standard deviation over those tasks / sqrt(n) (ddof 1; none for one task)
  paired    d_i = T2L_i - reference_i on the tasks both scored; the 95% interval is the 2.5 and
            97.5 percentiles of the mean of d over 10000 resamples of the tasks with replacement
            (numpy, seed 0, fresh for every pair so that each interval is reproducible alone)
"""
from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

import common
import eval


class ReportError(common.UserError):
    """A missing or malformed run folder, a bad argument, an output file we must not replace: one line."""


# Columns a T2L column is compared with, when present (names as eval.columns writes them).
REFERENCES = eval.REFERENCES
BOOTSTRAP, SEED = eval.BOOTSTRAP, eval.BOOTSTRAP_SEED  # resamples of the tasks for the paired interval, and their seed
# The first line of every .md this script writes starts with this: it is how a later run knows the
# file is its own (and also tells the reader where the numbers came from).
# Files written before this script moved to scripts/ begin with the old command; they are ours too.
MD_MARK = ("Made by `python -m scripts.report", "Made by `python report.py")
KINDS = ("table", "ablation", "seeds")  # the "report" value of a PREFIX.json this script wrote
SETTINGS = ("steps", "n_train_tasks", "descs_per_task", "encoder")  # ablation: training settings shown per arm


# -----------------------------------------------------------------------------
# Output files under a prefix: common's guard decides, by the marks this script leaves; written atomically


def prefix_paths(prefix, suffixes) -> list[Path]:
    """'results/x' + ('.json', '.md') -> [results/x.json, results/x.md]."""
    prefix = Path(prefix)
    return [prefix.with_name(prefix.name + s) for s in suffixes]


def output_files(prefix, suffixes, kinds, md_mark, inputs=()) -> list[Path]:
    """--out PREFIX -> the paths PREFIX + each suffix, once the project's one output guard
    (common.check_output_files) allows every one of them; its OutputError otherwise. What this
    script adds is only how it knows a file is its own: a .json must be an object whose "report"
    is one of `kinds`, a .md must begin with `md_mark`, any other file (a .png) counts as ours when
    PREFIX.json is ours. (Links, folders, the inputs, files not ours: common's rules.) A prefix
    that names a folder is a usage mistake, said as such."""
    prefix = Path(prefix)
    if not prefix.name or str(prefix).endswith(("/", os.sep)) or prefix.is_dir():
        raise ReportError(f"--out {prefix}: is a folder; give a file prefix such as results/my_table (it writes "
                          f"{', '.join('my_table' + s for s in suffixes)})")
    json_path = prefix.with_name(prefix.name + ".json")

    def ours(p: Path) -> bool:  # only asked of a file that exists
        if p.suffix == ".md":
            return _md_marked(p, md_mark)
        return json_path.is_file() and _json_marked(json_path, kinds)  # the .json itself, or a plot beside it
    return common.check_output_files(prefix_paths(prefix, suffixes), ours, inputs)


def _json_marked(path: Path, kinds) -> bool:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(obj, dict) and obj.get("report") in kinds


def _md_marked(path: Path, mark: str | tuple) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(mark)
    except (UnicodeDecodeError, OSError):
        return False


def copy_atomically(src: Path, dst: Path):
    """A copy of `src` at `dst` (common.write_file_atomically: the old file or the new, never half)."""
    common.write_file_atomically(dst, lambda tmp: shutil.copyfile(src, tmp))


def plot_atomically(path: Path, draw, figsize):
    """common.save_plot (the project's one plotting helper), written as by common.write_file_atomically."""
    common.write_file_atomically(path, lambda tmp: common.save_plot(tmp, draw, figsize))


def command_line(argv, script="-m scripts.report") -> str:
    """The command as typed (for the first line of the .md and the .json)."""
    return f"python {script} " + shlex.join(argv)


def md_first_line(argv, rest: str, script="-m scripts.report") -> str:
    """'Made by `python -m scripts.report table runs/eval --out x` <rest>': says where the numbers came from,
    and is the marker by which a later run knows the .md is its own (it starts with MD_MARK)."""
    return f"Made by `{command_line(argv, script)}` {rest}"


# -----------------------------------------------------------------------------
# Statistics over tasks


def mean_se(xs) -> tuple:
    """Scores (None skipped) -> (mean, standard error over tasks, n); (None, None, 0) when none.
    The standard error is the sample standard deviation (ddof 1) / sqrt(n); None for one task."""
    v = np.array([x for x in xs if x is not None], dtype=np.float64)
    if len(v) == 0:
        return None, None, 0
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else None
    return float(v.mean()), se, len(v)


paired = eval.paired  # the paired bootstrap lives with the scoring (eval.py prints it under every table)


is_t2l, reference_columns = eval.is_t2l, eval.reference_columns  # shared with eval.py's tables


# -----------------------------------------------------------------------------
# Reading run outputs


def read_scores(path: Path, what: str) -> dict:
    """results.json / zero_shot.json -> the whole object, after checking its "tasks" table:
    {task: {column: score in [0, 1] or null}}. Anything else: one ReportError line."""
    if not path.is_file():
        raise ReportError(f"{path}: not found (expected {what})")
    r = common.read_json(path, ReportError)
    rows = r.get("tasks") if isinstance(r, dict) else None
    if not isinstance(rows, dict) or not rows or not all(isinstance(v, dict) for v in rows.values()):
        raise ReportError(f"{path}: expected an object with 'tasks': {{task: {{column: score}}}} ({what})")
    for task, row in rows.items():
        for col, v in row.items():
            ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1)
            if not ok:
                raise ReportError(f"{path}: task {task!r} column {col!r} holds {v!r}, expected a score in [0, 1] or null")
    for key in ("families", "metrics"):  # read as {task: text} by the table (eval.markdown)
        v = r.get(key) or {}
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            raise ReportError(f"{path}: {key!r} must be an object {{task: name}}, got {str(v)[:40]} ({what})")
    return r


def column_order(rows: dict) -> list:
    """Columns in the order they first appear (eval.markdown's order)."""
    return list(dict.fromkeys(c for row in rows.values() for c in row))


def pct(v, signed=False) -> str:
    """A score in [0, 1] -> '42.5' (x100, one decimal); '-' for none."""
    if v is None:
        return "-"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


# -----------------------------------------------------------------------------
# scripts.report table


TABLE_SUFFIXES = (".json", ".md", ".png", "_benchmarks.png")


def table(run_dir, out, argv):
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder (expected the --out folder of an eval.py run)")
    paths = output_files(out, TABLE_SUFFIXES, KINDS, MD_MARK, inputs=[run_dir])
    j_path, md_path, png_path, bench_path = paths
    src = run_dir / "results.json" if (run_dir / "results.json").is_file() else run_dir / "zero_shot.json"
    r = read_scores(src, "the results.json of an eval.py run (or a train_sft.py run's zero_shot.json)")
    rows = r["tasks"]
    cols = column_order(rows)

    # Per column: mean, standard error over tasks, tasks scored.
    summary = {}
    for c in cols:
        m, se, n = mean_se([row.get(c) for row in rows.values()])
        summary[c] = {"mean": m, "se": se, "n": n}
    # Every T2L column against each reference column present, over the tasks both scored.
    pairs = []
    for t in [c for c in cols if is_t2l(c)]:
        for ref in reference_columns(cols, t):
            p = paired({k: row.get(t) for k, row in rows.items()}, {k: row.get(ref) for k, row in rows.items()})
            if p is not None:
                pairs.append({"t2l": t, "reference": ref, **p})

    # The .md: where it came from, the per-task table, the summary, the paired differences.
    about = [f"{k} {', '.join(map(str, r[k])) if isinstance(r[k], list) else r[k]}"
             for k in ("n_examples", "methods", "data") if r.get(k) is not None]
    lines = [md_first_line(argv, f"from {run_dir / 'results.json'}" + (f" ({'; '.join(about)})" if about else "") + "."), ""]
    lines += ["## Scores per task (x100)", "", eval.markdown(rows, r.get("families") or {}), ""]
    if isinstance(r.get("metrics"), dict) and r["metrics"]:  # how the table scored (eval.py records it per task)
        used = sorted(set(map(str, r["metrics"].values())))
        lines += ["Scored by: " + ", ".join(eval.METRIC_NAMES.get(m, m) for m in used) + ".", ""]
    lines += ["## Per column, over tasks", "", "| column | mean | s.e. | tasks |", "| --- | --- | --- | --- |"]
    lines += [f"| {c} | {pct(s['mean'])} | {pct(s['se'])} | {s['n']} |" for c, s in summary.items()]
    lines += ["", "s.e.: standard error of the mean over tasks (sample standard deviation / sqrt(tasks)).", ""]
    lines += ["## T2L against the references, paired over tasks", ""]
    if pairs:
        lines += ["| T2L | reference | tasks | mean difference | 95% bootstrap interval | wins / ties / losses |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {p['t2l']} | {p['reference']} | {p['n']} | {pct(p['mean_diff'], True)} | "
                  f"[{pct(p['ci95'][0], True)}, {pct(p['ci95'][1], True)}] | {p['wins']} / {p['ties']} / {p['losses']} |"
                  for p in pairs]
        lines += ["", f"Difference = T2L minus reference, x100, on the tasks both scored; interval: {BOOTSTRAP} "
                  f"resamples of those tasks with replacement (seed {SEED}); wins / ties / losses: tasks where T2L "
                  "scores higher / the same / lower."]
        controls = [c for c in ("t2l_wrong", "t2l_random") if c in cols]
        t2l_cols = [c for c in cols if is_t2l(c)]
        if controls and len(t2l_cols) > 1:  # eval.columns: one control column, run with the first checkpoint
            lines += ["", f"{' and '.join(controls)}: eval.py runs the controls with the first T2L checkpoint only "
                      f"({t2l_cols[0]}); the other T2L columns are compared with that same column."]
    else:
        lines.append("No T2L column with a reference column (" + ", ".join(REFERENCES) + ") scored on the same tasks.")
    md = "\n".join(lines) + "\n"

    obj = dict(r)
    obj.update({"report": "table", "source": str(run_dir), "command": command_line(argv),
                "stats": {"columns": summary, "paired": pairs, "bootstrap": {"resamples": BOOTSTRAP, "seed": SEED}}})
    common.write_text_atomically(j_path, json.dumps(obj, indent=2) + "\n")
    common.write_text_atomically(md_path, md)
    written = [j_path, md_path]
    for src, dst in ((run_dir / "zero_shot.png", png_path), (run_dir / "benchmarks.png", bench_path)):
        if src.is_file():
            copy_atomically(src, dst)
            written.append(dst)
            continue
        if dst.exists():
            dst.unlink()  # ours (checked above), from an earlier run: it would not match this table
        if src.name == "zero_shot.png":  # eval.py always writes it; benchmarks.png only for benchmarks
            print(f"warning: {src} not found; no {dst.name} written", file=sys.stderr)
    print(md)
    print(f"wrote {', '.join(map(str, written))}")
    return obj


# -----------------------------------------------------------------------------
# scripts.report ablation


ABLATION_SUFFIXES = (".json", ".md", ".png")


def parse_arms(specs: list) -> list[tuple[str, Path]]:
    """['6=runs/a', ...] -> [('6', Path('runs/a')), ...]; labels must be distinct."""
    arms = []
    for s in specs:
        label, eq, folder = s.partition("=")
        if not eq or not label.strip() or not folder.strip():
            raise ReportError(f"{s!r}: expected LABEL=RUN_DIR (say 24=runs/t2l_tasks24)")
        arms.append((label.strip(), Path(folder.strip())))
    labels = [a for a, _ in arms]
    dup = next((a for a in labels if labels.count(a) > 1), None)
    if dup is not None:
        raise ReportError(f"label {dup!r} given twice; each arm needs its own label")
    return arms


def read_arm(label: str, run_dir: Path) -> dict:
    """One train_sft.py T2L run folder -> its zero-shot numbers and training settings."""
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder (arm {label!r}; expected a train_sft.py T2L run folder)")
    zs = run_dir / "zero_shot.json"
    if not zs.is_file():
        raise ReportError(f"{zs}: not found (arm {label!r}: a finished train_sft.py T2L run writes it)")
    r = read_scores(zs, "the zero_shot.json of a train_sft.py T2L run")
    rows = r["tasks"]
    col = next((c for c in column_order(rows) if is_t2l(c)), None)
    if col is None:
        raise ReportError(f"{zs}: no T2L column (expected one named like 'T2L-S'; found {', '.join(column_order(rows))})")
    t_mean, t_se, n = mean_se([row.get(col) for row in rows.values()])
    b_mean, b_se, b_n = mean_se([row.get("base") for row in rows.values()])
    settings = {}
    for cfg_path in (run_dir / "final" / "train_config.json", run_dir / "config.json"):
        if cfg_path.is_file():
            cfg = common.read_json(cfg_path, ReportError)
            if isinstance(cfg, dict):
                settings = {k: cfg[k] for k in SETTINGS if k in cfg}
                settings_from = str(cfg_path)
                break
    else:
        settings_from = None
    return {"label": label, "run": str(run_dir), "column": col, "t2l_mean": t_mean, "t2l_se": t_se, "n_tasks": n,
            "base_mean": b_mean, "base_se": b_se, "base_n_tasks": b_n, "settings": settings, "settings_from": settings_from,
            "tasks": rows}


def numeric_labels(labels: list) -> list[float] | None:
    """The labels as numbers when every one is a finite number, else None (then: bars)."""
    try:
        xs = [float(s) for s in labels]
    except ValueError:
        return None
    return xs if all(math.isfinite(x) for x in xs) else None


def ablation_plot(arms: list, path: Path, xlabel: str):
    """T2L score per arm with standard-error bars; dashed line: the base model (first arm's base column).
    Numeric labels: a line over a numeric x axis (log2 when the values span more than 4x), else bars."""
    xs = numeric_labels([a["label"] for a in arms])
    base = arms[0]["base_mean"]
    pts = [a for a in arms if a["t2l_mean"] is not None]

    def draw(fig, ax):
        ys = [100 * a["t2l_mean"] for a in pts]
        es = [100 * (a["t2l_se"] or 0.0) for a in pts]
        if xs is not None:
            x_of = {a["label"]: x for a, x in zip(arms, xs)}
            order = sorted(range(len(pts)), key=lambda i: x_of[pts[i]["label"]])  # a line joins neighbours on x
            px = [x_of[pts[i]["label"]] for i in order]
            ax.errorbar(px, [ys[i] for i in order], yerr=[es[i] for i in order], marker="o", capsize=4,
                        color="#2a7ab9", label=pts[0]["column"] if pts else "T2L")
            if px and min(px) > 0 and max(px) / min(px) > 4:
                ax.set_xscale("log", base=2)
            ax.set_xticks(px, [pts[i]["label"] for i in order])
            ax.minorticks_off()
        else:
            ax.bar(range(len(pts)), ys, yerr=es, capsize=4, color="#2a7ab9", label=pts[0]["column"] if pts else "T2L")
            ax.set_xticks(range(len(pts)), [a["label"] for a in pts], rotation=20 if len(pts) > 4 else 0,
                          ha="right" if len(pts) > 4 else "center")
        if base is not None:
            ax.axhline(100 * base, ls="--", color="#8c8c8c", label=f"base ({100 * base:.1f})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("zero-shot score (%), mean ± s.e.")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    plot_atomically(path, draw, figsize=(max(5.0, 0.9 * len(arms) + 3), 3.8))


def ablation(specs: list, xlabel: str, out, argv):
    arms_in = parse_arms(specs)
    paths = output_files(out, ABLATION_SUFFIXES, KINDS, MD_MARK, inputs=[d for _, d in arms_in])
    j_path, md_path, png_path = paths
    arms = [read_arm(label, d) for label, d in arms_in]

    keys = [k for k in SETTINGS if any(k in a["settings"] for a in arms)]  # only settings some run records
    cell = lambda v: "-" if v is None else ("(default)" if v == "" else f"`{v}`" if isinstance(v, str) else str(v))
    lines = [md_first_line(argv, f"from {len(arms)} train_sft.py runs (x: {xlabel})."), ""]
    lines += ["| " + " | ".join([xlabel, "T2L column", "T2L mean", "s.e.", "base mean", "tasks", "run", *keys]) + " |",
              "| --- " * (7 + len(keys)) + "|"]
    for a in arms:
        lines.append("| " + " | ".join([a["label"], a["column"], pct(a["t2l_mean"]), pct(a["t2l_se"]), pct(a["base_mean"]),
                                        str(a["n_tasks"]), f"`{a['run']}`", *[cell(a["settings"].get(k)) for k in keys]]) + " |")
    lines += ["", "Scores x100, means over the run's zero-shot test tasks (zero_shot.json); s.e.: standard error over "
              "those tasks. Settings from each run's final/train_config.json (or config.json)."]
    md = "\n".join(lines) + "\n"

    obj = {"report": "ablation", "command": command_line(argv), "xlabel": xlabel, "arms": arms}
    common.write_text_atomically(j_path, json.dumps(obj, indent=2) + "\n")
    common.write_text_atomically(md_path, md)
    ablation_plot(arms, png_path, xlabel)
    print(md)
    print(f"wrote {j_path}, {md_path}, {png_path}")
    return obj


# -----------------------------------------------------------------------------
# scripts.report seeds: one recipe, several seeds, pooled


SEEDS_SUFFIXES = (".json", ".md")
STEER_READINGS = (("exact", 0), ("nearest", 1), ("preferred", 2))  # eval.steering's "units" columns


def pooled_steering(reports: list, n_boot: int = BOOTSTRAP, seed: int = SEED) -> dict | None:
    """Several runs' steering results of one setting -> {reading: (share, [lo, hi]) or None}, chance,
    n and runs, pooled over the inputs of every run that kept them (eval.steering's "units": hits per
    reading, adapters, summed chance; runs from before 2026-12-03 did not), with a bootstrap
    interval over those inputs. A reading some run did not score (preferred: the main job scores it
    on seen tasks only) is None. None when no run has units."""
    if len(reports) == 1 and isinstance(reports[0], dict) and "units" not in reports[0] and "accuracy" in reports[0]:
        r = reports[0]  # one run from before the units: its own numbers, as its table printed them
        ci = {"exact": "ci95", "nearest": "nearest_ci95", "preferred": "preferred_ci95"}
        return {"chance": r["chance"], "n": r["n"], "runs": 1,
                **{name: (r[key], r.get(ci[name])) if r.get(key) is not None else None
                   for name, key in (("exact", "accuracy"), ("nearest", "nearest"), ("preferred", "preferred"))}}
    reports = [r for r in reports if isinstance(r, dict) and r.get("units")]
    if not reports:
        return None
    units = [unit for r in reports for unit in r["units"]]
    u = np.array([[np.nan if v is None else v for v in unit] for unit in units], dtype=np.float64)  # (inputs, 5)
    idx = np.random.default_rng(seed).integers(0, len(u), size=(n_boot, len(u)))
    out = {"chance": float(u[:, 4].sum() / u[:, 3].sum()), "n": int(u[:, 3].sum()), "runs": len(reports)}
    for name, k in STEER_READINGS:
        if np.isnan(u[:, k]).any():
            out[name] = None
            continue
        boot = u[idx, k].sum(1) / u[idx, 3].sum(1)
        out[name] = (float(u[:, k].sum() / u[:, 3].sum()), [float(v) for v in np.percentile(boot, [2.5, 97.5])])
    return out


def seeds(run_dirs: list, out, argv):
    """Several train_sft.py T2L runs of one recipe (other seeds) -> one row each and a pooled row:
    T2L and its two controls, T2L minus each paired over (run, task) with a bootstrap interval over
    those pairs, and the steering test pooled over every run's inputs. One run shows the direction;
    the pooled row is the claim (RESULTS.md, "Whether the text matters")."""
    dirs = [Path(d) for d in run_dirs]
    paths = output_files(out, SEEDS_SUFFIXES, KINDS, MD_MARK, inputs=dirs)
    j_path, md_path = paths
    runs = []
    for d in dirs:
        arm = read_arm(d.name, d)
        zs = common.read_json(d / "zero_shot.json", ReportError)
        cfg = common.read_json(d / "config.json", ReportError) if (d / "config.json").is_file() else {}
        missing = [c for c in eval.CONTROLS if not any(c in row for row in arm["tasks"].values())]
        if missing:
            raise ReportError(f"{d / 'zero_shot.json'}: no {', '.join(missing)} column (the closing table of a T2L run has both)")
        runs.append({**arm, "seed": cfg.get("seed"), "steering": zs.get("steering") or {}})
    cols = {r["column"] for r in runs}
    if len(cols) > 1:
        raise ReportError(f"the runs score different T2L columns ({', '.join(sorted(cols))}): pool one variant at a time")
    col = cols.pop()

    def scores(rs, c):  # {run/task: score} over the runs given
        return {f"{r['run']}/{t}": row.get(c) for r in rs for t, row in r["tasks"].items()}

    def summary(rs) -> dict:
        row = {c: mean_se(list(scores(rs, c).values()))[0] for c in ("base", col, *eval.CONTROLS)}
        row["paired"] = {c: paired(scores(rs, col), scores(rs, c)) for c in eval.CONTROLS}
        row["steering"] = {st: pooled_steering([r["steering"].get(st) for r in rs]) for st in ("seen", "unseen")}
        return row

    rows = [(f"seed {r['seed']}" if r["seed"] is not None else r["run"], [r]) for r in runs] + [("pooled", runs)]
    table = [(label, summary(rs), rs) for label, rs in rows]
    ci = lambda p: f"{pct(p['mean_diff'], True)} [{pct(p['ci95'][0], True)}, {pct(p['ci95'][1], True)}] {p['wins']}/{p['ties']}/{p['losses']}" if p else "-"

    def steer_cell(v, n_runs):
        if v is None:
            return "-"
        cell = " / ".join(pct(v[name][0] if v[name] else None) for name, _ in STEER_READINGS) + f" ({pct(v['chance'])})"
        if v["preferred"] and v["preferred"][1]:
            cell += f"; preferred [{pct(v['preferred'][1][0])}, {pct(v['preferred'][1][1])}]"
        return cell + (f"; {v['runs']} of {n_runs} runs" if v["runs"] < n_runs else "")

    lines = [md_first_line(argv, f"from {len(runs)} train_sft.py runs of one recipe."), ""]
    lines += [f"| run | tasks | base | {col} | t2l_random | t2l_wrong | {col} − random [95% CI] w/t/l | "
              f"{col} − wrong [95% CI] w/t/l | steering seen: exact / nearest / preferred (chance) | unseen |",
              "| --- " * 10 + "|"]
    for label, sm, rs in table:
        b = "**" if label == "pooled" else ""
        n_tasks = sum(len(r["tasks"]) for r in rs)
        lines.append(f"| {b}{label}{b} | {n_tasks} | {pct(sm['base'])} | {b}{pct(sm[col])}{b} | {pct(sm['t2l_random'])} | "
                     f"{pct(sm['t2l_wrong'])} | {b}{ci(sm['paired']['t2l_random'])}{b} | {ci(sm['paired']['t2l_wrong'])} | "
                     f"{steer_cell(sm['steering']['seen'], len(rs))} | {steer_cell(sm['steering']['unseen'], len(rs))} |")
    lines += ["", f"Scores x100: means over each run's unseen test tasks (the seed also draws the split, so the runs score "
              f"different tasks); pooled: over every (run, task). Differences paired over (run, task), interval from "
              f"{BOOTSTRAP} resamples of those pairs (seed {SEED}); w/t/l: wins / ties / losses. Steering pooled over every "
              "run's inputs, interval over those inputs (eval.steering: exact, nearest member, preferred by likelihood; "
              "chance is what a text-blind hypernetwork can score at best)."]
    md = "\n".join(lines) + "\n"
    obj = {"report": "seeds", "command": command_line(argv), "column": col,
           "runs": [{"run": r["run"], "seed": r["seed"]} for r in runs],
           "rows": [{"label": label, **sm} for label, sm, _ in table]}
    common.write_text_atomically(j_path, json.dumps(obj, indent=2) + "\n")
    common.write_text_atomically(md_path, md)
    print(md)
    print(f"wrote {j_path}, {md_path}")
    return obj


# -----------------------------------------------------------------------------
# CLI


ERRORS = (common.UserError, OSError)


def parse_args(argv):
    p = common.ArgParser(prog="python -m scripts.report",
                         description="Collect finished runs into result files (tables with standard errors and "
                         "paired bootstrap intervals, plots). `python -m scripts.report table --help`, "
                         "`python -m scripts.report ablation --help`.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{table,ablation,seeds}")  # subparsers are ArgParsers too
    t = sub.add_parser("table", help="an eval.py run folder -> PREFIX.md / .json / .png with statistics",
                       description="An eval.py --out folder (results.json) -> PREFIX.md: the per-task table, mean, "
                       "standard error and tasks per column, every T2L column against mt_lora / base / t2l_random / "
                       "t2l_wrong / avg_lora (mean paired difference, 95% bootstrap interval, wins/ties/losses); "
                       "PREFIX.json; PREFIX.png and PREFIX_benchmarks.png (copies of the run's plots).")
    t.add_argument("run_dir", metavar="RUN_DIR", help="an eval.py --out folder holding results.json")
    a_ = sub.add_parser("ablation", help="several train_sft.py T2L runs -> one row and one point each",
                        description="train_sft.py T2L run folders (zero_shot.json), one per arm -> PREFIX.md (T2L mean, "
                        "standard error, base mean, tasks, run, training settings per arm), PREFIX.json, PREFIX.png "
                        "(T2L per arm with standard-error bars, dashed line: the base model).")
    a_.add_argument("arms", metavar="LABEL=RUN_DIR", nargs="+", help="one arm: its label (a number gives a numeric x "
                    "axis) and its train_sft.py run folder")
    a_.add_argument("--xlabel", default="setting",
                    help="what the labels are: the x axis and the table's first column (default: setting)")
    s_ = sub.add_parser("seeds", help="several train_sft.py T2L runs of one recipe (other seeds) -> one row each and a pooled row",
                        description="train_sft.py T2L run folders of one recipe and variant, other --seed values -> "
                        "PREFIX.md / PREFIX.json: per run and pooled over every (run, task): base, T2L, t2l_random, "
                        "t2l_wrong, T2L minus each control (paired bootstrap interval, wins/ties/losses), and the "
                        "steering test pooled over every run's inputs.")
    s_.add_argument("runs", metavar="RUN_DIR", nargs="+", help="a finished train_sft.py T2L run folder (zero_shot.json)")
    for q in (t, a_, s_):
        q.add_argument("--out", required=True, help="file prefix: writes PREFIX.md, PREFIX.json"
                       + (", PREFIX.png" if q is not s_ else "") + (", PREFIX_benchmarks.png" if q is t else ""))
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    try:
        if a.cmd == "table":
            table(a.run_dir, a.out, argv)
        elif a.cmd == "seeds":
            seeds(a.runs, a.out, argv)
        else:
            ablation(a.arms, a.xlabel, a.out, argv)
    except ERRORS as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
