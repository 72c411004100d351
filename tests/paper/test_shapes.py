"""Scale-free shape claims (mbt.paper.shapes): values by hand, calibration at 10–40 layers, power.

Calibration: under no true effect, holds + contradicted at most α = 5 % plus three binomial standard errors
(``slack``); the J-shaped weight change of the paper's kind holds at least 80 % where stated.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import nulls as N
from mbt.paper import shapes as S
from mbt.paper import verdicts as V
from mbt.paper.verdicts import Decision, Verdict

DEPTHS = (10, 11, 16, 24, 40)


def slack(reps: int, rate: float = 0.05) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def decided(decisions) -> float:
    return float(np.mean([d.verdict != Verdict.INCONCLUSIVE for d in decisions]))


def holds(decisions) -> float:
    return float(np.mean([d.verdict == Verdict.HOLDS for d in decisions]))


def _d(verdict: Verdict, effect: float, lo: float, hi: float, p: float, level: float = 0.975) -> Decision:
    return Decision(verdict, effect, lo, hi, level, f"part {effect}", 0.1, 10, "texts", threshold=0.0, p_verdict=p)


def test_all_of_combines_parts():
    h1, h2 = _d(Verdict.HOLDS, 1.0, 0.5, 1.5, 0.001), _d(Verdict.HOLDS, 2.0, 1.0, 3.0, 0.01)
    both = S.all_of([h1, h2], "both")
    assert both.verdict == Verdict.HOLDS and both.effect == 1.0 and both.p_verdict == pytest.approx(0.02)
    assert "Bonferroni over 2" in both.rule and both.level == 0.975
    c = _d(Verdict.CONTRADICTED, -1.0, -1.5, -0.5, 0.004)
    mixed = S.all_of([h1, c], "mixed")
    assert mixed.verdict == Verdict.CONTRADICTED and mixed.effect == -1.0 and mixed.p_verdict == pytest.approx(0.008)
    i = _d(Verdict.INCONCLUSIVE, 0.1, -0.5, 0.7, 0.6)
    unsure = S.all_of([h1, i], "unsure")
    assert unsure.verdict == Verdict.INCONCLUSIVE and unsure.effect == 0.1 and unsure.p_verdict == 1.0
    with pytest.raises(ValueError):
        S.all_of([], "nothing")


def test_log_band_contrasts_by_hand_and_on_a_near_zero_denominator():
    """The old erank_peak ratio B/R − 1 had an interval of [−0.998, +563.8]; on the log scale it is finite."""
    rng = np.random.default_rng(1)
    d = N.depth_grid(10)
    log_truth = np.where((d > 0.2) & (d <= 0.8), 3.0, 0.0) + np.where(d > 0.8, -4.0, 0.0)  # middle peak, tiny last
    est, boot = N.replicates(rng, log_truth[None, :], n_boot=500, sd=0.3)
    values, reps = np.exp(est[0]), np.exp(boot[0])
    peak = S.middle_extremum(reps, d, estimate=values, kind="peak", n_texts=80)
    assert peak.verdict == Verdict.HOLDS and (peak.n, peak.unit) == (80, "texts")
    early = est[0][:2].mean()
    assert peak.effect == pytest.approx(est[0][2:8].mean() - early)
    assert all(math.isfinite(x) for x in (peak.ci_low, peak.ci_high)) and peak.ci_high - peak.ci_low < 5
    assert S.middle_extremum(reps, d, estimate=values, kind="trough").verdict == Verdict.CONTRADICTED
    boom = S.explosion(reps, d, estimate=values)
    assert boom.verdict == Verdict.CONTRADICTED and boom.effect == pytest.approx(est[0][8:].mean() - est[0][2:8].mean())
    with pytest.raises(ValueError, match="kind"):
        S.middle_extremum(reps, d, estimate=values, kind="hump")


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_middle_extremum_and_explosion_null_calibration(n_layers):
    """A metric flat over depth on the log scale (no peak, no trough, no explosion), AR(0.9) errors."""
    reps = 400
    rng = np.random.default_rng(20 + n_layers)
    d = N.depth_grid(n_layers)
    est, boot = N.replicates(rng, np.zeros((reps, n_layers)), n_boot=500, sd=0.05)
    v, b = np.exp(est), np.exp(boot)
    for kind in ("peak", "trough"):
        got = [S.middle_extremum(b[i], d, estimate=v[i], kind=kind) for i in range(reps)]
        assert decided(got) <= slack(reps), (kind, decided(got))
    got = [S.explosion(b[i], d, estimate=v[i]) for i in range(reps)]
    assert decided(got) <= slack(reps), decided(got)


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_middle_extremum_power_for_a_condition_number_trough(n_layers):
    """Condition number falling 3× from the early layers into the middle and rising 3× in the last band."""
    reps = 100
    rng = np.random.default_rng(30 + n_layers)
    d = N.depth_grid(n_layers)
    log_truth = np.log(3.0) * ((d <= 0.2) + (d > 0.8)).astype(float)
    est, boot = N.replicates(rng, np.broadcast_to(log_truth, (reps, n_layers)).copy(), n_boot=300, sd=0.1)
    got = [S.middle_extremum(np.exp(boot[i]), d, estimate=np.exp(est[i]), kind="trough") for i in range(reps)]
    assert holds(got) >= 0.8, holds(got)


# ---------------------------------------------------------------------------------------------
# the J shape of the weight change


def test_final_peak_by_hand():
    d = N.depth_grid(10)
    c = np.exp(np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 0.0, 1.0]))
    got = S.final_peak(c, d)
    lv = np.log(c)
    d2 = (lv[2:] - 2 * lv[1:-1] + lv[:-2])[:-1]
    se = math.sqrt(np.mean(d2**2) / 2)
    assert got.effect == pytest.approx(1.0)
    assert got.ci_high - got.effect == pytest.approx(V.t_quantile(0.975, 7 / 3) * se)
    assert got.verdict == Verdict.HOLDS and got.threshold == 0.0
    # the step is up but an earlier block is larger: not a peak at the final block
    bump = np.exp(np.array([0.0, 0.3, 0.6, 0.9, 1.2, 1.0, 0.8, 0.6, 0.5, 1.1]))
    assert S.final_peak(bump, d).ci_low > 0
    bumped = S.final_peak(bump, d)
    assert bumped.verdict == Verdict.INCONCLUSIVE and "block 5 is larger" in bumped.rule
    assert S.final_peak(np.r_[c[:-1], math.exp(-1.5)], d).verdict == Verdict.CONTRADICTED
    with pytest.raises(ValueError, match="positive"):
        S.final_peak(-c, d)


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_weight_j_parts_null_calibration(n_layers):
    """No J: weight change flat over depth with multiplicative AR(φ) noise, φ = 0, 0.5, 0.9."""
    reps = 300
    rng = np.random.default_rng(40 + n_layers)
    d = N.depth_grid(n_layers)
    for phi in (0.0, 0.5, 0.9):
        w = 0.01 * np.exp(0.2 * N.ar1(rng, (reps, n_layers), phi))
        got = [S.weight_j(w[i], d) for i in range(reps)]
        for part in ("final_peak", "last_above_middle"):
            assert decided([g[part] for g in got]) <= slack(reps), (phi, part)
        # the whole J is false here ("small early" is rightly contradicted): it must not hold
        assert holds([g["all"] for g in got]) <= slack(reps), phi
        # "small early" at its threshold: the first half exactly half the last band's geometric mean
        half = w * np.exp(math.log(0.5) * (d <= 0.5))
        early = [S.small_early(half[i], d) for i in range(reps)]
        assert decided(early) <= slack(reps), (phi, decided(early))


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_weight_j_power(n_layers):
    """The paper's J: 0.01 + 0.1·J(d) (small early, peak > 0.10 at the last block), 5 % AR(0.9) noise."""
    reps = 100
    rng = np.random.default_rng(60 + n_layers)
    d = N.depth_grid(n_layers)
    w = (0.01 + 0.1 * N.shape("j", d)) * np.exp(0.05 * N.ar1(rng, (reps, n_layers), 0.9))
    got = [S.weight_j(w[i], d) for i in range(reps)]
    assert holds([g["small_early"] for g in got]) >= 0.8
    assert holds([g["last_above_middle"] for g in got]) >= 0.8
    assert holds([g["all"] for g in got]) >= 0.8, holds([g["all"] for g in got])
