"""The verdict engine: oracle values, exact small cases, and calibration by simulation.

Calibration (every decision function): with no true effect, "holds" + "contradicted" must come out at
most at 5 % plus Monte-Carlo slack (three binomial standard deviations of the replicate count); with
an effect of the paper's size at a realistic sample size, "holds" at least 80 % of the time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import verdicts as v
from mbt.paper.verdicts import Decision, Interval, Verdict

LEVEL = 0.95


def slack(replicates: int, rate: float = 1 - LEVEL) -> float:
    """Largest false-verdict rate accepted: the nominal rate + 3 binomial SDs of the estimate."""
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / replicates)


def false_rate(decisions: list[Decision]) -> float:
    return float(np.mean([d.verdict != Verdict.INCONCLUSIVE for d in decisions]))


def holds_rate(decisions: list[Decision]) -> float:
    return float(np.mean([d.verdict == Verdict.HOLDS for d in decisions]))


def ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, burn: int = 50) -> np.ndarray:
    """AR(1) series along the last axis with unit innovations (vectorised over the leading axes)."""
    e = rng.normal(size=shape[:-1] + (shape[-1] + burn,))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for t in range(1, e.shape[-1]):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x[..., burn:]


# ---------------------------------------------------------------------------------------------
# distributions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 2, 4.3027), (0.975, 4, 2.7764), (0.975, 29, 2.0452), (0.95, 10, 1.8125), (0.995, 1, 63.6567),
     (0.8, 2, 1.0607), (0.975, 1e7, 1.95996)],
)
def test_t_quantile_table_values(p, df, expected):
    assert v.t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert v.t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-4)
    assert v.t_cdf(v.t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


def test_t_cdf_closed_forms():
    # df = 1 is Cauchy: F(t) = 1/2 + atan(t)/π; df = 2: F(t) = 1/2 + t / (2·sqrt(2 + t²))
    for t in (-3.0, -0.5, 0.0, 0.7, 5.0):
        assert v.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert v.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    with pytest.raises(ValueError):
        v.t_quantile(1.0, 3)


def test_normal_quantile_and_mde():
    assert v.normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert v.mde(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    # noncentral t at 2 df (the power is checked by simulation in tests/paper/test_intervals_noncentral.py)
    assert v.mde(0.5, df=2) == pytest.approx(0.5 * 5.6535, abs=1e-3)
    assert math.isnan(v.mde(float("nan")))


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------


def test_t_interval_one_sample_and_paired():
    iv = v.t_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)  # sd = 1
    assert (iv.estimate, iv.df, iv.n) == (2.0, 2.0, 3)
    assert (iv.low, iv.high) == pytest.approx((2 - half, 2 + half), abs=1e-6)
    assert iv.se == pytest.approx(1 / math.sqrt(3))
    assert iv.p == pytest.approx(0.25)  # sign flips of (1, 2, 3): only ±(1, 2, 3) reach |6|
    paired = v.t_interval([1.5, 2.5, 3.5], [0.5, 0.5, 0.5])
    assert (paired.estimate, paired.low, paired.high) == pytest.approx((iv.estimate, iv.low, iv.high))


def test_t_interval_welch():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 9.0])
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    iv = v.t_interval(a, b, paired=False)
    assert iv.estimate == pytest.approx(2.5 - 5.0)
    assert iv.df == pytest.approx(df)
    assert iv.high - iv.estimate == pytest.approx(v.t_quantile(0.975, df) * math.sqrt(va + vb))


def test_sign_flip_pvalue_exact():
    assert v.sign_flip_pvalue([1.0, 2.0, 4.0]) == pytest.approx(2 / 8)
    assert v.sign_flip_pvalue([1.0] * 5) == pytest.approx(2 / 32)
    assert v.sign_flip_pvalue([1.0, -1.0]) == pytest.approx(1.0)
    # (3, 1, −1): observed |3| ; |±3 ±1 ±1| ≥ 3 for the 4 patterns with +3 and −1 −1 … count by hand:
    # sums 5, 3, 3, 1, −1, −3, −3, −5 → |·| ≥ 3 in 6 of 8
    assert v.sign_flip_pvalue([3.0, 1.0, -1.0]) == pytest.approx(6 / 8)


def test_bootstrap_interval_matches_normal_theory_and_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(0.3, 1.0, 400)
    b = a - 0.1 + rng.normal(0, 0.05, 400)
    iv = v.bootstrap_interval(a, b, n_boot=4000, seed=1)
    d = a - b
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert iv.estimate == pytest.approx(d.mean())
    assert iv.se == pytest.approx(se, rel=0.06)
    assert iv.low == pytest.approx(d.mean() - 1.96 * se, abs=0.25 * se)
    assert iv.high == pytest.approx(d.mean() + 1.96 * se, abs=0.25 * se)
    assert iv.mde == pytest.approx(2.8016 * iv.se, rel=1e-4)
    # NaN pairs are dropped, a single value has no interval
    with_nan = v.bootstrap_interval([1.0, float("nan"), 3.0], [0.0, 0.0, 1.0])
    assert with_nan.n == 2 and with_nan.estimate == pytest.approx(1.5)
    assert math.isnan(v.bootstrap_interval([2.0]).low)


def test_interval_from_summary_recovers_se():
    iv = v.interval_from_summary(0.01, 0.01 - 1.959964 * 0.002, 0.01 + 1.959964 * 0.002, n=100)
    assert iv.se == pytest.approx(0.002, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# decision rules on hand-made intervals
# ---------------------------------------------------------------------------------------------


def _iv(est: float, lo: float, hi: float) -> Interval:
    return Interval(est, lo, hi, LEVEL, (hi - lo) / 3.92, 10)


@pytest.mark.parametrize(
    ("lo", "hi", "side", "threshold", "expected"),
    [(0.1, 0.3, 1, 0.0, Verdict.HOLDS), (0.1, 0.3, -1, 0.0, Verdict.CONTRADICTED),
     (-0.1, 0.3, 1, 0.0, Verdict.INCONCLUSIVE), (0.1, 0.3, 1, 0.2, Verdict.INCONCLUSIVE),
     (0.1, 0.3, 1, 0.05, Verdict.HOLDS), (0.1, 0.3, -1, 0.35, Verdict.HOLDS),
     (float("nan"), float("nan"), 1, 0.0, Verdict.INCONCLUSIVE)],
)
def test_direction_rule(lo, hi, side, threshold, expected):
    d = v.direction(_iv(0.2, lo, hi), side=side, threshold=threshold)
    assert d.verdict == expected
    assert d.effect == 0.2 and (d.ci_low, d.ci_high) == (lo, hi) or math.isnan(lo)
    assert "interval" in d.rule


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [(-0.005, 0.005, Verdict.HOLDS), (0.02, 0.03, Verdict.CONTRADICTED), (-0.03, -0.02, Verdict.CONTRADICTED),
     (0.005, 0.02, Verdict.INCONCLUSIVE), (-0.02, 0.02, Verdict.INCONCLUSIVE)],
)
def test_equivalence_rule(lo, hi, expected):
    assert v.equivalence(_iv((lo + hi) / 2, lo, hi), margin=0.01).verdict == expected


def test_direction_refuses_mixed_levels():
    with pytest.raises(ValueError):
        v.direction(_iv(0.2, 0.1, 0.3), level=0.9)


# ---------------------------------------------------------------------------------------------
# band contrasts: exact values
# ---------------------------------------------------------------------------------------------

DEPTH10 = np.arange(1, 11) / 10  # layers 1..10 of 10: middle = 3..8, last = 9, 10


def test_band_contrast_texts_effect():
    x = np.tile(np.arange(1.0, 11.0), (5, 1)) + np.arange(5)[:, None]  # row i: layer value l + i
    d = v.band_contrast(x, DEPTH10, n_boot=200)
    # last band mean: 9.5 + i; middle (depth 0.3..0.8): 5.5 + i → difference 4 on every row
    assert d.effect == pytest.approx(4.0)
    assert (d.ci_low, d.ci_high) == pytest.approx((4.0, 4.0))
    assert d.verdict == Verdict.HOLDS and d.n == 5
    r = v.band_contrast(x, DEPTH10, statistic="ratio", n_boot=200)
    assert r.effect == pytest.approx((9.5 + 2) / (5.5 + 2) - 1)


def test_band_contrast_replicates_interval():
    rng = np.random.default_rng(3)
    reps = rng.normal(size=(500, 10)) + np.arange(10)
    est = np.arange(10.0)
    d = v.band_contrast(reps, DEPTH10, unit="replicates", estimate=est)
    contrasts = reps[:, 8:].mean(axis=1) - reps[:, 2:8].mean(axis=1)
    assert d.effect == pytest.approx(8.5 - 4.5)
    assert (d.ci_low, d.ci_high) == pytest.approx(tuple(np.quantile(contrasts, [0.025, 0.975])))
    with pytest.raises(ValueError):
        v.band_contrast(reps, DEPTH10, unit="replicates")


def test_band_contrast_layers_ratio_of_geometric_means():
    w = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 6.0, 6.0]) * np.exp(np.tile([0.01, -0.01], 5))
    d = v.band_contrast(w, DEPTH10, unit="layers", statistic="ratio")
    expected = math.exp(np.log(w[8:]).mean() - np.log(w[2:8]).mean()) - 1
    assert d.effect == pytest.approx(expected)
    assert d.verdict == Verdict.HOLDS and d.unit == "layers" and d.ci_low > 1.5
    with pytest.raises(ValueError):
        v.band_contrast(w, DEPTH10, band=(1.0, 2.0))


def test_band_contrast_layer_cis_bound():
    est = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0, 5.0])
    se = np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.2, 0.4])
    z = 1.959964
    d = v.band_contrast(est, DEPTH10, unit="layer_cis", ci_low=est - z * se, ci_high=est + z * se)
    bound = 0.3 + 0.2  # mean SE of the last band + mean SE of the middle band
    assert d.effect == pytest.approx(4.0 - 2.0)
    assert (d.ci_low, d.ci_high) == pytest.approx((2.0 - z * bound, 2.0 + z * bound), abs=1e-5)
    r = v.band_contrast(est, DEPTH10, unit="layer_cis", statistic="ratio", ci_low=est - z * se, ci_high=est + z * se)
    assert r.effect == pytest.approx(1.0)
    assert r.ci_high - r.effect == pytest.approx(z * (0.3 / 2 + 4 * 0.2 / 4), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# curve correlation: exact values
# ---------------------------------------------------------------------------------------------


def test_curve_correlation_removes_any_cubic_trend():
    rng = np.random.default_rng(4)
    depth = np.arange(1, 25) / 24
    s = rng.normal(size=24)
    x = 5 * depth**3 - 2 * depth + s
    y = -(depth**2) + 40 * depth**3 + s  # same residual, different cubic trends
    d = v.curve_correlation(x, y, depth, knots=0, n_surrogates=199)
    assert d.effect == pytest.approx(1.0)
    assert d.verdict == Verdict.HOLDS and d.p == pytest.approx(1 / 200)
    neg = v.curve_correlation(x, 3 * depth - s, depth, knots=0, n_surrogates=199)
    assert neg.effect == pytest.approx(-1.0) and neg.verdict == Verdict.CONTRADICTED


def test_curve_correlation_equals_partial_pearson_given_spline():
    rng = np.random.default_rng(5)
    depth = np.arange(1, 41) / 40
    x, y = rng.normal(size=40), rng.normal(size=40)
    z = 2 * (depth - depth.min()) / (depth.max() - depth.min()) - 1
    kappa = np.quantile(z, [0.25, 0.5, 0.75])
    basis = np.hstack([np.vander(z, 4, increasing=True), np.clip(z[:, None] - kappa, 0, None) ** 3])
    rx = x - basis @ np.linalg.lstsq(basis, x, rcond=None)[0]
    ry = y - basis @ np.linalg.lstsq(basis, y, rcond=None)[0]
    d = v.curve_correlation(x, y, depth, n_surrogates=99)
    assert v.auto_knots(40) == 3
    assert d.effect == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-10)
    assert d.ci_low <= d.effect <= d.ci_high and d.n == 40 and 0 < d.p <= 1


def test_curve_correlation_circular_pvalue_counts_shifts():
    depth = np.arange(20) / 20.0
    x = np.sin(2 * np.pi * 3 * depth)
    d = v.curve_correlation(x, x, depth, degree=0, knots=0, surrogates="circular")
    shifts = np.array([np.corrcoef(x, np.roll(x, k))[0, 1] for k in range(1, 20)])
    assert d.p == pytest.approx((1 + np.sum(np.abs(shifts) >= 1 - 1e-9)) / 20)


# ---------------------------------------------------------------------------------------------
# seeds
# ---------------------------------------------------------------------------------------------


def test_seed_contrast_values():
    a, b = [0.37, 0.38, 0.375], [0.28, 0.285, 0.275]
    d = v.seed_contrast(a, b)
    diff = np.subtract(a, b)
    half = 4.302653 * diff.std(ddof=1) / math.sqrt(3)
    assert d.effect == pytest.approx(diff.mean())
    assert (d.ci_low, d.ci_high) == pytest.approx((diff.mean() - half, diff.mean() + half), abs=1e-6)
    assert d.verdict == Verdict.HOLDS and d.unit == "seeds" and d.p == pytest.approx(0.25)
    assert v.seed_contrast(a, b, side=-1).verdict == Verdict.CONTRADICTED
    # one seed: no interval, never a verdict
    assert v.seed_contrast([0.4], [0.2]).verdict == Verdict.INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# calibration: no effect → at most 5 % false verdicts; paper-size effect → holds ≥ 80 %
# ---------------------------------------------------------------------------------------------


def test_calibration_direction_bootstrap_over_texts():
    # per-text paired differences of token accuracy, heavy-tailed (t₅), n = 100 texts
    reps, n = 500, 100
    rng = np.random.default_rng(10)
    null = 0.008 * rng.standard_t(5, size=(reps, n))
    decisions = [v.direction(v.bootstrap_interval(row, n_boot=1000, seed=i)) for i, row in enumerate(null)]
    assert false_rate(decisions) <= slack(reps)
    # the paper's swap_middle effect (+0.003) with a per-text SD of 0.008
    effect = 0.003 + 0.008 * rng.normal(size=(200, n))
    decisions = [v.direction(v.bootstrap_interval(row, n_boot=1000, seed=i)) for i, row in enumerate(effect)]
    assert holds_rate(decisions) >= 0.8


def test_calibration_equivalence():
    reps, n, margin = 500, 100, 0.005
    rng = np.random.default_rng(11)
    # no effect for a "negligible" claim = a true effect exactly at the margin (either side)
    at_margin = margin * np.where(np.arange(reps) % 2 == 0, 1, -1)[:, None] + 0.008 * rng.normal(size=(reps, n))
    decisions = [v.equivalence(v.bootstrap_interval(row, n_boot=1000, seed=i), margin=margin)
                 for i, row in enumerate(at_margin)]
    assert false_rate(decisions) <= slack(reps)
    # the paper's swap_first change (−0.001), margin of half an accuracy point
    paper = -0.001 + 0.008 * rng.normal(size=(200, n))
    decisions = [v.equivalence(v.bootstrap_interval(row, n_boot=1000, seed=i), margin=margin)
                 for i, row in enumerate(paper)]
    assert holds_rate(decisions) >= 0.8


def test_calibration_seed_contrast():
    # 3 seeds; per-seed GSM8K accuracy noise SD 0.02 per mask (binomial on ~500 problems + training)
    reps, seeds = 1000, 3
    rng = np.random.default_rng(12)
    base = 0.28 + 0.02 * rng.normal(size=(reps, seeds))
    other = 0.28 + 0.02 * rng.normal(size=(reps, seeds))
    assert false_rate([v.seed_contrast(a, b) for a, b in zip(other, base, strict=True)]) <= slack(reps)
    assert false_rate([v.seed_contrast(a, b, paired=False) for a, b in zip(other, base, strict=True)]) <= slack(reps)
    # the paper's Mid-Block gain on OLMo2-7B: 0.375 vs 0.28
    better = other + 0.095
    assert holds_rate([v.seed_contrast(a, b) for a, b in zip(better, base, strict=True)]) >= 0.8


def test_calibration_band_contrast_texts():
    # per-text cosine similarity over 32 layers: a text effect + AR(0.7) layer noise, flat in depth
    reps, n, L = 400, 100, 32
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(13)
    x = 0.9 + 0.05 * rng.normal(size=(reps, n, 1)) + 0.02 * ar1(rng, (reps, n, L), 0.7)
    decisions = [v.band_contrast(x[i], depth, side=-1, n_boot=1000, seed=i) for i in range(reps)]
    assert false_rate(decisions) <= slack(reps)
    # relative mean shift per text (÷ Base spread), log-normal, 30 % higher in the last 20 % of depth
    y = np.exp(0.5 * rng.normal(size=(200, n, 1)) + 0.5 * rng.normal(size=(200, n, L)) + np.log(1.3) * (depth > 0.8))
    decisions = [v.band_contrast(y[i], depth, statistic="ratio", n_boot=1000, seed=i) for i in range(200)]
    assert holds_rate(decisions) >= 0.8


def test_calibration_band_contrast_layer_cis():
    # per-layer means of per-text cosine similarity with normal 95 % CIs (what analysis tables hold)
    reps, n, L = 500, 100, 32
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(18)

    def decide(x: np.ndarray, side: int) -> Decision:
        m, se = x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(n)
        return v.band_contrast(m, depth, unit="layer_cis", ci_low=m - 1.96 * se, ci_high=m + 1.96 * se, side=side)

    x = 0.9 + 0.05 * rng.normal(size=(reps, n, 1)) + 0.02 * ar1(rng, (reps, n, L), 0.7)
    assert false_rate([decide(x[i], -1) for i in range(reps)]) <= slack(reps)
    # the cosine similarity 0.05 lower in the last 20 % of depth (the bound ignores that the text effect
    # cancels in the contrast, so it needs a larger effect than the per-text bootstrap does)
    y = x[:200] - 0.05 * (depth > 0.8)
    assert holds_rate([decide(y[i], -1) for i in range(200)]) >= 0.8


@pytest.mark.parametrize(("phi", "jump"), [(0.0, 2.2), (0.8, 2.5)])
def test_calibration_band_contrast_layers(phi, jump):
    # relative weight change per block, 40 blocks, multiplicative AR noise (SD 10 %), no depth trend;
    # the interval assumes AR(0.9) layer noise (a worst case, calibrated at every depth in
    # tests/paper/test_verdicts_depth.py), so rough noise needs a jump of 2.2 for 80 % power
    reps, L = 500, 40
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(14)
    w = 0.01 * np.exp(0.1 * ar1(rng, (reps, L), phi) * math.sqrt(1 - phi**2))
    decisions = [v.band_contrast(row, depth, unit="layers", statistic="ratio") for row in w]
    assert false_rate(decisions) <= slack(reps)
    # J shape: the last 20 % of blocks change `jump` × the middle; the claim "more than 20 % above"
    j = w[:200] * np.exp(np.log(jump) * (depth > 0.8))
    decisions = [v.band_contrast(row, depth, unit="layers", statistic="ratio", threshold=0.2) for row in j]
    assert holds_rate(decisions) >= 0.8


def test_calibration_curve_correlation_autocorrelated_null():
    # the known failure: two independent AR(0.9) curves over 40 layers
    reps, L = 400, 40
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(15)
    x, y = ar1(rng, (reps, L), 0.9), ar1(rng, (reps, L), 0.9)
    decisions = [v.curve_correlation(x[i], y[i], depth, n_surrogates=199, seed=i) for i in range(reps)]
    assert false_rate(decisions) <= slack(reps)


def test_calibration_curve_correlation_j_shapes_linked_only_by_depth():
    reps, L = 400, 40
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(16)
    x = np.exp(4 * depth) + 0.5 * rng.normal(size=(reps, L))
    y = np.exp(6 * depth) + 5.0 * rng.normal(size=(reps, L))
    decisions = [v.curve_correlation(x[i], y[i], depth, n_surrogates=199, seed=i) for i in range(reps)]
    assert false_rate(decisions) <= slack(reps)
    # the scenario has teeth: a straight-line depth control is fooled most of the time
    linear = [v.curve_correlation(x[i], y[i], depth, degree=1, knots=0, n_surrogates=199, seed=i)
              for i in range(100)]
    assert false_rate(linear) > 0.5


def test_calibration_curve_correlation_power():
    # weight change vs cosine similarity over 40 layers (OLMo2-13B): shared layer-to-layer
    # fluctuation s (AR(0.5)) on top of different depth trends, partial r ≈ −0.7
    reps, L = 200, 40
    depth = np.arange(1, L + 1) / L
    rng = np.random.default_rng(17)
    s = ar1(rng, (reps, L), 0.5)
    x = np.exp(4 * depth) + s + 0.7 * rng.normal(size=(reps, L))
    y = 1 - depth**2 - s + 0.7 * rng.normal(size=(reps, L))
    decisions = [v.curve_correlation(x[i], y[i], depth, side=-1, n_surrogates=199, seed=i) for i in range(reps)]
    assert holds_rate(decisions) >= 0.8


# ---------------------------------------------------------------------------------------------
# claims, rows, summary, rendering
# ---------------------------------------------------------------------------------------------


def _row(key: str, verdict: Verdict, paper: str, effect: float = 0.1) -> Decision:
    return Decision(verdict, effect, effect - 0.05, effect + 0.05, LEVEL, "rule", 0.07, 3, "seeds", key=key,
                    sources=(paper,), paper=(paper,))


def test_collapse_counts_each_comparison_once():
    rows = [_row("mid_vs_full:01000", Verdict.HOLDS, "7B 0.375"), _row("mid_vs_full:01000", Verdict.HOLDS, "13B 0.30"),
            _row("edge_vs_full:10000", Verdict.CONTRADICTED, "13B 0.22", -0.1),
            _row("edge_vs_full:10000", Verdict.CONTRADICTED, "32B 0.25", -0.1),
            _row("edge_vs_full:00001", Verdict.INCONCLUSIVE, "1B 0.135", 0.0)]
    merged = v.collapse(rows)
    assert [r.key for r in merged] == ["mid_vs_full:01000", "edge_vs_full:10000", "edge_vs_full:00001"]
    assert merged[0].paper == ("7B 0.375", "13B 0.30") and merged[1].sources == ("13B 0.22", "32B 0.25")
    with pytest.raises(ValueError):
        v.collapse([rows[0], _row("mid_vs_full:01000", Verdict.HOLDS, "other", 0.2)])


def test_rendering():
    d = _row("k", Verdict.HOLDS, "p", 0.012)
    assert v.effect_text(d) == "+0.012 [−0.038, +0.062] (95%)"
    assert v.effect_text(_iv(0.5, float("nan"), float("nan"))) == "+0.500 (no interval)"
    assert [v.verdict_label(x) for x in Verdict] == ["holds", "contradicted", "inconclusive"]
    assert v.verdict_label("contradicted") == "contradicted"
