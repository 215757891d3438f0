"""
data/format.py: turn (task input, answer) into chat-formatted token ids and answer-only labels.

T2L's setting (paper section 4): the user turn holds only the task input; the *adapter* carries
the task. The baselines change only the user turn:
  mode "input"        user = input                                  (base model, LoRAs, T2L)
  mode "description"  user = description + blank line + input       (base + task description)
  mode "icl"          k solved examples as earlier chat turns, then the input   (k-shot ICL)

Labels are -100 everywhere except the answer tokens and the end-of-turn token that closes them,
so the SFT loss (paper eq. (5)) is computed on the answer only. An example whose prompt plus
answer does not fit `max_len` is dropped (and counted), never truncated: a cut answer would
teach the model to stop mid-answer.
"""
from __future__ import annotations

import torch

from data.tasks import Example


def messages_for(inp: str, mode: str = "input", description: str | None = None, shots=()) -> list[dict]:
    if mode == "input":
        return [{"role": "user", "content": inp}]
    if mode == "description":
        if not description:
            raise ValueError("mode 'description' needs a description")
        return [{"role": "user", "content": f"{description}\n\n{inp}"}]
    if mode == "icl":
        msgs = []
        for i, ex in enumerate(shots):
            user = f"{description}\n\n{ex.input}" if (description and i == 0) else ex.input
            msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": ex.answer}]
        return msgs + [{"role": "user", "content": inp}]
    raise ValueError(f"unknown prompt mode {mode!r} (expected input, description or icl)")


def encode(tok, messages: list[dict], answer: str, max_len: int = 256):
    """-> (input_ids, labels) lists, or None when prompt + answer exceed max_len."""
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True)
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], add_generation_prompt=False)
    if full[:len(prompt)] != prompt:
        raise ValueError("chat template: the prompt's tokens are not a prefix of prompt + answer; "
                         "this template cannot be used for answer-only labels")
    ans = full[len(prompt):]
    # Keep the answer and the end-of-turn token that closes it; drop what the template adds after
    # (a newline, say), which the model never has to produce.
    ends = [i for i, t in enumerate(ans) if t in tok.eos_token_ids]
    if ends:
        ans = ans[:ends[0] + 1]
    if len(prompt) + len(ans) > max_len:
        return None
    return prompt + ans, [-100] * len(prompt) + ans


def encode_examples(tok, examples: list[Example], max_len: int = 256, mode: str = "input", description=None, shots=()):
    """Encode many examples; returns (encoded list, number dropped for length)."""
    out, dropped = [], 0
    for ex in examples:
        enc = encode(tok, messages_for(ex.input, mode, description, shots), ex.answer, max_len)
        if enc is None:
            dropped += 1
        else:
            out.append(enc)
    return out, dropped


def collate(encoded: list[tuple[list, list]], pad_id: int):
    """Right-pad to the longest: input_ids, labels (-100 on padding), attention_mask, all (B, T)."""
    T = max(len(ids) for ids, _ in encoded)
    B = len(encoded)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for i, (x, y) in enumerate(encoded):
        ids[i, :len(x)] = torch.tensor(x)
        labels[i, :len(y)] = torch.tensor(y)
        mask[i, :len(x)] = 1
    return ids, labels, mask


def prompt_ids(tok, inp: str, mode: str = "input", description=None, shots=()) -> list[int]:
    """Token ids of the prompt alone (for generation at evaluation)."""
    return tok.apply_chat_template(messages_for(inp, mode, description, shots), add_generation_prompt=True)
