"""t2l.py: the hypernetwork's init, sizes, shapes, training signal, CLI and errors."""
import json

import pytest
import torch

import lora
import t2l
import train_sft
from model import ModelConfig, load_pretrained
from conftest import FAMILIES

ALL = list(lora.ALL_TARGETS)


def tiny_cfg(tiny_dirs, family="mistral"):
    return ModelConfig.from_json(tiny_dirs[family][1] / "config.json")


def perturb(net, scale=0.05, seed=0):
    """Give the zero-initialised heads some weight so that Delta W != 0 (a 'trained' hypernetwork)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return net


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_delta_w_is_exactly_zero_at_init(tiny_dirs, variant):
    mcfg = tiny_cfg(tiny_dirs)
    cfg = t2l.T2LConfig.for_base(mcfg, variant=variant, d_task=16, latent=32, head_in=64, rank=4, targets=ALL)
    # gate_proj / up_proj have d_out (96) > d_in (48); o_proj has d_in (64) > d_out (48)
    assert cfg.module_dims["gate_proj"] == [48, 96] and cfg.module_dims["o_proj"] == [64, 48]
    net = t2l.HyperNetwork(cfg)
    adapter = net(torch.randn(3, 16))
    for name, (A, B) in adapter.items():
        assert torch.count_nonzero(B @ A) == 0, name  # exactly zero, every variant, every module type
        assert torch.count_nonzero(A) == A.numel(), name  # A itself is a normal LoRA init, not zero


@pytest.mark.parametrize("family", FAMILIES)
def test_for_base_sizes_every_target_as_the_model_has_it(tiny_dirs, family):
    """Every tiny model has head_dim != hidden / heads (4 query heads and 2 KV heads of 16 for a width
    of 48), as Gemma-2/3 and Qwen3 do: the hypernetwork's heads must be sized from head_dim, from the
    config alone, exactly as the model's own Linears are."""
    model = load_pretrained(tiny_dirs[family][1])
    cfg = t2l.T2LConfig.for_base(model.config, variant="L", d_task=16, latent=32, head_in=64, rank=4, targets=ALL)
    for t in ALL:
        lin = model.get_submodule(lora.module_name(0, t))
        assert cfg.module_dims[t] == [lin.in_features, lin.out_features], t
    assert cfg.module_dims["q_proj"] == [48, 64] and cfg.module_dims["v_proj"] == [48, 32]
    adapter = t2l.HyperNetwork(cfg)(torch.randn(2, 16))
    lora.check_adapter(model, {n: (A[0], B[0]) for n, (A, B) in adapter.items()})  # fits, module by module


def mistral_7b_config(tmp_path):
    cfg = {"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000, "rms_norm_eps": 1e-5,
           "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": False}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("variant,reference", [("L", 55.4e6), ("M", 34.4e6), ("S", 5.0e6)])
def test_mistral_7b_parameter_counts_match_the_reference(tmp_path, capsys, variant, reference):
    path = mistral_7b_config(tmp_path)
    t2l.main(["--count-params", "--base-config", str(path), "--variant", variant, "--d-task", "1024"])
    out = capsys.readouterr().out
    n = int(out.split(": ")[1].split(" parameters")[0].replace(",", ""))
    assert abs(n - reference) / reference < 0.02, out
    cfg = t2l.T2LConfig.for_base(ModelConfig.from_json(path), variant=variant, d_task=1024)
    assert t2l.n_params(t2l.HyperNetwork(cfg)) == n


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_one_pass_gives_every_layer_and_module_for_every_description(tiny_dirs, variant):
    mcfg = tiny_cfg(tiny_dirs, "llama")
    cfg = t2l.T2LConfig.for_base(mcfg, variant=variant, d_task=16, latent=32, head_in=64, rank=4, targets=["q_proj", "v_proj", "down_proj"])
    net = perturb(t2l.HyperNetwork(cfg)).eval()  # no dropout: row i must not depend on its neighbours
    emb = torch.randn(5, 16)
    adapter = net(emb)
    shapes = lora.module_shapes(mcfg, cfg.lora_config())
    assert set(adapter) == set(shapes) and len(adapter) == 3 * mcfg.num_hidden_layers
    for name, (A, B) in adapter.items():
        d_in, d_out = shapes[name]
        assert A.shape == (5, 4, d_in) and B.shape == (5, d_out, 4), name
    # row i of the batch is the adapter of description i alone
    one = net(emb[2:3])
    for name in adapter:
        torch.testing.assert_close(adapter[name][1][2], one[name][1][0], rtol=1e-5, atol=1e-6)
    # different descriptions, different adapters
    A0, B0 = adapter["model.layers.0.self_attn.q_proj"]
    assert not torch.allclose(B0[0] @ A0[0], B0[1] @ A0[1])


