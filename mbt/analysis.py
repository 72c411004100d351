"""``analyze()``: a Base/SFT pair and texts in, a tidy table of every layer-wise metric out.

Both models see the same token ids. Each model is run once over the texts (length-bucketed
batches, :func:`mbt.trace.stream_layers`); a reducer inside the trace turns every layer's token
states into (a) per-sample token-level metrics for the first ``n_token`` texts and (b) one
mean-pooled vector per text. Only the pooled ``N × D`` matrices are kept per layer; the token
states themselves are never stored. Base runs to completion before SFT starts.

The table follows the paper's three aggregation modes (§3.5):

* ``sample_mean`` — a token-level metric per model: mean over samples;
* ``sample_delta`` — per-sample ``SFT − Base`` differences (Eq. 8), their mean;
* ``dataset`` / ``dataset_delta`` — a metric of the whole pooled matrix per model, and SFT − Base (Eq. 9);
* ``alignment`` — CKA (biased and debiased), cosine similarity, mean shift and the relative mean shift
  ``‖μ_SFT − μ_Base‖ / ‖μ_Base‖`` (normaliser: the Base centroid norm of the same layer) between Base and SFT
  pooled states (Eq. 10).

Every row carries a 95 % percentile interval from a **joint bootstrap over texts** and its replicates
(column ``replicates``): the same resampled texts at every layer and for both models
(:mod:`mbt.metrics.resampling`), so contrasts between layers or models computed replicate by replicate are
paired. The debiased CKA alone has no replicates (a resample repeats rows, which its unbiased estimator
would treat as distinct samples).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mbt import metrics as M
from mbt import trace
from mbt.checks import require_finite
from mbt.identity import loaded_dtype, pair_identity
from mbt.metrics import resampling as R
from mbt.metrics.registry import METRICS, names
from mbt.pairs import ModelPair, PairMismatchError, load_pair
from mbt.results import ResultCache, make_key, text_fingerprint

__all__ = [
    "ALL_METRICS",
    "COLUMNS",
    "MIN_TOKENS",
    "analyze",
    "analyze_key",
    "check_settings",
]

ALL_METRICS: tuple[str, ...] = (*names("token"), *names("pooled"), *names("pair"))
"""Every metric :func:`analyze` computes: the registry's token, pooled and pair levels (:mod:`mbt.metrics.registry`)."""

COLUMNS: tuple[str, ...] = (
    "model",
    "layer",
    "depth",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "aggregation",
    "conventions",
    "replicates",
)
_ROLES = ("base", "sft")


