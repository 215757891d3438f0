"""The memory savers change nothing but memory: activation checkpointing per block and the
cross-entropy in chunks give the same loss and the same gradients as the plain path (fp32,
<= 1e-5), on tiny models of every family, with per-example LoRAs and LoRA dropout on."""
import pytest
import torch

import lora
from model import load_pretrained
from conftest import FAMILIES


def loss_and_grads(model, ids, labels, adapter, reduction, ckpt, chunk, seed=0):
    model.grad_checkpoint, model.ce_chunk = ckpt, chunk
    leaves = [t for ab in adapter.values() for t in ab]
    for t in leaves:
        t.grad = None
    torch.manual_seed(seed)  # the LoRA dropout masks: the recomputation must draw the same ones
    with lora.use_adapter(model, adapter, 2.0, dropout=0.1):
        loss = model.loss(ids, labels, reduction=reduction, label_smoothing=0.1)
        loss = loss.mean() if loss.dim() else loss
    loss.backward()  # after the adapter was cleared: the recomputation must still see it
    return loss.detach(), [t.grad.clone() for t in leaves]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("reduction", ["mean", "per_example", "sum"])
def test_checkpointing_and_chunked_cross_entropy_change_nothing(tiny_dirs, family, reduction):
    model = load_pretrained(tiny_dirs[family][1])
    cfg = lora.LoraConfig(r=4, target_modules=list(lora.ALL_TARGETS))
    lora.inject(model, cfg)
    g = torch.Generator().manual_seed(1)
    B, T = 3, 12
    adapter = {n: (torch.randn(B, 4, i, generator=g).mul_(0.1).requires_grad_(),
                   torch.randn(B, o, 4, generator=g).mul_(0.1).requires_grad_())
               for n, (i, o) in lora.module_shapes(model, cfg).items()}
    ids = torch.randint(3, 128, (B, T), generator=g)
    labels = torch.full_like(ids, -100)
    labels[0, 8:], labels[1, 3:], labels[2, 10:] = ids[0, 8:], ids[1, 3:], ids[2, 10:]  # answers of 4, 9, 2 tokens
    ref_loss, ref_grads = loss_and_grads(model, ids, labels, adapter, reduction, False, 0)
    for ckpt, chunk in ((True, 0), (False, 3), (True, 5)):
        loss, grads = loss_and_grads(model, ids, labels, adapter, reduction, ckpt, chunk)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in ref_grads)


def test_checkpointing_really_recomputes(tiny_dirs):
    """The flag is not a no-op: with it, every block runs twice per training step."""
    model = load_pretrained(tiny_dirs["llama"][1])
    calls = []
    # a pre-hook: the recomputation stops early, inside the MLP, once it has what the backward needs
    model.model.layers[0].mlp.register_forward_pre_hook(lambda *a: calls.append(1))
    emb = model.model.embed_tokens.weight
    emb.requires_grad_(True)
    ids = torch.randint(3, 128, (2, 6))
    for flag, want in ((False, 1), (True, 2)):
        calls.clear()
        model.grad_checkpoint = flag
        model.loss(ids, ids).backward()
        assert len(calls) == want
    emb.requires_grad_(False)