def synthetic_batch(rng, n_tasks, B, T, vocab):
    """Task k: whatever the prompt, answer with task k's own 4 tokens. Labels only on the answer."""
    tasks = torch.randint(0, n_tasks, (B,), generator=rng)
    prompt = torch.randint(3, vocab, (B, T), generator=rng)
    ans = (3 + 4 * tasks[:, None] + torch.arange(4)) % vocab  # (B, 4)
    ids = torch.cat([prompt, ans], 1)  # (B, T + 4)
    labels = torch.cat([torch.full_like(prompt, -100), ans], 1)
    return tasks, ids, labels, torch.ones_like(ids)


@pytest.fixture(scope="module")
def plain_tiny_llama(tmp_path_factory):
    """A tiny llama with transformers' own small init (std 0.02): near-uniform logits that an
    adapter can move (the parity models' scaled-up weights make the loss a steep landscape)."""
    import transformers as tf
    from conftest import tiny_hf_config
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(tiny_hf_config("llama"))
    d = tmp_path_factory.mktemp("plain_tiny_llama")
    hf.save_pretrained(d, safe_serialization=True)
    return d


@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_sft_steps_on_a_tiny_model_reduce_the_loss_and_touch_only_the_hypernetwork(plain_tiny_llama, variant):
    model = load_pretrained(plain_tiny_llama)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = train_sft.TrainConfig(variant=variant, reg_ab=1e-3, label_smoothing=0.0)
    lcfg = lora.LoraConfig(r=4, target_modules=ALL)
    lora.inject(model, lcfg)
    torch.manual_seed(0)
    hcfg = t2l.T2LConfig.for_base(model.config, variant=variant, d_task=8, latent=32, head_in=64, rank=4, targets=lcfg.target_modules)
    net = t2l.HyperNetwork(hcfg).train()
    task_emb = torch.randn(4, 8)  # 4 tasks, fixed embeddings
    # lr 1e-3: at 3e-3 the S variant's loss wandered (-4% on one CPU, -0.7% on another); at 1e-3
    # every variant descends steadily on both
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(0)
    held = synthetic_batch(torch.Generator().manual_seed(123), 4, 16, 6, model.config.vocab_size)  # unseen prompts

    def held_out_loss():  # the same 16 examples every time, dropout off: no sampling noise
        net.eval()
        with torch.no_grad(), lora.use_adapter(model, net(task_emb[held[0]]), lcfg.scaling):
            out = train_sft.sft_loss(model, *held[1:], cfg).item()
        net.train()
        return out
    start = held_out_loss()
    losses = []
    for step in range(60):
        tasks, ids, labels, mask = synthetic_batch(rng, 4, 8, 6, model.config.vocab_size)
        adapter = net(task_emb[tasks])  # one adapter per example (eq. (3))
        with lora.use_adapter(model, adapter, lcfg.scaling):
            sft = train_sft.sft_loss(model, ids, labels, mask, cfg)  # eq. (5)
        loss = sft + cfg.reg_ab * train_sft.l2_ab(adapter, lcfg.target_modules)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            assert all(p.grad is None for p in model.parameters())  # nothing flows into the frozen LLM
            assert net.heads["q_proj"].weight.grad.abs().sum() > 0  # ... and the hypernetwork learns
            assert net.task_proj[0].weight.grad is not None
        opt.step()
        losses.append(sft.item())
    # measured over 60 steps (the reference's trunk, dropout 0.05), training / held-out loss:
    # L -16% / -17%, M -14% / -16%, S -12% / -13% (Intel Xeon, 2026-12-05)
    assert sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5, losses
    assert held_out_loss() < 0.93 * start, (start, held_out_loss())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cli_adapter_loads_in_peft_with_the_same_logits(tmp_path, tiny_dirs):
    import peft
    hf, folder = tiny_dirs["llama"]
    model = load_pretrained(folder)
    hcfg = t2l.T2LConfig.for_base(model.config, variant="M", d_task=384, latent=32, head_in=64, rank=4, alpha=8.0,
                                targets=["q_proj", "v_proj", "gate_proj"])
    ckpt = t2l.save(perturb(t2l.HyperNetwork(hcfg), 0.02), tmp_path / "ckpt")
    desc = "Reverse the order of the words in the sentence."
    t2l.main(["--checkpoint", str(ckpt), "--description", desc, "--out", str(tmp_path / "adapter")])
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8.0 and cfg["target_modules"] == ["q_proj", "v_proj", "gate_proj"]

    net, enc = t2l.load(ckpt), t2l.TaskEncoder()
    adapter = t2l.adapter_for(net, enc, desc)
    ids = torch.randint(3, 128, (2, 9))
    lora.inject(model, hcfg.lora_config())
    with torch.no_grad(), lora.use_adapter(model, adapter, hcfg.lora_config().scaling):
        ours = model(ids)
    with torch.no_grad():
        plain = model(ids)
        theirs = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()(ids).logits
    assert (ours - plain).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_bad_inputs_give_one_line_errors(tmp_path, tiny_dirs, default_model_dir):
    enc = t2l.TaskEncoder()
    with pytest.raises(t2l.T2LError, match="description is empty"):
        enc(["   "])
    with pytest.raises(t2l.T2LError, match="not a sentence-transformers model folder"):
        t2l.TaskEncoder(tmp_path / "no_encoder_here")
    # a checkpoint made for the tiny llama, applied to SmolLM2
    hcfg = t2l.T2LConfig.for_base(tiny_cfg(tiny_dirs, "llama"), variant="S", d_task=384, latent=32, head_in=64)
    ckpt = t2l.save(t2l.HyperNetwork(hcfg), tmp_path / "ckpt")
    for argv, msg in [
        (["--checkpoint", str(ckpt), "--description", "", "--out", str(tmp_path / "a")], "description is empty"),
        (["--checkpoint", str(ckpt), "--description", "Sort the list.", "--prompt", "3, 1, 2"], "made for base model"),
        (["--checkpoint", str(tmp_path / "missing"), "--description", "Sort the list.", "--out", str(tmp_path / "a")], "not found"),
        (["--checkpoint", str(ckpt), "--description", "Sort.", "--out", str(tmp_path / "a"), "--encoder", str(tmp_path / "nope")],
         "not a sentence-transformers model folder"),
    ]:
        with pytest.raises(SystemExit) as e:
            t2l.main(argv)
        text = str(e.value)
        assert msg in text and "\n" not in text, text


def test_checkpoint_with_a_wrong_tensor_shape_is_refused(tmp_path, tiny_dirs):
    from safetensors.torch import load_file, save_file
    hcfg = t2l.T2LConfig.for_base(tiny_cfg(tiny_dirs), variant="L", d_task=16, latent=32, head_in=64)
    ckpt = t2l.save(t2l.HyperNetwork(hcfg), tmp_path / "ckpt")
    sd = load_file(str(ckpt / "hypernet.safetensors"))
    sd["heads.q_proj.weight"] = sd["heads.q_proj.weight"][:, :10].contiguous()
    save_file(sd, str(ckpt / "hypernet.safetensors"))
    with pytest.raises(t2l.T2LError, match="heads.q_proj.weight has shape"):
        t2l.load(ckpt)


def test_a_description_longer_than_the_encoder_reads_gets_a_warning(capsys):
    enc = t2l.TaskEncoder()
    enc(["Sort the numbers."])
    assert "warning" not in capsys.readouterr().err
    long = "Sort the numbers from smallest to largest. " * 200
    enc([long])
    err = capsys.readouterr().err
    assert "warning: description of" in err and "reads only the first 256" in err
