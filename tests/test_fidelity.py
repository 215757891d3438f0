"""Fidelity to the reference implementation (SakanaAI/text-to-lora): prompts, trunk, conditioning,
losses. The expected values are written out from the reference's code (utils/preprocessing.py,
hyper_modulator.py, sft_trainer.py), not computed by this project's code."""
import torch
import torch.nn as nn

import lora
import t2l
import train_sft
from data import format as fmt
from data.collection import load_collection
from data.sni import DEFAULT_SNI_DIR, load_sni_task
from model import load_pretrained, load_tokenizer


def test_sni_user_turn_is_the_references_character_for_character(default_model_dir):
    # task1146_country_capital, instance 0: {"input": "Afghanistan", "output": ["Kabul"]}
    task = load_sni_task(DEFAULT_SNI_DIR / "tasks" / "task1146_country_capital.json")
    ex = next(e for e in task.examples("train") + task.examples("val") + task.examples("test") if e.input == "Afghanistan")
    assert ex.answer == "Kabul" and not ex.several
    want = ("In this task, you are given a country and you need to return the capital city of the given country"
            " Please complete the task without any explanation.\n\nAfghanistan")
    assert fmt.user_turn(ex.input, task.definition, ex.several) == want
    # the whole prompt under SmolLM2's chat template, with the reference's empty system message
    tok = load_tokenizer(default_model_dir)
    text = tok.apply_chat_template(fmt.messages_for(ex.input, definition=task.definition), tokenize=False)
    assert text == f"<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{want}<|im_end|>\n<|im_start|>assistant\n"
    assert fmt.user_turn(ex.input) == "Afghanistan"  # --prompt bare: the input alone


def test_sni_instance_with_several_outputs_asks_for_a_list_and_joins_them():
    # task1564_triviaqa_answer_generation: an instance whose outputs are ["4", "Golden Grand Slam"]
    task = load_sni_task(DEFAULT_SNI_DIR / "tasks" / "task1564_triviaqa_answer_generation.json")
    q = ("Question:In 1995, Steffi Graf became the only tennis player to have won each of the four grand slam "
         "events how many times?")
    ex = next(e for s in ("train", "val", "test") for e in task.examples(s) if e.input == q)
    assert ex.several and ex.answer == "4, Golden Grand Slam"  # the reference's ", ".join(outputs)
    assert fmt.user_turn(ex.input, task.definition, ex.several) == (
        "In this task you are given a question. You need to generate an answer to the question."
        " Please complete the task without any explanation."
        "\nThe answer should be a comma-separated list of possible completions.\n\n" + q)


def test_builtin_tasks_are_formatted_the_same_way():
    coll = load_collection("builtin")
    t = coll.tasks["list_max"]
    ex = t.examples("test", 1)[0]
    assert fmt.user_turn(ex.input, t.definition) == f"{t.definition} Please complete the task without any explanation.\n\n{ex.input}"
    assert t.definition not in t.train_descriptions + t.eval_descriptions


def test_full_stop_rule_is_add_full_stop():
    enc = t2l.TaskEncoder.__new__(t2l.TaskEncoder)
    enc.full_stop = True
    assert enc.prepare("  Sort the list  ") == "Sort the list."
    for s in ("Sort the list.", "Count to 3", "Is it sorted?", "Name (x)"):
        assert enc.prepare(s) == s  # the reference adds "." only after a letter


def layer_types(seq):
    return [type(m).__name__ for m in seq]


