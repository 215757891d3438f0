"""Packed batches (data/format.pack, train_sft.py --pack): examples end to end in rows, a
block-diagonal causal mask, positions restarting per example, and per-token adapters
(lora.lora_delta_routed) must give the padded batch's losses and gradients exactly (fp32, 1e-5),
on every family, for both loss weightings, with per-example and with shared adapters."""
import dataclasses

import pytest
import torch

import lora
from conftest import FAMILIES, VOCAB
from data import format as fmt
from model import load_pretrained, segment_positions, segment_spans


def examples(lengths, answer, seed=0):
    """Encoded examples [(ids, labels)] with random tokens; the last `answer` tokens are the answer."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        out.append((ids, [-100] * (n - answer) + ids[n - answer:]))
    return out


def test_pack_layout():
    enc = examples([9, 3, 7, 5, 2, 8], answer=2)
    ids, labels, seg = fmt.pack(enc, pad_id=0, capacity=12)
    assert ids.shape == labels.shape == seg.shape
    # 34 tokens; rows of 9: 9 | 8 | 7+2 | 5+3, 36 slots; rows of 12: 9+3 | 8+2 | 7+5, also 36; 10 and 11
    # need more. The fewest slots, then the shortest rows: 4 rows of 9.
    assert tuple(ids.shape) == (4, 9)
    for i, (x, y) in enumerate(enc):  # every example once, contiguous, in order, its labels shifted in place
        r, cols = (seg == i).nonzero(as_tuple=True)
        assert len(set(r.tolist())) == 1 and cols.tolist() == list(range(int(cols[0]), int(cols[0]) + len(x)))
        assert ids[r[0], cols].tolist() == x
        assert labels[r[0], cols[0]] == -100  # nothing in its own example predicts its first token
        assert labels[r[0], cols[1:]].tolist() == y[1:]
    assert (labels[seg < 0] == -100).all() and (ids[seg < 0] == 0).all()
    with pytest.raises(ValueError, match="does not fit"):
        fmt.pack(enc, pad_id=0, capacity=8)


def test_one_row_holds_the_batch_in_order_with_no_padding():
    enc = examples([9, 3, 7], answer=2)
    ids, labels, seg = fmt.pack(enc, pad_id=0, capacity=None)
    assert tuple(ids.shape) == (1, 19) and seg.tolist() == [[0] * 9 + [1] * 3 + [2] * 7]
    assert ids[0].tolist() == enc[0][0] + enc[1][0] + enc[2][0]


def test_spans_are_the_runs_of_each_example():
    seg = torch.tensor([[0, 0, 0, 3, 3, 1, -1, -1], [2, 2, 2, 2, 2, 2, 2, 2]])
    assert segment_spans(seg) == [[(0, 3), (3, 5), (5, 6)], [(0, 8)]]
    with pytest.raises(ValueError, match="contiguous"):
        segment_spans(torch.tensor([[0, 0, 1, 0]]))  # example 0 in two runs: the mask would join them


def test_positions_restart_with_every_example():
    seg = torch.tensor([[0, 0, 0, 3, 3, 1, -1, -1], [2, 2, 2, 2, 2, 2, 2, 2]])
    assert segment_positions(seg).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1], [0, 1, 2, 3, 4, 5, 6, 7]]


def test_routed_delta_equals_per_example_bmm():
    """Each token under its own example's adapter: the one-hot rank-n*r form equals slicing the
    packed row by example and applying that example's (A, B) with the plain per-example formula."""
    torch.manual_seed(0)
    n, r, d_in, d_out = 3, 4, 10, 6
    A, B = torch.randn(n, r, d_in), torch.randn(n, d_out, r)
    seg = torch.tensor([[0, 0, 0, 2, 2, -1], [1, 1, 1, 1, -1, -1]])
    x = torch.randn(2, 6, d_in)
    got = lora.lora_delta_routed(x, A, B, seg)  # (2, 6, d_out)
    for row in range(2):
        for t in range(6):
            e = int(seg[row, t])
            want = torch.zeros(d_out) if e < 0 else (x[row, t] @ A[e].t()) @ B[e].t()
            torch.testing.assert_close(got[row, t], want, atol=1e-6, rtol=1e-6)


def random_adapters(model, lcfg, n: int, device="cpu"):
    """(per-example adapters for n examples, one shared adapter), rank 4, leaves that take gradients."""
    shapes = lora.module_shapes(model, lcfg)
    torch.manual_seed(2)
    leaf = lambda *size: torch.randn(*size).mul(0.2).to(device).requires_grad_()
    per_example = {name: (leaf(n, 4, d_in), leaf(n, d_out, 4)) for name, (d_in, d_out) in shapes.items()}
    shared = {name: (leaf(4, d_in), leaf(d_out, 4)) for name, (d_in, d_out) in shapes.items()}
    return per_example, shared


