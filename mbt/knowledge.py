r"""Knowledge or format: a model scored in its Base's own format, on the arithmetic alone and in the Q/A format.

The paper reads its results as "SFT teaches format on top of knowledge the Base already has" (§1, §2.2).
To test that reading, the same held-out problems are scored three ways (:data:`FORMATS`), each an exact
match of a greedy continuation (:func:`mbt.evaluate.completion_exact_match`):

* ``own`` — the Base's own format. On the toy pair: the problem's facts, then ``" So"`` → the worked
  solution, the form in which its pretraining corpus writes the same generator's problems
  (:func:`mbt.toy.corpus.own_format`), compared by its numbers (operands and results, in order). On a
  real pair: the task's few-shot format, ``shots`` solved training problems before ``"Question: …\nAnswer:"``,
  compared by the final answer (GSM8K's rule), the format in which Base models are usually evaluated.
* ``arithmetic`` — the arithmetic alone: the own-format prompt followed by the reference solution up to
  its last ``"="`` → the number after it (``"… 18 - 12 ="`` → ``" 6"``): the last computation, with the
  format and every earlier step given.
* ``qa`` — the task's Q/A format, 0-shot: ``"Question: …\nAnswer:"`` → the number after ``"####"``, what
  fine-tuning taught (and what the paper's GSM8K scores measure).

Every score is a mean over items with a percentile-bootstrap interval over items
(:func:`mbt.stats.bootstrap_mean_ci`); SFT − Base differences are paired over the same items.
:func:`swap_sweeps` scores every segment swap (:func:`mbt.swap.swap_sweep`) by format and by knowledge and
keeps the per-item scores, so that segments can be compared item by item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbt import data, evaluate, formats, trace
from mbt.stats import bootstrap_mean_ci
from mbt.swap import swap_sweep
from mbt.toy import corpus

__all__ = [
    "FORMATS",
    "FORMAT_LABELS",
    "OWN_SHOTS",
    "SWAP_SCORES",
    "PromptSet",
    "check_settings",
    "held_out_items",
    "is_toy_task",
    "paired_gains",
    "prompt_sets",
    "score_model",
    "shot_examples",
    "summarize_scores",
    "swap_sweeps",
]

FORMATS: tuple[str, ...] = ("own", "arithmetic", "qa")
"""The three ways every problem is scored (see the module docstring)."""

FORMAT_LABELS: dict[str, str] = {"own": "own format", "arithmetic": "arithmetic alone", "qa": "Q/A format, 0-shot"}
"""How tables and figures name each format."""

OWN_SHOTS = 3
"""Solved training problems in a real pair's own (few-shot) format; the toy's own format needs none."""

SWAP_SCORES: dict[str, str] = {"format": "qa", "knowledge": "arithmetic"}
"""What a swap is scored by: the Q/A format (format) and the arithmetic alone (knowledge)."""

_TOY_TASK = "toy-math"


@dataclass(frozen=True)
class PromptSet:
    """The prompts and expected continuations of one format.

    Attributes:
        name: A name of :data:`FORMATS`.
        prompts: One prompt per scored item.
        targets: The expected continuation of each prompt.
        match: How a continuation is compared (:data:`mbt.evaluate.MATCHES`).
        items: The index of each prompt's problem in the items the set was built from.
    """

    name: str
    prompts: tuple[str, ...]
    targets: tuple[str, ...]
    match: str
    items: tuple[int, ...]

    def head(self, n: int) -> PromptSet:
        """The prompts of the first ``n`` items (those with ``item < n``)."""
        keep = [j for j, i in enumerate(self.items) if i < n]
        return PromptSet(self.name, tuple(self.prompts[j] for j in keep), tuple(self.targets[j] for j in keep),
                         self.match, tuple(self.items[j] for j in keep))

    def as_dict(self) -> dict[str, Any]:
        """Plain data (what identifies the set in a cache key)."""
        return {"name": self.name, "prompts": list(self.prompts), "targets": list(self.targets), "match": self.match,
                "items": list(self.items)}


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def check_settings(*, task: str | None = None, n_items: int | None = None, shots: int | None = None,
                   n_swap: int | None = None, n_segments: int | None = None, batch_size: int | None = None,
                   heads: Sequence[str] | None = None) -> None:
    """Refuse settings that cannot be scored, naming the setting, before any data or model is loaded.

    Args:
        task: A question/answer task of :data:`mbt.data.DATASETS` (``toy-math``, ``gsm8k``).
        n_items: Problems scored in every format (0 would be an empty prompt list).
        shots: Solved examples of a real pair's own format (>= 1: a 0-shot "own format" is the Q/A format).
        n_swap: Problems scored for every segment swap (at most ``n_items``).
        n_segments: Equal segments of the depth swapped in turn.
        batch_size: Prompts per ``generate`` call.
        heads: Heads of the swaps, a non-empty subset of ``("receiver", "donor")``.

    Raises:
        ValueError: The first bad setting, by name.
    """
    if task is not None:
        spec = data.get_spec(task)
        if spec.kind != "qa":
            raise ValueError(f"task must be a question/answer task (toy-math, gsm8k), got {task!r} ({spec.kind})")
    if n_items is not None:
        _whole("n_items", n_items, 1)
    if shots is not None:
        _whole("shots", shots, 1)
    if n_swap is not None:
        _whole("n_swap", n_swap, 1)
        if n_items is not None and n_swap > n_items:
            raise ValueError(f"n_swap ({n_swap}) must not exceed n_items ({n_items}): swaps score a subset")
    if n_segments is not None:
        _whole("n_segments", n_segments, 1)
    if batch_size is not None:
        _whole("batch_size", batch_size, 1)
    if heads is not None and (isinstance(heads, str) or not heads or not set(heads) <= {"receiver", "donor"}):
        raise ValueError(f"heads must be a non-empty list of 'receiver' and/or 'donor', got {heads!r}")


def held_out_items(task: str, n: int, *, path: str | Path | None = None) -> list[dict]:
    """The fixed seeded sample of ``n`` problems of a task's test split (the one every scorer of ``mbt`` uses).

    Args:
        task: A task of :data:`mbt.data.DATASETS`.
        n: Problems (fewer when the split is smaller).
        path: A local copy of the test split (see :func:`mbt.data.load_records`).
    """
    _whole("n", n, 1)
    spec = data.get_spec(task)
    records = data.load_records(spec, split=spec.split, path=path)
    return [records[i] for i in data.sample_indices(len(records), n, 0)]


def shot_examples(task: str, shots: int, *, path: str | Path | None = None) -> list[dict]:
    """``shots`` solved problems of the task's training split (a seeded sample): never a test problem.

    Args:
        task: A task with a training split.
        shots: How many.
        path: A local copy of the training split.
    """
    _whole("shots", shots, 1)
    spec = data.get_spec(task)
    records = data.load_records(spec, split=data.training_split(spec), path=path)
    return [records[i] for i in data.sample_indices(len(records), shots, 0)]


def is_toy_task(task: str) -> bool:
    """Whether ``task`` is the toy's word problems, whose own format is the pretraining corpus's (no shots)."""
    return data.get_spec(task).name == _TOY_TASK


def _solution_arithmetic(prompt: str, answer: str) -> tuple[str, str] | None:
    """``(prompt + " " + answer up to its last "=", the number after it)``, or ``None`` without one."""
    body = answer.split("####", 1)[0]
    cut = body.rfind("=")
    after = evaluate.extract_numbers(body[cut + 1:]) if cut >= 0 else []
    if not after:
        return None
    value = after[0]
    return f"{prompt} {body[:cut + 1]}", f" {value:g}"


def prompt_sets(task: str, items: Sequence[Mapping[str, Any]], *, shots: int = OWN_SHOTS,
                shot_items: Sequence[Mapping[str, Any]] = ()) -> dict[str, PromptSet]:
    r"""The three prompt sets of :data:`FORMATS` for ``items`` of ``task``.

    Toy (``toy-math``): own format ``facts + " So"`` → the worked solution (``match="numbers"``), the
    arithmetic alone ``facts + " So " + solution`` up to its last ``" ="`` → the final value
    (``"numbers"``), both from :func:`mbt.toy.corpus.own_format`; ``shots`` is not used. Any other
    question/answer task: own format = the first ``shots`` of ``shot_items`` as solved examples, then
    ``"Question: …\nAnswer:"`` → the reference answer (``"answer"``); the arithmetic alone = that prompt,
    ``" "`` and the reference answer up to its last ``"="`` before ``"####"`` → the number after it
    (``"numbers"``; items whose answer has none are left out). Q/A format (both): the 0-shot prompt →
    the reference answer (``"answer"``).

    Args:
        task: The task the items come from (decides the toy form).
        items: Records ``{"question", "answer"}``.
        shots: Solved examples of a real task's own format.
        shot_items: Where they come from (training problems, :func:`shot_examples`).

    Returns:
        ``{format: PromptSet}`` in the order of :data:`FORMATS`.

    Raises:
        ValueError: No items, too few ``shot_items`` for a real task, or a toy item not in the toy's form.
    """
    if len(items) == 0:
        raise ValueError("items is empty: there is nothing to score")
    qa = PromptSet("qa", tuple(formats.qa_prompt(it["question"]) for it in items),
                   tuple(f" {it['answer']}" for it in items), "answer", tuple(range(len(items))))
    if is_toy_task(task):
        forms = [corpus.own_format(dict(it)) for it in items]
        own = PromptSet("own", tuple(f["own_prompt"] for f in forms), tuple(f["own_target"] for f in forms),
                        "numbers", tuple(range(len(items))))
        arithmetic = PromptSet("arithmetic", tuple(f["arithmetic_prompt"] for f in forms),
                               tuple(f["arithmetic_target"] for f in forms), "numbers", tuple(range(len(items))))
        return {"own": own, "arithmetic": arithmetic, "qa": qa}
    _whole("shots", shots, 1)
    if len(shot_items) < shots:
        raise ValueError(f"shots={shots} needs at least {shots} shot_items (got {len(shot_items)})")
    prompts = [evaluate.gsm8k_prompt(it["question"], list(shot_items[:shots])) for it in items]
    own = PromptSet("own", tuple(prompts), tuple(f" {it['answer']}" for it in items), "answer",
                    tuple(range(len(items))))
    steps = [(i, _solution_arithmetic(p, str(it["answer"]))) for i, (p, it) in enumerate(zip(prompts, items,
                                                                                              strict=True))]
    kept = [(i, s) for i, s in steps if s is not None]
    arithmetic = PromptSet("arithmetic", tuple(s[0] for _, s in kept), tuple(s[1] for _, s in kept), "numbers",
                           tuple(i for i, _ in kept))
    return {"own": own, "arithmetic": arithmetic, "qa": qa}


def score_model(model: Any, tokenizer: Any, sets: Mapping[str, PromptSet], *, batch_size: int = 50,
                progress: bool = False) -> pd.DataFrame:
    """Every prompt set scored on one model: one row per format and item.

    Args:
        model: A causal LM (nnsight-wrapped or plain).
        tokenizer: Its tokenizer.
        sets: :func:`prompt_sets`.
        batch_size: Prompts per ``generate`` call.
        progress: Progress bars.

    Returns:
        Columns ``format``, ``item`` (index into the items the sets were built from), ``correct`` (0.0 or
        1.0), ``generation``, ``target``.
    """
    module = trace.unwrap(model)
    frames = []
    for name, ps in sets.items():
        if not ps.prompts:
            continue
        rows = evaluate.completion_exact_match(module, tokenizer, list(ps.prompts), list(ps.targets),
                                               match=ps.match, batch_size=batch_size, progress=progress)
        frames.append(pd.DataFrame({"format": name, "item": list(ps.items), "correct": rows["correct"].astype(float),
                                    "generation": rows["generation"], "target": rows["target"]}))
    return pd.concat(frames, ignore_index=True)


def summarize_scores(per_item: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean exact match per model and format with a percentile-bootstrap interval over items.

    Args:
        per_item: :func:`score_model` rows of several models with a ``model`` column (``format``, ``item``,
            ``correct``, ``generation``; more key columns, e.g. ``pair``, are kept as groups), as
            :func:`mbt.book.knowledge_ladder` returns them.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        One row per group: the keys, ``score``, ``ci_low``, ``ci_high``, ``n`` and ``empty`` (the share of
        items whose generation is empty: the model ended the text, or began a stop string, at once).
    """
    keys = [c for c in ("pair", "sft_steps", "model", "format") if c in per_item.columns]
    rows = []
    for key, part in per_item.groupby(keys, sort=False, dropna=False):
        mean, low, high = bootstrap_mean_ci(part["correct"].to_numpy(float), n_boot=n_boot, seed=seed)
        empty = float((part["generation"].astype(str).str.strip() == "").mean())
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), "score": mean,
                     "ci_low": low, "ci_high": high, "n": len(part), "empty": empty})
    return pd.DataFrame(rows)