def _select_metrics(metrics: str | Iterable[str], n_token: int | None = None) -> list[str]:
    """The requested metric names; ``"all"`` leaves out the token-level ones when ``n_token == 0``."""
    everything = isinstance(metrics, str) and metrics == "all"
    if isinstance(metrics, str):
        metrics = ALL_METRICS if everything else [metrics]
    chosen = list(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in ALL_METRICS]
    if unknown or not chosen:
        raise ValueError(f"unknown metrics {unknown}; valid: 'all' or any of {', '.join(ALL_METRICS)}")
    if n_token == 0:
        token = [m for m in chosen if METRICS[m].level == "token"]
        if token and not everything:
            raise ValueError(
                f"token-level metrics {token} need token-level samples, but n_token is 0 (pooled-only "
                "datasets such as humaneval, mt_bench, toxigen and toy-instruct have none); drop them "
                "or pass n_token > 0"
            )
        chosen = [m for m in chosen if METRICS[m].level != "token"]
    return chosen


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _positive_int(name: str, value: Any) -> int:
    number = _integer(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def check_settings(
    *,
    metrics: str | Iterable[str] = "all",
    batch_size: int | str = 8,
    max_length: int = 512,
    conventions: str | M.Conventions = "standard",
    n_token: int | None = None,
    n_texts: int | None = None,
    n_bootstrap: int = 500,
    padding_side: str = "right",
) -> tuple[list[str], M.Conventions]:
    """Validate :func:`analyze`'s settings without touching a model (the CLI calls it before loading).

    Args:
        metrics: ``"all"`` or names from :data:`ALL_METRICS`.
        batch_size: A positive integer or ``"auto"``.
        max_length: A positive integer (tokens per text).
        conventions: A preset name or :class:`~mbt.metrics.Conventions`.
        n_token: Token-level samples, ``0..n_texts``; ``0`` drops the token-level metrics from
            ``"all"`` and refuses them when named explicitly.
        n_texts: Number of texts, when known (bounds ``n_token``).
        n_bootstrap: Bootstrap resamples, ``>= 0``.
        padding_side: ``"right"`` or ``"left"``.

    Returns:
        The chosen metric names and the resolved conventions.

    Raises:
        ValueError: Naming the offending setting and what is allowed.
    """
    if n_token is not None:
        n_token = _integer("n_token", n_token)
        upper = "" if n_texts is None else f"..{n_texts} (the number of texts)"
        if n_token < 0 or (n_texts is not None and n_token > n_texts):
            raise ValueError(f"n_token must be in 0{upper or '..'}, got {n_token}")
    chosen = _select_metrics(metrics, n_token)
    if batch_size != "auto":
        _positive_int("batch_size", batch_size)
    _positive_int("max_length", max_length)
    if _integer("n_bootstrap", n_bootstrap) < 0:
        raise ValueError(f"n_bootstrap must be an integer >= 0, got {n_bootstrap!r}")
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    return chosen, M.resolve_conventions(conventions)


def _check_texts(texts: Sequence[str]) -> None:
    """Refuse inputs on which every metric would be undefined or degenerate."""
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is a {type(text).__name__}, not a string")
        if not text.strip():
            raise ValueError(f"text {i} is empty or only whitespace; remove it (a text must have content)")
    if len(set(texts)) < 2:
        raise ValueError(
            f"the {len(texts)} texts hold fewer than 2 distinct texts: pooled metrics (ranks, entropies, "
            "CKA) are undefined on identical samples; pass at least 2 different texts"
        )


MIN_TOKENS: int = 3
"""Tokens a text needs for every token-level metric to be defined on it: curvature is the angle between two
consecutive steps of the token trajectory (three positions), and the entropy of one or two token states is
degenerate (undefined for one, the same value for every two-token text)."""


def _preview(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def _check_token_texts(tokenizer: Any, texts: Sequence[str], n_token: int, max_length: int) -> None:
    """Refuse a token-level subset in which no text has :data:`MIN_TOKENS` tokens; warn naming shorter ones.

    Tokenizes the first ``n_token`` texts only (no model is needed).

    Raises:
        ValueError: Every token-level text has fewer than :data:`MIN_TOKENS` tokens (naming them).
    """
    if n_token <= 0:
        return
    lengths = [len(ids) for ids in trace.encode(tokenizer, texts[:n_token], max_length=max_length)]
    short = [i for i, n in enumerate(lengths) if n < MIN_TOKENS]
    if not short:
        return
    named = "; ".join(f"text {i} {_preview(texts[i])}: {lengths[i]} token{'s' if lengths[i] != 1 else ''}"
                      for i in short[:5]) + (f"; and {len(short) - 5} more" if len(short) > 5 else "")
    if len(short) == len(lengths):
        cut = f" (max_length={max_length} cuts every text to {max_length})" if max_length < MIN_TOKENS else ""
        raise ValueError(
            f"every token-level text has fewer than {MIN_TOKENS} tokens{cut}, so the token-level metrics are "
            f"undefined on all of them: {named}. Use longer texts, or n_token=0 for the pooled metrics only")
    warnings.warn(
        f"{len(short)} of {len(lengths)} token-level texts have fewer than {MIN_TOKENS} tokens; token-level metrics "
        f"are undefined or degenerate on them (curvature leaves them out of its mean; the n column counts the texts "
        f"used): {named}", stacklevel=3)


def _warn_undefined(frame: pd.DataFrame) -> None:
    """Warn, naming metric, model and layers, about every value of the table that is NaN or infinite."""
    values = pd.to_numeric(frame["value"], errors="coerce")
    bad = frame[~np.isfinite(values.to_numpy(dtype=float))]
    if bad.empty:
        return
    parts = [f"{metric} ({model}) at layer{'s' if len(rows) > 1 else ''} "
             f"{', '.join(str(int(x)) for x in sorted(rows['layer'].unique())[:8])}"
             f"{' …' if rows['layer'].nunique() > 8 else ''}"
             for (metric, model), rows in bad.groupby(["metric", "model"], sort=False)]
    warnings.warn(
        f"{len(bad)} of {len(frame)} values are undefined (NaN or infinite) on these texts: {'; '.join(parts)}. "
        "They are left as NaN/inf in the table; do not read them as results (too few distinct texts or tokens, "
        "or a rank-deficient pooled matrix)", stacklevel=3)


@dataclasses.dataclass
class _ModelStates:
    """What one model's pass leaves behind: pooled matrices and per-sample token metrics."""

    pooled: dict[int, torch.Tensor]  # layer -> (N, D) float32 on the model's device
    token: dict[str, torch.Tensor]  # metric -> (L + 1, n_token) float64
    dtype: torch.dtype | None = None  # the model's dtype (the pooled float32 matrices came from it)


class _Reducer:
    """Per-batch reduction inside the trace: masked mean pooling and token-level metrics."""

    def __init__(self, n: int, n_token: int, n_layers: int, token_metrics: list[str], conv: M.Conventions,
                 keep_pooled: bool, role: str = "model") -> None:
        self.n, self.n_token, self.conv, self.keep_pooled, self.role = n, n_token, conv, keep_pooled, role
        self.token_metrics = token_metrics
        self.states = _ModelStates(
            pooled={},
            token={m: torch.full((n_layers + 1, n_token), float("nan"), dtype=torch.float64) for m in token_metrics},
        )

    def _check_finite(self, batch: trace.LayerBatch) -> None:
        # one float64 sum per token (finite iff all its values are); padding positions are ignored
        per_token = batch.states.sum(-1, dtype=torch.float64)[batch.mask.bool()]
        wanted = [*self.token_metrics, *(["pooled metrics"] if self.keep_pooled else [])]
        where = f"{self.role} model, layer {batch.layer}: hidden states (input of {', '.join(wanted)})"
        require_finite(per_token, where, unit="token vector(s)")

    def __call__(self, batch: trace.LayerBatch) -> None:
        self._check_finite(batch)
        if self.keep_pooled:
            mask = batch.mask.unsqueeze(-1)
            sums = (batch.states * mask).sum(1, dtype=torch.float64)
            pooled = (sums / batch.mask.sum(1, keepdim=True)).float()
            store = self.states.pooled.get(batch.layer)
            if store is None:
                store = torch.zeros((self.n, pooled.shape[-1]), dtype=torch.float32, device=pooled.device)
                self.states.pooled[batch.layer] = store
            store[batch.index] = pooled
        if self.token_metrics:
            sel = batch.index < self.n_token
            if bool(sel.any()):
                states, mask, index = batch.states[sel], batch.mask[sel], batch.index[sel].cpu()
                computed = M.token_metrics(states, mask, self.token_metrics, conventions=self.conv)
                for name, values in computed.items():
                    if bool(torch.isinf(values).any()):
                        require_finite(values[~torch.isnan(values)],
                                       f"{self.role} model, layer {batch.layer}, metric {name}")
                    self.states.token[name][batch.layer, index] = values.cpu()


def _encode_checked(pair: ModelPair, texts: Sequence[str], max_length: int) -> list[list[int]]:
    ids = trace.encode(pair.tokenizer, texts, max_length=max_length)
    # a sequential pair wraps both models with the tokenizer validated by load_pair
    sft_tok = getattr(pair.sft, "tokenizer", None) if pair.is_loaded("sft") else None
    if sft_tok is not None and sft_tok is not pair.tokenizer:
        other = trace.encode(sft_tok, texts, max_length=max_length)
        bad = next((i for i, (a, b) in enumerate(zip(ids, other, strict=True)) if a != b), None)
        if bad is not None:
            raise PairMismatchError(f"Base and SFT tokenizers give different token ids for text {bad}: {texts[bad]!r}")
    return ids


def _max_positions(pair: ModelPair) -> int | None:
    """The smaller of the two models' position limits (from loaded models or their configs), if any."""
    limits = []
    for role in ("base", "sft"):
        config = None
        if pair.is_loaded(role):
            config = getattr(trace.unwrap(pair.model(role)), "config", None)
        else:
            try:
                from transformers import AutoConfig

                config = AutoConfig.from_pretrained(getattr(pair.spec, role),
                                                    revision=getattr(pair.spec, f"{role}_revision"))
            except (OSError, ValueError):
                config = None
        text = getattr(config, "text_config", None) or config
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(text, attr, None)
            if isinstance(value, int) and value > 0:
                limits.append(value)
                break
    return min(limits) if limits else None


def _effective_max_length(pair: ModelPair, texts: Sequence[str], max_length: int) -> int:
    """``max_length`` capped at the models' position limit, with one warning if that truncates texts."""
    limit = _max_positions(pair)
    if limit is None or max_length <= limit:
        return max_length
    lengths = [len(ids) for ids in trace.encode(pair.tokenizer, texts, max_length=None)]
    cut = sum(n > limit for n in lengths)
    if cut:
        warnings.warn(
            f"{cut} of {len(texts)} texts are longer than the models' {limit} positions "
            f"(max_position_embeddings) and were truncated to {limit} tokens (max_length={max_length} asked)",
            stacklevel=3,
        )
    return limit


def analyze_key(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    chosen: Sequence[str],
    conventions: M.Conventions,
    n_token: int,
    max_length: int,
    n_bootstrap: int,
    seed: int,
) -> tuple[str, dict[str, Any]]:
    """The cache key and settings of an :func:`analyze` call, computed without loading a model.

    Args:
        pair: The pair (loaded or sequential).
        texts: The texts.
        chosen: Metric names (as returned by :func:`check_settings`).
        conventions: Resolved conventions.
        n_token: Token-level samples.
        max_length: Requested tokens per text (the effective cap follows from the configs, which
            are part of the weight fingerprints).
        n_bootstrap: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``(key, settings)``.
    """
    settings = {
        "pair": pair_identity(pair),
        "texts_sha256": text_fingerprint(texts),
        "n_texts": len(texts),
        "n_token": n_token,
        "max_length": max_length,
        "metrics": sorted(chosen),
        "conventions": dataclasses.asdict(conventions),
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "version": 3,  # 3: joint bootstrap replicates over texts in every row
    }
    return make_key(settings), settings


def _run_model(
    model: Any,
    ids: list[list[int]],
    *,
    n_token: int,
    n_layers: int,
    token_metrics: list[str],
    keep_pooled: bool,
    conv: M.Conventions,
    batch_size: int,
    padding_side: str,
    progress: bool,
    desc: str,
    remote: bool = False,
    role: str = "model",
) -> _ModelStates:
    reducer = _Reducer(len(ids), n_token, n_layers, token_metrics, conv, keep_pooled, role)
    reducer.states.dtype = loaded_dtype(model)
    pad_id = getattr(getattr(model, "tokenizer", None), "pad_token_id", None)
    trace.stream_layers(
        model, ids, reducer, batch_size=batch_size, padding_side=padding_side, pad_id=pad_id, progress=progress,
        desc=desc, remote=remote,
    )
    return reducer.states


def _row(model: str, layer: int, n_layers: int, metric: str, value: float, reps: np.ndarray, level: float, n: int,
         aggregation: str, conv_name: str) -> dict[str, Any]:
    """One table row: the value, its percentile interval from the joint bootstrap replicates, the replicates."""
    reps = np.asarray(reps, dtype=float)
    finite = reps[np.isfinite(reps)]
    low, high = (np.quantile(finite, [(1.0 - level) / 2.0, (1.0 + level) / 2.0]) if finite.size >= 2
                 else (math.nan, math.nan))
    return {
        "model": model,
        "layer": layer,
        "depth": layer / n_layers,
        "metric": metric,
        "value": float(value),
        "ci_low": float(low),
        "ci_high": float(high),
        "n": int(n),
        "aggregation": aggregation,
        "conventions": conv_name,
        "replicates": reps,
    }


def _pooled_metrics(X: torch.Tensor, chosen: list[str], conv: M.Conventions,
                    source_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Pooled-matrix metrics of the registry; the ``spectral`` ones share one singular spectrum.

    ``source_dtype`` is the model's dtype: the pooled matrix is float32 whatever the model computed
    in, and ``rank_tol="dtype"`` must use the epsilon of the model's dtype.
    """
    shared = tuple(n for n in chosen if METRICS[n].spectral)
    out = M.spectral_summary(X, metrics=shared, conventions=conv, source_dtype=source_dtype) if shared else {}
    for name in chosen:
        if not METRICS[name].spectral:
            out[name] = METRICS[name].compute(X, conventions=conv)
    return {name: out[name] for name in chosen}


def _tabulate(
    states: dict[str, _ModelStates],
    chosen: list[str],
    conv: M.Conventions,
    n_layers: int,
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame:
    """The tidy table: every metric per layer and model, with joint bootstrap replicates over texts.

    One set of ``n_bootstrap`` resampled text indices serves every layer, both models and every pooled and
    pair metric (:mod:`mbt.metrics.resampling`); another, drawn from the same seed, the token-level texts.
    So replicate ``b`` of layer ``l`` and of layer ``l'``, of Base and of SFT, saw the same texts, and a
    difference of two rows computed replicate by replicate is a paired bootstrap of that difference.
    """
    nan = float("nan")
    level = 0.95
    rows: list[dict[str, Any]] = []
    token = [m for m in chosen if METRICS[m].level == "token"]
    pooled_names = [m for m in chosen if METRICS[m].level == "pooled"]
    pair_names = [m for m in names("pair") if m in chosen]
    n_pooled = next((s.shape[0] for s in states["base"].pooled.values()), 0)
    n_token = next((v.shape[1] for v in states["base"].token.values()), 0)
    rng = np.random.default_rng(seed)
    pooled_idx = rng.integers(0, max(n_pooled, 1), size=(n_bootstrap, n_pooled))
    token_idx = rng.integers(0, max(n_token, 1), size=(n_bootstrap, n_token))
    empty = np.empty(0)

    def add(layer: int, model: str, metric: str, value: float, reps: np.ndarray, n: int, agg: str) -> None:
        rows.append(_row(model, layer, n_layers, metric, value, reps, level, n, agg, conv.name))

    for layer in range(n_layers + 1):
        for name in token:
            per_model = {role: states[role].token[name][layer] for role in _ROLES}
            reps = {role: R.mean_replicates(values, token_idx) for role, values in per_model.items()}
            for role, values in per_model.items():
                finite = values[torch.isfinite(values)]
                mean = float(finite.mean()) if finite.numel() else nan
                add(layer, role, name, mean, reps[role], int(finite.numel()), "sample_mean")
            delta = per_model["sft"] - per_model["base"]
            finite = delta[torch.isfinite(delta)]
            add(layer, "pair", f"delta_{name}", float(finite.mean()) if finite.numel() else nan,
                R.mean_replicates(delta, token_idx), int(finite.numel()), "sample_delta")
        pooled = {role: states[role].pooled.get(layer) for role in _ROLES}
        n = 0 if pooled["base"] is None else pooled["base"].shape[0]
        if pooled_names:
            values = {role: _pooled_metrics(pooled[role], pooled_names, conv, states[role].dtype) for role in _ROLES}
            reps = {role: R.pooled_replicates(pooled[role], pooled_idx, pooled_names, conv, states[role].dtype)
                    for role in _ROLES}
        for name in pooled_names:
            for role in _ROLES:
                add(layer, role, name, values[role][name], reps[role][name], n, "dataset")
            add(layer, "pair", f"delta_{name}", values["sft"][name] - values["base"][name],
                reps["sft"][name] - reps["base"][name], n, "dataset_delta")
        pair_reps = R.pair_replicates(pooled["base"], pooled["sft"], pooled_idx, pair_names, conv) if pair_names \
            else {}
        for name in pair_names:
            spec = METRICS[name]
            if n < spec.min_rows:
                add(layer, "pair", name, nan, empty, n, "alignment")
                continue
            value = spec.compute(pooled["base"], pooled["sft"], conventions=conv)
            if isinstance(value, torch.Tensor) and value.ndim == 1:  # one value per text: the mean over texts
                add(layer, "pair", name, float(value[torch.isfinite(value)].mean()),
                    R.mean_replicates(value, pooled_idx), n, "alignment")
            else:
                add(layer, "pair", name, float(value), pair_reps.get(name, empty), n, "alignment")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def analyze(
    pair: ModelPair | str,
    texts: Sequence[str],
    *,
    metrics: str | Iterable[str] = "all",
    batch_size: int | str = 8,
    max_length: int = 512,
    conventions: str | M.Conventions = "standard",
    n_token: int | None = None,
    n_bootstrap: int = 500,
    seed: int = 0,
    cache: bool | str | Path = True,
    padding_side: str = "right",
    remote: bool | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Compute every layer-wise metric for Base and SFT and their alignment, layers ``0..L``.

    Args:
        pair: A loaded :class:`~mbt.pairs.ModelPair`, or a pair name for :func:`~mbt.pairs.load_pair`.
        texts: Input texts (e.g. from :func:`mbt.load_texts`); each is one sample.
        metrics: ``"all"`` or names from :data:`ALL_METRICS`. Token-level: prompt entropy,
            curvature, sparsity; pooled: dataset entropy, effective rank, rank deficiency,
            condition number, spectral norm; pair: cka, cka_debiased, cosine_similarity, mean_shift.
        batch_size: Texts per forward pass (results do not depend on it), or ``"auto"``: the largest
            batch that fits on the GPU, found once and remembered (:func:`mbt.trace.auto_batch_size`).
        max_length: Tokens per text (right truncation), at most the models' ``max_position_embeddings``.
        conventions: ``"standard"`` (textbook definitions), ``"paper"`` (the released code's
            formulas, padding still masked) or a :class:`~mbt.metrics.Conventions`.
        n_token: Token-level metrics use the first ``n_token`` texts (paper: 100 of 1,000 pooled);
            default all texts. ``0`` (pooled-only datasets): ``"all"`` skips the token-level metrics,
            naming one explicitly is an error.
        n_bootstrap: Joint bootstrap resamples of the texts (0: no replicates and no intervals).
        seed: Seed of the bootstrap.
        cache: ``True`` (default folder, see :func:`mbt.results.cache_root`), a folder, or
            ``False``. A rerun with the same settings loads the stored table.
        padding_side: ``"right"`` or ``"left"`` (results do not depend on it).
        remote: Run the traces on NDIF (see :func:`mbt.trace.stream_layers`); default: the pair's
            own setting (``load_pair(..., remote=True)``).
        progress: Show progress bars.

    Returns:
        A tidy DataFrame with columns :data:`COLUMNS`: one row per ``(model, layer, metric)``;
        ``model`` is ``"base"``, ``"sft"`` or ``"pair"``, ``depth = layer / L``; ``ci_low`` and
        ``ci_high`` are the 95 % percentile bounds of the row's ``replicates`` (``n_bootstrap`` values of
        the metric on resampled texts, the same resamples for every row; empty for the debiased CKA).

    Raises:
        ValueError: Invalid settings (unknown metric names, ``batch_size`` or ``max_length`` not
            positive, ``n_token`` outside ``0..len(texts)``, token-level metrics named with
            ``n_token=0``, unknown conventions), an empty or whitespace-only text (named by index),
            fewer than 2 distinct texts, or token-level texts that all have fewer than
            :data:`MIN_TOKENS` tokens (named). All checked before any model work.
        PairMismatchError: If Base and SFT would see different token ids.
        NonFiniteError: If a model produces NaN or infinite hidden states (names the model and layer).

    Notes:
        With ``n_token=0`` (pooled-only datasets) ``metrics="all"`` leaves out the token-level
        metrics. Token-level texts shorter than :data:`MIN_TOKENS` tokens are named in a warning; any value
        of the table that is NaN or infinite is named in a warning too (never silently). ``max_length``
        is capped at the models' ``max_position_embeddings``, with one warning saying how many texts
        that truncated. A cache hit is announced on stderr in one
        line; the key (:func:`analyze_key`) is computed from the pair's identity
        (:func:`mbt.identity.pair_identity`), so a hit on a sequential pair loads no weights.
    """
    _check_texts(texts)
    n_token = len(texts) if n_token is None else _integer("n_token", n_token)
    chosen, conv = check_settings(
        metrics=metrics, batch_size=batch_size, max_length=max_length, conventions=conventions, n_token=n_token,
        n_texts=len(texts), n_bootstrap=n_bootstrap, padding_side=padding_side,
    )
    if isinstance(pair, str):
        pair = load_pair(pair, progress=progress, sequential=True)
    token_metrics = [m for m in chosen if METRICS[m].level == "token"] if n_token > 0 else []
    keep_pooled = any(METRICS[m].level != "token" for m in chosen)
    if token_metrics:  # degenerate texts are refused (or named) before any model work
        _check_token_texts(pair.tokenizer, texts, n_token, max_length)

    results = None if cache is False else ResultCache(None if cache is True else cache, kind="analyze")
    if results is not None:  # the key needs the weights' fingerprints (hashed once per file, then remembered)
        key, settings = analyze_key(pair, texts, chosen=chosen, conventions=conv, n_token=n_token,
                                    max_length=max_length, n_bootstrap=n_bootstrap, seed=seed)
        hit = results.load(key)
        if hit is not None:
            results.announce(key)
            _warn_undefined(hit)
            return hit

    ids = _encode_checked(pair, texts, _effective_max_length(pair, texts, max_length))
    start = time.perf_counter()
    states = {}
    for role in _ROLES:  # Base runs to completion before SFT; a sequential pair frees it in between
        model = pair.model(role)
        size = trace.auto_batch_size(model, max(map(len, ids))) if batch_size == "auto" else int(batch_size)
        states[role] = _run_model(
            model,
            ids,
            n_token=n_token,
            n_layers=pair.n_layers,
            token_metrics=token_metrics,
            keep_pooled=keep_pooled,
            conv=conv,
            batch_size=size,
            padding_side=padding_side,
            progress=progress,
            desc=f"{role} layers",
            remote=pair.remote if remote is None else remote,
            role=role,
        )
        pair.release(role)
    frame = _tabulate(states, chosen, conv, pair.n_layers, n_bootstrap, seed)
    if results is not None:
        results.save(key, frame, settings, seconds=round(time.perf_counter() - start, 3))
    _warn_undefined(frame)
    return frame
