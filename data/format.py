"""
data/format.py: turn (task input, answer) into chat-formatted token ids and answer-only labels.

The user turn, as the reference builds it for a Super-Natural-Instructions task
(utils/preprocessing.py, tasks/lol_*/metadata.yaml), with an empty system message:

    "{definition} Please complete the task without any explanation.\n\n{input}"

plus "\nThe answer should be a comma-separated list of possible completions." after the first
sentence when the instance has several outputs. The LLM always sees the task's definition; T2L's
hypernetwork reads a description in addition (paper section 4). With definition=None ("--prompt
bare", the earlier protocol of this project) the user turn is the input alone and the adapter must
carry the whole task: a harder ablation. The baselines change only the user turn:
  mode "input"        the user turn above                                  (base model, LoRAs, T2L)
  mode "description"  description + blank line + the user turn above       (base + task description)
  mode "icl"          k solved examples as earlier chat turns, then the input   (k-shot ICL)

Labels are -100 everywhere except the answer tokens and the end-of-turn token that closes them,
so the SFT loss (paper eq. (5)) is computed on the answer only. An example whose prompt plus
answer does not fit `max_len` is dropped (and counted), never truncated: a cut answer would
teach the model to stop mid-answer.
"""
from __future__ import annotations

import torch

from data.tasks import Example

NO_EXPLANATION = " Please complete the task without any explanation."
LIST_ANSWER = "\nThe answer should be a comma-separated list of possible completions."


def user_turn(inp: str, definition: str | None = None, several: bool = False) -> str:
    """The reference's SNI user turn (definition=None: the input alone)."""
    if definition is None:
        return inp
    return f"{definition}{NO_EXPLANATION}{LIST_ANSWER if several else ''}\n\n{inp}"


def messages_for(inp: str, mode: str = "input", description: str | None = None, shots=(), definition=None,
                 several: bool = False) -> list[dict]:
    """Chat messages for one example. An empty system message leads, as in the reference's
    evaluation and training; it also keeps a chat template's default system prompt out (SmolLM2's
    adds 20 tokens that say nothing about the task to every example, --prompt bare included)."""
    system = [{"role": "system", "content": ""}]
    user = user_turn(inp, definition, several)
    if mode == "input":
        return system + [{"role": "user", "content": user}]
    if mode == "description":
        if not description:
            raise ValueError("mode 'description' needs a description")
        return system + [{"role": "user", "content": f"{description}\n\n{user}"}]
    if mode == "icl":
        msgs = list(system)
        for i, ex in enumerate(shots):
            shot = user_turn(ex.input, definition, ex.several)
            msgs += [{"role": "user", "content": f"{description}\n\n{shot}" if (description and i == 0) else shot},
                     {"role": "assistant", "content": ex.answer}]
        return msgs + [{"role": "user", "content": user}]
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


def encode_examples(tok, examples: list[Example], max_len: int = 256, mode: str = "input", description=None, shots=(),
                    definition=None):
    """Encode many examples; returns (encoded list, number dropped for length)."""
    out, dropped = [], 0
    for ex in examples:
        enc = encode(tok, messages_for(ex.input, mode, description, shots, definition, ex.several), ex.answer, max_len)
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


def first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: indices from the longest down, each into the first row with room
    (an index is never split across rows). -> rows of indices."""
    rows, room = [], []  # rows[k]: the indices in row k; room[k]: its free slots
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        k = next((k for k, free in enumerate(room) if free >= lengths[i]), None)
        if k is None:
            rows.append([]), room.append(capacity)
            k = len(rows) - 1
        rows[k].append(i)
        room[k] -= lengths[i]
    return rows


def pack(encoded: list[tuple[list, list]], pad_id: int, capacity: int | None):
    """Pack examples end to end into rows, instead of padding each to the longest (`collate`): SNI
    batches are 43% padding, and every padded token costs a full forward and backward. Rows are
    filled first-fit decreasing (`first_fit`); their length is the one between the longest example
    and `capacity` (train_sft.py: --max-len) that needs the fewest slots, rows x length, the
    shortest such: short built-in examples fill rows as long as they need, not one of 384 and one
    nearly empty, and a masked row's attention costs its length squared (bench/RESULTS.md).
    capacity None: ONE row holding the whole batch, no padding at all, for a model that attends
    example by example with no mask (Transformer.by_span; train_sft.py packs so wherever it can).

    -> input_ids, labels (-100 on padding and on each example's first token, which nothing in its own
    example predicts), segments: the example index (0..B-1, the order of `encoded`, which is the
    order of the adapters) of every slot, -1 on padding; all (R, T).
    model.py turns segments into per-example attention (spans, or a block-diagonal causal mask) and
    positions, lora.py into per-token adapters."""
    lengths = [len(x) for x, _ in encoded]
    if capacity is None:  # one row, the examples in batch order
        T, rows = sum(lengths), [list(range(len(encoded)))]
    elif max(lengths) > capacity:
        raise ValueError(f"an example of {max(lengths)} tokens does not fit a packed row of {capacity}")
    else:
        T, rows = min(((t, first_fit(lengths, t)) for t in range(max(lengths), capacity + 1)),
                      key=lambda c: (len(c[1]) * c[0], c[0]))  # fewest slots, then the shortest rows
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    segments = torch.full((len(rows), T), -1, dtype=torch.long)
    for k, members in enumerate(rows):
        s = 0
        for i in sorted(members):  # inside a row, in batch order
            x, y = encoded[i]
            ids[k, s:s + len(x)] = torch.tensor(x)
            labels[k, s + 1:s + len(y)] = torch.tensor(y[1:])  # the first token is predicted by no one of its example
            segments[k, s:s + len(x)] = i
            s += len(x)
    return ids, labels, segments


def prompt_ids(tok, inp: str, mode: str = "input", description=None, shots=(), definition=None, several=False) -> list[int]:
    """Token ids of the prompt alone (for generation at evaluation)."""
    return tok.apply_chat_template(messages_for(inp, mode, description, shots, definition, several), add_generation_prompt=True)


def prefilled_prompt(tok, messages: list[dict], prefill: str = "", tokenize: bool = True):
    """The generation prompt with text appended after it, as the reference's benchmarks build it
    (fishfarm VLLMModel._into_prompt): the chat template rendered to text with the generation
    prompt, then the prefill ("Answer:", "Let's think step by step.", an opening code fence),
    then the whole text tokenized at once (no special tokens added: the template has them)."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefill
    return tok.encode(text, add_special_tokens=False) if tokenize else text
