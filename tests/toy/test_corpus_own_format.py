"""The toy's own format (mbt.toy.corpus.own_format): the corpus's form of a worked problem, and no leak."""

from __future__ import annotations

import random
import re

import pytest

from mbt.toy import corpus


def _equations(solution: str) -> list[str]:
    return re.findall(r"\d+ [-+*] \d+ = \d+", solution)


def test_own_format_prompts_never_include_a_test_problems_solution():
    """Every held-out problem: the own prompt holds no '=' and no solution sentence; the arithmetic prompt
    stops right after the last '=', before the value; neither holds anything after '####'."""
    for item in corpus.toy_math("test", 0):
        form = corpus.own_format(item)
        solution, value = item["answer"].split("\n#### ")
        own, arith = form["own_prompt"], form["arithmetic_prompt"]
        assert "=" not in own and "####" not in own and "####" not in arith
        for sentence in re.split(r"(?<=\.) ", solution):
            assert sentence not in own and sentence[: -1] not in own
        for equation in _equations(solution):
            assert equation not in own
        assert arith.endswith(" =") and form["arithmetic_target"] == f" {value}"
        assert _equations(solution)[-1] not in arith  # the last equation's result is what is asked
        assert own.startswith(form["facts"]) and form["facts"] in item["question"]
        assert (arith + form["arithmetic_target"]) in (own + form["own_target"])


def test_own_format_is_how_the_corpus_writes_a_worked_problem():
    """The same problem drawn by the corpus's generator, written after the lead "So ", is prompt + target."""
    rng = random.Random("own-format-test")
    for _ in range(300):
        prob = corpus._math_problem(rng)
        item = {"question": " ".join([*prob["facts"], prob["question"]]),
                "answer": " ".join(prob["solution"]) + f"\n#### {prob['value']}"}
        form = corpus.own_format(item)
        worked = " ".join([*prob["facts"], *corpus._led("So ", prob["solution"])])
        assert form["own_prompt"] + form["own_target"] == worked
        assert form["arithmetic_target"] == f" {prob['value']}"
    docs = " ".join(corpus.corpus(0, n_docs=300))
    assert re.search(r"\. So (together they|[A-Z][a-z]+) have? \d+ [-+*] \d+ = \d+", docs), \
        "the pretraining corpus writes worked solutions after 'So'"
    assert "Question" not in docs and "####" not in docs


def test_a_record_in_another_form_is_refused():
    with pytest.raises(ValueError, match="not a toy_math item"):
        corpus.own_format({"question": "What is 2 + 2?", "answer": "4\n#### 4"})
    with pytest.raises(ValueError, match="not a toy_math item"):
        corpus.own_format({"question": "Tom has 2 pens. How many?", "answer": "Tom has 2 pens."})
    with pytest.raises(ValueError, match="gives '5', not the answer '6'"):
        corpus.own_format({"question": "Tom has 2 pens. He gets 3 more pens. How many pens does Tom have now?",
                           "answer": "Tom has 2 + 3 = 5 pens.\n#### 6"})
