"""Chapter 8's ladder with seeds (mbt.paper.signatures): exact ties, the shared-path null, the family of six.

Calibration: under no trend, "grows/shrinks" at most α = 5 % plus three binomial standard errors.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mbt.paper import nulls as N
from mbt.paper import signatures as sig
from mbt.paper.families import adjusted_pvalues

CANNOT = "cannot be told"
STRENGTH = np.array([0.007, 0.02, 0.04, 0.1, 0.2])


def slack(reps: int, rate: float = 0.05) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def _brute(x, y):
    """Spearman's ρ and p over all n! permutations, mid-ranks by hand."""
    def midrank(v):
        v = np.asarray(v, dtype=float)
        return np.array([np.sum(v < a) + (np.sum(v == a) + 1) / 2 for a in v])

    rx, ry = midrank(x), midrank(y)

    def rho(a, b):
        a, b = a - a.mean(), b - b.mean()
        return a @ b / math.sqrt((a @ a) * (b @ b))

    obs = rho(rx, ry)
    rs = [rho(rx, ry[list(p)]) for p in itertools.permutations(range(len(x)))]
    return obs, float(np.mean(np.abs(rs) >= abs(obs) - 1e-12))


@pytest.mark.parametrize(("x", "y"), [
    ([1, 1, 2, 2, 3, 3], [0.1, 0.5, 0.4, 0.9, 0.8, 1.2]),       # 3 rungs × 2 seeds
    ([1, 1, 2, 2, 3, 3, 4], [2, 2, 3, 5, 5, 7, 7]),              # ties in both
    ([1, 2, 3, 4, 5], [1, 1, 2, 2, 4]),                          # two tied pairs: p = 8/120
    ([1, 2, 3, 4, 5, 6, 7], [3, 1, 2, 7, 5, 6, 4]),
])
def test_spearman_exact_matches_brute_force(x, y):
    rho, p = sig.spearman_exact(x, y)
    b_rho, b_p = _brute(x, y)
    assert rho == pytest.approx(b_rho) and p == pytest.approx(b_p)


def test_spearman_exact_ties_and_seeds():
    assert sig.spearman_exact([1, 2, 3, 4, 5], [1, 1, 2, 2, 4])[1] == pytest.approx(8 / 120)
    rho, p = sig.spearman_exact(np.repeat([1, 2, 3, 4, 5], 2), np.arange(10.0))
    assert p == pytest.approx(2 / 113400)  # 10! / 2^5 distinct arrangements, two as extreme
    with pytest.raises(ValueError, match="arrangements"):
        sig.spearman_exact(np.arange(12.0), np.arange(12.0))


def test_a_drift_along_one_shared_path_is_not_a_trend():
    """The defect, reproduced: one seed, five rungs on one training path, a directionless random walk.

    Testing across the rungs as if independent calls it a trend far more than 5 % of the time; with the
    seed as the unit (the honest null) one seed can never tell."""
    reps = 2000
    rng = np.random.default_rng(0)
    v = N.ladder_values(rng, reps, n_rungs=5, n_seeds=1, shared_path=True, drift_sd=1.0, noise_sd=0.1)[:, :, 0]
    wrong = [sig.ladder_trend(row, STRENGTH, paths="independent")["trend"] != CANNOT for row in v]
    assert np.mean(wrong) > 0.08, np.mean(wrong)
    shared = [sig.ladder_trend(row, STRENGTH, paths="shared") for row in v[:50]]
    assert all(s["trend"] == CANNOT for s in shared) and "2/2^S" in shared[0]["rule"]


@pytest.mark.parametrize("levels", [None, 10])
def test_shared_paths_with_six_seeds_are_calibrated_and_have_power(levels):
    """Six seeds, each a random-walk path over five rungs (continuous, or rounded to a 10-layer grid)."""
    reps = 1000
    rng = np.random.default_rng(1 if levels is None else 2)
    v = N.ladder_values(rng, reps, n_rungs=5, n_seeds=6, shared_path=True, drift_sd=1.0, noise_sd=0.3,
                        levels=levels)
    x = np.repeat(STRENGTH, 6)
    labels = np.tile(np.arange(6), 5)
    got = [sig.ladder_trend(row.reshape(-1), x, paths="shared", seeds=labels)["trend"] for row in v]
    assert np.mean([g != CANNOT for g in got]) <= slack(reps)
    strong = N.ladder_values(rng, 200, n_rungs=5, n_seeds=6, shared_path=True, trend=6.0, drift_sd=0.5,
                             noise_sd=0.3, levels=levels)
    got = [sig.ladder_trend(row.reshape(-1), x, paths="shared", seeds=labels)["trend"] for row in strong]
    assert np.mean([g == "grows with SFT strength" for g in got]) >= 0.8


@pytest.mark.parametrize("levels", [None, 4])
def test_independent_runs_two_seeds_per_rung_calibrated_with_ties(levels):
    """Every (rung, seed) its own run, drift spread growing with the rung; discrete values give many ties."""
    reps = 800
    rng = np.random.default_rng(3 if levels is None else 4)
    v = N.ladder_values(rng, reps, n_rungs=5, n_seeds=2, shared_path=False, drift_sd=0.5, noise_sd=0.3,
                        levels=levels)
    x = np.repeat(STRENGTH, 2)
    got = [sig.ladder_trend(row.reshape(-1), x)["trend"] for row in v]
    assert np.mean([g != CANNOT for g in got]) <= slack(reps)
    strong = N.ladder_values(rng, 200, n_rungs=5, n_seeds=2, shared_path=False, trend=3.0, drift_sd=0.3,
                             noise_sd=0.3, levels=levels)
    got = [sig.ladder_trend(row.reshape(-1), x)["trend"] for row in strong]
    assert np.mean([g == "grows with SFT strength" for g in got]) >= 0.8


def test_the_six_signatures_are_one_family():
    """Six signatures with no trend (independent runs, 5 rungs × 2 seeds): Holm keeps any trend ≤ 5 %."""
    reps = 400
    rng = np.random.default_rng(5)
    x = np.repeat(STRENGTH, 2)
    v = N.ladder_values(rng, reps * 6, n_rungs=5, n_seeds=2, shared_path=False, drift_sd=0.5, noise_sd=0.3)
    p = np.array([sig.ladder_trend(row.reshape(-1), x)["p"] for row in v]).reshape(reps, 6)
    raw_any = np.mean((p <= 0.05).any(axis=1))
    holm_any = np.mean((np.apply_along_axis(adjusted_pvalues, 1, p, "holm") <= 0.05).any(axis=1))
    assert raw_any > 0.15  # uncorrected, one of six says "grows/shrinks" far too often
    assert holm_any <= slack(reps), holm_any


def test_ladder_trend_rules_and_missing_values():
    shared = sig.ladder_trend([1, 2, 3, 4, 5, 1, 2, 3, 4, 5], np.tile(STRENGTH, 2), paths="shared",
                              seeds=[0] * 5 + [1] * 5)
    assert shared["rho"] == pytest.approx(1.0) and shared["p"] == pytest.approx(0.5) and shared["seeds"] == 2
    assert shared["trend"] == CANNOT
    nan = sig.ladder_trend([1, math.nan], STRENGTH[:2])
    assert nan["trend"] == CANNOT and nan["n"] == 1
    with pytest.raises(ValueError, match="paths"):
        sig.ladder_trend([1, 2, 3], STRENGTH[:3], paths="nested")
