"""eval.py and data/metrics.py: answer parsing, the LoRA average, controls, log-likelihood choice, the table."""
import json

import pytest
import torch

import eval
import lora
import t2l
from data.metrics import answer_settled, extract_answer, score
from data.benchmarks import BenchExample
from data.tasks import Example, Task, builtin_tasks, splits
from model import ModelConfig, Transformer, load_pretrained, load_tokenizer


@pytest.mark.parametrize("reply,gold,metric,labels,want", [
    ("Answer: B", "B", "exact", (), 1.0),
    ("**Answer:** B", "B", "exact", (), 1.0),
    ("Answer:\nB", "B", "exact", (), 1.0),
    ("10", "10", "exact", (), 1.0),
    ("The answer is 10.", "10", "exact", (), 1.0),
    ("1,000", "1000", "exact", (), 1.0),
    ("1000", "1,000", "exact", (), 1.0),
    ("No, not really", "no", "label", ("yes", "no"), 1.0),
    ("No, not really", "yes", "label", ("yes", "no"), 0.0),
    ('"positive"', "positive", "label", ("positive", "negative"), 1.0),
    ("93, 12", "93", "exact", (), 0.0),  # a list does not pass for its first number
    ("100", "10", "exact", (), 0.0),
    ("Answer: C", "B", "exact", (), 0.0),
    ("not divisible", "divisible", "label", ("divisible", "not divisible"), 0.0),
])
def test_answer_parsing(reply, gold, metric, labels, want):
    assert score(metric, extract_answer(reply), gold, labels) == want


def test_extract_answer_keeps_the_first_line_only():
    assert extract_answer("\n  b, c, a \nBecause...") == "b, c, a"
    assert extract_answer("") == ""


def test_a_settled_answer_is_the_answer_of_every_continuation():
    """answer_settled(prefix) promises that extract_answer cannot change however the reply goes on
    (generation stops there); checked over many replies and every cut of each."""
    import random
    rng = random.Random(0)
    atoms = ["Answer:", "**Answer:**", " 42", "The answer is", "\n", "\n\n", " ", "b, c", "\r\n", "Because", "*", "\u2028",
             "Output:", "x\n"]
    settled = 0
    for _ in range(3000):
        reply = "".join(rng.choice(atoms) for _ in range(rng.randint(0, 8)))
        for i in range(len(reply) + 1):
            if answer_settled(reply[:i]):
                settled += 1
                assert extract_answer(reply[:i]) == extract_answer(reply), (reply[:i], reply)
    assert settled > 1000  # the rule does fire
    assert answer_settled("b, c\n") and not answer_settled("b, c") and not answer_settled("Answer:\n")
    assert answer_settled("Answer:\nB\n") and not answer_settled("\n\n  \n")


def test_average_lora_is_the_mean_delta_w():
    g = torch.Generator().manual_seed(0)
    ads = [{"m": (torch.randn(4, 6, generator=g), torch.randn(5, 4, generator=g))} for _ in range(3)]
    A, B = eval.average_lora(ads)["m"]
    assert A.shape == (12, 6) and B.shape == (5, 12)
    torch.testing.assert_close(B @ A, sum(b @ a for a, b in (ad["m"] for ad in ads)) / 3)
    naive = (sum(ad["m"][1] for ad in ads) / 3) @ (sum(ad["m"][0] for ad in ads) / 3)
    assert not torch.allclose(B @ A, naive)  # averaging A and B separately is something else


def test_wrong_description_control_draws_other_training_tasks_as_the_reference():
    tasks = builtin_tasks()
    sp = splits(tasks)
    for name in sp["test"][:10]:
        picked = eval.wrong_descriptions(tasks, name, sp["train"], 3)
        assert len(picked) == 3 and len({t for t, _ in picked}) == 3  # three different tasks
        for other, desc in picked:
            assert other in sp["train"] and tasks[other].family != tasks[name].family
            assert desc in tasks[other].train_descriptions
        assert picked == eval.wrong_descriptions(tasks, name, sp["train"], 3)  # seeded: the same every run
    assert eval.wrong_descriptions(tasks, sp["test"][0], sp["train"]) != eval.wrong_descriptions(tasks, sp["test"][1], sp["train"])
    assert eval.RANDOM_STRINGS[0] == "dogs;cats;bananas;"  # the reference's random strings


