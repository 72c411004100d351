"""The simulated nulls (mbt.paper.nulls): each generator has the distribution its docstring states."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import nulls as N


def test_depth_grid_and_shapes():
    d = N.depth_grid(10)
    assert d[0] == pytest.approx(0.1) and d[-1] == 1.0 and d.size == 10
    assert N.shape("j", d)[-1] == pytest.approx(1.0) and N.shape("j", [0.5])[0] == pytest.approx(
        math.expm1(2.0) / math.expm1(4.0))
    assert N.shape("hinge", d).tolist() == pytest.approx([0] * 8 + [0.5, 1.0])
    assert N.shape("power", [0.5])[0] == pytest.approx(0.5**8)
    assert not N.shape("flat", d).any()
    with pytest.raises(ValueError, match="kind"):
        N.shape("bump", d)
    with pytest.raises(ValueError, match="n_layers"):
        N.depth_grid(1)


def test_ar1_is_stationary_with_the_stated_sd_and_autocorrelation():
    x = N.ar1(np.random.default_rng(0), (20000, 12), 0.9, sd=2.0)
    assert x[:, 0].std() == pytest.approx(2.0, rel=0.03) and x[:, -1].std() == pytest.approx(2.0, rel=0.03)
    assert np.corrcoef(x[:, 3], x[:, 4])[0, 1] == pytest.approx(0.9, abs=0.01)
    assert np.corrcoef(x[:, 3], x[:, 6])[0, 1] == pytest.approx(0.9**3, abs=0.015)
    with pytest.raises(ValueError, match="phi"):
        N.ar1(np.random.default_rng(0), (2, 3), 1.0)


def test_replicates_center_on_the_estimate_and_share_its_spread():
    rng = np.random.default_rng(1)
    truth = np.zeros((3000, 8))
    est, boot = N.replicates(rng, truth, n_boot=50, sd=0.5, phi=0.5)
    assert est.std() == pytest.approx(0.5, rel=0.03)
    dev = boot - est[:, None, :]
    assert dev.std() == pytest.approx(0.5, rel=0.02) and abs(dev.mean()) < 0.01
    eb, es, rb, rs = N.paired_replicates(rng, truth, truth + 1.0, n_boot=20, sd=0.5, rho=0.7)
    assert np.corrcoef(eb[:, 2], es[:, 2])[0, 1] == pytest.approx(0.7, abs=0.03)
    assert np.corrcoef((rb - eb[:, None])[:, :, 2].ravel(), (rs - es[:, None])[:, :, 2].ravel())[0, 1] == \
        pytest.approx(0.7, abs=0.02)
    assert (es - eb).mean() == pytest.approx(1.0, abs=0.02)


def test_random_smooth_curves_signs_and_trends():
    rng = np.random.default_rng(2)
    c = N.random_smooth_curves(rng, 4000, 10, kinds=("j",), noise=(1e-6, 2e-6))
    last = c[:, -1]
    assert np.mean(last > 0) == pytest.approx(0.5, abs=0.03) and np.allclose(np.abs(last), 1.0, atol=1e-4)
    t = N.random_smooth_curves(rng, 4000, 10, kinds=("ar",), noise=(1e-6, 2e-6), trend_sd=3.0)
    slope = (t[:, -1] - t[:, 0]) / 0.9
    assert np.std(slope) == pytest.approx(math.sqrt(9.0 + 2 * (1 - 0.9**9) / 0.81), rel=0.06)


def test_lora_scores_rates_and_effect():
    rng = np.random.default_rng(3)
    a, b = N.lora_scores(rng, 400, n_seeds=3, n_problems=200, effect=0.1, base_rate=0.3)
    assert a.shape == b.shape == (400, 3, 200) and set(np.unique(a)) <= {0.0, 1.0}
    assert (a.mean() - b.mean()) == pytest.approx(0.1, abs=0.01)
    a, b = N.lora_scores(rng, 2000, n_seeds=3, n_problems=400, seed_sd=0.1, skew="a")
    seed_a, seed_b = a.mean(axis=2) - a.mean(), b.mean(axis=2) - b.mean()  # per-seed accuracy
    skew = lambda v: float(np.mean(v**3) / np.mean(v**2) ** 1.5)  # noqa: E731
    assert skew(seed_a.ravel()) < -1.0 and abs(skew(seed_b.ravel())) < 0.2
    with pytest.raises(ValueError, match="skew"):
        N.lora_scores(rng, 2, n_seeds=2, n_problems=2, skew="yes")


def test_ladder_values_shared_paths_are_random_walks():
    rng = np.random.default_rng(4)
    v = N.ladder_values(rng, 20000, n_rungs=5, n_seeds=2, shared_path=True, drift_sd=1.0, noise_sd=0.0)
    assert np.allclose(v[:, 0, :], 0.0) and v[:, 4, 0].var() == pytest.approx(4.0, rel=0.05)
    assert np.corrcoef(v[:, 3, 0], v[:, 4, 0])[0, 1] == pytest.approx(math.sqrt(3 / 4), abs=0.02)
    w = N.ladder_values(rng, 20000, n_rungs=5, n_seeds=2, shared_path=False, drift_sd=1.0, noise_sd=0.0)
    assert w[:, 4, 0].var() == pytest.approx(4.0, rel=0.05) and abs(np.corrcoef(w[:, 3, 0], w[:, 4, 0])[0, 1]) < 0.03
    t = N.ladder_values(rng, 100, n_rungs=5, n_seeds=1, shared_path=False, trend=2.0, drift_sd=0.0,
                        noise_sd=0.0, levels=4)
    assert t[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
