"""Batched KV-cache generation must equal recomputing the whole sequence, and a left-padded
batch must give each row the tokens it would get alone."""
import pytest
import torch

from model import left_pad, load_pretrained
from conftest import VOCAB


def greedy_recompute(m, prompt, n):
    ids = torch.tensor([prompt])
    out = []
    for _ in range(n):
        nxt = m(ids)[0, -1].argmax().item()
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2", "qwen3", "gemma3"])
def test_kv_cache_equals_recompute(family, tiny_dirs):
    _, d = tiny_dirs[family]
    m = load_pretrained(d)
    torch.manual_seed(0)
    prompt = torch.randint(3, VOCAB, (7,)).tolist()
    got = m.generate(torch.tensor([prompt]), max_new_tokens=20, eos_token_ids=[]).tolist()[0]
    assert len(got) == 20  # 7 + 20 > sliding window 5: the cache must honour the window
    assert got == greedy_recompute(m, prompt, 20)


@pytest.mark.parametrize("family", ["llama", "gemma2", "qwen3", "gemma3"])
def test_left_padded_batch_equals_alone(family, tiny_dirs):
    _, d = tiny_dirs[family]
    m = load_pretrained(d)
    torch.manual_seed(1)
    prompts = [torch.randint(3, VOCAB, (n,)).tolist() for n in (3, 9, 6)]
    ids, mask = left_pad(prompts, pad_id=0)
    batch = m.generate(ids, mask, max_new_tokens=12, eos_token_ids=[]).tolist()
    for p, row in zip(prompts, batch):
        alone = m.generate(torch.tensor([p]), max_new_tokens=12, eos_token_ids=[]).tolist()[0]
        assert row == alone


def test_stops_at_eos_and_pads(tiny_dirs):
    _, d = tiny_dirs["llama"]
    m = load_pretrained(d)
    prompt = torch.randint(3, VOCAB, (1, 5))
    free = m.generate(prompt, max_new_tokens=10, eos_token_ids=[]).tolist()[0]
    stop = free[3]  # pretend the 4th generated token is end-of-sequence
    ids, mask = left_pad([prompt[0].tolist(), prompt[0].tolist()[:3]], pad_id=0)
    out = m.generate(ids, mask, max_new_tokens=10, eos_token_ids=[stop], pad_token_id=99)
    row = out[0].tolist()
    first = row.index(stop)
    assert row[:first + 1] == free[:first + 1]
    assert all(t == 99 for t in row[first + 1:])


def test_sampling_is_seeded(tiny_dirs):
    _, d = tiny_dirs["qwen2"]
    m = load_pretrained(d)
    prompt = torch.randint(3, VOCAB, (2, 5))
    g = lambda s: m.generate(prompt, max_new_tokens=8, temperature=1.0, top_p=0.9, eos_token_ids=[],
                             generator=torch.Generator().manual_seed(s))
    assert torch.equal(g(1), g(1))
    assert not torch.equal(g(1), g(2))


def test_finished_rows_leave_the_batch_with_their_adapters(tiny_dirs):
    """Rows that finish early are dropped from the batch (cache, mask and, through on_drop, the
    caller's per-example adapters): every row still gets exactly the tokens it gets alone under its
    own adapter, cut where it finished and padded after."""
    import lora
    _, d = tiny_dirs["llama"]
    m = load_pretrained(d)
    lcfg = lora.LoraConfig(target_modules=["q_proj", "v_proj"])
    lora.inject(m, lcfg)
    g = torch.Generator().manual_seed(3)
    shapes = lora.module_shapes(m, lcfg)
    ads = [{k: (torch.randn(8, i, generator=g) * 0.3, torch.randn(o, 8, generator=g) * 0.3) for k, (i, o) in shapes.items()}
           for _ in range(5)]
    prompts = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (4, 7, 5, 9, 6)]
    ends = [2, 9, 3, 12, 5]  # row i finishes after this many tokens (stop below)
    alone = []
    for p, ad in zip(prompts, ads):
        with lora.use_adapter(m, ad, lcfg.scaling):
            alone.append(m.generate(torch.tensor([p]), max_new_tokens=12, eos_token_ids=[]).tolist()[0])
    assert len({tuple(a) for a in alone}) == 5  # the adapters make a difference
    alive, drops = list(range(5)), []
    stacked = lora.stack(ads)

    def stop(new):  # (b, n): the rows still in the batch, in the order of `alive`
        return torch.tensor([new.shape[1] >= ends[i] for i in alive])

    def on_drop(keep):
        alive[:] = [alive[j] for j in keep.tolist()]
        drops.append(list(alive))
        ad.update({k: (A.index_select(0, keep), B.index_select(0, keep)) for k, (A, B) in ad.items()})
        lora.set_adapter(m, ad, lcfg.scaling)
    ad = dict(stacked)
    ids, mask = left_pad(prompts, pad_id=0)
    with lora.use_adapter(m, ad, lcfg.scaling):
        out = m.generate(ids, mask, max_new_tokens=12, eos_token_ids=[], pad_token_id=99, stop=stop, on_drop=on_drop).tolist()
    assert drops and drops[0] == [1, 3, 4]  # rows 0 and 2 (2 of 5 finished) left after the third token
    for row, a, e in zip(out, alone, ends):
        assert row[:e] == a[:e] and all(t == 99 for t in row[e:])
