"""
data/tasks.py: the Task interface, and the built-in offline task suite.

T2L learns a map from a task description to an adapter *across many tasks* and is judged on
tasks it never saw (paper section 4). Model hubs are unreachable here, so the project generates
its own task collection: ~220 small tasks in 15 families, each with

  - a name, a family and a metric (exact match, label accuracy or ROUGE-L),
  - 16+ varied training descriptions and 3 separate evaluation descriptions,
  - an example generator: 1,000+ distinct training examples and fixed validation/test examples.

Tasks of one family share their input format but differ in what they ask ("sort ascending",
"largest item", ... -> unseen "sort descending"), so an unseen task can be inferred from its
description. Two whole families (cipher, format) are held out of training: the out-of-domain
split, as code generation is in the paper.

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
    alternatives: tuple = ()  # other correct answers (SNI lists several outputs); the best match counts


@dataclass
class Task:
    name: str  # unique id, e.g. "list_sort_asc"
    family: str  # tasks of one family share their input format
    metric: str  # "exact" | "label" | "rougeL"
    train_descriptions: list  # descriptions T2L may see in training
    eval_descriptions: list  # 3 descriptions kept for zero-shot evaluation, disjoint from the above
    labels: tuple = ()  # the label words, for metric "label"
    gen: Callable | None = field(default=None, repr=False)  # rng -> (input, answer), built-in tasks
    fixed: dict | None = field(default=None, repr=False)  # {"train"|"val"|"test": [Example]}, SNI tasks
    source: str = "builtin"  # "builtin" | "sni"
    seed: int = SEED

    def examples(self, split: str, n: int | None = None) -> list[Example]:
        """The first n examples of a split. val/test are fixed; train never repeats a val/test input."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if self.fixed is not None:
            ex = self.fixed[split]
            return ex if n is None else ex[:n]
        if split == "val":
            return self._distinct("val", N_VAL if n is None else min(n, N_VAL), set())
        if split == "test":
            return self._distinct("test", N_TEST if n is None else min(n, N_TEST), set())
        held = {e.input for e in self._distinct("val", N_VAL, set()) + self._distinct("test", N_TEST, set())}
        return self._distinct("train", 1000 if n is None else n, held)

    def _distinct(self, split, n, exclude):
        rng = random.Random(_stable_seed(self.seed, self.name, split))
        out, seen = [], set(exclude)
        for _ in range(n * 50):
            inp, ans = self.gen(rng)
            if inp not in seen:
                seen.add(inp)
                out.append(Example(inp, ans))
                if len(out) == n:
                    return out
        raise RuntimeError(f"task {self.name}: could only draw {len(out)} distinct {split} examples, wanted {n}")


def _stable_seed(*parts) -> int:
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


def make_descriptions(whats, inp, out, name, seed=SEED):
    """whats: >= 3 paraphrases (lower-case verb phrases). Returns (16 train, 3 eval) descriptions."""
    fill = lambda frame, w: frame.format(What=w[0].upper() + w[1:], what=w, inp=inp, out=out)
    train = sorted({fill(f, w) for f in TRAIN_FRAMES for w in whats[:-1]})
    random.Random(_stable_seed(seed, name, "desc")).shuffle(train)
    evals = [fill(f, whats[-1]) for f in EVAL_FRAMES]
    return train[:24], evals


# -----------------------------------------------------------------------------
# Vocabulary for the generators (small, hand-written, common English words).

NOUNS = ("apple house river table garden window doctor music pencil bottle forest camera ocean bridge "
         "engine letter planet island market candle mirror basket jacket ladder rocket violin wallet "
         "tunnel bucket pillow carpet blanket hammer castle desert harbor kitten meadow needle orange "
         "parrot quarter saddle tomato turtle village wagon yellow zebra anchor button cookie dragon "
         "feather guitar helmet kettle lemon magnet napkin pepper rabbit spider tiger").split()
ANTONYMS = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
            ("high", "low"), ("old", "new"), ("rich", "poor"), ("early", "late"), ("hard", "soft"),
            ("strong", "weak"), ("open", "closed"), ("full", "empty"), ("wet", "dry"), ("loud", "quiet"),
            ("thick", "thin"), ("clean", "dirty"), ("long", "short"), ("cheap", "expensive"), ("near", "far"),
            ("true", "false"), ("first", "last"), ("up", "down"), ("inside", "outside"), ("day", "night"),
            ("win", "lose"), ("push", "pull"), ("buy", "sell"), ("give", "take"), ("love", "hate")]
PLURALS = [("cat", "cats"), ("dog", "dogs"), ("box", "boxes"), ("child", "children"), ("mouse", "mice"),
           ("city", "cities"), ("knife", "knives"), ("tooth", "teeth"), ("foot", "feet"), ("man", "men"),
           ("woman", "women"), ("baby", "babies"), ("bus", "buses"), ("leaf", "leaves"), ("book", "books"),
           ("church", "churches"), ("goose", "geese"), ("story", "stories"), ("wolf", "wolves"), ("car", "cars"),
           ("dish", "dishes"), ("party", "parties"), ("tree", "trees"), ("person", "people"), ("fox", "foxes"),
           ("hero", "heroes"), ("lady", "ladies"), ("shelf", "shelves"), ("bird", "birds"), ("key", "keys")]
PAST = [("go", "went"), ("eat", "ate"), ("run", "ran"), ("see", "saw"), ("take", "took"), ("write", "wrote"),
        ("sing", "sang"), ("swim", "swam"), ("drink", "drank"), ("make", "made"), ("walk", "walked"),
        ("play", "played"), ("jump", "jumped"), ("cook", "cooked"), ("talk", "talked"), ("buy", "bought"),
        ("think", "thought"), ("bring", "brought"), ("teach", "taught"), ("fly", "flew"), ("draw", "drew"),
        ("find", "found"), ("sit", "sat"), ("speak", "spoke"), ("begin", "began"), ("know", "knew"),
        ("open", "opened"), ("watch", "watched"), ("call", "called"), ("help", "helped")]
COMPARATIVE = [("big", "bigger"), ("small", "smaller"), ("fast", "faster"), ("tall", "taller"), ("good", "better"),
               ("bad", "worse"), ("happy", "happier"), ("old", "older"), ("young", "younger"), ("long", "longer"),
               ("short", "shorter"), ("hot", "hotter"), ("cold", "colder"), ("easy", "easier"), ("hard", "harder"),
               ("strong", "stronger"), ("weak", "weaker"), ("rich", "richer"), ("far", "farther"), ("near", "nearer")]
ANIMALS = "dog cat horse cow sheep lion tiger bear wolf fox rabbit mouse eagle owl duck goat pig deer monkey zebra".split()
FRUITS = "apple banana cherry grape lemon mango orange peach pear plum melon kiwi".split()
COLORS = "red blue green yellow purple orange black white pink brown gray".split()
VEHICLES = "car bus train truck bicycle boat plane taxi tractor scooter".split()
TOOLS = "hammer saw drill wrench shovel ladder needle scissors knife rake".split()
CATEGORY = {**{w: "animal" for w in ANIMALS}, **{w: "fruit" for w in FRUITS if w != "orange"},
            **{w: "vehicle" for w in VEHICLES}, **{w: "tool" for w in TOOLS if w not in ("needle", "knife")}}
