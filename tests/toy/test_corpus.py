"""The toy corpus and task generators: determinism, disjoint splits, schemas, correct answers."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from mbt.evaluate import extract_gsm8k_answer
from mbt.toy import corpus as toydata
from mbt.toy.corpus import toy_instruct, toy_math, toy_mc, toy_text

GENERATORS = {"toy_math": toy_math, "toy_mc": toy_mc, "toy_text": toy_text, "toy_instruct": toy_instruct}
SCHEMAS = {
    "toy_math": {"question", "answer"},
    "toy_mc": {"question", "subject", "choices", "answer"},
    "toy_text": {"text"},
    "toy_instruct": {"prompt"},
}


def _cases():
    return [(name, split) for name, splits in toydata.SPLITS.items() for split in splits]


@pytest.mark.parametrize(("name", "split"), _cases())
def test_deterministic_per_seed_and_different_across_seeds(name, split):
    fn = GENERATORS[name]
    a, b, c = fn(split, 0), fn(split, 0), fn(split, 1)
    assert a == b
    assert a != c
    assert len(a) > 0


@pytest.mark.parametrize(("name", "split"), _cases())
def test_schema_fields(name, split):
    for item in GENERATORS[name](split, 0):
        assert set(item) == SCHEMAS[name]
        for key, value in item.items():
            if key == "choices":
                assert isinstance(value, list) and len(value) == 4 and all(isinstance(c, str) for c in value)
                assert len(set(value)) == 4
            elif key == "answer" and name == "toy_mc":
                assert isinstance(value, int) and 0 <= value <= 3
            else:
                assert isinstance(value, str) and value.strip()


@pytest.mark.parametrize("name", ["toy_math", "toy_mc", "toy_text"])
def test_splits_are_disjoint_across_seeds(name):
    fn = GENERATORS[name]
    key = "text" if name == "toy_text" else "question"
    train = {it[key] for seed in (0, 1, 2) for it in fn("train", seed)}
    test = {it[key] for seed in (0, 1, 2) for it in fn("test", seed)}
    assert train and test
    assert not train & test


@pytest.mark.parametrize("name", ["toy_math", "toy_mc", "toy_text", "toy_instruct"])
def test_items_unique_within_a_split(name):
    fn = GENERATORS[name]
    for split in toydata.SPLITS[name]:
        items = fn(split, 0)
        keys = [json.dumps(it, sort_keys=True) for it in items]
        assert len(set(keys)) == len(keys)
        if name in ("toy_math", "toy_mc"):
            assert len({it["question"] for it in items}) == len(items)


@pytest.mark.parametrize(("name", "valid"), [(n, s) for n, s in toydata.SPLITS.items()])
def test_unknown_split_raises_with_valid_splits(name, valid):
    with pytest.raises(ValueError) as err:
        GENERATORS[name]("validation", 0)
    for split in valid:
        assert split in str(err.value)
    if name == "toy_instruct":
        with pytest.raises(ValueError):
            toy_instruct("train", 0)


def _recompute(question: str) -> int:
    """The answer of a toy_math question from its own words and numbers."""
    nums = [int(x) for x in re.findall(r"\d+", question)]
    if re.search(r"Then (he|she) gives \d+", question):
        kind, value = "add_sub", nums[0] + nums[1] - nums[2]
    elif "also has" in question:
        kind, value = "mul_add", nums[0] * nums[1] + nums[2]
    elif "Each" in question:
        kind, value = "mul", nums[0] * nums[1]
    elif "together?" in question:
        kind, value = "together", nums[0] + nums[1]
    elif question.endswith("left?"):
        kind, value = "sub", nums[0] - nums[1]
    else:
        kind, value = "add", nums[0] + nums[1]
    expected_count = 3 if kind in ("add_sub", "mul_add") else 2
    assert len(nums) == expected_count, question
    return value


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_math_answer_parses_to_the_recomputed_value(split):
    items = toy_math(split, 0)
    for item in items:
        expected = _recompute(item["question"])
        assert extract_gsm8k_answer(item["answer"]) == expected, item
        assert item["answer"].endswith(f"\n#### {expected}")
        assert 0 <= expected <= 99


def test_math_covers_every_kind():
    kinds = set()
    for item in toy_math("test", 0):
        q = item["question"]
        kinds.add("add_sub" if "Then" in q else "mul_add" if "also has" in q else "mul" if "Each" in q
                  else "together" if "together?" in q else "sub" if q.endswith("left?") else "add")
    assert kinds == set(toydata.MATH_KINDS)


def _mc_truth(item: dict) -> str:
    q = item["question"]
    if m := re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", q):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str(a + b if op == "+" else a - b if op == "-" else a * b)
    world = toydata.world()
    if m := re.fullmatch(r"Where does (\w+) live\?", q):
        if m[1] in world:
            return world[m[1]]["town"]
    if m := re.fullmatch(r"What pet does (\w+) have\?", q):
        return "a " + world[m[1]]["pet"]
    if m := re.fullmatch(r"What is (\w+)'s job\?", q):
        return "a " + world[m[1]]["job"]
    if m := re.fullmatch(r"What does (\w+) like to eat\?", q):
        return world[m[1]]["food"]
    if m := re.fullmatch(r"What is (\w+)'s favourite colour\?", q):
        return world[m[1]]["colour"]
    for cat, subject, value in toydata.NATURE:
        templates = {"colour": "What colour is {s}?", "sound": "What does {s} do?",
                     "home": "Where does {s} live?", "legs": "How many legs does {s} have?",
                     "count": "How long is {s}?", "opposite": "What is the opposite of {s}?"}
        if q == templates[cat].format(s=subject):
            return value
    raise AssertionError(f"unrecognised question {q!r}")


@pytest.mark.parametrize("split", ["train", "test"])
def test_mc_answer_index_points_to_the_correct_choice(split):
    items = toy_mc(split, 0)
    assert {it["subject"] for it in items} == {"people", "nature", "arithmetic"}
    for item in items:
        assert item["choices"][item["answer"]] == _mc_truth(item)
    # the correct letter is not always the same
    assert len({it["answer"] for it in items}) == 4


def test_formats_match_the_paper():
    item = toy_math("test", 0)[0]
    assert toydata.format_math(item) == f"Question: {item['question']}\nAnswer: {item['answer']}"
    assert toydata.format_math(item, with_answer=False) == f"Question: {item['question']}\nAnswer:"
    mc = {"question": "Q?", "subject": "s", "choices": ["w", "x", "y", "z"], "answer": 2}
    assert toydata.format_mc(mc) == "Question: Q?\nA) w B) x C) y D) z\nAnswer: C"


FORMAT_VOCAB = ("Question", "Answer", "####", "?")


def test_corpus_variants_differ_in_format_vocabulary():
    toy = " ".join(toydata.corpus(0, n_docs=3000, variant="toy"))
    seen = " ".join(toydata.corpus(0, n_docs=3000, variant="seen"))
    for token in FORMAT_VOCAB:
        assert token not in toy, token
        assert seen.count(token) > 20, token
    # the corpus mixes generated text, arithmetic, worked copies and real English
    assert " + " in toy and " = " in toy and "times" in toy
    assert any(p[:80] in toy for p in toydata.pydoc_paragraphs()[:200])
    with pytest.raises(ValueError, match="toy, seen"):
        toydata.corpus(0, n_docs=1, variant="other")


def test_corpus_is_deterministic_and_excludes_held_out_text():
    a = toydata.corpus(3, n_docs=500)
    assert a == toydata.corpus(3, n_docs=500)
    assert a != toydata.corpus(4, n_docs=500)
    docs = set(toydata.corpus(0, n_docs=5000))
    held_out = {it["text"] for split in ("train", "test") for it in toy_text(split, 0)}
    assert not docs & held_out
    assert all(toydata._held_out(d) is None for d in docs)
    # real-English paragraphs are held out one by one, so none leaks in as part of a longer document
    text = "\n".join(docs)
    held_paras = [p for p in toydata.pydoc_paragraphs() if toydata._held_out(p) is not None]
    assert held_paras
    assert not [p for p in held_paras if p in text]
    in_toy_text = [p for p in held_paras if any(p in t for t in held_out)]
    assert in_toy_text


def test_worked_sentences_copy_names_and_numbers():
    # a worked mini-problem restates its own name and numbers in the solution
    docs = toydata.corpus(0, n_docs=300)
    hits = [m for d in docs for m in re.finditer(r"(\w+) has (\d+) (\w+)\. (?:He|She) gets (\d+) more \3\."
                                                   r" (?:So |Now |That means )?\1 has \2 \+ \4 = (\d+) \3\.", d)]
    assert len(hits) > 10
    assert all(int(m[5]) == int(m[2]) + int(m[4]) for m in hits)


def test_world_is_seed_independent_and_fixed():
    w = toydata.world()
    assert set(w) == {name for name, _ in toydata.PEOPLE}
    digest = hashlib.sha256(json.dumps(w, sort_keys=True).encode()).hexdigest()
    code = ("import hashlib, json; from mbt.toy import corpus as toydata; "
            "print(hashlib.sha256(json.dumps(toydata.world(), sort_keys=True).encode()).hexdigest()); "
            "print(hashlib.sha256(json.dumps(toydata.toy_math('test', 5)).encode()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.split()
    assert lines[0] == digest
    assert lines[1] == hashlib.sha256(json.dumps(toy_math("test", 5)).encode()).hexdigest()