def test_trunk_is_built_in_the_references_order():
    cfg = t2l.T2LConfig(variant="S", d_task=10, latent=16, head_in=24, rank=4, targets=["q_proj", "v_proj"], n_layers=3,
                      module_dims={"q_proj": [32, 32], "v_proj": [32, 8]})
    net = t2l.HyperNetwork(cfg)
    p = cfg.dropout
    # mixer = Dropout, Linear(d, 4d), SiLU, Dropout, Linear(4d, d), SiLU, Dropout
    assert layer_types(net.mixer) == ["Dropout", "Linear", "SiLU", "Dropout", "Linear", "SiLU", "Dropout"]
    # residual blocks: x + (LayerNorm, Linear(d, 4d), SiLU, Dropout, Linear(4d, d), SiLU, Dropout)(x)
    for blk in (net.mlp1, net.mlp2):
        assert layer_types(blk.body) == ["LayerNorm", "Linear", "SiLU", "Dropout", "Linear", "SiLU", "Dropout"]
        x = torch.randn(2, 16)
        blk.eval()
        torch.testing.assert_close(blk(x), x + blk.body(x))
    # last block: LayerNorm, Linear(d, 4d), SiLU, Dropout, Linear(4d, head_in), SiLU
    assert layer_types(net.mlp3) == ["LayerNorm", "Linear", "SiLU", "Dropout", "Linear", "SiLU"]
    assert (net.mlp3[1].in_features, net.mlp3[1].out_features, net.mlp3[4].out_features) == (16, 64, 24)
    assert sum(isinstance(m, nn.Dropout) and m.p == p for m in net.modules()) == 8  # the reference's 8 sites
    # inputs: Linear + LayerNorm to d/2; Embedding + LayerNorm to d/4, twice
    assert layer_types(net.task_proj) == ["Linear", "LayerNorm"] and net.task_proj[0].out_features == 8
    assert layer_types(net.layer_emb) == layer_types(net.module_emb) == ["Embedding", "LayerNorm"]
    # S: an A/B vector per module type (LayerNorm'd, one shared norm) and a rank Embedding + LayerNorm
    assert {k: tuple(v.shape) for k, v in net.ab_emb.items()} == {"q_proj": (2, 16), "v_proj": (2, 16)}
    assert isinstance(net.ab_norm, nn.LayerNorm) and layer_types(net.rank_emb) == ["Embedding", "LayerNorm"]


def test_m_and_s_conditioning_enters_before_mlp2_as_the_reference():
    """Recompute one S head input by hand, in the reference's order:
    mlp3(mlp2(mlp1(mixer(x)) + norm(e_AB)) + mlp2(rank_emb(j)))."""
    cfg = t2l.T2LConfig(variant="S", d_task=10, latent=16, head_in=24, rank=3, targets=["q_proj"], n_layers=2,
                      module_dims={"q_proj": [32, 32]})
    net = t2l.HyperNetwork(cfg).eval()
    emb = torch.randn(1, 10)
    z = net.trunk(emb, torch.tensor([1]), torch.tensor([0]))  # layer 1, module 0: (1, 16)
    j, X = 2, 1  # rank row 2 of B
    want = net.mlp3(net.mlp2(z + net.ab_norm(net.ab_emb["q_proj"][X])) + net.mlp2(net.rank_emb(torch.tensor([j]))))
    got = net.head_inputs(net.trunk(emb.expand(2, -1), torch.tensor([0, 1]), torch.tensor([0, 0])).view(1, 2, 16),
                          "q_proj")  # (n=1, nL=2, A|B, r, H)
    torch.testing.assert_close(got[0, 1, X, j], want[0])
    m = t2l.HyperNetwork(t2l.T2LConfig(**{**cfg.__dict__, "variant": "M"})).eval()
    z = m.trunk(emb, torch.tensor([1]), torch.tensor([0]))
    want = m.mlp3(m.mlp2(z + m.ab_norm(m.ab_emb["q_proj"][0])))  # M: the A call
    got = m.head_inputs(m.trunk(emb.expand(2, -1), torch.tensor([0, 1]), torch.tensor([0, 0])).view(1, 2, 16), "q_proj")
    torch.testing.assert_close(got[0, 1, 0], want[0])  # (n=1, nL=2, A|B, H)