NAMES = ("Anna Ben Carla David Emma Frank Grace Henry Iris Jack Kate Leo Maria Nick Olga Paul Rosa Sam Tina Victor "
         "Alice Bruno Chloe Diego Elena Felix Hanna Igor Julia Karl Laura Marco Nora Oscar Petra Rita Simon Ursula Walter Zoe").split()
CITIES = "Paris London Tokyo Berlin Madrid Rome Cairo Lima Oslo Dublin Vienna Prague Lisbon Athens Seoul Delhi".split()
DOMAINS = "gmail.com yahoo.com example.org mail.net school.edu company.io shop.co web.de".split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
POS_ADJ = "wonderful great excellent lovely amazing delightful fantastic pleasant superb brilliant".split()
NEG_ADJ = "terrible awful horrible boring dreadful poor disappointing unpleasant bad miserable".split()
SUBJECTS = ("the movie", "the meal", "the hotel", "the concert", "the book", "the service", "the trip",
            "the game", "the class", "the party", "the show", "the phone")
TOPICS = {  # what someone did, by topic: "<Name> <phrase><place>."
    "sports": ["won the match in the final minute", "scored two goals on Sunday", "broke the record at the stadium",
               "planned a hard training session", "played a long tennis final", "kicked the ball into the net"],
    "food": ["added more salt to the soup", "baked fresh bread this morning", "cooked pasta with garlic sauce",
             "ordered a salad and a lemonade", "grilled the fish with herbs", "shared a large pizza"],
    "weather": ["got caught in heavy rain", "watched the sky clear after the storm", "enjoyed a sunny and warm week",
                "saw snow cover the roads overnight", "felt strong winds all afternoon", "walked through a cold fog"],
    "music": ["played a new song on stage", "practised the piano for hours", "sang in the old church choir",
              "tuned the guitar before the show", "recorded an album with the band", "heard the orchestra play a symphony"],
    "technology": ["bought a phone with a faster chip", "installed the software update", "replaced the laptop battery",
                   "built an app for the clinic", "restarted the crashed server", "wrote code for the robot"],
}
FILLER = ["", "Yesterday, ", "Apparently, ", "As expected, ", "In the end, ", "Honestly, "]


def _num_list(rng, lo=0, hi=99, n=None):
    return [rng.randint(lo, hi) for _ in range(n or rng.randint(4, 6))]


def _fmt(xs):
    return ", ".join(map(str, xs))


def _words(rng, n=None, pool=NOUNS):
    return rng.sample(pool, n or rng.randint(3, 5))


def _is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


# -----------------------------------------------------------------------------
# Families. Each entry: (name, paraphrases of what to do, generator, metric[, labels]).
# Input/output kinds are per family and fill the description frames.

