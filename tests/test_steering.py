"""Whether the text matters: the steering test, the task-specific share of Delta W and the controls
beside every T2L number. Both extremes are built here: a hypernetwork that ignores its text must
score at chance (and be credited with nothing over its controls), one that maps each description
to its own task's adapter must score 1."""
import json

import pytest
import torch

import eval
import t2l
from data import format as fmt
from data import steering as steer
from data.collection import load_collection
from data.metrics import normalise


@pytest.fixture(scope="module")
def coll():
    return load_collection("builtin", 0)


def test_every_member_answers_its_own_examples(coll):
    """Task.solve is what the steering test trusts: it must reproduce each member's own examples."""
    for _, names in steer.GROUPS.values():
        for n in names:
            t = coll.tasks[n]
            for split in ("train", "test"):
                bad = [e for e in t.examples(split, 40) if t.solve(e.input) != e.answer]
                assert not bad, (n, bad[:1])


def test_cases_hold_inputs_every_member_answers_differently(coll):
    train = set(coll.splits["train"])
    seen, unseen = (steer.cases(coll.tasks, coll.splits, s, 8) for s in steer.SETTINGS)
    assert {c.group for c in seen} == {c.group for c in unseen} == set(steer.GROUPS)
    for c in seen + unseen:
        assert len(c.inputs) == 8
        for a in c.answers:
            assert len({normalise(v) for v in a.values()}) == len(c.members)  # exactly one member is right
    for c in seen:
        assert c.described == c.members and set(c.members) <= train and c.chance == 1 / len(c.members)
    for c in unseen:
        assert c.described and not set(c.described) & train and set(c.members) > set(c.described)
    with pytest.raises(ValueError):
        steer.cases(coll.tasks, coll.splits, "sideways")


# -----------------------------------------------------------------------------
# The two extremes, on tiny checkpoints. The "LLM" here does the task whose oracle adapter is
# nearest to the adapter it is given (a stand-in for a model that a perfect adapter steers).

TINY = dict(variant="S", d_task=8, latent=16, head_in=16, rank=2, targets=["q_proj"], n_layers=2,
            module_dims={"q_proj": [6, 6]})


def owners(coll):
    """Every description a steering case may use -> its task (eval descriptions of every member)."""
    return {d: n for _, ms in steer.GROUPS.values() for n in ms for d in coll.tasks[n].eval_descriptions}


class DescriptionEncoder:
    """A fixed random embedding per description (stands in for the sentence encoder)."""
    dim = 8

    def __call__(self, texts):
        return torch.stack([torch.randn(8, generator=torch.Generator().manual_seed(sum(map(ord, t)) % 2**31))
                            for t in texts])


class OracleNet(torch.nn.Module):
    """The ideal hypernetwork: each description -> its own task's adapter (a distinct random one)."""

    def __init__(self, tasks_of):
        super().__init__()
        self.cfg = t2l.T2LConfig(**TINY)
        self.names = sorted(set(tasks_of.values()))
        g = torch.Generator().manual_seed(0)
        self.A = torch.nn.Parameter(torch.randn(len(self.names), 2, 2, 6, generator=g))  # (task, layer, r, d_in)
        self.B = torch.nn.Parameter(torch.randn(len(self.names), 2, 6, 2, generator=g))  # (task, layer, d_out, r)
        self.tasks_of, self.last = tasks_of, None

    def forward(self, emb):  # the encoder below hands it the task index directly
        idx = emb[:, 0].long()
        return {f"model.layers.{li}.self_attn.q_proj": (self.A[idx, li], self.B[idx, li]) for li in range(2)}


class IndexEncoder:
    dim = 8

    def __init__(self, net):
        self.net = net

    def __call__(self, texts):
        e = torch.zeros(len(texts), 8)
        e[:, 0] = torch.tensor([float(self.net.names.index(self.net.tasks_of[t])) for t in texts])
        return e


