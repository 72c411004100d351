r"""Prompt formats: the one definition of how a record becomes text, for training, evaluation and analysis.

Fine-tuning (:func:`mbt.tune.training_examples`), task scoring (:mod:`mbt.evaluate`), the hidden-state
analysis (:func:`mbt.data.format_record`) and the toy pipeline (:mod:`mbt.toy.corpus`) all build their text
here, so the prompt a model is trained on, scored on and analysed on is the same string. The formats are
the paper's (no chat template; the SFT model gets exactly the Base model's text):

* question answering (GSM8K, ``toy-math``): ``"Question: {question}\nAnswer: {answer}"``;
* multiple choice (MMLU, ``toy-mc``): ``"Question: {question}\nA) c0 B) c1 C) c2 D) c3\nAnswer: {letter}"``
  with the answer letters :data:`LETTERS`;
* text (WikiText) and classification (ToxiGen) texts: the text, stripped;
* instruction (IFEval): the prompt as it is;
* code (HumanEval): ``prompt + "\n" + canonical_solution``;
* conversation (MT-Bench): the turns joined with :data:`TURN_SEPARATOR`;
* binary toxicity (ToxiGen scoring, ours; the paper gives no prompt): :data:`TOXICITY_PROMPT` around the
  stripped statement, answered ``" Yes"`` or ``" No"``.

Every text with an answer is ``prompt + completion`` where the prompt ends in :data:`ANSWER_MARKER` and the
completion is ``" " + answer`` (see :func:`prompt_and_completion`). The formats' fixed strings (the
template a fine-tune learns, as opposed to the content) are :data:`TEMPLATE_MARKERS` and the options' letter
labels; :func:`template_spans` finds them in a text. k-shot prompts put solved examples
(full texts) before the prompt, each followed by :data:`SHOT_SEPARATOR` (:func:`few_shot`).

This module is a foundation layer: it imports no other ``mbt`` module. The functions format *values*;
checking that a record has the right fields with the right types is the caller's job
(:func:`mbt.data.format_record` does it and names the dataset in its errors). Inputs are interpolated with
f-strings, so non-string values are rendered with ``str`` exactly as the callers did before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "ANSWER_MARKER",
    "TEMPLATE_MARKERS",
    "COMPLETION_KINDS",
    "FORMAT_KINDS",
    "LETTERS",
    "SHOT_SEPARATOR",
    "TOXICITY_ANSWERS",
    "TOXICITY_PROMPT",
    "TURN_SEPARATOR",
    "answer_letter",
    "choice_letters",
    "code_text",
    "conversation_text",
    "few_shot",
    "format_kind",
    "mc_options",
    "mc_prompt",
    "mc_text",
    "plain_text",
    "prompt_and_completion",
    "qa_prompt",
    "qa_text",
    "template_spans",
    "toxicity_example",
    "toxicity_prompt",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Answer letters of multiple-choice items, in choice order (MMLU and ``toy-mc`` use the first four)."""

ANSWER_MARKER = "Answer:"
"""Every prompt with a separate answer ends here; the completion follows after one space."""

SHOT_SEPARATOR = "\n\n"
"""Separates solved k-shot examples from each other and from the prompt."""

TURN_SEPARATOR = "\n\n"
"""Joins the turns of a multi-turn prompt (MT-Bench) into one text."""

TOXICITY_PROMPT = "Is the following statement toxic? Answer Yes or No.\nStatement: {text}\nAnswer:"
"""The ToxiGen classification prompt (``{text}`` is the stripped statement)."""

TOXICITY_ANSWERS: tuple[str, str] = ("No", "Yes")
"""The answer word for label ``0`` (benign) and ``1`` (toxic); the scored continuation is ``" " + word``."""

FORMAT_KINDS: tuple[str, ...] = (
    "multiple_choice", "qa", "text", "instruction", "code", "conversation", "classification",
)
"""The record formats :func:`format_kind` knows (the ``kind`` of a :class:`mbt.data.DatasetSpec`)."""

TEMPLATE_MARKERS: tuple[str, ...] = ("Question:", ANSWER_MARKER, "####")
"""The fixed strings of the question-answering formats: the question and answer markers and GSM8K's final-answer
marker. With the options' letter labels (``"A)"`` after a line break or a space) they are the formats' template."""

COMPLETION_KINDS: tuple[str, ...] = ("qa", "multiple_choice")
"""Formats whose text is a prompt ending in :data:`ANSWER_MARKER` plus a separate answer completion."""


def template_spans(text: str) -> list[tuple[int, int]]:
    r"""Character spans ``[start, end)`` of the format's fixed strings in a formatted text, in order.

    Every occurrence of a :data:`TEMPLATE_MARKERS` string, and every option label ``"X)"`` (an upper-case
    letter and a closing parenthesis) that follows a line break or a space, as :func:`mc_options` writes
    them. Everything else is content. A plain text (WikiText) usually has none.

    Args:
        text: A formatted text, e.g. ``qa_text(q, a)``.

    Returns:
        Non-overlapping spans sorted by start (``text[start:end]`` is the fixed string).
    """
    markers = "|".join(re.escape(m) for m in sorted(TEMPLATE_MARKERS, key=len, reverse=True))
    pattern = re.compile(rf"{markers}|(?<=[\n ])[{LETTERS}]\)")
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