def test_choice_loglik_picks_the_likely_answer(default_model_dir):
    model = load_pretrained(default_model_dir)
    tok = load_tokenizer(default_model_dir)
    ex = [Example("What is the capital of France?", "Paris", ("London", "Paris", "Banana")),
          Example("What is 2 + 2?", "4", ("4", "9", "x"))]
    assert eval.choice_loglik(model, tok, ex) == [1.0, 1.0]
    wrong = [Example(e.input, e.choices[-1], e.choices) for e in ex]  # same questions, absurd gold
    assert eval.choice_loglik(model, tok, wrong) == [0.0, 0.0]
    # Winogrande-style: one shared continuation, the contexts differ; right only if the right context wins
    wino = [Example("The trophy did not fit in the suitcase because the trophy", " was too big.", (" was too big.", " was too big."),
                    ("The trophy did not fit in the suitcase because the trophy", "The trophy did not fit in the suitcase because the suitcase"))]
    flipped = [Example(wino[0].contexts[1], wino[0].answer, wino[0].choices, wino[0].contexts)]
    assert sorted(eval.choice_loglik(model, tok, wino) + eval.choice_loglik(model, tok, flipped)) == [0.0, 1.0]
    # per-character normalisation lets a long fluent choice beat a short right one; the raw sum does not
    moon = [Example("What is 2 + 2?", "4", ("4", "the moon is made of cheese"))]
    assert eval.choice_loglik(model, tok, moon, norm="none") == [1.0]


# -----------------------------------------------------------------------------
# A prompt longer than the model's positions: left out with a warning, or one EvalError line, on every
# scoring path (generated tasks, log-likelihood multiple choice, generated benchmarks); never an
# out-of-memory run or a torch error. The tiny llama of conftest (256 positions) and the real tokenizer.

LONG = "word " * 600  # ~600 tokens: more than the tiny model's 256 positions (a 1 MB input is the real case)


def tiny_with_real_vocab(tiny_dirs, default_model_dir):
    """The tiny llama's shape with the real tokenizer's vocabulary (random weights): small enough to
    run in a test, and every id the tokenizer gives is a row of its embedding."""
    cfg = json.loads((tiny_dirs["llama"][1] / "config.json").read_text())
    cfg["vocab_size"] = ModelConfig.from_json(default_model_dir / "config.json").vocab_size
    torch.manual_seed(0)
    return Transformer(ModelConfig.from_dict(cfg)).eval()


def test_a_too_long_question_is_one_eval_error_in_every_scoring_path(tiny_dirs, default_model_dir):
    model, tok = load_pretrained(tiny_dirs["llama"][1]), load_tokenizer(default_model_dir)
    assert model.config.max_position_embeddings == 256
    mc = [Example(LONG, "yes", ("yes", "no"))]
    with pytest.raises(eval.EvalError) as e:
        eval.choice_loglik(model, tok, mc, name="benchmark boolq")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("benchmark boolq: 1 of 1 examples have a prompt longer than the model's 256 "
                                              "positions (max_position_embeddings) (the longest: ")
    assert int(msg.split("the longest: ")[1].split()[0]) > 256 and msg.endswith("nothing left to score")
    bench = [BenchExample(LONG, "True", benchmark="boolq", kind="bool", prefill="Answer:")]
    with pytest.raises(eval.EvalError) as e:
        eval.evaluate_benchmark(model, tok, bench, max_new_tokens=8)  # names its benchmark by default
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("benchmark boolq: 1 of 1 examples have a prompt longer than the model's 256 "
                                              "positions (max_position_embeddings) less the 8 answer tokens (the longest: ")
    # the answer budget counts: a question that fits alone does not fit with 250 tokens to generate after it
    short = [BenchExample("Is water wet?", "True", benchmark="boolq", kind="bool", prefill="Answer:")]
    with pytest.raises(eval.EvalError, match="less the 250 answer tokens"):
        eval.evaluate_benchmark(model, tok, short, max_new_tokens=250)


def test_a_too_long_question_is_left_out_with_a_warning_and_the_rest_scored(tiny_dirs, default_model_dir, capsys):
    model, tok = tiny_with_real_vocab(tiny_dirs, default_model_dir), load_tokenizer(default_model_dir)
    mc = [Example("Is water wet?", "yes", ("yes", "no")), Example(LONG, "yes", ("yes", "no")),
          Example("Is fire cold?", "no", ("yes", "no"))]
    got = eval.choice_loglik(model, tok, mc, name="task mc")
    assert got[1] is None and got[0] in (0.0, 1.0) and got[2] in (0.0, 1.0)  # the others scored, in their places
    err = capsys.readouterr().err
    assert "warning: task mc: 1 of 3 examples have a prompt longer than the model's 256 positions" in err and "left out" in err
    # through evaluate_task: the mean and the records cover the questions kept, each beside its own input
    task = Task("mc", "qa", "exact", [], [], fixed={"train": [], "val": [], "test": mc}, source="benchmark")
    mean, recs = eval.evaluate_task(model, tok, task, return_predictions=True)
    assert [r["input"] for r in recs] == ["Is water wet?", "Is fire cold?"] and mean == (got[0] + got[2]) / 2
    assert "warning: benchmark mc: 1 of 3 examples" in capsys.readouterr().err
    bench = [BenchExample("Is water wet?", "True", benchmark="boolq", kind="bool", prefill="Answer:"),
             BenchExample(LONG, "False", benchmark="boolq", kind="bool", prefill="Answer:")]
    scores, recs = eval.evaluate_benchmark(model, tok, bench, max_new_tokens=4)
    assert len(scores) == 1 and [r["input"] for r in recs] == ["Is water wet?"]
    assert "warning: benchmark boolq: 1 of 2 examples have a prompt longer than" in capsys.readouterr().err


