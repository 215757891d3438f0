"""The two training objectives, checked by hand and fast (no training run): train_sft.sft_loss, the
answer cross-entropy of eq. (5) with label smoothing and its two weightings, and train_recon.recon_loss,
eq. (4) and its two variants, on hand-made A and B."""
import pytest
import torch

from model import load_pretrained
from train_recon import ReconConfig, recon_loss
from train_sft import TrainConfig, sft_loss

EPS = 0.1  # the reference's label smoothing


# -----------------------------------------------------------------------------
# eq. (5): train_sft.sft_loss on a tiny random model


@pytest.fixture(scope="module")
def batch(tiny_dirs):
    """Three examples with answers of 2, 5 and 3 tokens; the third right-padded (mask 0, label -100)."""
    model = load_pretrained(tiny_dirs["qwen2"][1])
    ids = torch.randint(3, 100, (3, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    labels = torch.full_like(ids, -100)
    answers = [range(6, 8), range(3, 8), range(2, 5)]
    for b, span in enumerate(answers):
        labels[b, list(span)] = ids[b, list(span)]
    with torch.no_grad():
        lp = torch.log_softmax(model(ids, attention_mask=mask), -1)  # (3, 8, vocab)
    # token t is predicted from position t - 1; label smoothing spreads EPS uniformly over the vocabulary
    per_token = [[(1 - EPS) * -lp[b, t - 1, ids[b, t]] - EPS * lp[b, t - 1].mean() for t in span]
                 for b, span in enumerate(answers)]
    return model, ids, labels, mask, per_token


def test_sft_loss_example_weighting_is_the_mean_of_each_examples_smoothed_mean(batch):
    model, ids, labels, mask, per_token = batch
    by_hand = sum(sum(tok) / len(tok) for tok in per_token) / len(per_token)
    with torch.no_grad():
        got = sft_loss(model, ids, labels, mask, TrainConfig(label_smoothing=EPS, loss_weighting="example"))
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-5)
    token_mean = sum(sum(tok) for tok in per_token) / sum(len(tok) for tok in per_token)
    assert abs(by_hand - token_mean) > 1e-3  # the two weightings really differ on this batch


def test_sft_loss_token_weighting_and_its_slices_add_up_to_the_global_mean(batch):
    """"token": one mean over every answer token; a process holding a slice of the batch divides its sum
    by the global count (n_tokens), so the slices' losses add up to the whole batch's (one process here)."""
    model, ids, labels, mask, per_token = batch
    n = sum(len(tok) for tok in per_token)
    token_mean = sum(sum(tok) for tok in per_token) / n
    cfg = TrainConfig(label_smoothing=EPS, loss_weighting="token")
    with torch.no_grad():
        whole = sft_loss(model, ids, labels, mask, cfg)
        sliced = sft_loss(model, ids[:1], labels[:1], mask[:1], cfg, n_tokens=n) + \
            sft_loss(model, ids[1:], labels[1:], mask[1:], cfg, n_tokens=n)
    torch.testing.assert_close(whole, token_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sliced, token_mean, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighting", ["example", "token"])
def test_sft_loss_of_a_packed_batch_is_the_padded_batchs(batch, weighting):
    """--pack: the three examples end to end in one row (segments = each slot's example). Both
    weightings must still count examples, not rows, and give the hand-computed loss."""
    from data import format as fmt
    model, ids, labels, mask, per_token = batch
    enc = [(ids[b][mask[b].bool()].tolist(), labels[b][mask[b].bool()].tolist()) for b in range(3)]
    p_ids, p_labels, segments = fmt.pack(enc, 0, 32)
    assert p_ids.shape[0] == 1  # one row: the packed path is really taken
    by_hand = (sum(sum(tok) / len(tok) for tok in per_token) / len(per_token) if weighting == "example"
               else sum(sum(tok) for tok in per_token) / sum(len(tok) for tok in per_token))
    with torch.no_grad():
        got = sft_loss(model, p_ids, p_labels, None, TrainConfig(label_smoothing=EPS, loss_weighting=weighting), segments=segments)
    torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-5)


# -----------------------------------------------------------------------------
# eq. (4): train_recon.recon_loss on hand-made adapters


def test_recon_loss_on_one_hand_made_adapter_is_the_l1_of_delta_w():
    """r = 1, a 2 x 2 weight: Delta W = B A written out.
    generated B A = [[2, 0], [1, 0]], library B A = [[0, 1], [0, 1]], difference [[2, -1], [1, -1]]."""
    gen = {"m": (torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[2.0], [1.0]]]))}  # A (n=1, r, d_in), B (n, d_out, r)
    # a library of two adapters; idx picks the second, so reading the first would give another number
    lib = {"m": (torch.tensor([[[5.0, 5.0]], [[0.0, 1.0]]]), torch.tensor([[[1.0], [3.0]], [[1.0], [1.0]]]))}
    idx = torch.tensor([1])
    got = recon_loss(gen, lib, idx, ReconConfig(loss="delta"), {"scale": 0.5})
    assert got.item() == pytest.approx((2 + 1 + 1 + 1) / 4 / 0.5)  # mean |difference|, in units of the scale
    got = recon_loss(gen, lib, idx, ReconConfig(loss="delta_l2"), {"scale": 0.5})
    assert got.item() == pytest.approx((4 + 1 + 1 + 1) / 0.5)  # squared Frobenius norm, in units of the scale
    # ab: L1 on A and B, each standardised by the library's mean and std (given here): |A - tA| / sA, |B - tB| / sB
    stats = {"m": (torch.tensor([[9.0, 9.0]]), torch.tensor([[2.0, 2.0]]), torch.tensor([[9.0], [9.0]]), torch.tensor([[0.5], [0.5]]))}
    got = recon_loss(gen, lib, idx, ReconConfig(loss="ab"), stats)
    assert got.item() == pytest.approx((1 + 1) / 2 / 2 + (1 + 0) / 2 / 0.5)


