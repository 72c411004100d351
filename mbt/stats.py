"""Statistics shared by every analysis: bootstrap intervals over samples and the incomplete beta function.

Imports no other ``mbt`` module and no torch at import time (a tensor is recognised by its ``detach``), so
the reproduction layer (:mod:`mbt.paper`) can use it without loading torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["betainc", "bootstrap_mean_ci"]


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray | Any,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of per-sample values with a percentile bootstrap confidence interval.

    Resamples the ``n`` finite values with replacement ``n_boot`` times (seeded, so the interval is
    reproducible) and takes the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the resampled
    means. NaN values (samples on which a metric is undefined) are dropped first.

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
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return mean, float(low), float(high)


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