def random_oracle(model_dir, folder, task, seed):
    """A PEFT adapter with a non-zero B (so it changes answers), saved as <folder>/<task>/adapter."""
    mcfg = ModelConfig.from_json(model_dir / "config.json")
    lcfg = lora.LoraConfig()
    g = torch.Generator().manual_seed(seed)
    ad = {k: (torch.randn(8, d_in, generator=g) * 0.05, torch.randn(d_out, 8, generator=g) * 0.05)
          for k, (d_in, d_out) in lora.module_shapes(mcfg, lcfg).items()}
    lora.save_peft(ad, lcfg, folder / task / "adapter", extra={"task": task})
    return ad


@pytest.mark.slow
def test_table_with_an_untrained_t2l_equals_the_base_model(tmp_path, default_model_dir):
    """At initialisation T2L writes Delta W = 0, so its column must equal the base column exactly;
    the oracle column appears only for the task that has one, the average LoRA is built from the
    training-task oracles; the run writes the table, the JSON and the chart."""
    cfg = t2l.T2LConfig.for_base(ModelConfig.from_json(default_model_dir / "config.json"), variant="S", latent=32, head_in=64)
    ckpt = t2l.save(t2l.HyperNetwork(cfg), tmp_path / "t2l")
    random_oracle(default_model_dir, tmp_path / "oracles", "list_first", 0)
    random_oracle(default_model_dir, tmp_path / "oracles", "add_10", 1)  # a training task: the average's only member
    out = tmp_path / "eval"
    eval.main(["--tasks", "list_first,words_upper", "--n", "2", "--methods", "base,oracle,avg_lora,t2l,t2l_wrong,t2l_random",
            "--t2l", str(ckpt), "--oracles", str(tmp_path / "oracles"), "--out", str(out), "--descriptions", "1"])
    res = json.loads((out / "results.json").read_text())
    assert list(res["means"]) == ["base", "oracle", "avg_lora", "T2L-S", "t2l_wrong", "t2l_random"]
    for row in res["tasks"].values():
        assert row["T2L-S"] == row["base"] == row["t2l_random"] == row["t2l_wrong"]
    assert res["tasks"]["words_upper"]["oracle"] is None and res["tasks"]["list_first"]["oracle"] is not None
    assert res["families"] == {"list_first": "list_pick", "words_upper": "word_ops"}
    assert (out / "zero_shot.png").stat().st_size > 1000 and "| **mean** |" in (out / "table.md").read_text()


@pytest.mark.slow
def test_cells_generated_together_answer_as_one_call_per_cell(default_model_dir, monkeypatch):
    """run_table generates every input-prompt cell of the table together (batch_cells: shared
    batches, per-example adapters, finished rows dropped): the answers, and so the table, must be
    those of one evaluate_task call per cell. A hypernetwork with random weights writes adapters
    that change the answers. One task: its prompts then get the same left padding either way.
    Equal up to rounding, not bit for bit, in general: a batch of several tasks pads short prompts
    further, and a stacked per-example adapter runs bmm where a shared one runs matmul; adapters
    hundreds of times a trained one's size turn that rounding into other noise tokens. The main
    job's closing table came out identical (RESULTS.md)."""
    model, tok = load_pretrained(default_model_dir), load_tokenizer(default_model_dir)
    lora.inject(model, lora.LoraConfig())
    cfg = t2l.T2LConfig.for_base(model.config, variant="S", latent=32, head_in=64)
    torch.manual_seed(0)
    net = t2l.HyperNetwork(cfg).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    tasks = builtin_tasks()
    names = ["list_first"]
    answers = []
    real_score = eval.score
    monkeypatch.setattr(eval, "score", lambda metric, pred, gold, *a: answers.append((gold, pred)) or real_score(metric, pred, gold, *a))

    def table(batched):
        answers.clear()
        if not batched:
            monkeypatch.setattr(eval, "batch_cells", lambda *a, **k: None)
        s = eval.Setup(n=4, n_desc=2, t2l=[("T2L-S", net, t2l.make_encoder(None))], prompt="bare",
                       group_rows=64)  # one batch: every cell in it, rows dropped as they finish
        res = eval.run_table(model, tok, tasks, names, ["base", "t2l", "t2l_wrong", "t2l_random"], s,
                             train_names=splits(tasks)["train"])
        return res, sorted(answers)

    together, one_by_one = table(True), table(False)
    assert together == one_by_one
    assert len(together[1]) == 4 * 7  # examples x (base + 3 columns x 2 descriptions)
    assert len({p for _, p in together[1]}) >= 6  # the adapters change the answers (base alone gives at most 4)


