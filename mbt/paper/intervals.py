r"""Intervals and distributions behind every verdict: Student t, bootstrap, sign flips, the MDE.

Units of replication and their intervals (used by :mod:`mbt.paper.verdicts`):

* texts — expanded percentile bootstrap of the mean over texts (:func:`bootstrap_interval`, seeded), paired
  when two conditions were measured on the same texts;
* seeds — Student t interval over seeds (:func:`t_interval`, paired or Welch), because a bootstrap over 3
  seeds has at most 10 distinct resamples and badly under-covers; an exact sign-flip permutation p-value
  (:func:`sign_flip_pvalue`) is reported next to it;
* stored bounds — :func:`interval_from_summary` turns a table's ``ci_low``/``ci_high`` into an interval.

The **minimum detectable effect** (:func:`mde`) is the true effect that a two-sided test at ``level``
detects with 80 % power: ``(z_{(1+level)/2} + z_{0.80})·SE`` for a normal interval, and for a Student t
interval with ``ν`` degrees of freedom ``λ*·SE`` where ``λ*`` solves ``P(|T'_{ν,λ}| > t_{(1+level)/2, ν}) = 0.80``
with ``T'`` the noncentral t (:func:`noncentral_t_cdf`) — the power over repeated experiments, in which
the sample SD varies too (the sum ``t_q + t_{0.8}`` gives 77 % power at 2 df). The Student t
quantile is computed from the regularised incomplete beta function (:func:`mbt.stats.betainc`) and
bisection; the noncentral t by quadrature over the chi-square law of the SD. Numpy, pandas and the
standard library only.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from mbt.stats import betainc

POWER = 0.80
"""Power at which the minimum detectable effect is defined."""


# ==============================================================================================
# Distributions (no SciPy)
# ==============================================================================================


def t_cdf(t: float, df: float) -> float:
    r"""Cumulative distribution function of Student's t.

    ``F(t) = 1 − ½·I_{df/(df+t²)}(df/2, ½)`` for ``t ≥ 0`` and ``F(t) = 1 − F(−t)`` otherwise, with
    ``I`` the regularised incomplete beta function.

    Args:
        t: The point.
        df: Degrees of freedom, ``> 0`` (need not be an integer: Welch intervals use fractional df).

    Returns:
        ``P(T ≤ t)`` for ``T ~ t(df)``.
    """
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    r"""Quantile ``t_{p, df}`` of Student's t: the ``t`` with :func:`t_cdf` ``(t, df) = p``.

    Found by bracketing and bisection to ``1e-12`` relative precision (e.g. ``t_{0.975, 2} = 4.3027``,
    ``t_{0.975, 29} = 2.0452``).

    Args:
        p: Probability in ``(0, 1)``.
        df: Degrees of freedom, ``> 0``.

    Returns:
        The quantile (negative for ``p < 0.5``).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def normal_quantile(p: float) -> float:
    """Quantile of the standard normal distribution (``statistics.NormalDist``), e.g. 1.95996 at 0.975."""
    return NormalDist().inv_cdf(p)


