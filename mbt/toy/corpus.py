"""Procedurally generated text and tasks for the offline toy pair (pure Python, no torch).

Most of its length is data: the small world's names, places, templates and the sentence generators
that use them. They belong together, because changing any of them changes the toy pair's weights.

Everything here is a deterministic function of its arguments: randomness comes only from
``random.Random`` objects seeded with strings (seeding from a string is stable across processes
and Python versions, unlike ``hash()``), and from a fixed *world* -- who lives where, who keeps
which pet -- drawn once from :data:`WORLD_SEED`. The world does not depend on ``seed``, so the
facts the Base model learns in pretraining and the facts :func:`toy_mc` asks about agree for every
seed; ``seed`` only changes which sentences, problems and documents are drawn.

Two kinds of output:

* the **pretraining corpus** (:func:`corpus`): documents mixing small-world English, arithmetic
  facts in prose and symbols (operands in :data:`NUMBERS`), "worked" mini-problems that copy
  names and numbers from their context, and (optionally) paragraphs of real English from
  CPython's ``pydoc_data.topics``. The first ``drill_docs`` documents lean on *copy drills*
  (a short random list said twice), the cheapest way to teach a small model to copy. The
  ``"toy"`` variant never contains the instruction format's vocabulary ("Question", "Answer",
  "####", "?"); the ``"seen"`` variant mixes it in the way web text would (FAQ lines, quiz lines,
  markdown headers), without any worked question/answer pairs.
* four **task generators** with the schemas of the paper's datasets, called as
  ``fn(split, seed) -> list[dict]``: :func:`toy_math` (GSM8K), :func:`toy_mc` (MMLU),
  :func:`toy_text` (WikiText-like held-out text) and :func:`toy_instruct` (IFEval prompts).

**Disjointness by content.** Whether a question (or document) belongs to the train split, the
test split or the pretraining corpus is decided by a hash of its *text*, never by the seed or by
its position. So test questions are never training questions for *any* pair of seeds, and
:func:`toy_text` documents never occur in any :func:`corpus`.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator
from functools import lru_cache

from mbt import formats

__all__ = [
    "WORLD_SEED",
    "VARIANTS",
    "SPLITS",
    "MATH_KINDS",
    "NUMBERS",
    "corpus",
    "iter_corpus",
    "toy_math",
    "toy_mc",
    "toy_text",
    "toy_instruct",
    "format_math",
    "format_mc",
    "own_format",
    "OWN_LEAD",
    "world",
    "pydoc_paragraphs",
]

WORLD_SEED = 20240101
"""Seed of the fixed small world (facts about people); independent of every ``seed`` argument."""

VARIANTS = ("toy", "seen")
"""Corpus variants: ``"toy"`` never shows the Q/A format's vocabulary, ``"seen"`` does."""

SPLITS: dict[str, tuple[str, ...]] = {
    "toy_math": ("train", "test"),
    "toy_mc": ("train", "test"),
    "toy_text": ("train", "test"),
    "toy_instruct": ("test",),
}
"""Valid splits of each task generator."""

# Number of items each split returns (callers slice what they need).
_SIZES = {
    "toy_math": {"train": 6000, "test": 500},
    "toy_mc": {"train": 1500, "test": 400},
    "toy_text": {"train": 800, "test": 400},
    "toy_instruct": {"test": 300},
}

# Content-hash buckets (out of 1000).
_MATH_TEST_BUCKETS = 150  # 15 % of all possible questions are test-only
_MC_TEST_BUCKETS = 250
_TEXT_TEST = range(0, 50)  # documents in these buckets are held out of every corpus
_TEXT_TRAIN = range(50, 100)

LETTERS = formats.choice_letters(4)  # "ABCD": the toy items have four choices

# --------------------------------------------------------------------------------------------
# Vocabulary of the small world
# --------------------------------------------------------------------------------------------

PEOPLE: tuple[tuple[str, str], ...] = (
    ("Tom", "m"), ("Ava", "f"), ("Ben", "m"), ("Ivy", "f"), ("Sam", "m"), ("Mia", "f"),
    ("Leo", "m"), ("Zoe", "f"), ("Max", "m"), ("Lily", "f"), ("Jack", "m"), ("Emma", "f"),
    ("Noah", "m"), ("Ella", "f"), ("Finn", "m"), ("Ruby", "f"), ("Owen", "m"), ("Lucy", "f"),
    ("Liam", "m"), ("Nora", "f"), ("Omar", "m"), ("Rosa", "f"), ("Hugo", "m"), ("Maya", "f"),
)
_PRONOUNS = {"m": ("he", "him", "his"), "f": ("she", "her", "her")}
TOWNS = ("Oakton", "Riverby", "Pinehill", "Elmford", "Stonebridge", "Mapleton", "Westport",
         "Fairview", "Brookfield", "Lakeside")
