r"""The chapters' parameters: every one's type and range in one place, parsed once, before any work.

A parameter reaches a chapter three ways: ``mbt book --param k=v`` / ``mbt batch --param k=v`` (checked by
:func:`check_parameters` before a pair is built or loaded), and ``papermill -p k v`` run by hand, which
checks nothing itself: every chapter's first cell after its parameters calls
:func:`check_notebook_parameters`, which checks and converts the values in the kernel before the chapter
opens its pair. Both follow :data:`RULES`:

* booleans from ``true``/``false`` (also ``yes``/``no``, ``1``/``0``, any case); never from a number;
* whole numbers from integers or digit strings, never from ``2.7``; real numbers must be finite;
* lists from lists, JSON (``'["toy-math"]'``), or comma lists (``toy-math,toy-mc``; empty text is ``[]``; one
  whole number is a one-item list of whole numbers);
* ranges (``n_pooled ≥ 2``, ``batch_size ≥ 1`` …) and choices (``conventions``: ``standard`` or ``paper``);
* together: ``n_token ≤ n_pooled`` (the token-level texts are the first ``n_token`` of the pooled ones).

Every refusal names the parameter, the value and what is expected.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from mbt.metrics.conventions import CONVENTION_PRESETS
from mbt.tune.settings import LORA_PRESETS

__all__ = [
    "RULES",
    "Rule",
    "check_notebook_parameters",
    "check_together",
    "coerce_parameter",
]


@dataclass(frozen=True)
class Rule:
    """What one parameter takes.

    Attributes:
        kind: ``"bool"``, ``"int"``, ``"float"``, ``"str"`` or ``"list"`` (the chapters' annotation).
        low: Smallest allowed value (numbers; list items for lists), or ``None``.
        positive: Numbers must be ``> 0``.
        choices: The allowed strings (of a list: of each item; empty: any).
        item: For lists, the kind of each item (``"str"`` or ``"int"``).
        nonempty: For lists, at least one item.
    """

    kind: str
    low: float | None = None
    positive: bool = False
    choices: tuple[str, ...] = ()
    item: str = "str"
    nonempty: bool = False

    def describe(self) -> str:
        """What is expected, in words: ``"a whole number >= 2"``, ``"true or false"``, ``"a list of whole numbers"``."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "list":
            what = "whole numbers" if self.item == "int" else "strings"
            floor = f" >= {self.low:g}" if self.low is not None else ""
            return f"a {'non-empty ' if self.nonempty else ''}list of {what}{floor} (JSON or comma-separated)"
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        number = {"int": "a whole number", "float": "a finite number"}.get(self.kind)
        if number is None:
            return "a string"
        if self.positive:
            return number + " > 0"
        return number + (f" >= {self.low:g}" if self.low is not None else "")


_INT, _COUNT = Rule("int", low=0), Rule("int", low=1)

RULES: dict[str, Rule] = {
    # the pair
    "pair": Rule("str"), "base": Rule("str"), "sft": Rule("str"), "device_map": Rule("str"),
    "sequential": Rule("bool"), "quick": Rule("bool"),
    # data and sample sizes
    "datasets": Rule("list"), "dataset": Rule("str"), "finetune_dataset": Rule("str"), "task": Rule("str"),
    "n_pooled": Rule("int", low=2), "n_token": _INT, "n_samples": Rule("int", low=2),
    "n_calibration": Rule("int", low=2), "n_test": _COUNT, "finetune_texts": _COUNT,
    "seed": _INT, "seeds": Rule("list", item="int", low=0, nonempty=True),
    # how the models are run
    "batch_size": _COUNT, "max_length": _COUNT, "threads": _COUNT, "workers": _INT,
    "conventions": Rule("str", choices=tuple(CONVENTION_PRESETS)), "robustness": Rule("bool"),
    # swapping, weights, LoRA
    "n_segments": _COUNT, "swap_depth": _INT, "finetune_steps": _COUNT, "finetune_lr": Rule("float", positive=True),
    "masks": Rule("list"), "appendix_a": Rule("bool"), "preset": Rule("str", choices=LORA_PRESETS),
    "rank": _INT, "steps": _INT,
    # the cross-pair chapter
    "pairs": Rule("list"), "stores": Rule("list"),
    # what SFT writes (chapter 9)
    "unrelated": Rule("str"), "n_unrelated": Rule("int", low=2), "k": _COUNT, "n_steer": Rule("int", low=2),
    "alpha": Rule("float"), "n_random": _COUNT, "n_task": Rule("int", low=4),
    "equal_steps": Rule("list", item="int", low=1, nonempty=True), "equal_seeds": Rule("list", item="int", low=0,
                                                                                     nonempty=True),
    "sft_lr": Rule("float", positive=True), "sft_batch": _COUNT, "sft_train": _COUNT,
    # knowledge or format (chapter 10)
    "n_items": _COUNT, "shots": _COUNT, "n_swap": _COUNT,
    "swap_heads": Rule("list", item="str", choices=("receiver", "donor"), nonempty=True),
}
"""Every chapter parameter's type and range (a test checks that each chapter's annotation agrees)."""

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _refuse(name: str, value: Any, expected: str, annotation: str | None = None, why: str = "") -> ValueError:
    shown = annotation or "?"
    return ValueError(f"parameter {name!r} must be {shown} ({expected}), got {type(value).__name__} {value!r}"
                      + (f": {why}" if why else ""))


def _whole(name: str, value: Any, rule: Rule, annotation: str) -> int:
    if isinstance(value, bool):
        raise _refuse(name, value, rule.describe(), annotation)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise _refuse(name, value, rule.describe(), annotation)


def _real(name: str, value: Any, rule: Rule, annotation: str) -> float:
    if isinstance(value, bool):
        raise _refuse(name, value, rule.describe(), annotation)
    try:
        number = float(value) if isinstance(value, int | float | str) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _refuse(name, value, rule.describe(), annotation)
    return number


def _items(name: str, value: Any, rule: Rule, annotation: str) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool):  # papermill's ``-p seeds 0``, ``-p masks 11111``
        return [value if rule.item == "int" else str(value)]  # arrive as numbers: one-item lists
    if not isinstance(value, str):
        raise _refuse(name, value, rule.describe(), annotation)
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise _refuse(name, value, rule.describe(), annotation, "not a readable list") from None
        if not isinstance(parsed, list | tuple):
            raise _refuse(name, value, rule.describe(), annotation)
        return list(parsed)
    return [part.strip() for part in text.split(",") if part.strip()]


