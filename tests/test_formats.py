"""Tests for mbt.formats: byte-identical to the formats it replaced, and one prompt for train/eval/analysis."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mbt import data, evaluate, formats
from mbt.toy import corpus as toydata

GOLDEN_PATH = Path(__file__).with_name("formats_golden.json")
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
"""Outputs of the pre-refactor functions (``data.format_record``, ``evaluate.gsm8k_prompt`` /
``mmlu_prompt`` / ``toxigen_accuracy``'s inline prompt, ``toydata.format_math`` / ``format_mc``) at
commit b51b400, on the records stored alongside them."""
RECORDS: dict[str, list[dict[str, Any]]] = GOLDEN["records"]


def _shots(records: Sequence[dict[str, Any]], k: int) -> Sequence[dict[str, Any]]:
    return records[-k:] if k else ()


# ------------------------------------------------------------------------------------------------
# Byte-identical to the captured outputs
# ------------------------------------------------------------------------------------------------


def test_golden_file_covers_every_registered_dataset() -> None:
    assert set(RECORDS) == set(data.DATASETS)
    assert all(len(records) >= 2 for records in RECORDS.values())


@pytest.mark.parametrize("name", sorted(GOLDEN["format_record"]))
def test_format_record_is_unchanged(name: str) -> None:
    expected = GOLDEN["format_record"][name]
    got = [[data.format_record(name, r, with_answer=w) for w in (True, False)] for r in RECORDS[name]]
    assert got == expected


def test_evaluation_prompts_are_unchanged() -> None:
    got_qa = [[name, k, evaluate.gsm8k_prompt(r["question"], _shots(RECORDS[name], k))]
              for name in ("gsm8k", "toy-math") for k in range(3) for r in RECORDS[name]]
    assert got_qa == GOLDEN["gsm8k_prompt"]
    got_mc = [[name, k, evaluate.mmlu_prompt(r, _shots(RECORDS[name], k))]
              for name in ("mmlu", "toy-mc") for k in range(3) for r in RECORDS[name]]
    assert got_mc == GOLDEN["mmlu_prompt"]
    toxigen = RECORDS["toxigen"]
    got_tox = [[k, [evaluate.toxigen_prompt(it, _shots(toxigen, k)) for it in toxigen]] for k in range(3)]
    assert got_tox == GOLDEN["toxigen_prompt"]


def test_toydata_formats_are_unchanged() -> None:
    assert [[toydata.format_math(r), toydata.format_math(r, with_answer=False)]
            for r in RECORDS["toy-math"]] == GOLDEN["toydata_format_math"]
    assert [[toydata.format_mc(r), toydata.format_mc(r, with_answer=False)]
            for r in RECORDS["toy-mc"]] == GOLDEN["toydata_format_mc"]


def test_letters_and_constants_have_one_home() -> None:
    old = GOLDEN["letters"]
    assert formats.LETTERS == old["data"] == old["evaluate"]
    assert formats.choice_letters(4) == old["toydata"] == toydata.LETTERS
    assert evaluate.MMLU_LETTERS is formats.LETTERS
    assert formats.TOXICITY_PROMPT == old["toxigen_prompt"] == evaluate.TOXIGEN_PROMPT
    assert formats.TURN_SEPARATOR == old["turn_separator"] == data.TURN_SEPARATOR
    assert data.KINDS == formats.FORMAT_KINDS


def test_formats_is_a_foundation_module() -> None:
    tree = ast.parse(Path(formats.__file__).read_text(encoding="utf-8"))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m == "mbt" or m.startswith("mbt.")]


# ------------------------------------------------------------------------------------------------
# The formats module itself
# ------------------------------------------------------------------------------------------------


def test_answer_letter() -> None:
    assert formats.answer_letter(0, 4) == "A"
    assert formats.answer_letter(3, 4) == "D"
    assert formats.answer_letter(" c ", 4) == "C"
    for bad in (4, -1, "E", True, 1.0, "AB", None):
        with pytest.raises(ValueError, match="choice index or letter"):
            formats.answer_letter(bad, 4)


def test_choice_letters() -> None:
    assert formats.choice_letters(1) == "A"
    assert formats.choice_letters(26) == formats.LETTERS
    for bad in (0, 27, True, 2.0):
        with pytest.raises(ValueError, match="n_choices"):
            formats.choice_letters(bad)  # type: ignore[arg-type]


def test_mc_and_qa_texts() -> None:
    assert formats.mc_text("Q?", ["w", "x", "y", "z"], 2) == "Question: Q?\nA) w B) x C) y D) z\nAnswer: C"
    assert formats.mc_text("Q?", ["w", "x"], None, with_answer=False) == "Question: Q?\nA) w B) x\nAnswer:"
    for bad in ("abcd", [], list("abcdefghijklmnopqrstuvwxyz0"), 3):
        with pytest.raises(ValueError, match="'choices' must be a list"):
            formats.mc_prompt("Q?", bad)  # type: ignore[arg-type]
    assert formats.qa_text("Q?", "A.\n#### 1") == "Question: Q?\nAnswer: A.\n#### 1"
    assert formats.qa_prompt("Q?") == "Question: Q?\nAnswer:"


def test_other_kinds_and_toxicity() -> None:
    assert formats.plain_text("  a b \n") == "a b"
    assert formats.code_text("def f():\n", "    pass") == "def f():\n\n    pass"
    assert formats.code_text("def f():\n", "    pass", with_answer=False) == "def f():\n"
    assert formats.conversation_text(["a", "b"]) == "a\n\nb"
    assert formats.conversation_text("one") == "one"
    assert formats.toxicity_prompt("  x  ") == (
        "Is the following statement toxic? Answer Yes or No.\nStatement: x\nAnswer:"
    )
    assert formats.toxicity_example("x", 1).endswith("Answer: Yes")
    assert formats.toxicity_example("x", 0).endswith("Answer: No")
    with pytest.raises(ValueError, match="must contain"):
        formats.toxicity_prompt("x", "no placeholder")
    assert formats.few_shot(["e1", "e2"], "p") == "e1\n\ne2\n\np"
    assert formats.few_shot([], "p") == "p"


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_format_kind_and_prompt_and_completion(name: str) -> None:
    kind = data.get_spec(name).kind
    for record in RECORDS[name]:
        prompt, completion = formats.prompt_and_completion(kind, record)
        assert prompt + completion == formats.format_kind(kind, record)
        if kind in formats.COMPLETION_KINDS:
            assert prompt.endswith(formats.ANSWER_MARKER) and completion.startswith(" ")
            assert prompt == formats.format_kind(kind, record, with_answer=False)
        else:
            assert completion == ""
        text = data.format_record(name, record)
        if text is not None:  # dataset rules (min_chars, headings) only drop records
            assert text == prompt + completion
    with pytest.raises(ValueError, match="unknown format kind"):
        formats.format_kind("poem", RECORDS["gsm8k"][0])


# ------------------------------------------------------------------------------------------------
# Training, evaluation and analysis build the same prompt from the same record
# ------------------------------------------------------------------------------------------------


class CharTokenizer:
    """One token per character (its code point), a BOS id in front, no EOS: decoding is exact."""

    bos_token_id = 0x110000
    eos_token_id = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [ord(c) for c in text]
        return {"input_ids": [self.bos_token_id, *ids] if add_special_tokens else ids}

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids if i != self.bos_token_id)


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _training_pieces(task: str, path: Path, loss_on: str) -> list[tuple[str, str]]:
    """(prompt, completion) text of every fine-tuning example, decoded from tune.training_examples."""
    from mbt import tune

    tok = CharTokenizer()
    examples = tune.training_examples(tok, task, split=data.get_spec(task).split, path=path, loss_on=loss_on)
    return [(tok.decode(ids[:n_prompt]), tok.decode(ids[n_prompt:])) for ids, n_prompt in examples]


def _evaluation_prompts(task: str, record: Mapping[str, Any]) -> list[str]:
    """Every prompt the evaluation code builds for a record of this task (zero-shot)."""
    if task in ("gsm8k", "toy-math"):
        return [evaluate.gsm8k_prompt(record["question"]), toydata.format_math(record, with_answer=False)]
    if task in ("mmlu", "toy-mc"):
        return [evaluate.mmlu_prompt(record), toydata.format_mc(record, with_answer=False)]
    raise AssertionError(task)


def _evaluation_completion(task: str, record: Mapping[str, Any]) -> str:
    """The continuation the evaluation code scores: the answer text or the gold letter, after a space."""
    if task in ("gsm8k", "toy-math"):
        return " " + record["answer"]  # evaluate.answer_nll
    return " " + evaluate._mc_letter(record)  # evaluate.mmlu_accuracy's gold letter, scored as " {letter}"


@pytest.mark.parametrize("task", ["gsm8k", "mmlu", "toy-math", "toy-mc"])
def test_train_eval_analysis_share_prompt_and_answer(task: str, tmp_path: Path) -> None:
    records = RECORDS[task]
    path = _write_jsonl(tmp_path / f"{task}.jsonl", records)
    analysis = {text: r for r in records if (text := data.format_record(task, r)) is not None}
    sample = data.load_sample(task, n_pooled=len(records), n_token=0, path=path, allow_fewer=True)
    assert sorted(sample.texts) == sorted(analysis)
    training = _training_pieces(task, path, loss_on="answer")
    assert len(training) == len(records)
    for prompt, completion in training:
        record = analysis[prompt + completion]  # the training text is an analysis text
        for eval_prompt in _evaluation_prompts(task, record):
            assert prompt == eval_prompt
        assert completion == _evaluation_completion(task, record)
        assert (prompt, completion) == formats.prompt_and_completion(data.get_spec(task).kind, record)


def test_toy_generators_feed_the_same_prompts(tmp_path: Path) -> None:
    """The real toy generators (no path=) give training examples whose prompts the evaluation builds."""
    from mbt import tune

    tok = CharTokenizer()
    for task, fmt in (("toy-math", toydata.format_math), ("toy-mc", toydata.format_mc)):
        records = data.load_records(task, split="test")
        by_text = {fmt(r): r for r in records}
        for ids, n_prompt in tune.training_examples(tok, task, n=20, split="test"):
            record = by_text[tok.decode(ids)]
            assert tok.decode(ids[:n_prompt]) == fmt(record, with_answer=False)


def test_toxigen_statement_is_the_analysis_text(tmp_path: Path) -> None:
    records = RECORDS["toxigen"]
    path = _write_jsonl(tmp_path / "toxigen.jsonl", records)
    texts = data.load_sample("toxigen", n_pooled=10, n_token=0, path=path, allow_fewer=True).texts
    assert sorted(texts) == sorted(t for r in records if (t := data.format_record("toxigen", r)))
    training = [p + c for p, c in _training_pieces("toxigen", path, loss_on="all")]
    assert sorted(training) == sorted(texts)
    for record in records:
        text = data.format_record("toxigen", record)
        if text is None:
            continue
        assert evaluate.toxigen_prompt(record) == formats.TOXICITY_PROMPT.format(text=text)
        assert evaluate.toxigen_prompt(record) == formats.toxicity_prompt(record["text"])


@pytest.mark.parametrize("task", ["wikitext", "ifeval", "humaneval", "mt_bench", "toy-text", "toy-instruct"])
def test_text_tasks_train_on_the_analysis_text(task: str, tmp_path: Path) -> None:
    records = RECORDS[task]
    path = _write_jsonl(tmp_path / f"{task}.jsonl", records)
    texts = data.load_sample(task, n_pooled=len(records), n_token=0, path=path, allow_fewer=True).texts
    expected = [t for r in records if (t := data.format_record(task, r)) is not None]
    assert sorted(texts) == sorted(expected) and texts
    training = _training_pieces(task, path, loss_on="all")
    assert sorted(p + c for p, c in training) == sorted(texts)
    assert all(p == "" for p, _ in training)  # loss on every token: nothing is a masked prompt
