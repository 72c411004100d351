"""The ``paper`` preset against an independent float64 NumPy re-derivation of the released code.

Each ``ref_*`` function below re-states one formula of the authors' ``metric_utils.py`` as described in
the book's appendix "The released code" (SVDs of the kernels, their epsilons and clamps), applied to
the real tokens of one sample (padding masking is our fix and is kept in the paper preset).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import randn

import mbt.metrics as M
from mbt.metrics import CONVENTION_PRESETS, Conventions, resolve_conventions


def heavy(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random data with a few massive-activation dims and a common offset, like residual streams."""
    X = randn(*shape, seed=seed) * torch.exp(1.5 * randn(shape[-1], seed=seed + 1)) + randn(shape[-1], seed=seed + 2)
    return X


# --- §4.2 matrix entropy core --------------------------------------------------------------------


def ref_alpha_entropy(lam: np.ndarray, alpha: float = 1.0) -> float:
    lam = np.maximum(lam, 1e-10)
    trace = lam.sum()
    p = lam / (trace + 1e-10)
    if abs(alpha - 1.0) < 1e-6:
        h = -np.sum(p * np.log(p + 1e-10))
    else:
        h = np.log(np.sum(p**alpha) + 1e-10) / (1.0 - alpha)
    return 0.0 if trace < 1e-10 else float(h)


def ref_normalize(h: float, n: int, d: int) -> float:
    denom = math.log(min(n, d))
    return 0.0 if denom <= 1e-9 else h / denom


def ref_rows(X: np.ndarray) -> np.ndarray:
    return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-10)


# --- §4.3 prompt entropy: token Gram per sample -------------------------------------------------------


def ref_prompt_entropy(X: np.ndarray, alpha: float = 1.0) -> float:
    n, d = X.shape
    Z = ref_rows(X)
    K = Z @ Z.T / d + 1e-6 * np.eye(n)
    lam = np.linalg.svd(K, compute_uv=False)
    return ref_normalize(ref_alpha_entropy(lam, alpha), n, d)


# --- §4.4 dataset entropy --------------------------------------------------------------------------


def ref_dataset_entropy(X: np.ndarray, alpha: float = 1.0) -> float:
    n, d = X.shape
    Z = ref_rows(X)
    if n > d:
        lam = np.linalg.svd(Z, compute_uv=False) ** 2
    else:
        lam = np.linalg.svd(Z @ Z.T / d + 1e-6 * np.eye(n), compute_uv=False)
    return ref_normalize(ref_alpha_entropy(lam, alpha), n, d)


# --- §4.5 / §4.6 spectra of the raw pooled matrix -------------------------------------------------


def ref_effective_rank(X: np.ndarray) -> float:
    s = np.linalg.svd(X, compute_uv=False)
    p = s**2 / np.sum(s**2 + 1e-9)
    return math.exp(-np.sum(p * np.log(p + 1e-9))) / min(X.shape)


def ref_spectral(X: np.ndarray) -> tuple[float, float, float]:
    s = np.linalg.svd(X, compute_uv=False)
    cond = s[0] / (s[-1] + 1e-9)
    rank_def = 1.0 - np.sum(s > 0.01 * s[0]) / min(X.shape)
    return float(s[0]), float(cond), float(rank_def)


# --- §4.7 sparsity, §4.8 curvature -------------------------------------------------------------------


def ref_sparsity(H: np.ndarray) -> float:
    return float(np.mean(np.abs(H) < 0.01 * np.max(np.abs(H))))


def ref_curvature(h: np.ndarray) -> float:
    d = h[1:] - h[:-1]
    v1, v2 = d[:-1], d[1:]
    n1 = np.maximum(np.linalg.norm(v1, axis=1), 1e-8)
    n2 = np.maximum(np.linalg.norm(v2, axis=1), 1e-8)
    sim = np.sum(v1 * v2, axis=1) / (n1 * n2)
    return float(np.mean(np.arccos(np.clip(sim, -0.999, 0.999))) / math.pi)


# --- §4.9–4.11 alignment ------------------------------------------------------------------------------


def ref_cka(X: np.ndarray, Y: np.ndarray) -> float:
    def centre(G: np.ndarray) -> np.ndarray:
        row = G.mean(axis=0, keepdims=True)
        return G - row - row.T + row.mean()

    Kx, Ky = centre(X @ X.T), centre(Y @ Y.T)
    return float(np.sum(Kx * Ky) / (np.sqrt(np.sum(Kx**2) * np.sum(Ky**2)) + 1e-9))