def _check_range(name: str, number: float, rule: Rule, annotation: str, shown: Any) -> None:
    if (rule.positive and not number > 0) or (rule.low is not None and number < rule.low):
        raise _refuse(name, shown, rule.describe(), annotation)


def coerce_parameter(name: str, value: Any, annotation: str | None = None) -> Any:
    """One parameter's value, checked and converted by its :data:`RULES` entry (else by its annotation alone).

    Args:
        name: The parameter.
        value: As given: a Python value, or text from a command line (``"false"``, ``"2.7"``, ``"a,b"``).
        annotation: The chapter's annotation (``"int"``, ``"list"`` …); default: the rule's kind.

    Returns:
        The value in its type.

    Raises:
        ValueError: Naming the parameter, the value, its type and what is expected.
    """
    rule = RULES.get(name)
    kind = rule.kind if rule is not None else {"tuple": "list"}.get(str(annotation), str(annotation))
    if rule is None:
        rule = Rule(kind) if kind in ("bool", "int", "float", "str", "list") else None
    annotation = annotation or kind
    if rule is None:  # an annotation this module has no rule for (dict, ...): left as it is
        return value
    if annotation != rule.kind and not (annotation == "tuple" and rule.kind == "list"):
        raise ValueError(f"parameter {name!r} is annotated {annotation} in the chapter but mbt.book.parameters.RULES "
                         f"says {rule.kind}: make them agree")
    if rule.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise _refuse(name, value, rule.describe(), annotation)
    if rule.kind == "int":
        number = _whole(name, value, rule, annotation)
        _check_range(name, number, rule, annotation, value)
        return number
    if rule.kind == "float":
        real = _real(name, value, rule, annotation)
        _check_range(name, real, rule, annotation, value)
        return real
    if rule.kind == "str":
        if not isinstance(value, str):
            raise _refuse(name, value, rule.describe(), annotation)
        if rule.choices and value not in rule.choices:
            raise _refuse(name, value, rule.describe(), annotation)
        return value
    items = _items(name, value, rule, annotation)
    out: list[Any] = []
    for i, item in enumerate(items):
        if rule.item == "int":
            number = _whole(f"{name}[{i}]", item, Rule("int", low=rule.low), "int")
            _check_range(f"{name}[{i}]", number, Rule("int", low=rule.low), "int", item)
            out.append(number)
        elif isinstance(item, str) and item.strip():
            if rule.choices and item.strip() not in rule.choices:
                raise ValueError(f"parameter {name!r}: item {i} is {item!r}, not one of "
                                 f"{', '.join(repr(c) for c in rule.choices)}")
            out.append(item.strip())
        else:
            raise ValueError(f"parameter {name!r} must be {annotation} ({rule.describe()}); item {i} is "
                             f"{type(item).__name__} {item!r}, not a non-empty string")
    if rule.nonempty and not out:
        raise _refuse(name, value, rule.describe(), annotation, "it is empty")
    return out


