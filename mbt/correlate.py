r"""Per-layer correlations between curves (paper Fig. 5), with a depth-controlled variant.

The paper correlates, over the layers of one model, the weight change with every representation
metric (Pearson r, the book's appendix "The released code"). Two problems with doing only that:

* almost any two curves that grow (or shrink) with depth correlate strongly, whatever their causal
  relation; so next to the raw correlations we report a **partial correlation given depth**: both
  series are residualised on a polynomial of depth (degree 1 by default: a straight line), and the
  residuals are correlated. This removes the shared depth trend.
* ``n`` is the number of layers (16–64), so p-values matter; they are computed from the exact
  t distribution of r under independence and normality.

Layer alignment: series are matched on their index. Our conventions make weight change of **block**
``l`` (see :mod:`mbt.weights`) and hidden state **layer** ``l`` (the output of block ``l``) share the
index ``l``, so aligning on the index pairs each block with the state it produces (the authors'
merge paired block ``i`` with the *input* of block ``i``, §5).

p-values (SciPy is not a dependency): for a correlation ``r`` on ``n`` points with ``k`` covariates
partialled out, ``t = r·sqrt(df / (1 − r²))`` with ``df = n − 2 − k`` has a Student t distribution
under the null, and the two-sided p-value is the regularised incomplete beta function
``I_{df/(df+t²)}(df/2, 1/2)``, evaluated here by its continued fraction (Numerical Recipes §6.4;
agrees with ``scipy.stats.pearsonr`` to ~1e-12). Spearman p-values use the same t approximation on
the rank correlation (SciPy's default for ``spearmanr``); it is accurate for ``n`` above ~10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mbt.stats import betainc

__all__ = ["COLUMNS", "METHODS", "correlation_pvalue", "layer_correlations", "partial_correlation", "rank"]

METHODS: tuple[str, ...] = ("pearson", "spearman", "partial_pearson", "partial_spearman")
COLUMNS: tuple[str, ...] = ("x", "metric", "method", "r", "p", "n", "df", "degree")


def correlation_pvalue(r: float, n: int, *, n_covariates: int = 0) -> float:
    """Two-sided p-value of a (partial) correlation coefficient under independence.

    Args:
        r: Correlation coefficient in ``[-1, 1]``.
        n: Number of points.
        n_covariates: Number of covariates partialled out (``k``), so ``df = n − 2 − k``.

    Returns:
        ``P(|T| ≥ |t|)`` for ``T ~ t(df)``, ``t = r·sqrt(df/(1 − r²))``; ``0`` when ``|r| = 1``, NaN
        when ``r`` is NaN or ``df < 1``.
    """
    df = n - 2 - n_covariates
    if not math.isfinite(r) or df < 1:
        return float("nan")
    r = max(-1.0, min(1.0, float(r)))
    if abs(r) >= 1.0:
        return 0.0
    t2 = r * r * df / (1.0 - r * r)
    return float(min(1.0, betainc(df / 2.0, 0.5, df / (df + t2))))


def rank(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks ``1..n`` with ties given their average rank (as in Spearman's rho)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=float)
    ranks[order] = np.arange(1, x.size + 1, dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    if (counts > 1).any():
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if denom == 0.0 or not math.isfinite(denom):
        return float("nan")
    return float(np.clip((xc @ yc) / denom, -1.0, 1.0))


def _residualise(v: np.ndarray, depth: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares residuals of ``v`` on ``1, z, …, z^degree`` (``z`` = standardised depth)."""
    if degree == 0:
        return v - v.mean()
    spread = depth.std()
    z = (depth - depth.mean()) / (spread if spread > 0 else 1.0)
    design = np.vander(z, degree + 1, increasing=True)
    coef, *_ = np.linalg.lstsq(design, v, rcond=None)
    return v - design @ coef