def nearest_task_llm(coll, cases, oracle: OracleNet):
    """answers_for: the reply is the answer of the group member whose oracle adapter is nearest."""
    group_of = {x: c for c in cases for x in c.inputs}

    def answers_for(inputs, adapter):
        A, B = adapter["model.layers.0.self_attn.q_proj"]  # (b, r, d_in), (b, d_out, r)
        out = []
        for i, x in enumerate(inputs):
            members = group_of[x].members
            dist = [float((A[i] - oracle.A[oracle.names.index(m), 0]).norm() + (B[i] - oracle.B[oracle.names.index(m), 0]).norm())
                    for m in members]
            out.append(coll.tasks[members[dist.index(min(dist))]].solve(x))
        return out
    return answers_for


def nearest_task_logliks(oracle: OracleNet, cases):
    """logliks_for: each member's answer is as likely as the adapter is close to that member's oracle
    adapter (minus the distance), so a perfect adapter raises its own member's answer most."""
    members_of = {x: c.members for c in cases for x in c.inputs}

    def logliks_for(inputs, candidates, adapter):
        A, B = adapter["model.layers.0.self_attn.q_proj"]  # (b, r, d_in), (b, d_out, r)
        return [[-float((A[i] - oracle.A[oracle.names.index(m), 0]).norm() + (B[i] - oracle.B[oracle.names.index(m), 0]).norm())
                 for m in members_of[x]] for i, x in enumerate(inputs)]
    return logliks_for


@pytest.mark.parametrize("setting", steer.SETTINGS)
def test_a_text_blind_hypernetwork_steers_at_chance_and_a_text_reading_one_near_one(coll, setting):
    cases = steer.cases(coll.tasks, coll.splits, setting, 6)
    oracle = OracleNet(owners(coll))
    llm, ll = nearest_task_llm(coll, cases, oracle), nearest_task_logliks(oracle, cases)

    perfect = eval.steering(None, None, oracle, IndexEncoder(oracle), cases, coll.tasks, answers_for=llm, logliks_for=ll)
    assert perfect["accuracy"] == perfect["nearest"] == perfect["preferred"] == 1.0
    assert perfect["n"] == sum(len(c.described) * 3 * 6 for c in cases)
    quick = eval.steering(None, None, oracle, IndexEncoder(oracle), cases, coll.tasks, answers_for=llm, likelihood=False)
    assert quick["accuracy"] == 1.0 and quick["preferred"] is None and all(u[2] is None for u in quick["units"])
    assert "| **1** " not in eval.steering_markdown({setting: quick}) and "| - |" in eval.steering_markdown({setting: quick})

    torch.manual_seed(0)
    blind = t2l.HyperNetwork(t2l.T2LConfig(**TINY))
    with torch.no_grad():
        for p in blind.heads.parameters():
            p.normal_()  # a non-zero adapter ...
        blind.task_proj[0].weight.zero_()  # ... that cannot depend on the text
    r = eval.steering(None, None, blind, DescriptionEncoder(), cases, coll.tasks, answers_for=llm, logliks_for=ll)
    assert r["preferred"] == 0.0  # one adapter raises no answer above the adapters' average: no pick at all
    calls = iter(range(10**6))  # a "model" whose numbers drift with the batch position (rounding, bf16)
    noisy = lambda inputs, cands, adapter: [[-len(a) + 1e-2 * next(calls) for a in c] for c in cands]
    r = eval.steering(None, None, blind, DescriptionEncoder(), cases, coll.tasks, answers_for=llm, logliks_for=noisy)
    assert r["preferred"] == 0.0  # identical adapters are scored once: the drift cannot pick anything
    # one adapter for every member: on each input it does one member's task (answers all differ), so
    # it is right for at most one described member: chance when that member is described (seen: all
    # are), 0 when it is a trained member of an unseen case (the next test builds the other case)
    assert r["accuracy"] <= r["chance"] + 1e-9 and r["nearest"] <= r["chance"] + 1e-9
    if setting == "seen":
        assert r["accuracy"] == r["nearest"] == pytest.approx(r["chance"], abs=1e-9)
    assert r["chance"] == pytest.approx(sum(c.chance * len(c.described) for c in cases) / sum(len(c.described) for c in cases))
    for g in r["groups"].values():
        assert len({m for row in g["confusion"].values() for m in row}) == 1  # every adapter did the same task