# -------------------------------------------------------------------------------------------------
# Tests
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0, 0.5])
def test_prompt_entropy_paper_matches_authors_formula(alpha: float) -> None:
    lengths = [9, 5, 2, 1]
    D = 7  # n > D for the first sample, n < D for the others
    H = heavy(len(lengths), 11, D, seed=1)
    mask = torch.zeros(len(lengths), 11, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, 11 - n:] = True  # left padding
    out = M.prompt_entropy(H, mask, alpha=alpha, conventions="paper")
    for i, n in enumerate(lengths):
        expected = ref_prompt_entropy(H[i, 11 - n:].numpy(), alpha)
        assert float(out[i]) == pytest.approx(expected, abs=1e-9), (i, n)
    assert float(out[-1]) == 0.0  # a single token: log(min(1, D)) = 0 -> 0 like the authors
    X = heavy(6, 20, seed=2)
    assert M.matrix_entropy(X, alpha=alpha, conventions="paper") == pytest.approx(
        ref_prompt_entropy(X.numpy(), alpha), abs=1e-9
    )


def test_prompt_entropy_paper_wide_token_matrix_uses_token_kernel() -> None:
    # many tokens, few dims: the authors still build the T×T kernel (T - D eigenvalues equal the ridge)
    X = heavy(40, 5, seed=3)
    assert M.matrix_entropy(X, conventions="paper") == pytest.approx(ref_prompt_entropy(X.numpy()), abs=1e-9)
    assert M.matrix_entropy(X, conventions="paper") != pytest.approx(ref_dataset_entropy(X.numpy()), abs=1e-6)


@pytest.mark.parametrize("n,d", [(6, 15), (15, 15), (30, 8)])
@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_dataset_entropy_paper_both_branches(n: int, d: int, alpha: float) -> None:
    X = heavy(n, d, seed=4)
    expected = ref_dataset_entropy(X.numpy(), alpha)
    assert M.dataset_entropy(X, alpha=alpha, conventions="paper") == pytest.approx(expected, abs=1e-9)


def test_dataset_entropy_paper_differs_from_standard() -> None:
    X = heavy(12, 30, seed=5)
    assert abs(M.dataset_entropy(X, conventions="paper") - M.dataset_entropy(X)) > 1e-3


@pytest.mark.parametrize("scale", [1.0, 3e-5])  # at tiny scale the authors' 1e-9 guards matter
@pytest.mark.parametrize("n,d", [(8, 20), (25, 6)])
def test_spectral_metrics_paper(n: int, d: int, scale: float) -> None:
    X = heavy(n, d, seed=6)
    X[:, 0] += 300.0  # a massive-activation column dominates σ_max
    X = X * scale
    x = X.numpy()
    assert M.effective_rank(X, conventions="paper") == pytest.approx(ref_effective_rank(x), rel=1e-9)
    s_max, cond, rank_def = ref_spectral(x)
    assert M.spectral_norm(X, conventions="paper") == pytest.approx(s_max, rel=1e-12)
    assert M.condition_number(X, conventions="paper") == pytest.approx(cond, rel=1e-8)
    assert M.rank_deficiency(X, conventions="paper") == pytest.approx(rank_def, abs=1e-12)
    assert 0.0 < rank_def < 1.0  # the 1% rule bites on this data


def test_rank_deficiency_paper_one_percent_rule() -> None:
    k = 4
    U = torch.linalg.qr(randn(10, k, seed=7))[0]
    V = torch.linalg.qr(randn(6, k, seed=8))[0]
    X = U @ torch.diag(torch.tensor([5.0, 1.0, 0.06, 0.04], dtype=torch.float64)) @ V.T
    assert M.rank_deficiency(X, conventions="paper") == pytest.approx(1 - 3 / 6)
    assert M.condition_number(X, conventions="paper") > 1e6  # σ_min = 0 -> σ_max / 1e-9-ish


