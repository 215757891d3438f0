"""
data/tasks.py: the Task interface, and the built-in offline task suite.

T2L learns a map from a task description to an adapter *across many tasks* and is judged on
tasks it never saw (paper section 4). Model hubs are unreachable here, so the project generates
its own task collection: 207 small tasks in 15 families, each with

  - a name, a family and a metric (exact match, label accuracy or ROUGE-L),
  - a definition: one plain instruction, the task as the LLM's user turn states it,
  - 24 varied training descriptions and 3 separate evaluation descriptions,
  - an example generator: 1,000+ distinct training examples and fixed validation/test examples.

Tasks of one family share their input format but differ in what they ask ("sort ascending",
"largest item", ... -> unseen "sort descending"), so an unseen task can be inferred from its
description. Two whole families (cipher, format) are held out of training: the out-of-domain
split, as code generation is in the paper.

The suite reads as a family table (`_families`, at the end of the families part): one short
section per family, with its input/output phrases and a table of tasks, each row
(name, paraphrases, generator, metric[, labels]); generators are small named functions.

Everything is deterministic from one seed: the same seed gives byte-identical examples.

The same `Task` class carries the SNI tasks (data/sni.py): there `examples` come from a fixed list.
"""
from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from typing import Callable

SEED = 0  # the suite's default seed
N_VAL, N_TEST = 32, 64  # fixed validation / test examples per task
HELD_OUT_FAMILIES = ("cipher", "format")  # out-of-domain: no task of these families is trained on


@dataclass(frozen=True)
class Example:
    input: str  # what the user turn holds (the task itself is carried by the adapter)
    answer: str  # the reference answer
    choices: tuple = ()  # answer options, for log-likelihood scoring (benchmarks); empty otherwise
    contexts: tuple = ()  # per-choice contexts when they differ (Winogrande); empty otherwise
    alternatives: tuple = ()  # other correct answers; the best match counts
    several: bool = False  # SNI: several outputs; `answer` joins them with ", " (the reference)


@dataclass
class Task:
    name: str  # unique id, e.g. "list_sort_asc"
    family: str  # tasks of one family share their input format
    metric: str  # "exact" | "label" | "rougeL"
    train_descriptions: list  # descriptions T2L may see in training
    eval_descriptions: list  # 3 descriptions kept for zero-shot evaluation, disjoint from the above
    labels: tuple = ()  # the label words, for metric "label"
    # the task's instruction as the LLM's user turn states it (SNI: its Definition); the T2L
    # descriptions are paraphrases the hypernetwork reads in addition (paper section 4 /
    # reference preprocessing)
    definition: str = ""
    gen: Callable | None = field(default=None, repr=False)  # rng -> (input, answer), built-in
    fixed: dict | None = field(default=None, repr=False)  # {"train"|"val"|"test": [Example]}, SNI
    source: str = "builtin"  # "builtin" | "sni"
    seed: int = SEED

    @property
    def solve(self) -> Callable | None:
        """input string -> this task's answer, for tasks that can answer any input of their
        family's format (the steering groups of data/steering.py); None for the others."""
        return getattr(self.gen, "solve", None)

    def examples(self, split: str, n: int | None = None) -> list[Example]:
        """The first n examples of a split. val/test are fixed; train never repeats a val/test
        input."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if self.fixed is not None:
            ex = self.fixed[split]
            return ex if n is None else ex[:n]
        if split == "val":
            return self._distinct("val", N_VAL if n is None else min(n, N_VAL), set())
        if split == "test":
            return self._distinct("test", N_TEST if n is None else min(n, N_TEST), set())
        held = self._distinct("val", N_VAL, set()) + self._distinct("test", N_TEST, set())
        return self._distinct("train", 1000 if n is None else n, {e.input for e in held})

    def _distinct(self, split, n, exclude):
        rng = random.Random(stable_seed(self.seed, self.name, split))
        out, seen = [], set(exclude)
        for _ in range(n * 50):
            inp, ans = self.gen(rng)
            if inp not in seen:
                seen.add(inp)
                out.append(Example(inp, ans))
                if len(out) == n:
                    return out
        raise RuntimeError(f"task {self.name}: could only draw {len(out)} distinct {split} "
                           f"examples, wanted {n}")


def stable_seed(*parts) -> int:
    """A seed from strings that does not depend on Python's per-process hash randomisation."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


# -----------------------------------------------------------------------------
# Descriptions: paraphrases of *what* to do, set in many framings. The last paraphrase and three
# dedicated framings are kept for evaluation, so evaluation descriptions are never seen in training.

TRAIN_FRAMES = [
    "{What}.",
    "Given {inp}, {what}.",
    "Your task: {what}.",
    "In this task you receive {inp}. {What}, and reply with {out} only.",
    "{What}. Answer with {out} and nothing else.",
    "Read {inp} and {what}.",
    "You will be shown {inp}. The goal is to {what}.",
    "Task: {what}. Input: {inp}. Output: {out}.",
    "This task tests whether you can {what} when given {inp}.",
    "Instruction: {what}.",
    "For {inp}, {what}. The reply should be {out}.",
    "The input is {inp}; {what}.",
]
EVAL_FRAMES = [
    "Please {what}; the input is {inp}.",
    "Here is {inp}. I need you to {what}, replying with {out}.",
    "Look at {inp} and {what}. Respond only with {out}.",
]
# The definition has a frame of its own, in neither list above: the instruction the LLM reads is
# then never word for word one of the descriptions the hypernetwork reads.
DEFINITION_FRAME = "{What}. You are given {inp}; reply with {out} only."


def _fill(frame, what, inp, out):
    """One frame filled with a paraphrase ("{What}" gets it with a capital first letter)."""
    return frame.format(What=what[0].upper() + what[1:], what=what, inp=inp, out=out)


def make_descriptions(whats, inp, out, name, seed=SEED):
    """whats: >= 3 paraphrases (lower-case verb phrases). Returns (24 train, 3 eval) descriptions:
    the train ones from every paraphrase but the last, the eval ones from the last."""
    train = sorted({_fill(f, w, inp, out) for f in TRAIN_FRAMES for w in whats[:-1]})
    random.Random(stable_seed(seed, name, "desc")).shuffle(train)
    evals = [_fill(f, whats[-1], inp, out) for f in EVAL_FRAMES]
    return train[:24], evals


def make_definition(whats, inp, out):
    """The task's instruction: its first paraphrase set in DEFINITION_FRAME."""
    return _fill(DEFINITION_FRAME, whats[0], inp, out)


# -----------------------------------------------------------------------------
# Vocabulary for the generators (small, hand-written, common English words).

NOUNS = ("apple house river table garden window doctor music pencil bottle forest camera ocean "
         "bridge engine letter planet island market candle mirror basket jacket ladder rocket "
         "violin wallet tunnel bucket pillow carpet blanket hammer castle desert harbor kitten "
         "meadow needle orange parrot quarter saddle tomato turtle village wagon yellow zebra "
         "anchor button cookie dragon feather guitar helmet kettle lemon magnet napkin pepper "
         "rabbit spider tiger").split()
ANTONYMS = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"),
            ("light", "dark"), ("high", "low"), ("old", "new"), ("rich", "poor"), ("early", "late"),
            ("hard", "soft"), ("strong", "weak"), ("open", "closed"), ("full", "empty"),
            ("wet", "dry"), ("loud", "quiet"), ("thick", "thin"), ("clean", "dirty"),
            ("long", "short"), ("cheap", "expensive"), ("near", "far"), ("true", "false"),
            ("first", "last"), ("up", "down"), ("inside", "outside"), ("day", "night"),
            ("win", "lose"), ("push", "pull"), ("buy", "sell"), ("give", "take"), ("love", "hate")]
PLURALS = [("cat", "cats"), ("dog", "dogs"), ("box", "boxes"), ("child", "children"),
           ("mouse", "mice"), ("city", "cities"), ("knife", "knives"), ("tooth", "teeth"),
           ("foot", "feet"), ("man", "men"), ("woman", "women"), ("baby", "babies"),
           ("bus", "buses"), ("leaf", "leaves"), ("book", "books"), ("church", "churches"),
           ("goose", "geese"), ("story", "stories"), ("wolf", "wolves"), ("car", "cars"),
           ("dish", "dishes"), ("party", "parties"), ("tree", "trees"), ("person", "people"),
           ("fox", "foxes"), ("hero", "heroes"), ("lady", "ladies"), ("shelf", "shelves"),
           ("bird", "birds"), ("key", "keys")]
PAST = [("go", "went"), ("eat", "ate"), ("run", "ran"), ("see", "saw"), ("take", "took"),
        ("write", "wrote"), ("sing", "sang"), ("swim", "swam"), ("drink", "drank"),
        ("make", "made"), ("walk", "walked"), ("play", "played"), ("jump", "jumped"),
        ("cook", "cooked"), ("talk", "talked"), ("buy", "bought"), ("think", "thought"),
        ("bring", "brought"), ("teach", "taught"), ("fly", "flew"), ("draw", "drew"),
        ("find", "found"), ("sit", "sat"), ("speak", "spoke"), ("begin", "began"),
        ("know", "knew"), ("open", "opened"), ("watch", "watched"), ("call", "called"),
        ("help", "helped")]