def test_recon_loss_is_the_mean_over_modules_of_the_dense_l1_and_has_gradients():
    """Several modules of other shapes and a batch of library indices: the dense Delta W by element."""
    g = torch.Generator().manual_seed(0)
    shapes = {"q": (6, 6), "v": (6, 3), "up": (4, 9)}  # module: (d_in, d_out)
    r, n_lib = 2, 5
    lib = {k: (torch.randn(n_lib, r, i, generator=g), torch.randn(n_lib, o, r, generator=g)) for k, (i, o) in shapes.items()}
    idx = torch.tensor([3, 0, 3])
    gen = {k: (torch.randn(3, r, i, generator=g, requires_grad=True), torch.randn(3, o, r, generator=g, requires_grad=True))
           for k, (i, o) in shapes.items()}
    want = 0.0
    for k, (d_in, d_out) in shapes.items():
        (A, B), (tA, tB) = gen[k], lib[k]
        err = 0.0
        for e, j in enumerate(idx.tolist()):
            for o in range(d_out):
                for i in range(d_in):
                    err += abs(sum(B[e, o, s] * A[e, s, i] - tB[j, o, s] * tA[j, s, i] for s in range(r)).item())
        want += err / (len(idx) * d_out * d_in) / 1.7
    got = recon_loss(gen, lib, idx, ReconConfig(loss="delta"), {"scale": 1.7})
    assert got.item() == pytest.approx(want / len(shapes), rel=1e-5)
    got.backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for A, B in gen.values() for t in (A, B))
    same = {k: (lib[k][0][idx], lib[k][1][idx]) for k in shapes}
    assert recon_loss(same, lib, idx, ReconConfig(loss="delta"), {"scale": 1.7}).item() == pytest.approx(0.0, abs=1e-6)