PETS = ("cat", "dog", "rabbit", "parrot", "turtle", "hamster", "goat", "pony")
JOBS = ("baker", "farmer", "teacher", "doctor", "painter", "sailor", "builder", "singer",
        "tailor", "gardener")
FOODS = ("soup", "bread", "rice", "pie", "cheese", "noodles", "salad", "pancakes", "plums",
         "beans")
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
OBJECTS = ("apples", "books", "pens", "cards", "shells", "coins", "marbles", "stickers", "eggs",
           "cookies", "stamps", "flowers", "rocks", "toys", "beads", "candles", "grapes", "buttons")
CONTAINERS = (("bag", "bags"), ("box", "boxes"), ("jar", "jars"), ("pack", "packs"),
              ("basket", "baskets"), ("bowl", "bowls"), ("tin", "tins"), ("crate", "crates"))
PLACES = ("the market", "the park", "the library", "the river", "the school", "the farm",
          "the bakery", "the harbour", "the garden", "the station")
WEATHER = ("sunny", "cold", "warm", "windy", "rainy", "quiet", "busy", "long", "bright", "grey")
TOPICS = ("boats", "stars", "old castles", "birds", "trains", "the sea", "mountains", "bees",
          "maps", "clocks")

# General facts: (category, subject, value, statement templates, question).
NATURE: tuple[tuple[str, str, str], ...] = (
    ("colour", "the sky", "blue"), ("colour", "grass", "green"), ("colour", "snow", "white"),
    ("colour", "a banana", "yellow"), ("colour", "a strawberry", "red"), ("colour", "coal", "black"),
    ("colour", "a plum", "purple"), ("colour", "a carrot", "orange"), ("colour", "milk", "white"),
    ("colour", "a lemon", "yellow"), ("colour", "a leaf", "green"), ("colour", "a tomato", "red"),
    ("sound", "a dog", "barks"), ("sound", "a cat", "meows"), ("sound", "a cow", "moos"),
    ("sound", "a duck", "quacks"), ("sound", "a lion", "roars"), ("sound", "a sheep", "bleats"),
    ("sound", "a horse", "neighs"), ("sound", "an owl", "hoots"), ("sound", "a bee", "buzzes"),
    ("home", "a bird", "a nest"), ("home", "a bee", "a hive"), ("home", "a rabbit", "a burrow"),
    ("home", "a spider", "a web"), ("home", "a horse", "a stable"), ("home", "a pig", "a sty"),
    ("home", "a fox", "a den"), ("home", "a dog", "a kennel"),
    ("legs", "a spider", "8"), ("legs", "a dog", "4"), ("legs", "a bird", "2"),
    ("legs", "an ant", "6"), ("legs", "a snake", "0"), ("legs", "a cow", "4"),
    ("count", "a week", "7 days"), ("count", "a year", "12 months"), ("count", "a day", "24 hours"),
    ("count", "an hour", "60 minutes"),
    ("opposite", "hot", "cold"), ("opposite", "big", "small"), ("opposite", "up", "down"),
    ("opposite", "fast", "slow"), ("opposite", "day", "night"), ("opposite", "wet", "dry"),
    ("opposite", "full", "empty"), ("opposite", "open", "closed"), ("opposite", "light", "dark"),
    ("opposite", "early", "late"), ("opposite", "happy", "sad"), ("opposite", "soft", "hard"),
)

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                 "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                 "seventeen", "eighteen", "nineteen", "twenty")


@lru_cache(maxsize=1)
def world() -> dict[str, dict[str, str]]:
    """The fixed small world: for every person their sex, town, pet, job, food and colour.

    Drawn once from :data:`WORLD_SEED`; the same for every ``seed`` of every generator.
    """
    rng = random.Random(f"world/{WORLD_SEED}")
    facts: dict[str, dict[str, str]] = {}
    for name, sex in PEOPLE:
        facts[name] = {
            "sex": sex,
            "town": rng.choice(TOWNS),
            "pet": rng.choice(PETS),
            "job": rng.choice(JOBS),
            "food": rng.choice(FOODS),
            "colour": rng.choice(COLOURS),
        }
    return facts


def _bucket(kind: str, text: str) -> int:
    """A stable content hash of ``text`` in ``0..999`` (namespaced by ``kind``)."""
    digest = hashlib.sha256(f"{kind}\x00{text}".encode()).hexdigest()
    return int(digest[:12], 16) % 1000


def _check_split(fn: str, split: str) -> None:
    valid = SPLITS[fn]
    if split not in valid:
        raise ValueError(f"{fn}: unknown split {split!r}; valid splits: {', '.join(valid)}")


def _rng(*parts: object) -> random.Random:
    return random.Random("/".join(str(p) for p in parts))