COMPARATIVE = [("big", "bigger"), ("small", "smaller"), ("fast", "faster"), ("tall", "taller"),
               ("good", "better"), ("bad", "worse"), ("happy", "happier"), ("old", "older"),
               ("young", "younger"), ("long", "longer"), ("short", "shorter"), ("hot", "hotter"),
               ("cold", "colder"), ("easy", "easier"), ("hard", "harder"),
               ("strong", "stronger"), ("weak", "weaker"), ("rich", "richer"),
               ("far", "farther"), ("near", "nearer")]
ANIMALS = ("dog cat horse cow sheep lion tiger bear wolf fox rabbit mouse eagle owl duck goat pig "
           "deer monkey zebra").split()
FRUITS = "apple banana cherry grape lemon mango orange peach pear plum melon kiwi".split()
COLORS = "red blue green yellow purple orange black white pink brown gray".split()
VEHICLES = "car bus train truck bicycle boat plane taxi tractor scooter".split()
TOOLS = "hammer saw drill wrench shovel ladder needle scissors knife rake".split()
CATEGORY = {**{w: "animal" for w in ANIMALS}, **{w: "fruit" for w in FRUITS if w != "orange"},
            **{w: "vehicle" for w in VEHICLES},
            **{w: "tool" for w in TOOLS if w not in ("needle", "knife")}}
NAMES = ("Anna Ben Carla David Emma Frank Grace Henry Iris Jack Kate Leo Maria Nick Olga Paul "
         "Rosa Sam Tina Victor Alice Bruno Chloe Diego Elena Felix Hanna Igor Julia Karl Laura "
         "Marco Nora Oscar Petra Rita Simon Ursula Walter Zoe").split()
CITIES = ("Paris London Tokyo Berlin Madrid Rome Cairo Lima Oslo Dublin Vienna Prague Lisbon "
          "Athens Seoul Delhi").split()
DOMAINS = "gmail.com yahoo.com example.org mail.net school.edu company.io shop.co web.de".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = ("January February March April May June July August September October November "
          "December").split()
POS_ADJ = ("wonderful great excellent lovely amazing delightful fantastic pleasant superb "
           "brilliant").split()
NEG_ADJ = ("terrible awful horrible boring dreadful poor disappointing unpleasant bad "
           "miserable").split()
SUBJECTS = ("the movie", "the meal", "the hotel", "the concert", "the book", "the service",
            "the trip", "the game", "the class", "the party", "the show", "the phone")
TOPICS = {  # what someone did, by topic: "<Name> <phrase><place>."
    "sports": ["won the match in the final minute", "scored two goals on Sunday",
               "broke the record at the stadium", "planned a hard training session",
               "played a long tennis final", "kicked the ball into the net"],
    "food": ["added more salt to the soup", "baked fresh bread this morning",
             "cooked pasta with garlic sauce", "ordered a salad and a lemonade",
             "grilled the fish with herbs", "shared a large pizza"],
    "weather": ["got caught in heavy rain", "watched the sky clear after the storm",
                "enjoyed a sunny and warm week", "saw snow cover the roads overnight",
                "felt strong winds all afternoon", "walked through a cold fog"],
    "music": ["played a new song on stage", "practised the piano for hours",
              "sang in the old church choir", "tuned the guitar before the show",
              "recorded an album with the band", "heard the orchestra play a symphony"],
    "technology": ["bought a phone with a faster chip", "installed the software update",
                   "replaced the laptop battery", "built an app for the clinic",
                   "restarted the crashed server", "wrote code for the robot"],
}
TOPIC_NAMES = sorted(TOPICS)
FILLER = ["", "Yesterday, ", "Apparently, ", "As expected, ", "In the end, ", "Honestly, "]


# -----------------------------------------------------------------------------
# Shared generator pieces. A generator maps a random.Random to one (input, answer) pair. The
# order of its random draws fixes every example of its task, so it is part of the suite's
# definition: reordering two draws changes the examples (tests/test_tasks_table.py notices).

def _num_list(rng, lo=0, hi=99, n=None):
    return [rng.randint(lo, hi) for _ in range(n or rng.randint(4, 6))]


def _fmt(xs):
    return ", ".join(map(str, xs))


def _words(rng, n=None, pool=NOUNS):
    return rng.sample(pool, n or rng.randint(3, 5))


def _is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def _distinct_len(rng):
    while True:
        a, b = rng.sample(NOUNS + ANIMALS + FRUITS, 2)
        if len(a) != len(b):
            return a, b


def _pseudo_word(rng):
    """A pronounceable 4-6 letter string: plenty of distinct inputs for letter-level tasks."""
    cons, vows = "bcdfghklmnprstvz", "aeiou"
    return "".join(rng.choice(cons if i % 2 == 0 else vows) for i in range(rng.randint(4, 6)))


# =============================================================================
# The families. Each section: named generators, then a table of the family's tasks, then a
# small function returning (input phrase, output phrase, rows); the phrases fill the {inp} and
# {out} slots of the description frames. A row is (name, paraphrases, generator, metric[, labels])
# and the paraphrases are lower-case verb phrases, the last one kept for evaluation.


# 1. list_pick: one element (or one statistic) of a list of numbers ----------------------------

def _solver(gen, solve):
    """Attach `solve` (an input string -> its answer) to a generator: the steering test
    (data/steering.py) asks what each task of a group would answer on one shared input."""
    gen.solve = solve
    return gen


def _parse_list(text):
    return [int(v) for v in text.split(", ")]


def _pick(fn):
    """Generator: 4-6 numbers in 0..99 -> fn(the list)."""
    def gen(rng):
        xs = _num_list(rng)
        return _fmt(xs), str(fn(xs))
    return _solver(gen, lambda text: str(fn(_parse_list(text))))


def _pick_sum(rng):
    """3-4 numbers in 0..20: a sum the model can do in its head."""
    xs = _num_list(rng, 0, 20, rng.randint(3, 4))
    return _fmt(xs), str(sum(xs))


def _pick_max_even(rng):
    xs = _num_list(rng)
    if not any(v % 2 == 0 for v in xs):
        xs[0] += 1  # make sure there is an even number to pick
    return _fmt(xs), str(max(v for v in xs if v % 2 == 0))


LIST_PICK = [  # (name, paraphrases, generator)
    ("list_max", ["find the largest number in the list", "return the biggest value",
                  "pick the maximum of the numbers", "output the highest number of the list"],
     _pick(max)),
    ("list_min", ["find the smallest number in the list", "return the lowest value",
                  "pick the minimum of the numbers", "output the least number of the list"],
     _pick(min)),
    ("list_first", ["return the first number of the list",
                    "output the number at the start of the list", "give the leading element",
                    "write the first item"], _pick(lambda x: x[0])),
    ("list_last", ["return the last number of the list", "output the number at the end of the list",
                   "give the final element", "write the last item"], _pick(lambda x: x[-1])),
    ("list_second", ["return the second number of the list", "output the element in position two",
                     "give the item right after the first one", "write the second item"],
     _pick(lambda x: x[1])),
    ("list_second_last", ["return the second to last number",
                          "output the element just before the last one",
                          "give the penultimate item of the list", "write the next-to-last number"],
     _pick(lambda x: x[-2])),
    ("list_third", ["return the third number of the list", "output the element in position three",
                    "give the item after the second one", "write the third item"],
     _pick(lambda x: x[2])),
    ("list_range", ["compute the largest number minus the smallest number",
                    "return the range, max minus min, of the list",
                    "subtract the minimum from the maximum",
                    "output the spread between the biggest and smallest values"],
     _pick(lambda x: max(x) - min(x))),
    ("list_sum", ["add up all the numbers in the list", "return the total of the list",
                  "compute the sum of every element", "output the sum of the numbers"], _pick_sum),
    ("list_max_even", ["find the largest even number in the list",
                       "return the biggest number that is divisible by two",
                       "pick the maximum among the even values", "output the highest even number"],
     _pick_max_even),
]


def _list_pick():
    return "a list of numbers", "one number", [(n, w, g, "exact") for n, w, g in LIST_PICK]


# 2. list_order: rearrange or filter a list of numbers -----------------------------------------

def _order(fn, nonempty=False):
    """Generator: 4-6 numbers in 0..99 -> the list fn(list) ("none" if empty). nonempty: bump the
    first number by one when fn would keep nothing (flips its parity, for the filters)."""
    def gen(rng):
        xs = _num_list(rng)
        if nonempty and not fn(xs):
            xs[0] += 1
        return _fmt(xs), _fmt(fn(xs)) or "none"
    return _solver(gen, lambda text: _fmt(fn(_parse_list(text))) or "none")


