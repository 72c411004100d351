r"""Scoring a tuned model: task accuracy, answer NLL and retention (the paper's Fig. 7 and Appendix B).

:func:`evaluate_tuned` scores a model on a fixed seeded sample of a task's test split and measures
forgetting as the change in perplexity on held-out general text and instructions. On a question/answer
task it also scores the arithmetic alone (:mod:`mbt.knowledge`), so that a mask's accuracy (the Q/A
format) can be told apart from its knowledge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mbt import data, evaluate, knowledge
from mbt.checks import require_finite_parameters
from mbt.stats import bootstrap_mean_ci

__all__ = ["check_retention_paths", "default_retention", "evaluate_tuned"]


def default_retention(task: str) -> dict[str, str]:
    """The retention sets of a task: ``{name: dataset}``.

    The paper's Appendix B measures forgetting on IFEval and MT-Bench: ``instruct`` is IFEval and ``text``
    MT-Bench (the sweep's columns ``ppl_instruct*`` and ``ppl_text*``). Toy tasks use the toy instructions
    and toy text, their offline stand-ins.
    """
    if task.startswith("toy-"):
        return {"text": "toy-text", "instruct": "toy-instruct"}
    return {"text": "mt_bench", "instruct": "ifeval"}


def check_retention_paths(retention: Mapping[str, str], retention_paths: Mapping[str, str | Path] | None) -> None:
    """Refuse ``retention_paths`` keys that name no retention set, and paths that do not exist.

    Args:
        retention: ``{name: dataset}`` retention sets.
        retention_paths: ``{name: path}`` local copies of some of them (``None``: none).

    Raises:
        ValueError: An unknown key (the message lists the retention names).
        FileNotFoundError: A path that does not exist.
    """
    for name, path in (retention_paths or {}).items():
        if name not in retention:
            raise ValueError(f"retention_paths has {name!r}, which names no retention set; "
                             f"valid names: {', '.join(retention)}")
        if not Path(path).exists():
            raise FileNotFoundError(f"retention set {name!r}: no such file or folder: {path}")


def _mean_ci(values: Any, n_boot: int) -> tuple[float, float, float]:
    return bootstrap_mean_ci(list(values), n_boot=n_boot)


def _arithmetic(model: Any, tokenizer: Any, task: str, items: Sequence[dict], shot_items: Sequence[dict] | None,
                batch_size: int, progress: bool) -> list[float]:
    """Per-item exact match on the arithmetic alone (:func:`mbt.knowledge.prompt_sets`)."""
    if shot_items is None and not knowledge.is_toy_task(task):
        shot_items = knowledge.shot_examples(task, knowledge.OWN_SHOTS)
    sets = knowledge.prompt_sets(task, items, shots=len(shot_items or ()) or knowledge.OWN_SHOTS,
                                 shot_items=shot_items or ())
    rows = knowledge.score_model(model, tokenizer, {"arithmetic": sets["arithmetic"]}, batch_size=batch_size,
                                 progress=progress)
    return rows["correct"].tolist()


def evaluate_tuned(
    model: Any,
    tokenizer: Any,
    task: str = "toy-math",
    *,
    n_test: int = 200,
    shots: int = 0,
    shot_items: Sequence[dict] | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    retention: Mapping[str, str] | None = None,
    n_retention: int = 100,
    before: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    data_path: str | Path | None = None,
    retention_paths: Mapping[str, str | Path] | None = None,
    own_shot_items: Sequence[dict] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Task accuracy, answer NLL and retention perplexities of a (tuned) model.

    * ``accuracy``: for question/answer tasks :func:`mbt.evaluate.gsm8k_exact_match` (greedy,
      ``max_new_tokens`` default ``1.5 ×`` the longest reference answer + 16 tokens, at most 512);
      for multiple-choice tasks :func:`mbt.evaluate.mmlu_accuracy`. Mean over ``n_test`` held-out
      items (a fixed seeded sample of the test split) with a 95% bootstrap interval.
    * ``arithmetic`` (question/answer tasks; NaN otherwise): exact match on the arithmetic alone — the
      Base's own format followed by the reference solution up to its last ``"="``, the number after it
      (:func:`mbt.knowledge.prompt_sets`) — with interval: the knowledge beside the format ``accuracy``
      measures;
    * ``answer_nll``: teacher-forced mean NLL of the reference answer
      (:func:`mbt.evaluate.answer_nll`; for multiple choice ``−log p(gold letter)``), with interval;
      much less noisy than accuracy.
    * retention (Appendix B): for each ``{name: dataset}`` in ``retention`` (default ``toy-text``
      and ``toy-instruct`` for toy tasks, else MT-Bench and IFEval, :func:`default_retention`) the
      token-weighted perplexity (:func:`mbt.evaluate.pooled_perplexity`) of up to ``n_retention`` texts
      (MT-Bench has 80 prompts) as
      ``ppl_<name>``, the value before tuning as ``ppl_<name>_before`` and the change
      ``ppl_<name>_change = after − before`` (smaller = less forgetting). "Before" comes from
      ``before`` if given (e.g. the Base row of a sweep), else from the same model with its
      adapters disabled if it is a ``PeftModel``, else it equals "after".

    Args:
        model: The (tuned) causal LM.
        tokenizer: Its tokenizer.
        task: A question/answer or multiple-choice task (:data:`mbt.data.DATASETS`).
        n_test: Held-out items (a fixed seeded sample of the task's test split).
        shots: In-context examples per prompt.
        shot_items: The in-context examples.
        max_new_tokens: Generation budget of question/answer tasks (default: from the references).
        batch_size: Texts per forward pass.
        retention: ``{name: dataset}`` retention sets (default :func:`default_retention`).
        n_retention: Texts per retention set (fewer when the set is smaller).
        before: Retention perplexities before tuning (e.g. the Base row of a sweep).
        n_boot: Bootstrap resamples of the intervals.
        data_path: Local copy of the task's test data (a file taken as the test split, or a folder with a
            ``test`` file; see :func:`mbt.data.load_records`) instead of the Hub or the generator.
        retention_paths: ``{name: path}``: local copies of retention sets, by retention name (e.g.
            ``{"instruct": "ifeval.jsonl"}``); the others load from the Hub or their generator.
        own_shot_items: The solved training problems of a real task's own (few-shot) format, in which the
            arithmetic alone is asked (default: :func:`mbt.knowledge.shot_examples` of the task; the toy's
            own format needs none).
        progress: Progress bars.

    Returns:
        A flat dict of the numbers above plus ``n_test`` and ``eval_seconds``.

    Raises:
        ValueError: ``n_test``, ``n_retention`` or ``batch_size`` below 1, or a task without accuracy.
        NonFiniteError: a weight of ``model`` holds NaN or infinity (names the tensor, before
            anything is generated), or logits are not finite.
    """
    for name, value in (("n_test", n_test), ("n_retention", n_retention), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    require_finite_parameters(model, "evaluate_tuned: the model to score")
    start = time.perf_counter()
    spec = data.get_spec(task)
    if retention_paths:
        check_retention_paths(dict(retention) if retention is not None else default_retention(spec.name),
                              retention_paths)
    items = knowledge.held_out_items(task, n_test, path=data_path)
    out: dict[str, Any] = {"task": spec.name, "n_test": len(items)}
    if spec.kind == "qa":
        if max_new_tokens is None:
            longest = max(len(tokenizer(" " + it["answer"], add_special_tokens=False)["input_ids"]) for it in items)
            max_new_tokens = min(512, math.ceil(1.5 * longest) + 16)
        em = evaluate.gsm8k_exact_match(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        nll = evaluate.answer_nll(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                  batch_size=batch_size)["nll"]
        correct = em["correct"].astype(float)
        arithmetic = _arithmetic(model, tokenizer, spec.name, items, own_shot_items, batch_size, progress)
        out["arithmetic"], out["arithmetic_ci_low"], out["arithmetic_ci_high"] = _mean_ci(arithmetic, n_boot)
    elif spec.kind == "multiple_choice":
        mc = evaluate.mmlu_accuracy(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                    batch_size=batch_size, progress=progress)
        correct = mc["correct"].astype(float)
        nll = pd.Series([-lp[evaluate.MMLU_LETTERS.index(g)] for lp, g in zip(mc["logprobs"], mc["gold"],
                                                                               strict=True)])
    else:
        raise ValueError(f"task {spec.name!r} ({spec.kind}) has no accuracy; use a question/answer or "
                         "multiple-choice task")
    for key in ("arithmetic", "arithmetic_ci_low", "arithmetic_ci_high"):
        out.setdefault(key, math.nan)
    out["accuracy"], out["accuracy_ci_low"], out["accuracy_ci_high"] = _mean_ci(correct, n_boot)
    out["accuracy_items"] = "".join("1" if c else "0" for c in correct)  # per problem, the sample's fixed order
    out["answer_nll"], out["answer_nll_ci_low"], out["answer_nll_ci_high"] = _mean_ci(nll, n_boot)
    sets = dict(retention) if retention is not None else default_retention(spec.name)
    for name, dataset in sets.items():
        texts = data.load_texts(dataset, n=n_retention, seed=0, path=(retention_paths or {}).get(name),
                                allow_fewer=True)
        after = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts, batch_size=batch_size,
                                                                progress=False))
        key = f"ppl_{name}"
        if before is not None and f"{key}_before" in before:
            prior = float(before[f"{key}_before"])
        elif before is not None and key in before:
            prior = float(before[key])
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                prior = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts,
                                                                        batch_size=batch_size, progress=False))
        else:
            prior = after
        out[key], out[f"{key}_before"], out[f"{key}_change"] = after, prior, after - prior
    out["eval_seconds"] = time.perf_counter() - start
    return out