def mde(se: float, level: float = 0.95, *, df: float | None = None, power: float = POWER) -> float:
    r"""Minimum detectable effect of a two-sided test at ``level`` with the given power.

    * normal interval (``df=None``): ``MDE = (z_{(1+level)/2} + z_{power}) · SE`` (``2.80·SE`` at 95 % and
      80 % power);
    * Student t interval with ``df`` degrees of freedom: ``MDE = λ*·SE`` with ``λ*`` the noncentrality at
      which the t test has that power, :func:`t_power` ``(λ*, df, level) = power`` (``λ* = 5.65`` at 2 df,
      ``2.95`` at 20 df, → ``2.80`` as ``df → ∞``). ``SE`` is then read as ``σ/√n`` with the true SD; the
      reported value uses the sample's SE in its place. ``df`` is rounded to 3 significant digits (a
      cache key: Welch and crossed intervals have fractional ``df``; the MDE changes by < 0.1 %).

    Args:
        se: Standard error of the effect estimate.
        level: Confidence level of the interval, in ``(0, 1)``.
        df: Degrees of freedom of a t interval; ``None`` for a normal (bootstrap) interval.
        power: Power in ``(0, 1)``.

    Returns:
        The MDE in the unit of the effect; NaN when ``se`` is not finite.
    """
    if not math.isfinite(se):
        return float("nan")
    if df is None:
        return (normal_quantile((1.0 + level) / 2.0) + normal_quantile(power)) * se
    return t_noncentrality(float(f"{df:.3g}"), level=level, power=power) * se


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, elementwise (``½·erfc(−x/√2)``)."""
    return 0.5 * _ERFC(-np.asarray(x, dtype=float) / math.sqrt(2.0))


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _trigamma(a: float) -> float:
    """``ψ'(a)`` by recurrence to ``a ≥ 6`` and the asymptotic series (relative error < 1e-8)."""
    out = 0.0
    while a < 6.0:
        out += 1.0 / (a * a)
        a += 1.0
    inv = 1.0 / a
    inv2 = inv * inv
    return out + inv + 0.5 * inv2 + inv * inv2 * (1.0 / 6.0 - inv2 * (1.0 / 30.0 - inv2 / 42.0))