LIST_ORDER = [  # (name, paraphrases, generator)
    ("list_sort_asc", ["sort the numbers in ascending order",
                       "arrange the list from smallest to largest",
                       "order the numbers increasingly", "put the values in increasing order"],
     _order(sorted)),
    ("list_sort_desc", ["sort the numbers in descending order",
                        "arrange the list from largest to smallest",
                        "order the numbers decreasingly", "put the values in decreasing order"],
     _order(lambda x: sorted(x, reverse=True))),
    ("list_reverse", ["reverse the order of the list", "write the list backwards",
                      "output the numbers from last to first", "flip the order of the elements"],
     _order(lambda x: x[::-1])),
    ("list_drop_first", ["remove the first number of the list",
                         "output the list without its first element", "drop the leading item",
                         "delete the first value and keep the rest"], _order(lambda x: x[1:])),
    ("list_drop_last", ["remove the last number of the list",
                        "output the list without its final element", "drop the trailing item",
                        "delete the last value and keep the rest"], _order(lambda x: x[:-1])),
    ("list_first_two", ["keep only the first two numbers", "output the first two elements",
                        "return the two leading items", "take the opening pair of numbers"],
     _order(lambda x: x[:2])),
    ("list_last_two", ["keep only the last two numbers", "output the final two elements",
                       "return the two trailing items", "take the closing pair of numbers"],
     _order(lambda x: x[-2:])),
    ("list_evens", ["keep only the even numbers, in order", "remove every odd number from the list",
                    "filter the list down to even values", "output the numbers divisible by two"],
     _order(lambda x: [v for v in x if v % 2 == 0], nonempty=True)),
    ("list_odds", ["keep only the odd numbers, in order", "remove every even number from the list",
                   "filter the list down to odd values", "output the numbers not divisible by two"],
     _order(lambda x: [v for v in x if v % 2 == 1], nonempty=True)),
    ("list_rotate", ["move the first number to the end of the list",
                     "rotate the list left by one position", "put the leading element last",
                     "shift every element one place to the left, wrapping the first to the end"],
     _order(lambda x: x[1:] + x[:1])),
    ("list_double", ["double every number in the list", "multiply each element by two",
                     "replace each value with twice itself",
                     "output the list with every number times two"],
     _order(lambda x: [2 * v for v in x])),
]


def _list_order():
    return "a list of numbers", "a list of numbers", [(n, w, g, "exact") for n, w, g in LIST_ORDER]


# 3. arithmetic: one number with a constant, or two numbers ------------------------------------

ADD_K = (1, 2, 3, 4, 5, 7, 8, 10, 20, 50, 100, 1000)
SUBTRACT_K = (1, 2, 3, 5, 10, 20, 50, 100)
TIMES_K = (2, 3, 4, 5, 10)


def _add(k):
    def gen(rng):
        n = rng.randint(0, 1999)
        return str(n), str(n + k)
    return _solver(gen, lambda text: str(int(text) + k))


def _subtract(k):
    def gen(rng):
        n = rng.randint(k, 1999 + k)  # from k up: the answer is never negative
        return str(n), str(n - k)
    return _solver(gen, lambda text: str(int(text) - k))


def _times(k):
    def gen(rng):
        n = rng.randint(0, 1999)
        return str(n), str(n * k)
    return _solver(gen, lambda text: str(int(text) * k))


def _pair(fn, a_max=999, b_max=999):
    """Generator: "a and b" (a in 0..a_max, then b in 0..b_max) -> fn(a, b)."""
    def gen(rng):
        a, b = rng.randint(0, a_max), rng.randint(0, b_max)
        return f"{a} and {b}", str(fn(a, b))
    return gen


ARITHMETIC_PAIRS = [  # (name, paraphrases, generator)
    ("add_pair", ["add the two numbers", "return the sum of the pair",
                  "compute the first number plus the second", "output the total of both numbers"],
     _pair(lambda a, b: a + b)),
    ("sub_pair", ["subtract the second number from the first",
                  "return the first number minus the second",
                  "compute the difference first minus second",
                  "take the second value away from the first"], _pair(lambda a, b: a - b)),
    ("mul_pair", ["multiply the two numbers", "return the product of the pair",
                  "compute the first number times the second",
                  "output the product of both numbers"],
     _pair(lambda a, b: a * b, 108, 12)),  # small factors: up to 108 x 12
    ("max_pair", ["return the larger of the two numbers", "pick the bigger number of the pair",
                  "output whichever number is greater", "give the maximum of the two values"],
     _pair(max)),
    ("min_pair", ["return the smaller of the two numbers", "pick the lesser number of the pair",
                  "output whichever number is lower", "give the minimum of the two values"],
     _pair(min)),
]


def _arithmetic():
    rows = []
    for k in ADD_K:
        rows.append((f"add_{k}", [f"add {k} to the number", f"increase the number by {k}",
                                  f"return the number plus {k}",
                                  f"output the sum of the number and {k}"], _add(k), "exact"))
    for k in SUBTRACT_K:
        rows.append((f"subtract_{k}", [f"subtract {k} from the number",
                                       f"decrease the number by {k}",
                                       f"return the number minus {k}",
                                       f"take {k} away from the number"], _subtract(k), "exact"))
    for k in TIMES_K:
        rows.append((f"times_{k}", [f"multiply the number by {k}", f"return {k} times the number",
                                    f"scale the number by a factor of {k}",
                                    f"output the product of the number and {k}"],
                     _times(k), "exact"))
    rows += [(n, w, g, "exact") for n, w, g in ARITHMETIC_PAIRS]
    return "a number", "a number", rows


# 4. counting: how many letters, words or numbers ----------------------------------------------

COUNTED_LETTERS = "acdehilnorstu"


def _text_count(fn, max_words):
    """Generator: 2..max_words nouns joined by spaces -> the count fn(text)."""
    def gen(rng):
        s = " ".join(_words(rng, rng.randint(2, max_words)))
        return s, str(fn(s))
    return gen


def _list_count(fn):
    """Generator: 2-8 numbers in 0..99 -> the count fn(list)."""
    def gen(rng):
        xs = _num_list(rng, 0, 99, rng.randint(2, 8))
        return _fmt(xs), str(fn(xs))
    return gen


def _count_letter(ch):
    return _text_count(lambda s: s.count(ch), 3)


COUNTING = [  # (name, paraphrases, generator)
    ("count_words", ["count the words in the text", "return how many words there are",
                     "tally the number of words", "output the word count"],
     _text_count(lambda s: len(s.split()), 6)),
    ("count_vowels", ["count the vowels in the text",
                      "return how many vowels (a, e, i, o, u) appear", "tally all vowel letters",
                      "output the number of vowels"],
     _text_count(lambda s: sum(c in "aeiou" for c in s), 6)),
    ("count_long_words", ["count the words with more than five letters",
                          "return how many words are longer than five characters",
                          "tally the long words, those of six letters or more",
                          "output the number of words longer than five letters"],
     _text_count(lambda s: sum(len(w) > 5 for w in s.split()), 6)),
    ("count_items", ["count the numbers in the list", "return the length of the list",
                     "tally how many elements there are", "output how many values the list holds"],
     _list_count(len)),
    ("count_even", ["count the even numbers in the list",
                    "return how many values are divisible by two", "tally the even elements",
                    "output the number of even values"],
     _list_count(lambda x: sum(v % 2 == 0 for v in x))),
    ("count_above_50", ["count the numbers greater than 50", "return how many values exceed fifty",
                        "tally the elements above 50",
                        "output how many numbers are larger than 50"],
     _list_count(lambda x: sum(v > 50 for v in x))),
]


def _counting():
    rows = []
    for ch in COUNTED_LETTERS:
        rows.append((f"count_letter_{ch}", [f"count how many times the letter '{ch}' appears",
                                            f"return the number of '{ch}' characters in the text",
                                            f"tally the occurrences of the letter {ch}",
                                            f"output how often the letter {ch} occurs"],
                     _count_letter(ch), "exact"))
    rows += [(n, w, g, "exact") for n, w, g in COUNTING]
    return "a short text", "a count", rows


# 5. word_ops: operations on a few words -------------------------------------------------------

def _on_words(fn):
    """Generator: 3-5 nouns -> fn(the word list)."""
    def gen(rng):
        w = _words(rng)
        return " ".join(w), fn(w)
    return _solver(gen, lambda text: fn(text.split()))


