"""Every layer metric on bootstrap resamples of the texts (mbt.metrics.resampling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mbt.metrics import (
    cka,
    condition_number,
    dataset_entropy,
    effective_rank,
    mean_shift,
    rank_deficiency,
    resolve_conventions,
    spectral_norm,
)
from mbt.metrics import resampling as R

SPECTRAL = {"dataset_entropy": dataset_entropy, "effective_rank": effective_rank, "condition_number": condition_number,
            "spectral_norm": spectral_norm, "rank_deficiency": rank_deficiency}


def _data(n=120, d=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.linspace(-1, 1, d) + torch.randn(n, d, generator=g) @ torch.diag(torch.linspace(0.1, 3, d))
    return X, X + 0.5 * torch.randn(n, d, generator=g)


def test_counts_and_means_of_per_text_values_are_exact():
    idx = np.array([[0, 0, 2], [1, 2, 2]])
    assert R.counts(idx, 3).tolist() == [[2, 0, 1], [0, 1, 2]]
    values = torch.tensor([1.0, float("nan"), 4.0])
    assert R.mean_replicates(values, idx).tolist() == [2.0, 4.0]  # the NaN text is left out
    assert np.isnan(R.mean_replicates(values, np.array([[1, 1, 1]])))[0]


@pytest.mark.parametrize(("n", "d"), [(40, 12), (10, 30)])  # features fewer and more than texts
@pytest.mark.parametrize("preset", ["standard", "paper"])
def test_pair_replicates_equal_the_metrics_on_the_resampled_texts(n, d, preset):
    X, Y = _data(n, d)
    conv = resolve_conventions(preset)
    idx = np.random.default_rng(1).integers(0, n, size=(25, n))
    reps = R.pair_replicates(X, Y, idx, ["cka", "mean_shift", "relative_mean_shift", "cka_debiased"], conv)
    assert set(reps) == {"cka", "mean_shift", "relative_mean_shift"}  # no replicates for the debiased CKA
    np.testing.assert_allclose(reps["cka"], [cka(X[i], Y[i], conventions=conv) for i in idx], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(reps["mean_shift"], [mean_shift(X[i], Y[i], conventions=conv) for i in idx],
                               rtol=1e-9)
    np.testing.assert_allclose(reps["relative_mean_shift"],
                               [mean_shift(X[i], Y[i], mean_shift_relative=True) for i in idx], rtol=1e-9)


def test_with_every_text_once_the_replicates_are_the_metrics_themselves():
    X, Y = _data()
    conv = resolve_conventions("standard")
    once = np.arange(X.shape[0])[None, :]
    pooled = R.pooled_replicates(X, once, list(SPECTRAL), conv)
    for name, fn in SPECTRAL.items():
        assert pooled[name][0] == pytest.approx(fn(X), rel=1e-9), name
    assert R.pair_replicates(X, Y, once, ["cka"], conv)["cka"][0] == pytest.approx(cka(X, Y), rel=1e-12)


def test_first_order_spectra_track_the_true_sampling_spread_better_than_the_naive_bootstrap():
    """Spectral replicates are first order in the resampling weights. On Gaussian data their spread is that of
    fresh samples (within 30 %) and their centre stays at the estimate, while resampling rows outright (repeated
    rows lower the rank) both widens the spread and shifts the centre by several standard deviations."""
    conv = resolve_conventions("standard")
    n, d = 150, 24
    scale, mean = torch.diag(torch.linspace(0.1, 3, d)), torch.linspace(-1, 1, d)
    g = torch.Generator().manual_seed(3)
    fresh = {k: [] for k in SPECTRAL if k != "rank_deficiency"}
    for _ in range(120):
        Z = mean + torch.randn(n, d, generator=g) @ scale
        for k in fresh:
            fresh[k].append(SPECTRAL[k](Z))
    X = mean + torch.randn(n, d, generator=g) @ scale
    idx = np.random.default_rng(0).integers(0, n, size=(150, n))
    reps = R.pooled_replicates(X, idx, list(fresh), conv)
    for name, values in fresh.items():
        true_sd = float(np.std(values))
        assert 0.7 * true_sd < reps[name].std() < 1.3 * true_sd, name
        assert abs(reps[name].mean() - SPECTRAL[name](X)) < 0.5 * true_sd, name
    naive = np.array([effective_rank(X[i]) for i in idx[:60]])
    assert abs(naive.mean() - effective_rank(X)) > 3 * float(np.std(fresh["effective_rank"]))


def test_replicates_are_paired_across_layers_and_models():
    """The same count vectors drive every call, so a difference of two metrics' replicates is a paired one."""
    X, Y = _data()
    conv = resolve_conventions("standard")
    idx = np.random.default_rng(2).integers(0, X.shape[0], size=(40, X.shape[0]))
    a = R.pooled_replicates(X, idx, ["spectral_norm"], conv)["spectral_norm"]
    X = X.double()
    a = R.pooled_replicates(X, idx, ["spectral_norm"], conv)["spectral_norm"]
    b = R.pooled_replicates(1.01 * X, idx, ["spectral_norm"], conv)["spectral_norm"]
    np.testing.assert_allclose(b - a, 0.01 * a, rtol=1e-9)  # a uniform rescaling moves every replicate alike
