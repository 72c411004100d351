"""Formatting records of each dataset into texts (mbt.data.records)."""

from __future__ import annotations

import dataclasses

import pytest
from data_fakes import GSM8K, HUMANEVAL, MT_BENCH, TOXIGEN, WIKITEXT, WIKITEXT_USABLE  # noqa: F401

from mbt.data import (
    DATASETS,
    format_record,
)

IFEVAL = {
    "key": 1000,
    "prompt": "Write a 300+ word summary of the wikipedia page. Do not use any commas.",
    "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
}


def test_format_mmlu() -> None:
    rec = {"question": "Which planet is largest?", "subject": "astronomy",
           "choices": ["Mars", "Jupiter", "Venus", "Earth"], "answer": 1}
    assert format_record("mmlu", rec) == (
        "Question: Which planet is largest?\nA) Mars B) Jupiter C) Venus D) Earth\nAnswer: B"
    )
    assert format_record("mmlu", rec, with_answer=False) == (
        "Question: Which planet is largest?\nA) Mars B) Jupiter C) Venus D) Earth\nAnswer:"
    )
    assert format_record("mmlu", {**rec, "answer": "D"}).endswith("Answer: D")
    with pytest.raises(ValueError, match="out of range"):
        format_record("mmlu", {**rec, "answer": 4})


def test_format_mmlu_unwraps_old_auxiliary_train_nesting() -> None:
    rec = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 0}
    assert format_record("mmlu", {"train": rec}) == format_record("mmlu", rec)


def test_format_gsm8k() -> None:
    assert format_record("gsm8k", GSM8K) == (
        "Question: Tom buys 3 packs of 4 pencils. How many pencils does he have?\n"
        "Answer: Each pack has 4 pencils, so he has 3*4=<<3*4=12>>12 pencils.\n#### 12"
    )
    assert format_record("gsm8k", GSM8K, with_answer=False) == (
        "Question: Tom buys 3 packs of 4 pencils. How many pencils does he have?\nAnswer:"
    )


def test_format_wikitext_drops_short_lines_and_headings() -> None:
    out = [format_record("wikitext", r) for r in WIKITEXT]
    assert out[2] == "Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game ."
    assert {i for i, t in enumerate(out) if t is not None} == WIKITEXT_USABLE
    assert format_record("wikitext", WIKITEXT[2], with_answer=False) == out[2]
    authors = dataclasses.replace(DATASETS["wikitext"], drop_headings=False)
    assert format_record(authors, WIKITEXT[1]) == "= Valkyria Chronicles III ="
    assert format_record(authors, WIKITEXT[4]) == "= = Gameplay = ="
    assert format_record(authors, WIKITEXT[3]) is None


def test_format_wikitext_min_chars_boundary() -> None:
    assert format_record("wikitext", {"text": "  123456789  "}) is None
    assert format_record("wikitext", {"text": "  1234567890  "}) == "1234567890"


def test_format_humaneval_ifeval_toxigen() -> None:
    assert format_record("humaneval", HUMANEVAL) == (
        'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n\n    return a + b\n'
    )
    assert format_record("humaneval", HUMANEVAL, with_answer=False) == HUMANEVAL["prompt"]
    for with_answer in (True, False):
        assert format_record("ifeval", IFEVAL, with_answer=with_answer) == IFEVAL["prompt"]
        assert format_record("toxigen", TOXIGEN[0], with_answer=with_answer) == TOXIGEN[0]["text"]
        assert format_record("toxigen", TOXIGEN[1], with_answer=with_answer) is None


def test_format_mt_bench_joins_both_turns() -> None:
    expected = MT_BENCH["prompt"][0] + "\n\n" + MT_BENCH["prompt"][1]
    for with_answer in (True, False):
        assert format_record("mt_bench", MT_BENCH, with_answer=with_answer) == expected
    assert format_record("mt_bench", {"turns": MT_BENCH["prompt"]}) == expected
    assert format_record("mt_bench", {"prompt": "one turn only"}) == "one turn only"
    with pytest.raises(ValueError, match="list of strings"):
        format_record("mt_bench", {"prompt": [1, 2]})


@pytest.mark.parametrize(
    ("name", "record", "missing"),
    [
        ("mmlu", {"question": "Q?", "answer": 0}, "choices"),
        ("gsm8k", {"question": "Q?"}, "answer"),
        ("wikitext", {"page": "x"}, "text"),
        ("humaneval", {"prompt": "def f():\n"}, "canonical_solution"),
        ("ifeval", {"key": 1}, "prompt"),
        ("mt_bench", {"category": "writing"}, "turns|prompt"),
    ],
)
def test_missing_field_names_dataset_and_field(name: str, record: dict, missing: str) -> None:
    with pytest.raises(ValueError, match=rf"dataset '{name}'.*no field '{missing}'"):
        format_record(name, record)


def test_wrong_field_type() -> None:
    with pytest.raises(ValueError, match="'question' must be a string"):
        format_record("gsm8k", {"question": None, "answer": "#### 1"})