WORD_OPS = [  # (name, paraphrases, words -> answer, metric)
    ("words_first_word", ["return the first word", "output the word at the start",
                          "give the leading word", "write only the first word"],
     lambda w: w[0], "exact"),
    ("words_last_word", ["return the last word", "output the word at the end",
                         "give the final word", "write only the last word"],
     lambda w: w[-1], "exact"),
    ("words_longest_word", ["return the longest word", "output the word with the most letters",
                            "find the lengthiest word",
                            "give the word that has the most characters"],
     lambda w: max(w, key=len), "exact"),
    ("words_shortest_word", ["return the shortest word",
                             "output the word with the fewest letters", "find the briefest word",
                             "give the word that has the fewest characters"],
     lambda w: min(w, key=len), "exact"),
    ("words_sort_words", ["sort the words alphabetically", "arrange the words in dictionary order",
                          "order the words from A to Z", "put the words in alphabetical order"],
     lambda w: " ".join(sorted(w)), "rougeL"),
    ("words_reverse_words", ["reverse the order of the words",
                             "write the words backwards, last word first",
                             "output the words from last to first", "flip the word order"],
     lambda w: " ".join(w[::-1]), "rougeL"),
    ("words_acronym", ["form an acronym from the first letters of the words, in capitals",
                       "write the initial letter of each word in upper case",
                       "make an abbreviation from the first letters",
                       "output the capitalised initials of the words"],
     lambda w: "".join(x[0].upper() for x in w), "exact"),
    ("words_upper", ["convert the words to upper case", "write the text in capital letters",
                     "make every letter uppercase", "output the words in all caps"],
     lambda w: " ".join(w).upper(), "exact"),
    ("words_title", ["capitalise the first letter of every word",
                     "write each word with an initial capital", "convert the text to title case",
                     "make each word start with an upper-case letter"],
     lambda w: " ".join(x.capitalize() for x in w), "exact"),
    ("words_snake", ["join the words with underscores", "convert the words to snake_case",
                     "connect the words using the underscore character",
                     "output the words linked by underscores"], lambda w: "_".join(w), "exact"),
    ("words_kebab", ["join the words with hyphens", "convert the words to kebab-case",
                     "connect the words using dashes", "output the words linked by hyphens"],
     lambda w: "-".join(w), "exact"),
    ("words_camel", ["convert the words to camelCase",
                     "join the words, capitalising every word except the first",
                     "write the words as one camel case identifier",
                     "output the words as a camelCase name"],
     lambda w: w[0] + "".join(x.capitalize() for x in w[1:]), "exact"),
    ("words_second_word", ["return the second word", "output the word in position two",
                           "give the word after the first one", "write only the second word"],
     lambda w: w[1], "exact"),
    ("words_drop_last_word", ["remove the last word", "output all words except the last",
                              "delete the final word", "drop the closing word and keep the rest"],
     lambda w: " ".join(w[:-1]), "rougeL"),
    ("words_initials_lower", ["write the first letter of each word in lower case, joined together",
                              "join the initial letters of the words without capitals",
                              "make a lower-case string of the words' first letters",
                              "output the words' initials, lowercase, as one string"],
     lambda w: "".join(x[0] for x in w), "exact"),
    ("words_last_letters", ["write the last letter of each word, joined together",
                            "join the final letters of the words",
                            "make a string of every word's closing letter",
                            "output the words' last letters as one string"],
     lambda w: "".join(x[-1] for x in w), "exact"),
    ("words_drop_first_word", ["remove the first word", "output all words except the first",
                               "delete the leading word",
                               "drop the opening word and keep the rest"],
     lambda w: " ".join(w[1:]), "rougeL"),
    ("words_repeat_words", ["repeat each word twice", "write every word two times in a row",
                            "double each word", "output each word followed by itself"],
     lambda w: " ".join(x + " " + x for x in w), "rougeL"),
]


def _word_ops():
    rows = [(n, w, _on_words(fn), metric) for n, w, fn, metric in WORD_OPS]
    return "a short list of words", "words", rows


# 6. char_ops: operations on the letters of a word, applied to each word of a pair -------------

# Inputs are word *pairs* for size: 1,000+ distinct inputs need more than one word's variety.
CHAR_POOL = sorted(set(w for w in NOUNS + [a for p in ANTONYMS for a in p]
                       + [a for p in PAST for a in p] + ANIMALS + FRUITS + COLORS if len(w) >= 3))


def _on_each_word(fn):
    """Generator: two words "a b" -> "fn(a), fn(b)"."""
    def gen(rng):
        a, b = rng.sample(CHAR_POOL, 2)
        return f"{a} {b}", f"{fn(a)}, {fn(b)}"
    return gen


def _for_each_word(what):
    """The paraphrases below speak of one word; the input holds two. (Kept as it always was,
    quirk included: "write the word's ..." becomes "write each each word's ...".)"""
    return what.replace("the word", "each word").replace("word's", "each word's")


CHAR_OPS = [  # (name, paraphrases for one word, word -> answer)
    ("char_first_letter", ["return the first letter of the word", "output the initial character",
                           "give the letter the word starts with", "write the opening letter"],
     lambda w: w[0]),
    ("char_last_letter", ["return the last letter of the word", "output the final character",
                          "give the letter the word ends with", "write the closing letter"],
     lambda w: w[-1]),
    ("char_first_three", ["return the first three letters of the word",
                          "output the opening three characters", "give the three-letter prefix",
                          "write the word's first three letters"], lambda w: w[:3]),
    ("char_last_three", ["return the last three letters of the word",
                         "output the final three characters", "give the three-letter suffix",
                         "write the word's last three letters"], lambda w: w[-3:]),
    ("char_spell", ["spell the word with a space between letters",
                    "separate every letter by a space",
                    "write the word letter by letter with spaces",
                    "output the letters of the word spaced apart"], lambda w: " ".join(w)),
    ("char_length", ["count the letters of the word", "return the length of the word",
                     "output how many characters the word has", "give the number of letters"],
     lambda w: str(len(w))),
    ("char_reverse", ["reverse the letters of the word", "spell the word backwards",
                      "write the word from its last letter to its first",
                      "output the word in reverse"], lambda w: w[::-1]),
    ("char_upper_word", ["write the word in capital letters", "convert the word to upper case",
                         "make all letters of the word uppercase", "output the word in all caps"],
     lambda w: w.upper()),
    ("char_second_letter", ["return the second letter of the word",
                            "output the character in position two",
                            "give the letter after the first one",
                            "write the word's second letter"], lambda w: w[1]),
    ("char_double_letters", ["write every letter of the word twice",
                             "double each character of the word",
                             "repeat each letter of the word two times",
                             "output the word with all letters doubled"],
     lambda w: "".join(c + c for c in w)),
    ("char_sort_letters", ["sort the letters of the word alphabetically",
                           "arrange the word's letters from a to z",
                           "output the letters of the word in alphabetical order",
                           "order the characters of the word alphabetically"],
     lambda w: "".join(sorted(w))),
    ("char_vowels_only", ["keep only the vowels of the word",
                          "output just the letters a, e, i, o and u from the word",
                          "delete every consonant from the word",
                          "strip the consonants out of the word"],
     lambda w: "".join(c for c in w if c in "aeiou") or "none"),
    ("char_remove_vowels", ["remove all vowels from the word",
                            "delete the letters a, e, i, o and u",
                            "output the word without its vowels",
                            "strip every vowel out of the word"],
     lambda w: "".join(c for c in w if c not in "aeiou")),
]


def _char_ops():
    rows = [(n, [_for_each_word(x) for x in w], _on_each_word(fn), "exact")
            for n, w, fn in CHAR_OPS]
    return "a pair of words", "letters", rows


# 7. number_class: label a number, each predicate with two label sets --------------------------

def _balanced(pred, pos, neg):
    """Generator: a number in 2..9999 labelled pos if pred(number) else neg. The label is drawn
    first, with chance 1/2, then numbers until one has it (at most 1,000 tries)."""
    def gen(rng):
        want = rng.random() < 0.5  # balanced labels
        for _ in range(1000):
            n = rng.randint(2, 9999)
            if pred(n) == want:
                break
        return str(n), pos if pred(n) else neg
    return gen