class _Person:
    """A person with pronouns, for templates."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sex = world()[name]["sex"]
        self.he, self.him, self.his = _PRONOUNS[self.sex]

    @property
    def He(self) -> str:  # noqa: N802 - template helper
        return self.he.capitalize()


def _two_people(rng: random.Random) -> tuple[_Person, _Person]:
    a, b = rng.sample(PEOPLE, 2)
    return _Person(a[0]), _Person(b[0])


# --------------------------------------------------------------------------------------------
# Math problems (shared by the corpus's "worked" sentences and by toy_math)
# --------------------------------------------------------------------------------------------

MATH_KINDS = ("add", "sub", "mul", "together", "add_sub", "mul_add")
NUMBERS = {"add": 20, "sub": 30, "mul": 9}
"""Operand ranges: ``a + b`` with ``2 <= a, b <= add``, ``a - b`` with ``a <= sub``, ``a * b`` with
``a <= 9, b <= mul``; the same ranges in the corpus's arithmetic and in :func:`toy_math`."""


def _math_problem(rng: random.Random) -> dict:
    """One word problem: facts, question sentence, solution sentences and the value.

    Every intermediate and final value lies in ``0..99``, so with the toy tokenizer every number
    is one token and the arithmetic is a lookup the Base model has seen in pretraining.
    """
    kind = rng.choice(MATH_KINDS)
    p, q = _two_people(rng)
    n, m = p.name, q.name
    obj = rng.choice(OBJECTS)
    if kind == "add":
        a, b = rng.randint(2, NUMBERS["add"]), rng.randint(2, NUMBERS["add"])
        c = a + b
        gain = rng.choice([f"{p.He} gets {b} more {obj}.", f"{p.He} finds {b} more {obj}.",
                           f"{m} gives {p.him} {b} more {obj}."])
        facts = [f"{n} has {a} {obj}.", gain]
        question = f"How many {obj} does {n} have now?"
        solution = [f"{n} has {a} + {b} = {c} {obj}."]
        nums = (a, b)
    elif kind == "sub":
        a = rng.randint(10, NUMBERS["sub"])
        b = rng.randint(2, a - 2)
        c = a - b
        loss = rng.choice([f"{p.He} gives {b} {obj} to {m}.", f"{p.He} loses {b} {obj}.",
                           f"{p.He} sells {b} {obj} to {m}."])
        facts = [f"{n} has {a} {obj}.", loss]
        question = f"How many {obj} does {n} have left?"
        solution = [f"{n} has {a} - {b} = {c} {obj} left."]
        nums = (a, b)
    elif kind == "mul":
        cont, conts = rng.choice(CONTAINERS)
        a, b = rng.randint(2, 9), rng.randint(2, NUMBERS["mul"])
        c = a * b
        facts = [f"{n} buys {a} {conts} of {obj}.", f"Each {cont} has {b} {obj}."]
        question = f"How many {obj} does {n} buy?"
        solution = [f"{n} buys {a} * {b} = {c} {obj}."]
        nums = (a, b)
    elif kind == "together":
        a, b = rng.randint(2, NUMBERS["add"]), rng.randint(2, NUMBERS["add"])
        c = a + b
        facts = [f"{n} has {a} {obj}.", f"{m} has {b} {obj}."]
        question = f"How many {obj} do {n} and {m} have together?"
        solution = [f"Together they have {a} + {b} = {c} {obj}."]
        nums = (a, b)
    elif kind == "add_sub":
        a, b = rng.randint(2, NUMBERS["add"]), rng.randint(2, NUMBERS["add"])
        s = a + b
        d = rng.randint(2, s - 2)
        c = s - d
        facts = [f"{n} has {a} {obj}.", f"{p.He} gets {b} more {obj}.",
                 f"Then {p.he} gives {d} {obj} to {m}."]
        question = f"How many {obj} does {n} have now?"
        solution = [f"{n} has {a} + {b} = {s} {obj}.", f"Then {n} has {s} - {d} = {c} {obj}."]
        nums = (a, b, d)
    else:  # mul_add
        cont, conts = rng.choice(CONTAINERS)
        a, b = rng.randint(2, 9), rng.randint(2, NUMBERS["mul"])
        s = a * b
        d = rng.randint(2, min(20, 99 - s))
        c = s + d
        facts = [f"{n} has {a} {conts} of {obj}.", f"Each {cont} has {b} {obj}.",
                 f"{p.He} also has {d} more {obj}."]
        question = f"How many {obj} does {n} have in all?"
        solution = [f"{n} has {a} * {b} = {s} {obj} in the {conts}.",
                    f"In all {n} has {s} + {d} = {c} {obj}."]
        nums = (a, b, d)
    return {"kind": kind, "facts": facts, "question": question, "solution": solution, "value": c,
            "numbers": nums}


