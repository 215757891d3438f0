"""data/: the built-in suite, the SNI loader, prompt formatting and metrics."""

import pytest

from data import DataError
from data import format as fmt
from data.metrics import score
from data.sni import DEFAULT_SNI_DIR, TaskFileError, load_sni, load_sni_task
from data.tasks import HELD_OUT_FAMILIES, builtin_tasks, splits
from model import load_tokenizer


@pytest.fixture(scope="module")
def suite():
    tasks = builtin_tasks()
    return tasks, splits(tasks)


def test_suite_size_and_shape(suite):
    tasks, sp = suite
    assert len(tasks) >= 200
    assert len({t.family for t in tasks.values()}) >= 12
    for t in tasks.values():
        assert t.metric in ("exact", "label", "rougeL")
        assert len(t.train_descriptions) >= 16 and len(t.eval_descriptions) == 3
        assert not set(t.train_descriptions) & set(t.eval_descriptions), t.name
        if t.metric == "label":
            assert len(t.labels) >= 2 and all(e.answer in t.labels for e in t.examples("test"))
    for fam in HELD_OUT_FAMILIES:
        assert all(tasks[n].family != fam for n in sp["train"] + sp["val"])
        assert any(tasks[n].family == fam for n in sp["test"])
    assert len(sp["val"]) >= 10 and len(sp["test"]) >= 20


def test_thousand_distinct_train_examples_without_leakage(suite):
    tasks, _ = suite
    for t in tasks.values():
        train = t.examples("train")
        held = {e.input for e in t.examples("val") + t.examples("test")}
        assert len({e.input for e in train}) == 1000, t.name
        assert not held & {e.input for e in train}, t.name


def test_deterministic():
    a, b = builtin_tasks(seed=0), builtin_tasks(seed=0)
    for name in a:
        assert a[name].examples("train", 50) == b[name].examples("train", 50)
        assert a[name].examples("test") == b[name].examples("test")
        assert a[name].train_descriptions == b[name].train_descriptions
    c = builtin_tasks(seed=1)
    assert any(a[n].examples("test") != c[n].examples("test") for n in a)


def test_no_unseen_task_leaks_into_training(suite):
    tasks, sp = suite
    train, unseen = set(sp["train"]), set(sp["val"]) | set(sp["test"])
    assert not train & unseen and train | unseen == set(tasks)
    train_descs = {d for n in train for d in tasks[n].train_descriptions + tasks[n].eval_descriptions}
    for n in unseen:
        assert not set(tasks[n].train_descriptions + tasks[n].eval_descriptions) & train_descs, n
    train_inputs = {(e.input, e.answer) for n in train for e in tasks[n].examples("train", 200)}
    for n in unseen:  # the same input may occur in two tasks, but never with the same question+answer...
        same = [e for e in tasks[n].examples("test") if (e.input, e.answer) in train_inputs]
        assert len(same) < len(tasks[n].examples("test")) / 2, n  # ...for most of an unseen task


