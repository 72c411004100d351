"""Resampling statistics shared by every analysis: bootstrap confidence intervals over samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["bootstrap_mean_ci"]


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray | torch.Tensor,
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
    x = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
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
