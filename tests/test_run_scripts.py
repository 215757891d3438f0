"""recipes/run_cpu.sh and recipes/run_full.sh end to end on a tiny setting (a few steps, a few
tasks), so a broken stage fails CI rather than the second hour of a real run. One run of every stage in order, then
the checks: each stage marked done, each results file written, a second call skips what is done,
and a killed training resumes from its checkpoint."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import eval

ROOT = Path(__file__).resolve().parent.parent


TINY_TRAIN = ("task155_count_nouns_verbs", "task161_count_words_containing_letter", "task1508_wordnet_antonyms",
              "task833_poem_sentiment_classification")
TINY_TEST = ("task1146_country_capital", "task092_check_prime_classification")


def tiny_collection(folder: Path) -> Path:
    """6 real SNI tasks, short instances only, in SNI's layout with split files: 3 train, 1 val, 2 test."""
    (folder / "tasks").mkdir(parents=True)
    (folder / "splits" / "default").mkdir(parents=True)
    descs = json.loads((ROOT / "data" / "sni120" / "descriptions.json").read_text())
    for name in TINY_TRAIN + TINY_TEST:
        task = json.loads((ROOT / "data" / "sni120" / "tasks" / f"{name}.json").read_text())
        task["Instances"] = [i for i in task["Instances"] if len(i["input"]) < 150][:12]
        (folder / "tasks" / f"{name}.json").write_text(json.dumps(task))
    (folder / "descriptions.json").write_text(json.dumps({n: descs[n][:8] for n in TINY_TRAIN + TINY_TEST}))
    (folder / "splits" / "default" / "train_tasks.txt").write_text("\n".join(TINY_TRAIN) + "\n")
    (folder / "splits" / "default" / "test_tasks.txt").write_text("\n".join(TINY_TEST) + "\n")
    return folder


def tiny_env(tmp_path) -> dict:
    data = tiny_collection(tmp_path / "tiny_sni") if not (tmp_path / "tiny_sni").is_dir() else tmp_path / "tiny_sni"
    return {**os.environ, "OUT": str(tmp_path / "runs"), "RESULTS": str(tmp_path / "results"), "DATA": str(data),
            "ABL_DATA": str(data), "SNI_STEPS": "2", "SNI_BATCH": "2", "ORACLE_STEPS": "1", "ORACLE_BATCH": "2",
            "ORACLE_TASKS": TINY_TEST[0], "LIBRARY": "2", "RECON_STEPS": "3", "EVAL_N": "1", "CKPT_EVERY": "1",
            "ABL_STEPS": "2", "ABL_TASKS": "2", "ABL_DESCS": "1", "ABL_EVAL_TASKS": "1", "MAP_PER_TASK": "2",
            "BENCH_N": "1", "BENCH_TOKENS": "4", "STEER_INPUTS": "1"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run_cpu")
    env = tiny_env(tmp)
    r = subprocess.run(["bash", "recipes/run_cpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    return tmp, env, r


@pytest.mark.slow
def test_every_stage_of_run_cpu_runs_and_writes_its_results(tiny_run):
    tmp, env, r = tiny_run
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    listed = subprocess.run(["bash", "recipes/run_cpu.sh", "--list"], cwd=ROOT, env=env, capture_output=True,
                            text=True).stdout
    stages = [l.split()[0] for l in listed.splitlines()]
    assert stages[:4] == ["sni_mt_lora", "sni_t2l_S", "sni_t2l_M", "sni_t2l_L"] and "abl_encoder" in stages
    assert all(l.split()[1] == "done" for l in listed.splitlines())
    res = tmp / "results"
    for f in ("sni_table.md", "sni_table.json", "ablation_tasks.png", "ablation_onehot.md", "ablation_descs.json",
              "ablation_encoder.png", "adapter_map.png", "adapter_map.json", "bench.md", "builtin_table.md"):
        assert (res / f).is_file(), f
    table = json.loads((res / "sni_table.json").read_text())
    cols = set(table["means"])
    t2l_cols = ("T2L-S", "T2L-M", "T2L-L", "T2L-L recon")
    for c in ("base", "description", "icl", "mt_lora", "avg_lora", "oracle", *t2l_cols):
        assert c in cols, (c, cols)
    for c in t2l_cols:  # each checkpoint beside its own controls (several checkpoints: one pair each)
        assert {eval.reference_columns(sorted(cols), c)[0].split(" ")[0], eval.reference_columns(sorted(cols), c)[1].split(" ")[0]} \
            == {"t2l_random", "t2l_wrong"}, (c, cols)
    abl = json.loads((res / "ablation_tasks.json").read_text())
    assert [a["label"] for a in abl["arms"]] == ["2", "all"]
    cfg = json.loads((tmp / "runs" / "abl" / "onehot" / "best" / "t2l_config.json").read_text())
    assert cfg["encoder"] == "one-hot" and len(cfg["one_hot_tasks"]) == 3  # the tiny collection's training tasks


@pytest.mark.slow
def test_a_second_call_skips_finished_stages_and_a_killed_training_resumes(tiny_run):
    tmp, env, r = tiny_run
    again = subprocess.run(["bash", "recipes/run_cpu.sh", "sni_mt", "map"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done earlier") == 2, again.stdout
    # a stage killed after its training checkpointed: the next call continues the run (--resume)
    run = tmp / "runs" / "sni" / "t2l_S"
    log = (run / "log.jsonl").read_text()
    (tmp / "runs" / "done" / "sni_t2l_S").unlink()
    (run / "zero_shot.json").unlink()  # as if killed before the closing table
    r2 = subprocess.run(["bash", "recipes/run_cpu.sh", "sni_t2l_S"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert (run / "log.jsonl").read_text() == log and (run / "zero_shot.json").is_file()  # no step taken again
    # an oracle killed before its first checkpoint (config.json and log.jsonl written, no ckpt.pt):
    # the stage starts that task over and keeps the finished ones
    lib = tmp / "runs" / "sni" / "lora"
    killed, done = sorted(p for p in lib.iterdir() if p.is_dir())[:2]
    (killed / "ckpt.pt").unlink()
    shutil.rmtree(killed / "adapter")
    kept = (done / "adapter" / "adapter_model.safetensors").read_bytes()
    (tmp / "runs" / "done" / "sni_oracles").unlink()
    r3 = subprocess.run(["bash", "recipes/run_cpu.sh", "sni_oracles"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert (killed / "adapter" / "result.json").is_file()
    assert (done / "adapter" / "adapter_model.safetensors").read_bytes() == kept


def test_a_stage_name_that_matches_nothing_is_an_error(tmp_path):
    r = subprocess.run(["bash", "recipes/run_cpu.sh", "nonsense"], cwd=ROOT, env={**os.environ, "OUT": str(tmp_path)},
                       capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.startswith("error: no stage matches")


def test_run_full_is_run_cpu_with_gpu_sizes(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "runs"), "RESULTS": str(tmp_path / "results")}
    r = subprocess.run(["bash", "recipes/run_full.sh", "--list"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split()[0] == "sni_mt_lora"
    show = subprocess.run(["bash", "-c", "source <(sed '$d' recipes/run_full.sh); echo $SNI_STEPS $EVAL_N $DEVICE"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert show.stdout.split() == ["1500", "32", "cuda"]