def partial_correlation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    degree: int = 1,
    method: str = "pearson",
) -> tuple[float, float]:
    """Correlation of ``x`` and ``y`` after removing a polynomial trend in ``depth`` from both.

    Both series are regressed (least squares) on ``1, d, …, d^degree`` and the residuals are
    correlated; with ``degree=1`` this is the classical first-order partial correlation
    ``(r_xy − r_xd·r_yd) / sqrt((1 − r_xd²)(1 − r_yd²))``. ``method="spearman"`` ranks ``x``,
    ``y`` and ``depth`` first (partial Spearman).

    Args:
        x: First series, shape ``(n,)``.
        y: Second series, shape ``(n,)``.
        depth: Covariate, shape ``(n,)`` (layer index or relative depth: the result is the same).
        degree: Polynomial degree of the depth trend (``0`` = plain correlation).
        method: ``"pearson"`` or ``"spearman"``.

    Returns:
        ``(r, p)`` with the p-value for ``df = n − 2 − degree``.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    xs, ys, ds = (np.asarray(v, dtype=float).reshape(-1) for v in (x, y, depth))
    if not xs.size == ys.size == ds.size:
        raise ValueError(f"x, y and depth must have the same length, got {xs.size}, {ys.size}, {ds.size}")
    if method == "spearman":
        xs, ys, ds = rank(xs), rank(ys), rank(ds)
    r = _pearson(_residualise(xs, ds, degree), _residualise(ys, ds, degree))
    return r, correlation_pvalue(r, xs.size, n_covariates=degree)


def _as_series(values: Any, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.astype(float)
    if isinstance(values, Mapping):
        return pd.Series({k: float(v) for k, v in values.items()}, dtype=float, name=name)
    arr = np.asarray(values, dtype=float).reshape(-1)
    return pd.Series(arr, name=name)


def _metric_table(y: Any) -> pd.DataFrame:
    """Turn ``y`` (wide or tidy DataFrame, dict or Series) into a wide frame: index = layer, one column per metric."""
    if isinstance(y, pd.Series):
        return y.astype(float).to_frame(y.name if y.name is not None else "y")
    if isinstance(y, pd.DataFrame):
        if {"layer", "metric", "value"} <= set(y.columns):
            tidy = y
            if "model" in tidy.columns and tidy["model"].nunique() > 1:
                tidy = tidy.assign(metric=tidy["model"].astype(str) + ":" + tidy["metric"].astype(str))
            dup = tidy.duplicated(["layer", "metric"])
            if dup.any():
                raise ValueError(
                    "tidy y has several rows per (layer, metric); filter it (e.g. by model or aggregation) first"
                )
            return tidy.pivot(index="layer", columns="metric", values="value").astype(float)
        return y.astype(float)
    if isinstance(y, Mapping):
        return pd.DataFrame({str(k): _as_series(v, str(k)) for k, v in y.items()})
    raise TypeError(f"y must be a DataFrame, a dict of series or a Series, got {type(y).__name__}")


def layer_correlations(
    x: Any,
    y: Any,
    *,
    depth: Any = None,
    degree: int = 1,
    x_name: str | None = None,
) -> pd.DataFrame:
    """Correlate one per-layer series with every per-layer metric: raw and depth-controlled.

    Args:
        x: The per-layer series (e.g. weight change per block, :func:`mbt.weights.block_series`):
            a ``pandas.Series`` indexed by layer, a ``{layer: value}`` dict, or a 1-D array.
        y: The metrics: a wide DataFrame (index = layer, one column per metric), a tidy DataFrame
            with ``layer``/``metric``/``value`` columns (as from :func:`mbt.analyze`, filtered to one
            aggregation; several ``model`` values become ``"model:metric"`` names), a dict of
            series/arrays, or one Series. Series are aligned with ``x`` on their index (inner join;
            block ``l`` ↔ layer ``l``); plain arrays must have ``x``'s length and order.
        depth: Covariate of the partial correlation, aligned like the metrics. Default: the aligned
            layer index itself (relative depth ``l / L`` is an affine function of it, so the partial
            correlation is identical).
        degree: Degree of the polynomial depth trend removed from both series (``1`` = linear).
        x_name: Label of ``x`` in the output (default: the Series' name, else ``"x"``).

    Returns:
        Tidy DataFrame with columns :data:`COLUMNS`, one row per ``(metric, method)``; methods are
        ``"pearson"``, ``"spearman"``, ``"partial_pearson"`` and ``"partial_spearman"``. ``n`` is
        the number of layers where both values are finite (pairwise-complete), ``df`` the t-test's
        degrees of freedom. ``r`` and ``p`` are NaN where undefined (constant series, too few layers).
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    xs = _as_series(x, "x")
    label = x_name or (str(xs.name) if xs.name is not None else "x")
    table = _metric_table(y)
    if not isinstance(x, pd.Series | Mapping) and len(xs) == len(table):
        xs.index = table.index  # positional arrays take the metrics' layer index
    if isinstance(y, Mapping) and not isinstance(y, pd.DataFrame):
        if any(not isinstance(v, pd.Series | Mapping) for v in y.values()):
            if any(len(table[c]) != len(xs) for c in table.columns):
                raise ValueError("array-valued metrics must have the same length as x")
            table.index = xs.index
    if depth is None:
        dseries = pd.Series(np.asarray(xs.index, dtype=float), index=xs.index)
    else:
        dseries = _as_series(depth, "depth")
        if not isinstance(depth, pd.Series | Mapping):
            if len(dseries) != len(xs):
                raise ValueError(f"depth has {len(dseries)} values, x has {len(xs)}")
            dseries.index = xs.index
    rows: list[dict[str, Any]] = []
    for metric in table.columns:
        joined = pd.concat([xs.rename("x"), table[metric].rename("y"), dseries.rename("d")], axis=1, join="inner")
        joined = joined[np.isfinite(joined.to_numpy(dtype=float)).all(axis=1)]
        xv, yv, dv = (joined[c].to_numpy(dtype=float) for c in ("x", "y", "d"))
        n = int(xv.size)
        for method in METHODS:
            partial = method.startswith("partial")
            k = degree if partial else 0
            if n < 3 + k:
                r, p = float("nan"), float("nan")
            elif partial:
                r, p = partial_correlation(xv, yv, dv, degree=degree, method=method.split("_", 1)[1])
            else:
                a, b = (xv, yv) if method == "pearson" else (rank(xv), rank(yv))
                r = _pearson(a, b)
                p = correlation_pvalue(r, n)
            rows.append(
                {"x": label, "metric": str(metric), "method": method, "r": r, "p": p, "n": n, "df": n - 2 - k,
                 "degree": k}
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