NUMBER_CLASS = [  # (key, paraphrases, number -> bool, [(positive label, negative label), ...])
    ("even", ["decide whether the number is even or odd", "label the number by its parity",
              "say if the number is divisible by two", "classify the number as even or odd"],
     lambda n: n % 2 == 0, [("even", "odd"), ("yes", "no")]),
    ("big", ["decide whether the number is greater than 500",
             "label the number as above or below 500", "say if the number exceeds five hundred",
             "classify the number by comparing it to 500"],
     lambda n: n > 500, [("high", "low"), ("yes", "no")]),
    ("div3", ["decide whether the number is divisible by 3",
              "label the number by divisibility by three", "say if three divides the number",
              "classify whether the number is a multiple of 3"],
     lambda n: n % 3 == 0, [("yes", "no"), ("divisible", "not divisible")]),
    ("prime", ["decide whether the number is prime", "label the number as prime or composite",
               "say if the number has no divisors other than one and itself",
               "classify whether the number is a prime number"],
     _is_prime, [("prime", "composite"), ("yes", "no")]),
    ("big100", ["decide whether the number is greater than 100",
                "label the number as above or below 100", "say if the number exceeds one hundred",
                "classify the number by comparing it to 100"],
     lambda n: n > 100, [("above", "below"), ("yes", "no")]),
    ("big900", ["decide whether the number is greater than 900",
                "label the number as above or below 900", "say if the number exceeds nine hundred",
                "classify the number by comparing it to 900"],
     lambda n: n > 900, [("above", "below"), ("true", "false")]),
    ("div4", ["decide whether the number is divisible by 4",
              "label the number by divisibility by four", "say if four divides the number",
              "classify whether the number is a multiple of 4"],
     lambda n: n % 4 == 0, [("yes", "no"), ("divisible", "not divisible")]),
    ("div5", ["decide whether the number is a multiple of 5",
              "label the number by divisibility by five", "say if five divides the number",
              "classify whether the number ends in 0 or 5"],
     lambda n: n % 5 == 0, [("yes", "no"), ("true", "false")]),
    ("palindrome", ["decide whether the number reads the same backwards",
                    "label the number as a palindrome or not", "say if the digits are symmetric",
                    "classify whether reversing the digits gives the same number"],
     lambda n: str(n) == str(n)[::-1], [("yes", "no"), ("palindrome", "not palindrome")]),
]


def _number_class():
    """One task per (predicate, label set), named num_<key>_<pos>_<neg> (spaces dropped)."""
    rows = []
    for key, whats, pred, labelsets in NUMBER_CLASS:
        for pos, neg in labelsets:
            name = f"num_{key}_{pos.replace(' ', '')}_{neg.replace(' ', '')}"
            w = [f"{x}, answering '{pos}' or '{neg}'" for x in whats]
            rows.append((name, w, _balanced(pred, pos, neg), "label", (pos, neg)))
    return "a number", "a label", rows


# 8. text_class: sentiment, topic and surface properties of a sentence -------------------------

SENTIMENT_LABELS = [("positive", "negative"), ("good", "bad"), ("1", "0"), ("liked", "disliked")]
TOPIC_LABELS = [  # (style, topic -> label)
    ("names", {t: t for t in TOPIC_NAMES}),
    ("letters", {t: "ABCDE"[i] for i, t in enumerate(TOPIC_NAMES)}),
]


def _review(rng):
    """A one-line review and whether it is positive (chance 1/2)."""
    pos = rng.random() < 0.5
    adj = POS_ADJ if pos else NEG_ADJ
    return f"{rng.choice(FILLER)}{rng.choice(SUBJECTS)} was {rng.choice(adj)}.".capitalize(), pos


def _topical(rng, topic=None):
    """A sentence about `topic` (a random one if None), and the topic."""
    topic = topic or rng.choice(TOPIC_NAMES)
    # the city is drawn before deciding whether to use it: the draw order defines the examples
    where = rng.choice(["", f" in {rng.choice(CITIES)}"])
    return f"{rng.choice(FILLER)}{rng.choice(NAMES)} {rng.choice(TOPICS[topic])}{where}.", topic


def _sentiment(pos, neg):
    def gen(rng):
        s, ok = _review(rng)
        return s, pos if ok else neg
    return gen


def _topic(mapping):
    def gen(rng):
        s, t = _topical(rng)
        return s, mapping[t]
    return gen


def _is_topic(topic):
    """Generator: 40% of sentences forced onto `topic`, the rest random (so about half are yes)."""
    def gen(rng):
        s, t = _topical(rng, topic if rng.random() < 0.4 else None)
        return s, "yes" if t == topic else "no"
    return gen


def _is_question(rng):
    s = _topical(rng)[0]
    q = rng.random() < 0.5
    return (s[:-1] + "?" if q else s), "yes" if q else "no"


def _text_class():
    rows = []
    for p, n in SENTIMENT_LABELS:
        whats = [f"classify the sentiment of the review as '{p}' or '{n}'",
                 f"decide whether the opinion is favourable ('{p}') or unfavourable ('{n}')",
                 f"label the review '{p}' when it praises and '{n}' when it complains",
                 f"tell if the writer was pleased, answering '{p}' or '{n}'"]
        rows.append((f"sentiment_{p}_{n}", whats, _sentiment(p, n), "label", (p, n)))
    for style, mapping in TOPIC_LABELS:
        legend = ", ".join(f"{v} for {t}" if style == "letters" else t for t, v in mapping.items())
        whats = [f"classify the topic of the sentence ({legend})",
                 f"name the subject area of the sentence, one of: {legend}",
                 f"decide what the sentence is about among {legend}",
                 f"label the sentence with its topic ({legend})"]
        rows.append((f"topic_{style}", whats, _topic(mapping), "label", tuple(mapping.values())))
    for t in TOPIC_NAMES:
        whats = [f"decide whether the sentence is about {t}, answering yes or no",
                 f"say yes if the topic is {t} and no otherwise",
                 f"label the sentence yes when it concerns {t}, else no",
                 f"tell whether the sentence talks about {t} (yes/no)"]
        rows.append((f"is_{t}", whats, _is_topic(t), "label", ("yes", "no")))
    whats = ["decide whether the sentence is a question, answering yes or no",
             "say yes if it asks something and no if it states something",
             "label questions yes and statements no",
             "tell whether the sentence is interrogative (yes/no)"]
    rows.append(("is_question", whats, _is_question, "label", ("yes", "no")))
    return "a sentence", "a label", rows


# 9. extraction: pull one field out of a sentence ----------------------------------------------
# (Each generator draws its values left to right as written: that order defines the examples.)

def _extract_number(rng):
    n, who, thing = rng.randint(2, 999), rng.choice(NAMES), rng.choice(NOUNS)
    return f"{who} bought {n} {thing}s at the market.", str(n)


def _extract_name(rng):
    if rng.random() < 0.5:
        who, city = rng.choice(NAMES), rng.choice(CITIES)
        return f"Last year {who} moved to {city} for work.", who
    who, thing = rng.choice(NAMES), rng.choice(NOUNS)
    return f"The {thing} was a gift from {who}.", who


def _extract_city(rng):
    who, city, thing = rng.choice(NAMES), rng.choice(CITIES), rng.choice(NOUNS)
    return f"{who} sent a {thing} from {city} yesterday.", city


def _extract_color(rng):
    who, c, thing = rng.choice(NAMES), rng.choice(COLORS), rng.choice(NOUNS)
    return f"{who} painted the {thing} {c} last week.", c


def _extract_domain(rng):
    user, domain = rng.choice(NAMES).lower(), rng.choice(DOMAINS)
    k = rng.randint(1, 99)
    return f"Contact: {user}{k}@{domain}", domain


def _extract_user(rng):
    user, domain = rng.choice(NAMES).lower() + str(rng.randint(1, 99)), rng.choice(DOMAINS)
    return f"Contact: {user}@{domain}", user


def _meeting(rng):
    """A dated sentence, its year and its month."""
    y, m, d = rng.randint(1900, 2030), rng.choice(MONTHS), rng.randint(1, 28)
    return f"The meeting took place on {m} {d}, {y}.", y, m


def _extract_year(rng):
    s, y, _ = _meeting(rng)
    return s, str(y)


def _extract_month(rng):
    s, _, m = _meeting(rng)
    return s, m


def _extract_quoted(rng):
    who, w = rng.choice(NAMES), rng.choice(NOUNS)
    return f'{who} kept saying "{w}" all day.', w


def _extract_price(rng):
    who, thing, p = rng.choice(NAMES), rng.choice(NOUNS), rng.randint(1, 999)
    return f"{who} paid ${p} for the {thing}.", f"${p}"


def _extract_weekday(rng):
    who, d, place = rng.choice(NAMES), rng.choice(WEEKDAYS), rng.choice(CITIES + NOUNS)
    return f"On {d} {who} drove to {place}.", d


def _extract_fruit(rng):
    who, f, city = rng.choice(NAMES), rng.choice(FRUITS), rng.choice(CITIES)
    return f"{who} ate a {f} in {city}.", f


def _extract_time(rng):
    who, h, m, thing = rng.choice(NAMES), rng.randint(1, 12), rng.randint(0, 59), rng.choice(NOUNS)
    return f"{who} fixed the {thing} at {h}:{m:02d}.", f"{h}:{m:02d}"


def _extract_animal(rng):
    who, a, city = rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(CITIES)
    return f"{who} saw a {a} near {city}.", a


