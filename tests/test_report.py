"""scripts/report.py (tables with standard errors and paired bootstrap intervals, ablations) and
scripts/adapter_map.py (figure 5: maps of task embeddings and generated adapters), on made-up run folders
with known numbers and on a tiny hypernetwork for the tiny llama test model."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import common
import t2l
from model import ModelConfig
from scripts import adapter_map, report

ROOT = Path(__file__).resolve().parent.parent


def write_results(folder: Path, tasks: dict, name="results.json", **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"tasks": tasks, "means": {}, **extra}))
    return folder


# Four tasks; base has no score on t4. By hand:
#   base   0, .5, .25, -   mean .25, sample sd .25, s.e. .25 / sqrt(3)
#   T2L-S  .5, 1, .25, .75  mean .625
#   T2L-S - base on t1..t3: .5, .5, 0 -> mean 1/3, 2 wins, 1 tie, 0 losses
#   T2L-S - mt_lora (.5, .75, .5, 1): 0, .25, -.25, -.25 -> mean -1/16, 1 win, 1 tie, 2 losses
#   T2L-S - t2l_random (0, .5, 0, .25): .5, .5, .25, .5 -> mean 7/16, 4 wins
TASKS = {
    "t1": {"base": 0.0, "description": 0.1, "mt_lora": 0.5, "T2L-S": 0.5, "t2l_random": 0.0},
    "t2": {"base": 0.5, "description": 0.1, "mt_lora": 0.75, "T2L-S": 1.0, "t2l_random": 0.5},
    "t3": {"base": 0.25, "description": 0.1, "mt_lora": 0.5, "T2L-S": 0.25, "t2l_random": 0.0},
    "t4": {"base": None, "description": 0.1, "mt_lora": 1.0, "T2L-S": 0.75, "t2l_random": 0.25},
}


def test_table_statistics_are_exact_and_the_plot_is_copied(tmp_path, capsys):
    run = write_results(tmp_path / "eval", TASKS, n_examples=8, methods=["base", "t2l"], data="builtin",
                        families={t: "fam" for t in TASKS})
    (run / "zero_shot.png").write_bytes(b"\x89PNG fake plot")
    report.main(["table", str(run), "--out", str(tmp_path / "out" / "zs")])
    out = json.loads((tmp_path / "out" / "zs.json").read_text())
    assert out["report"] == "table" and out["tasks"] == TASKS and out["n_examples"] == 8  # results.json, copied
    cols = out["stats"]["columns"]
    assert cols["base"]["n"] == 3 and cols["base"]["mean"] == pytest.approx(0.25)
    assert cols["base"]["se"] == pytest.approx(0.25 / math.sqrt(3))
    assert cols["T2L-S"]["mean"] == pytest.approx(0.625) and cols["T2L-S"]["n"] == 4
    assert cols["T2L-S"]["se"] == pytest.approx(np.std([0.5, 1, 0.25, 0.75], ddof=1) / 2)
    assert cols["description"]["se"] == pytest.approx(0.0)
    pairs = {(p["t2l"], p["reference"]): p for p in out["stats"]["paired"]}
    # every T2L column against each reference present, in REFERENCES order (controls first); description is no reference
    assert list(pairs) == [("T2L-S", "t2l_random"), ("T2L-S", "mt_lora"), ("T2L-S", "base")]
    vb, vm, vr = pairs[("T2L-S", "base")], pairs[("T2L-S", "mt_lora")], pairs[("T2L-S", "t2l_random")]
    assert vb["n"] == 3 and vb["mean_diff"] == pytest.approx(1 / 3) and (vb["wins"], vb["ties"], vb["losses"]) == (2, 1, 0)
    assert vm["n"] == 4 and vm["mean_diff"] == pytest.approx(-1 / 16) and (vm["wins"], vm["ties"], vm["losses"]) == (1, 1, 2)
    assert vr["mean_diff"] == pytest.approx(7 / 16) and (vr["wins"], vr["ties"], vr["losses"]) == (4, 0, 0)
    for p in pairs.values():  # the interval holds the mean difference and lies within the range of the differences
        lo, hi = p["ci95"]
        assert lo <= p["mean_diff"] <= hi and lo < hi
    assert -0.25 <= vm["ci95"][0] and vm["ci95"][1] <= 0.25
    assert vr["ci95"][0] > 0  # T2L beats t2l_random on every task: every resample is positive

    md = (tmp_path / "out" / "zs.md").read_text().splitlines()
    assert md[0].startswith("Made by `python -m scripts.report table ") and str(run / "results.json") in md[0]
    assert "n_examples 8" in md[0]
    # per task, x100, '-' for no score
    assert "| t4 | fam | - | 10.0 | 100.0 | 75.0 | 25.0 |" in md and "| t3 | fam | 25.0 | 10.0 | 50.0 | 25.0 | 0.0 |" in md
    assert "| base | 25.0 | 14.4 | 3 |" in md and "| T2L-S | 62.5 | 16.1 | 4 |" in md
    assert any(line.startswith("| T2L-S | base | 3 | +33.3 | [") and line.endswith("| 2 / 1 / 0 |") for line in md)
    assert any(line.startswith("| T2L-S | mt_lora | 4 | -6.2 | [") and line.endswith("| 1 / 1 / 2 |") for line in md)
    assert (tmp_path / "out" / "zs.png").read_bytes() == b"\x89PNG fake plot"
    assert not (tmp_path / "out" / "zs_benchmarks.png").exists()
    # Ours: a second run replaces the files without --force.
    report.main(["table", str(run), "--out", str(tmp_path / "out" / "zs")])


def test_paired_bootstrap_is_reproducible_and_degenerate_when_every_difference_is_equal():
    a, b = {"x": 0.5, "y": 0.75, "z": None}, {"x": 0.25, "y": 0.5, "z": 1.0}
    p = report.paired(a, b)
    assert p["n"] == 2 and p["ci95"] == pytest.approx([0.25, 0.25]) and p["wins"] == 2
    rng = np.random.default_rng(1)
    a = {f"t{i}": float(v) for i, v in enumerate(rng.random(30))}
    b = {f"t{i}": float(v) for i, v in enumerate(rng.random(30))}
    assert report.paired(a, b) == report.paired(a, b)  # seed 0 every time
    assert report.paired({"x": 0.5}, {"x": None}) is None


def test_a_foreign_file_is_refused_and_no_flag_replaces_it(tmp_path):
    run = write_results(tmp_path / "eval", TASKS)
    mine = tmp_path / "notes.md"
    mine.write_text("my own notes\n")
    cmd = [sys.executable, "-m", "scripts.report", "table", str(run), "--out", str(tmp_path / "notes")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode != 0
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "notes.md" in err[0], p.stderr
    assert mine.read_text() == "my own notes\n" and not (tmp_path / "notes.json").exists()
    # a PNG beside no PREFIX.json of ours is not ours either
    (tmp_path / "plot.png").write_bytes(b"mine")
    with pytest.raises(SystemExit, match="plot.png: exists and was not written"):
        report.main(["table", str(run), "--out", str(tmp_path / "plot")])
    # an output inside the folder being read is refused, a link is never written through
    with pytest.raises(SystemExit, match="results.json: lies inside the input"):
        report.main(["table", str(run), "--out", str(run / "results")])
    (tmp_path / "linked.md").symlink_to(mine)
    with pytest.raises(SystemExit, match="symbolic link"):
        report.main(["table", str(run), "--out", str(tmp_path / "linked")])
    with pytest.raises(SystemExit, match="--force"):  # there is no flag that replaces a user's file
        report.main(["table", str(run), "--out", str(tmp_path / "notes"), "--force"])
    assert mine.read_text() == "my own notes\n"



def test_the_scripts_outputs_are_guarded_by_commons_one_guard(tmp_path):
    """report.py and adapter_map.py ask common.check_output_files, the project's one output guard, so
    its error type and its rules hold for them: no output inside the folders being read, whatever the
    path (a link to the folder included), no file written through a link; and the atomic write never
    touches a file already beside the output, whatever its name (the old writer used the fixed name
    .tmp-PREFIX.md: it overwrote a user's file of that name and wrote through a link of that name)."""
    run = write_results(tmp_path / "eval", TASKS)
    before = (run / "results.json").read_text()
    with pytest.raises(common.OutputError, match="results.json: lies inside the input"):
        report.table(run, run / "results", ["table"])
    (tmp_path / "alias").symlink_to(run)  # another path to the input folder
    with pytest.raises(common.OutputError, match="lies inside the input"):
        report.table(run, tmp_path / "alias" / "x", ["table"])
    (tmp_path / "to_input.json").symlink_to(run / "results.json")  # PREFIX.json a link to the input file
    with pytest.raises(common.OutputError, match="to_input.json: is a symbolic link"):
        report.table(run, tmp_path / "to_input", ["table"])
    arm = write_results(tmp_path / "arm", {"a": {"base": 0.2, "T2L-S": 0.1}}, name="zero_shot.json")
    with pytest.raises(common.OutputError, match="lies inside the input"):
        report.ablation([f"1={arm}"], "x", arm / "zero_shot", ["ablation"])
    # adapter_map: refused before anything is loaded (the checkpoint and the data folder are inputs)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "sni").mkdir()
    for out in (tmp_path / "ckpt" / "map", tmp_path / "sni" / "map"):
        argv = [str(tmp_path / "ckpt"), "--data", str(tmp_path / "sni"), "--out", str(out)]
        with pytest.raises(common.OutputError, match="map.json: lies inside the input"):
            adapter_map.run(adapter_map.parse_args(argv), argv)
    assert (run / "results.json").read_text() == before and sorted(p.name for p in run.iterdir()) == ["results.json"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [] == sorted(p.name for p in (tmp_path / "sni").iterdir())
    # the temporary file of an atomic write is a new one: a user's file or link beside the output is untouched
    out = tmp_path / "res"
    out.mkdir()
    mine = tmp_path / "mine.txt"
    mine.write_text("mine\n")
    (out / ".tmp-zs.json").write_text("a user's file\n")
    (out / ".tmp-zs.md").symlink_to(mine)
    report.main(["table", str(run), "--out", str(out / "zs")])
    assert mine.read_text() == "mine\n" and (out / ".tmp-zs.json").read_text() == "a user's file\n"
    assert (out / ".tmp-zs.md").is_symlink() and (out / "zs.md").read_text().startswith(report.MD_MARK)
    assert sorted(p.name for p in out.iterdir()) == [".tmp-zs.json", ".tmp-zs.md", "zs.json", "zs.md"]  # no temporary left


def test_a_table_written_before_the_move_to_scripts_is_still_ours(tmp_path):
    """results/ holds .md files whose first line names `python report.py` (before scripts/): a new run
    replaces them; a file with neither first line is still refused."""
    run = write_results(tmp_path / "eval", TASKS)
    old = tmp_path / "old.md"
    old.write_text("Made by `python report.py table runs/eval --out old` from runs/eval/results.json.\n")
    report.main(["table", str(run), "--out", str(tmp_path / "old")])
    assert old.read_text().startswith("Made by `python -m scripts.report table ")
    (tmp_path / "other.md").write_text("Made by `python eval.py` (not this script)\n")
    with pytest.raises(SystemExit, match="other.md"):
        report.main(["table", str(run), "--out", str(tmp_path / "other")])


def test_ablation_rows_numbers_settings_and_errors(tmp_path):
    arms = []
    for k, n_tasks in enumerate((4, 16, 64)):
        run = write_results(tmp_path / f"arm{n_tasks}", {"a": {"base": 0.2, "T2L-S": 0.1 * (k + 1)},
                                                        "b": {"base": 0.4, "T2L-S": 0.1 * (k + 3)}}, name="zero_shot.json")
        (run / "final").mkdir()
        (run / "final" / "train_config.json").write_text(json.dumps({"steps": 300, "n_train_tasks": n_tasks, "lr": 1e-3}))
        arms.append(f"{n_tasks}={run}")
    report.main(["ablation", *arms, "--xlabel", "training tasks", "--out", str(tmp_path / "res" / "abl")])
    out = json.loads((tmp_path / "res" / "abl.json").read_text())
    assert out["report"] == "ablation" and [a["label"] for a in out["arms"]] == ["4", "16", "64"]
    a0, a2 = out["arms"][0], out["arms"][2]
    assert a0["column"] == "T2L-S" and a0["t2l_mean"] == pytest.approx(0.2) and a0["t2l_se"] == pytest.approx(0.1)
    assert a2["t2l_mean"] == pytest.approx(0.4) and a0["base_mean"] == pytest.approx(0.3) and a0["n_tasks"] == 2
    assert a2["settings"] == {"steps": 300, "n_train_tasks": 64}  # only the listed settings that exist
    md = (tmp_path / "res" / "abl.md").read_text().splitlines()
    assert md[0].startswith(report.MD_MARK)
    assert md[2] == "| training tasks | T2L column | T2L mean | s.e. | base mean | tasks | run | steps | n_train_tasks |"
    assert md[4].startswith("| 4 | T2L-S | 20.0 | 10.0 | 30.0 | 2 |") and md[4].endswith("| 300 | 4 |")
    assert (tmp_path / "res" / "abl.png").read_bytes()[:4] == b"\x89PNG"
    # bars for non-numeric labels
    report.main(["ablation", f"small={tmp_path / 'arm4'}", f"big={tmp_path / 'arm64'}", "--out", str(tmp_path / "res" / "bars")])
    assert (tmp_path / "res" / "bars.png").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=f"{tmp_path / 'empty' / 'zero_shot.json'}: not found"):
        report.main(["ablation", f"x={tmp_path / 'empty'}", "--out", str(tmp_path / "res" / "e")])
    with pytest.raises(SystemExit, match="LABEL=RUN_DIR"):
        report.main(["ablation", str(tmp_path / "arm4"), "--out", str(tmp_path / "res" / "e")])


def test_seeds_pools_tasks_and_steering_inputs_over_runs(tmp_path):
    """Two runs of one recipe. By hand, T2L - random per (run, task): run 0: .5, 0; run 1: .25, .25
    -> pooled mean .25, 3 wins 1 tie; steering units pooled: seen exact 1 + 0 + 3 of 2 + 2 + 4
    adapters, preferred 2 + 1 + 4 of 8; chance (1 + 1 + 2) / 8."""
    def run(name, seed, tasks, units):
        folder = write_results(tmp_path / name, tasks, name="zero_shot.json",
                               steering={"seen": {"units": units}, "unseen": {"units": []}})
        (folder / "config.json").write_text(json.dumps({"seed": seed}))
        return str(folder)
    r0 = run("s0", 0, {"a": {"base": 0.0, "T2L-S": 0.5, "t2l_random": 0.0, "t2l_wrong": 0.25},
                       "b": {"base": 0.0, "T2L-S": 0.25, "t2l_random": 0.25, "t2l_wrong": 0.25}},
             [[1, 1, 2, 2, 1.0], [0, 1, 1, 2, 1.0]])
    r1 = run("s1", 1, {"c": {"base": 0.0, "T2L-S": 0.5, "t2l_random": 0.25, "t2l_wrong": 0.0},
                       "d": {"base": 0.5, "T2L-S": 0.75, "t2l_random": 0.5, "t2l_wrong": 0.75}},
             [[3, 3, 4, 4, 2.0]])
    report.main(["seeds", r0, r1, "--out", str(tmp_path / "res" / "seeds")])
    out = json.loads((tmp_path / "res" / "seeds.json").read_text())
    assert out["report"] == "seeds" and [r["seed"] for r in out["runs"]] == [0, 1]
    pooled = out["rows"][-1]
    assert pooled["label"] == "pooled" and pooled["T2L-S"] == pytest.approx(0.5)
    rand = pooled["paired"]["t2l_random"]
    assert rand["mean_diff"] == pytest.approx(0.25) and (rand["wins"], rand["ties"], rand["losses"]) == (3, 1, 0)
    seen = pooled["steering"]["seen"]
    assert seen["exact"][0] == pytest.approx(4 / 8) and seen["preferred"][0] == pytest.approx(7 / 8)
    assert seen["chance"] == pytest.approx(4 / 8) and seen["n"] == 8
    assert pooled["steering"]["unseen"] is None  # no inputs at all: nothing to pool
    assert out["rows"][0]["paired"]["t2l_random"]["mean_diff"] == pytest.approx(0.25)
    md = (tmp_path / "res" / "seeds.md").read_text()
    assert md.startswith(report.MD_MARK) and "| **pooled** | 4 |" in md
    # a run from before the per-input counts: its own row keeps its numbers, the pool leaves it out
    old = write_results(tmp_path / "s2", {"e": {"base": 0.0, "T2L-S": 0.5, "t2l_random": 0.0, "t2l_wrong": 0.0}},
                        name="zero_shot.json", steering={"seen": {"accuracy": 0.1, "nearest": 0.2, "preferred": 0.3,
                                                                   "ci95": [0, 0.2], "preferred_ci95": [0.2, 0.4],
                                                                   "chance": 0.25, "n": 12}})
    report.main(["seeds", r0, r1, str(old), "--out", str(tmp_path / "res" / "seeds3")])
    rows = json.loads((tmp_path / "res" / "seeds3.json").read_text())["rows"]
    assert rows[2]["steering"]["seen"]["preferred"] == [0.3, [0.2, 0.4]]
    assert rows[3]["steering"]["seen"]["runs"] == 2 and rows[3]["steering"]["seen"]["n"] == 8
    assert "2 of 3 runs" in (tmp_path / "res" / "seeds3.md").read_text()
    with pytest.raises(SystemExit, match="no t2l_wrong column"):
        report.main(["seeds", str(write_results(tmp_path / "bad", {"a": {"T2L-S": 0.1, "t2l_random": 0.0}}, name="zero_shot.json")),
                     "--out", str(tmp_path / "res" / "bad")])


# -----------------------------------------------------------------------------
# scripts/adapter_map.py


def test_space_stats_on_clusters_of_known_shape():
    """Three categories far apart, each two tasks a little apart, three vectors per task close
    together: every nearest-neighbour vote is right, same-task cosines are the highest."""
    rng = np.random.default_rng(0)
    tasks, cats, rows = [], [], []
    for c in range(3):
        centre = rng.normal(size=16) * 10
        for t in range(2):
            sub = centre + rng.normal(size=16)
            for _ in range(3):
                rows.append(sub + 0.05 * rng.normal(size=16))
                tasks.append(f"c{c}t{t}"), cats.append(f"c{c}")
    x = np.array(rows)
    st = adapter_map.space_stats(x @ x.T, tasks, cats)
    assert st["k_task"] == 2 and st["knn_task"] == 1.0  # 3 vectors per task: 2 neighbours of the task's own
    assert st["knn_category"] == 1.0 and st["knn_category_chance"] < 0.7
    c = st["cosine_centred"]
    assert c["same_task"] > c["same_category"] > c["other_category"]
    coords = adapter_map.coordinates(x @ x.T)  # exact: the same pairwise distances
    d = lambda z: ((z[:, None] - z[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d(coords), d(x), rtol=1e-6, atol=1e-6)


SNI_CATEGORIES = {0: ["Sentiment Analysis -> Movie"], 1: ["Sentiment Analysis"], 2: ["Question Answering -> Science"], 3: None}


def tiny_sni_folder(root: Path) -> Path:
    """Four real SNI tasks (data/sni120), six instances each, with known Categories, and six of
    their real descriptions each."""
    src = sorted((ROOT / "data" / "sni120" / "tasks").glob("*.json"))[:4]
    descs = json.loads((ROOT / "data" / "sni120" / "descriptions.json").read_text())
    (root / "tasks").mkdir(parents=True)
    for i, f in enumerate(src):
        raw = json.loads(f.read_text())
        raw["Instances"] = raw["Instances"][:6]
        raw.pop("Categories", None)
        if SNI_CATEGORIES[i] is not None:
            raw["Categories"] = SNI_CATEGORIES[i]
        (root / "tasks" / f.name).write_text(json.dumps(raw))
    (root / "descriptions.json").write_text(json.dumps({f.stem: descs[f.stem][:6] for f in src}))
    return root


def tiny_checkpoint(folder: Path, path: Path, encoder="all-MiniLM-L6-v2") -> Path:
    mcfg = ModelConfig.from_json(folder / "config.json")
    cfg = t2l.T2LConfig.for_base(mcfg, variant="S", d_task=384, latent=32, head_in=64, rank=4, encoder=encoder)
    net = t2l.HyperNetwork(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a "trained" network: the zero-initialised heads get some weight
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return t2l.save(net, path)


def test_adapter_map_on_a_tiny_sni_folder(tmp_path, tiny_dirs):
    folder = tiny_dirs["llama"][1]
    data = tiny_sni_folder(tmp_path / "sni")
    ckpt = tiny_checkpoint(folder, tmp_path / "ckpt")
    out = tmp_path / "maps" / "m"
    adapter_map.main([str(ckpt), "--data", str(data), "--model", str(folder), "--method", "pca", "--out", str(out)])
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["report"] == "adapter_map" and r["n_tasks"] == 4 and r["n_vectors"] == 12  # 3 descriptions per task
    names = sorted(p.stem for p in (data / "tasks").glob("*.json"))
    cats = {p["task"]: p["category"] for p in r["points"]}
    assert [cats[n] for n in names] == ["Sentiment Analysis", "Sentiment Analysis", "Question Answering", "uncategorised"]
    assert {p["split"] for p in r["points"]} == {"train", "val", "test"}
    net = t2l.load(ckpt)
    # 3 layers x rank 4 x (q_proj 48 -> 64, v_proj 48 -> 32)
    assert r["spaces"]["embedding"]["dim"] == 384 and r["spaces"]["adapter"]["dim"] == adapter_map.adapter_size(net.cfg) == 3 * 4 * (112 + 80)
    for space in ("embedding", "adapter"):
        st = r["spaces"][space]
        for key in ("cosine", "cosine_centred"):
            for v in st[key].values():
                assert -1 - 1e-9 <= v <= 1 + 1e-9
        assert st["cosine"]["same_task"] > st["cosine"]["other_task"]  # three paraphrases of one task vs other tasks
        for key in ("knn_task", "knn_category", "knn_category_chance"):
            assert 0 <= st[key] <= 1
    assert all(len(p["adapter_xy"]) == 2 and len(p["embedding_xy"]) == 2 for p in r["points"])
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert out.with_suffix(".md").read_text().startswith(adapter_map.MD_MARK)
    # a checkpoint conditioned on one-hot task ids has no text space to map
    onehot = tiny_checkpoint(folder, tmp_path / "onehot", encoder="one-hot(4)")
    with pytest.raises(SystemExit, match="needs a checkpoint conditioned on a text encoder"):
        adapter_map.main([str(onehot), "--data", str(data), "--model", str(folder), "--method", "pca", "--out", str(out)])