@functools.lru_cache(maxsize=512)
def _chi_nodes(df: float, n_nodes: int = 801) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes ``s = √(V/ν)`` and weights of ``V ~ χ²_ν`` for quadrature, read-only arrays.

    With ``V = 2u`` and ``u = e^y``, ``y`` has the log-gamma density ``e^{a y − e^y}/Γ(a)``, ``a = ν/2``: smooth,
    unimodal, with an exponential left tail and a doubly exponential right tail, so the trapezoidal rule
    on a uniform grid in ``y`` converges geometrically. The grid spans the mode ``ln a`` ± enough standard
    deviations ``√ψ'(a)`` for both tails to fall below ``1e-17``; weights are normalised to sum to 1.
    """
    a = df / 2.0
    sd = math.sqrt(_trigamma(a))
    left = max(10.0, 40.0 / (a * sd))
    right = max(10.0, (math.log(a + 45.0 + 12.0 * math.sqrt(a)) - math.log(a)) / sd)
    y = math.log(a) + sd * np.linspace(-left, right, n_nodes)
    logw = a * y - np.exp(y)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    s = np.sqrt(2.0 * np.exp(y) / df)
    s.setflags(write=False)
    w.setflags(write=False)
    return s, w


def noncentral_t_cdf(t: float, df: float, nc: float) -> float:
    r"""CDF of the noncentral t distribution: ``P(T' ≤ t)`` for ``T' = (Z + λ)/√(V/ν)``.

    ``Z ~ N(0, 1)`` and ``V ~ χ²_ν`` independent, ``λ = nc``; ``P(T' ≤ t) = E_V[Φ(t·√(V/ν) − λ)]``, the
    expectation by quadrature over ``V`` (:func:`_chi_nodes`; absolute error below ``1e-9`` for
    ``ν ≥ 1``, ``|λ| ≤ 40``). ``nc = 0`` gives :func:`t_cdf`; ``P(T' ≤ 0) = Φ(−λ)`` for every ``ν``.

    Args:
        t: The point.
        df: Degrees of freedom ``ν > 0`` (fractional allowed).
        nc: Noncentrality ``λ``.

    Returns:
        The probability.
    """
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    s, w = _chi_nodes(float(df))
    return float(np.clip(w @ _norm_cdf(t * s - nc).astype(float), 0.0, 1.0))


def t_power(nc: float, df: float, *, level: float = 0.95) -> float:
    r"""Power of the two-sided t test at ``level``: ``P(|T'_{ν,λ}| > t_{(1+level)/2, ν})``.

    Args:
        nc: Noncentrality ``λ = effect / (σ/√n)`` (or effect ÷ the design's true SE).
        df: Degrees of freedom.
        level: Confidence level of the matching interval.

    Returns:
        The probability that the interval excludes 0.
    """
    c = t_quantile((1.0 + level) / 2.0, df)
    s, w = _chi_nodes(float(df))
    tail = _norm_cdf(-c * s + nc) + _norm_cdf(-c * s - nc)
    return float(w @ tail.astype(float))


@functools.lru_cache(maxsize=4096)
def t_noncentrality(df: float, *, level: float = 0.95, power: float = POWER) -> float:
    """The noncentrality ``λ*`` at which the two-sided t test at ``level`` has ``power`` (:func:`t_power`).

    Found by bisection to ``1e-10``; ``λ*(2) = 5.65``, ``λ*(∞) = z_{(1+level)/2} + z_{power}``.
    """
    check_level(level)
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    lo = 0.0
    hi = normal_quantile((1.0 + level) / 2.0) + normal_quantile(power)
    while t_power(hi, df, level=level) < power:
        lo, hi = hi, 2.0 * hi
        if hi > 1e6:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_power(mid, df, level=level) < power:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-10 * hi:
            break
    return 0.5 * (lo + hi)


def interval_pvalue(estimate: float, low: float, high: float, value: float, *, level: float,
                    df: float | None = None) -> float:
    r"""Two-sided p-value of ``H₀: effect = value`` read from a two-sided interval, consistent with it.

    The half of the interval on the side of ``value`` gives the standard error:
    ``SE = (estimate − low)/q`` when ``value ≤ estimate``, ``(high − estimate)/q`` otherwise, with
    ``q = z_{(1+level)/2}`` (or ``t_{(1+level)/2, df}``); ``p = 2·(1 − F(|estimate − value|/SE))`` with ``F``
    the normal (or Student t) CDF. Hence ``p < 1 − level`` exactly when ``value`` lies outside the
    interval, also for an asymmetric (percentile) interval. A zero-width half gives ``p = 0`` (``1`` when
    ``value = estimate``).

    Returns:
        The p-value; NaN when a bound is not finite.
    """
    check_level(level)
    if not all(math.isfinite(x) for x in (estimate, low, high, value)):
        return float("nan")
    half = (estimate - low) if value <= estimate else (high - estimate)
    gap = abs(estimate - value)
    if half <= 0.0:
        return 1.0 if gap == 0.0 else 0.0
    q = normal_quantile((1.0 + level) / 2.0) if df is None else t_quantile((1.0 + level) / 2.0, df)
    stat = gap / (half / q)
    if df is None:
        return float(min(1.0, 2.0 * (1.0 - NormalDist().cdf(stat))))
    return float(min(1.0, 2.0 * (1.0 - t_cdf(stat, df))))


# ==============================================================================================
# Intervals
# ==============================================================================================


@dataclass(frozen=True)
class Interval:
    """An effect estimate with its two-sided interval.

    Attributes:
        estimate: The effect.
        low: Lower bound.
        high: Upper bound.
        level: Confidence level.
        se: Standard error of the estimate (bootstrap SD, ``s/√n`` …).
        n: Number of units of replication.
        unit: What ``n`` counts (``"texts"``, ``"seeds"``, ``"layers"``).
        method: How the interval was made, in words.
        df: Degrees of freedom of a t interval (``None`` otherwise).
        p: A p-value that accompanies the interval (NaN when none).
    """

    estimate: float
    low: float
    high: float
    level: float
    se: float
    n: int
    unit: str = "texts"
    method: str = ""
    df: float | None = None
    p: float = float("nan")

    @property
    def mde(self) -> float:
        """Minimum detectable effect of this interval (see :func:`mde`)."""
        return mde(self.se, self.level, df=self.df)


def _finite(values: Any) -> np.ndarray:
    x = np.asarray(values, dtype=float).reshape(-1)
    return x[np.isfinite(x)]


def check_level(level: float) -> None:
    """Raise ``ValueError`` unless ``0 < level < 1``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_expansion(n: int, level: float) -> float:
    """Hesterberg's expansion of the percentile interval: ``√(n/(n−1)) · t_{q, n−1} / z_q``, ``q = (1+level)/2``."""
    q = (1.0 + level) / 2.0
    return math.sqrt(n / (n - 1.0)) * t_quantile(q, float(n - 1)) / normal_quantile(q)


def bootstrap_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray | None = None,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    unit: str = "texts",
) -> Interval:
    r"""Mean (paired difference) over texts with a percentile bootstrap interval.

    With ``b`` the per-text effect is ``d_i = a_i − b_i`` (paired: the same text under two
    conditions; pairs with a NaN are dropped), otherwise ``d_i = a_i``. The estimate is
    ``d̄ = mean_i d_i``; ``n_boot`` resamples of the ``n`` texts with replacement (seeded) give means
    ``d̄*``; the interval is the *expanded percentile* interval (Hesterberg 2015)
    ``d̄ + k·(Q_{(1∓level)/2}(d̄*) − d̄)`` with ``k = √(n/(n−1))·t_{q, n−1}/z_q``, ``q = (1+level)/2``:
    the percentile interval widened for the plug-in variance and for the normal-vs-t quantile that
    it misses at small ``n`` (``k = 1.017`` at ``n = 100``, ``1.062`` at ``n = 30``).
    ``SE = √(n/(n−1))·sd(d̄*)``.

    Args:
        a: Per-text values (or the first condition), shape ``(n,)``.
        b: Second condition on the same texts, shape ``(n,)``, or ``None``.
        level: Confidence level.
        n_boot: Number of bootstrap resamples (``≥ 100``).
        seed: Seed of the resampling.
        unit: Name of the unit of replication.

    Returns:
        The :class:`Interval`; bounds NaN when fewer than 2 texts remain.
    """
    check_level(level)
    if n_boot < 100:
        raise ValueError(f"n_boot must be >= 100, got {n_boot}")
    x = np.asarray(a, dtype=float).reshape(-1)
    if b is not None:
        y = np.asarray(b, dtype=float).reshape(-1)
        if y.shape != x.shape:
            raise ValueError(f"a and b must have the same length for a paired bootstrap, got {x.size} and {y.size}")
        x = x - y
    x = x[np.isfinite(x)]
    n = int(x.size)
    paired = ", paired" if b is not None else ""
    method = f"expanded percentile bootstrap over {unit} ({n_boot} resamples, seed {seed}){paired}"
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level, float("nan"), 0, unit, method)
    est = float(x.mean())
    if n < 2:
        return Interval(est, float("nan"), float("nan"), level, float("nan"), n, unit, method)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    k = bootstrap_expansion(n, level)
    q_lo, q_hi = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(est, est + k * (float(q_lo) - est), est + k * (float(q_hi) - est), level,
                    math.sqrt(n / (n - 1.0)) * float(means.std(ddof=1)), n, unit, method)


def t_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray | None = None,
    *,
    paired: bool = True,
    level: float = 0.95,
    unit: str = "seeds",
) -> Interval:
    r"""Mean (difference) over a few units with a Student t interval.

    * one sample or ``paired``: ``d_i = a_i − b_i``, ``d̄ ± t_{(1+level)/2, n−1}·s_d/√n``;
    * ``paired=False`` (Welch): ``ā − b̄ ± t_{(1+level)/2, ν}·√(s_a²/n_a + s_b²/n_b)`` with the
      Welch–Satterthwaite ``ν = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1))``.

    Exact under normal seed-to-seed noise, whatever ``n`` (``t_{0.975, 2} = 4.30`` for 3 seeds).

    Args:
        a: Values of the first condition per unit, shape ``(n_a,)``.
        b: Second condition, shape ``(n_b,)`` (``= n_a`` when paired), or ``None`` for one sample.
        paired: Whether ``a[i]`` and ``b[i]`` share unit ``i`` (e.g. the same seed).
        level: Confidence level.
        unit: Name of the unit of replication.

    Returns:
        The :class:`Interval` (``df`` set); for paired / one-sample data ``p`` is the exact
        sign-flip permutation p-value (:func:`sign_flip_pvalue`). Bounds NaN with fewer than 2 units
        (per group for Welch); a zero spread gives a zero-width interval.
    """
    check_level(level)
    x = np.asarray(a, dtype=float).reshape(-1)
    q = (1.0 + level) / 2.0
    if b is None or paired:
        if b is not None:
            y = np.asarray(b, dtype=float).reshape(-1)
            if y.shape != x.shape:
                raise ValueError(f"paired values must have the same length, got {x.size} and {y.size}")
            x = x - y
        x = x[np.isfinite(x)]
        n = int(x.size)
        method = f"Student t interval over {unit}" + (", paired" if b is not None else "")
        if n < 2:
            est = float(x.mean()) if n else float("nan")
            return Interval(est, float("nan"), float("nan"), level, float("nan"), n, unit, method)
        est, se, df = float(x.mean()), float(x.std(ddof=1)) / math.sqrt(n), float(n - 1)
        half = t_quantile(q, df) * se
        return Interval(est, est - half, est + half, level, se, n, unit, method, df, sign_flip_pvalue(x))
    xa, xb = _finite(a), _finite(b)
    na, nb = int(xa.size), int(xb.size)
    method = f"Welch t interval over {unit}"
    est = float(xa.mean() - xb.mean()) if na and nb else float("nan")
    if na < 2 or nb < 2:
        return Interval(est, float("nan"), float("nan"), level, float("nan"), na + nb, unit, method)
    va, vb = float(xa.var(ddof=1)) / na, float(xb.var(ddof=1)) / nb
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Interval(est, est, est, level, 0.0, na + nb, unit, method, float(na + nb - 2))
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = t_quantile(q, df) * se
    return Interval(est, est - half, est + half, level, se, na + nb, unit, method, df)


@functools.lru_cache(maxsize=32)
def _sign_patterns(n: int) -> np.ndarray:
    """All ``2ⁿ`` sign vectors, shape ``(2ⁿ, n)`` (read-only, cached)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    signs.setflags(write=False)
    return signs


def sign_flip_pvalue(d: Sequence[float] | np.ndarray, *, max_exact: int = 16) -> float:
    r"""Exact two-sided sign-flip permutation p-value for paired differences having mean 0.

    Under ``H₀`` (differences symmetric around 0) every sign pattern ``s ∈ {±1}ⁿ`` is equally likely;
    ``p = #{s : |Σ s_i d_i| ≥ |Σ d_i|} / 2ⁿ``. Its smallest value is ``2/2ⁿ`` (0.25 for 3 seeds: a
    sign-flip test alone can never reject with 3 seeds, hence the t interval).

    Args:
        d: Paired differences, shape ``(n,)``; NaNs dropped.
        max_exact: Largest ``n`` enumerated exactly (``2ⁿ`` patterns).

    Returns:
        The p-value; NaN for ``n = 0`` or ``n > max_exact``.
    """
    x = _finite(d)
    n = int(x.size)
    if n == 0 or n > max_exact:
        return float("nan")
    signs = _sign_patterns(n)
    stats = np.abs(signs @ x)
    observed = abs(float(x.sum()))
    return float(np.mean(stats >= observed - 1e-12 * max(1.0, observed)))


def interval_from_summary(
    estimate: float,
    low: float,
    high: float,
    *,
    level: float = 0.95,
    n: int = 0,
    unit: str = "texts",
    method: str = "interval given by the table",
) -> Interval:
    """An :class:`Interval` from a table's effect and bounds (e.g. a swap sweep's ``diff_ci_low/high``).

    The standard error is recovered as ``SE = (high − low) / (2·z_{(1+level)/2})`` (exact for a normal
    interval, approximate for a bootstrap one).
    """
    check_level(level)
    se = (float(high) - float(low)) / (2.0 * normal_quantile((1.0 + level) / 2.0))
    return Interval(float(estimate), float(low), float(high), level, se, int(n), unit, method)