EXTRACTION = [  # (name, paraphrases, generator)
    ("extract_number", ["extract the number mentioned in the sentence",
                        "return the quantity that appears in the text",
                        "output only the number from the sentence",
                        "find the numeric value in the sentence"], _extract_number),
    ("extract_name", ["extract the person's name from the sentence",
                      "return who the sentence is about", "output only the name of the person",
                      "find the first name mentioned"], _extract_name),
    ("extract_city", ["extract the city mentioned in the sentence",
                      "return the place the sentence names", "output only the name of the city",
                      "find the city in the text"], _extract_city),
    ("extract_color", ["extract the color mentioned in the sentence",
                       "return the colour that the text names", "output only the color word",
                       "find which color is described"], _extract_color),
    ("extract_domain", ["extract the domain of the email address",
                        "return the part of the email after the @ sign",
                        "output only the mail server domain",
                        "find the domain name in the address"], _extract_domain),
    ("extract_user", ["extract the user name of the email address",
                      "return the part of the email before the @ sign",
                      "output only the local part of the address",
                      "find the account name in the email"], _extract_user),
    ("extract_year", ["extract the year from the date", "return the four-digit year mentioned",
                      "output only the year of the event",
                      "find which year the sentence refers to"], _extract_year),
    ("extract_month", ["extract the month from the date", "return the name of the month mentioned",
                       "output only the month of the event",
                       "find which month the sentence refers to"], _extract_month),
    ("extract_quoted", ["extract the word inside the quotation marks", "return the quoted word",
                        "output only the text between the quotes",
                        "find the word written in quotes"], _extract_quoted),
    ("extract_price", ["extract the price mentioned in the sentence",
                       "return the amount of money in the text",
                       "output only the cost, with its dollar sign",
                       "find how much something costs"], _extract_price),
    ("extract_weekday", ["extract the day of the week from the sentence",
                         "return the weekday mentioned", "output only the name of the day",
                         "find which weekday the text refers to"], _extract_weekday),
    ("extract_fruit", ["extract the fruit mentioned in the sentence",
                       "return which fruit the text names", "output only the fruit",
                       "find the piece of fruit in the sentence"], _extract_fruit),
    ("extract_time", ["extract the clock time from the sentence",
                      "return the time of day mentioned", "output only the time",
                      "find at what time the event happens"], _extract_time),
    ("extract_animal", ["extract the animal mentioned in the sentence",
                        "return which animal the text names", "output only the animal",
                        "find the creature in the sentence"], _extract_animal),
]


def _extraction():
    rows = [(n, w, g, "exact") for n, w, g in EXTRACTION]
    return "a sentence", "the extracted text", rows


# 10. word_relations: map each word through a lexical relation ---------------------------------

def _relate(pairs):
    """Generator: 2 or 3 distinct (word, mapped word) pairs -> "w1, w2[, w3]" and the mapped."""
    def gen(rng):
        ps = rng.sample(pairs, 2) if rng.random() < 0.5 else rng.sample(pairs, 3)
        return ", ".join(p[0] for p in ps), ", ".join(p[1] for p in ps)
    return gen


WORD_RELATIONS = [  # (name, paraphrases, [(word, mapped word), ...])
    ("rel_antonym", ["give the opposite of each word", "return the antonym of every word",
                     "write a word with the contrary meaning for each",
                     "replace each word by its opposite"],
     ANTONYMS + [(b, a) for a, b in ANTONYMS]),
    ("rel_plural", ["give the plural of each noun", "return every noun in its plural form",
                    "write each word as more than one", "convert each noun to the plural"],
     PLURALS),
    ("rel_singular", ["give the singular of each noun", "return every noun in its singular form",
                      "write each word as just one", "convert each plural noun to the singular"],
     [(b, a) for a, b in PLURALS]),
    ("rel_past", ["give the past tense of each verb", "return every verb in the simple past",
                  "write each verb as it would be used for yesterday",
                  "convert each verb to the past tense"], PAST),
    ("rel_present", ["give the base form of each past-tense verb",
                     "return every verb in the present tense",
                     "write each verb without its past tense",
                     "convert each past verb back to its infinitive"], [(b, a) for a, b in PAST]),
    ("rel_comparative", ["give the comparative form of each adjective",
                         "return every adjective as a comparison, like bigger",
                         "write each adjective in its -er form",
                         "convert each adjective to the comparative"], COMPARATIVE),
    ("rel_category", ["name the category of each word (animal, fruit, vehicle or tool)",
                      "return the kind of thing each word is",
                      "write the group each word belongs to",
                      "classify each word as animal, fruit, vehicle or tool"],
     list(CATEGORY.items())),
]


def _word_relations():
    rows = [(n, w, _relate(pairs), "exact") for n, w, pairs in WORD_RELATIONS]
    return "a short list of words", "the mapped words", rows


# 11. comparison: decide between two things ----------------------------------------------------

def _longer_word(rng):
    a, b = _distinct_len(rng)
    return f"{a}, {b}", a if len(a) > len(b) else b


def _shorter_word(rng):
    a, b = _distinct_len(rng)
    return f"{a}, {b}", a if len(a) < len(b) else b


def _alpha_first(rng):
    a, b = rng.sample(NOUNS, 2)
    return f"{a}, {b}", min(a, b)


def _alpha_last(rng):
    a, b = rng.sample(NOUNS, 2)
    return f"{a}, {b}", max(a, b)


def _heights(rng):
    """A height comparison, said either way round; returns (sentence, taller, shorter)."""
    a, b = rng.sample(NAMES, 2)
    flip = rng.random() < 0.5
    return (f"{a} is taller than {b}." if not flip else f"{b} is shorter than {a}."), a, b


def _taller(rng):
    s, tall, _ = _heights(rng)
    return s, tall


def _shorter(rng):
    s, _, short = _heights(rng)
    return s, short


def _ages(rng):
    """Two people's ages (distinct); returns (sentence, older, younger)."""
    a, b = rng.sample(NAMES, 2)
    x, y = rng.sample(range(5, 90), 2)
    s = f"{a} is {x} years old and {b} is {y}."
    return (s, a, b) if x > y else (s, b, a)


def _older(rng):
    s, old, _ = _ages(rng)
    return s, old


def _younger(rng):
    s, _, young = _ages(rng)
    return s, young


def _is_sorted(rng):
    a, b = rng.sample(NOUNS, 2)
    return f"{a}, {b}", "yes" if a < b else "no"


def _same_number(rng):
    a, same = rng.randint(0, 999), rng.random() < 0.5
    b = a if same else a + rng.randint(1, 9)
    return f"{a} and {b}", "yes" if same else "no"


COMPARISON = [  # (name, paraphrases, generator, metric[, labels])
    ("cmp_longer_word", ["return the longer of the two words", "pick the word with more letters",
                         "output whichever word is longer", "give the lengthier word of the pair"],
     _longer_word, "exact"),
    ("cmp_shorter_word", ["return the shorter of the two words",
                          "pick the word with fewer letters", "output whichever word is shorter",
                          "give the briefer word of the pair"], _shorter_word, "exact"),
    ("cmp_alpha_first", ["return the word that comes first alphabetically",
                         "pick the word earlier in the dictionary",
                         "output whichever word sorts first from A to Z",
                         "give the alphabetically smaller word"], _alpha_first, "exact"),
    ("cmp_alpha_last", ["return the word that comes last alphabetically",
                        "pick the word later in the dictionary",
                        "output whichever word sorts last from A to Z",
                        "give the alphabetically larger word"], _alpha_last, "exact"),
    ("cmp_taller", ["answer who is taller", "read the comparison and name the taller person",
                    "output the name of the tallest one",
                    "decide which person has the greater height"], _taller, "exact"),
    ("cmp_shorter", ["answer who is shorter", "read the comparison and name the shorter person",
                     "output the name of the less tall one",
                     "decide which person has the smaller height"], _shorter, "exact"),
    ("cmp_older", ["answer who is older", "read the statement and name the older person",
                   "output the name of the one born first",
                   "decide which person has the greater age"], _older, "exact"),
    ("cmp_younger", ["answer who is younger", "read the statement and name the younger person",
                     "output the name of the one born last",
                     "decide which person has the smaller age"], _younger, "exact"),
    ("cmp_is_sorted", ["decide whether the two words are in alphabetical order, "
                       "answering yes or no",
                       "say yes if the first word comes before the second in the dictionary",
                       "tell whether the pair is sorted from A to Z (yes/no)",
                       "label alphabetically ordered pairs yes and others no"],
     _is_sorted, "label", ("yes", "no")),
    ("cmp_same_number", ["decide whether the two numbers are equal, answering yes or no",
                         "say yes if both numbers are the same and no otherwise",
                         "tell whether the pair holds one value twice (yes/no)",
                         "label equal pairs yes and different pairs no"],
     _same_number, "label", ("yes", "no")),
]


def _comparison():
    return "a pair of items", "one of them", COMPARISON


# 12. sequence: continue or invert a simple progression ----------------------------------------

ALPHABET = string.ascii_lowercase


def _next_arith(rng):
    a, d = rng.randint(0, 200), rng.randint(1, 20)
    return _fmt([a + i * d for i in range(4)]), str(a + 4 * d)


def _prev_arith(rng):
    a, d = rng.randint(20, 300), rng.randint(1, 20)
    return _fmt([a + i * d for i in range(4)]), str(a - d)


