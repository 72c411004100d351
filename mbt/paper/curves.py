r"""Claims about whole curves over depth, tested as the paper states them.

* :func:`raw_correlation` — Fig. 5 as the paper reports it: the across-layer Pearson correlation of two
  raw curves (weight change per block against a metric per layer), with a null for smooth curves;
* :func:`closeness` — "the Base and SFT curves are synchronised" (Fig. 2) as a closeness test: the
  largest gap between the two curves over a depth band, as a fraction of the Base curve's range over
  depth (or on a log scale), decided from joint bootstrap replicates against a stated margin;
* :func:`depth_trend` — "similarity declines progressively with depth" (the introduction): the slope of
  a curve over depth before the last band, from joint bootstrap replicates.

The depth-controlled correlation (our extension) is :func:`mbt.paper.verdicts.curve_correlation`.

Replicates are ``(B, L)`` arrays: row ``b`` is the statistic at every layer computed on the ``b``-th
resample of the texts — the *same* resampled texts at every layer and, for two models, for both
models, so that band contrasts and Base-vs-SFT gaps are paired. Everything is numpy and the standard
library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from mbt.paper.intervals import Interval, check_level, mde, normal_quantile
from mbt.paper.verdicts import BANDS, Decision, Verdict, direction, pct, phase_surrogates

__all__ = [
    "CLOSENESS_MARGIN",
    "closeness",
    "closeness_by_band",
    "depth_trend",
    "raw_correlation",
]

CLOSENESS_MARGIN = 0.10
"""Default margin of :func:`closeness`: the curves are "synchronised" in a band when no layer's gap exceeds
10 % of the Base curve's range over depth (``scale="range"``), or 10 % of its value (``scale="log"``)."""