def test_chance_is_what_a_text_blind_adapter_doing_a_described_task_scores(coll):
    """The worst text-blind case for the bound: whatever the description, the adapter does the task of
    one DESCRIBED member (in the unseen setting one unseen task, classified among all members). It is
    right for exactly one of a group's described members on every input: 1 / (members described),
    which is the chance each table prints (1 / (all members) would credit it with steering)."""
    for setting in steer.SETTINGS:
        cases = steer.cases(coll.tasks, coll.splits, setting, 4)
        reply = {x: a[c.described[0]] for c in cases for x, a in zip(c.inputs, c.answers)}
        net = t2l.HyperNetwork(t2l.T2LConfig(**TINY))
        r = eval.steering(None, None, net, DescriptionEncoder(), cases, coll.tasks,
                          answers_for=lambda inputs, adapter: [reply[x] for x in inputs],
                          logliks_for=lambda inputs, cands, adapter: [[-len(a) for a in c] for c in cands])
        assert r["accuracy"] == pytest.approx(r["chance"], abs=1e-9), setting
        assert r["preferred"] == 0.0  # the same likelihoods under every adapter: nothing is preferred
        for c in cases:
            assert r["groups"][c.group]["accuracy"] == pytest.approx(1 / len(c.described)) == pytest.approx(c.chance)
        if setting == "unseen":
            assert all(len(c.described) < len(c.members) for c in cases)  # the bound differs from 1 / members


def test_preferred_member_removes_what_makes_an_answer_likely_whatever_the_adapter():
    """Answer 0 is far likelier under every adapter (short, the model's habit); each adapter adds a
    little to its own member's answer. Raw argmax would pick member 0 for all; the lift picks each
    adapter's own. A pick within the margin of the runner-up is no pick."""
    case = steer.Case("g", ["a", "b", "c"], ["a", "b", "c"], ["x"], [{"a": "1", "b": "2", "c": "3"}])
    rows = [(0, 0, m, f"desc {m}") for m in case.described]
    bias = [0.0, -9.0, -9.0]  # log-likelihood of each member's answer under any adapter
    lls = [[b + (0.5 if j == k else 0.0) for k, b in enumerate(bias)] for j in range(3)]
    assert [max(range(3), key=row.__getitem__) for row in lls] == [0, 0, 0]  # raw: every adapter picks "a"
    assert eval.preferred_members(rows, lls, [case]) == ["a", "b", "c"]
    same = [list(bias) for _ in range(3)]
    assert eval.preferred_members(rows, same, [case]) == [None, None, None]
    near_tie = [[b + (1e-6 if j == k else 0.0) for k, b in enumerate(bias)] for j in range(3)]
    assert eval.preferred_members(rows, near_tie, [case]) == [None, None, None]