def _missing(rng):
    a, d, k = rng.randint(0, 50), rng.randint(1, 12), rng.randint(1, 3)
    return ", ".join("?" if i == k else str(a + i * d) for i in range(5)), str(a + k * d)


def _next_letter(rng):
    """A run of letters tagged with a number ("c7, d7") -> the next one ("e7")."""
    i, n, k = rng.randint(0, 20), rng.randint(2, 5), rng.randint(1, 20)
    return ", ".join(f"{c}{k}" for c in ALPHABET[i:i + n]), f"{ALPHABET[i + n]}{k}"


def _next_day(rng):
    i, n, s, m = rng.randint(0, 6), rng.randint(2, 3), rng.randint(1, 25), rng.choice(MONTHS)
    days = ", ".join(f"{WEEKDAYS[(i + j) % 7]} {m} {s + j}" for j in range(n))
    return days, f"{WEEKDAYS[(i + n) % 7]} {m} {s + n}"


def _next_month(rng):
    i, n, y = rng.randint(0, 11), rng.randint(2, 3), rng.randint(1950, 2040)
    months = ", ".join(f"{MONTHS[(i + j) % 12]} {y + (i + j) // 12}" for j in range(n))
    return months, f"{MONTHS[(i + n) % 12]} {y + (i + n) // 12}"


def _step(rng):
    a, d = rng.randint(0, 90), rng.randint(1, 30)
    return _fmt([a + i * d for i in range(4)]), str(d)


def _prev_letter(rng):
    """Mostly tagged runs ("c7, d7" -> "b7"); 5% plain runs ("c, d" -> "b": only 84 exist)."""
    if rng.random() < 0.05:
        i, n = rng.randint(1, 21), rng.randint(2, 5)
        return ", ".join(ALPHABET[i:i + n]), ALPHABET[i - 1]
    i, n, k = rng.randint(1, 21), rng.randint(2, 4), rng.randint(1, 20)
    return ", ".join(f"{c}{k}" for c in ALPHABET[i:i + n]), f"{ALPHABET[i - 1]}{k}"


def _double_next(rng):
    a = rng.randint(1, 1999)
    return _fmt([a * 2**i for i in range(3)]), str(a * 8)


SEQUENCE = [  # (name, paraphrases, generator)
    ("seq_next_arith", ["give the next number of the arithmetic sequence",
                        "continue the sequence by one term", "output the number that comes next",
                        "extend the evenly spaced sequence by one"], _next_arith),
    ("seq_prev_arith", ["give the number that comes before the sequence",
                        "extend the arithmetic sequence backwards by one term",
                        "output the term preceding the first one",
                        "find the number that would start the sequence one step earlier"],
     _prev_arith),
    ("seq_missing", ["find the missing number in the arithmetic sequence, marked by ?",
                     "fill in the question mark of the sequence",
                     "output the term hidden by the ? sign",
                     "complete the sequence by replacing ? with the right number"], _missing),
    ("seq_next_letter", ["give the letter that follows the last one in the alphabet",
                         "continue the run of consecutive letters by one",
                         "output the next letter of the alphabetical run",
                         "extend the letter sequence by one"], _next_letter),
    ("seq_next_day", ["give the weekday that follows the last one listed",
                      "continue the run of days of the week", "output the next day of the week",
                      "extend the list of days by one"], _next_day),
    ("seq_next_month", ["give the month that follows the last one listed",
                        "continue the run of months", "output the next month of the year",
                        "extend the list of months by one"], _next_month),
    ("seq_step", ["give the common difference of the arithmetic sequence",
                  "return how much each term grows by",
                  "output the step between consecutive numbers",
                  "find the constant gap of the sequence"], _step),
    ("seq_prev_letter", ["give the letter that comes before the first one in the alphabet",
                         "extend the run of consecutive letters backwards by one",
                         "output the letter preceding the alphabetical run",
                         "find the letter just before the sequence"], _prev_letter),
    ("seq_double_next", ["give the next number of the doubling sequence",
                         "continue the sequence where each term is twice the previous",
                         "output the term after the last, doubling it",
                         "extend the geometric sequence with ratio two"], _double_next),
]


def _sequence():
    return "a sequence", "the missing item", [(n, w, g, "exact") for n, w, g in SEQUENCE]


# 13. text_edit: wrap or decorate a phrase -----------------------------------------------------

def _edit(fn):
    """Generator: a phrase of 2-3 nouns -> fn(phrase)."""
    def gen(rng):
        s = " ".join(_words(rng, rng.randint(2, 3)))
        return s, fn(s)
    return gen


TEXT_EDIT = [  # (name, paraphrases, phrase -> edited phrase)
    ("edit_brackets", ["wrap the phrase in square brackets", "put [ before and ] after the text",
                       "enclose the phrase in brackets", "surround the text with square brackets"],
     lambda s: f"[{s}]"),
    ("edit_quotes", ["wrap the phrase in double quotes", "put quotation marks around the text",
                     "enclose the phrase in quotes",
                     "surround the text with double quotation marks"], lambda s: f'"{s}"'),
    ("edit_exclaim", ["add an exclamation mark at the end", "finish the phrase with !",
                      "append an exclamation point", "end the text with an exclamation mark"],
     lambda s: s + "!"),
    ("edit_question", ["turn the phrase into a question by adding a question mark",
                       "finish the phrase with ?", "append a question mark",
                       "end the text with a question mark"], lambda s: s + "?"),
    ("edit_repeat", ["repeat the phrase twice, separated by a space", "write the text two times",
                     "output the phrase followed by itself", "say the phrase twice"],
     lambda s: f"{s} {s}"),
    ("edit_prefix_the", ["put the word 'the' in front of the phrase", "prepend 'the' to the text",
                         "start the phrase with the article the", "add 'the' before the phrase"],
     lambda s: f"the {s}"),
    ("edit_hashtag", ["turn the phrase into a hashtag", "remove the spaces and put # in front",
                      "write the text as a single #tag", "make a hashtag out of the phrase"],
     lambda s: "#" + s.replace(" ", "")),
    ("edit_parens", ["wrap the phrase in round parentheses", "put ( before and ) after the text",
                     "enclose the phrase in parentheses", "surround the text with round brackets"],
     lambda s: f"({s})"),
    ("edit_braces", ["wrap the phrase in curly braces", "put { before and } after the text",
                     "enclose the phrase in curly brackets", "surround the text with braces"],
     lambda s: "{" + s + "}"),
    ("edit_angle", ["wrap the phrase in angle brackets", "put < before and > after the text",
                    "enclose the phrase in chevrons", "surround the text with < and >"],
     lambda s: f"<{s}>"),
    ("edit_period", ["end the phrase with a full stop", "finish the text with a period",
                     "append a dot at the end", "add a period after the phrase"],
     lambda s: s + "."),
    ("edit_prefix_a", ["put the word 'a' in front of the phrase",
                       "prepend the article 'a' to the text", "start the phrase with the word a",
                       "add 'a' before the phrase"], lambda s: f"a {s}"),
    ("edit_parens_count", ["append the number of words in parentheses",
                           "write the phrase followed by its word count in brackets ( )",
                           "add the count of words in parentheses after the text",
                           "output the text and then its number of words in round brackets"],
     lambda s: f"{s} ({len(s.split())})"),
]


def _text_edit():
    rows = [(n, w, _edit(fn), "exact") for n, w, fn in TEXT_EDIT]
    return "a short phrase", "the edited phrase", rows


# 14. cipher (held out): letter-level encodings of a pseudo-word -------------------------------

CAESAR_K = (1, 2, 3, 4, 5, 7, 13)


def _encode(fn):
    """Generator: a pseudo-word -> fn(word)."""
    def gen(rng):
        w = _pseudo_word(rng)
        return w, fn(w)
    return gen


def _caesar(k):
    """word -> every letter k places later in the alphabet, z wrapping to a."""
    return lambda w: "".join(chr((ord(c) - 97 + k) % 26 + 97) for c in w)


CIPHER = [  # (name, paraphrases, word -> encoded word)
    ("cipher_atbash", ["replace each letter by its mirror in the alphabet (a<->z, b<->y)",
                       "apply the Atbash cipher", "encode the word by reversing the alphabet",
                       "map a to z, b to y and so on"],
     lambda w: "".join(chr(219 - ord(c)) for c in w)),  # ord("a") + ord("z") = 219
    ("cipher_positions", ["write the alphabet position of each letter, separated by dashes",
                          "encode each letter as its number in the alphabet (a=1)",
                          "turn the word into numbers, one per letter, joined by -",
                          "output the letter indices of the word"],
     lambda w: "-".join(str(ord(c) - 96) for c in w)),
    ("cipher_shift_back", ["shift every letter one place back in the alphabet",
                           "decode a Caesar cipher of shift one",
                           "encode the word by moving each letter one step earlier, "
                           "wrapping from a to z",
                           "replace each letter with the one before it"],
     lambda w: "".join(chr((ord(c) - 98) % 26 + 97) for c in w)),
    ("cipher_next_vowel", ["replace each vowel by the next vowel (a->e, e->i, i->o, o->u, u->a)",
                           "rotate the vowels of the word by one",
                           "encode the word by moving every vowel to the following vowel",
                           "swap each vowel for the next one in a, e, i, o, u"],
     lambda w: "".join("eioua"["aeiou".index(c)] if c in "aeiou" else c for c in w)),
    ("cipher_swap_pairs", ["swap each pair of neighbouring letters",
                           "exchange letters one and two, three and four, and so on",
                           "encode the word by swapping adjacent letter pairs",
                           "switch the places of every two consecutive letters"],
     lambda w: "".join(w[i + 1] + w[i] if i + 1 < len(w) else w[i] for i in range(0, len(w), 2))),
]


