"""The memory savers change nothing but memory: activation checkpointing per block, the
cross-entropy of a trained head in chunks, and the frozen head's fused cross-entropy
(model.head_cross_entropy, which never holds the logits) give the same loss and the same
gradients as the plain path (fp32, <= 1e-5), on tiny models of every family, with per-example
LoRAs and LoRA dropout on."""
import pytest
import torch
import torch.nn.functional as F

import lora
import model as model_py
from model import head_cross_entropy, load_pretrained
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
def test_memory_savers_and_the_fused_head_change_nothing(tiny_dirs, family, reduction):
    model = load_pretrained(tiny_dirs[family][1]).requires_grad_(True)  # a trained head: the plain cross-entropy
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
    runs = [(True, 0, False), (False, 3, False), (True, 5, False), (False, 0, True), (True, 0, True)]
    for ckpt, chunk, frozen in runs:  # frozen: the base untrained, as in LoRA and T2L training: the fused head
        model.requires_grad_(not frozen)
        loss, grads = loss_and_grads(model, ids, labels, adapter, reduction, ckpt, chunk)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in ref_grads)


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_fused_head_is_cross_entropy_on_the_logits(monkeypatch, softcap, eps):
    """head_cross_entropy against F.cross_entropy on the materialised logits: losses and d/dh in
    fp32, vocabulary slices that do not divide the vocabulary (targets in the last, short one),
    per-token incoming gradients, and the no-gradient path."""
    monkeypatch.setattr(model_py, "HEAD_CHUNK", 7 * 256)  # 7 tokens -> slices of 256 of a 1000-word vocabulary
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 16, generator=g, requires_grad=True)
    W = torch.randn(1000, 16, generator=g)
    y = torch.tensor([0, 999, 998, 256, 255, 511, 768])
    up = torch.rand(7, generator=g)  # d total / d loss of each token, as a per-example mean gives
    z = h @ W.t()
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    ref = F.cross_entropy(z, y, reduction="none", label_smoothing=eps)
    ref_grad, = torch.autograd.grad((ref * up).sum(), h)
    out = head_cross_entropy(h, W, y, eps, softcap)
    grad, = torch.autograd.grad((out * up).sum(), h)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(head_cross_entropy(h, W, y, eps, softcap), ref.detach(), rtol=1e-6, atol=1e-5)
    assert head_cross_entropy(h[:0], W, y[:0], eps, softcap).shape == (0,)
    with pytest.raises(ValueError, match="target ids"):
        head_cross_entropy(h, W, torch.tensor([0, 1, 2, 3, 4, 5, 1000]), eps, softcap)
    with pytest.raises(ValueError, match="trained head"):  # no silent zero gradient for a trained head
        head_cross_entropy(h, W.requires_grad_(), y, eps, softcap)


def test_fused_head_in_bf16_follows_the_fp32_loss():
    """bf16 weights and hidden states (a GPU's default): the logits are rounded to bf16 as the
    plain path rounds them, everything after in fp32."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(9, 32, generator=g)
    W = torch.randn(3000, 32, generator=g) * 0.3
    y = torch.randint(0, 3000, (9,), generator=g)
    hb = h.bfloat16().requires_grad_()
    out = head_cross_entropy(hb, W.bfloat16(), y, 0.1, 30.0)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert hb.grad.dtype == torch.bfloat16
    plain = hb.detach().requires_grad_()
    ref = F.cross_entropy((30.0 * torch.tanh((plain @ W.bfloat16().t()) / 30.0)).float(), y, reduction="none", label_smoothing=0.1)
    ref.sum().backward()
    torch.testing.assert_close(out, ref.detach(), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(hb.grad.float(), plain.grad.float(), rtol=2e-2, atol=2e-2)


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
