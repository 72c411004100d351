from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mbt import correlate


def _t_pvalue(r: float, n: int, k: int = 0) -> float:
    """Two-sided t-test p-value from mpmath (independent oracle, 30 digits).

    Numerical integration of the t density in moderate tails; mpmath's own incomplete beta in far tails,
    where quadrature loses digits.
    """
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(30):
        df = n - 2 - k
        t = abs(mpmath.mpf(r)) * mpmath.sqrt(df / (1 - mpmath.mpf(r) ** 2))
        if t > 8:
            return float(mpmath.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True))
        const = mpmath.gamma(mpmath.mpf(df + 1) / 2) / (mpmath.sqrt(df * mpmath.pi) * mpmath.gamma(mpmath.mpf(df) / 2))
        return float(2 * mpmath.quad(lambda x: const * (1 + x * x / df) ** (-(df + 1) / 2), [t, mpmath.inf]))


def _get(frame: pd.DataFrame, metric: str, method: str) -> pd.Series:
    row = frame[(frame.metric == metric) & (frame.method == method)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.mark.parametrize(("r", "n", "k"), [(0.5, 10, 0), (-0.3, 30, 0), (0.9, 5, 0), (0.2, 64, 1), (0.999, 40, 2)])
def test_pvalue_matches_t_distribution(r, n, k):
    got = correlate.correlation_pvalue(r, n, n_covariates=k)
    assert got == pytest.approx(_t_pvalue(r, n, k), rel=1e-9, abs=1e-300)


def test_pvalue_edge_cases():
    assert correlate.correlation_pvalue(1.0, 10) == 0.0
    assert correlate.correlation_pvalue(0.0, 10) == pytest.approx(1.0)
    assert math.isnan(correlate.correlation_pvalue(0.5, 2))
    assert math.isnan(correlate.correlation_pvalue(float("nan"), 10))


def test_rank_averages_ties():
    np.testing.assert_array_equal(correlate.rank([10, 20, 20, 30]), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(correlate.rank([3, 1, 2]), [3, 1, 2])


def test_pearson_and_spearman_match_hand_computations():
    rng = np.random.default_rng(3)
    layers = np.arange(1, 21)
    x = pd.Series(rng.normal(size=20), index=layers, name="wc")
    y = pd.Series(0.6 * x.to_numpy() + rng.normal(size=20), index=layers)
    out = correlate.layer_correlations(x, {"m": y})
    assert list(out.columns) == list(correlate.COLUMNS)
    assert set(out.method) == set(correlate.METHODS)
    assert (out.x == "wc").all()
    pearson = _get(out, "m", "pearson")
    assert pearson.r == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert pearson.p == pytest.approx(_t_pvalue(pearson.r, 20), rel=1e-9)
    assert pearson.n == 20 and pearson.df == 18
    # Spearman without ties: 1 - 6 Σd² / (n(n² - 1))
    rx = np.argsort(np.argsort(x.to_numpy())) + 1
    ry = np.argsort(np.argsort(y.to_numpy())) + 1
    rho = 1 - 6 * ((rx - ry) ** 2).sum() / (20 * (20**2 - 1))
    assert _get(out, "m", "spearman").r == pytest.approx(rho, abs=1e-12)


def test_partial_correlation_removes_a_shared_depth_trend():
    rng = np.random.default_rng(0)
    n = 200
    depth = np.arange(1, n + 1) / n
    x = pd.Series(depth + 0.05 * rng.normal(size=n), index=np.arange(1, n + 1))
    y = pd.Series(depth + 0.05 * rng.normal(size=n), index=np.arange(1, n + 1))
    out = correlate.layer_correlations(x, {"y": y})
    assert _get(out, "y", "pearson").r > 0.9
    assert _get(out, "y", "spearman").r > 0.9
    assert abs(_get(out, "y", "partial_pearson").r) < 0.15
    assert abs(_get(out, "y", "partial_spearman").r) < 0.15
    assert _get(out, "y", "partial_pearson").df == n - 3
    # passing relative depth explicitly gives the same partial correlation as the layer index
    out2 = correlate.layer_correlations(x, {"y": y}, depth=depth)
    assert _get(out2, "y", "partial_pearson").r == pytest.approx(_get(out, "y", "partial_pearson").r, abs=1e-12)


def test_partial_correlation_keeps_a_real_relation_and_matches_the_first_order_formula():
    rng = np.random.default_rng(1)
    d = np.linspace(0, 1, 60)
    noise = rng.normal(size=60)
    x = d + 0.1 * noise
    y = d + 0.1 * noise + 0.05 * rng.normal(size=60)  # shares x's noise: related beyond depth
    r, p = correlate.partial_correlation(x, y, d)
    rxy, rxd, ryd = np.corrcoef(x, y)[0, 1], np.corrcoef(x, d)[0, 1], np.corrcoef(y, d)[0, 1]
    expected = (rxy - rxd * ryd) / math.sqrt((1 - rxd**2) * (1 - ryd**2))
    assert r == pytest.approx(expected, abs=1e-10)
    assert r > 0.8 and p < 1e-10


def test_degree_two_removes_a_curved_trend():
    rng = np.random.default_rng(2)
    d = np.linspace(-1, 1, 150)
    x = d**2 + 0.05 * rng.normal(size=150)
    y = d**2 + 0.05 * rng.normal(size=150)
    linear, _ = correlate.partial_correlation(x, y, d, degree=1)
    quadratic, _ = correlate.partial_correlation(x, y, d, degree=2)
    assert linear > 0.8
    assert abs(quadratic) < 0.2


def test_inputs_are_aligned_on_the_layer_index():
    # weight change per block 1..4, metrics per layer 0..4: block l pairs with layer l
    x = pd.Series([1.0, 2.0, 3.0, 5.0], index=[1, 2, 3, 4])
    tidy = pd.DataFrame({
        "model": ["base"] * 5,
        "layer": [0, 1, 2, 3, 4],
        "metric": ["m"] * 5,
        "value": [100.0, 1.0, 2.0, 3.0, 5.0],
    })
    out = correlate.layer_correlations(x, tidy)
    row = _get(out, "m", "pearson")
    assert row.n == 4 and row.r == pytest.approx(1.0)
    wide = pd.DataFrame({"a": [9.0, 4.0, 3.0, 2.0, 1.0], "b": [0.0, np.nan, 1.0, 2.0, 2.5]}, index=range(5))
    out = correlate.layer_correlations(x, wide)
    assert _get(out, "a", "pearson").r < -0.9
    assert _get(out, "b", "pearson").n == 3  # pairwise complete: NaN at layer 1 dropped
    # plain arrays are positional
    xs, ys = [1.0, 3.0, 2.0, 5.0, 4.0, 7.0], [2.0, 4.0, 6.0, 9.0, 8.0, 8.5]
    out = correlate.layer_correlations(xs, {"m": ys})
    assert _get(out, "m", "pearson").r == pytest.approx(np.corrcoef(xs, ys)[0, 1], abs=1e-12)
    assert np.isfinite(_get(out, "m", "partial_pearson").r)
    # a series exactly linear in depth has nothing left after removing the trend
    assert math.isnan(_get(correlate.layer_correlations([1, 2, 3, 4], {"m": [2, 4, 6, 9]}), "m", "partial_pearson").r)


def test_degenerate_inputs_give_nan():
    metrics = {"flat": [1.0, 1.0, 1.0, 1.0], "short": [1, 2, np.nan, np.nan]}
    out = correlate.layer_correlations([1.0, 2.0, 3.0, 4.0], metrics)
    assert math.isnan(_get(out, "flat", "pearson").r)
    assert math.isnan(_get(out, "short", "pearson").r)
    with pytest.raises(ValueError, match="several rows"):
        correlate.layer_correlations(
            [1.0, 2.0], pd.DataFrame({"layer": [1, 1], "metric": ["m", "m"], "value": [1.0, 2.0]})
        )
