"""
data/metrics.py: the three task metrics, and the reference's benchmark answer parsers.

  exact   normalised exact match (case, surrounding space and a trailing full stop ignored)
  label   the first label word the prediction starts with must be the gold label
          (so "Yes, it is." counts as "yes"; with labels "divisible"/"not divisible" the longest
          matching label wins)
  rougeL  ROUGE-L F1 on lower-cased word tokens (longest common subsequence), as SNI evaluation does

Before scoring, `extract_answer` takes the answer out of what a chat model writes: the first
non-empty line, without lead-ins such as "Answer:", "The answer is", markdown bold or quotes.
When the gold answer is a single number, a prediction holding exactly one number is compared by value, thousands
separators and all ("1,000" = "1000", "The result is 10." = "10").

The benchmarks (data/benchmarks.py) are parsed instead with the reference's own functions, on the
whole generation, quirks included (each written out and tested in tests/test_benchmarks.py):

  letter  the first character of the reply after stripping spaces and :`'"(.) decides
          (reference_choice; ARC, OpenBookQA, HellaSwag, PIQA, Winogrande)
  bool    a substring reading, "1" before "0" before yes / no / true / false (reference_bool; BoolQ)
  number  the last number of the reply against the last number of the worked answer (gsm8k_number)
  code    the program up to the first ``` fence (MBPP: then the reference's sanitizer), run against
          the tests (data/code_exec.py)
"""
from __future__ import annotations

import ast
import re


def normalise(s: str) -> str:
    """Lower case, single spaces, no surrounding space."""
    return re.sub(r"\s+", " ", s.strip().lower())


LEAD_INS = re.compile(r"^(?:(?:the\s+)?(?:final\s+|correct\s+)?answer(?:\s+is)?\s*[:=]?|output\s*:|a\s*:|result\s*:)\s*", re.I)
NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")
NUMBERS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")


def extract_answer(text: str) -> str:
    """The answer in a chat model's reply: first non-empty line, lead-in and decoration removed."""
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    if not lines:
        return ""
    line = lines[0]
    if LEAD_INS.sub("", line.strip("*_ ")) == "" and len(lines) > 1:  # "Answer:" alone on its line
        line = lines[1]
    line = line.strip()
    for _ in range(2):  # "**Answer:** B" -> "Answer: B" -> "B"
        line = LEAD_INS.sub("", line.replace("**", "").strip()).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


def answer_settled(text: str) -> bool:
    """Whether `extract_answer` can no longer change however the reply goes on: it reads the first
    non-empty line, and the second only when the first is a lead-in alone ("Answer:"). So the
    answer is settled once the reply holds two finished non-empty lines, or one that is not a bare
    lead-in. Generation stops a reply there (eval.answer): a model that rambles after its answer
    costs no more decoding steps than one that stops."""
    lines = text.splitlines(keepends=True)
    done = [l for l in lines if l != l.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029") and l.strip()]  # ended by a break
    if len(done) >= 2:
        return True
    return len(done) == 1 and LEAD_INS.sub("", done[0].strip().strip("*_ ")) != ""


def _number(s: str):
    """The one number in s as a float ("1,000" -> 1000.0); None when s holds none or several
    (a list "93, 12" must not pass for its first element)."""
    found = NUMBERS.findall(s)
    return float(found[0].replace(",", "")) if len(found) == 1 else None


def exact(pred: str, gold: str) -> float:
    """A trailing full stop the gold answer does not have is forgiven ("42." for "42"); a numeric
    gold answer is compared by value with the prediction's only number."""
    p, g = normalise(pred), normalise(gold)
    if p == g or (p.endswith(".") and not g.endswith(".") and p[:-1].rstrip() == g):
        return 1.0
    if NUMBER.match(g.replace(",", "")):
        n = _number(p)
        return float(n is not None and abs(n - float(g.replace(",", ""))) < 1e-9)
    return 0.0


def label(pred: str, gold: str, labels=()) -> float:
    p = normalise(pred).strip(" \"'`*")
    cands = sorted(labels or (gold,), key=len, reverse=True)  # "not divisible" before "divisible"
    for lab in cands:
        l = normalise(lab)
        if p == l or p.startswith(l + " ") or p.startswith(l + ",") or p.startswith(l + "."):
            return float(l == normalise(gold))
    return 0.0


def _lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, gold: str) -> float:
    p, g = re.findall(r"\w+", pred.lower()), re.findall(r"\w+", gold.lower())
    if not p or not g:
        return float(p == g)
    l = _lcs(p, g)
    if l == 0:
        return 0.0
    prec, rec = l / len(p), l / len(g)
    return 2 * prec * rec / (prec + rec)


