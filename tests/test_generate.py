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