def paired_gains(per_item: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """SFT − Base per format, paired over items, with a percentile-bootstrap interval of the mean difference.

    Args:
        per_item: :func:`score_model` rows of Base and SFT with a ``model`` column (optionally for several
            pairs, column ``pair``).
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        One row per pair and format: ``base``, ``sft``, ``gain`` (mean of ``sft_i − base_i``), ``ci_low``,
        ``ci_high``, ``n``.
    """
    keys = [c for c in ("pair", "sft_steps") if c in per_item.columns]
    rows = []
    for key, part in per_item.groupby([*keys, "format"], sort=False, dropna=False):
        wide = part.pivot_table(index="item", columns="model", values="correct", aggfunc="first")
        if not {"base", "sft"} <= set(wide.columns):
            continue
        both = wide[["base", "sft"]].dropna()
        diff = (both["sft"] - both["base"]).to_numpy(float)
        gain, low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
        rows.append({**dict(zip([*keys, "format"], key, strict=True)), "base": float(both["base"].mean()),
                     "sft": float(both["sft"].mean()), "gain": gain, "ci_low": low, "ci_high": high,
                     "n": len(both)})
    return pd.DataFrame(rows)


def _swap_score(tokenizer: Any, ps: PromptSet, batch_size: int, kept: list[np.ndarray]) -> Callable[[Any], np.ndarray]:
    """A ``score_fn`` for :func:`mbt.swap.swap_sweep`: per-item exact match of one set; every result is kept."""
    def score(model: Any) -> np.ndarray:
        rows = evaluate.completion_exact_match(trace.unwrap(model), tokenizer, list(ps.prompts), list(ps.targets),
                                               match=ps.match, batch_size=batch_size, progress=False)
        values = rows["correct"].to_numpy(float)
        kept.append(values)
        return values

    return score


def swap_sweeps(pair: Any, sets: Mapping[str, PromptSet], *, n_segments: int = 5, depth: int | None = None,
                heads: Sequence[str] = ("receiver", "donor"), seed: int = 0, batch_size: int = 50,
                n_bootstrap: int = 1000) -> pd.DataFrame:
    """Every segment swap in both directions, scored by format and by knowledge (:data:`SWAP_SCORES`).

    One :func:`mbt.swap.swap_sweep` per score (no placebo rows: chapter 5 checks that swapping and
    restoring is exact). ``swap_sweep`` calls its ``score_fn`` once per row, in the order of its rows, so
    each row also keeps its per-item scores (column ``scores``, a tuple): segments can then be compared
    with each other paired over items.

    Args:
        pair: The loaded pair.
        sets: :func:`prompt_sets` (its ``qa`` and ``arithmetic`` sets are used).
        n_segments: Equal segments of the depth.
        depth: ``None``: whole segments; ``k``: their last ``k`` blocks.
        heads: Heads (``"receiver"``, ``"donor"``).
        seed: Bootstrap seed of the paired intervals.
        batch_size: Prompts per ``generate`` call.
        n_bootstrap: Bootstrap resamples.

    Returns:
        The sweeps' rows (:data:`mbt.swap.COLUMNS`) with ``score_name`` (``"format"``/``"knowledge"``),
        ``format`` (the prompt set) and ``scores``.

    Raises:
        RuntimeError: ``swap_sweep`` called its score function other than once per row.
    """
    frames = []
    for score_name, set_name in SWAP_SCORES.items():
        kept: list[np.ndarray] = []
        table = swap_sweep(pair, _swap_score(pair.tokenizer, sets[set_name], batch_size, kept), n_segments=n_segments,
                           depth=depth, heads=heads, placebo=False, n_bootstrap=n_bootstrap, seed=seed,
                           progress=False)
        if len(kept) != len(table):
            raise RuntimeError(f"swap_sweep scored {len(kept)} times for {len(table)} rows: the per-item scores "
                               "cannot be matched to the rows")
        frames.append(table.assign(score_name=score_name, format=set_name, scores=[tuple(k) for k in kept]))
    return pd.concat(frames, ignore_index=True)