def score(metric: str, pred: str, gold: str, labels=(), alternatives=()) -> float:
    """Score one prediction in [0, 1]; with several gold answers (SNI), the best one counts."""
    golds = [gold, *alternatives]
    if metric == "exact":
        return max(exact(pred, g) for g in golds)
    if metric == "label":
        return max(label(pred, g, labels) for g in golds)
    if metric == "rougeL":
        return max(rouge_l(pred, g) for g in golds)
    raise ValueError(f"unknown metric {metric!r} (expected exact, label or rougeL)")


# -----------------------------------------------------------------------------
# The reference's benchmark parsers: src/hyper_llm_modulator/utils/eval_tasks.py (get_choice,
# get_bool_value_from_text), fishfarm tasks/language_restricted_math.py (extract_answer_number),
# fishfarm tasks/evalplus (generation.py: the code before the first fence; sanitization.py).

CHOICE_DECORATION = ":`'\"(.) "  # stripped from both ends of a multiple-choice reply
CHOICE_KEYS = tuple("abcdefghijklmnopqrstuvwxyz0123456789") + ("10",)  # "10" can never win: "1" comes first


def reference_choice(text: str) -> str | None:
    """The choice a reply names, as the reference reads it: strip whitespace, then the characters
    :`'"(.) and spaces, at both ends; lower case; the first of a..z, 0..9 the text starts with,
    else None. Only the first character counts: "B) because" -> "b", "(B)" -> "b", but "The
    answer is (B)." -> "t" and "Answer: B" -> "a" (a letter of the alphabet, right only by
    accident), "**B**" -> None ("*" is not stripped), "Option 1" -> "o"."""
    t = str(text).strip().strip(CHOICE_DECORATION).lower()
    return next((c for c in CHOICE_KEYS if t.startswith(c)), None)


def choice_decided(prefix: str) -> bool:
    """Whether more generated text can no longer change `reference_choice`: once the reply, with
    its surrounding whitespace stripped, holds a character that is not decoration, that first
    character is final (a longer reply only extends the end). Lets evaluation stop a
    multiple-choice reply early and still parse it as the reference parses the full 512 tokens. A
    trailing replacement character (half a UTF-8 character) is not decided yet."""
    t = prefix.strip().lstrip(CHOICE_DECORATION)
    return bool(t) and t[0] != "\ufffd"


def reference_bool(text: str) -> bool | None:
    """The yes/no a reply means, as the reference reads it (BoolQ): the first test that hits, on
    the whole reply: "1" anywhere -> True, "0" -> False, then (lower case) "yes" -> True, "no" ->
    False, "true", "false", "positive", "negative", "valid", "invalid"; else None. So "False, in
    1990 ..." is True (it holds a "1") and "true, nothing else" is False (it holds "no")."""
    text = str(text)
    if "1" in text:
        return True
    if "0" in text:
        return False
    low = text.lower()
    for word, value in (("yes", True), ("no", False), ("true", True), ("false", False), ("positive", True),
                        ("negative", False), ("valid", True), ("invalid", False)):
        if word in low:
            return value
    return None


GSM8K_NUMBER = re.compile(r"\d*\.?\d+")  # no sign, no thousands separator


