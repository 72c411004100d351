"""CKA (biased and debiased), cosine similarity and mean shift against independent NumPy oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import orthogonal, randn

import mbt.metrics as M
from mbt.metrics.similarity import _linear_cka


# Kornblith et al. (2019): linear CKA via the HSIC of explicitly centred Grams H K H.
def np_hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(H @ K @ H @ H @ L @ H)) / (n - 1) ** 2


# Song et al. (2012) unbiased HSIC, written out term by term on raw (uncentred) Grams.
def np_hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    n = K.shape[0]
    Kt = K - np.diag(np.diag(K))
    Lt = L - np.diag(np.diag(L))
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return float((term1 + term2 - term3) / (n * (n - 3)))


def np_cka(X: np.ndarray, Y: np.ndarray, debiased: bool = False) -> float:
    K, L = X @ X.T, Y @ Y.T
    hsic = np_hsic_unbiased if debiased else np_hsic_biased
    return hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))


SHAPES = [(10, 6, 6), (10, 25, 7), (40, 5, 9), (6, 30, 30)]


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_cka_matches_kornblith_reference(n: int, d1: int, d2: int, debiased: bool) -> None:
    X = randn(n, d1, seed=1)
    Y = X[:, : min(d1, d2)] @ randn(min(d1, d2), d2, seed=2) + 0.7 * randn(n, d2, seed=3) + 4.0
    expected = np_cka(X.numpy(), Y.numpy(), debiased)
    assert M.cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=1e-6)
    assert M.cka(X, Y, debiased=debiased) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,d1,d2", SHAPES)
def test_cka_gram_and_feature_paths_agree(n: int, d1: int, d2: int, debiased: bool) -> None:
    X, Y = randn(n, d1, seed=4) + 1.0, randn(n, d2, seed=5) * 3.0
    Y = Y + X[:, :1]  # some shared signal
    gram = _linear_cka(X, Y, debiased=debiased, eps=0.0, form="gram")
    feat = _linear_cka(X, Y, debiased=debiased, eps=0.0, form="feature")
    assert gram == pytest.approx(feat, abs=1e-10)
    assert M.cka(X, Y, debiased=debiased) == pytest.approx(gram, abs=1e-10)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,d", [(12, 5), (8, 20)])
def test_cka_invariances(n: int, d: int, debiased: bool) -> None:
    X = randn(n, d, seed=6)
    Q = orthogonal(d, seed=7)
    assert M.cka(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    assert M.cka(X, 3.5 * X @ Q, debiased=debiased) == pytest.approx(1.0, abs=1e-10)
    assert M.cka(X, X + 9.0, debiased=debiased) == pytest.approx(1.0, abs=1e-10)  # centring
    Y = randn(n, 3, seed=8)
    ref = M.cka(X, Y, debiased=debiased)
    assert M.cka(0.2 * X @ Q, 7.0 * Y, debiased=debiased) == pytest.approx(ref, abs=1e-10)
    assert M.cka(Y, X, debiased=debiased) == pytest.approx(ref, abs=1e-10)  # symmetric


def test_biased_cka_in_unit_interval_and_debiased_is_less_inflated() -> None:
    values_b, values_u = [], []
    for seed in range(5):
        X, Y = randn(20, 50, seed=10 + seed), randn(20, 50, seed=20 + seed)  # independent
        values_b.append(M.cka(X, Y))
        values_u.append(M.cka(X, Y, debiased=True))
    assert all(0.0 <= v <= 1.0 for v in values_b)
    # independent high-dimensional data: biased CKA is strongly inflated, debiased is near 0
    assert min(values_b) > 0.5
    assert max(abs(v) for v in values_u) < 0.15


def test_cka_degenerate_and_invalid_inputs() -> None:
    X = randn(6, 4, seed=30)
    const = torch.ones(6, 3, dtype=torch.float64)
    assert math.isnan(M.cka(X, const))
    assert M.cka(X, const, conventions="paper") == 0.0
    with pytest.raises(ValueError, match="same number of rows"):
        M.cka(X, randn(5, 4))
    with pytest.raises(ValueError, match="at least 4 row"):
        M.cka(X[:3], X[:3], debiased=True)
    with pytest.raises(ValueError, match="at least 2 row"):
        M.cka(X[:1], X[:1])
    with pytest.raises(ValueError, match="form"):
        _linear_cka(X, X, debiased=False, eps=0.0, form="kernel")


def test_cosine_similarity_matches_numpy() -> None:
    X, Y = randn(9, 7, seed=31), randn(9, 7, seed=32)
    Y[0] = -2.0 * X[0]
    Y[1] = 0.5 * X[1]
    out = M.cosine_similarity(X, Y)
    x, y = X.numpy(), Y.numpy()
    expected = np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    assert out.shape == (9,) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    assert out[0] == pytest.approx(-1.0) and out[1] == pytest.approx(1.0)


def test_cosine_zero_rows_and_validation() -> None:
    X, Y = randn(3, 4, seed=33), randn(3, 4, seed=34)
    X[2] = 0.0
    std = M.cosine_similarity(X, Y)
    assert torch.isnan(std[2]) and torch.isfinite(std[:2]).all()
    assert M.cosine_similarity(X, Y, conventions="paper")[2] == 0.0
    with pytest.raises(ValueError, match="same number of columns"):
        M.cosine_similarity(X, randn(3, 5))
    with pytest.raises(ValueError, match="same number of rows"):
        M.cosine_similarity(X, randn(4, 4))


def test_mean_shift() -> None:
    X = randn(11, 6, seed=35)
    v = randn(6, seed=36)
    assert M.mean_shift(X, X) == 0.0
    assert M.mean_shift(X, X + v) == pytest.approx(float(torch.linalg.vector_norm(v)), rel=1e-12)
    Y = randn(7, 6, seed=37)  # different number of samples: only the centroids matter
    expected = np.linalg.norm(Y.numpy().mean(0) - X.numpy().mean(0))
    assert M.mean_shift(X, Y) == pytest.approx(expected, rel=1e-12)
    rel = M.mean_shift(X, Y, mean_shift_relative=True)
    assert rel == pytest.approx(expected / np.linalg.norm(X.numpy().mean(0)), rel=1e-12)
    with pytest.raises(ValueError, match="same number of columns"):
        M.mean_shift(X, randn(11, 5))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_similarity_low_precision_inputs_computed_in_float64(dtype: torch.dtype) -> None:
    X, Y = (randn(10, 6, seed=38) * 2).to(dtype), (randn(10, 6, seed=39) * 2).to(dtype)
    X64, Y64 = X.to(torch.float64), Y.to(torch.float64)
    for preset in ("standard", "paper"):
        assert M.cka(X, Y, conventions=preset) == M.cka(X64, Y64, conventions=preset)
        assert M.cka(X, Y, debiased=True, conventions=preset) == M.cka(
            X64, Y64, debiased=True, conventions=preset
        )
        assert M.mean_shift(X, Y, conventions=preset) == M.mean_shift(X64, Y64, conventions=preset)
        torch.testing.assert_close(
            M.cosine_similarity(X, Y, conventions=preset),
            M.cosine_similarity(X64, Y64, conventions=preset), atol=0, rtol=0,
        )