def test_sparsity_paper_per_sample_and_global_group_rule() -> None:
    lengths = [6, 4, 5]
    H = heavy(3, 6, 12, seed=9) ** 3
    mask = torch.zeros(3, 6, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    out = M.sparsity(H, mask, conventions="paper")
    for i, n in enumerate(lengths):
        assert float(out[i]) == pytest.approx(ref_sparsity(H[i, :n].numpy()), abs=1e-15)
    assert float(out.min()) > 0.05  # the rule bites
    # on a full (unpadded) group, "global_max" reproduces the authors' group value exactly
    group = H[:, :4]
    got = M.sparsity(group, conventions="paper", sparsity_reference="global_max").mean()
    assert float(got) == pytest.approx(ref_sparsity(group.numpy()), abs=1e-15)


def test_curvature_paper_matches_authors_formula() -> None:
    H = heavy(3, 8, 5, seed=10)
    H[1, 3] = H[1, 2]  # a repeated state: the authors' cosine eps gives cos = 0 (angle π/2)
    lengths = [8, 6, 3]
    mask = torch.zeros(3, 8, dtype=torch.bool)
    for i, n in enumerate(lengths):
        mask[i, :n] = True
    out = M.curvature(H, mask, conventions="paper")
    for i, n in enumerate(lengths):
        assert float(out[i]) == pytest.approx(ref_curvature(H[i, :n].numpy()), abs=1e-12)
    # the standard preset skips the zero step instead
    assert float(M.curvature(H[1:2, :6], conventions="paper")[0]) != pytest.approx(
        float(M.curvature(H[1:2, :6], curvature_units="pi")[0]), abs=1e-3
    )


def test_alignment_metrics_paper() -> None:
    X = heavy(15, 9, seed=11)
    Y = X @ randn(9, 9, seed=12) * 0.3 + heavy(15, 9, seed=13)
    assert M.cka(X, Y, conventions="paper") == pytest.approx(ref_cka(X.numpy(), Y.numpy()), abs=1e-12)
    Yw = heavy(15, 40, seed=14)
    assert M.cka(X, Yw, conventions="paper") == pytest.approx(ref_cka(X.numpy(), Yw.numpy()), abs=1e-12)
    Xz = X.clone()
    Xz[3] = 0.0
    Xz[4] = 1e-10  # below torch's eps
    torch.testing.assert_close(
        M.cosine_similarity(Xz, Y, conventions="paper"),
        torch.nn.functional.cosine_similarity(Xz, Y, dim=1), atol=1e-15, rtol=0,
    )
    expected = np.linalg.norm(Y.numpy().mean(0) - X.numpy().mean(0))
    assert M.mean_shift(X, Y, conventions="paper") == pytest.approx(expected, rel=1e-12)


# -------------------------------------------------------------------------------------------------
# The conventions object itself
# -------------------------------------------------------------------------------------------------


def test_presets_record_their_choices() -> None:
    paper = CONVENTION_PRESETS["paper"]
    standard = CONVENTION_PRESETS["standard"]
    assert paper.name == "paper" and standard.name == "standard"
    assert (paper.center, paper.erank_power, paper.rank_tol, paper.curvature_clip) == (False, 2, 0.01, 0.999)
    assert (standard.center, standard.erank_power, standard.rank_tol) == (True, 1, "dtype")
    assert paper.describe() == "paper" and standard.describe() == "standard"
    tweaked = resolve_conventions("paper", alpha=2.0, center=True)
    assert tweaked.name == "paper"
    assert tweaked.describe() == "paper+alpha=2.0,center=True"
    assert tweaked.as_dict()["alpha"] == 2.0
    assert resolve_conventions(tweaked) is tweaked
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.alpha = 3.0  # type: ignore[misc]


def test_conventions_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"valid presets: \['paper', 'standard'\]"):
        resolve_conventions("Paper")
    with pytest.raises(ValueError, match="valid fields: .*alpha"):
        resolve_conventions("standard", alfa=2.0)
    with pytest.raises(ValueError, match="valid fields"):
        resolve_conventions("standard", name="paper")
    with pytest.raises(ValueError, match=r"sparsity_reference must be one of \['absolute'"):
        resolve_conventions("standard", sparsity_reference="group")
    with pytest.raises(ValueError, match="erank_power"):
        Conventions(erank_power=3)
    with pytest.raises(ValueError, match="rank_tol"):
        Conventions(rank_tol=2.0)
    with pytest.raises(ValueError, match="curvature_clip"):
        Conventions(curvature_clip=1.5)
    with pytest.raises(ValueError, match="entropy_normalization"):
        M.matrix_entropy(randn(3, 4), entropy_normalization="logN")
    with pytest.raises(ValueError, match="conventions must be"):
        resolve_conventions(3)  # type: ignore[arg-type]