def gsm8k_number(text: str) -> float | None:
    """The last number in a text, as the reference reads GSM8K answers (and the gold worked
    answer, whose last number follows "####"). The pattern has no sign and no thousands
    separator: "-5" reads 5.0 and "1,234" reads 234.0 (for the gold answer too: 14 of the 1,319
    test answers have a comma, and for them only a reply ending in the same digits after its last
    comma scores)."""
    found = GSM8K_NUMBER.findall(text)
    return float(found[-1]) if found else None


def benchmark_score(kind: str, generation: str, target: str) -> float:
    """1.0 or 0.0 for one benchmark reply (kind letter | bool | number; code is run, not parsed)."""
    if kind == "letter":  # get_choice_accuracy: both None counts as equal, as in the reference
        return float(reference_choice(generation) == reference_choice(target))
    if kind == "bool":  # get_binary_accuracy_flex: 0 when either side reads as neither
        g, t = reference_bool(generation), reference_bool(target)
        return float(g is not None and t is not None and g == t)
    if kind == "number":  # the gold number is made an int: a decimal gold answer (never in GSM8K) could not match
        gold = gsm8k_number(target)
        return float(gsm8k_number(generation) == (int(gold) if gold is not None else None))
    raise ValueError(f"unknown benchmark answer kind {kind!r} (expected letter, bool or number)")


def code_body(completion: str) -> str:
    """The generated code: everything before the first ``` (the assistant turn was prefilled with
    the opening fence), or the whole completion when it has none."""
    i = completion.find("```")
    return completion if i == -1 else completion[:i]


def code_solution(benchmark: str, prompt: str, completion: str, entry_point: str) -> str:
    """The program the tests run against. HumanEval: the problem's prompt + the completion (the
    prefill repeated the prompt, so the model wrote the body). MBPP: the prompt, a newline and the
    completion, through the reference's sanitizer."""
    if benchmark == "humaneval":
        return prompt + code_body(completion)
    return sanitize_code((prompt + "\n" + code_body(completion)).strip(), entry_point).strip()


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False


def sanitize_code(code: str, entry_point: str) -> str:
    """The reference's MBPP sanitizer (evalplus's, as fishfarm copies it), step by step:
    1. of the fenced blocks of a chat reply, keep the first that defines the entry point;
    2. keep the definitions of the entry point that contain "    return " (a body without one is
       dropped: the reference's heuristic for a finished function), with 3-space indents made 4;
    3. in them, drop unindented lines other than def / import / from, and everything from an
       unindented line starting with \"\"\", "if" or "print" (a test or a demo after the function);
    4. keep what came before the first definition (the prompt's docstring, imports);
    5. drop any other function that does not parse."""
    code = "\n" + code
    head = "def " + entry_point
    code = code.replace("\n```python\n", "\n```\n")
    for block in code.split("\n```\n"):
        if head in block:
            code = block
            break
    pieces = re.split(rf"{re.escape(head)}\s*\(", code)
    bodies = [p for p in pieces[1:] if "    return " in p.split("\ndef")[0]]
    fn = (head + "(") + (head + "(").join(bodies) if bodies else ""
    fn = "".join((" " if len(line) - len(line.lstrip()) == 3 else "") + line + "\n" for line in fn.splitlines())
    lines, cut = fn.splitlines(), set()
    for i, line in enumerate(lines):
        if i == 0 or not line.strip() or line.startswith(("def ", "import ", "from ")):
            continue  # the definition line itself, blank lines and top-level def / import survive
        if len(line) - len(line.lstrip()) == 0:
            cut.add(i)
        if line.rstrip().startswith(('"""', "if", "print")):
            cut.update(range(i, len(lines)))
            break
    fn = "\n".join(line for i, line in enumerate(lines) if i not in cut)
    parts = (pieces[0] + fn).split("\ndef ")
    keep = [parts[0]] + [p for p in parts[1:] if p.strip().startswith((entry_point + " ", entry_point + "("))
                         or _parses("\ndef " + p)]
    return "\ndef ".join(keep).strip()