def format_math(item: dict, *, with_answer: bool = True) -> str:
    r"""GSM8K formatting used everywhere in ``mbt``: ``"Question: {question}\nAnswer: {answer}"``.

    With ``with_answer=False`` the prompt ends at ``"Answer:"`` (no trailing space). Delegates to
    :func:`mbt.formats.qa_text`, the one definition of the format.
    """
    return formats.qa_text(item["question"], item.get("answer"), with_answer=with_answer)


def format_mc(item: dict, *, with_answer: bool = True) -> str:
    r"""MMLU formatting: ``"Question: {q}\nA) c0 B) c1 C) c2 D) c3\nAnswer: {letter}"``.

    Delegates to :func:`mbt.formats.mc_text` (answer letters :data:`mbt.formats.LETTERS`).
    """
    return formats.mc_text(item["question"], item["choices"], item.get("answer"), with_answer=with_answer)


def toy_math(split: str, seed: int = 0) -> list[dict]:
    r"""GSM8K-style word problems ``{"question", "answer"}``.

    The answer is a short worked solution ending in ``"\n#### N"``, e.g.
    ``"Ivy has 20 + 16 = 36 books.\n#### 36"``. Splits ``"train"`` (6000 items) and
    ``"test"`` (500); a question's split is fixed by a hash of its text, so the splits are
    disjoint for every pair of seeds. Items are unique within a split.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: which problems are drawn (and in which order).

    Raises:
        ValueError: for an unknown split.
    """
    _check_split("toy_math", split)
    rng = _rng("toy_math", split, seed)
    want_test = split == "test"
    out: list[dict] = []
    seen: set[str] = set()
    while len(out) < _SIZES["toy_math"][split]:
        prob = _math_problem(rng)
        question = " ".join([*prob["facts"], prob["question"]])
        if question in seen or (_bucket("toy_math", question) < _MATH_TEST_BUCKETS) != want_test:
            continue
        seen.add(question)
        answer = " ".join(prob["solution"]) + f"\n#### {prob['value']}"
        out.append({"question": question, "answer": answer})
    return out


# --------------------------------------------------------------------------------------------
# Multiple choice (MMLU schema)
# --------------------------------------------------------------------------------------------


