"""Whole-curve claims (mbt.paper.curves): exact values, and calibration at 10, 11, 16, 24 and 40 layers.

Calibration: with no true effect, holds + contradicted at most α = 5 % plus three binomial standard errors
of the Monte-Carlo estimate (``slack``); with the paper's kind of effect, holds at least 80 %.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import curves as C
from mbt.paper import nulls as N
from mbt.paper.verdicts import Verdict

DEPTHS = (10, 11, 16, 24, 40)


def slack(reps: int, rate: float = 0.05) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def decided(decisions) -> float:
    return float(np.mean([d.verdict != Verdict.INCONCLUSIVE for d in decisions]))


def holds(decisions) -> float:
    return float(np.mean([d.verdict == Verdict.HOLDS for d in decisions]))


# ---------------------------------------------------------------------------------------------
# raw correlation (Fig. 5 as the paper reports it)


def test_raw_correlation_is_the_pearson_r_and_consistent_with_its_p():
    rng = np.random.default_rng(0)
    d = N.depth_grid(24)
    x = N.shape("j", d) + 0.05 * rng.normal(size=24)
    y = 2.0 - 0.5 * N.shape("j", d) + 0.02 * rng.normal(size=24)
    got = C.raw_correlation(x, y, d, side=-1, n_surrogates=199)
    assert got.effect == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert got.verdict == Verdict.HOLDS and got.ci_high < 0 and got.p <= 0.05 and got.p == got.p_verdict
    assert got.threshold == 0.0 and got.unit == "layers" and got.n == 24 and "raw" in got.rule
    assert C.raw_correlation(x, y, d, side=1, n_surrogates=199).verdict == Verdict.CONTRADICTED
    # the interval excludes 0 exactly when p <= 1 - level, over many random cases
    for i in range(60):
        a, b = N.ar1(rng, (2, 12), 0.5)
        dd = C.raw_correlation(a, b, n_surrogates=99, seed=i)
        assert (dd.ci_low > 0 or dd.ci_high < 0) == (dd.p <= 0.05)
    with pytest.raises(ValueError, match="same length"):
        C.raw_correlation(x, y[:-1], d)
    short = C.raw_correlation(x[:6], y[:6])
    assert short.verdict == Verdict.INCONCLUSIVE and "fewer than 8" in short.rule


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_raw_correlation_null_calibration(n_layers):
    """A fixed J / late-hinge / steep-power curve against an unrelated trending smooth curve, and AR vs AR."""
    reps = 200
    rng = np.random.default_rng(100 + n_layers)
    d = N.depth_grid(n_layers)
    for kind in ("j", "hinge", "power"):
        x = N.shape(kind, d) + 0.05 * N.ar1(rng, (reps, n_layers), 0.5)
        y = N.random_smooth_curves(rng, reps, n_layers, kinds=("ar",), phis=(0.9,), noise=(0.05, 0.2), trend_sd=2.0)
        got = [C.raw_correlation(x[i], y[i], d, n_surrogates=199, seed=i) for i in range(reps)]
        assert decided(got) <= slack(reps), (kind, decided(got))
    x, y = N.ar1(rng, (reps, n_layers), 0.9), N.ar1(rng, (reps, n_layers), 0.9)
    got = [C.raw_correlation(x[i], y[i], d, n_surrogates=199, seed=i) for i in range(reps)]
    assert decided(got) <= slack(reps), ("ar", decided(got))


def test_raw_correlation_without_the_line_sign_is_fooled_by_trends():
    """The scenario has teeth: plain mirrored phase surrogates (no sign on the line) decide too often."""
    from mbt.paper.verdicts import curve_correlation

    reps, n_layers = 400, 16
    rng = np.random.default_rng(7)
    d = N.depth_grid(n_layers)
    x = N.shape("j", d) + 0.05 * N.ar1(rng, (reps, n_layers), 0.5)
    slope = 0.3 * rng.choice([-1.0, 1.0], size=(reps, 1))
    y = slope * (d - 0.5) + 0.1 * N.ar1(rng, (reps, n_layers), 0.9)
    plain = [curve_correlation(x[i], y[i], d, degree=0, knots=0, n_surrogates=199, seed=i) for i in range(reps)]
    ours = [C.raw_correlation(x[i], y[i], d, n_surrogates=199, seed=i) for i in range(reps)]
    assert decided(plain) > 0.09 and decided(ours) <= 0.05


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_raw_correlation_power_when_weight_change_tracks_the_metric(n_layers):
    """Weight change J-shaped, the cosine similarity its scaled mirror image (r ≈ −0.99): holds (side −1)."""
    reps = 100
    rng = np.random.default_rng(200 + n_layers)
    d = N.depth_grid(n_layers)
    x = N.shape("j", d) + 0.05 * rng.normal(size=(reps, n_layers))
    y = 1.0 - 0.3 * N.shape("j", d) + 0.02 * rng.normal(size=(reps, n_layers))
    got = [C.raw_correlation(x[i], y[i], d, side=-1, n_surrogates=199, seed=i) for i in range(reps)]
    assert holds(got) >= (0.6 if n_layers < 16 else 0.8), holds(got)


# ---------------------------------------------------------------------------------------------
# closeness ("synchronised")


def _close(base, sft, eb, es, d, **kw):
    return C.closeness(base, sft, d, base_estimate=eb, sft_estimate=es, **kw)


def test_closeness_values_by_hand():
    d = N.depth_grid(10)
    base_est = np.linspace(0.0, 2.0, 10)  # range 2
    sft_est = base_est + np.r_[np.zeros(8), 0.1, 0.3]  # gaps 0.05 and 0.15 of the range in the last band
    rng = np.random.default_rng(1)
    noise = 0.001 * rng.normal(size=(200, 10))
    got = _close(base_est + noise, sft_est + noise, base_est, sft_est, d, band=(0.8, 1.0), margin=0.2, n_texts=64)
    assert got.effect == pytest.approx(0.15)
    assert got.verdict == Verdict.HOLDS and got.ci_high < 0.2 and got.threshold == 0.2
    assert (got.n, got.unit) == (64, "texts")
    far = _close(base_est + noise, sft_est + noise, base_est, sft_est, d, band=(0.8, 1.0), margin=0.1)
    assert far.verdict == Verdict.CONTRADICTED and far.ci_low > 0.1 and far.unit == "bootstrap replicates"
    early = _close(base_est + noise, sft_est + noise, base_est, sft_est, d, band=(0.0, 0.5), margin=0.01)
    assert early.effect == pytest.approx(0.0) and early.verdict == Verdict.HOLDS
    logged = _close(np.exp(base_est + noise), np.exp(sft_est + noise), np.exp(base_est), np.exp(sft_est), d,
                    scale="log", margin=0.5)
    assert logged.effect == pytest.approx(0.3) and logged.threshold == pytest.approx(math.log(1.5))
    rows = C.closeness_by_band(base_est + noise, sft_est + noise, d, base_estimate=base_est, sft_estimate=sft_est,
                               margin=0.1)
    assert set(rows) == {"early", "middle", "last", "all"}
    assert rows["all"].effect == pytest.approx(0.15) and rows["middle"].effect == pytest.approx(0.0)
    with pytest.raises(ValueError, match="constant"):
        _close(np.ones((50, 10)), np.ones((50, 10)), np.ones(10), np.ones(10), d)
    with pytest.raises(ValueError, match="non-finite"):
        bad = base_est + noise
        bad[3, 4] = np.nan
        _close(bad, sft_est + noise, base_est, sft_est, d)
    with pytest.raises(ValueError, match="positive"):
        _close(base_est + noise, sft_est + noise, base_est, sft_est, d, scale="log")


def _paired(rng, reps, n_layers, base_truth, sft_truth, sd=0.02):
    eb, es, rb, rs = N.paired_replicates(rng, np.broadcast_to(base_truth, (reps, n_layers)).copy(),
                                         np.broadcast_to(sft_truth, (reps, n_layers)).copy(), n_boot=200, sd=sd)
    return eb, es, rb, rs


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_closeness_null_calibration_at_the_margin(n_layers):
    """SFT = Base shifted by exactly the margin at every layer (shared J / hinge / power shapes, AR(0.9) errors)."""
    reps = 150
    rng = np.random.default_rng(300 + n_layers)
    d = N.depth_grid(n_layers)
    for kind in ("j", "hinge", "power"):
        base = 1.0 + N.shape(kind, d)
        span = float(base.max() - base.min())
        eb, es, rb, rs = _paired(rng, reps, n_layers, base, base + 0.1 * span)
        got = [_close(rb[i], rs[i], eb[i], es[i], d, margin=0.1) for i in range(reps)]
        assert decided(got) <= slack(reps), (kind, decided(got))
        # one layer at the margin, the rest equal: "close" must still not be claimed
        one = base + 0.1 * span * (np.arange(n_layers) == n_layers - 1)
        eb, es, rb, rs = _paired(rng, reps, n_layers, base, one)
        got = [_close(rb[i], rs[i], eb[i], es[i], d, margin=0.1) for i in range(reps)]
        assert holds(got) <= slack(reps), (kind, holds(got))


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_closeness_same_trend_holds_and_opposite_trend_never_does(n_layers):
    reps = 100
    rng = np.random.default_rng(400 + n_layers)
    d = N.depth_grid(n_layers)
    base = 1.0 + N.shape("j", d)
    # SFT follows Base's trend (2 % scaled), its own estimation noise (SE 1 % of the Base range per layer)
    eb, es, rb, rs = _paired(rng, reps, n_layers, base, 1.02 * base, sd=0.01)
    same = [_close(rb[i], rs[i], eb[i], es[i], d) for i in range(reps)]
    assert holds(same) >= 0.8, holds(same)
    # SFT has the opposite trend; both share the same wiggles over depth (residual correlation 1)
    wiggle = 0.2 * N.ar1(rng, (reps, n_layers), 0.5)
    eb, es, rb, rs = N.paired_replicates(rng, base + wiggle, 2.0 - N.shape("j", d) + wiggle, n_boot=200, sd=0.02)
    opposite = [_close(rb[i], rs[i], eb[i], es[i], d) for i in range(reps)]
    assert holds(opposite) == 0.0
    assert np.mean([o.verdict == Verdict.CONTRADICTED for o in opposite]) >= 0.8


# ---------------------------------------------------------------------------------------------
# progressive decline


def test_depth_trend_slope_by_hand():
    d = N.depth_grid(10)
    est = 1.0 - 0.3 * d
    reps = est + 0.001 * np.random.default_rng(2).normal(size=(100, 10))
    got = C.depth_trend(reps, d, estimate=est, n_texts=50)
    assert got.effect == pytest.approx(-0.3) and got.verdict == Verdict.HOLDS and (got.n, got.unit) == (50, "texts")
    assert C.depth_trend(reps, d, estimate=est, side=1).verdict == Verdict.CONTRADICTED
    # only layers up to depth 0.8 count: a drop after it changes nothing
    est2 = est - 5.0 * (d > 0.8)
    assert C.depth_trend(reps - 5.0 * (d > 0.8), d, estimate=est2).effect == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="at least 3"):
        C.depth_trend(reps, d, estimate=est, within=(0.0, 0.2))


@pytest.mark.parametrize("n_layers", DEPTHS)
def test_depth_trend_null_calibration_and_power(n_layers):
    reps = 400
    rng = np.random.default_rng(600 + n_layers)
    d = N.depth_grid(n_layers)
    # null: flat before the last band, then a late drop (hinge) — no *progressive* decline
    truth = np.broadcast_to(0.9 - 0.3 * N.shape("hinge", d), (reps, n_layers))
    est, boot = N.replicates(rng, truth, n_boot=200, sd=0.01)
    got = [C.depth_trend(boot[i], d, estimate=est[i]) for i in range(reps)]
    assert decided(got) <= slack(reps), decided(got)
    # the paper's pattern: a steady decline of 0.05 over depth, then the drop
    truth = np.broadcast_to(0.95 - 0.05 * d - 0.3 * N.shape("hinge", d), (100, n_layers))
    est, boot = N.replicates(rng, truth, n_boot=200, sd=0.005)
    got = [C.depth_trend(boot[i], d, estimate=est[i]) for i in range(100)]
    assert holds(got) >= 0.8, holds(got)