def losses_and_grads(model, enc, adapter, packed, weighting, capacity):
    """The SFT loss of `enc` under `adapter` (per-example or shared) and its gradients on the adapter,
    on the model's device."""
    leaves = [t for pair in adapter.values() for t in pair]
    for t in leaves:
        t.grad = None
    if packed:
        ids, labels, seg = fmt.pack(enc, 0, capacity)
        mask = None
    else:
        ids, labels, mask = fmt.collate(enc, 0)
        seg = None
    dev = model.head_weight().device
    ids, labels, mask, seg = (None if t is None else t.to(dev) for t in (ids, labels, mask, seg))
    with lora.use_adapter(model, adapter, 2.0, segments=seg):
        if weighting == "example":
            loss = model.loss(ids, labels, mask, reduction="per_example", segments=seg).mean()
        else:
            loss = model.loss(ids, labels, mask, segments=seg)
    loss.backward()
    return loss.detach(), [t.grad.clone() for t in leaves]


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_equals_padded(tiny_dirs, family):
    """Lengths longer than the tiny models' sliding window (5) and rows holding several examples,
    so the block-diagonal mask, the per-example positions and the window all matter."""
    _, folder = tiny_dirs[family]
    model = load_pretrained(folder, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    lcfg = lora.LoraConfig(r=4, target_modules=list(lora.ALL_TARGETS))
    lora.inject(model, lcfg)
    enc = examples([11, 4, 17, 7, 9], answer=3, seed=1)
    per_example, shared = random_adapters(model, lcfg, len(enc))
    # attention by span (no mask) and through the block-diagonal mask; rows of 24 slots, and one row
    # holding everything (what train_sft.py packs when the model attends by span); the spans also
    # through activation checkpointing (--grad-checkpoint passes them to the recomputed blocks)
    for by_span, capacity, recompute in ((True, 24, False), (True, None, False), (False, 24, False), (True, None, True)):
        model.attend_by_span, model.grad_checkpoint = by_span, recompute
        for adapter in (per_example, shared):
            for weighting in ("example", "token"):
                padded, g_pad = losses_and_grads(model, enc, adapter, False, weighting, capacity)
                packed, g_pack = losses_and_grads(model, enc, adapter, True, weighting, capacity)
                torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
                for a, b in zip(g_pack, g_pad):
                    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_more_examples_than_adapters_is_refused(tiny_dirs):
    _, folder = tiny_dirs["llama"]
    model = load_pretrained(folder, dtype=torch.float32)
    lcfg = lora.LoraConfig(r=2)
    lora.inject(model, lcfg)
    adapter = {name: (torch.zeros(2, 2, d_in), torch.zeros(2, d_out, 2)) for name, (d_in, d_out) in lora.module_shapes(model, lcfg).items()}
    _, _, seg = fmt.pack(examples([3, 3, 3], answer=1), 0, 8)
    with pytest.raises(lora.LoraError, match="3 examples but the adapter 2"):
        lora.set_adapter(model, adapter, 1.0, segments=seg)


def test_a_run_from_before_packing_resumes_padded_only(monkeypatch):
    """A checkpoint written before --pack existed trained padded: resuming an SNI run with the
    reference recipe, which now packs, would change its random draws, so --resume asks for
    --no-pack, and accepts it."""
    import checkpoint
    import train_sft
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU's defaults (a GPU pads: test_fidelity.py)
    old = dataclasses.asdict(train_sft.parse_args(["--data", "sni", "--no-pack"]))
    del old["pack"]
    state = {"config": old, "step": 3}
    with pytest.raises(checkpoint.CheckpointError, match="--pack: False in the run, True now"):
        checkpoint.check_resume(state, train_sft.parse_args(["--data", "sni"]), "ckpt.pt")
    checkpoint.check_resume(state, train_sft.parse_args(["--data", "sni", "--no-pack"]), "ckpt.pt")
    assert train_sft.parse_args([]).pack is False  # the main recipe pads: packing gains nothing there
    assert train_sft.parse_args(["--recipe", "main", "--data", "sni"]).pack is True  # ... but on SNI it does
    assert train_sft.parse_args(["--recipe", "main", "--data", "sni", "--no-pack"]).pack is False


@pytest.mark.parametrize("family", FAMILIES)
def test_the_roofline_counts_every_multiply_of_a_packed_t2l_step(tiny_dirs, family):
    """bench/bench_pack.py's FLOP count (useful_flops + hyper_flops) is what a packed T2L-S step
    really multiplies, by torch's own counter: given the rank n*r that lora_delta_routed runs (the
    other examples' columns are multiplied by zero), the two agree exactly. Attention is left out of
    both (the CPU's fused kernel is not counted, nor Gemma-2's bmm by hand); everything else,
    layer 0's skipped input gradients and the head at the answer positions only, must add up."""
    import t2l
    from torch.utils.flop_counter import FlopCounterMode
    from bench.bench_pack import attention_flops, hyper_flops, useful_flops

    model = load_pretrained(tiny_dirs[family][1], dtype=torch.float32).requires_grad_(False)
    lcfg = lora.LoraConfig(r=4)  # q_proj and v_proj, as the bench
    lora.inject(model, lcfg)
    model.attend_by_span = True
    enc = examples([11, 4, 17, 7, 9], answer=3, seed=2)
    net = t2l.HyperNetwork(t2l.T2LConfig.for_base(model.config, variant="S", rank=4, d_task=16, latent=16, head_in=32, dropout=0.0))
    emb = torch.randn(len(enc), 16)
    hyper = hyper_flops(net, emb)
    ids, labels, seg = fmt.pack(enc, 0, None)
    with FlopCounterMode(display=False) as counter:
        with lora.use_adapter(model, net(emb), lcfg.scaling, segments=seg):
            model.loss(ids, labels, reduction="per_example", segments=seg).mean().backward()
    counted = sum(v for k, v in counter.get_flop_counts()["Global"].items() if str(k) in ("aten.mm", "aten.addmm"))
    c = model.config
    attention = sum(attention_flops(c, len(x)) for x, _ in enc)
    as_run = dataclasses.replace(lcfg, r=lcfg.r * len(enc))  # the one-hot routing's rank n*r
    assert counted == useful_flops(c, enc, as_run, hyper) - attention
    assert hyper > 0 and useful_flops(c, enc, lcfg, hyper) < useful_flops(c, enc, as_run, hyper)
    with pytest.raises(ValueError, match="q, k or v"):  # o_proj alone: autograd skips more of layer 0 than the count knows
        useful_flops(c, enc, lora.LoraConfig(r=4, target_modules=["o_proj"]))