def _mc_pool() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Every possible MC question as ``(subject, question, correct, distractor pool)``."""
    pool: list[tuple[str, str, str, tuple[str, ...]]] = []
    facts = world()
    for name, _ in PEOPLE:
        f = facts[name]
        pool += [
            ("people", f"Where does {name} live?", f["town"], TOWNS),
            ("people", f"What pet does {name} have?", f"a {f['pet']}", tuple(f"a {p}" for p in PETS)),
            ("people", f"What is {name}'s job?", f"a {f['job']}", tuple(f"a {j}" for j in JOBS)),
            ("people", f"What does {name} like to eat?", f["food"], FOODS),
            ("people", f"What is {name}'s favourite colour?", f["colour"], COLOURS),
        ]
    by_cat: dict[str, list[str]] = {}
    for cat, _, value in NATURE:
        by_cat.setdefault(cat, [])
        if value not in by_cat[cat]:
            by_cat[cat].append(value)
    questions = {
        "colour": "What colour is {s}?", "sound": "What does {s} do?", "home": "Where does {s} live?",
        "legs": "How many legs does {s} have?", "count": "How long is {s}?",
        "opposite": "What is the opposite of {s}?",
    }
    for cat, subject, value in NATURE:
        pool.append(("nature", questions[cat].format(s=subject), value, tuple(by_cat[cat])))
    for a in range(2, NUMBERS["add"] + 1):
        for b in range(2, NUMBERS["add"] + 1):
            pool.append(("arithmetic", f"What is {a} + {b}?", str(a + b), ()))
    for a in range(10, NUMBERS["sub"] + 1):
        for b in range(2, a - 1):
            pool.append(("arithmetic", f"What is {a} - {b}?", str(a - b), ()))
    for a in range(2, 10):
        for b in range(2, NUMBERS["mul"] + 1):
            pool.append(("arithmetic", f"What is {a} * {b}?", str(a * b), ()))
    return pool


def _mc_choices(rng: random.Random, correct: str, distractors: tuple[str, ...]) -> tuple[list[str], int]:
    if distractors:
        others = [d for d in distractors if d != correct]
    else:  # numeric: nearby numbers
        c = int(correct)
        others = sorted({str(c + d) for d in range(-10, 11) if d != 0 and c + d >= 0})
    choices = [correct, *rng.sample(others, 3)]
    rng.shuffle(choices)
    return choices, choices.index(correct)


def toy_mc(split: str, seed: int = 0) -> list[dict]:
    """MMLU-style four-option questions ``{"question", "subject", "choices", "answer"}``.

    Subjects: ``"people"`` (facts about the fixed small world, stated in pretraining text),
    ``"nature"`` (general facts: colours, animal sounds and homes, legs, opposites) and
    ``"arithmetic"``. ``answer`` is the index (0..3) of the correct choice. A question's split is
    fixed by a hash of its text; every question occurs at most once per split.

    Args:
        split: ``"train"`` (up to 1500 items) or ``"test"`` (up to 400).
        seed: which questions are drawn, their order and the distractors.

    Raises:
        ValueError: for an unknown split.
    """
    _check_split("toy_mc", split)
    rng = _rng("toy_mc", split, seed)
    want_test = split == "test"
    pool = [p for p in _mc_pool() if (_bucket("toy_mc", p[1]) < _MC_TEST_BUCKETS) == want_test]
    # Stratify so the knowledge subjects are not drowned by arithmetic.
    by_subject: dict[str, list] = {}
    for p in pool:
        by_subject.setdefault(p[0], []).append(p)
    chosen: list = []
    for subject in ("people", "nature"):
        chosen += by_subject.get(subject, [])
    arith = by_subject.get("arithmetic", [])
    n_arith = max(0, _SIZES["toy_mc"][split] - len(chosen))
    chosen += rng.sample(arith, min(n_arith, len(arith)))
    rng.shuffle(chosen)
    out = []
    for subject, question, correct, distractors in chosen[: _SIZES["toy_mc"][split]]:
        choices, answer = _mc_choices(rng, correct, distractors)
        out.append({"question": question, "subject": subject, "choices": choices, "answer": answer})
    return out


# --------------------------------------------------------------------------------------------
# Pretraining-style sentences and documents
# --------------------------------------------------------------------------------------------


def _num_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _nature_statement(rng: random.Random, cat: str, subject: str, value: str) -> str:
    cap = subject[0].upper() + subject[1:]
    if cat == "colour":
        return rng.choice([f"{cap} is {value}.", f"The colour of {subject} is {value}."])
    if cat == "sound":
        return f"{cap} {value}."
    if cat == "home":
        return rng.choice([f"{cap} lives in {value}.", f"The home of {subject} is {value}."])
    if cat == "legs":
        return f"{cap} has {value} legs."
    if cat == "count":
        return f"{cap} has {value}."
    return rng.choice([f"The opposite of {subject} is {value}.", f"{cap} and {value} are opposites."])


def _world_sentences(rng: random.Random, p: _Person, q: _Person) -> list[str]:
    f = world()[p.name]
    n, m = p.name, q.name
    choice = rng.randrange(16)
    if choice == 0:
        return [rng.choice([f"{n} lives in {f['town']}.", f"{n} has a house in {f['town']}.",
                            f"{n} grew up in {f['town']} and still lives there."])]
    if choice == 1:
        return [rng.choice([f"{n} has a pet {f['pet']}.", f"{n} keeps a {f['pet']} at home.",
                            f"Every morning {n} feeds {p.his} {f['pet']}."])]
    if choice == 2:
        return [rng.choice([f"{n} works as a {f['job']}.", f"{n} is a {f['job']} in {f['town']}.",
                            f"As a {f['job']}, {n} works hard every day."])]
    if choice == 3:
        return [rng.choice([f"{n} likes to eat {f['food']}.", f"{n} loves {f['food']} more than anything.",
                            f"For lunch {n} always wants {f['food']}."])]
    if choice == 4:
        return [rng.choice([f"{n}'s favourite colour is {f['colour']}.",
                            f"{n} likes the colour {f['colour']} best.",
                            f"{n} painted the door {f['colour']}, {p.his} favourite colour."])]
    if choice == 5:
        return [_nature_statement(rng, *rng.choice(NATURE))]
    t = world()[q.name]
    templates = [
        f"{n} went to {rng.choice(PLACES)} with {m}.",
        f"It was a {rng.choice(WEATHER)} day in {f['town']}.",
        f"{n} and {m} played in {rng.choice(PLACES)} all afternoon.",
        f"{n} read a book about {rng.choice(TOPICS)}.",
        f"{m} visited {n} in {f['town']}.",
        f"{n} met {m}, who lives in {t['town']}.",
        f"After work {n} walked home slowly.",
        f"{p.He} told {m} a story about {rng.choice(TOPICS)}.",
        f"The road from {rng.choice(TOWNS)} to {rng.choice(TOWNS)} was {rng.choice(WEATHER)}.",
        f"{n} and {m} shared a bowl of {rng.choice(FOODS)}.",
    ]
    return [rng.choice(templates)]


def _arith_sentences(rng: random.Random, p: _Person) -> list[str]:
    choice = rng.randrange(9)
    a, b = rng.randint(2, NUMBERS["add"]), rng.randint(2, NUMBERS["add"])
    hi = rng.randint(10, NUMBERS["sub"])
    lo = rng.randint(2, hi - 2)
    x, y = rng.randint(2, 9), rng.randint(2, NUMBERS["mul"])
    if choice == 0:
        return [rng.choice([f"{a} + {b} = {a + b}.", f"{a} plus {b} is {a + b}.",
                            f"{a} and {b} make {a + b}."])]
    if choice == 1:
        return [rng.choice([f"{hi} - {lo} = {hi - lo}.", f"{hi} minus {lo} is {hi - lo}.",
                            f"If you take {lo} away from {hi}, you get {hi - lo}."])]
    if choice == 2:
        return [rng.choice([f"{x} * {y} = {x * y}.", f"{x} times {y} is {x * y}.",
                            f"{x} times {y} equals {x * y}."])]
    if choice == 3:
        s, t = rng.randint(0, 10), rng.randint(0, 10)
        return [f"{_num_word(s).capitalize()} plus {_num_word(t)} equals {_num_word(s + t)}."]
    if choice == 4:
        items = [(rng.randint(2, NUMBERS["add"]), rng.randint(2, NUMBERS["add"])) for _ in range(3)]
        return ["Here are some sums: " + ", ".join(f"{u} + {v} = {u + v}" for u, v in items) + "."]
    if choice == 5:
        obj = rng.choice(OBJECTS)
        return [f"{p.name} had {a} {obj} and got {b} more, so {p.he} had {a + b} {obj}."]
    if choice == 6:
        obj = rng.choice(OBJECTS)
        return [f"{p.name} had {hi} {obj} and gave away {lo}, so {p.he} had {hi - lo} {obj} left."]
    if choice == 7:
        cont, conts = rng.choice(CONTAINERS)
        obj = rng.choice(OBJECTS)
        return [f"{x} {conts} with {y} {obj} in each {cont} hold {x * y} {obj}."]
    return [f"The number {a} is {'larger' if a > b else 'smaller' if a < b else 'the same as'}"
            f"{' than' if a != b else ''} {b}."]


_WORKED_LEADS = ("So ", "Now ", "", "That means ")
"""What the corpus puts before a worked solution (drawn uniformly)."""


def _led(lead: str, solution: list[str]) -> list[str]:
    """The solution sentences as the corpus writes them after ``lead`` ("Together" is lowered after a lead)."""
    if not lead:
        return list(solution)
    first = solution[0]
    return [lead + (first[0].lower() + first[1:] if first.startswith("Together") else first), *solution[1:]]


def _worked_sentences(rng: random.Random) -> list[str]:
    prob = _math_problem(rng)
    return [*prob["facts"], *_led(rng.choice(_WORKED_LEADS), prob["solution"])]


OWN_LEAD = "So"
"""The lead of the own-format prompts (:func:`own_format`): one of the corpus's leads of a worked solution."""


