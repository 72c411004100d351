r"""The verdict model: every claim of the paper is decided by an interval or a test, never by a sign.

A claim of the paper is a headline (:data:`mbt.paper.headlines.HEADLINES`: the claim, the paper's value, how
ours is computed) and a function of its chapter's findings module (:mod:`mbt.paper.findings`) that computes
the effect and decides it with one of the functions here. The verdict is three-valued (:class:`Verdict`):

* **holds** — the interval (or test) at the stated level lies entirely on the claimed side;
* **contradicted** — it lies entirely on the other side;
* **inconclusive** — otherwise: this sample cannot tell.

Under no true effect, "holds" and "contradicted" together occur at most at ``1 − level`` (5 % by
default); ``tests/paper/test_verdicts.py`` checks this by simulation for every decision function, and that
an effect of the paper's size at a realistic sample size is found to hold at least 80 % of the time.

Every decision (:class:`Decision`) carries the effect, its interval, the rule in words, the number of
units and the **minimum detectable effect** (MDE). The MDE is the smallest true effect that this
test, at this level, detects with 80 % power: ``MDE = (q_{1−α/2} + q_{0.80}) · SE`` where ``SE`` is the
standard error of the effect (the bootstrap standard deviation for texts; ``s/√n`` for seeds and
layers; the surrogate-null standard deviation of ``r`` for curve correlations) and ``q`` the
normal quantile (Student t with the interval's degrees of freedom for t intervals). It is measured
from the distance to the claim's threshold (0 for a plain direction).

Units of replication and intervals:

* texts — expanded percentile bootstrap of the mean over texts (:func:`bootstrap_interval`,
  seeded), paired when two conditions were measured on the same texts;
* seeds — Student t interval over seeds (:func:`t_interval`, paired or Welch), because a bootstrap
  over 3 seeds has at most 10 distinct resamples and badly under-covers; an exact sign-flip
  permutation p-value (:func:`sign_flip_pvalue`) is reported next to it;
* layers — curves over depth are not independent samples: correlations use a smooth-curve null
  (:func:`curve_correlation`: a cubic regression spline in relative depth removed from both curves,
  then phase-randomised surrogates); shape claims are contrasts between depth bands
  (:func:`band_contrast`: last 20 % vs middle 20–80 % by default) with a paired bootstrap over texts,
  bootstrap replicates, an autocorrelation-corrected Welch interval over layers, or a bound from
  per-layer intervals.

Shape claims should be put on scale-free quantities so that a threshold means the same on every
model: the relative mean shift ``‖μ_SFT − μ_Base‖ / ‖μ_Base‖`` (normaliser: the Base centroid norm of
the same layer) and the relative weight change ``‖Δθ‖_F / ‖θ_Base‖_F`` per block, compared with
``statistic="ratio"`` (band ÷ reference − 1).

The intervals and distributions live in :mod:`mbt.paper.intervals` (re-exported here). Everything is
numpy / pandas / the standard library.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from mbt.paper.intervals import (
    POWER,
    Interval,
    bootstrap_expansion,
    bootstrap_interval,
    check_level,
    interval_from_summary,
    mde,
    normal_quantile,
    sign_flip_pvalue,
    t_cdf,
    t_interval,
    t_quantile,
)

__all__ = [
    "BANDS",
    "POWER",
    "Decision",
    "Interval",
    "Verdict",
    "band_contrast",
    "auto_knots",
    "bootstrap_interval",
    "collapse",
    "curve_correlation",
    "direction",
    "effect_text",
    "equivalence",
    "interval_from_summary",
    "mde",
    "normal_quantile",
    "pct",
    "seed_contrast",
    "sign_flip_pvalue",
    "t_cdf",
    "t_interval",
    "t_quantile",
    "verdict_label",
]

BANDS: dict[str, tuple[float, float]] = {"early": (-1.0, 0.2), "middle": (0.2, 0.8), "last": (0.8, 1.0)}
"""Depth bands of the paper as half-open intervals ``(lo, hi]`` of relative depth ``l / L``
(``lo < 0`` so that the embedding output, depth 0, belongs to the early band)."""

class Verdict(StrEnum):
    """Three-valued verdict of a claim (its string value is the word shown in tables)."""

    HOLDS = "holds"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"


# ==============================================================================================
# Decisions
# ==============================================================================================


@dataclass(frozen=True)
class Decision:
    """The verdict on one comparison and everything needed to judge it.

    Attributes:
        verdict: :class:`Verdict`.
        effect: The effect estimate.
        ci_low: Lower bound of its interval.
        ci_high: Upper bound.
        level: Confidence level.
        rule: The decision rule, in words.
        mde: Minimum detectable effect (see the module docstring).
        n: Number of units of replication.
        unit: What ``n`` counts.
        p: p-value of the test when there is one (NaN otherwise).
        key: Identity of the comparison; rows with the same key are one comparison (:func:`collapse`).
        sources: Paper headline ids this comparison stands for.
        paper: The paper's values it stands for.
        quantity: The quantity, in words.
        scale: What the threshold is relative to.
    """

    verdict: Verdict
    effect: float
    ci_low: float
    ci_high: float
    level: float
    rule: str
    mde: float
    n: int
    unit: str = "texts"
    p: float = float("nan")
    key: str = ""
    sources: tuple[str, ...] = field(default_factory=tuple)
    paper: tuple[str, ...] = field(default_factory=tuple)
    quantity: str = ""
    scale: str = ""

    def as_row(self) -> dict[str, Any]:
        """The decision as a flat dict (one table row); tuples joined with ``"; "``."""
        return {"key": self.key, "sources": "; ".join(self.sources), "quantity": self.quantity,
                "paper": "; ".join(self.paper), "effect": self.effect, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "level": self.level, "interval": effect_text(self), "mde": self.mde,
                "n": self.n, "unit": self.unit, "p": self.p, "verdict": verdict_label(self.verdict),
                "rule": self.rule, "scale": self.scale}


def pct(level: float) -> str:
    """A confidence level as a percentage: ``"95%"``, or ``"99.17%"`` for a Bonferroni level (never 100 %)."""
    text = f"{100 * level:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _fmt(x: float, digits: int) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}f}".replace("-", "−")


def _direction_verdict(low: float, high: float, side: int, threshold: float) -> Verdict:
    if not (math.isfinite(low) and math.isfinite(high)):
        return Verdict.INCONCLUSIVE
    above, below = low > threshold, high < threshold
    if above or below:
        return Verdict.HOLDS if (above if side > 0 else below) else Verdict.CONTRADICTED
    return Verdict.INCONCLUSIVE


def direction(
    interval: Interval,
    *,
    side: int = 1,
    threshold: float = 0.0,
    level: float | None = None,
) -> Decision:
    r"""Decide a directional claim "effect > threshold" (``side=+1``) or "effect < threshold" (``−1``).

    Rule: **holds** if the two-sided ``level`` interval lies entirely on the claimed side of
    ``threshold``, **contradicted** if entirely on the other side, else **inconclusive**. With a
    true effect equal to ``threshold`` the two false verdicts together have probability
    ``1 − level``. ``MDE`` is the interval's (:attr:`Interval.mde`).

    Args:
        interval: Effect and interval, e.g. from :func:`bootstrap_interval` (paired texts),
            :func:`t_interval` (seeds) or :func:`interval_from_summary`.
        side: ``+1`` or ``−1``.
        threshold: The value the claim compares with, on the effect's scale.
        level: Must equal ``interval.level`` when given (a guard against mixing levels).

    Returns:
        The :class:`Decision`.
    """
    if side not in (-1, 1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    if level is not None and abs(level - interval.level) > 1e-12:
        raise ValueError(f"the claim's level {level} differs from the interval's {interval.level}")
    verdict = _direction_verdict(interval.low, interval.high, side, threshold)
    rule = (f"holds if the {pct(interval.level)} interval ({interval.method}) lies entirely "
            f"{'above' if side > 0 else 'below'} {threshold:g}, contradicted if entirely on the other side")
    return Decision(verdict, interval.estimate, interval.low, interval.high, interval.level, rule, interval.mde,
                    interval.n, interval.unit, interval.p)


def equivalence(
    interval: Interval,
    *,
    margin: float,
    level: float | None = None,
) -> Decision:
    r"""Decide a "negligible" claim: ``|effect| < margin``.

    Rule: **holds** if the ``level`` interval lies inside ``(−margin, +margin)``, **contradicted** if
    it lies entirely outside (above ``+margin`` or below ``−margin``), else **inconclusive**. With a
    true effect exactly at ``±margin`` each false verdict has probability at most ``(1 − level)/2``,
    so together at most ``1 − level`` (the two one-sided tests of TOST at ``(1 − level)/2`` each).

    Args:
        interval: Effect and interval.
        margin: Equivalence margin ``> 0``, on the effect's scale (state the scale in the claim).
        level: Must equal ``interval.level`` when given.

    Returns:
        The :class:`Decision`; its MDE is the interval's (the precision of the estimate).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if level is not None and abs(level - interval.level) > 1e-12:
        raise ValueError(f"the claim's level {level} differs from the interval's {interval.level}")
    lo, hi = interval.low, interval.high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        verdict = Verdict.INCONCLUSIVE
    elif -margin < lo and hi < margin:
        verdict = Verdict.HOLDS
    elif lo > margin or hi < -margin:
        verdict = Verdict.CONTRADICTED
    else:
        verdict = Verdict.INCONCLUSIVE
    rule = (f"holds if the {pct(interval.level)} interval ({interval.method}) lies within ±{margin:g}, "
            "contradicted if it lies entirely outside")
    return Decision(verdict, interval.estimate, lo, hi, interval.level, rule, interval.mde, interval.n,
                    interval.unit, interval.p)


