"""Grades assignment 4: train_recon.recon_loss (eq. (4)), each --loss against its definition in
train_recon.py's docstring, computed here with dense Delta W = B A."""
import pytest
import torch

import train_recon

D = {"q": (12, 12), "v": (12, 6), "up": (12, 20)}  # module: (d_in, d_out)


def library(n, r=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(n, r, i, generator=g), torch.randn(n, o, r, generator=g)) for k, (i, o) in D.items()}


@pytest.mark.parametrize("loss", ["delta", "delta_l2", "ab"])
def test_each_loss_is_its_definition(loss):
    target = library(6)
    idx = torch.tensor([4, 0, 2])
    gen = {k: (A[idx] + 0.3 * torch.randn_like(A[idx]), B[idx] + 0.3 * torch.randn_like(B[idx])) for k, (A, B) in target.items()}
    stats = train_recon.loss_stats(loss, target)
    want = 0.0
    for k, (A, B) in gen.items():
        tA, tB = target[k][0][idx], target[k][1][idx]
        diff = B @ A - tB @ tA  # (n, d_out, d_in)
        if loss == "delta":  # mean |Delta W - Delta W_lib| over every element, in units of the library's mean |Delta W|
            want += diff.abs().mean() / stats["scale"]
        elif loss == "delta_l2":  # each adapter's squared Frobenius error, averaged, in units of the mean ||Delta W||^2
            want += (diff ** 2).sum((1, 2)).mean() / stats["scale"]
        else:  # L1 on A and B, each element standardised by the library's mean and std
            mA, sA, mB, sB = stats[k]
            want += ((A - tA) / sA).abs().mean() + ((B - tB) / sB).abs().mean()
    got = train_recon.recon_loss(gen, target, idx, train_recon.ReconConfig(loss=loss), stats)
    torch.testing.assert_close(got, want / len(gen), rtol=1e-4, atol=1e-6)
    assert train_recon.recon_loss({k: (target[k][0][idx], target[k][1][idx]) for k in D}, target, idx, train_recon.ReconConfig(loss=loss), stats) \
        == pytest.approx(0.0, abs=1e-5)  # the library's own adapters: no loss
