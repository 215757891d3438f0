"""Grades assignment 3: HyperNetwork.forward (eq. (3)) must give, for every description, module
type and layer, what the same network gives run on that one row alone through its own parts
(phi and the trunk, head_inputs, the head), with the head's output laid out as A then B."""
import pytest
import torch

import lora
import t2l
from model import ModelConfig

# A base small enough to run each row alone: q (24 -> 24), v (24 -> 12: d_out < d_in),
# up (24 -> 40: d_out > d_in), down (40 -> 24), 3 layers.
BASE = ModelConfig.from_dict({"model_type": "llama", "vocab_size": 50, "hidden_size": 24, "intermediate_size": 40,
                                "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1})
TARGETS = ["q_proj", "v_proj", "up_proj", "down_proj"]


def one_row(net, emb, t, layer):
    """A (r, d_in), B (d_out, r) for ONE description emb (d_task,), module type t and layer."""
    cfg, r = net.cfg, net.cfg.rank
    d_in, d_out = cfg.module_dims[t]
    if cfg.center:
        emb = emb - net.emb_mean
    z = net.trunk(emb[None], torch.tensor([layer]), torch.tensor([cfg.targets.index(t)]))  # (1, D)
    out = net.heads[t](net.head_inputs(z[None], t))[0, 0]  # L: (r*(d_in+d_out),); M: (2, r*max); S: (2, r, max)
    if cfg.variant == "L":
        A, B = out[: r * d_in].reshape(r, d_in), out[r * d_in:].reshape(d_out, r)
    else:
        out = out.reshape(2, r, max(d_in, d_out))
        A, B = out[0, :, :d_in], out[1, :, :d_out].T
    return A + net.offsets[t], B


@pytest.mark.parametrize("variant", ["L", "M", "S"])
@pytest.mark.parametrize("center", [False, True])
def test_forward_is_every_row_alone(variant, center):
    torch.manual_seed(0)
    cfg = t2l.T2LConfig.for_base(BASE, variant=variant, d_task=10, latent=16, head_in=32, rank=3, targets=TARGETS, center=center)
    net = t2l.HyperNetwork(cfg)
    with torch.no_grad():  # weight everywhere (the heads start at zero), so that every part shows in the output
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        if center:
            net.set_center(torch.randn(7, 10))
    net.eval()  # no dropout
    emb = torch.randn(4, 10)
    adapter = net(emb)
    assert set(adapter) == {lora.module_name(li, t) for li in range(3) for t in TARGETS}
    for t in TARGETS:
        d_in, d_out = cfg.module_dims[t]
        for li in range(3):
            A, B = adapter[lora.module_name(li, t)]
            assert A.shape == (4, 3, d_in) and B.shape == (4, d_out, 3), (t, li)
            for i in range(4):
                want_A, want_B = one_row(net, emb[i], t, li)
                torch.testing.assert_close(A[i], want_A, rtol=1e-4, atol=1e-5, msg=f"A of {t}, layer {li}, description {i}")
                torch.testing.assert_close(B[i], want_B, rtol=1e-4, atol=1e-5, msg=f"B of {t}, layer {li}, description {i}")


def test_gradients_reach_the_hypernetwork():
    """SFT and reconstruction train through the adapter: every part of the network must get a gradient."""
    cfg = t2l.T2LConfig.for_base(BASE, variant="S", d_task=10, latent=16, head_in=32, rank=3, targets=TARGETS)
    net = t2l.HyperNetwork(cfg).eval()
    with torch.no_grad():  # non-zero heads: at init (zero heads) nothing flows back into the trunk
        for head in net.heads.values():
            head.weight.normal_(0, 0.1)
    sum(A.sum() + B.sum() for A, B in net(torch.randn(2, 10)).values()).backward()
    for name in ("task_proj.0.weight", "layer_emb.0.weight", "module_emb.0.weight", "heads.q_proj.weight", "offsets.v_proj"):
        assert net.get_parameter(name).grad is not None and net.get_parameter(name).grad.abs().sum() > 0, name