def test_prompts_are_short(suite, default_model_dir):
    tasks, _ = suite
    tok = load_tokenizer(default_model_dir)
    lens, ans = [], []
    for t in tasks.values():
        for ids, labels in fmt.encode_examples(tok, t.examples("test", 4))[0]:
            lens.append(sum(l == -100 for l in labels))
            ans.append(sum(l != -100 for l in labels))
    lens.sort(), ans.sort()
    assert lens[len(lens) // 2] <= 64 and ans[int(len(ans) * 0.9)] <= 16


def test_labels_mask_all_but_answer(default_model_dir):
    tok = load_tokenizer(default_model_dir)
    ids, labels = fmt.encode(tok, fmt.messages_for("3, 1, 2"), "1, 2, 3")
    ans = [t for t in labels if t != -100]
    assert tok.decode(ans, skip_special_tokens=False) == "1, 2, 3<|im_end|>"
    assert labels[:len(labels) - len(ans)] == [-100] * (len(labels) - len(ans))
    assert ids[-len(ans):] == ans
    # answers are never truncated: a too-long example is dropped and counted
    from data.tasks import Example
    enc, dropped = fmt.encode_examples(tok, [Example("a b", "c"), Example("x " * 300, "y")], max_len=64)
    assert len(enc) == 1 and dropped == 1
    # the baselines' prompts
    d = fmt.messages_for("3, 1", mode="description", description="Sort the numbers.")
    assert [m["role"] for m in d] == ["system", "user"] and d[0]["content"] == ""  # the same empty system turn everywhere
    assert d[1]["content"] == "Sort the numbers.\n\n3, 1"
    icl = fmt.messages_for("3, 1", mode="icl", shots=[Example("2, 1", "1, 2")] * 3)
    assert [m["role"] for m in icl] == ["system"] + ["user", "assistant"] * 3 + ["user"]


def test_sni_loader_reads_every_file():
    tasks = load_sni(DEFAULT_SNI_DIR)
    n_files = len(list((DEFAULT_SNI_DIR / "tasks").glob("*.json")))
    assert len(tasks) == n_files == 120
    for t in tasks.values():
        assert t.examples("train") and t.examples("val") and t.examples("test")
        assert len(t.train_descriptions) >= 16  # 32 generated descriptions, 3 kept for evaluation
        tr = {e.input for e in t.examples("train")}
        assert not tr & {e.input for e in t.examples("test") + t.examples("val")}


@pytest.mark.parametrize("content,problem", [
    ('{"Definition": "x", "Instances": [}', "not valid JSON"),
    ('{"Instances": [{"input": "a", "output": ["b"]}]}', "missing 'Definition'"),
    ('{"Definition": ["d"], "Instances": []}', "'Instances' must be a non-empty list"),
    ('{"Definition": "d", "Instances": [{"input": "a", "output": 3}, {"input": "b", "output": ["c"]}]}', "instance 0 'output'"),
    ('{"Definition": "d", "Instances": [{"input": " ", "output": ["b"]}]}', "instance 0 has an empty 'input'"),
    ('{"Definition": "d", "Instances": [{"input": "a", "output": ["b", ""]}]}', "instance 0 'output'"),
])
def test_sni_malformed_file(tmp_path, content, problem):
    f = tmp_path / "task999_bad.json"
    f.write_text(content)
    with pytest.raises(TaskFileError) as e:
        load_sni_task(f)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and problem in msg


@pytest.mark.parametrize("metric,pred,gold,labels,want", [
    ("exact", "42.", "42", (), 1), ("exact", " Paris ", "paris", (), 1), ("exact", "43", "42", (), 0),
    ("exact", "word word", "word word.", (), 0),
    ("label", "Yes, it is.", "yes", ("yes", "no"), 1), ("label", "no", "yes", ("yes", "no"), 0),
    ("label", "not divisible", "divisible", ("divisible", "not divisible"), 0),
    ("label", "divisible", "divisible", ("divisible", "not divisible"), 1), ("label", "yesterday", "yes", ("yes", "no"), 0),
    ("rougeL", "the cat sat", "the cat sat", (), 1), ("rougeL", "dog", "the cat sat", (), 0),
])
def test_metrics(metric, pred, gold, labels, want):
    assert score(metric, pred, gold, labels) == want


def test_rouge_partial():
    assert 0.5 < score("rougeL", "the cat sat down", "the cat sat") < 1


def test_benchmark_loaders():
    """Needs the data script once: python -m data.benchmarks --fetch (the README's test command runs it)."""
    from data.benchmarks import BENCHMARKS, BENCH_DIR, load_benchmark
    if not (BENCH_DIR / "arc_easy" / "requests.jsonl.gz").is_file():
        pytest.skip("benchmarks not fetched: run python -m data.benchmarks --fetch")
    for name, (_, n) in BENCHMARKS.items():
        t = load_benchmark(name)
        ex = t.examples("test")
        assert len(ex) == n, name
        for e in ex[:200]:
            assert e.input and e.answer
            if t.metric == "choice":
                assert len(e.choices) >= 2 and e.answer in e.choices
                if e.contexts:
                    assert len(e.contexts) == len(e.choices)
    wg = load_benchmark("winogrande").examples("test")[0]
    # Winogrande: the options live in the context; the gold one is the context given as input
    assert wg.contexts and wg.input in wg.contexts and wg.input.endswith("Maria")


def test_benchmark_missing_file_message(tmp_path):
    from data.benchmarks import load_benchmark
    with pytest.raises(DataError, match="python -m data.benchmarks --fetch"):
        load_benchmark("piqa", tmp_path)


def test_sni_collection_ships_with_the_repository():
    from data.collection import load_collection
    from data.sni import DEFAULT_SNI_DIR
    from conftest import ROOT
    assert DEFAULT_SNI_DIR.parent == ROOT / "data"  # inside the repo, not beside it
    coll = load_collection("sni")
    assert len(coll.tasks) == 120 and (DEFAULT_SNI_DIR / "README.md").is_file()
    sp = coll.splits
    assert len(sp["val"]) == len(sp["test"]) == 12 and len(sp["train"]) == 96
    assert not set(sp["train"]) & set(sp["val"] + sp["test"]) and not set(sp["val"]) & set(sp["test"])
    t = coll.tasks[sp["train"][0]]
    assert t.definition and len(t.train_descriptions) == 29 and len(t.eval_descriptions) == 3


def test_a_folder_in_sni_layout_with_its_own_split_files(tmp_path):
    import json
    import shutil
    from data.collection import load_collection, resolve_names
    from data.sni import DEFAULT_SNI_DIR
    names = sorted(p.stem for p in (DEFAULT_SNI_DIR / "tasks").glob("*.json"))[:5]
    (tmp_path / "tasks").mkdir()
    for n in names:
        shutil.copy(DEFAULT_SNI_DIR / "tasks" / f"{n}.json", tmp_path / "tasks")
    coll = load_collection(str(tmp_path))  # no descriptions.json: the definition is the description
    assert sorted(coll.tasks) == names and coll.tasks[names[0]].train_descriptions == [coll.tasks[names[0]].definition]
    (tmp_path / "splits" / "default").mkdir(parents=True)
    (tmp_path / "splits" / "default" / "train_tasks.txt").write_text("\n".join(names[:3]) + "\n# a comment\n")
    (tmp_path / "splits" / "default" / "test_tasks.txt").write_text("\n".join(names[3:]) + "\nnot_here\n")
    with pytest.raises(DataError, match="test_tasks.txt: 'not_here' is not a task"):  # never dropped without a word
        load_collection(str(tmp_path))
    (tmp_path / "splits" / "default" / "test_tasks.txt").write_text("\n".join(names[3:]) + "\n")
    sp = load_collection(str(tmp_path)).splits
    assert sp["test"] == names[3:] and sorted(sp["train"] + sp["val"]) == names[:3] and len(sp["val"]) == 1
    assert resolve_names(coll, "all") == names
    both = resolve_names(load_collection(str(tmp_path)), f"val,test,{names[4]}")  # splits and names, no repeats
    assert both == sp["val"] + sp["test"]
    with pytest.raises(DataError, match="unknown task 'nope'"):
        resolve_names(coll, "nope")
    (tmp_path / "descriptions.json").write_text(json.dumps({names[0]: ["ok", ""]}))
    with pytest.raises(DataError, match="descriptions.json"):
        load_collection(str(tmp_path))


def test_batches_encode_a_task_when_first_drawn_and_draw_what_encoding_everything_gave(default_model_dir):
    """data/batches.py encodes a task's examples the first time a batch draws it. The batches must
    be the ones encoding every task up front gives: rng.choice over the same list of examples that
    fit --max-len, in the same order. At max-len 36 some of these tasks keep all their examples, some
    a part (list_drop_first: 34 to 55 tokens) and two none (list_sort_asc, list_reverse: 37 and more),
    so a list that kept the ones that do not fit would draw other examples."""
    import random

    import train_sft
    from data.batches import Batches
    from data.collection import load_collection
    from data.tasks import stable_seed
    tok = load_tokenizer(default_model_dir)
    coll = load_collection("builtin", 0)
    names = ["subtract_3", "list_sort_asc", "count_words", "count_vowels", "list_drop_first", "words_first_word",
             "edit_hashtag", "list_reverse", "extract_year", "num_big100_yes_no"]
    cfg = train_sft.TrainConfig(batch_size=4, max_len=36, siblings=0)
    b = Batches(tok, coll.tasks, names, cfg, n_train=50)
    assert b.cache == {}  # nothing encoded before a batch draws it
    fits = {n: fmt.encode_examples(tok, coll.tasks[n].examples("train", 50), 36)[0] for n in names}
    assert len(fits["subtract_3"]) == 50 and 0 < len(fits["list_drop_first"]) < 50 and not fits["list_reverse"]
    assert b.names == [n for n in names if fits[n]] and "list_sort_asc" not in b.names
    for i in range(20):
        examples, rows, _ = b.examples(i)
        rng = random.Random(stable_seed(cfg.seed, "batch", i))
        want_rows = rng.sample(b.names, 4)
        assert rows == want_rows and examples == [rng.choice(fits[n]) for n in want_rows]
        if i == 0:
            assert set(b.cache) == set(rows)  # only the drawn tasks were encoded


@pytest.mark.parametrize("prompt,siblings", [("definition", 0), ("bare", 4)])
def test_lazy_batches_equal_eager_ones_under_the_definition_prompt_and_with_siblings(default_model_dir, prompt, siblings):
    """The same equality under the reference's prompt (the definition in the user turn: longer rows, so
    more are dropped) and the main recipe's sibling rows, against Batches with every task encoded
    before the first batch (what data/batches.py did until 2026-12-05)."""
    import train_sft
    from data.batches import Batches
    from data.collection import load_collection

    class Eager(Batches):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            for n in self.names:
                self.encoded(n)

    tok = load_tokenizer(default_model_dir)
    coll = load_collection("builtin", 0)
    names = coll.training_tasks()[:40]
    cfg = train_sft.TrainConfig(batch_size=8, max_len=72 if prompt == "definition" else 40, prompt=prompt, siblings=siblings)
    lazy, eager = Batches(tok, coll.tasks, names, cfg, n_train=40), Eager(tok, coll.tasks, names, cfg, n_train=40)
    assert lazy.names == eager.names and 0 < len(lazy.names)
    assert any(len(eager.cache[n]) < 40 for n in eager.names)  # this --max-len dropped examples
    if siblings:  # the batch begins with `siblings` rows of one family, all asked the same input
        assert len({coll.tasks[n].family for n in lazy.examples(0)[1][:siblings]}) == 1
    for i in range(15):
        assert lazy.examples(i) == eager.examples(i)