def raw_correlation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray | None = None,
    *,
    side: int = 1,
    n_surrogates: int = 999,
    level: float = 0.95,
    seed: int = 0,
) -> Decision:
    r"""Fig. 5 as the paper reports it: the Pearson correlation of two raw curves over layers.

    ``r = corr(x, y)`` over the ``L`` layers (only the means removed: the shared depth shape is part of
    the claim "weight change tracks the metric along depth"). Neighbouring layers are not independent,
    so the textbook t test on ``L − 2`` degrees of freedom is far too optimistic for smooth curves (two
    independent random walks correlate "significantly" most of the time). The null keeps each curve's
    smoothness and lets its overall direction be arbitrary. For the curve ``y`` (and then symmetrically
    for ``x``):

    1. split the centred curve into its least-squares line in depth ``T`` and the rest ``R = y − T``;
    2. surrogate ``y_s = ε_s·T + φ_s(R)`` with a random sign ``ε_s = ±1`` and ``φ_s`` a phase
       randomisation of ``R`` after mirroring (``R`` extended by its reversal, so that the periodic
       series has no jump where it wraps around; the first ``L`` points kept);
    3. ``r_s = corr(x, y_s)``; two-sided ``p = (1 + #{|r_s| ≥ |r|}) / (1 + n_surrogates)``.

    The reported ``p`` is the larger of the two nulls. Random-phase surrogates of a trending curve
    without step 1 turn the trend into humps as often as into trends, which makes two monotone curves
    look linked (a J against an unrelated trending random curve: up to 10 % false at 10–40 layers);
    the sign of the line keeps "both trend" from counting as evidence, while a shared bend or shared
    wiggles still do.

    What it decides: that the two curves share their *shape* (beyond one straight trend of either
    direction) more than unrelated smooth curves would — a J against a J or against its mirror image
    is decided; two curves that only both trend are not. Calibration (``tests/paper/test_curves.py``):
    a J, late-hinge or steep-power curve against an independent random curve (AR(0.9) plus a random
    linear trend), and two independent AR(0.9) curves, at 10, 11, 16, 24 and 40 layers: at most 5 %
    false verdicts plus Monte-Carlo slack. Interval: ``r ± h`` with ``h`` the larger over the two nulls
    of the ``k``-th largest ``|r_s|``, ``k = ⌊(1 − level)(1 + n_surrogates)⌋`` (it excludes 0 exactly
    when ``p ≤ 1 − level``).

    Args:
        x: First curve, ``(L,)`` (e.g. relative weight change per block).
        y: Second curve, ``(L,)``, aligned with ``x`` (e.g. cosine similarity per layer).
        depth: Relative depth per point; default ``0, 1, …, L − 1``.
        side: Claimed sign of ``r``.
        n_surrogates: Surrogates per curve (at least ``1/(1 − level)``).
        level: Confidence level.
        seed: Seed of the surrogates.

    Returns:
        The :class:`Decision` (``unit="layers"``, ``p`` and ``p_verdict`` the larger surrogate p-value);
        inconclusive with the reason when fewer than 8 layers remain or a curve is constant.
    """
    if side not in (-1, 1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    check_level(level)
    if n_surrogates < 1.0 / (1.0 - level):
        raise ValueError(f"n_surrogates must be at least 1/(1 − level) = {1.0 / (1.0 - level):.0f}, got {n_surrogates}")
    xs, ys = np.asarray(x, dtype=float).reshape(-1), np.asarray(y, dtype=float).reshape(-1)
    ds = np.arange(xs.size, dtype=float) if depth is None else np.asarray(depth, dtype=float).reshape(-1)
    if not xs.size == ys.size == ds.size:
        raise ValueError(f"x, y and depth must have the same length, got {xs.size}, {ys.size}, {ds.size}")
    keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(ds)
    order = np.argsort(ds[keep], kind="stable")
    xs, ys, ds = xs[keep][order], ys[keep][order], ds[keep][order]
    n = int(xs.size)
    rule = (f"the paper's raw across-layer Pearson r; holds if the {pct(level)} interval (r ± the {pct(level)} "
            "quantile of |r| under surrogates of either curve that keep its line in depth up to its sign and "
            f"phase-randomise the rest after mirroring) excludes 0 with sign {'+' if side > 0 else '−'}, "
            "contradicted if it excludes 0 with the other sign")
    nan = float("nan")
    if n < 8:
        return Decision(Verdict.INCONCLUSIVE, nan, nan, nan, level, f"not decidable here: {n} layers, fewer than 8",
                        nan, n, "layers", threshold=0.0)
    xc, yc = xs - xs.mean(), ys - ys.mean()
    nx, ny = float(np.linalg.norm(xc)), float(np.linalg.norm(yc))
    if nx <= 1e-12 * max(1.0, float(np.abs(xs).max())) or ny <= 1e-12 * max(1.0, float(np.abs(ys).max())):
        return Decision(Verdict.INCONCLUSIVE, nan, nan, nan, level, rule + " (a curve is constant)", nan, n,
                        "layers", threshold=0.0)
    r = float(xc @ yc) / (nx * ny)
    dc = ds - ds.mean()
    unit_line = dc / float(np.linalg.norm(dc))
    rng = np.random.default_rng(seed)

    def null(fixed: np.ndarray, moved: np.ndarray) -> np.ndarray:
        line = unit_line * float(unit_line @ moved)
        signs = rng.choice([-1.0, 1.0], size=(n_surrogates, 1))
        sur = signs * line[None, :] + phase_surrogates(moved - line, n_surrogates, rng, mirror=True)
        sur -= sur.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(sur, axis=1)
        return (sur @ fixed) / np.where(norms > 0, norms * float(np.linalg.norm(fixed)), np.inf)

    nulls = (null(xc, yc), null(yc, xc))
    p = max(float((1 + np.sum(np.abs(rs) >= abs(r) - 1e-12)) / (1 + rs.size)) for rs in nulls)
    kth = int(math.floor((1.0 - level) * (1 + n_surrogates)))
    half = max(float(np.sort(np.abs(rs))[::-1][kth - 1]) for rs in nulls)
    lo, hi = max(-1.0, r - half), min(1.0, r + half)
    se = max(float(rs.std(ddof=1)) for rs in nulls)
    verdict = (Verdict.INCONCLUSIVE if not (lo > 0 or hi < 0) else
               Verdict.HOLDS if (lo > 0) == (side > 0) else Verdict.CONTRADICTED)
    return Decision(verdict, r, lo, hi, level, rule, mde(se, level), n, "layers", p, threshold=0.0, p_verdict=p)


def _replicates(name: str, reps: Sequence[Sequence[float]] | np.ndarray, n_layers: int | None = None) -> np.ndarray:
    arr = np.asarray(reps, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (B, L) replicates, got shape {arr.shape}")
    if n_layers is not None and arr.shape[1] != n_layers:
        raise ValueError(f"{name} must have {n_layers} layers (columns), got {arr.shape[1]}")
    if arr.shape[0] < 20:
        raise ValueError(f"{name} needs at least 20 bootstrap replicates, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has a non-finite value at replicate {bad[0]}, layer column {bad[1]}")
    return arr


def _vector(name: str, v: Sequence[float] | np.ndarray, n_layers: int) -> np.ndarray:
    arr = np.asarray(v, dtype=float).reshape(-1)
    if arr.size != n_layers:
        raise ValueError(f"{name} must have {n_layers} values, got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has a non-finite value at position {int(np.argmax(~np.isfinite(arr)))}")
    return arr


def _in_band(depth: np.ndarray, band: tuple[float, float] | None) -> np.ndarray:
    if band is None:
        return np.ones(depth.size, dtype=bool)
    return (depth > band[0]) & (depth <= band[1])


def closeness(
    base: Sequence[Sequence[float]] | np.ndarray,
    sft: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    base_estimate: Sequence[float] | np.ndarray,
    sft_estimate: Sequence[float] | np.ndarray,
    band: tuple[float, float] | None = None,
    margin: float = CLOSENESS_MARGIN,
    scale: str = "range",
    level: float = 0.95,
    n_texts: int | None = None,
) -> Decision:
    r"""Are the Base and SFT curves of one metric close over a depth band? ("synchronised", Fig. 2).

    Gap at layer ``l``:

    * ``scale="range"`` (default): ``g_l = (s_l − b_l) / R`` with ``R = max_l b_l − min_l b_l`` the Base
      curve's range over *all* the layers given (the scale on which Fig. 2 draws it);
    * ``scale="log"`` (positive metrics spanning orders of magnitude, e.g. condition number, σ_max):
      ``g_l = log s_l − log b_l``, and the margin is ``log(1 + margin)``.

    Each replicate gives ``g*_l`` (with its own ``R*``, so the range's uncertainty is included). The
    effect is the band's largest gap ``G = max_{l ∈ band} |g_l|``; a simultaneous interval for every
    layer of the band, ``g_l ± q`` with ``q`` the ``level`` quantile of ``max_{l ∈ band} |g*_l − g_l|``
    over replicates, bounds ``max_l |true g_l|`` by ``[max(G − q, 0), G + q]``.

    Rule: **holds** (close) if ``G + q`` is below the margin — every layer's gap is inside ±margin at
    once; **contradicted** (not close) if ``G − q`` is above it — some layer's gap is outside for
    certain; else **inconclusive**. A shift exactly at the margin is called close (or not close) at
    most ``1 − level`` of the time; shared depth shapes cancel in the gap, so they cannot make two
    curves look close, and curves with opposite trends are never close however their wiggles agree.

    Args:
        base: Base replicates ``(B, L)`` (the same resampled texts as ``sft``, row by row).
        sft: SFT replicates ``(B, L)``.
        depth: Relative depth of each column ``(L,)``.
        base_estimate: Base point values ``(L,)``.
        sft_estimate: SFT point values ``(L,)``.
        band: Depth band ``(lo, hi]``; ``None`` = every layer given.
        margin: Closeness margin (fraction of the Base range, or of the value on the log scale).
        scale: ``"range"`` or ``"log"``.
        level: Confidence level of the simultaneous interval.
        n_texts: Number of texts each replicate resampled (reported as ``n``).

    Returns:
        The :class:`Decision`: effect ``G``, interval ``[max(G − q, 0), G + q]``, threshold the margin
        on the effect's scale, side −1 ("below the margin").
    """
    check_level(level)
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if scale not in ("range", "log"):
        raise ValueError(f"scale must be 'range' or 'log', got {scale!r}")
    d = np.asarray(depth, dtype=float).reshape(-1)
    b_rep, s_rep = _replicates("base", base, d.size), _replicates("sft", sft, d.size)
    if b_rep.shape != s_rep.shape:
        raise ValueError(f"base and sft replicates must have the same shape, got {b_rep.shape} and {s_rep.shape}")
    b_est, s_est = _vector("base_estimate", base_estimate, d.size), _vector("sft_estimate", sft_estimate, d.size)
    mask = _in_band(d, band)
    if not mask.any():
        raise ValueError(f"no layer in band {band} for depths {d.min():.2f}..{d.max():.2f}")
    if scale == "log":
        for name, a in (("base", b_rep), ("sft", s_rep), ("base_estimate", b_est), ("sft_estimate", s_est)):
            if a.min() <= 0:
                raise ValueError(f"scale='log' needs positive values; {name} has minimum {a.min():g}")
        gap = np.log(s_est) - np.log(b_est)
        gap_rep = np.log(s_rep) - np.log(b_rep)
        thr = math.log1p(margin)
        scale_text = f"log SFT − log Base, margin log(1 + {margin:g}) = {thr:.3g}"
    else:
        span = float(b_est.max() - b_est.min())
        spans = b_rep.max(axis=1) - b_rep.min(axis=1)
        if span <= 0 or spans.min() <= 0:
            raise ValueError("the Base curve is constant over depth: its range cannot scale the margin")
        gap = (s_est - b_est) / span
        gap_rep = (s_rep - b_rep) / spans[:, None]
        thr = float(margin)
        scale_text = f"(SFT − Base) ÷ the Base range over depth, margin {margin:g}"
    g, g_rep = gap[mask], gap_rep[:, mask]
    big = float(np.max(np.abs(g)))
    q = float(np.quantile(np.max(np.abs(g_rep - g[None, :]), axis=1), level))
    where = "every layer" if band is None else f"depth {max(band[0], 0.0):g}–{band[1]:g}"
    n_units, unit = (int(n_texts), "texts") if n_texts is not None else (int(b_rep.shape[0]), "bootstrap replicates")
    iv = Interval(big, max(big - q, 0.0), big + q, level, q / normal_quantile((1.0 + level) / 2.0), n_units, unit,
                  f"largest |gap| over {where} ({int(mask.sum())} layers), {scale_text}; simultaneous "
                  f"{pct(level)} band from {b_rep.shape[0]} joint bootstrap replicates")
    out = direction(iv, side=-1, threshold=thr)
    rule = (f"close (synchronised) if every layer's gap over {where} is inside ±{thr:.3g} at once "
            f"({scale_text}): holds if the {pct(level)} simultaneous bound on the largest |gap| lies below the "
            "margin, contradicted if its lower bound lies above it")
    return replace(out, rule=rule)


def closeness_by_band(
    base: Sequence[Sequence[float]] | np.ndarray,
    sft: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    base_estimate: Sequence[float] | np.ndarray,
    sft_estimate: Sequence[float] | np.ndarray,
    bands: Mapping[str, tuple[float, float]] = BANDS,
    margin: float = CLOSENESS_MARGIN,
    scale: str = "range",
    level: float = 0.95,
    n_texts: int | None = None,
) -> dict[str, Decision]:
    r""":func:`closeness` in each band of ``bands`` and over all of them at once (key ``"all"``).

    The ``"all"`` decision is the whole-curve claim: a simultaneous band over every layer, so it holds
    exactly when the curves are close everywhere and is contradicted when some layer is far for
    certain, at ``1 − level`` for the claim as a whole; the per-band rows say where.

    Returns:
        ``{band name: Decision, ..., "all": Decision}``; a band with no layer is omitted.
    """
    d = np.asarray(depth, dtype=float).reshape(-1)
    out: dict[str, Decision] = {}
    kw = dict(base_estimate=base_estimate, sft_estimate=sft_estimate, margin=margin, scale=scale, level=level,
              n_texts=n_texts)
    for name, band in bands.items():
        if _in_band(d, band).any():
            out[name] = closeness(base, sft, d, band=band, **kw)
    out["all"] = closeness(base, sft, d, band=None, **kw)
    return out


def depth_trend(
    replicates: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    estimate: Sequence[float] | np.ndarray,
    within: tuple[float, float] = (0.0, BANDS["middle"][1]),
    side: int = -1,
    level: float = 0.95,
    n_texts: int | None = None,
) -> Decision:
    r"""A progressive trend over depth: the slope of a curve over the layers of ``within`` ("declines with depth").

    Effect: the least-squares slope ``β = Σ (d_l − d̄)(v_l − v̄) / Σ (d_l − d̄)²`` of the curve on relative
    depth over the layers of ``within`` (default ``(0, 0.8]``: everything before the last band, so that
    a drop confined to the final layers is not a *progressive* decline), in units of the metric per
    unit of relative depth. Interval: percentile interval of ``β*`` over the joint bootstrap
    replicates. Rule: :func:`mbt.paper.verdicts.direction` with threshold 0 (``side=−1``: a decline).
    Under a curve flat before the last band (a late hinge) the slope is 0 and the verdict false at
    most ``1 − level`` of the time.

    Args:
        replicates: ``(B, L)`` joint bootstrap replicates of the curve.
        depth: Relative depth per column ``(L,)``.
        estimate: Point values ``(L,)``.
        within: Depth range ``(lo, hi]`` of the fit.
        side: ``−1`` (declines) or ``+1`` (grows).
        level: Confidence level.
        n_texts: Texts per replicate (reported as ``n``).

    Returns:
        The :class:`Decision`.
    """
    check_level(level)
    d = np.asarray(depth, dtype=float).reshape(-1)
    reps = _replicates("replicates", replicates, d.size)
    est = _vector("estimate", estimate, d.size)
    mask = _in_band(d, within)
    if int(mask.sum()) < 3:
        raise ValueError(f"need at least 3 layers in depth {within}, got {int(mask.sum())}")
    dc = d[mask] - d[mask].mean()
    w = dc / float(dc @ dc)
    beta = float(w @ est[mask])
    betas = reps[:, mask] @ w
    lo, hi = np.quantile(betas, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    n_units, unit = (int(n_texts), "texts") if n_texts is not None else (int(reps.shape[0]), "bootstrap replicates")
    iv = Interval(beta, float(lo), float(hi), level, float(betas.std(ddof=1)), n_units, unit,
                  f"least-squares slope over depth {max(within[0], 0.0):g}–{within[1]:g} ({int(mask.sum())} layers); "
                  f"percentile interval of {reps.shape[0]} joint bootstrap replicates")
    return direction(iv, side=side, threshold=0.0)