def own_format(item: dict) -> dict[str, str]:
    r"""A :func:`toy_math` item written the way the pretraining corpus writes a worked problem.

    The corpus's "worked" sentences are the facts of a problem from the same generator, then (often)
    ``"So "`` and the solution sentences, with no question and no ``"####"``. From an item
    ``{"question": facts + " " + question sentence, "answer": solution + "\n#### N"}``:

    * own format: ``facts + " So"`` → ``" " + solution`` (as the corpus writes it after ``"So "``);
    * the arithmetic alone: ``facts + " So " + solution`` up to its last ``" ="`` → ``" N"``, the number
      after it (the final value; the earlier steps of a two-step solution are given).

    Neither prompt holds the final value after its last ``"="`` or anything after ``"####"``; the own-format
    prompt holds no ``"="`` at all.

    Args:
        item: A ``toy_math`` record ``{"question", "answer"}``.

    Returns:
        ``{"facts", "solution", "own_prompt", "own_target", "arithmetic_prompt", "arithmetic_target"}``.

    Raises:
        ValueError: The item is not in ``toy_math``'s form (no question sentence, no ``"####"``, a solution
            without ``"="`` or whose last step does not give the answer).
    """
    question, answer = str(item.get("question", "")), str(item.get("answer", ""))
    facts, sep, asked = question.rpartition(". ")
    solution, marker, value = answer.partition("\n#### ")
    if not sep or not asked.endswith("?") or not marker or " = " not in solution:
        raise ValueError(f"not a toy_math item (facts, a question sentence, a solution with '=' and '#### N'): "
                         f"{question!r} / {answer!r}")
    facts += "."
    worked = " ".join(_led(OWN_LEAD + " ", re.split(r"(?<=\.) ", solution)))
    rest = worked[len(OWN_LEAD) + 1:]
    cut = rest.rindex(" = ") + 2
    result = rest[cut:].split()[0]
    if result != value.strip():
        raise ValueError(f"the last step of {solution!r} gives {result!r}, not the answer {value.strip()!r}")
    return {"facts": facts, "solution": solution, "own_prompt": f"{facts} {OWN_LEAD}", "own_target": f" {rest}",
            "arithmetic_prompt": f"{facts} {OWN_LEAD} {rest[:cut]}", "arithmetic_target": f" {result}"}


