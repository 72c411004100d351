"""``analyze()``: a Base/SFT pair and texts in, a tidy table of every layer-wise metric out.

Both models see the same token ids. Each model is run once over the texts (length-bucketed
batches, :func:`mbt.trace.stream_layers`); a reducer inside the trace turns every layer's token
states into (a) per-sample token-level metrics for the first ``n_token`` texts and (b) one
mean-pooled vector per text. Only the pooled ``N × D`` matrices are kept per layer; the token
states themselves are never stored. Base runs to completion before SFT starts.

The table follows the paper's three aggregation modes (§3.5):

* ``sample_mean`` — a token-level metric per model: mean over samples with a bootstrap interval;
* ``sample_delta`` — per-sample ``SFT − Base`` differences (Eq. 8), mean and bootstrap interval;
* ``dataset`` / ``dataset_delta`` — a metric of the whole pooled matrix per model, and SFT − Base (Eq. 9);
* ``alignment`` — CKA (biased and debiased), cosine similarity and mean shift between Base and SFT
  pooled states (Eq. 10); cosine similarity is per sample, so it has an interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mbt import metrics as M
from mbt import trace
from mbt.pairs import ModelPair, PairMismatchError, load_pair
from mbt.results import ResultCache, make_key
from mbt.stats import bootstrap_mean_ci

__all__ = ["ALL_METRICS", "COLUMNS", "PAIR_METRICS", "POOLED_METRICS", "TOKEN_METRICS", "analyze"]

TOKEN_METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "prompt_entropy": M.prompt_entropy,
    "curvature": M.curvature,
    "sparsity": M.sparsity,
}
POOLED_METRICS: dict[str, Callable[..., float]] = {
    "dataset_entropy": M.dataset_entropy,
    "effective_rank": M.effective_rank,
    "rank_deficiency": M.rank_deficiency,
    "condition_number": M.condition_number,
    "spectral_norm": M.spectral_norm,
}
PAIR_METRICS: tuple[str, ...] = ("cka", "cka_debiased", "cosine_similarity", "mean_shift")
ALL_METRICS: tuple[str, ...] = (*TOKEN_METRICS, *POOLED_METRICS, *PAIR_METRICS)
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
)
_ROLES = ("base", "sft")


def _select_metrics(metrics: str | Iterable[str]) -> list[str]:
    if isinstance(metrics, str):
        metrics = ALL_METRICS if metrics == "all" else [metrics]
    chosen = list(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in ALL_METRICS]
    if unknown or not chosen:
        raise ValueError(f"unknown metrics {unknown}; valid: 'all' or any of {', '.join(ALL_METRICS)}")
    return chosen


@dataclasses.dataclass
class _ModelStates:
    """What one model's pass leaves behind: pooled matrices and per-sample token metrics."""

    pooled: dict[int, torch.Tensor]  # layer -> (N, D) float32 on the model's device
    token: dict[str, torch.Tensor]  # metric -> (L + 1, n_token) float64


class _Reducer:
    """Per-batch reduction inside the trace: masked mean pooling and token-level metrics."""

    def __init__(self, n: int, n_token: int, n_layers: int, token_metrics: list[str], conv: M.Conventions,
                 keep_pooled: bool) -> None:
        self.n, self.n_token, self.conv, self.keep_pooled = n, n_token, conv, keep_pooled
        self.token_metrics = token_metrics
        self.states = _ModelStates(
            pooled={},
            token={m: torch.full((n_layers + 1, n_token), float("nan"), dtype=torch.float64) for m in token_metrics},
        )

    def __call__(self, batch: trace.LayerBatch) -> None:
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
                for name in self.token_metrics:
                    values = TOKEN_METRICS[name](states, mask, conventions=self.conv)
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


def _fingerprint(pair: ModelPair, role: str) -> dict[str, Any]:
    """Identify a model's weights for the cache key without loading it when possible."""
    ident = getattr(pair.spec, role)
    revision = getattr(pair.spec, f"{role}_revision")
    if pair.is_loaded(role):
        return model_fingerprint(pair.model(role))
    info: dict[str, Any] = {"source": ident, "revision": revision, "dtype": str(pair.dtype)}
    if Path(ident).is_dir():
        files = (p for p in Path(ident).iterdir() if p.is_file())
        info["files"] = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return info


def model_fingerprint(model: Any) -> dict[str, Any]:
    """Identify a loaded model's weights: folder file stats, Hub commit, or a parameter checksum."""
    module = trace.unwrap(model)
    config = module.config
    source = str(getattr(config, "_name_or_path", "") or "")
    commit = getattr(config, "_commit_hash", None)
    info: dict[str, Any] = {"source": source, "dtype": str(module.dtype), "commit": commit}
    folder = Path(source) if source else None
    if folder is not None and folder.is_dir():
        files = (p for p in folder.iterdir() if p.is_file())
        info["files"] = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    elif info["commit"] is None:
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, param in module.named_parameters():
                digest.update(name.encode())
                digest.update(repr(float(param.double().sum())).encode())
                digest.update(repr(float(param.double().abs().sum())).encode())
        info["params"] = digest.hexdigest()
    return info


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
) -> _ModelStates:
    reducer = _Reducer(len(ids), n_token, n_layers, token_metrics, conv, keep_pooled)
    pad_id = getattr(getattr(model, "tokenizer", None), "pad_token_id", None)
    trace.stream_layers(
        model, ids, reducer, batch_size=batch_size, padding_side=padding_side, pad_id=pad_id, progress=progress,
        desc=desc, remote=remote,
    )
    return reducer.states


