"""Spectral metrics: entropies, effective rank, rank deficiency, condition number, spectral norm.

Oracles are independent NumPy float64 computations written out in the tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import orthogonal, randn

import mbt.metrics as M
from mbt.metrics.spectra import _dataset_entropy, _token_entropies


def with_spectrum(s: list[float], n: int, d: int, seed: int = 0) -> torch.Tensor:
    """An n×d matrix whose non-zero singular values are exactly ``s`` (orthonormal U, V)."""
    k = len(s)
    U = torch.linalg.qr(randn(n, k, seed=seed))[0]
    V = torch.linalg.qr(randn(d, k, seed=seed + 1))[0]
    return U @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ V.T


def np_standard_entropy(X: np.ndarray, alpha: float = 1.0, center: bool = True) -> float:
    """Textbook normalised matrix entropy, written directly in NumPy."""
    X = np.asarray(X, dtype=np.float64)
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    s = np.linalg.svd(X, compute_uv=False)
    lam = s**2
    lam = lam[lam > 1e-12 * lam.max()]
    p = lam / lam.sum()
    if alpha == 1.0:
        h = -np.sum(p * np.log(p))
    else:
        h = np.log(np.sum(p**alpha)) / (1.0 - alpha)
    return float(h / np.log(min(X.shape)))


# ---------------------------------------------------------------------------------------------------
# Gram eigenvalue helper
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", [(5, 12), (12, 5), (7, 7)])
def test_gram_eigenvalues_rows_and_cols_paths_agree(n: int, d: int) -> None:
    X = randn(3, n, d, seed=1)
    rows = M.gram_eigenvalues(X, side="rows")
    cols = M.gram_eigenvalues(X, side="cols")
    auto = M.gram_eigenvalues(X)
    assert rows.shape == cols.shape == auto.shape == (3, n)
    torch.testing.assert_close(rows, cols, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(rows, auto, atol=1e-10, rtol=1e-10)
    ref = np.sort(np.linalg.eigvalsh(X[0].numpy() @ X[0].numpy().T))[::-1].copy()
    np.testing.assert_allclose(rows[0].numpy(), ref, atol=1e-10)
    assert torch.all(rows[..., :-1] >= rows[..., 1:] - 1e-12)  # descending


def test_singular_values_match_numpy() -> None:
    for n, d in [(6, 11), (11, 6)]:
        X = randn(n, d, seed=2)
        np.testing.assert_allclose(
            M.singular_values(X).numpy(), np.linalg.svd(X.numpy(), compute_uv=False), rtol=1e-10
        )
    with pytest.raises(ValueError, match="side"):
        M.gram_eigenvalues(randn(3, 4), side="left")


# ---------------------------------------------------------------------------------------------------
# Entropies
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("n,d", [(6, 14), (20, 8)])
def test_standard_entropy_matches_numpy(alpha: float, n: int, d: int) -> None:
    X = randn(n, d, seed=3)
    expected = np_standard_entropy(X.numpy(), alpha)
    assert M.matrix_entropy(X, alpha=alpha) == pytest.approx(expected, abs=1e-9)
    assert M.dataset_entropy(X, alpha=alpha) == pytest.approx(expected, abs=1e-9)
    assert float(M.prompt_entropy(X[None], alpha=alpha)[0]) == pytest.approx(expected, abs=1e-9)


def test_renyi_with_null_eigenvalues_matches_numpy() -> None:
    # rank-3 data in 10 dims: null eigenvalues must carry no mass even for alpha < 1
    X = randn(12, 3, seed=4) @ randn(3, 10, seed=5)
    for alpha in (0.3, 0.5, 2.0):
        expected = np_standard_entropy(X.numpy(), alpha, center=False)
        assert M.matrix_entropy(X, alpha=alpha, center=False) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("preset", ["standard", "paper"])
def test_entropies_invariant_to_rotation_and_scale(preset: str) -> None:
    # paper divides rows by ‖x‖ + 1e-10, so its scale invariance holds only up to that guard
    tol = 1e-10 if preset == "standard" else 1e-8
    X = randn(9, 6, seed=6)
    Q = orthogonal(6, seed=7)
    for fn in (M.matrix_entropy, M.dataset_entropy):
        ref = fn(X, conventions=preset)
        assert fn(X @ Q, conventions=preset) == pytest.approx(ref, abs=tol)
        assert fn(3.7 * X, conventions=preset) == pytest.approx(ref, abs=tol)
    H = randn(3, 5, 8, seed=8)
    Q8 = orthogonal(8, seed=9)
    ref = M.prompt_entropy(H, conventions=preset)
    torch.testing.assert_close(M.prompt_entropy(H @ Q8, conventions=preset), ref, atol=tol, rtol=0)
    torch.testing.assert_close(M.prompt_entropy(0.01 * H, conventions=preset), ref, atol=tol, rtol=0)


@pytest.mark.parametrize("preset", ["standard", "paper"])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_normalised_entropy_in_unit_interval(preset: str, alpha: float) -> None:
    for seed, (n, d) in enumerate([(5, 9), (9, 5), (30, 4), (3, 30)]):
        X = randn(n, d, seed=seed) * torch.exp(randn(1, d, seed=seed + 50))  # anisotropic
        for value in (M.matrix_entropy(X, alpha=alpha, conventions=preset),
                      M.dataset_entropy(X, alpha=alpha, conventions=preset)):
            assert 0.0 <= value <= 1.0 + 1e-9


def test_rank_one_data_has_zero_entropy() -> None:
    a, b = randn(7, seed=10), randn(7, seed=11)
    t = torch.linspace(-2.0, 3.0, 9, dtype=torch.float64)
    # standard centres: rows on a line through the mean -> one direction after centring
    line = a + t[:, None] * b
    assert M.matrix_entropy(line) == pytest.approx(0.0, abs=1e-10)
    assert M.dataset_entropy(line) == pytest.approx(0.0, abs=1e-10)
    assert M.matrix_entropy(line, alpha=0.5) == pytest.approx(0.0, abs=1e-10)
    # without centring a line through a != 0 spans two directions: entropy clearly > 0
    assert M.matrix_entropy(line, center=False) > 0.05
    # paper does not centre: rank one means rows along one direction (signs may differ);
    # only the 1e-6 ridge leaves a trace
    ray = t[:, None] * b
    assert M.matrix_entropy(ray, conventions="paper") == pytest.approx(0.0, abs=1e-3)
    assert M.dataset_entropy(ray, conventions="paper") == pytest.approx(0.0, abs=1e-3)
    assert M.matrix_entropy(ray, center=False) == pytest.approx(0.0, abs=1e-10)


def test_orthonormal_rows_have_maximal_entropy() -> None:
    rows = orthogonal(10, seed=12)[:6] * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.0, 7.0])[:, None]
    assert M.matrix_entropy(rows, center=False) == pytest.approx(1.0, abs=1e-12)
    assert M.dataset_entropy(rows, center=False) == pytest.approx(1.0, abs=1e-12)
    assert M.matrix_entropy(rows, center=False, alpha=2.0) == pytest.approx(1.0, abs=1e-12)
    assert M.matrix_entropy(rows, conventions="paper") == pytest.approx(1.0, abs=1e-6)
    # centring removes one direction: the maximum becomes log(n-1)/log(n)
    assert M.matrix_entropy(torch.eye(6, dtype=torch.float64)) == pytest.approx(
        math.log(5) / math.log(6), abs=1e-12
    )


@pytest.mark.parametrize("preset", ["standard", "paper"])
@pytest.mark.parametrize("n,d", [(5, 13), (13, 5)])
def test_entropy_gram_paths_agree(preset: str, n: int, d: int) -> None:
    conv = M.resolve_conventions(preset)
    X = randn(n, d, seed=13)
    a = _dataset_entropy(X, conv, side="rows")
    b = _dataset_entropy(X, conv, side="cols")
    assert a == pytest.approx(b, abs=1e-10)
    H = randn(3, n, d, seed=14)
    m = torch.ones(3, n, dtype=torch.bool)
    m[1, -2:] = False
    torch.testing.assert_close(
        _token_entropies(H * m[..., None], m, conv, side="rows"),
        _token_entropies(H * m[..., None], m, conv, side="cols"),
        atol=1e-10, rtol=0,
    )


def test_alpha_one_limit_is_continuous() -> None:
    X = randn(8, 12, seed=15)
    h1 = M.matrix_entropy(X, alpha=1.0)
    assert M.matrix_entropy(X, alpha=1.0 + 1e-6) == pytest.approx(h1, abs=1e-5)
    assert M.matrix_entropy(X, alpha=1.0 - 1e-6) == pytest.approx(h1, abs=1e-5)
    assert M.matrix_entropy(X, alpha=2.0) < h1 < M.matrix_entropy(X, alpha=0.5)  # Rényi decreases in α


def test_entropy_normalisation_none_returns_nats() -> None:
    X = randn(6, 9, seed=16)
    assert M.matrix_entropy(X, entropy_normalization="none") == pytest.approx(
        M.matrix_entropy(X) * math.log(6), rel=1e-12
    )


def test_entropy_degenerate_samples() -> None:
    H = randn(2, 4, 6, seed=17)
    mask = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]])
    std = M.prompt_entropy(H, mask)
    assert torch.isnan(std).all()  # one token with centring has no spread; no token at all -> NaN
    paper = M.prompt_entropy(H, mask, conventions="paper")
    assert paper[0] == 0.0 and torch.isnan(paper[1])
    assert M.prompt_entropy(H, mask, center=False)[0] == 0.0


# ---------------------------------------------------------------------------------------------------
# Effective rank, rank deficiency, condition number, spectral norm
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("n,d", [(8, 12), (12, 8)])
def test_effective_rank_of_k_equal_singular_values(k: int, n: int, d: int) -> None:
    X = with_spectrum([2.5] * k, n, d, seed=k)
    assert M.effective_rank(X) == pytest.approx(k, abs=1e-9)
    assert M.effective_rank(X, erank_power=2) == pytest.approx(k, abs=1e-9)
    assert M.effective_rank(X, erank_normalize=True) == pytest.approx(k / min(n, d), abs=1e-9)


def test_effective_rank_sigma_vs_sigma_squared_match_numpy() -> None:
    s = [9.0, 4.0, 2.0, 0.5, 0.1]
    X = with_spectrum(s, 10, 7, seed=20)
    sv = np.linalg.svd(X.numpy(), compute_uv=False)
    p1 = sv / sv.sum()
    p2 = sv**2 / np.sum(sv**2)
    p1, p2 = p1[p1 > 1e-12], p2[p2 > 1e-12]
    e1 = float(np.exp(-np.sum(p1 * np.log(p1))))
    e2 = float(np.exp(-np.sum(p2 * np.log(p2))))
    assert M.effective_rank(X, erank_power=1) == pytest.approx(e1, rel=1e-9)
    assert M.effective_rank(X, erank_power=2) == pytest.approx(e2, rel=1e-9)
    assert abs(e1 - e2) > 0.3  # the conventions really differ on unequal spectra


def test_effective_rank_centering_option() -> None:
    X = randn(15, 6, seed=21) + 50.0  # the mean direction dominates the raw spectrum
    raw = M.effective_rank(X)
    centred = M.effective_rank(X, erank_center=True)
    assert raw < 2.0 < centred
    assert centred == pytest.approx(M.effective_rank(X - X.mean(0)), rel=1e-12)


def test_rank_deficiency_standard_and_relative_tolerance() -> None:
    X = with_spectrum([10.0, 1.0, 0.2, 0.05], 9, 6, seed=22)
    assert M.rank_deficiency(X) == pytest.approx(1 - 4 / 6)
    assert M.rank_deficiency(X, rank_tol=0.01) == pytest.approx(1 - 3 / 6)
    assert M.rank_deficiency(X, rank_tol=0.5) == pytest.approx(1 - 1 / 6)
    assert M.rank_deficiency(torch.zeros(3, 4)) == 1.0
    assert M.rank_deficiency(randn(5, 8, seed=23)) == 0.0


def test_rank_tolerance_uses_eps_of_the_original_dtype() -> None:
    X = with_spectrum([1.0, 0.8, 0.5, 1e-6], 20, 4, seed=24).float()
    # same values: as float64 the 1e-6 direction is far above 20·eps64; as float32 it is below 20·eps32
    assert M.rank_deficiency(X.double()) == 0.0
    assert M.rank_deficiency(X) == pytest.approx(0.25)


def test_condition_number_and_spectral_norm() -> None:
    s = [8.0, 3.0, 0.5]
    X = with_spectrum(s, 7, 3, seed=25)
    assert M.condition_number(X) == pytest.approx(16.0, rel=1e-9)
    assert M.spectral_norm(X) == pytest.approx(8.0, rel=1e-12)
    wide = randn(4, 9, seed=26)
    sv = np.linalg.svd(wide.numpy(), compute_uv=False)
    assert M.condition_number(wide) == pytest.approx(sv[0] / sv[-1], rel=1e-9)  # min(n, d)-th σ
    assert M.spectral_norm(wide) == pytest.approx(np.linalg.norm(wide.numpy(), 2), rel=1e-12)
    deficient = with_spectrum([5.0, 1.0], 6, 4, seed=27)
    assert M.condition_number(deficient) == math.inf
    assert M.condition_number(deficient, cond_eps=0.1) == pytest.approx(5.0 / 0.1, rel=1e-6)
    assert math.isnan(M.condition_number(torch.zeros(3, 3)))


# ---------------------------------------------------------------------------------------------------
# Precision and validation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_low_precision_inputs_are_computed_in_float64(dtype: torch.dtype) -> None:
    X = (randn(12, 9, seed=28) * 3).to(dtype)
    X64 = X.to(torch.float64)  # the same values
    for preset in ("standard", "paper"):
        for fn in (M.matrix_entropy, M.dataset_entropy, M.effective_rank, M.condition_number,
                   M.spectral_norm):
            assert fn(X, conventions=preset) == fn(X64, conventions=preset), fn.__name__
        assert M.rank_deficiency(X, conventions=preset, rank_tol=0.01) == M.rank_deficiency(
            X64, conventions=preset, rank_tol=0.01
        )
    H = (randn(2, 6, 9, seed=29) * 3).to(dtype)
    out = M.prompt_entropy(H)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, M.prompt_entropy(H.to(torch.float64)), atol=0, rtol=0)


def test_spectral_input_validation() -> None:
    with pytest.raises(ValueError, match="2-D"):
        M.effective_rank(randn(2, 3, 4))
    with pytest.raises(ValueError, match="at least 2 row"):
        M.dataset_entropy(randn(1, 5))
    with pytest.raises(ValueError, match="non-finite"):
        M.spectral_norm(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="3-D"):
        M.prompt_entropy(randn(4, 5))
    with pytest.raises(ValueError, match="alpha"):
        M.matrix_entropy(randn(4, 5), alpha=0.0)
    with pytest.raises(ValueError, match="'paper', 'standard'"):
        M.condition_number(randn(4, 5), conventions="textbook")
    with pytest.raises(ValueError, match="valid fields"):
        M.effective_rank(randn(4, 5), erank_powr=2)


@pytest.mark.parametrize("preset", ["standard", "paper"])
@pytest.mark.parametrize("shape", [(12, 30), (40, 9)])
def test_spectral_summary_equals_the_metrics_one_by_one(preset, shape):
    from mbt.metrics import spectral_summary

    g = torch.Generator().manual_seed(7)
    X = torch.randn(*shape, generator=g) @ torch.diag(torch.linspace(0.1, 3.0, shape[1])) + 2.0
    for overrides in ({}, {"erank_center": True}):
        got = spectral_summary(X, conventions=preset, **overrides)
        assert got["effective_rank"] == M.effective_rank(X, conventions=preset, **overrides)
        assert got["rank_deficiency"] == M.rank_deficiency(X, conventions=preset, **overrides)
        assert got["condition_number"] == M.condition_number(X, conventions=preset, **overrides)
        assert got["spectral_norm"] == M.spectral_norm(X, conventions=preset, **overrides)
    with pytest.raises(ValueError, match="valid: effective_rank"):
        spectral_summary(X, metrics=("erank",))