def _families():
    F = {}
    L = "a list of numbers"

    # 1. list_pick: one element of a list of numbers
    picks = [
        ("max", ["find the largest number in the list", "return the biggest value", "pick the maximum of the numbers", "output the highest number of the list"], max),
        ("min", ["find the smallest number in the list", "return the lowest value", "pick the minimum of the numbers", "output the least number of the list"], min),
        ("first", ["return the first number of the list", "output the number at the start of the list", "give the leading element", "write the first item"], lambda x: x[0]),
        ("last", ["return the last number of the list", "output the number at the end of the list", "give the final element", "write the last item"], lambda x: x[-1]),
        ("second", ["return the second number of the list", "output the element in position two", "give the item right after the first one", "write the second item"], lambda x: x[1]),
        ("second_last", ["return the second to last number", "output the element just before the last one", "give the penultimate item of the list", "write the next-to-last number"], lambda x: x[-2]),
        ("third", ["return the third number of the list", "output the element in position three", "give the item after the second one", "write the third item"], lambda x: x[2]),
        ("range", ["compute the largest number minus the smallest number", "return the range, max minus min, of the list", "subtract the minimum from the maximum", "output the spread between the biggest and smallest values"], lambda x: max(x) - min(x)),
        ("sum", ["add up all the numbers in the list", "return the total of the list", "compute the sum of every element", "output the sum of the numbers"], sum),
        ("max_even", ["find the largest even number in the list", "return the biggest number that is divisible by two", "pick the maximum among the even values", "output the highest even number"], None),
    ]
    F["list_pick"] = ("a list of numbers", "one number", [])
    for key, whats, fn in picks:
        if key == "max_even":
            def g(rng):
                xs = _num_list(rng)
                if not any(v % 2 == 0 for v in xs):
                    xs[0] += 1
                return _fmt(xs), str(max(v for v in xs if v % 2 == 0))
        elif key == "sum":
            g = (lambda fn: lambda rng: (lambda xs: (_fmt(xs), str(fn(xs))))(_num_list(rng, 0, 20, rng.randint(3, 4))))(fn)
        else:
            g = (lambda fn: lambda rng: (lambda xs: (_fmt(xs), str(fn(xs))))(_num_list(rng)))(fn)
        F["list_pick"][2].append((f"list_{key}", whats, g, "exact"))

    # 2. list_order: rearrange a list of numbers
    orders = [
        ("sort_asc", ["sort the numbers in ascending order", "arrange the list from smallest to largest", "order the numbers increasingly", "put the values in increasing order"], sorted),
        ("sort_desc", ["sort the numbers in descending order", "arrange the list from largest to smallest", "order the numbers decreasingly", "put the values in decreasing order"], lambda x: sorted(x, reverse=True)),
        ("reverse", ["reverse the order of the list", "write the list backwards", "output the numbers from last to first", "flip the order of the elements"], lambda x: x[::-1]),
        ("drop_first", ["remove the first number of the list", "output the list without its first element", "drop the leading item", "delete the first value and keep the rest"], lambda x: x[1:]),
        ("drop_last", ["remove the last number of the list", "output the list without its final element", "drop the trailing item", "delete the last value and keep the rest"], lambda x: x[:-1]),
        ("first_two", ["keep only the first two numbers", "output the first two elements", "return the two leading items", "take the opening pair of numbers"], lambda x: x[:2]),
        ("last_two", ["keep only the last two numbers", "output the final two elements", "return the two trailing items", "take the closing pair of numbers"], lambda x: x[-2:]),
        ("evens", ["keep only the even numbers, in order", "remove every odd number from the list", "filter the list down to even values", "output the numbers divisible by two"], lambda x: [v for v in x if v % 2 == 0]),
        ("odds", ["keep only the odd numbers, in order", "remove every even number from the list", "filter the list down to odd values", "output the numbers not divisible by two"], lambda x: [v for v in x if v % 2 == 1]),
        ("rotate", ["move the first number to the end of the list", "rotate the list left by one position", "put the leading element last", "shift every element one place to the left, wrapping the first to the end"], lambda x: x[1:] + x[:1]),
        ("double", ["double every number in the list", "multiply each element by two", "replace each value with twice itself", "output the list with every number times two"], lambda x: [2 * v for v in x]),
    ]
    F["list_order"] = (L, "a list of numbers", [])
    for key, whats, fn in orders:
        def g(rng, fn=fn, key=key):
            xs = _num_list(rng)
            if key in ("evens", "odds") and not fn(xs):
                xs[0] += 1
            return _fmt(xs), _fmt(fn(xs)) or "none"
        F["list_order"][2].append((f"list_{key}", whats, g, "exact"))

    # 3. arithmetic: one number with a constant, or two numbers
    F["arithmetic"] = ("a number", "a number", [])
    for k in (1, 2, 3, 4, 5, 7, 8, 10, 20, 50, 100, 1000):
        F["arithmetic"][2].append((f"add_{k}", [f"add {k} to the number", f"increase the number by {k}", f"return the number plus {k}", f"output the sum of the number and {k}"],
                                   lambda rng, k=k: (lambda n: (str(n), str(n + k)))(rng.randint(0, 1999)), "exact"))
    for k in (1, 2, 3, 5, 10, 20, 50, 100):
        F["arithmetic"][2].append((f"subtract_{k}", [f"subtract {k} from the number", f"decrease the number by {k}", f"return the number minus {k}", f"take {k} away from the number"],
                                   lambda rng, k=k: (lambda n: (str(n), str(n - k)))(rng.randint(k, 1999 + k)), "exact"))
    for k in (2, 3, 4, 5, 10):
        F["arithmetic"][2].append((f"times_{k}", [f"multiply the number by {k}", f"return {k} times the number", f"scale the number by a factor of {k}", f"output the product of the number and {k}"],
                                   lambda rng, k=k: (lambda n: (str(n), str(n * k)))(rng.randint(0, 1999)), "exact"))
    for key, whats, fn in [
        ("add_pair", ["add the two numbers", "return the sum of the pair", "compute the first number plus the second", "output the total of both numbers"], lambda a, b: a + b),
        ("sub_pair", ["subtract the second number from the first", "return the first number minus the second", "compute the difference first minus second", "take the second value away from the first"], lambda a, b: a - b),
        ("mul_pair", ["multiply the two numbers", "return the product of the pair", "compute the first number times the second", "output the product of both numbers"], lambda a, b: a * b),
        ("max_pair", ["return the larger of the two numbers", "pick the bigger number of the pair", "output whichever number is greater", "give the maximum of the two values"], max),
        ("min_pair", ["return the smaller of the two numbers", "pick the lesser number of the pair", "output whichever number is lower", "give the minimum of the two values"], min),
    ]:
        hi = 12 if key == "mul_pair" else 99
        F["arithmetic"][2].append((key, whats, lambda rng, fn=fn, hi=hi: (lambda a, b: (f"{a} and {b}", str(fn(a, b))))(rng.randint(0, hi * 9), rng.randint(0, hi)) if hi == 12 else (lambda a, b: (f"{a} and {b}", str(fn(a, b))))(rng.randint(0, 999), rng.randint(0, 999)), "exact"))

    # 4. counting
    F["counting"] = ("a short text", "a count", [])
    for ch in "acdehilnorstu":
        F["counting"][2].append((f"count_letter_{ch}", [f"count how many times the letter '{ch}' appears", f"return the number of '{ch}' characters in the text", f"tally the occurrences of the letter {ch}", f"output how often the letter {ch} occurs"],
                                  lambda rng, ch=ch: (lambda s: (s, str(s.count(ch))))(" ".join(_words(rng, rng.randint(2, 3)))), "exact"))
    for key, whats, fn in [
        ("count_words", ["count the words in the text", "return how many words there are", "tally the number of words", "output the word count"], lambda s: len(s.split())),
        ("count_vowels", ["count the vowels in the text", "return how many vowels (a, e, i, o, u) appear", "tally all vowel letters", "output the number of vowels"], lambda s: sum(c in "aeiou" for c in s)),
        ("count_long_words", ["count the words with more than five letters", "return how many words are longer than five characters", "tally the long words, those of six letters or more", "output the number of words longer than five letters"], lambda s: sum(len(w) > 5 for w in s.split())),
    ]:
        F["counting"][2].append((key, whats, lambda rng, fn=fn: (lambda s: (s, str(fn(s))))(" ".join(_words(rng, rng.randint(2, 6)))), "exact"))
    for key, whats, fn in [
        ("count_items", ["count the numbers in the list", "return the length of the list", "tally how many elements there are", "output how many values the list holds"], len),
        ("count_even", ["count the even numbers in the list", "return how many values are divisible by two", "tally the even elements", "output the number of even values"], lambda x: sum(v % 2 == 0 for v in x)),
        ("count_above_50", ["count the numbers greater than 50", "return how many values exceed fifty", "tally the elements above 50", "output how many numbers are larger than 50"], lambda x: sum(v > 50 for v in x)),
    ]:
        F["counting"][2].append((key, whats, lambda rng, fn=fn: (lambda xs: (_fmt(xs), str(fn(xs))))(_num_list(rng, 0, 99, rng.randint(2, 8))), "exact"))

    # 5. word_ops: operations on a few words
    F["word_ops"] = ("a short list of words", "words", [])
    for key, whats, fn, metric in [
        ("first_word", ["return the first word", "output the word at the start", "give the leading word", "write only the first word"], lambda w: w[0], "exact"),
        ("last_word", ["return the last word", "output the word at the end", "give the final word", "write only the last word"], lambda w: w[-1], "exact"),
        ("longest_word", ["return the longest word", "output the word with the most letters", "find the lengthiest word", "give the word that has the most characters"], lambda w: max(w, key=len), "exact"),
        ("shortest_word", ["return the shortest word", "output the word with the fewest letters", "find the briefest word", "give the word that has the fewest characters"], lambda w: min(w, key=len), "exact"),
        ("sort_words", ["sort the words alphabetically", "arrange the words in dictionary order", "order the words from A to Z", "put the words in alphabetical order"], lambda w: " ".join(sorted(w)), "rougeL"),
        ("reverse_words", ["reverse the order of the words", "write the words backwards, last word first", "output the words from last to first", "flip the word order"], lambda w: " ".join(w[::-1]), "rougeL"),
        ("acronym", ["form an acronym from the first letters of the words, in capitals", "write the initial letter of each word in upper case", "make an abbreviation from the first letters", "output the capitalised initials of the words"], lambda w: "".join(x[0].upper() for x in w), "exact"),
        ("upper", ["convert the words to upper case", "write the text in capital letters", "make every letter uppercase", "output the words in all caps"], lambda w: " ".join(w).upper(), "exact"),
        ("title", ["capitalise the first letter of every word", "write each word with an initial capital", "convert the text to title case", "make each word start with an upper-case letter"], lambda w: " ".join(x.capitalize() for x in w), "exact"),
        ("snake", ["join the words with underscores", "convert the words to snake_case", "connect the words using the underscore character", "output the words linked by underscores"], lambda w: "_".join(w), "exact"),
        ("kebab", ["join the words with hyphens", "convert the words to kebab-case", "connect the words using dashes", "output the words linked by hyphens"], lambda w: "-".join(w), "exact"),
        ("camel", ["convert the words to camelCase", "join the words, capitalising every word except the first", "write the words as one camel case identifier", "output the words as a camelCase name"], lambda w: w[0] + "".join(x.capitalize() for x in w[1:]), "exact"),
        ("second_word", ["return the second word", "output the word in position two", "give the word after the first one", "write only the second word"], lambda w: w[1], "exact"),
        ("drop_last_word", ["remove the last word", "output all words except the last", "delete the final word", "drop the closing word and keep the rest"], lambda w: " ".join(w[:-1]), "rougeL"),
        ("initials_lower", ["write the first letter of each word in lower case, joined together", "join the initial letters of the words without capitals", "make a lower-case string of the words' first letters", "output the words' initials, lowercase, as one string"], lambda w: "".join(x[0] for x in w), "exact"),
        ("last_letters", ["write the last letter of each word, joined together", "join the final letters of the words", "make a string of every word's closing letter", "output the words' last letters as one string"], lambda w: "".join(x[-1] for x in w), "exact"),
        ("drop_first_word", ["remove the first word", "output all words except the first", "delete the leading word", "drop the opening word and keep the rest"], lambda w: " ".join(w[1:]), "rougeL"),
        ("repeat_words", ["repeat each word twice", "write every word two times in a row", "double each word", "output each word followed by itself"], lambda w: " ".join(x + " " + x for x in w), "rougeL"),
    ]:
        F["word_ops"][2].append((f"words_{key}", whats, lambda rng, fn=fn: (lambda w: (" ".join(w), fn(w)))(_words(rng)), metric))

    # 6. char_ops: operations on the letters of one word
    F["char_ops"] = ("a pair of words", "letters", [])
    for key, whats, fn in [
        ("first_letter", ["return the first letter of the word", "output the initial character", "give the letter the word starts with", "write the opening letter"], lambda w: w[0]),
        ("last_letter", ["return the last letter of the word", "output the final character", "give the letter the word ends with", "write the closing letter"], lambda w: w[-1]),
        ("first_three", ["return the first three letters of the word", "output the opening three characters", "give the three-letter prefix", "write the word's first three letters"], lambda w: w[:3]),
        ("last_three", ["return the last three letters of the word", "output the final three characters", "give the three-letter suffix", "write the word's last three letters"], lambda w: w[-3:]),
        ("spell", ["spell the word with a space between letters", "separate every letter by a space", "write the word letter by letter with spaces", "output the letters of the word spaced apart"], lambda w: " ".join(w)),
        ("length", ["count the letters of the word", "return the length of the word", "output how many characters the word has", "give the number of letters"], lambda w: str(len(w))),
        ("reverse", ["reverse the letters of the word", "spell the word backwards", "write the word from its last letter to its first", "output the word in reverse"], lambda w: w[::-1]),
        ("upper_word", ["write the word in capital letters", "convert the word to upper case", "make all letters of the word uppercase", "output the word in all caps"], lambda w: w.upper()),
        ("second_letter", ["return the second letter of the word", "output the character in position two", "give the letter after the first one", "write the word's second letter"], lambda w: w[1]),
        ("double_letters", ["write every letter of the word twice", "double each character of the word", "repeat each letter of the word two times", "output the word with all letters doubled"], lambda w: "".join(c + c for c in w)),
        ("sort_letters", ["sort the letters of the word alphabetically", "arrange the word's letters from a to z", "output the letters of the word in alphabetical order", "order the characters of the word alphabetically"], lambda w: "".join(sorted(w))),
        ("vowels_only", ["keep only the vowels of the word", "output just the letters a, e, i, o and u from the word", "delete every consonant from the word", "strip the consonants out of the word"], lambda w: "".join(c for c in w if c in "aeiou") or "none"),
        ("remove_vowels", ["remove all vowels from the word", "delete the letters a, e, i, o and u", "output the word without its vowels", "strip every vowel out of the word"], lambda w: "".join(c for c in w if c not in "aeiou")),
    ]:
        pool = NOUNS + [a for p in ANTONYMS for a in p] + [a for p in PAST for a in p] + ANIMALS + FRUITS + COLORS
        pool = sorted(set(w for w in pool if len(w) >= 3))
        # Inputs are "word" pairs for size: 1,000+ distinct inputs need more than one word's variety.
        F["char_ops"][2].append((f"char_{key}", [w.replace("the word", "each word").replace("word's", "each word's") for w in whats],
                                 lambda rng, fn=fn, pool=pool: (lambda a, b: (f"{a} {b}", f"{fn(a)}, {fn(b)}"))(*rng.sample(pool, 2)), "exact"))

    # 7. number_class: label a number
    F["number_class"] = ("a number", "a label", [])
    preds = [
        ("even", ["decide whether the number is even or odd", "label the number by its parity", "say if the number is divisible by two", "classify the number as even or odd"], lambda n: n % 2 == 0, [("even", "odd"), ("yes", "no")]),
        ("big", ["decide whether the number is greater than 500", "label the number as above or below 500", "say if the number exceeds five hundred", "classify the number by comparing it to 500"], lambda n: n > 500, [("high", "low"), ("yes", "no")]),
        ("div3", ["decide whether the number is divisible by 3", "label the number by divisibility by three", "say if three divides the number", "classify whether the number is a multiple of 3"], lambda n: n % 3 == 0, [("yes", "no"), ("divisible", "not divisible")]),
        ("prime", ["decide whether the number is prime", "label the number as prime or composite", "say if the number has no divisors other than one and itself", "classify whether the number is a prime number"], _is_prime, [("prime", "composite"), ("yes", "no")]),
        ("big100", ["decide whether the number is greater than 100", "label the number as above or below 100", "say if the number exceeds one hundred", "classify the number by comparing it to 100"], lambda n: n > 100, [("above", "below"), ("yes", "no")]),
        ("big900", ["decide whether the number is greater than 900", "label the number as above or below 900", "say if the number exceeds nine hundred", "classify the number by comparing it to 900"], lambda n: n > 900, [("above", "below"), ("true", "false")]),
        ("div4", ["decide whether the number is divisible by 4", "label the number by divisibility by four", "say if four divides the number", "classify whether the number is a multiple of 4"], lambda n: n % 4 == 0, [("yes", "no"), ("divisible", "not divisible")]),
        ("div5", ["decide whether the number is a multiple of 5", "label the number by divisibility by five", "say if five divides the number", "classify whether the number ends in 0 or 5"], lambda n: n % 5 == 0, [("yes", "no"), ("true", "false")]),
        ("palindrome", ["decide whether the number reads the same backwards", "label the number as a palindrome or not", "say if the digits are symmetric", "classify whether reversing the digits gives the same number"], lambda n: str(n) == str(n)[::-1], [("yes", "no"), ("palindrome", "not palindrome")]),
    ]
    for key, whats, pred, labelsets in preds:
        for pos, neg in labelsets:
            def g(rng, pred=pred, pos=pos, neg=neg):
                want = rng.random() < 0.5  # balanced labels
                for _ in range(1000):
                    n = rng.randint(2, 9999)
                    if pred(n) == want:
                        break
                return str(n), pos if pred(n) else neg
            w = [f"{x}, answering '{pos}' or '{neg}'" for x in whats]
            F["number_class"][2].append((f"num_{key}_{pos.replace(' ', '')}_{neg.replace(' ', '')}", w, g, "label", (pos, neg)))

    # 8. text_class: sentiment, topic and surface properties of a sentence
    F["text_class"] = ("a sentence", "a label", [])

    def review(rng):
        pos = rng.random() < 0.5
        return f"{rng.choice(FILLER)}{rng.choice(SUBJECTS)} was {rng.choice(POS_ADJ if pos else NEG_ADJ)}.".capitalize(), pos
    for pos_l, neg_l in [("positive", "negative"), ("good", "bad"), ("1", "0"), ("liked", "disliked")]:
        F["text_class"][2].append((f"sentiment_{pos_l}_{neg_l}", [f"classify the sentiment of the review as '{pos_l}' or '{neg_l}'", f"decide whether the opinion is favourable ('{pos_l}') or unfavourable ('{neg_l}')",
                                    f"label the review '{pos_l}' when it praises and '{neg_l}' when it complains", f"tell if the writer was pleased, answering '{pos_l}' or '{neg_l}'"],
                                   lambda rng, p=pos_l, n=neg_l: (lambda s, ok: (s, p if ok else n))(*review(rng)), "label", (pos_l, neg_l)))
    topics = sorted(TOPICS)

    def topical(rng, t=None):
        t = t or rng.choice(topics)
        where = rng.choice(["", f" in {rng.choice(CITIES)}"])
        return f"{rng.choice(FILLER)}{rng.choice(NAMES)} {rng.choice(TOPICS[t])}{where}.", t
    for style, mapping in [("names", {t: t for t in topics}), ("letters", {t: "ABCDE"[i] for i, t in enumerate(topics)})]:
        legend = ", ".join(f"{v} for {t}" if style == "letters" else t for t, v in mapping.items())
        F["text_class"][2].append((f"topic_{style}", [f"classify the topic of the sentence ({legend})", f"name the subject area of the sentence, one of: {legend}", f"decide what the sentence is about among {legend}", f"label the sentence with its topic ({legend})"],
                                   lambda rng, mp=mapping: (lambda s, t: (s, mp[t]))(*topical(rng)), "label", tuple(mapping.values())))
    for t in topics:
        F["text_class"][2].append((f"is_{t}", [f"decide whether the sentence is about {t}, answering yes or no", f"say yes if the topic is {t} and no otherwise", f"label the sentence yes when it concerns {t}, else no", f"tell whether the sentence talks about {t} (yes/no)"],
                                   lambda rng, t=t: (lambda s, tt: (s, "yes" if tt == t else "no"))(*topical(rng, t if rng.random() < 0.4 else None)), "label", ("yes", "no")))
    F["text_class"][2].append(("is_question", ["decide whether the sentence is a question, answering yes or no", "say yes if it asks something and no if it states something", "label questions yes and statements no", "tell whether the sentence is interrogative (yes/no)"],
                               lambda rng: (lambda s, q: ((s[:-1] + "?" if q else s), "yes" if q else "no"))(topical(rng)[0], rng.random() < 0.5), "label", ("yes", "no")))

    # 9. extraction: pull one field out of a sentence
    F["extraction"] = ("a sentence", "the extracted text", [])
    for key, whats, g in [
        ("number", ["extract the number mentioned in the sentence", "return the quantity that appears in the text", "output only the number from the sentence", "find the numeric value in the sentence"],
         lambda rng: (lambda n, who, thing: (f"{who} bought {n} {thing}s at the market.", str(n)))(rng.randint(2, 999), rng.choice(NAMES), rng.choice(NOUNS))),
        ("name", ["extract the person's name from the sentence", "return who the sentence is about", "output only the name of the person", "find the first name mentioned"],
         lambda rng: (lambda who, city: (f"Last year {who} moved to {city} for work.", who))(rng.choice(NAMES), rng.choice(CITIES)) if rng.random() < 0.5 else (lambda who, n: (f"The {n} was a gift from {who}.", who))(rng.choice(NAMES), rng.choice(NOUNS))),
        ("city", ["extract the city mentioned in the sentence", "return the place the sentence names", "output only the name of the city", "find the city in the text"],
         lambda rng: (lambda who, city, n: (f"{who} sent a {n} from {city} yesterday.", city))(rng.choice(NAMES), rng.choice(CITIES), rng.choice(NOUNS))),
        ("color", ["extract the color mentioned in the sentence", "return the colour that the text names", "output only the color word", "find which color is described"],
         lambda rng: (lambda who, c, n: (f"{who} painted the {n} {c} last week.", c))(rng.choice(NAMES), rng.choice(COLORS), rng.choice(NOUNS))),
        ("domain", ["extract the domain of the email address", "return the part of the email after the @ sign", "output only the mail server domain", "find the domain name in the address"],
         lambda rng: (lambda u, d: (f"Contact: {u}{rng.randint(1, 99)}@{d}", d))(rng.choice(NAMES).lower(), rng.choice(DOMAINS))),
        ("user", ["extract the user name of the email address", "return the part of the email before the @ sign", "output only the local part of the address", "find the account name in the email"],
         lambda rng: (lambda u, d: (f"Contact: {u}@{d}", u))(rng.choice(NAMES).lower() + str(rng.randint(1, 99)), rng.choice(DOMAINS))),
        ("year", ["extract the year from the date", "return the four-digit year mentioned", "output only the year of the event", "find which year the sentence refers to"],
         lambda rng: (lambda y, m, d: (f"The meeting took place on {m} {d}, {y}.", str(y)))(rng.randint(1900, 2030), rng.choice(MONTHS), rng.randint(1, 28))),
        ("month", ["extract the month from the date", "return the name of the month mentioned", "output only the month of the event", "find which month the sentence refers to"],
         lambda rng: (lambda y, m, d: (f"The meeting took place on {m} {d}, {y}.", m))(rng.randint(1900, 2030), rng.choice(MONTHS), rng.randint(1, 28))),
        ("quoted", ["extract the word inside the quotation marks", "return the quoted word", "output only the text between the quotes", "find the word written in quotes"],
         lambda rng: (lambda who, w: (f'{who} kept saying "{w}" all day.', w))(rng.choice(NAMES), rng.choice(NOUNS))),
        ("price", ["extract the price mentioned in the sentence", "return the amount of money in the text", "output only the cost, with its dollar sign", "find how much something costs"],
         lambda rng: (lambda who, n, p: (f"{who} paid ${p} for the {n}.", f"${p}"))(rng.choice(NAMES), rng.choice(NOUNS), rng.randint(1, 999))),
        ("weekday", ["extract the day of the week from the sentence", "return the weekday mentioned", "output only the name of the day", "find which weekday the text refers to"],
         lambda rng: (lambda who, d, c: (f"On {d} {who} drove to {c}.", d))(rng.choice(NAMES), rng.choice(WEEKDAYS), rng.choice(CITIES + NOUNS))),
        ("fruit", ["extract the fruit mentioned in the sentence", "return which fruit the text names", "output only the fruit", "find the piece of fruit in the sentence"],
         lambda rng: (lambda who, f, c: (f"{who} ate a {f} in {c}.", f))(rng.choice(NAMES), rng.choice(FRUITS), rng.choice(CITIES))),
        ("time", ["extract the clock time from the sentence", "return the time of day mentioned", "output only the time", "find at what time the event happens"],
         lambda rng: (lambda who, h, m, n: (f"{who} fixed the {n} at {h}:{m:02d}.", f"{h}:{m:02d}"))(rng.choice(NAMES), rng.randint(1, 12), rng.randint(0, 59), rng.choice(NOUNS))),
        ("animal", ["extract the animal mentioned in the sentence", "return which animal the text names", "output only the animal", "find the creature in the sentence"],
         lambda rng: (lambda who, a, c: (f"{who} saw a {a} near {c}.", a))(rng.choice(NAMES), rng.choice(ANIMALS), rng.choice(CITIES))),
    ]:
        F["extraction"][2].append((f"extract_{key}", whats, g, "exact"))

    # 10. word_relations: map each word through a lexical relation
    F["word_relations"] = ("a short list of words", "the mapped words", [])
    for key, whats, pairs in [
        ("antonym", ["give the opposite of each word", "return the antonym of every word", "write a word with the contrary meaning for each", "replace each word by its opposite"], ANTONYMS + [(b, a) for a, b in ANTONYMS]),
        ("plural", ["give the plural of each noun", "return every noun in its plural form", "write each word as more than one", "convert each noun to the plural"], PLURALS),
        ("singular", ["give the singular of each noun", "return every noun in its singular form", "write each word as just one", "convert each plural noun to the singular"], [(b, a) for a, b in PLURALS]),
        ("past", ["give the past tense of each verb", "return every verb in the simple past", "write each verb as it would be used for yesterday", "convert each verb to the past tense"], PAST),
        ("present", ["give the base form of each past-tense verb", "return every verb in the present tense", "write each verb without its past tense", "convert each past verb back to its infinitive"], [(b, a) for a, b in PAST]),
        ("comparative", ["give the comparative form of each adjective", "return every adjective as a comparison, like bigger", "write each adjective in its -er form", "convert each adjective to the comparative"], COMPARATIVE),
        ("category", ["name the category of each word (animal, fruit, vehicle or tool)", "return the kind of thing each word is", "write the group each word belongs to", "classify each word as animal, fruit, vehicle or tool"], list(CATEGORY.items())),
    ]:
        F["word_relations"][2].append((f"rel_{key}", whats, lambda rng, pairs=pairs: (lambda ps: (", ".join(p[0] for p in ps), ", ".join(p[1] for p in ps)))(rng.sample(pairs, 2) if rng.random() < 0.5 else rng.sample(pairs, 3)), "exact"))

    # 11. comparison: decide between two things
    F["comparison"] = ("a pair of items", "one of them", [])
    for key, whats, g in [
        ("longer_word", ["return the longer of the two words", "pick the word with more letters", "output whichever word is longer", "give the lengthier word of the pair"],
         lambda rng: (lambda a, b: (f"{a}, {b}", a if len(a) > len(b) else b))(*_distinct_len(rng))),
        ("shorter_word", ["return the shorter of the two words", "pick the word with fewer letters", "output whichever word is shorter", "give the briefer word of the pair"],
         lambda rng: (lambda a, b: (f"{a}, {b}", a if len(a) < len(b) else b))(*_distinct_len(rng))),
        ("alpha_first", ["return the word that comes first alphabetically", "pick the word earlier in the dictionary", "output whichever word sorts first from A to Z", "give the alphabetically smaller word"],
         lambda rng: (lambda a, b: (f"{a}, {b}", min(a, b)))(*rng.sample(NOUNS, 2))),
        ("alpha_last", ["return the word that comes last alphabetically", "pick the word later in the dictionary", "output whichever word sorts last from A to Z", "give the alphabetically larger word"],
         lambda rng: (lambda a, b: (f"{a}, {b}", max(a, b)))(*rng.sample(NOUNS, 2))),
        ("taller", ["answer who is taller", "read the comparison and name the taller person", "output the name of the tallest one", "decide which person has the greater height"],
         lambda rng: (lambda a, b, flip: ((f"{a} is taller than {b}." if not flip else f"{b} is shorter than {a}."), a))(*rng.sample(NAMES, 2), rng.random() < 0.5)),
        ("shorter", ["answer who is shorter", "read the comparison and name the shorter person", "output the name of the less tall one", "decide which person has the smaller height"],
         lambda rng: (lambda a, b, flip: ((f"{a} is taller than {b}." if not flip else f"{b} is shorter than {a}."), b))(*rng.sample(NAMES, 2), rng.random() < 0.5)),
        ("older", ["answer who is older", "read the statement and name the older person", "output the name of the one born first", "decide which person has the greater age"],
         lambda rng: (lambda a, b, x, y: (f"{a} is {x} years old and {b} is {y}.", a if x > y else b))(*rng.sample(NAMES, 2), *rng.sample(range(5, 90), 2))),
        ("younger", ["answer who is younger", "read the statement and name the younger person", "output the name of the one born last", "decide which person has the smaller age"],
         lambda rng: (lambda a, b, x, y: (f"{a} is {x} years old and {b} is {y}.", a if x < y else b))(*rng.sample(NAMES, 2), *rng.sample(range(5, 90), 2))),
        ("is_sorted", ["decide whether the two words are in alphabetical order, answering yes or no", "say yes if the first word comes before the second in the dictionary", "tell whether the pair is sorted from A to Z (yes/no)", "label alphabetically ordered pairs yes and others no"],
         lambda rng: (lambda a, b: (f"{a}, {b}", "yes" if a < b else "no"))(*rng.sample(NOUNS, 2))),
        ("same_number", ["decide whether the two numbers are equal, answering yes or no", "say yes if both numbers are the same and no otherwise", "tell whether the pair holds one value twice (yes/no)", "label equal pairs yes and different pairs no"],
         lambda rng: (lambda a, same: (f"{a} and {a if same else a + rng.randint(1, 9)}", "yes" if same else "no"))(rng.randint(0, 999), rng.random() < 0.5)),
    ]:
        yn = key in ("same_number", "is_sorted")
        F["comparison"][2].append((f"cmp_{key}", whats, g, "label" if yn else "exact", ("yes", "no") if yn else ()))

    # 12. sequence: continue or invert a simple progression
    F["sequence"] = ("a sequence", "the missing item", [])
    for key, whats, g in [
        ("next_arith", ["give the next number of the arithmetic sequence", "continue the sequence by one term", "output the number that comes next", "extend the evenly spaced sequence by one"],
         lambda rng: (lambda a, d: (_fmt([a + i * d for i in range(4)]), str(a + 4 * d)))(rng.randint(0, 200), rng.randint(1, 20))),
        ("prev_arith", ["give the number that comes before the sequence", "extend the arithmetic sequence backwards by one term", "output the term preceding the first one", "find the number that would start the sequence one step earlier"],
         lambda rng: (lambda a, d: (_fmt([a + i * d for i in range(4)]), str(a - d)))(rng.randint(20, 300), rng.randint(1, 20))),
        ("missing", ["find the missing number in the arithmetic sequence, marked by ?", "fill in the question mark of the sequence", "output the term hidden by the ? sign", "complete the sequence by replacing ? with the right number"],
         lambda rng: (lambda a, d, k: (", ".join("?" if i == k else str(a + i * d) for i in range(5)), str(a + k * d)))(rng.randint(0, 50), rng.randint(1, 12), rng.randint(1, 3))),
        ("next_letter", ["give the letter that follows the last one in the alphabet", "continue the run of consecutive letters by one", "output the next letter of the alphabetical run", "extend the letter sequence by one"],
         lambda rng: (lambda i, n, k: (", ".join(f"{c}{k}" for c in string.ascii_lowercase[i:i + n]), f"{string.ascii_lowercase[i + n]}{k}"))(rng.randint(0, 20), rng.randint(2, 5), rng.randint(1, 20))),
        ("next_day", ["give the weekday that follows the last one listed", "continue the run of days of the week", "output the next day of the week", "extend the list of days by one"],
         lambda rng: (lambda i, n, s, m: (", ".join(f"{WEEKDAYS[(i + j) % 7]} {m} {s + j}" for j in range(n)), f"{WEEKDAYS[(i + n) % 7]} {m} {s + n}"))(rng.randint(0, 6), rng.randint(2, 3), rng.randint(1, 25), rng.choice(MONTHS))),
        ("next_month", ["give the month that follows the last one listed", "continue the run of months", "output the next month of the year", "extend the list of months by one"],
         lambda rng: (lambda i, n, y: (", ".join(f"{MONTHS[(i + j) % 12]} {y + (i + j) // 12}" for j in range(n)), f"{MONTHS[(i + n) % 12]} {y + (i + n) // 12}"))(rng.randint(0, 11), rng.randint(2, 3), rng.randint(1950, 2040))),
        ("step", ["give the common difference of the arithmetic sequence", "return how much each term grows by", "output the step between consecutive numbers", "find the constant gap of the sequence"],
         lambda rng: (lambda a, d: (_fmt([a + i * d for i in range(4)]), str(d)))(rng.randint(0, 90), rng.randint(1, 30))),
        ("prev_letter", ["give the letter that comes before the first one in the alphabet", "extend the run of consecutive letters backwards by one", "output the letter preceding the alphabetical run", "find the letter just before the sequence"],
         lambda rng: (lambda i, n: (", ".join(string.ascii_lowercase[i:i + n]), string.ascii_lowercase[i - 1]))(rng.randint(1, 21), rng.randint(2, 5)) if rng.random() < 0.05 else (lambda i, n, k: (", ".join(f"{c}{k}" for c in string.ascii_lowercase[i:i + n]), f"{string.ascii_lowercase[i - 1]}{k}"))(rng.randint(1, 21), rng.randint(2, 4), rng.randint(1, 20))),
        ("double_next", ["give the next number of the doubling sequence", "continue the sequence where each term is twice the previous", "output the term after the last, doubling it", "extend the geometric sequence with ratio two"],
         lambda rng: (lambda a: (_fmt([a * 2**i for i in range(3)]), str(a * 8)))(rng.randint(1, 1999))),
    ]:
        F["sequence"][2].append((f"seq_{key}", whats, g, "exact"))

    # 13. text_edit: wrap or decorate a phrase
    F["text_edit"] = ("a short phrase", "the edited phrase", [])
    for key, whats, fn in [
        ("brackets", ["wrap the phrase in square brackets", "put [ before and ] after the text", "enclose the phrase in brackets", "surround the text with square brackets"], lambda s: f"[{s}]"),
        ("quotes", ["wrap the phrase in double quotes", "put quotation marks around the text", "enclose the phrase in quotes", "surround the text with double quotation marks"], lambda s: f'"{s}"'),
        ("exclaim", ["add an exclamation mark at the end", "finish the phrase with !", "append an exclamation point", "end the text with an exclamation mark"], lambda s: s + "!"),
        ("question", ["turn the phrase into a question by adding a question mark", "finish the phrase with ?", "append a question mark", "end the text with a question mark"], lambda s: s + "?"),
        ("repeat", ["repeat the phrase twice, separated by a space", "write the text two times", "output the phrase followed by itself", "say the phrase twice"], lambda s: f"{s} {s}"),
        ("prefix_the", ["put the word 'the' in front of the phrase", "prepend 'the' to the text", "start the phrase with the article the", "add 'the' before the phrase"], lambda s: f"the {s}"),
        ("hashtag", ["turn the phrase into a hashtag", "remove the spaces and put # in front", "write the text as a single #tag", "make a hashtag out of the phrase"], lambda s: "#" + s.replace(" ", "")),
        ("parens", ["wrap the phrase in round parentheses", "put ( before and ) after the text", "enclose the phrase in parentheses", "surround the text with round brackets"], lambda s: f"({s})"),
        ("braces", ["wrap the phrase in curly braces", "put { before and } after the text", "enclose the phrase in curly brackets", "surround the text with braces"], lambda s: "{" + s + "}"),
        ("angle", ["wrap the phrase in angle brackets", "put < before and > after the text", "enclose the phrase in chevrons", "surround the text with < and >"], lambda s: f"<{s}>"),
        ("period", ["end the phrase with a full stop", "finish the text with a period", "append a dot at the end", "add a period after the phrase"], lambda s: s + "."),
        ("prefix_a", ["put the word 'a' in front of the phrase", "prepend the article 'a' to the text", "start the phrase with the word a", "add 'a' before the phrase"], lambda s: f"a {s}"),
        ("parens_count", ["append the number of words in parentheses", "write the phrase followed by its word count in brackets ( )", "add the count of words in parentheses after the text", "output the text and then its number of words in round brackets"], lambda s: f"{s} ({len(s.split())})"),
    ]:
        F["text_edit"][2].append((f"edit_{key}", whats, lambda rng, fn=fn: (lambda s: (s, fn(s)))(" ".join(_words(rng, rng.randint(2, 3)))), "exact"))

    # 14. cipher (held out): letter-level encodings
    F["cipher"] = ("a word", "the encoded word", [])
    for k in (1, 2, 3, 4, 5, 7, 13):
        F["cipher"][2].append((f"caesar_{k}", [f"shift every letter {k} places forward in the alphabet", f"apply a Caesar cipher with shift {k}", f"encode the word by moving each letter {k} steps later, wrapping from z to a", f"replace each letter with the one {k} positions after it"],
                               lambda rng, k=k: (lambda w: (w, "".join(chr((ord(c) - 97 + k) % 26 + 97) for c in w)))(_pseudo_word(rng)), "exact"))
    for key, whats, fn in [
        ("atbash", ["replace each letter by its mirror in the alphabet (a<->z, b<->y)", "apply the Atbash cipher", "encode the word by reversing the alphabet", "map a to z, b to y and so on"], lambda w: "".join(chr(219 - ord(c)) for c in w)),
        ("positions", ["write the alphabet position of each letter, separated by dashes", "encode each letter as its number in the alphabet (a=1)", "turn the word into numbers, one per letter, joined by -", "output the letter indices of the word"], lambda w: "-".join(str(ord(c) - 96) for c in w)),
        ("shift_back", ["shift every letter one place back in the alphabet", "decode a Caesar cipher of shift one", "encode the word by moving each letter one step earlier, wrapping from a to z", "replace each letter with the one before it"], lambda w: "".join(chr((ord(c) - 98) % 26 + 97) for c in w)),
        ("next_vowel", ["replace each vowel by the next vowel (a->e, e->i, i->o, o->u, u->a)", "rotate the vowels of the word by one", "encode the word by moving every vowel to the following vowel", "swap each vowel for the next one in a, e, i, o, u"], lambda w: "".join("eioua"["aeiou".index(c)] if c in "aeiou" else c for c in w)),
        ("swap_pairs", ["swap each pair of neighbouring letters", "exchange letters one and two, three and four, and so on", "encode the word by swapping adjacent letter pairs", "switch the places of every two consecutive letters"], lambda w: "".join(w[i + 1] + w[i] if i + 1 < len(w) else w[i] for i in range(0, len(w), 2))),
    ]:
        F["cipher"][2].append((f"cipher_{key}", whats, lambda rng, fn=fn: (lambda w: (w, fn(w)))(_pseudo_word(rng)), "exact"))

    # 15. format (held out): change the notation of a value
    F["format"] = ("a value", "the reformatted value", [])
    for key, whats, g in [
        ("iso_to_us", ["convert the date from YYYY-MM-DD to MM/DD/YYYY", "rewrite the ISO date in American notation", "change year-month-day into month/day/year", "format the date the US way"],
         lambda rng: (lambda y, m, d: (f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}"))(rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28))),
        ("iso_to_eu", ["convert the date from YYYY-MM-DD to DD.MM.YYYY", "rewrite the ISO date in European dotted notation", "change year-month-day into day.month.year", "format the date the German way"],
         lambda rng: (lambda y, m, d: (f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}"))(rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28))),
        ("us_to_iso", ["convert the date from MM/DD/YYYY to YYYY-MM-DD", "rewrite the American date in ISO notation", "change month/day/year into year-month-day", "format the date as ISO 8601"],
         lambda rng: (lambda y, m, d: (f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}"))(rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28))),
        ("time_12h", ["convert the 24-hour time to 12-hour format with am or pm", "rewrite the time on a 12-hour clock", "change military time into am/pm time", "format the clock time with a.m./p.m. style suffix am or pm"],
         lambda rng: (lambda h, m: (f"{h:02d}:{m:02d}", f"{(h - 1) % 12 + 1}:{m:02d} {'am' if h < 12 else 'pm'}"))(rng.randint(0, 23), rng.randint(0, 59))),
        ("thousands", ["write the number with commas as thousands separators", "insert a comma every three digits", "format the integer with digit grouping", "add thousands separators to the number"],
         lambda rng: (lambda n: (str(n), f"{n:,}"))(rng.randint(1000, 99_999_999))),
        ("cents", ["convert the amount in cents to dollars with a $ sign", "rewrite cents as a dollar amount with two decimals", "express the number of cents in dollars", "format the cents value as $X.YY"],
         lambda rng: (lambda c: (f"{c} cents", f"${c // 100}.{c % 100:02d}"))(rng.randint(1, 99999))),
        ("minutes", ["convert the number of minutes to hours and minutes", "rewrite the duration as H h M min", "express the minutes as hours plus minutes", "format the duration in hours and minutes"],
         lambda rng: (lambda n: (f"{n} minutes", f"{n // 60} h {n % 60} min"))(rng.randint(61, 1500))),
        ("time_24h", ["convert the 12-hour time with am or pm to 24-hour format", "rewrite the time on a 24-hour clock", "change am/pm time into military time", "format the clock time as HH:MM from 00:00 to 23:59"],
         lambda rng: (lambda h, m: (f"{(h - 1) % 12 + 1}:{m:02d} {'am' if h < 12 else 'pm'}", f"{h:02d}:{m:02d}"))(rng.randint(0, 23), rng.randint(0, 59))),
        ("eu_to_iso", ["convert the date from DD.MM.YYYY to YYYY-MM-DD", "rewrite the European date in ISO notation", "change day.month.year into year-month-day", "format the dotted date as ISO 8601"],
         lambda rng: (lambda y, m, d: (f"{d:02d}.{m:02d}.{y}", f"{y}-{m:02d}-{d:02d}"))(rng.randint(1950, 2049), rng.randint(1, 12), rng.randint(1, 28))),
        ("percent", ["convert the fraction with two decimals to a percentage", "rewrite the decimal as a percent", "express the decimal number in percent", "format the value like 25%"],
         lambda rng: (lambda n: (f"0.{n:02d}", f"{n}%"))(rng.randint(1, 99)) if rng.random() < 0.05 else (lambda a, n: (f"{a}.{n:02d}", f"{a * 100 + n}%"))(rng.randint(0, 30), rng.randint(0, 99))),
        ("kv_to_json", ["convert the key=value pair into a JSON object", "rewrite key=value as {\"key\": \"value\"}", "turn the assignment into JSON", "format the pair as a one-entry JSON object"],
         lambda rng: (lambda k, v: (f"{k}={v}", f'{{"{k}": "{v}"}}'))(rng.choice(NOUNS), rng.choice(COLORS + FRUITS + CITIES))),
    ]:
        F["format"][2].append((f"format_{key}", whats, g, "exact"))
    return F


def _distinct_len(rng):
    while True:
        a, b = rng.sample(NOUNS + ANIMALS + FRUITS, 2)
        if len(a) != len(b):
            return a, b


def _pseudo_word(rng):
    """A pronounceable 4-6 letter string: plenty of distinct inputs for letter-level tasks."""
    cons, vows = "bcdfghklmnprstvz", "aeiou"
    return "".join(rng.choice(cons if i % 2 == 0 else vows) for i in range(rng.randint(4, 6)))


# -----------------------------------------------------------------------------
# The suite and its splits


def builtin_tasks(seed: int = SEED) -> dict[str, Task]:
    """All built-in tasks by name (deterministic)."""
    tasks = {}
    for family, (inp, out, specs) in _families().items():
        for spec in specs:
            name, whats, gen, metric = spec[:4]
            labels = tuple(spec[4]) if len(spec) > 4 else ()
            if name in tasks:
                raise RuntimeError(f"duplicate task name {name}")
            train_d, eval_d = make_descriptions(whats, inp, out, name, seed)
            tasks[name] = Task(name, family, metric, train_d, eval_d, labels, gen=gen, seed=seed)
    return tasks


def splits(tasks: dict[str, Task], seed: int = SEED, frac_val: float = 0.1, frac_test: float = 0.15) -> dict[str, list[str]]:
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
        random.Random(_stable_seed(seed, fam, "split")).shuffle(names)
        n_val = max(1, round(frac_val * len(names)))
        n_test = max(1, round(frac_test * len(names)))
        out["val"] += names[:n_val]
        out["test"] += names[n_val:n_val + n_test]
        out["train"] += names[n_val + n_test:]
    return {k: sorted(v) for k, v in out.items()}