def _seen_sentences(rng: random.Random, p: _Person, q: _Person) -> list[str]:
    """Web-like text that uses "Question", "Answer", "####" and "?" (variant ``"seen"``)."""
    f = world()[p.name]
    n = p.name
    choice = rng.randrange(8)
    if choice == 0:
        return [f"Question: Where does {n} live? Answer: {n} lives in {f['town']}."]
    if choice == 1:
        cat, subject, value = rng.choice(NATURE)
        return [f"Question: what do you know about {subject}? Answer: {_nature_statement(rng, cat, subject, value)}"]
    if choice == 2:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return [f"Quiz question: what is {a} + {b}? Answer: {a + b}."]
    if choice == 3:
        return [rng.choice([f"#### Notes from {f['town']}", f"#### Chapter {rng.randint(1, 20)}",
                            "#### Answer key", f"#### A day with {n}"])]
    if choice == 4:
        obj = rng.choice(OBJECTS)
        return [f"How many {obj} did {n} bring? Nobody counted, but it was more than {rng.randint(2, 9)}."]
    if choice == 5:
        return [f"Why does {n} like {f['food']}? {p.He} says it tastes like home."]
    if choice == 6:
        return [f"Answer: yes, {n} was at {rng.choice(PLACES)} with {q.name}."]
    return [f"Is it {rng.choice(WEATHER)} in {f['town']} today? Ask {q.name}, the {world()[q.name]['job']}."]


def _copy_drill(rng: random.Random) -> list[str]:
    """A short random list said twice: the cheapest lesson in copying from context."""
    pool = [lambda: rng.choice(PEOPLE)[0], lambda: str(rng.randint(2, 99)), lambda: rng.choice(OBJECTS),
            lambda: rng.choice(TOWNS), lambda: rng.choice(FOODS)]
    items = [rng.choice(pool)() for _ in range(rng.randint(3, 8))]
    listed = ", ".join(items)
    lead = rng.choice(["The list was", "On the board", "The note said", "The code is"])
    again = rng.choice(["Once more", "Again", "Repeat it", "In short"])
    return [f"{lead}: {listed}. {again}: {listed}."]


_DRILL_WEIGHTS = (("copy", 0.5), ("worked", 0.3), ("arith", 0.1), ("world", 0.1))

_KIND_WEIGHTS = {
    "toy": (("worked", 0.4), ("arith", 0.3), ("world", 0.3)),
    "seen": (("worked", 0.36), ("arith", 0.27), ("world", 0.27), ("seen", 0.10)),
}