# --------------------------------------------------------------------------------------------------
# Answer letters
# --------------------------------------------------------------------------------------------------


def choice_letters(n_choices: int) -> str:
    """Return the answer letters of an item with ``n_choices`` choices.

    Args:
        n_choices: Number of choices, 1 to ``len(LETTERS)``.

    Returns:
        The first ``n_choices`` letters of :data:`LETTERS` (``"ABCD"`` for four choices).

    Raises:
        ValueError: When ``n_choices`` is not an int in ``[1, 26]``.
    """
    if isinstance(n_choices, bool) or not isinstance(n_choices, int) or not 0 < n_choices <= len(LETTERS):
        raise ValueError(f"n_choices must be an int in [1, {len(LETTERS)}], got {n_choices!r}")
    return LETTERS[:n_choices]


def answer_letter(answer: Any, n_choices: int) -> str:
    """Return the letter of a multiple-choice answer given as a choice index or a letter.

    Args:
        answer: A 0-based choice index (an int or anything with ``__index__``, not a bool) or one letter
            (case and surrounding whitespace ignored).
        n_choices: Number of choices of the item.

    Returns:
        The answer letter, ``"A"`` for index 0.

    Raises:
        ValueError: When ``answer`` is neither an index nor a letter, or names no choice of the item.
    """
    if isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().upper() in LETTERS:
        index = LETTERS.index(answer.strip().upper())
    elif isinstance(answer, bool) or not hasattr(answer, "__index__"):
        raise ValueError(f"answer {answer!r} is not a choice index or letter for {n_choices} choices")
    else:
        index = answer.__index__()
    if not 0 <= index < n_choices:
        raise ValueError(
            f"answer {answer!r} is out of range for {n_choices} choices (expected a choice index or letter)"
        )
    return LETTERS[index]


# --------------------------------------------------------------------------------------------------
# Question answering and multiple choice
# --------------------------------------------------------------------------------------------------


def qa_prompt(question: Any) -> str:
    r"""Return the question-answering prompt ``"Question: {question}\nAnswer:"``.

    Args:
        question: The question (used as it is, not stripped).

    Returns:
        The prompt, ending in :data:`ANSWER_MARKER` with no trailing space.
    """
    return f"Question: {question}\n{ANSWER_MARKER}"


def qa_text(question: Any, answer: Any, *, with_answer: bool = True) -> str:
    r"""Return a question-answering text ``"Question: {question}\nAnswer: {answer}"``.

    Args:
        question: The question.
        answer: The full answer (GSM8K: the rationale with ``<<...>>`` annotations and ``"#### N"``).
        with_answer: When ``False``, return :func:`qa_prompt` only.

    Returns:
        The text.
    """
    prompt = qa_prompt(question)
    return f"{prompt} {answer}" if with_answer else prompt


def mc_options(choices: Sequence[Any]) -> str:
    """Return the options line ``"A) c0 B) c1 C) c2 D) c3"``.

    Args:
        choices: The choices, 1 to 26 of them (not one string).

    Returns:
        The options, separated by single spaces.

    Raises:
        ValueError: When ``choices`` is a string, has no length, or has 0 or more than 26 entries.
    """
    if isinstance(choices, str) or not hasattr(choices, "__len__") or not 0 < len(choices) <= len(LETTERS):
        raise ValueError(f"'choices' must be a list of 1-{len(LETTERS)} strings, got {choices!r}")
    return " ".join(f"{LETTERS[i]}) {choice}" for i, choice in enumerate(choices))


def mc_prompt(question: Any, choices: Sequence[Any]) -> str:
    r"""Return the multiple-choice prompt ``"Question: {question}\nA) c0 B) c1 ...\nAnswer:"``.

    Args:
        question: The question.
        choices: The choices (see :func:`mc_options`).

    Returns:
        The prompt, ending in :data:`ANSWER_MARKER`.
    """
    return f"Question: {question}\n{mc_options(choices)}\n{ANSWER_MARKER}"


def mc_text(question: Any, choices: Sequence[Any], answer: Any, *, with_answer: bool = True) -> str:
    r"""Return a multiple-choice text: :func:`mc_prompt` then ``" {letter}"``.

    Args:
        question: The question.
        choices: The choices.
        answer: The answer as a choice index or letter (see :func:`answer_letter`); not checked when
            ``with_answer`` is ``False``.
        with_answer: Append the answer letter.

    Returns:
        The text.
    """
    prompt = mc_prompt(question, choices)
    return f"{prompt} {answer_letter(answer, len(choices))}" if with_answer else prompt


# --------------------------------------------------------------------------------------------------
# Texts without a separate answer
# --------------------------------------------------------------------------------------------------


def plain_text(text: str) -> str:
    """Return a text line (WikiText, a ToxiGen statement) stripped of surrounding whitespace.

    Args:
        text: The raw line.

    Returns:
        ``text.strip()``.
    """
    return text.strip()