def test_merge_joins_runs_split_by_task_and_by_column(tmp_path):
    for name, tasks in [("a", {"t1": {"base": 0.5, "T2L-S": 1.0}}), ("b", {"t2": {"base": 0.0, "T2L-S": 0.5}}),
                        ("c", {"t1": {"T2L-S recon": 0.25}})]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"tasks": tasks, "families": {t: "fam" for t in tasks}}))
    eval.main(["--merge", ",".join(str(tmp_path / n) for n in "abc"), "--out", str(tmp_path / "all")])
    res = json.loads((tmp_path / "all" / "results.json").read_text())
    assert res["tasks"]["t1"] == {"base": 0.5, "T2L-S": 1.0, "T2L-S recon": 0.25}
    assert res["means"] == {"base": 0.25, "T2L-S": 0.75, "T2L-S recon": 0.25}  # a missing cell is left out of the mean
    with pytest.raises(SystemExit, match="results.json: not found"):
        eval.main(["--merge", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])


def test_the_chart_puts_each_t2l_column_beside_its_own_controls():
    cols = ["base", "mt_lora", "T2L-S", "T2L-M", "t2l_wrong T2L-S", "t2l_wrong T2L-M", "t2l_random T2L-S",
            "t2l_random T2L-M", "oracle"]
    assert eval.chart_order(cols) == ["base", "mt_lora", "T2L-S", "t2l_random T2L-S", "t2l_wrong T2L-S", "T2L-M",
                                      "t2l_random T2L-M", "t2l_wrong T2L-M", "oracle"]
    # one checkpoint: the plain control names follow the first T2L column, once
    assert eval.chart_order(["icl", "t2l_wrong", "T2L-S", "T2L-S + ICL", "t2l_random"]) == \
        ["icl", "T2L-S", "t2l_random", "t2l_wrong", "T2L-S + ICL"]


def test_bad_method_is_an_error():
    with pytest.raises(SystemExit, match="unknown method 'oracel'"):
        eval.main(["--methods", "base,oracel"])


@pytest.mark.parametrize("data", [pytest.param("sni", marks=pytest.mark.slow), "folder"])  # sni: ~40 s
def test_eval_runs_on_the_shipped_sni_collection_and_on_any_sni_folder(tmp_path, default_model_dir, data):
    import json
    import shutil
    from data.sni import DEFAULT_SNI_DIR
    if data == "folder":
        src = tmp_path / "my_sni" / "tasks"
        src.mkdir(parents=True)
        for p in sorted((DEFAULT_SNI_DIR / "tasks").glob("*.json"))[:3]:
            shutil.copy(p, src)
        data = str(src.parent)
    eval.main(["--data", data, "--tasks", "val" if data == "sni" else "all", "--methods", "base", "--n", "1",
            "--out", str(tmp_path / "out")])
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(res["tasks"]) == (12 if data == "sni" else 3) and all("base" in r for r in res["tasks"].values())


def test_prompt_auto_follows_the_checkpoints_training_prompt(tmp_path):
    """A checkpoint scored under another prompt than its training's measures the mismatch: --prompt
    auto (the default) takes the training prompt from train_config.json."""
    ckpts = {}
    for name, prompt in (("bare", "bare"), ("ref", "definition"), ("none", None)):
        d = tmp_path / name
        d.mkdir()
        if prompt:
            (d / "train_config.json").write_text(json.dumps({"prompt": prompt}))
        ckpts[name] = str(d)
    assert eval.training_prompt([ckpts["bare"]]) == "bare"
    assert eval.training_prompt([ckpts["ref"], ckpts["none"]]) == "definition"
    assert eval.training_prompt([]) == eval.training_prompt([ckpts["none"]]) == "definition"
    with pytest.raises(eval.EvalError, match="different prompts"):
        eval.training_prompt([ckpts["bare"], ckpts["ref"]])
    (tmp_path / "none" / "train_config.json").write_text("{not json")
    with pytest.raises(eval.EvalError, match="train_config.json"):
        eval.training_prompt([ckpts["none"]])
