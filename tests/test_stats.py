from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mbt.stats import bootstrap_mean_ci


def test_interval_matches_normal_theory_for_large_samples():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=4000)
    mean, low, high = bootstrap_mean_ci(x, n_boot=2000, seed=0)
    assert mean == pytest.approx(x.mean())
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < mean < high


def test_seeded_reproducible_and_nan_dropped():
    x = torch.tensor([1.0, 2.0, float("nan"), 4.0, 8.0])
    a = bootstrap_mean_ci(x, seed=3)
    assert a == bootstrap_mean_ci(x, seed=3)
    assert a[0] == pytest.approx(15.0 / 4)
    y = np.random.default_rng(0).normal(size=50)
    assert bootstrap_mean_ci(y, seed=3) != bootstrap_mean_ci(y, seed=4)


def test_degenerate_inputs():
    assert bootstrap_mean_ci([5.0, 5.0, 5.0]) == (5.0, 5.0, 5.0)
    mean, low, high = bootstrap_mean_ci([2.0])
    assert mean == 2.0 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in bootstrap_mean_ci([float("nan")]))
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci([1.0, 2.0], level=1.5)