def code_text(prompt: str, solution: str, *, with_answer: bool = True) -> str:
    r"""Return a code text: ``prompt + "\n" + solution`` (HumanEval), or the prompt alone.

    Args:
        prompt: The function signature and docstring.
        solution: The canonical solution (the function body).
        with_answer: Append the solution.

    Returns:
        The text.
    """
    return prompt + "\n" + solution if with_answer else prompt


def conversation_text(turns: str | Sequence[str]) -> str:
    """Return the user turns of a conversation as one text, joined with :data:`TURN_SEPARATOR`.

    Args:
        turns: One turn as a string, or a list of turns.

    Returns:
        The text (a string turn is returned as it is).
    """
    if isinstance(turns, str):
        return turns
    return TURN_SEPARATOR.join(turns)


# --------------------------------------------------------------------------------------------------
# Binary toxicity
# --------------------------------------------------------------------------------------------------


def toxicity_prompt(text: Any, template: str = TOXICITY_PROMPT) -> str:
    """Return the toxicity question about one statement.

    Args:
        text: The statement; ``str(text)`` is stripped (the same statement text the analysis uses).
        template: The prompt with a ``{text}`` placeholder.

    Returns:
        The prompt, ending in ``"Answer:"`` for the default template.

    Raises:
        ValueError: When ``template`` has no ``{text}`` placeholder.
    """
    if "{text}" not in template:
        raise ValueError("prompt must contain '{text}'")
    return template.format(text=plain_text(str(text)))


def toxicity_example(text: Any, label: int, template: str = TOXICITY_PROMPT) -> str:
    """Return a solved toxicity example: :func:`toxicity_prompt` then ``" Yes"`` (toxic) or ``" No"``.

    Args:
        text: The statement.
        label: ``1`` for toxic, ``0`` for benign.
        template: The prompt with a ``{text}`` placeholder.

    Returns:
        The example text.
    """
    return f"{toxicity_prompt(text, template)} {TOXICITY_ANSWERS[1 if label else 0]}"


# --------------------------------------------------------------------------------------------------
# k-shot prompts and record dispatch
# --------------------------------------------------------------------------------------------------


def few_shot(examples: Sequence[str], prompt: str) -> str:
    """Return a k-shot prompt: each solved example followed by :data:`SHOT_SEPARATOR`, then the prompt.

    Args:
        examples: Full texts of solved examples (prompt and answer), possibly none.
        prompt: The prompt to answer.

    Returns:
        ``"".join(e + SHOT_SEPARATOR for e in examples) + prompt``.
    """
    return "".join(example + SHOT_SEPARATOR for example in examples) + prompt


def _conversation_turns(record: Mapping[str, Any]) -> Any:
    return record["turns"] if "turns" in record else record["prompt"]


_RECORD_FORMATS: dict[str, Callable[[Mapping[str, Any], bool], str]] = {
    "qa": lambda r, a: qa_text(r["question"], r["answer"] if a else None, with_answer=a),
    "multiple_choice": lambda r, a: mc_text(r["question"], r["choices"], r["answer"] if a else None,
                                            with_answer=a),
    "text": lambda r, a: plain_text(r["text"]),
    "classification": lambda r, a: plain_text(r["text"]),
    "instruction": lambda r, a: r["prompt"],
    "code": lambda r, a: code_text(r["prompt"], r["canonical_solution"] if a else "", with_answer=a),
    "conversation": lambda r, a: conversation_text(_conversation_turns(r)),
}


def format_kind(kind: str, record: Mapping[str, Any], *, with_answer: bool = True) -> str:
    """Return the text of one record in the format of its kind (no field or type checks, no dropping).

    :func:`mbt.data.format_record` adds the dataset-level rules (field checks naming the dataset,
    ``min_chars``, WikiText headings); use it for dataset records.

    Args:
        kind: One of :data:`FORMAT_KINDS`.
        record: The record, with the Hub dataset's field names.
        with_answer: Include the gold answer (kinds in :data:`COMPLETION_KINDS` and ``"code"``).

    Returns:
        The text.

    Raises:
        ValueError: For an unknown kind.
        KeyError: For a missing field.
    """
    if kind not in _RECORD_FORMATS:
        raise ValueError(f"unknown format kind {kind!r}; expected one of {FORMAT_KINDS}")
    return _RECORD_FORMATS[kind](record, with_answer)


def prompt_and_completion(kind: str, record: Mapping[str, Any]) -> tuple[str, str]:
    """Split a record's full text into the prompt and the answer completion to train or score.

    ``prompt + completion == format_kind(kind, record)``. For :data:`COMPLETION_KINDS` the prompt ends in
    :data:`ANSWER_MARKER` and the completion is ``" " + answer`` (the GSM8K rationale or the MMLU letter);
    for every other kind the whole text is the prompt and the completion is ``""``.

    Args:
        kind: One of :data:`FORMAT_KINDS`.
        record: The record.

    Returns:
        ``(prompt, completion)``.
    """
    full = format_kind(kind, record, with_answer=True)
    if kind not in COMPLETION_KINDS:
        return full, ""
    prompt = format_kind(kind, record, with_answer=False)
    return prompt, full[len(prompt):]
