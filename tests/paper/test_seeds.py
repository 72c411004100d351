"""LoRA over seeds × problems (mbt.paper.seeds): values by hand, calibration, and the MDE's power.

Calibration: 3 seeds × 200 problems with 0/1 scores; false verdicts at most α = 5 % plus three binomial
standard errors with normal seed noise and with a mask × problem interaction, at most 7 % (+ 3 SE)
with skewed seed noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import nulls as N
from mbt.paper import seeds as Sd
from mbt.paper import verdicts as V
from mbt.paper.verdicts import Verdict


def slack(reps: int, rate: float = 0.05) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def decided(decisions) -> float:
    return float(np.mean([d.verdict != Verdict.INCONCLUSIVE for d in decisions]))


def test_variance_components_by_hand():
    d = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 8.0]])
    vc = Sd.variance_components(d)
    grand, rows, cols = d.mean(), d.mean(1), d.mean(0)
    assert vc["ms_seed"] == pytest.approx(3 * np.sum((rows - grand) ** 2) / 1)
    assert vc["ms_problem"] == pytest.approx(2 * np.sum((cols - grand) ** 2) / 2)
    resid = d - rows[:, None] - cols[None, :] + grand
    assert vc["ms_resid"] == pytest.approx(np.sum(resid**2) / 2)
    with pytest.raises(ValueError, match="non-finite"):
        Sd.variance_components(np.array([[1.0, np.nan], [2.0, 3.0]]))


def test_crossed_interval_is_the_seed_t_interval_without_a_problem_effect():
    """Columns with equal means (no problem excess): the interval is the Student t over the seed means."""
    rng = np.random.default_rng(0)
    r = rng.normal(size=(4, 50))
    r -= r.mean(axis=0, keepdims=True)  # every problem mean is exactly 0 → MS_p = 0
    d = rng.normal(size=(4, 1)) + r
    iv = Sd.crossed_interval(d)
    ref = V.t_interval(d.mean(axis=1))
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((ref.estimate, ref.low, ref.high))
    assert iv.df == pytest.approx(3.0) and iv.unit == "seeds × problems" and iv.n == 4


def test_crossed_interval_is_the_problem_t_interval_without_seed_effects():
    """Rows with equal means and a problem effect: widened by t over P − 1 on the problem excess only."""
    rng = np.random.default_rng(1)
    p = rng.normal(size=(1, 40))
    r = 0.1 * rng.normal(size=(3, 40))
    r -= r.mean(axis=1, keepdims=True)
    d = p + r
    d -= d.mean(axis=1, keepdims=True) - d.mean()  # equal seed means → MS_s = 0
    vc = Sd.variance_components(d)
    iv = Sd.crossed_interval(d)
    se = math.sqrt((vc["ms_problem"] - vc["ms_resid"]) / d.size)
    assert iv.se == pytest.approx(se) and iv.high - iv.estimate == pytest.approx(V.t_quantile(0.975, 39) * se)
    assert iv.df == pytest.approx(39.0, rel=0.02)


def test_crossed_contrast_rows_and_one_seed():
    a = np.ones((3, 20)) * 0.6
    b = np.ones((3, 20)) * 0.3
    a[:, 0] += [0.01, -0.01, 0.02]
    d = Sd.crossed_contrast(a, b)
    assert d.verdict == Verdict.HOLDS and d.unit == "seeds × problems" and d.n == 3 and d.threshold == 0.0
    one = Sd.crossed_contrast(a[:1], b[:1])
    assert one.verdict == Verdict.INCONCLUSIVE and "at least 2" in one.rule
    with pytest.raises(ValueError, match="same"):
        Sd.crossed_contrast(a, b[:, :5])


@pytest.mark.parametrize(("seed", "label", "kw", "rate"), [
    (10, "normal seed noise", {}, 0.05),
    (11, "mask × problem interaction", {"interaction_sd": 1.0}, 0.05),
    (12, "skewed seed noise in one mask", {"skew": "a", "seed_sd": 0.1}, 0.07),
    (13, "skewed seed noise and interaction", {"skew": "a", "seed_sd": 0.05, "interaction_sd": 0.5}, 0.07),
])
def test_crossed_contrast_null_calibration(seed, label, kw, rate):
    reps = 600
    rng = np.random.default_rng(seed)
    a, b = N.lora_scores(rng, reps, n_seeds=3, n_problems=200, **kw)
    got = [Sd.crossed_contrast(a[i], b[i]) for i in range(reps)]
    assert decided(got) <= slack(reps, rate), (label, decided(got))


def test_a_t_over_seed_means_ignores_the_shared_problems():
    """The scenario has teeth: with a strong mask × problem interaction the seed t interval decides > 5 %."""
    reps = 1500
    rng = np.random.default_rng(5)
    a, b = N.lora_scores(rng, reps, n_seeds=3, n_problems=200, interaction_sd=1.5)
    old = [V.seed_contrast(a[i].mean(axis=1), b[i].mean(axis=1)) for i in range(reps)]
    assert decided(old) > 0.065, decided(old)


def test_crossed_mde_has_80_percent_power_when_seeds_dominate():
    """Gaussian d = δ + u_s + e_sp, σ_s = 0.03, σ_r = 0.01, 3 seeds × 50 problems: ν ≈ 2, and δ = the MDE
    computed from the true SE at that ν is found 80 % of the time."""
    reps, s, p = 4000, 3, 50
    rng = np.random.default_rng(6)
    true_se = math.sqrt(0.03**2 / s + 0.01**2 / (s * p))
    delta = V.t_noncentrality(2.0) * true_se
    d = delta + 0.03 * rng.normal(size=(reps, s, 1)) + 0.01 * rng.normal(size=(reps, s, p))
    got = [Sd.crossed_interval(d[i]) for i in range(reps)]
    power = float(np.mean([g.low > 0 or g.high < 0 for g in got]))
    assert abs(power - 0.80) <= 3 * math.sqrt(0.8 * 0.2 / reps) + 0.01, power
    assert np.median([g.df for g in got]) == pytest.approx(2.0, abs=0.1)