def test_member_logliks_scores_each_answer_under_its_rows_adapter(tiny_dirs, default_model_dir):
    """member_logliks on a tiny model with the real tokenizer: the prompt runs once into a KV cache and
    every answer continues from it, rows with different adapters share a batch, yet each number
    equals that (input, answer) sequence scored whole and alone under that row's adapter."""
    import lora
    from model import load_tokenizer
    from tests.test_eval import tiny_with_real_vocab
    model, tok = tiny_with_real_vocab(tiny_dirs, default_model_dir), load_tokenizer(default_model_dir)
    lcfg = lora.LoraConfig(r=2, target_modules=["q_proj"])
    lora.inject(model, lcfg)
    case = steer.Case("g", ["a", "b", "c"], ["a", "b"], ["3, 1, 2", "7, 9"],
                      [{"a": "1", "b": "3, 2, 1", "c": "2"}, {"a": "7", "b": "9, 7", "c": "9"}])
    rows = [(0, ii, m, f"desc {m}") for m in case.described for ii in range(2)]
    names = lora.target_names(model, lcfg)
    g = torch.Generator().manual_seed(0)
    written = {n: (torch.randn(2, 2, model.get_submodule(n).in_features, generator=g),
                   torch.randn(2, model.get_submodule(n).out_features, 2, generator=g)) for n in names}
    adapter_of = lambda chunk: {k: (A[[case.described.index(r[2]) for r in chunk]], B[[case.described.index(r[2]) for r in chunk]])
                                for k, (A, B) in written.items()}
    lls = eval.member_logliks(model, tok, [case], rows, adapter_of, lcfg.scaling, batch_size=6)  # 2 rows x 3 members
    for r, row in zip(rows, lls):  # against each prompt + answer scored whole, alone, by model.loss
        for m, ll in zip(case.members, row):
            ids, labels = fmt.encode(tok, fmt.messages_for(case.inputs[r[1]]), case.answers[r[1]][m], max_len=10**6)
            labels[max(k for k, y in enumerate(labels) if y != -100)] = -100  # not the end-of-turn token
            with lora.use_adapter(model, adapter_of([r]), lcfg.scaling), torch.no_grad():
                whole = -model.loss(torch.tensor([ids]), torch.tensor([labels]), reduction="per_example_sum")[0]
            assert ll == pytest.approx(float(whole), abs=1e-4)
    by_adapter = [lls[0], lls[2]]  # the same input under the two members' adapters
    assert by_adapter[0] != pytest.approx(by_adapter[1], abs=1e-3)  # the adapter changes the numbers


def test_nearest_member_credits_a_slip_but_never_a_tie_or_garbage():
    answers = {"desc": "97, 84, 80, 50", "asc": "50, 80, 84, 97", "rev": "50, 84, 97, 80"}
    assert steer.nearest_member("97, 84, 50", answers) == "desc" and steer.which_member("97, 84, 50", answers) is None
    assert steer.nearest_member("hello world", answers) is None  # below the floor
    assert steer.nearest_member("12", {"a": "13", "b": "11"}) is None  # equally close to two members
    assert steer.which_member("50, 80, 84, 97 ", answers) == "asc"


def test_task_share_is_zero_without_the_text_and_large_with_it(coll):
    oracle = OracleNet(owners(coll))
    descs = list(oracle.tasks_of)[:20]
    assert eval.task_share(oracle(IndexEncoder(oracle)(descs))) > 0.5
    blind = t2l.HyperNetwork(t2l.T2LConfig(**TINY))
    with torch.no_grad():
        for p in blind.heads.parameters():
            p.normal_()
        blind.task_proj[0].weight.zero_()
    assert eval.task_share(blind.eval()(DescriptionEncoder()(descs))) < 1e-3
    assert eval.task_share(t2l.HyperNetwork(t2l.T2LConfig(**TINY))(DescriptionEncoder()(descs))) == 0.0  # Delta W = 0 at init


def test_centering_removes_the_mean_training_embedding():
    torch.manual_seed(0)
    net = t2l.HyperNetwork(t2l.T2LConfig(**TINY, center=True))
    emb = torch.randn(5, 8) + 3.0
    net.set_center(emb)
    assert torch.allclose(net.emb_mean, emb.mean(0))
    plain = t2l.HyperNetwork(t2l.T2LConfig(**TINY))
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k != "emb_mean"})
    a, b = net.eval()(emb), plain.eval()(emb - emb.mean(0))
    assert all(torch.equal(a[k][1], b[k][1]) for k in a)


