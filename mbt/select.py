r"""Training-free choice of the block to tune (the paper's stated future work), and how to grade it.

:func:`suggest_block` turns layer-wise signals that ``mbt`` already computes into a segment mask,
without training anything. Every signal is a number per decoder **block** ``l`` (``1..L``; block ``l``
maps hidden layer ``l − 1`` to layer ``l``, :mod:`mbt.segments`) that is large where the block
*changes* the representation ("instability"):

* ``block_influence`` (Base only): ShortGPT's ``BI_l = 1 − mean_t cos(h_{l−1}[t], h_l[t])`` over
  all real tokens of all texts (token-weighted, padding excluded), from one masked pass of
  :func:`mbt.trace.stream_layers`;
* ``erank`` and ``entropy`` (Base only): the absolute change across the block of the effective
  rank and of the dataset matrix entropy of the mean-pooled states (:mod:`mbt.metrics`, standard
  conventions; the same numbers :func:`mbt.analysis.analyze` reports), i.e. the change points of
  those curves;
* ``lens`` (Base only): how much the logit lens's KL to the model's own output falls across the
  block, ``max(0, KL_{l−1} − KL_l)`` (:func:`mbt.probe.logit_lens`): where the prediction emerges;
* ``cka`` (Base vs SFT): how much linear CKA between Base and SFT pooled states falls across the
  block, ``max(0, CKA_{l−1} − CKA_l)``: where fine-tuning moved the representation.

**The rule.** Each signal is normalised over blocks to ``[0, 1]`` (by rank by default, so that
one extreme block, typically the embedding → block 1 transition, does not flatten the others; or
min-max) and the normalised signals are averaged into ``instability_l``. The suitability score is
``1 − instability_l`` with ``prefer="stable"`` (the paper's reading: the middle layers are stable
under SFT and tuning them works best) or ``instability_l`` with ``prefer="active"``. The mask is
the contiguous run of ``width`` segments (default 40% of them: 2 of 5, 4 of 10, 1 of 3) whose
blocks have the highest mean score; ties go to the shallower run. A wider run is never preferred
by itself, since :func:`mbt.tune.lora_config` spends the same parameter budget on any width. With
``candidates`` (e.g. the masks of a sweep) the best-scoring candidate is chosen instead.

:func:`selector_regret` grades a suggestion against an exhaustive sweep (:func:`mbt.tune.sweeps`):
regret = best mask's mean score − the suggested mask's (≥ 0, in the metric's units), plus the
Spearman rank correlation between the selector's score of every swept mask and its sweep result.

**Two training-free baselines** from the literature (:func:`baseline_signals`, :func:`suggest_baseline`),
graded the same way:

* ``spectrum`` (Hartford et al. 2024, "Spectrum"): every weight matrix ``W`` (``m × n``, ``q = min(m, n)``,
  singular values ``s_i``) gets a signal-to-noise ratio from a Marchenko–Pastur fit of its spectrum: the
  noise scale ``σ̂ = s_med / √(max(m, n) · μ_β)`` (``μ_β`` the median of the Marchenko–Pastur law of
  aspect ratio ``β = q / max(m, n)``, as Gavish and Donoho estimate it), the bulk edge
  ``s_+ = σ̂ (√m + √n)`` and ``SNR = Σ_{s_i > s_+} s_i / Σ_{s_i ≤ s_+} s_i``. Spectrum trains the matrices of
  highest SNR per matrix type; a block's score is the mean over its matrices of the SNR's rank among the
  matrices of the same type (``q``, ``k``, …), scaled to ``[0, 1]``. Weights only;
* ``cka_shift`` (Liu et al. 2025, data-oblivious critical layers): ``1 − CKA(h_{l−1}, h_l)`` of the Base's
  mean-pooled states across block ``l``: the blocks where the Base's representation shifts most, which
  change most under fine-tuning and are the ones to tune.

Both prefer their high-scoring blocks: the suggested mask is the candidate whose blocks have the highest
mean score.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from mbt import metrics as M
from mbt import trace
from mbt.checks import NonFiniteError, require_finite
from mbt.correlate import correlation_pvalue, rank
from mbt.pairs import ModelPair, load_pair
from mbt.probe import logit_lens
from mbt.segments import contiguous_masks, mask_blocks, segment_blocks
from mbt.weights import module_kind

__all__ = [
    "BASELINES",
    "BASE_SIGNALS",
    "NORMALISATIONS",
    "PAIR_SIGNALS",
    "SIGNALS",
    "baseline_signals",
    "evidence_curves",
    "layer_signals",
    "regret_table",
    "score_masks",
    "selector_regret",
    "spectrum_snr",
    "suggest_baseline",
    "suggest_block",
]

BASE_SIGNALS: tuple[str, ...] = ("block_influence", "erank", "entropy", "lens")
"""Signals computed from the Base model alone."""

PAIR_SIGNALS: tuple[str, ...] = ("cka",)
"""Signals that need the SFT model too."""

SIGNALS: tuple[str, ...] = (*BASE_SIGNALS, *PAIR_SIGNALS)


class _Pass:
    """Reducer for one model: token-weighted cosine between consecutive layers, and pooled states."""

    def __init__(self, n_texts: int, n_layers: int, where: str = "layer signals") -> None:
        self.where = where
        self.cos_sum = torch.zeros(n_layers, dtype=torch.float64)
        self.count = torch.zeros(n_layers, dtype=torch.float64)
        self.pooled: dict[int, torch.Tensor] = {}
        self.n_texts = n_texts
        self.prev: torch.Tensor | None = None

    def __call__(self, batch: trace.LayerBatch) -> None:
        states, mask = batch.states, batch.mask
        place = f"block {batch.layer} output (layer {batch.layer})" if batch.layer else "embeddings (layer 0)"
        require_finite(states[mask], f"{self.where}, {place}: hidden states of real tokens")
        m = mask.unsqueeze(-1)
        pooled = ((states * m).sum(1, dtype=torch.float64) / mask.sum(1, keepdim=True)).float().cpu()
        store = self.pooled.setdefault(batch.layer, torch.zeros((self.n_texts, pooled.shape[-1])))
        store[batch.index.cpu()] = pooled
        if batch.layer > 0 and self.prev is not None:
            cos = torch.nn.functional.cosine_similarity(self.prev.float(), states.float(), dim=-1, eps=1e-8)
            self.cos_sum[batch.layer - 1] += float(cos[mask].double().sum())
            self.count[batch.layer - 1] += float(mask.sum())
        self.prev = states


def _run(model: Any, ids: list[list[int]], n_layers: int, batch_size: int, progress: bool, desc: str,
         where: str = "layer signals") -> _Pass:
    reducer = _Pass(len(ids), n_layers, where)
    trace.stream_layers(model, ids, reducer, layers=range(n_layers + 1), batch_size=batch_size, progress=progress,
                        desc=desc)
    reducer.prev = None
    return reducer


def _models(pair_or_model: Any, tokenizer: Any, use_sft: bool) -> tuple[Any, Any, Any, Any]:
    """``(base wrapped, sft getter or None, tokenizer, pair or None)``."""
    if isinstance(pair_or_model, str):
        pair_or_model = load_pair(pair_or_model)
    if isinstance(pair_or_model, ModelPair):
        pair = pair_or_model
        return pair.model("base"), (lambda: pair.model("sft")) if use_sft else None, pair.tokenizer, pair
    model = pair_or_model
    tok = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tok is None:
        raise ValueError("give tokenizer= with a model object")
    if not hasattr(model, "trace"):
        model = trace.wrap(model, tok)
    return model, None, tok, None


def _resolve_signals(signals: str | Iterable[str], have_sft: bool) -> list[str]:
    if isinstance(signals, str):
        if signals == "auto":
            return [*BASE_SIGNALS, *(PAIR_SIGNALS if have_sft else ())]
        signals = [signals]
    chosen = list(dict.fromkeys(signals))
    unknown = [s for s in chosen if s not in SIGNALS]
    if unknown or not chosen:
        raise ValueError(f"unknown signals {unknown}; choose from {', '.join(SIGNALS)} or 'auto'")
    if not have_sft and any(s in PAIR_SIGNALS for s in chosen):
        raise ValueError(f"signals {list(PAIR_SIGNALS)} need a Base/SFT pair")
    return chosen


def layer_signals(
    pair_or_model: Any,
    texts: Sequence[str],
    *,
    signals: str | Iterable[str] = "auto",
    use_sft: bool = True,
    tokenizer: Any = None,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = True,
) -> pd.DataFrame:
    """The raw per-block signals (see the module docstring), one row per block.

    Args:
        pair_or_model: a :class:`~mbt.pairs.ModelPair` (or pair name), or one model (Base-only
            signals; a plain HF model needs ``tokenizer``).
        texts: calibration texts (e.g. the task's prompts with answers).
        signals: ``"auto"`` (every Base signal, plus ``cka`` for a pair with ``use_sft``) or names
            from :data:`SIGNALS`.
        use_sft: allow the SFT model (a pair's) to be used.
        tokenizer: tokenizer of a plain model.
        batch_size: texts per forward pass (results do not depend on it).
        max_length: tokens per text.
        progress: progress bars.

    Returns:
        DataFrame with ``block`` (``1..L``), ``layer`` (the hidden layer the block writes, equal to
        ``block``), ``depth`` (= layer / L) and one column per signal.

    Raises:
        ValueError: fewer than two texts, or unknown signals.
        NonFiniteError: hidden states or lens values are NaN or infinite (names the signals, the
            model and the block), or a signal comes out non-finite at some block.
    """
    if isinstance(texts, str) or len(texts) < 2:
        raise ValueError("give at least two calibration texts")
    base, sft_getter, tok, pair = _models(pair_or_model, tokenizer, use_sft)
    chosen = _resolve_signals(signals, sft_getter is not None)
    module = trace.unwrap(base)
    n_layers = len(operator.attrgetter(trace.resolve_layout(module).layers)(module))
    ids = trace.encode(tok, texts, max_length=max_length)

    cols: dict[str, np.ndarray] = {}
    need_pass = any(s in chosen for s in ("block_influence", "erank", "entropy", "cka"))
    uses_pass = ", ".join(s for s in chosen if s in ("block_influence", "erank", "entropy", "cka"))
    base_pass = (_run(base, ids, n_layers, batch_size, progress, "base layers",
                      f"layer signals ({uses_pass}), base model") if need_pass else None)
    if base_pass is not None and "block_influence" in chosen:
        cols["block_influence"] = (1.0 - base_pass.cos_sum / base_pass.count.clamp_min(1)).numpy()
    for name, fn in (("erank", M.effective_rank), ("entropy", M.dataset_entropy)):
        if name in chosen:
            curve = np.array([fn(base_pass.pooled[layer]) for layer in range(n_layers + 1)])
            cols[name] = np.abs(np.diff(curve))
    if "lens" in chosen:
        try:
            lens = logit_lens(base, texts, tokenizer=tok, layers=range(n_layers + 1), batch_size=batch_size,
                              max_length=max_length, n_bootstrap=0, progress=progress)
        except NonFiniteError as exc:
            raise NonFiniteError(f"layer signal 'lens' (block l writes layer l): {exc}") from exc
        kl = lens[lens["metric"] == "kl_to_final"].set_index("layer")["value"].reindex(range(n_layers + 1))
        cols["lens"] = np.clip(-np.diff(kl.to_numpy(dtype=float)), 0.0, None)
    if "cka" in chosen:
        base_pooled = base_pass.pooled
        if pair is not None and pair.sequential:
            pair.release("base")
        sft_pass = _run(sft_getter(), ids, n_layers, batch_size, progress, "sft layers",
                        "layer signal 'cka', sft model")
        curve = np.array([M.cka(base_pooled[layer], sft_pass.pooled[layer]) for layer in range(n_layers + 1)])
        cols["cka"] = np.clip(-np.diff(curve), 0.0, None)
    frame = pd.DataFrame({"block": np.arange(1, n_layers + 1), "layer": np.arange(1, n_layers + 1)})
    frame["depth"] = frame["layer"] / n_layers
    for name in chosen:
        _require_finite_signal(name, cols[name])
        frame[name] = cols[name]
    return frame


def _require_finite_signal(name: str, values: np.ndarray) -> None:
    """Refuse a signal with a NaN or infinite block (the normalisation would silently score it 0)."""
    bad = [int(b) + 1 for b in np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float)))]
    if bad:
        raise NonFiniteError(f"layer signal {name!r} is NaN or infinite at block(s) {bad} of {len(values)}; "
                             "a block cannot be chosen from meaningless numbers (check the weights and inputs)")


NORMALISATIONS: tuple[str, ...] = ("rank", "minmax")
"""How each signal is mapped to ``[0, 1]`` over blocks before averaging."""


def _normalise(values: np.ndarray, how: str = "rank") -> np.ndarray:
    """``rank``: (average rank − 1) / (n − 1); ``minmax``: (x − min) / (max − min). Constant → 0."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    out = np.zeros_like(values)
    if finite.sum() < 2:
        return out
    x = values[finite]
    if x.max() - x.min() <= 0:
        return out
    if how == "rank":
        out[finite] = (rank(x) - 1.0) / (x.size - 1.0)
    elif how == "minmax":
        out[finite] = (x - x.min()) / (x.max() - x.min())
    else:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {how!r}")
    return out


def score_masks(evidence: pd.DataFrame, masks: Iterable[str]) -> dict[str, float]:
    """The selector's score of any masks: the mean ``score`` of the blocks each one switches on.

    Masks may have any number of segments; an all-zero mask scores NaN.
    """
    n_layers = len(evidence)
    score = evidence.sort_values("block")["score"].to_numpy(dtype=float)
    out = {}
    for mask in masks:
        blocks = mask_blocks(str(mask), n_layers)
        out[str(mask)] = float(score[[b - 1 for b in blocks]].mean()) if blocks else math.nan
    return out


def suggest_block(
    pair_or_model: Any,
    texts: Sequence[str],
    *,
    n_segments: int = 5,
    width: int | None = None,
    prefer: str = "stable",
    candidates: Iterable[str] | None = None,
    normalise: str = "rank",
    signals: str | Iterable[str] = "auto",
    use_sft: bool = True,
    tokenizer: Any = None,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = True,
) -> tuple[str, pd.DataFrame]:
    """Choose the segments to tune without training; return the mask and the evidence.

    See the module docstring for the signals and the rule (normalise, average, pick the contiguous
    run of ``width`` segments with the highest mean score).

    Args:
        pair_or_model: a pair (or pair name) or one model (Base-only signals).
        texts: calibration texts.
        n_segments: segments of the mask.
        width: segments in the chosen block (default ``max(1, round(0.4 · n_segments))``).
        prefer: ``"stable"`` (low instability, the paper's hypothesis) or ``"active"``.
        candidates: choose among these masks instead (e.g. the masks of a sweep, so that the
            suggestion can be graded by :func:`selector_regret`); all-zero masks are ignored and
            ``width`` is not used. Ties go to the first in the list.
        normalise: ``"rank"`` (each signal's blocks ranked, scaled to ``[0, 1]``; one extreme
            block, typically the embedding → block 1 transition, cannot flatten the rest) or
            ``"minmax"``.
        signals: see :func:`layer_signals`.
        use_sft: allow Base-vs-SFT signals when a pair is given.
        tokenizer: tokenizer of a plain model.
        batch_size: texts per forward pass.
        max_length: tokens per text.
        progress: progress bars.

    Returns:
        ``(mask, evidence)``: evidence has one row per block with ``block``, ``layer``, ``depth``,
        ``segment``, each raw signal, its normalised value ``<signal>_norm``, ``instability``,
        ``score`` and ``selected``. ``evidence.attrs`` holds the ``rule``, ``mask``, ``width``,
        ``prefer``, ``signals`` and ``mask_scores`` (the score of every contiguous mask).
    """
    if prefer not in ("stable", "active"):
        raise ValueError(f"prefer must be 'stable' or 'active', got {prefer!r}")
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
    width = max(1, round(0.4 * n_segments)) if width is None else int(width)
    if not 1 <= width <= n_segments:
        raise ValueError(f"width must be in 1..{n_segments}, got {width}")
    pool = None
    if candidates is not None:
        pool = [str(m) for m in candidates if "1" in str(m)]
        if not pool:
            raise ValueError("no candidate mask switches on a segment")
        if any(len(m) != n_segments for m in pool):
            raise ValueError(f"candidate masks must have n_segments={n_segments} characters")
    frame = layer_signals(pair_or_model, texts, signals=signals, use_sft=use_sft, tokenizer=tokenizer,
                          batch_size=batch_size, max_length=max_length, progress=progress)
    n_layers = len(frame)
    segment_of = {b: i for i, blocks in enumerate(segment_blocks(n_layers, n_segments)) for b in blocks}
    frame.insert(3, "segment", frame["block"].map(segment_of))
    names = [c for c in frame.columns if c in SIGNALS]
    for name in names:
        frame[f"{name}_norm"] = _normalise(frame[name].to_numpy(), normalise)
    frame["instability"] = frame[[f"{n}_norm" for n in names]].mean(axis=1)
    frame["score"] = 1.0 - frame["instability"] if prefer == "stable" else frame["instability"]
    if pool is None:
        runs = contiguous_masks(n_segments, width)
        scores = score_masks(frame, runs)
        mask = max(runs, key=lambda m: (scores[m], -m.index("1")))
        rule = f"contiguous runs of {width} of {n_segments} segments"
    else:
        scores = score_masks(frame, pool)
        mask = max(pool, key=lambda m: (scores[m], -pool.index(m)))
        rule = f"{len(pool)} candidate masks"
    chosen = set(mask_blocks(mask, n_layers))
    frame["selected"] = frame["block"].isin(chosen)
    frame.attrs.update({
        "rule": f"argmax over {rule} of the mean block score "
                f"({'1 - ' if prefer == 'stable' else ''}mean of {normalise}-normalised signals)",
        "mask": mask, "width": width if pool is None else None, "prefer": prefer, "signals": names,
        "normalise": normalise,
        "mask_scores": score_masks(frame, contiguous_masks(n_segments) if pool is None else pool),
    })
    return mask, frame


def evidence_curves(evidence: pd.DataFrame) -> pd.DataFrame:
    """The selector's per-block evidence (:func:`suggest_block`) as a tidy ``(signal, layer, value)`` table.

    One curve per raw signal (``evidence.attrs["signals"]``) and the combined ``score``, indexed by the
    layer each block writes (block ``l`` writes layer ``l``).
    """
    names = [c for c in evidence.attrs.get("signals", []) if c in evidence.columns]
    names += [c for c in ("score",) if c in evidence.columns]
    tidy = evidence.melt(id_vars="layer", value_vars=names, var_name="signal", value_name="value")
    return tidy[["signal", "layer", "value"]]


def _lower_is_better(metric: str) -> bool:
    return "nll" in metric or metric.startswith("ppl") or metric.endswith("loss")


def selector_regret(
    suggested_mask: str,
    sweep_df: pd.DataFrame,
    metric: str = "accuracy",
    *,
    selector_scores: Mapping[str, float] | pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Grade a suggested mask against an exhaustive sweep.

    The sweep's score of a mask is its mean ``metric`` over seeds. Only masks with adapters and
    the suggestion's number of segments compete (the "no adapter" row is not a choice).
    Higher is better for accuracy; lower for NLL, perplexity and loss metrics.

    Args:
        suggested_mask: the mask to grade (must be in the sweep).
        sweep_df: a :func:`mbt.tune.sweeps` table (columns ``mask``, ``seed`` and ``metric``).
        metric: ``"accuracy"``, ``"answer_nll"`` or another column.
        selector_scores: the selector's score per mask (a mapping, or the ``evidence`` frame of
            :func:`suggest_block`, scored with :func:`score_masks`), for the rank correlation.

    Returns:
        ``{"metric", "suggested", "suggested_score", "best_mask", "best_score", "regret",
        "suggested_rank", "n_masks", "spearman", "spearman_p", "n_spearman"}``; ``regret`` is
        ``≥ 0`` in the metric's units (0 when the suggestion is the best mask), ``suggested_rank``
        is 1 for the best; ``spearman`` correlates selector scores with sweep results oriented so
        that positive means "the selector ranks masks like the sweep" (NaN without scores or with
        fewer than 3 masks).
    """
    if metric not in sweep_df.columns:
        raise ValueError(f"the sweep has no column {metric!r}")
    frame = sweep_df.assign(mask=sweep_df["mask"].astype(str))
    frame = frame[frame["mask"].map(lambda m: len(m) == len(suggested_mask) and "1" in m)]
    per_mask = frame.groupby("mask")[metric].mean().dropna()
    if suggested_mask not in per_mask.index:
        raise ValueError(f"suggested mask {suggested_mask!r} is not in the sweep (masks: {', '.join(per_mask.index)}); "
                         "pass the sweep's masks to suggest_block(candidates=...)")
    sign = -1.0 if _lower_is_better(metric) else 1.0
    oriented = sign * per_mask
    best_mask = str(oriented.idxmax())
    regret = float(oriented.max() - oriented[suggested_mask])
    out: dict[str, Any] = {
        "metric": metric, "suggested": suggested_mask, "suggested_score": float(per_mask[suggested_mask]),
        "best_mask": best_mask, "best_score": float(per_mask[best_mask]), "regret": regret,
        "suggested_rank": int(1 + (oriented > oriented[suggested_mask]).sum()), "n_masks": int(len(per_mask)),
        "spearman": math.nan, "spearman_p": math.nan, "n_spearman": 0,
    }
    if selector_scores is not None:
        if isinstance(selector_scores, pd.DataFrame):
            selector_scores = score_masks(selector_scores, per_mask.index)
        pairs = [(float(selector_scores[m]), float(oriented[m])) for m in per_mask.index
                 if m in selector_scores and math.isfinite(float(selector_scores[m]))]
        out["n_spearman"] = len(pairs)
        if len(pairs) >= 3:
            x, y = np.array(pairs).T
            rx, ry = rank(x) - rank(x).mean(), rank(y) - rank(y).mean()
            denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
            rho = float(np.clip(rx @ ry / denom, -1.0, 1.0)) if denom > 0 else math.nan
            out["spearman"], out["spearman_p"] = rho, correlation_pvalue(rho, len(pairs))
    return out


# ----------------------------------------------------------------------------------------------
# training-free baselines: Spectrum's SNR and the data-oblivious CKA shift


BASELINES: tuple[str, ...] = ("spectrum", "cka_shift")
"""The training-free baselines graded beside :func:`suggest_block` (module docstring)."""


@functools.lru_cache(maxsize=256)
def _mp_median(beta: float) -> float:
    """Median of the Marchenko–Pastur law of aspect ratio ``β ∈ (0, 1]`` and unit variance (numerical).

    The density ``√((b − x)(x − a)) / (2πβx)`` on ``[a, b] = [(1 − √β)², (1 + √β)²]`` is integrated in the
    variable ``t`` of ``x = a + (b − a)(1 − cos t)/2``, where it is smooth (the square-root edges, and the
    ``1/√x`` pole at ``β = 1``, disappear).
    """
    lo, hi = (1 - math.sqrt(beta)) ** 2, (1 + math.sqrt(beta)) ** 2
    t = np.linspace(0.0, math.pi, 40001)
    x = lo + (hi - lo) * (1 - np.cos(t)) / 2
    half = (hi - lo) / 2 * np.sin(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(x > 0, half * half / (2 * math.pi * beta * x), 0.0)
    if lo == 0.0:
        f[0] = hi / (2 * math.pi * beta)  # the limit at t → 0: (b sin t / 2)² / (b (1 − cos t) / 2) → b
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(t))])
    return float(np.interp(0.5 * cdf[-1], cdf, x))


def _snr(weight: torch.Tensor) -> tuple[float, float, float, int]:
    """``(snr, sigma, edge, n_signal)`` of one matrix (module docstring)."""
    w = weight.detach().to("cpu", torch.float64)
    m, n = w.shape
    big, small = max(m, n), min(m, n)
    s = torch.linalg.svdvals(w).numpy()
    sigma = float(np.median(s)) / math.sqrt(big * _mp_median(round(small / big, 4)))
    edge = sigma * (math.sqrt(m) + math.sqrt(n))
    signal, noise = float(s[s > edge].sum()), float(s[s <= edge].sum())
    return (signal / noise if noise > 0 else math.inf), sigma, edge, int((s > edge).sum())


def spectrum_snr(model: Any) -> pd.DataFrame:
    """Spectrum's signal-to-noise ratio of every 2-D weight matrix of every block (module docstring).

    Args:
        model: A causal LM (nnsight-wrapped or plain), e.g. ``pair.base``.

    Returns:
        ``block, param, kind, rows, cols, snr, sigma, edge, n_signal`` (block ``1..L``; ``kind`` as
        :func:`mbt.weights.module_kind` names it: ``q``, ``k``, ``v``, ``o``, ``gate``, ``up``, ``down`` …).

    Raises:
        NonFiniteError: A matrix holds NaN or infinity (names it).
    """
    module = trace.unwrap(model)
    blocks = operator.attrgetter(trace.resolve_layout(module).layers)(module)
    rows = []
    for b, block in enumerate(blocks, start=1):
        for name, param in block.named_parameters():
            if param.ndim != 2 or min(param.shape) < 2:
                continue
            require_finite(param, f"spectrum SNR, block {b}, {name}")
            snr, sigma, edge, n_signal = _snr(param)
            rows.append({"block": b, "param": name, "kind": module_kind(name.rsplit(".", 1)[0]),
                         "rows": int(param.shape[0]), "cols": int(param.shape[1]), "snr": snr, "sigma": sigma,
                         "edge": edge, "n_signal": n_signal})
    return pd.DataFrame(rows)


def baseline_signals(
    pair_or_model: Any,
    texts: Sequence[str],
    *,
    methods: Iterable[str] = BASELINES,
    tokenizer: Any = None,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = False,
) -> pd.DataFrame:
    """The baselines' per-block scores, Base only: ``spectrum`` (weights) and ``cka_shift`` (one pass over texts).

    Args:
        pair_or_model: A pair (its Base is used) or one model (a plain HF model needs ``tokenizer``).
        texts: Calibration texts (``cka_shift`` only; no labels).
        methods: Subset of :data:`BASELINES`.
        tokenizer: Tokenizer of a plain model.
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        progress: Progress bar.

    Returns:
        ``block, layer, depth`` and one column per method (larger = the block to tune).
    """
    chosen = list(dict.fromkeys(methods))
    unknown = [m for m in chosen if m not in BASELINES]
    if unknown or not chosen:
        raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(BASELINES)}")
    if "cka_shift" in chosen and (isinstance(texts, str) or len(texts) < 2):
        raise ValueError("give at least two calibration texts")
    base, _, tok, _ = _models(pair_or_model, tokenizer, use_sft=False)
    module = trace.unwrap(base)
    n_layers = len(operator.attrgetter(trace.resolve_layout(module).layers)(module))
    frame = pd.DataFrame({"block": np.arange(1, n_layers + 1), "layer": np.arange(1, n_layers + 1)})
    frame["depth"] = frame["layer"] / n_layers
    if "spectrum" in chosen:
        snr = spectrum_snr(base)
        finite = snr.assign(snr=snr["snr"].replace(math.inf, np.nan))
        finite["snr"] = finite["snr"].fillna(finite["snr"].max() * 2 if finite["snr"].notna().any() else 1.0)
        finite["rank"] = finite.groupby("kind")["snr"].transform(
            lambda x: (rank(x.to_numpy(float)) - 1) / max(len(x) - 1, 1))
        frame["spectrum"] = frame["block"].map(finite.groupby("block")["rank"].mean()).to_numpy(float)
    if "cka_shift" in chosen:
        ids = trace.encode(tok, texts, max_length=max_length)
        run = _run(base, ids, n_layers, batch_size, progress, "base layers", "baseline 'cka_shift', base model")
        frame["cka_shift"] = [1.0 - M.cka(run.pooled[b - 1], run.pooled[b]) for b in range(1, n_layers + 1)]
    for name in chosen:
        _require_finite_signal(name, frame[name].to_numpy(float))
    return frame


def suggest_baseline(
    pair_or_model: Any,
    texts: Sequence[str],
    *,
    method: str,
    candidates: Iterable[str],
    n_segments: int = 5,
    tokenizer: Any = None,
    batch_size: int = 8,
    max_length: int = 512,
    progress: bool = False,
) -> tuple[str, pd.DataFrame]:
    """A baseline's mask among ``candidates`` (highest mean block score) and its evidence.

    The evidence has one row per block with ``block, layer, depth, segment``, the raw signal, ``score``
    (the signal normalised to ``[0, 1]`` by rank, :func:`suggest_block`'s scale) and ``selected``, so that
    :func:`score_masks` and :func:`selector_regret` grade it exactly like :func:`suggest_block`'s pick.

    Raises:
        ValueError: An unknown method, no candidate with a segment on, or candidates of another length.
    """
    if method not in BASELINES:
        raise ValueError(f"method must be one of {', '.join(BASELINES)}, got {method!r}")
    pool = [str(m) for m in candidates if "1" in str(m)]
    if not pool:
        raise ValueError("no candidate mask switches on a segment")
    if any(len(m) != n_segments for m in pool):
        raise ValueError(f"candidate masks must have n_segments={n_segments} characters")
    frame = baseline_signals(pair_or_model, texts, methods=[method], tokenizer=tokenizer, batch_size=batch_size,
                             max_length=max_length, progress=progress)
    n_layers = len(frame)
    segment_of = {b: i for i, blocks in enumerate(segment_blocks(n_layers, n_segments)) for b in blocks}
    frame.insert(3, "segment", frame["block"].map(segment_of))
    frame["score"] = _normalise(frame[method].to_numpy(float), "rank")
    scores = score_masks(frame, pool)
    mask = max(pool, key=lambda m: (scores[m], -pool.index(m)))
    frame["selected"] = frame["block"].isin(set(mask_blocks(mask, n_layers)))
    frame.attrs.update({"rule": f"argmax over {len(pool)} candidate masks of the mean rank-normalised {method} score",
                        "mask": mask, "signals": [method], "mask_scores": scores})
    return mask, frame


def regret_table(picks: Mapping[str, tuple[str, pd.DataFrame]], sweep_df: pd.DataFrame,
                 metrics: Sequence[str] = ("accuracy", "answer_nll")) -> pd.DataFrame:
    """:func:`selector_regret` of several selectors' picks on the same sweep, one row per selector and metric.

    Args:
        picks: ``{selector name: (mask, evidence)}`` as :func:`suggest_block` and :func:`suggest_baseline` return.
        sweep_df: The sweep (:func:`mbt.tune.sweeps`).
        metrics: Sweep columns to grade by.

    Returns:
        ``selector`` plus the columns of :func:`selector_regret`.
    """
    return pd.DataFrame([{"selector": name, **selector_regret(mask, sweep_df, metric, selector_scores=evidence)}
                         for name, (mask, evidence) in picks.items() for metric in metrics])
