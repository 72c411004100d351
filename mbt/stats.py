"""Statistics shared by every analysis: bootstrap intervals over samples, Student's t and the incomplete beta function.

Imports no other ``mbt`` module and no torch at import time (a tensor is recognised by its ``detach``), so
the reproduction layer (:mod:`mbt.paper`) can use it without loading torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["betainc", "bootstrap_expansion", "bootstrap_mean_ci", "bootstrap_means", "t_cdf", "t_quantile"]


def bootstrap_means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement, seeded) of the ``n`` values ``x``, shape ``(n_boot,)``."""
    rng = np.random.default_rng(seed)
    return x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)


def bootstrap_expansion(n: int, level: float) -> float:
    r"""Hesterberg's expansion factor of the percentile interval, ``k = √(n/(n−1)) · t_{q, n−1} / z_q``.

    ``q = (1 + level)/2``. Widens the percentile interval for the plug-in variance and for the normal
    quantile it uses in place of Student's (``k = 1.017`` at ``n = 100``, ``1.062`` at ``n = 30``).
    """
    q = (1.0 + level) / 2.0
    return math.sqrt(n / (n - 1.0)) * t_quantile(q, float(n - 1)) / NormalDist().inv_cdf(q)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray | Any,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    r"""Mean of per-sample values with an expanded percentile bootstrap confidence interval.

    Resamples the ``n`` finite values with replacement ``n_boot`` times (seeded, so the interval is
    reproducible), takes the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles ``Q`` of the resampled
    means and widens them about the mean ``x̄`` by :func:`bootstrap_expansion` ``k``:
    ``[x̄ + k(Q_lo − x̄), x̄ + k(Q_hi − x̄)]`` (Hesterberg 2015). The plain percentile interval under-covers
    at small ``n`` and for skewed values (6.4 % false decisions at 95 % with 64 exponential values,
    ``scripts/calibrate_verdicts.py``). NaN values (samples on which a metric is undefined) are dropped
    first.

    Args:
        values: Per-sample values, shape ``(n,)``.
        n_boot: Number of bootstrap resamples; ``0`` returns the mean with NaN bounds.
        level: Confidence level in ``(0, 1)``.
        seed: Seed of the resampling generator.

    Returns:
        ``(mean, ci_low, ci_high)``; all NaN when no finite value remains, bounds NaN when ``n < 2``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    x = values.detach().cpu().double().numpy() if hasattr(values, "detach") else np.asarray(values, float)
    x = x.reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2 or n_boot == 0:
        return mean, float("nan"), float("nan")
    low, high = np.quantile(bootstrap_means(x, n_boot, seed), [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    k = bootstrap_expansion(int(x.size), level)
    return mean, mean + k * (float(low) - mean), mean + k * (float(high) - mean)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function ``I_x(a, b) = B(x; a, b) / B(a, b)`` for ``a, b > 0``, ``0 ≤ x ≤ 1``.

    Evaluated with Lentz's continued fraction on whichever of ``I_x(a, b)`` and ``1 − I_{1−x}(b, a)``
    converges faster. Student's t tail: ``P(|T_ν| > t) = I_{ν/(ν+t²)}(ν/2, 1/2)``.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


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