# ---- shapes over depth -------------------------------------------------------------------------------


def _band_mask(depth: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    lo, hi = band
    return (depth > lo) & (depth <= hi)


def _lag1(resid: np.ndarray) -> float:
    """Lag-1 autocorrelation ``Σ r_t r_{t+1} / Σ r_t²`` of zero-mean residuals."""
    denom = float(resid @ resid)
    if resid.size < 3 or denom == 0.0:
        return 0.0
    return float(resid[:-1] @ resid[1:]) / denom


def band_contrast(
    values: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    band: tuple[float, float] = BANDS["last"],
    reference: tuple[float, float] = BANDS["middle"],
    unit: str = "texts",
    statistic: str = "difference",
    estimate: Sequence[float] | np.ndarray | None = None,
    ci_low: Sequence[float] | np.ndarray | None = None,
    ci_high: Sequence[float] | np.ndarray | None = None,
    ci_level: float = 0.95,
    side: int = 1,
    threshold: float = 0.0,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Decision:
    r"""Decide a shape claim as a contrast between two depth bands ("spikes in the last layers").

    Bands are half-open ``(lo, hi]`` in relative depth (:data:`BANDS`). With ``B`` = mean over the
    layers of ``band`` and ``R`` = mean over the layers of ``reference``, the effect is
    ``B − R`` (``statistic="difference"``) or the relative contrast ``B / R − 1``
    (``statistic="ratio"``; scale-free). The claim "the band is higher" is ``side=+1``, with
    ``threshold`` on the effect's scale (e.g. ``0.2`` = 20 % above the reference for ``"ratio"``).
    The interval depends on ``unit``:

    * ``"texts"``: ``values`` is ``(N, L)`` per-text values (e.g. per-text cosine similarity of Base
      and SFT, or per-text relative shift); rows are resampled together (paired over texts,
      expanded percentile bootstrap as in :func:`bootstrap_interval`);
    * ``"replicates"``: ``values`` is ``(B, L)`` bootstrap replicates of a per-layer statistic made
      with the *same* resampled texts at every layer (e.g. the relative mean shift
      ``‖μ_SFT − μ_Base‖ / ‖μ_Base‖`` per layer, which is not a per-text mean); ``estimate`` ``(L,)``
      gives the point values; the interval is the percentile interval of the replicate contrasts;
    * ``"layers"``: ``values`` is ``(L,)``, one value per layer with no sampling replication (e.g.
      the relative weight change per block); the two bands are compared by a Welch t interval on
      ``log`` values for ``"ratio"`` (ratio of geometric means) or raw values for ``"difference"``,
      with each band's ``n`` replaced by the effective size ``n·(1 − ρ)/(1 + ρ)``, because
      neighbouring layers are not independent. ``ρ`` is a one-sided 80 % upper bound of the lag-1
      autocorrelation, ``ρ = ρ_c + z_{0.80}·√((1 − ρ_c²)/n)`` with ``ρ_c = ρ̂ + (1 + 3ρ̂)/n`` (the
      bias correction of ``ρ̂`` for an AR(1) series with an estimated mean, Kendall 1954), both
      clipped to ``[0, 0.95]``; ``ρ̂`` is the lag-1 autocorrelation of the residuals from the band
      means over the ``n`` layers of both bands in depth order. The upper bound (not ``ρ_c``
      itself) keeps the interval calibrated for smooth curves (AR(0.8) over 40 layers), at the
      price of wider intervals for rough ones;
    * ``"layer_cis"``: ``values`` is ``(L,)`` per-layer estimates with per-layer intervals
      ``ci_low``/``ci_high`` at ``ci_level`` (the analysis tables as they are: bootstrap CIs per
      layer, no replicates). ``se_l = (hi_l − lo_l) / (2 z_{(1+ci_level)/2})``. The covariances
      between layers are unknown, so the standard error of the contrast is bounded by the triangle
      inequality for standard deviations: ``SE(B) ≤ mean_band(se_l)``, ``SE(B − R) ≤ SE(B) + SE(R)``
      (for ``"ratio"``, first order: ``SE ≤ SE(B)/|R| + |B|·SE(R)/R²``); normal interval. Valid
      whatever the correlation between layers, conservative when it is positive (the usual case:
      the same texts feed every layer).

    Args:
        values: ``(N, L)``, ``(B, L)`` or ``(L,)`` as above.
        depth: Relative depth of every column, shape ``(L,)``.
        band: The band the claim is about.
        reference: The band it is compared with.
        unit: ``"texts"``, ``"replicates"``, ``"layers"`` or ``"layer_cis"``.
        statistic: ``"difference"`` or ``"ratio"``.
        estimate: Point values per layer for ``unit="replicates"``.
        ci_low: Per-layer lower bounds for ``unit="layer_cis"``, shape ``(L,)``.
        ci_high: Per-layer upper bounds for ``unit="layer_cis"``, shape ``(L,)``.
        ci_level: Level of ``ci_low``/``ci_high``.
        side: ``+1`` (band above reference) or ``−1``.
        threshold: Threshold on the effect's scale.
        level: Confidence level.
        n_boot: Bootstrap resamples for ``"texts"``.
        seed: Seed of the bootstrap.

    Returns:
        The :class:`Decision` (rule: :func:`direction` applied to the contrast's interval).
    """
    if statistic not in ("difference", "ratio"):
        raise ValueError(f"statistic must be 'difference' or 'ratio', got {statistic!r}")
    d = np.asarray(depth, dtype=float).reshape(-1)
    in_band, in_ref = _band_mask(d, band), _band_mask(d, reference)
    if not in_band.any() or not in_ref.any():
        raise ValueError(f"no layer in band {band} or reference {reference} for depths {d.min():.2f}..{d.max():.2f}")
    x = np.asarray(values, dtype=float)
    names = f"mean over depth {band[0]:g}–{band[1]:g} vs {reference[0]:g}–{reference[1]:g}"

    def contrast(bm: np.ndarray, rm: np.ndarray) -> np.ndarray:
        return bm - rm if statistic == "difference" else bm / rm - 1.0

    if unit in ("texts", "replicates"):
        if x.ndim != 2 or x.shape[1] != d.size:
            raise ValueError(f"values must be (rows, {d.size}) for unit={unit!r}, got {x.shape}")
        bm, rm = np.nanmean(x[:, in_band], axis=1), np.nanmean(x[:, in_ref], axis=1)
        keep = np.isfinite(bm) & np.isfinite(rm)
        bm, rm = bm[keep], rm[keep]
        n = int(bm.size)
        if unit == "texts":
            if n < 2:
                raise ValueError("need at least 2 texts")
            est = float(contrast(np.array(bm.mean()), np.array(rm.mean())))
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, n, size=(n_boot, n))
            reps = contrast(bm[idx].mean(axis=1), rm[idx].mean(axis=1))
            k, k_se = bootstrap_expansion(n, level), math.sqrt(n / (n - 1.0))
            method = f"paired expanded percentile bootstrap over texts ({n_boot} resamples, seed {seed})"
        else:
            if estimate is None:
                raise ValueError("unit='replicates' needs the point values per layer as estimate=")
            e = np.asarray(estimate, dtype=float).reshape(-1)
            est = float(contrast(np.array(np.nanmean(e[in_band])), np.array(np.nanmean(e[in_ref]))))
            reps, k, k_se = contrast(bm, rm), 1.0, 1.0
            method = f"percentile interval of {n} bootstrap replicates"
        q_lo, q_hi = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
        iv = Interval(est, est + k * (float(q_lo) - est), est + k * (float(q_hi) - est), level,
                      k_se * float(np.std(reps, ddof=1)), n, "texts", f"{names}; {method}")
    elif unit == "layers":
        if x.ndim != 1 or x.size != d.size:
            raise ValueError(f"values must be ({d.size},) for unit='layers', got {x.shape}")
        v = np.log(x) if statistic == "ratio" else x
        a, b = v[in_band], v[in_ref]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size < 2 or b.size < 2:
            raise ValueError("each band needs at least 2 finite layers for unit='layers'")
        order = np.argsort(d)
        resid = (v - np.where(in_band, a.mean(), np.where(in_ref, b.mean(), np.nan)))[order]
        resid = resid[np.isfinite(resid)]
        rho_hat = _lag1(resid)
        rho_c = min(max(rho_hat + (1.0 + 3.0 * rho_hat) / resid.size, 0.0), 0.95)
        rho = min(rho_c + normal_quantile(0.80) * math.sqrt((1.0 - rho_c**2) / resid.size), 0.95)
        shrink = (1.0 - rho) / (1.0 + rho)
        na, nb = max(a.size * shrink, 2.0), max(b.size * shrink, 2.0)
        va, vb = float(a.var(ddof=1)) / na, float(b.var(ddof=1)) / nb
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else float(na + nb - 2)
        diff = float(a.mean() - b.mean())
        half = t_quantile((1.0 + level) / 2.0, df) * se
        lo, hi = diff - half, diff + half
        if statistic == "ratio":  # back to the B/R − 1 scale (monotone, so the rule is unchanged)
            est, lo, hi, se = math.expm1(diff), math.expm1(lo), math.expm1(hi), math.exp(diff) * se
        else:
            est = diff
        iv = Interval(est, lo, hi, level, se, int(a.size + b.size), "layers",
                      f"{names}; Welch t over layers{' of log values' if statistic == 'ratio' else ''}, "
                      f"effective n ×{shrink:.2f} for lag-1 autocorrelation {rho:.2f}", df)
    elif unit == "layer_cis":
        if ci_low is None or ci_high is None:
            raise ValueError("unit='layer_cis' needs ci_low= and ci_high=")
        lo_l, hi_l = np.asarray(ci_low, dtype=float).reshape(-1), np.asarray(ci_high, dtype=float).reshape(-1)
        if not x.shape == lo_l.shape == hi_l.shape == d.shape:
            raise ValueError(f"values, ci_low, ci_high must all be ({d.size},), got {x.shape}, {lo_l.shape}, "
                             f"{hi_l.shape}")
        se_l = (hi_l - lo_l) / (2.0 * normal_quantile((1.0 + ci_level) / 2.0))
        ok = np.isfinite(x) & np.isfinite(se_l)
        if not (in_band & ok).any() or not (in_ref & ok).any():
            raise ValueError("each band needs a layer with a finite value and interval")
        bm, rm = float(np.mean(x[in_band & ok])), float(np.mean(x[in_ref & ok]))
        se_b, se_r = float(np.mean(se_l[in_band & ok])), float(np.mean(se_l[in_ref & ok]))
        if statistic == "difference":
            est, se = bm - rm, se_b + se_r
        else:
            est, se = bm / rm - 1.0, se_b / abs(rm) + abs(bm) * se_r / rm**2
        half = normal_quantile((1.0 + level) / 2.0) * se
        iv = Interval(est, est - half, est + half, level, se, int(np.sum((in_band | in_ref) & ok)), "layers",
                      f"{names}; normal interval with SE bounded from the per-layer intervals (any correlation)")
    else:
        raise ValueError(f"unit must be 'texts', 'replicates', 'layers' or 'layer_cis', got {unit!r}")
    return direction(iv, side=side, threshold=threshold)


# ---- curves over layers --------------------------------------------------------------------------------


def auto_knots(n_layers: int) -> int:
    """Interior knots of the depth spline for ``n_layers`` points: ``min(3, max(0, (n_layers − 8) // 8))``.

    0 (a plain cubic) below 16 layers, 1 from 16, 2 from 24, 3 from 32; so at least ``n − 7``
    residual degrees of freedom remain beyond the ``4 + knots`` spline coefficients.
    """
    return min(3, max(0, (n_layers - 8) // 8))


def _trend_projector(depth: np.ndarray, degree: int, knots: int) -> np.ndarray:
    r"""Residual-maker ``I − Q Qᵀ`` of the regression on a spline in depth.

    The basis is ``[1, z, …, z^degree]`` plus the truncated powers ``(z − κ_j)₊^degree`` at ``knots``
    interior knots ``κ_j`` placed at the ``j/(knots + 1)`` quantiles of ``z`` (a regression spline of
    degree ``degree``), with ``z`` = depth scaled to ``[−1, 1]``; ``Q`` is an orthonormal basis of its span.
    """
    span = float(depth.max() - depth.min())
    z = 2.0 * (depth - depth.min()) / (span if span > 0 else 1.0) - 1.0
    columns = [np.vander(z, degree + 1, increasing=True)]
    if knots > 0 and degree > 0:
        kappa = np.quantile(z, np.arange(1, knots + 1) / (knots + 1))
        columns.append(np.clip(z[:, None] - kappa[None, :], 0.0, None) ** degree)
    q, _ = np.linalg.qr(np.hstack(columns))
    return np.eye(depth.size) - q @ q.T


def _phase_surrogates(resid: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` series with the amplitude spectrum of ``resid`` and uniformly random phases, ``(n, L)``."""
    size = resid.size
    amp = np.abs(np.fft.rfft(resid))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, amp.size))
    phases[:, 0] = 0.0
    if size % 2 == 0:
        phases[:, -1] = 0.0
    return np.fft.irfft(amp * np.exp(1j * phases), n=size, axis=1)


def curve_correlation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray | None = None,
    *,
    side: int = 1,
    degree: int = 3,
    knots: int | None = None,
    surrogates: str = "phase",
    n_surrogates: int = 999,
    level: float = 0.95,
    seed: int = 0,
) -> Decision:
    r"""Decide "``x`` and ``y`` correlate over layers with sign ``side``" beyond their shared depth trend.

    1. Both curves are residualised on a regression spline in relative depth (cubic, with
       :func:`auto_knots` interior knots by default): ``x̃ = (I − P)x``, ``ỹ = (I − P)y`` with ``P``
       the projector on the spline basis. A straight line is not enough: two curves that both bend
       with depth (J shapes) keep a common residual shape after a linear fit, and after a plain
       cubic too when they bend sharply.
    2. ``r = corr(x̃, ỹ)`` (Pearson).
    3. Null: ``ỹ`` is replaced by ``n_surrogates`` surrogate curves that keep its smoothness —
       phase-randomised (same amplitude spectrum, random Fourier phases; default) or circularly
       shifted (``surrogates="circular"``, only ``L − 1`` distinct ones) — each residualised again;
       ``r_s = corr(x̃, ỹ_s)``; and symmetrically with surrogates of ``x̃`` against ``ỹ``. Each null
       gives a two-sided ``p = (1 + #{|r_s| ≥ |r|}) / (1 + n_surrogates)``; the reported ``p`` is
       the larger of the two, so the verdict does not depend on which curve is called ``x``.
    4. Interval: ``r ± Q_level(|r_s|)`` with the larger of the two null quantiles (the test
       inverted under a shift model), clipped to ``[−1, 1]``; so the interval excludes 0 exactly
       when ``|r|`` exceeds both null quantiles. ``SE`` = the larger null ``sd(r_s)``,
       ``MDE = (z_{(1+level)/2} + z_{0.8})·SE``.

    Calibration (simulated, 95 %): two independent AR(0.9) curves over 40 layers give a false
    verdict in about 6–7 % of trials (a linear detrend with the t-test: 39 %); two J shapes linked
    only by depth about 5 % (linear detrend: ~100 %). Phase randomisation of a short, strongly
    autocorrelated curve slightly understates the null spread, so treat a ``p`` just below
    ``1 − level`` on very smooth curves with care. Curves whose noise grows with their level
    (multiplicative noise on a J shape) should be passed on a log scale.

    Rule: **holds** if the interval excludes 0 with ``r`` of sign ``side``, **contradicted** if it
    excludes 0 with the opposite sign, else **inconclusive**.

    Args:
        x: First curve (e.g. relative weight change per block), shape ``(L,)``.
        y: Second curve (e.g. a metric per layer), shape ``(L,)``, aligned with ``x``.
        depth: Relative depth per point, shape ``(L,)``; default ``0, 1, …, L − 1`` (only the
            ordering and spacing matter).
        side: Claimed sign, ``+1`` or ``−1``.
        degree: Degree of the depth spline removed (``0`` = only the mean).
        knots: Interior knots of the spline; ``None`` = :func:`auto_knots` of the number of layers.
        surrogates: ``"phase"`` or ``"circular"``.
        n_surrogates: Number of phase-randomised surrogates (circular uses all ``L − 1`` shifts).
        level: Confidence level (the test's level is ``1 − level``).
        seed: Seed of the surrogates.

    Returns:
        The :class:`Decision` (``unit="layers"``, ``p`` set); inconclusive with NaNs when a residual
        curve is constant.
    """
    if side not in (-1, 1):
        raise ValueError(f"side must be +1 or -1, got {side}")
    check_level(level)
    xs, ys = np.asarray(x, dtype=float).reshape(-1), np.asarray(y, dtype=float).reshape(-1)
    ds = np.arange(xs.size, dtype=float) if depth is None else np.asarray(depth, dtype=float).reshape(-1)
    if not xs.size == ys.size == ds.size:
        raise ValueError(f"x, y and depth must have the same length, got {xs.size}, {ys.size}, {ds.size}")
    keep = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(ds)
    xs, ys, ds = xs[keep], ys[keep], ds[keep]
    order = np.argsort(ds, kind="stable")
    xs, ys, ds = xs[order], ys[order], ds[order]
    n = int(xs.size)
    k = auto_knots(n) if knots is None else int(knots)
    if n < degree + k + 4:
        raise ValueError(f"need at least degree + knots + 4 = {degree + k + 4} layers, got {n}")
    proj = _trend_projector(ds, degree, k)
    xr, yr = proj @ xs, proj @ ys
    nx, ny = float(np.linalg.norm(xr)), float(np.linalg.norm(yr))
    rule = (f"partial Pearson r over layers given a degree-{degree} spline with {k} knots in depth; holds if the "
            f"{pct(level)} interval (r ± the {pct(level)} quantile of |r| under {surrogates} surrogates of the "
            f"second curve) excludes 0 with sign {'+' if side > 0 else '−'}, contradicted if it excludes 0 "
            "with the other sign")
    if nx <= 1e-12 * max(1.0, float(np.abs(xs).max())) or ny <= 1e-12 * max(1.0, float(np.abs(ys).max())):
        return Decision(Verdict.INCONCLUSIVE, float("nan"), float("nan"), float("nan"), level, rule,
                        float("nan"), n, "layers")
    r = float(xr @ yr) / (nx * ny)
    rng = np.random.default_rng(seed)
    def null(fixed: np.ndarray, moved: np.ndarray, n_fixed: float) -> np.ndarray:
        """``corr(fixed, surrogate)`` for surrogates of ``moved``, each residualised again."""
        if surrogates == "phase":
            sur = _phase_surrogates(moved, n_surrogates, rng)
        elif surrogates == "circular":
            sur = np.stack([np.roll(moved, k) for k in range(1, n)])
        else:
            raise ValueError(f"surrogates must be 'phase' or 'circular', got {surrogates!r}")
        sur = sur @ proj.T
        norms = np.linalg.norm(sur, axis=1)
        return (sur @ fixed) / np.where(norms > 0, norms * n_fixed, np.inf)

    rs_y, rs_x = null(xr, yr, nx), null(yr, xr, ny)
    p = max(float((1 + np.sum(np.abs(rs) >= abs(r) - 1e-12)) / (1 + rs.size)) for rs in (rs_y, rs_x))
    half = max(float(np.quantile(np.abs(rs), level)) for rs in (rs_y, rs_x))
    lo, hi = max(-1.0, r - half), min(1.0, r + half)
    se = max(float(rs.std(ddof=1)) for rs in (rs_y, rs_x))
    verdict = _direction_verdict(lo, hi, side, 0.0)
    return Decision(verdict, r, lo, hi, level, rule, mde(se, level), n, "layers", p)


# ---- seeds ------------------------------------------------------------------------------------------


def seed_contrast(
    a_by_seed: Sequence[float] | np.ndarray,
    b_by_seed: Sequence[float] | np.ndarray,
    *,
    paired: bool = True,
    side: int = 1,
    threshold: float = 0.0,
    level: float = 0.95,
) -> Decision:
    r"""Decide "condition a beats condition b" over training seeds (e.g. LoRA mask 01000 vs 11111).

    The effect is ``mean_s(a_s − b_s)`` (paired by seed) or ``ā − b̄`` (``paired=False``, Welch), with
    the Student t interval of :func:`t_interval` — exact for normal seed noise even with 3 seeds,
    where a bootstrap would under-cover and a sign-flip test cannot reach p < 0.25. The exact sign-flip
    p-value is reported in ``p`` for paired data. Rule: :func:`direction` on that interval.

    Args:
        a_by_seed: Scores of condition a per seed, shape ``(S,)``.
        b_by_seed: Scores of condition b per seed, shape ``(S,)`` (same seeds in the same order when paired).
        paired: Whether seed ``s`` of a and of b share everything but the condition.
        side: ``+1`` (a above b by more than ``threshold``) or ``−1``.
        threshold: Threshold on the difference, in the score's unit.
        level: Confidence level.

    Returns:
        The :class:`Decision` (``unit="seeds"``).
    """
    iv = t_interval(a_by_seed, b_by_seed, paired=paired, level=level, unit="seeds")
    return direction(iv, side=side, threshold=threshold)


# ==============================================================================================
# Rows: collapse, summary, rendering
# ==============================================================================================


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def collapse(rows: Iterable[Decision]) -> list[Decision]:
    """Merge decisions on the same comparison (same ``key``) into one row listing every paper value.

    Several paper claims can map to one comparison on our pair (e.g. the best-middle LoRA masks of
    two paper models are the same mask here); they must not be counted twice. The merged row keeps
    the first row's numbers, the union of ``sources`` and ``paper`` (in order, without repeats).
    Rows without a key are kept as they are.

    Args:
        rows: Decisions, in display order.

    Returns:
        One decision per distinct key, in order of first appearance.

    Raises:
        ValueError: Two rows share a key but differ in verdict, effect or interval (then they are
            not the same comparison).
    """
    merged: dict[str, Decision] = {}
    out: list[Decision | str] = []
    for row in rows:
        if not row.key:
            out.append(row)
            continue
        if row.key not in merged:
            merged[row.key] = row
            out.append(row.key)
            continue
        first = merged[row.key]
        if (first.verdict != row.verdict or not _same(first.effect, row.effect) or not _same(first.ci_low, row.ci_low)
                or not _same(first.ci_high, row.ci_high)):
            raise ValueError(f"rows with key {row.key!r} differ; they are not the same comparison")
        merged[row.key] = replace(first, sources=tuple(dict.fromkeys(first.sources + row.sources)),
                                  paper=tuple(dict.fromkeys(first.paper + row.paper)))
    return [merged[r] if isinstance(r, str) else r for r in out]


def verdict_label(verdict: Verdict | str) -> str:
    """The verdict as a word: ``"holds"``, ``"contradicted"`` or ``"inconclusive"`` (never a tick or a cross)."""
    return Verdict(verdict).value


def effect_text(decision: Decision | Interval, digits: int = 3) -> str:
    """``"+0.012 [−0.003, +0.027] (95 %)"``: the effect, its interval and the level (``n/a`` where undefined)."""
    if isinstance(decision, Interval):
        est, lo, hi, level = decision.estimate, decision.low, decision.high, decision.level
    else:
        est, lo, hi, level = decision.effect, decision.ci_low, decision.ci_high, decision.level
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{_fmt(est, digits)} (no interval)"
    return f"{_fmt(est, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}] ({pct(level)})"
