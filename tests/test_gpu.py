"""On a CUDA GPU (skipped without one; CI has none, `bench/gpu.sh` runs this file on a lent one):
the CPU tests' two exactness checks, on the device where the paper's runs happen.
  - model.py reproduces transformers' logits for every family, with padding (test_model_parity.py);
  - packed batches give the padded losses and gradients, both attention paths, per-example and
    shared adapters, both loss weightings (test_pack.py).
fp32 on both sides. The CPU tests hold 1e-4 (logits) and 1e-5 (losses); on the GPU the two sides
may pick different SDPA kernels (a masked padded batch and an unmasked span do), which sum in
different orders, so both checks hold 1e-4 here."""
import copy

import pytest
import torch

import lora
from conftest import FAMILIES, VOCAB
from model import load_pretrained
from test_model_parity import hf_logits
from test_pack import examples, losses_and_grads, random_adapters

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(autouse=True)
def exact_fp32_matmuls():
    """No TF32 (10-bit mantissa) inside fp32 matmuls, whatever the machine's default."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_on_cuda(family, tiny_dirs):
    hf, d = tiny_dirs[family]
    hf = copy.deepcopy(hf).to("cuda")  # the session's CPU copy stays as the CPU tests need it
    ours = load_pretrained(d, device="cuda")
    torch.manual_seed(2)
    ids = torch.randint(3, VOCAB, (3, 20), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :6] = 0  # left padded
    mask[1, 15:] = 0  # right padded
    ref, got = hf_logits(hf, ids, mask), ours(ids, mask)
    keep = mask.bool()
    assert got.is_cuda and torch.isfinite(got).all()
    assert (got[keep] - ref[keep]).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_equals_padded_on_cuda(family, tiny_dirs):
    _, folder = tiny_dirs[family]
    model = load_pretrained(folder, device="cuda").requires_grad_(False)
    lcfg = lora.LoraConfig(r=4, target_modules=list(lora.ALL_TARGETS))
    lora.inject(model, lcfg)
    enc = examples([11, 4, 17, 7, 9], answer=3, seed=1)
    per_example, shared = random_adapters(model, lcfg, len(enc), device="cuda")
    for by_span, capacity in ((True, None), (False, 24)):  # train_sft.py's CPU layout, and its GPU one
        model.attend_by_span = by_span
        for adapter in (per_example, shared):
            for weighting in ("example", "token"):
                padded, g_pad = losses_and_grads(model, enc, adapter, False, weighting, capacity)
                packed, g_pack = losses_and_grads(model, enc, adapter, True, weighting, capacity)
                assert padded.is_cuda
                torch.testing.assert_close(packed, padded, atol=1e-4, rtol=1e-4)
                for a, b in zip(g_pack, g_pad):
                    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