_SUBSETS: tuple[tuple[str, str, str], ...] = (
    ("n_token", "n_pooled", "the token-level texts are the first n_token of the pooled ones"),
    ("n_swap", "n_items", "the swaps score the first n_swap of the n_items problems"),
)
"""``(part, whole, why)``: parameters that count a subset of another's items, so ``part ≤ whole``."""


def check_together(values: Mapping[str, Any], *, given: Mapping[str, Any] | None = None) -> None:
    """The rules between parameters: a subset never outnumbers its set (:data:`_SUBSETS`).

    ``n_token ≤ n_pooled`` (the token-level texts are the first pooled ones); ``n_swap ≤ n_items`` (the
    swaps of chapter 10 score the first of its problems).

    Args:
        values: The chapter's parameters, converted (defaults and given values).
        given: The ones given explicitly (to say which of the two was a default).

    Raises:
        ValueError: Naming both parameters and their values.
    """
    given = given if given is not None else values
    for part, whole, why in _SUBSETS:
        if part in values and whole in values and values[part] > values[whole]:
            note = "" if part in given else ", its default"
            raise ValueError(f"parameter {part!r} ({values[part]}{note}) is more than {whole!r} ({values[whole]}): "
                             f"{why}; give {part}={values[whole]} or less")


def check_notebook_parameters(namespace: MutableMapping[str, Any]) -> dict[str, Any]:
    """Check and convert a running chapter's parameters in place (the chapter calls it with ``globals()``).

    Reads the parameters cell's annotations (``__annotations__``: ``n_pooled: int = 1000``) and converts each
    value that papermill injected (``-p quick false`` arrives as the text ``"false"``, ``-p datasets toy-math``
    as one string) by :func:`coerce_parameter`, then applies :func:`check_together`. Without annotations (an
    interpreter that keeps none) every name of :data:`RULES` found in ``namespace`` is checked.

    Returns:
        The converted parameters (also written back into ``namespace``).

    Raises:
        ValueError: Naming the parameter, the value and what is expected.
    """
    annotations = namespace.get("__annotations__") or {}
    names = [n for n in annotations if n in namespace] or [n for n in RULES if n in namespace]
    values: dict[str, Any] = {}
    for name in names:
        annotation = annotations.get(name)
        text = getattr(annotation, "__name__", None) or (str(annotation) if annotation is not None else None)
        values[name] = coerce_parameter(name, namespace[name], text)
    check_together(values)
    namespace.update(values)
    return values
