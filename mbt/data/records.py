r"""Turning one dataset record into text: field access with clear errors, then :mod:`mbt.formats`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mbt import formats
from mbt.data.registry import _HEADING, _KIND_FIELDS, DatasetSpec, get_spec


def _unwrap(spec: DatasetSpec, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Unwrap a record nested in one struct field (old cais/mmlu ``auxiliary_train``: ``{"train": {..}}``)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"dataset {spec.name!r}: a record must be a mapping, got {type(record).__name__}")
    if len(record) == 1 and _missing_field(spec, record) is not None:
        (inner,) = record.values()
        if isinstance(inner, Mapping) and _missing_field(spec, inner) is None:
            return inner
    return record


def _missing_field(spec: DatasetSpec, record: Mapping[str, Any] | Sequence[str]) -> str | None:
    """Return the first required field absent from a record (or a column list), else ``None``."""
    for name in _KIND_FIELDS[spec.kind]:
        if not any(alt in record for alt in name.split("|")):
            return name
    return None


def _field_error(spec: DatasetSpec, name: str, keys: Any, where: str = "a record") -> ValueError:
    needed = ", ".join(repr(f) for f in _KIND_FIELDS[spec.kind])
    return ValueError(
        f"dataset {spec.name!r}: {where} has no field {name!r} (fields: {sorted(map(str, keys))}); "
        f"the {spec.kind!r} format needs {needed}"
    )


def _get(spec: DatasetSpec, record: Mapping[str, Any], name: str) -> Any:
    if name not in record:
        raise _field_error(spec, name, record.keys())
    return record[name]


def _get_str(spec: DatasetSpec, record: Mapping[str, Any], name: str) -> str:
    value = _get(spec, record, name)
    if not isinstance(value, str):
        raise ValueError(
            f"dataset {spec.name!r}: field {name!r} must be a string, got {type(value).__name__}"
        )
    return value


def _answer_letter(spec: DatasetSpec, answer: Any, n_choices: int) -> str:
    try:
        return formats.answer_letter(answer, n_choices)
    except ValueError as exc:
        raise ValueError(f"dataset {spec.name!r}: field 'answer': {exc}") from None


def _format_multiple_choice(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    question = _get_str(spec, record, "question")
    choices = _get(spec, record, "choices")
    if isinstance(choices, str) or not isinstance(choices, Sequence) or not 0 < len(choices) <= 26:
        raise ValueError(
            f"dataset {spec.name!r}: field 'choices' must be a list of 1-26 strings, got {choices!r}"
        )
    prompt = formats.mc_prompt(question, choices)
    if with_answer:
        return f"{prompt} {_answer_letter(spec, _get(spec, record, 'answer'), len(choices))}"
    return prompt


def _format_qa(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    question = _get_str(spec, record, "question")
    if not with_answer:
        return formats.qa_prompt(question)
    return formats.qa_text(question, _get_str(spec, record, "answer"))


def _format_text(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str | None:
    text = _get_str(spec, record, "text")
    if spec.drop_headings and _HEADING.fullmatch(text):
        return None
    return formats.plain_text(text)


def _format_instruction(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    return _get_str(spec, record, "prompt")


def _format_code(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    prompt = _get_str(spec, record, "prompt")
    if not with_answer:
        return prompt
    return formats.code_text(prompt, _get_str(spec, record, "canonical_solution"))


def _format_conversation(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    name = "turns" if "turns" in record else "prompt"
    turns = _get(spec, record, name)
    if not isinstance(turns, str) and (
        not isinstance(turns, Sequence) or not all(isinstance(t, str) for t in turns)
    ):
        raise ValueError(f"dataset {spec.name!r}: field {name!r} must be a string or a list of strings")
    return formats.conversation_text(turns)


_FORMATTERS: dict[str, Callable[[DatasetSpec, Mapping[str, Any], bool], str | None]] = {
    "multiple_choice": _format_multiple_choice,
    "qa": _format_qa,
    "text": _format_text,
    "instruction": _format_instruction,
    "code": _format_code,
    "conversation": _format_conversation,
    "classification": _format_text,
}


def format_record(
    dataset: str | DatasetSpec, record: Mapping[str, Any], *, with_answer: bool = True
) -> str | None:
    r"""Turn one raw record into the text fed (identically) to Base and SFT.

    The formats themselves live in :mod:`mbt.formats` (shared with training and evaluation); this function
    adds the dataset rules: field and type checks naming the dataset, ``min_chars`` and WikiText headings.
    Formats (authors' ``data_utils.format_sample``, fixed where noted):

    * ``multiple_choice`` (MMLU): ``"Question: {question}\nA) c0 B) c1 C) c2 D) c3\nAnswer: {letter}"``.
    * ``qa`` (GSM8K): ``"Question: {question}\nAnswer: {answer}"`` with the full rationale
      (``<<...>>`` annotations and ``"#### N"``).
    * ``text`` (WikiText) and ``classification`` (ToxiGen): the ``text`` field, stripped; WikiText section
      headings are dropped when ``spec.drop_headings``. The ToxiGen label is not used.
    * ``instruction`` (IFEval): the ``prompt`` field.
    * ``code`` (HumanEval): ``prompt + "\n" + canonical_solution``.
    * ``conversation`` (MT-Bench): the turns (``turns`` field, else ``prompt``) joined with
      :data:`TURN_SEPARATOR` (the authors passed the list to the tokenizer as a text pair).

    Args:
        dataset: Name or spec.
        record: One record with the Hub dataset's fields.
        with_answer: Include the gold answer (the paper does). When ``False``, MMLU and GSM8K texts end
            in ``"Answer:"`` and HumanEval gives the prompt only; other kinds have no answer to omit.

    Returns:
        The text, or ``None`` when the record is dropped (shorter than ``spec.min_chars`` after stripping,
        whitespace only, or a dropped heading).

    Raises:
        ValueError: When a needed field is missing or has the wrong type (the message names the dataset
            and the field).
    """
    spec = get_spec(dataset)
    record = _unwrap(spec, record)
    formatter = _FORMATTERS.get(spec.kind)
    if formatter is None:  # unreachable for validated specs; kept for hand-built subclasses
        raise ValueError(f"dataset {spec.name!r}: no formatter for kind {spec.kind!r}")
    text = formatter(spec, record, with_answer)
    if text is None or len(text.strip()) < max(spec.min_chars, 1):
        return None
    return text