# -----------------------------------------------------------------------------
# The controls: never credit T2L with what any adapter gives


def test_paired_differences_credit_only_what_the_text_adds():
    same = {t: {"T2L-S": v, "t2l_random": v, "t2l_wrong": v} for t, v in (("a", 0.2), ("b", 0.5), ("c", 0.9))}
    pairs = eval.t2l_pairs(same)
    assert [p["reference"] for p in pairs] == ["t2l_random", "t2l_wrong"]
    assert all(p["mean_diff"] == 0 and p["ties"] == 3 and p["ci95"] == [0, 0] for p in pairs)
    better = {t: {**row, "T2L-S": row["T2L-S"] + 0.1} for t, row in same.items()}
    p = eval.t2l_pairs(better)[0]
    assert p["mean_diff"] == pytest.approx(0.1) and p["wins"] == 3 and p["ci95"][0] == pytest.approx(0.1)
    # two checkpoints: each is compared with its own controls
    two = {"a": {"T2L-S": 0.5, "T2L-L": 0.7, "t2l_random T2L-S": 0.5, "t2l_random T2L-L": 0.1}}
    got = {(p["t2l"], p["reference"]): p["mean_diff"] for p in eval.t2l_pairs(two)}
    assert got == {("T2L-S", "t2l_random T2L-S"): 0.0, ("T2L-L", "t2l_random T2L-L"): pytest.approx(0.6)}
    assert "t2l_random" in eval.pairs_markdown(eval.t2l_pairs(better))


@pytest.mark.slow
def test_eval_adds_the_controls_and_a_text_blind_t2l_gains_nothing_over_them(tmp_path, default_model_dir, capsys):
    """A T2L checkpoint that writes one non-zero adapter whatever the text: eval.py (asked only for
    t2l) adds both controls, and every paired difference is exactly 0."""
    from model import ModelConfig
    mcfg = ModelConfig.from_json(default_model_dir / "config.json")
    torch.manual_seed(0)
    net = t2l.HyperNetwork(t2l.T2LConfig.for_base(mcfg, variant="S", latent=16, head_in=16))
    with torch.no_grad():
        for p in net.heads.parameters():
            p.normal_(0, 0.02)
        net.task_proj[0].weight.zero_()
    t2l.save(net, tmp_path / "blind")
    out = tmp_path / "eval"
    eval.main(["--tasks", "list_last,add_1", "--n", "2", "--methods", "base,t2l", "--t2l", str(tmp_path / "blind"),
            "--out", str(out), "--descriptions", "1"])
    r = json.loads((out / "results.json").read_text())
    assert r["methods"] == ["base", "t2l", "t2l_random", "t2l_wrong"]
    controls = [p for p in r["paired"] if p["reference"] in eval.CONTROLS]
    assert len(controls) == 2 and all(p["mean_diff"] == 0 and p["ties"] == 2 for p in controls)
    assert "| T2L-S | t2l_random | 2 | +0.0 |" in capsys.readouterr().out


def test_the_main_jobs_closing_table_draws_steering_inputs_with_the_runs_seed(coll, monkeypatch, tmp_path):
    """Seeds of the main job must differ in the steering inputs they score, not only in their members."""
    seen = {}
    monkeypatch.setattr(eval, "run_table", lambda *a, **k: {})
    monkeypatch.setattr(eval, "write_outputs", lambda *a, **k: None)
    monkeypatch.setattr(eval, "steering_report", lambda *a, **k: seen.update(seed=k.get("seed")) or {})
    cfg = type("Cfg", (), dict(final_tasks=2, variant="S", final_examples=1, final_descs=1, prompt="bare",
                               steering_inputs=2, steering_descs=1, data="builtin", seed=7, steps=1))()
    eval.closing_table(None, None, coll, torch.nn.Identity(), None, cfg, tmp_path)
    assert seen == {"seed": 7}