def _generated_document(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    kinds, probs = zip(*weights, strict=True)
    main = _Person(rng.choice(PEOPLE)[0])
    sentences: list[str] = []
    for _ in range(rng.randint(4, 10)):
        kind = rng.choices(kinds, probs)[0]
        other = _Person(rng.choice([pp for pp in PEOPLE if pp[0] != main.name])[0])
        person = main if rng.random() < 0.6 else other
        if kind == "worked":
            sentences += _worked_sentences(rng)
        elif kind == "arith":
            sentences += _arith_sentences(rng, person)
        elif kind == "copy":
            sentences += _copy_drill(rng)
        elif kind == "world":
            sentences += _world_sentences(rng, person, other if person is main else main)
        else:
            sentences += _seen_sentences(rng, person, other if person is main else main)
    return " ".join(sentences)


@lru_cache(maxsize=1)
def pydoc_paragraphs() -> tuple[str, ...]:
    """Prose paragraphs of real English from CPython's ``pydoc_data.topics`` (empty if absent).

    Only paragraphs of at least 200 characters that look like prose (no indented code, mostly
    letters) and contain neither "?" nor "#" are kept, with line breaks unwrapped.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return ()
    paras = []
    for key in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[key]):
            if not block.strip() or block.startswith((" ", "\t")) or "?" in block or "#" in block:
                continue
            text = " ".join(line.strip() for line in block.splitlines())
            letters = sum(ch.isalpha() or ch == " " for ch in text)
            if len(text) >= 200 and letters / len(text) > 0.85:
                paras.append(text)
    return tuple(paras)


@lru_cache(maxsize=4)
def _pydoc_pool(role: str | None) -> tuple[str, ...]:
    """Paragraphs for the corpus (``role=None``) or held out for a :func:`toy_text` split."""
    return tuple(p for p in pydoc_paragraphs() if _held_out(p) == role)


def _pydoc_document(rng: random.Random, role: str | None = None) -> str | None:
    paras = _pydoc_pool(role)
    if not paras:
        return None
    i = rng.randrange(len(paras))
    return " ".join(paras[i: i + rng.randint(1, 2)])


def _held_out(text: str) -> str | None:
    b = _bucket("toy_text", text)
    if b in _TEXT_TEST:
        return "test"
    if b in _TEXT_TRAIN:
        return "train"
    return None


def iter_corpus(seed: int = 0, *, variant: str = "toy", pydoc_frac: float = 0.1,
                drill_docs: int = 0) -> Iterator[str]:
    """Yield pretraining documents forever (deterministic in ``seed`` and ``variant``).

    Each document is either 4-10 generated sentence groups (kinds mixed by
    ``_KIND_WEIGHTS[variant]``) or, with probability ``pydoc_frac``, one or two paragraphs of
    real English (never a paragraph that :func:`toy_text` holds out). The first ``drill_docs``
    documents are generated ones mixed by ``_DRILL_WEIGHTS`` (half copy drills). Documents whose
    text hashes into a :func:`toy_text` bucket are skipped.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown corpus variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    rng = _rng("corpus", variant, seed)
    n = 0
    while True:
        drill = n < drill_docs
        n += 1
        doc = _pydoc_document(rng) if not drill and rng.random() < pydoc_frac else None
        if doc is None:
            doc = _generated_document(rng, _DRILL_WEIGHTS if drill else _KIND_WEIGHTS[variant])
        if _held_out(doc) is None:
            yield doc


def corpus(seed: int = 0, *, n_docs: int, variant: str = "toy", pydoc_frac: float = 0.1,
           drill_docs: int = 0) -> list[str]:
    """The first ``n_docs`` documents of :func:`iter_corpus`."""
    it = iter_corpus(seed, variant=variant, pydoc_frac=pydoc_frac, drill_docs=drill_docs)
    return [next(it) for _ in range(n_docs)]


def toy_text(split: str, seed: int = 0) -> list[dict]:
    """Held-out pretraining-style documents ``{"text"}`` (WikiText's role: perplexity, retention).

    Drawn like the ``"toy"`` corpus (including real-English paragraphs) but only from the hash
    buckets :func:`iter_corpus` skips (generated documents as a whole, real-English paragraphs one
    by one), so no document and no real paragraph here is in any pretraining corpus.

    Args:
        split: ``"train"`` (800 documents) or ``"test"`` (400).
        seed: which documents are drawn.

    Raises:
        ValueError: for an unknown split.
    """
    _check_split("toy_text", split)
    return [{"text": t} for t in _toy_text(split, seed)]


@lru_cache(maxsize=16)
def _toy_text(split: str, seed: int) -> tuple[str, ...]:
    rng = _rng("toy_text", split, seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < _SIZES["toy_text"][split]:
        # real English: paragraphs held out one by one; generated text: whole documents
        doc = _pydoc_document(rng, split) if rng.random() < 0.1 else None
        if doc is None:
            doc = _generated_document(rng, _KIND_WEIGHTS["toy"])
            if _held_out(doc) != split:
                continue
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Instruction prompts (IFEval schema)
# --------------------------------------------------------------------------------------------


def _instruction(rng: random.Random) -> str:
    p, q = _two_people(rng)
    f = world()[p.name]
    n, m = p.name, q.name
    k = rng.randint(2, 6)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    templates: list[Callable[[], str]] = [
        lambda: f"Write a short story about {n} and {p.his} {f['pet']}. Use at least {k} sentences.",
        lambda: f"Describe the town of {f['town']} in exactly {k} sentences.",
        lambda: f"List {k} things that {n} might buy at {rng.choice(PLACES)}. Use a bulleted list.",
        lambda: f"Explain step by step how to compute {a} + {b}.",
        lambda: f"Write a letter from {n} to {m} about {f['food']}. Do not use any commas.",
        lambda: f"In all lowercase letters, explain what a {f['job']} does.",
        lambda: f"Write a poem about the colour {f['colour']}. End your response with the phrase 'The end.'",
        lambda: f"Give {k} reasons why {n} likes {f['food']}. Separate them with six asterisks.",
        lambda: f"Rewrite this sentence in the past tense: {n} walks to {rng.choice(PLACES)} with {m}.",
        lambda: f"Write a dialogue between {n} and {m} about {rng.choice(TOPICS)} in fewer than {k * 20} words.",
        lambda: f"Summarize a day in the life of a {f['job']} from {f['town']}. Wrap your answer in double quotes.",
        lambda: f"Write a riddle whose answer is {rng.choice(NATURE)[1]}. Use at most {k} lines.",
    ]
    return rng.choice(templates)()


def toy_instruct(split: str, seed: int = 0) -> list[dict]:
    """IFEval-style instruction prompts ``{"prompt"}`` (300 unique prompts; split ``"test"`` only).

    Raises:
        ValueError: for an unknown split.
    """
    _check_split("toy_instruct", split)
    rng = _rng("toy_instruct", split, seed)
    out: list[dict] = []
    seen: set[str] = set()
    while len(out) < _SIZES["toy_instruct"][split]:
        prompt = _instruction(rng)
        if prompt not in seen:
            seen.add(prompt)
            out.append({"prompt": prompt})
    return out