def _cipher():
    rows = []
    for k in CAESAR_K:
        whats = [f"shift every letter {k} places forward in the alphabet",
                 f"apply a Caesar cipher with shift {k}",
                 f"encode the word by moving each letter {k} steps later, wrapping from z to a",
                 f"replace each letter with the one {k} positions after it"]
        rows.append((f"caesar_{k}", whats, _encode(_caesar(k)), "exact"))
    rows += [(n, w, _encode(fn), "exact") for n, w, fn in CIPHER]
    return "a word", "the encoded word", rows


# 15. format (held out): change the notation of a value ----------------------------------------

def _date(rng):
    """year 1950..2049, month, day 1..28 (every month has it)."""
    return rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28)


def _clock12(h, m):
    """24-hour h:m on a 12-hour clock: 0:05 -> 12:05 am, 13:30 -> 1:30 pm."""
    return f"{(h - 1) % 12 + 1}:{m:02d} {'am' if h < 12 else 'pm'}"


def _iso_to_us(rng):
    y, m, d = _date(rng)
    return f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}"


def _iso_to_eu(rng):
    y, m, d = _date(rng)
    return f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}"


def _us_to_iso(rng):
    y, m, d = _date(rng)
    return f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}"


def _eu_to_iso(rng):
    y, m, d = _date(rng)
    return f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}"


def _time_12h(rng):
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    return f"{h:02d}:{m:02d}", _clock12(h, m)


def _time_24h(rng):
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    return _clock12(h, m), f"{h:02d}:{m:02d}"


def _thousands(rng):
    n = rng.randint(1000, 99_999_999)
    return str(n), f"{n:,}"


def _cents(rng):
    c = rng.randint(1, 99999)
    return f"{c} cents", f"${c // 100}.{c % 100:02d}"


def _minutes(rng):
    n = rng.randint(61, 1500)
    return f"{n} minutes", f"{n // 60} h {n % 60} min"


def _percent(rng):
    """Mostly a.bc -> abc% (a in 0..30); 5% of the time 0.bc with bc >= 1."""
    if rng.random() < 0.05:
        n = rng.randint(1, 99)
        return f"0.{n:02d}", f"{n}%"
    a, n = rng.randint(0, 30), rng.randint(0, 99)
    return f"{a}.{n:02d}", f"{a * 100 + n}%"


def _kv_to_json(rng):
    k, v = rng.choice(NOUNS), rng.choice(COLORS + FRUITS + CITIES)
    return f"{k}={v}", f'{{"{k}": "{v}"}}'


FORMAT = [  # (name, paraphrases, generator)
    ("format_iso_to_us", ["convert the date from YYYY-MM-DD to MM/DD/YYYY",
                          "rewrite the ISO date in American notation",
                          "change year-month-day into month/day/year",
                          "format the date the US way"], _iso_to_us),
    ("format_iso_to_eu", ["convert the date from YYYY-MM-DD to DD.MM.YYYY",
                          "rewrite the ISO date in European dotted notation",
                          "change year-month-day into day.month.year",
                          "format the date the German way"], _iso_to_eu),
    ("format_us_to_iso", ["convert the date from MM/DD/YYYY to YYYY-MM-DD",
                          "rewrite the American date in ISO notation",
                          "change month/day/year into year-month-day",
                          "format the date as ISO 8601"], _us_to_iso),
    ("format_time_12h", ["convert the 24-hour time to 12-hour format with am or pm",
                         "rewrite the time on a 12-hour clock",
                         "change military time into am/pm time",
                         "format the clock time with a.m./p.m. style suffix am or pm"], _time_12h),
    ("format_thousands", ["write the number with commas as thousands separators",
                          "insert a comma every three digits",
                          "format the integer with digit grouping",
                          "add thousands separators to the number"], _thousands),
    ("format_cents", ["convert the amount in cents to dollars with a $ sign",
                      "rewrite cents as a dollar amount with two decimals",
                      "express the number of cents in dollars", "format the cents value as $X.YY"],
     _cents),
    ("format_minutes", ["convert the number of minutes to hours and minutes",
                        "rewrite the duration as H h M min",
                        "express the minutes as hours plus minutes",
                        "format the duration in hours and minutes"], _minutes),
    ("format_time_24h", ["convert the 12-hour time with am or pm to 24-hour format",
                         "rewrite the time on a 24-hour clock",
                         "change am/pm time into military time",
                         "format the clock time as HH:MM from 00:00 to 23:59"], _time_24h),
    ("format_eu_to_iso", ["convert the date from DD.MM.YYYY to YYYY-MM-DD",
                          "rewrite the European date in ISO notation",
                          "change day.month.year into year-month-day",
                          "format the dotted date as ISO 8601"], _eu_to_iso),
    ("format_percent", ["convert the fraction with two decimals to a percentage",
                        "rewrite the decimal as a percent", "express the decimal number in percent",
                        "format the value like 25%"], _percent),
    ("format_kv_to_json", ["convert the key=value pair into a JSON object",
                           "rewrite key=value as {\"key\": \"value\"}",
                           "turn the assignment into JSON",
                           "format the pair as a one-entry JSON object"], _kv_to_json),
]


def _format():
    return "a value", "the reformatted value", [(n, w, g, "exact") for n, w, g in FORMAT]


# -----------------------------------------------------------------------------
# The family table: family -> (input phrase, output phrase, rows), in suite order. The order
# matters: it is the order of builtin_tasks(), and so of every listing built from it.

def _families():
    return {
        "list_pick": _list_pick(),
        "list_order": _list_order(),
        "arithmetic": _arithmetic(),
        "counting": _counting(),
        "word_ops": _word_ops(),
        "char_ops": _char_ops(),
        "number_class": _number_class(),
        "text_class": _text_class(),
        "extraction": _extraction(),
        "word_relations": _word_relations(),
        "comparison": _comparison(),
        "sequence": _sequence(),
        "text_edit": _text_edit(),
        "cipher": _cipher(),  # held out (HELD_OUT_FAMILIES)
        "format": _format(),  # held out (HELD_OUT_FAMILIES)
    }


# -----------------------------------------------------------------------------
# The suite and its splits


def builtin_tasks(seed: int = SEED) -> dict[str, Task]:
    """All built-in tasks by name (deterministic)."""
    tasks = {}
    for family, (inp, out, rows) in _families().items():
        for row in rows:
            name, whats, gen, metric = row[:4]
            labels = tuple(row[4]) if len(row) > 4 else ()
            if name in tasks:
                raise RuntimeError(f"duplicate task name {name}")
            train_d, eval_d = make_descriptions(whats, inp, out, name, seed)
            tasks[name] = Task(name=name, family=family, metric=metric, train_descriptions=train_d,
                               eval_descriptions=eval_d, labels=labels,
                               definition=make_definition(whats, inp, out), gen=gen, seed=seed)
    return tasks


def splits(tasks: dict[str, Task], seed: int = SEED, frac_val: float = 0.1,
           frac_test: float = 0.15) -> dict[str, list[str]]:
    """Split by *task*: {"train", "val", "test"} -> task names.

    Families in HELD_OUT_FAMILIES go wholly to test (out of domain). Of every other family, a
    seeded ~10% of tasks become unseen-validation tasks (for choosing checkpoints) and ~15%
    unseen-test tasks (for the final table); at least one of each per family."""
    out = {"train": [], "val": [], "test": []}
    by_family = {}
    for t in tasks.values():
        by_family.setdefault(t.family, []).append(t.name)
    for fam in sorted(by_family):
        names = sorted(by_family[fam])
        if fam in HELD_OUT_FAMILIES:
            out["test"] += names
            continue
        random.Random(stable_seed(seed, fam, "split")).shuffle(names)
        n_val = max(1, round(frac_val * len(names)))
        n_test = max(1, round(frac_test * len(names)))
        out["val"] += names[:n_val]
        out["test"] += names[n_val:n_val + n_test]
        out["train"] += names[n_val + n_test:]
    return {k: sorted(v) for k, v in out.items()}
