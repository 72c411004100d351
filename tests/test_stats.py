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


def test_betainc_closed_forms_and_the_t_tail():
    from mbt.stats import betainc

    for x in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert betainc(1.0, 1.0, x) == pytest.approx(x, abs=1e-12)  # uniform
        assert betainc(3.0, 1.0, x) == pytest.approx(x**3, abs=1e-12)
        assert betainc(1.0, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, abs=1e-12)
    assert betainc(4.2, 4.2, 0.5) == pytest.approx(0.5, abs=1e-12)  # symmetry
    # Student t with 2 degrees of freedom: P(|T| > 4.302653) = 0.05; closed form 1 - t / sqrt(2 + t^2)
    t = 4.302653
    assert betainc(1.0, 0.5, 2 / (2 + t * t)) == pytest.approx(0.05, abs=1e-6)
    assert betainc(1.0, 0.5, 2 / (2 + t * t)) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-12)


def test_stats_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, mbt.stats; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