def _row(model: str, layer: int, n_layers: int, metric: str, value: float, low: float, high: float, n: int,
         aggregation: str, conv_name: str) -> dict[str, Any]:
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
    }


def _pooled_metrics(X: torch.Tensor, names: list[str], conv: M.Conventions) -> dict[str, float]:
    """Pooled-matrix metrics; the rank-type ones share one eigendecomposition."""
    shared = tuple(n for n in names if n != "dataset_entropy")
    out = M.spectral_summary(X, metrics=shared, conventions=conv) if shared else {}
    if "dataset_entropy" in names:
        out["dataset_entropy"] = M.dataset_entropy(X, conventions=conv)
    return out


def _tabulate(
    states: dict[str, _ModelStates],
    chosen: list[str],
    conv: M.Conventions,
    n_layers: int,
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame:
    nan = float("nan")
    rows: list[dict[str, Any]] = []

    def add(layer: int, model: str, metric: str, value: float, low: float, high: float, n: int, agg: str) -> None:
        rows.append(_row(model, layer, n_layers, metric, value, low, high, n, agg, conv.name))

    for layer in range(n_layers + 1):
        for name in (m for m in chosen if m in TOKEN_METRICS):
            per_model = {role: states[role].token[name][layer] for role in _ROLES}
            for role, values in per_model.items():
                mean, low, high = bootstrap_mean_ci(values, n_boot=n_bootstrap, seed=seed)
                add(layer, role, name, mean, low, high, int(torch.isfinite(values).sum()), "sample_mean")
            delta = per_model["sft"] - per_model["base"]
            mean, low, high = bootstrap_mean_ci(delta, n_boot=n_bootstrap, seed=seed)
            add(layer, "pair", f"delta_{name}", mean, low, high, int(torch.isfinite(delta).sum()), "sample_delta")
        pooled = {role: states[role].pooled.get(layer) for role in _ROLES}
        n = 0 if pooled["base"] is None else pooled["base"].shape[0]
        names = [m for m in chosen if m in POOLED_METRICS]
        if names:
            values = {role: _pooled_metrics(pooled[role], names, conv) for role in _ROLES}
        for name in names:
            for role in _ROLES:
                add(layer, role, name, values[role][name], nan, nan, n, "dataset")
            add(layer, "pair", f"delta_{name}", values["sft"][name] - values["base"][name], nan, nan, n,
                "dataset_delta")
        if "cka" in chosen:
            add(layer, "pair", "cka", M.cka(pooled["base"], pooled["sft"], conventions=conv), nan, nan, n, "alignment")
        if "cka_debiased" in chosen:
            value = M.cka(pooled["base"], pooled["sft"], debiased=True, conventions=conv) if n >= 4 else nan
            add(layer, "pair", "cka_debiased", value, nan, nan, n, "alignment")
        if "cosine_similarity" in chosen:
            cos = M.cosine_similarity(pooled["base"], pooled["sft"], conventions=conv)
            mean, low, high = bootstrap_mean_ci(cos, n_boot=n_bootstrap, seed=seed)
            add(layer, "pair", "cosine_similarity", mean, low, high, n, "alignment")
        if "mean_shift" in chosen:
            add(layer, "pair", "mean_shift", M.mean_shift(pooled["base"], pooled["sft"], conventions=conv), nan, nan, n,
                "alignment")
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
    n_bootstrap: int = 1000,
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
        max_length: Tokens per text (right truncation).
        conventions: ``"standard"`` (textbook definitions), ``"paper"`` (the released code's
            formulas, padding still masked) or a :class:`~mbt.metrics.Conventions`.
        n_token: Token-level metrics use the first ``n_token`` texts (paper: 100 of 1,000 pooled);
            default all texts.
        n_bootstrap: Bootstrap resamples for intervals over samples (0 disables intervals).
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
        ``ci_high`` are 95% percentile-bootstrap bounds where defined (NaN otherwise).

    Raises:
        ValueError: Unknown metric names, empty texts or an invalid ``n_token``.
        PairMismatchError: If Base and SFT would see different token ids.
    """
    if isinstance(pair, str):
        pair = load_pair(pair, progress=progress)
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")
    chosen = _select_metrics(metrics)
    conv = M.resolve_conventions(conventions)
    n_token = len(texts) if n_token is None else int(n_token)
    if not 0 <= n_token <= len(texts):
        raise ValueError(f"n_token must be in 0..{len(texts)} (the number of texts), got {n_token}")
    token_metrics = [m for m in chosen if m in TOKEN_METRICS] if n_token > 0 else []
    keep_pooled = any(m in POOLED_METRICS or m in PAIR_METRICS for m in chosen)

    ids = _encode_checked(pair, texts, max_length)
    settings = {
        "pair": {"name": pair.spec.name, "base": _fingerprint(pair, "base"), "sft": _fingerprint(pair, "sft")},
        "texts_sha256": hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
        "n_texts": len(texts),
        "n_token": n_token,
        "max_length": max_length,
        "metrics": sorted(chosen),
        "conventions": dataclasses.asdict(conv),
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "version": 1,
    }
    store = None if cache is False else ResultCache(None if cache is True else cache, kind="analyze")
    if store is not None:
        key = make_key(settings)
        cached = store.load(key)
        if cached is not None:
            return cached

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
        )
        pair.release(role)
    frame = _tabulate(states, chosen, conv, pair.n_layers, n_bootstrap, seed)
    if store is not None:
        store.save(key, frame, settings, seconds=round(time.perf_counter() - start, 3))
    return frame