def test_per_example_loss_is_the_mean_of_each_examples_mean():
    """Two examples, answers of 1 and 3 tokens: the reference's equally_weight_sample."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)  # (B, T, vocab)

    class Fake(nn.Module):  # a model whose loss is cross-entropy on fixed logits, as Transformer.loss computes it
        def loss(self, ids, labels, mask, reduction="mean", label_smoothing=0.0, segments=None):
            assert segments is None  # a padded batch
            return _loss(labels, reduction, label_smoothing)

    def _loss(labels, reduction, ls):
        t = labels[:, 1:]
        keep = t != -100
        ce = torch.nn.functional.cross_entropy(logits[:, :-1][keep], t[keep], reduction="none", label_smoothing=ls)
        ex = torch.arange(2)[:, None].expand_as(keep)[keep]
        per = torch.zeros(2).index_add_(0, ex, ce) / keep.sum(1)
        return per if reduction == "per_example" else ce.mean()
    labels = torch.tensor([[-100, -100, -100, -100, 3], [-100, 1, 2, 4, -100]])
    cfg = train_sft.TrainConfig(label_smoothing=0.0)
    lp = torch.log_softmax(logits, -1)
    by_hand = (-lp[0, 3, 3] + (-lp[1, 0, 1] - lp[1, 1, 2] - lp[1, 2, 4]) / 3) / 2
    torch.testing.assert_close(train_sft.sft_loss(Fake(), None, labels, None, cfg), by_hand)
    token_mean = (-lp[0, 3, 3] - lp[1, 0, 1] - lp[1, 1, 2] - lp[1, 2, 4]) / 4
    torch.testing.assert_close(train_sft.sft_loss(Fake(), None, labels, None, train_sft.TrainConfig(label_smoothing=0.0, loss_weighting="token")),
                               token_mean)
    assert not torch.allclose(by_hand, token_mean)


def test_transformer_per_example_loss_matches_a_hand_computation(tiny_dirs):
    _, d = tiny_dirs["llama"]
    model = load_pretrained(d)
    ids = torch.randint(3, 100, (2, 6))
    labels = torch.full_like(ids, -100)
    labels[0, 5], labels[1, 2:5] = ids[0, 5], ids[1, 2:5]  # answers of 1 and 3 tokens
    lp = torch.log_softmax(model(ids), -1)  # (2, 6, vocab)
    per = [-lp[0, 4, ids[0, 5]], -(lp[1, 1, ids[1, 2]] + lp[1, 2, ids[1, 3]] + lp[1, 3, ids[1, 4]]) / 3]
    got = train_sft.sft_loss(model, ids, labels, torch.ones_like(ids), train_sft.TrainConfig(label_smoothing=0.0))
    torch.testing.assert_close(got, (per[0] + per[1]) / 2, rtol=1e-5, atol=1e-5)


def test_l2_on_generated_a_and_b_is_the_references_sum_over_module_types():
    g = torch.Generator().manual_seed(0)
    n, nL, r = 3, 4, 2
    dims = {"q_proj": (8, 8), "v_proj": (8, 4)}
    ad = {lora.module_name(li, t): (torch.randn(n, r, i, generator=g), torch.randn(n, o, r, generator=g))
          for t, (i, o) in dims.items() for li in range(nL)}
    # reference (sft_trainer.get_loss_batch): for each module, A and B stacked over layers and examples
    ref = 0.0
    for t in dims:
        A = torch.cat([ad[lora.module_name(li, t)][0] for li in range(nL)])  # (nL*n, r, in)
        B = torch.cat([ad[lora.module_name(li, t)][1] for li in range(nL)])  # (nL*n, out, r)
        ref = ref + (A ** 2).mean() + (B ** 2).mean()
    torch.testing.assert_close(train_sft.l2_ab(ad, list(dims)), ref)


def test_reference_defaults():
    cfg = train_sft.apply_recipe(train_sft.TrainConfig(recipe="reference"))  # the recipe SNI, folders and the benchmarks use
    assert (cfg.label_smoothing, cfg.neftune, cfg.lora_dropout, cfg.reg_ab) == (0.1, 5.0, 0.05, 1e-3)
    assert (cfg.loss_weighting, cfg.prompt, cfg.rank, cfg.alpha, cfg.targets) == ("example", "definition", 8, 16.0, "q_proj,v_proj")
    assert (cfg.center, cfg.siblings, cfg.lr) == (False, 0, 5e-4)
    assert train_sft.apply_recipe(train_sft.TrainConfig(data="sni")).recipe == "reference"
    main = train_sft.apply_recipe(train_sft.TrainConfig())  # the main job (built-in suite): its own measured recipe
    assert (main.recipe, main.prompt, main.center, main.siblings, main.lr) == ("main", "bare", True, 4, 1e-3)
    assert (cfg.weight_decay, cfg.warmup_frac, cfg.grad_clip, cfg.batch_size) == (0.01, 0.2, 1.0, 8)
    assert t2l.T2LConfig().dropout == 0.05


def test_sni_packs_on_a_cpu_and_pads_on_a_gpu_unless_told(monkeypatch):
    """--pack's default follows bench/RESULTS.md: packed on a CPU (1.62x), padded on a GPU, where the
    SNI step is launch-bound and packing measured 0.82-0.86x; an explicit --pack/--no-pack wins."""
    sni = lambda **kw: train_sft.apply_recipe(train_sft.TrainConfig(data="sni", **kw)).pack
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sni() is True and sni(device="cuda") is True  # no GPU here: --device cuda fails later, with its own error
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sni() is False and sni(device="cuda") is False and sni(recipe="main") is False
    assert sni(device="cpu") is True  # --device cpu on a GPU machine: the CPU's default
    assert sni(pack=True) is True and sni(device="cpu", pack=False) is False


def test_batched_encoding_is_the_cached_one_up_to_rounding():
    enc = t2l.TaskEncoder()
    texts = ["Sort the numbers", "Say whether the review is positive or negative.", "Count the vowels in the word"]
    torch.testing.assert_close(enc.encode_batch(texts), enc(texts), rtol=1e-4, atol=1e-4)
