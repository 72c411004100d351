r"""Every layer metric on bootstrap resamples of the texts: the same resampled texts at every layer and model.

A joint bootstrap over texts draws ``B`` resamples once: count vectors ``c_b`` (``c_bi`` = how often text
``i`` is drawn, ``Σ_i c_bi = n``). Every metric of every layer of both models is evaluated on the same ``c_b``,
so the replicates of two layers, or of Base and SFT, are paired: a band contrast or an SFT − Base difference
computed replicate by replicate carries the correlation that shared texts induce.

How each kind of metric is evaluated on a resample (``X`` the ``(n, D)`` pooled states, ``Y`` SFT's):

* **per-text values** (token-level metrics, cosine similarity): the mean of the drawn values — exact;
* **centroids** (mean shift, relative mean shift): ``μ_b = Σ_i c_bi x_i / n`` — exact;
* **linear CKA**: exact, in sample space. With ``K = XXᵀ``, ``L = YYᵀ`` and the resample's centring
  ``K̃ = K − k1ᵀ − 1kᵀ + κ11ᵀ`` (``k = Kc/n``, ``κ = cᵀKc/n²``, likewise ``L̃``),
  ``HSIC_b(K, L) = cᵀ(K̃ ∘ L̃)c`` and ``CKA_b = HSIC_b(K, L) / √(HSIC_b(K, K) HSIC_b(L, L))``; every term is a
  product of ``n × n`` matrices with ``c``, so ``B`` replicates cost ``O(B n²)``;
* **spectra** (dataset entropy, effective rank, rank deficiency, condition number, spectral norm): to first
  order in the resampling weights. With ``XᵀX = Σ_k λ_k v_k v_kᵀ`` and projections ``p_ik = x_i·v_k``, the
  resampled Gram ``Σ_i c_bi x_i x_iᵀ`` has eigenvalues ``λ_k^b ≈ Σ_i c_bi p_ik²`` (first-order perturbation,
  ``O(B n D)``; the exact spectra cost ``O(B n D²)`` and a ``D × D`` eigensolve each, several times the whole
  analysis). Where the entropy centres and normalises the rows first, the resample's own mean moves every row
  too; that enters to first order as well (:func:`_centring_shift`). Each metric is then the metric's own
  function of that spectrum. Resampling the rows outright would be worse, not only slower: repeated rows
  lower the rank of the resampled matrix, so such replicates of an effective rank or an entropy sit several
  standard deviations below the estimate and spread ~1.5× wider than fresh samples do;
  ``tests/metrics/test_resampling.py`` shows both on Gaussian data, and that the first-order replicates
  spread like fresh samples.

The debiased CKA has no replicates: a resample repeats rows, which its unbiased estimator would count as
distinct pairs of samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from mbt.metrics._inputs import check_matrix, original_dtype
from mbt.metrics.conventions import Conventions
from mbt.metrics.spectra import (
    _condition_batched,
    _entropy_of_spectrum,
    _erank_batched,
    _normalize_entropy,
    _preprocess_rows,
    _rank_deficiency_batched,
    _zero_null,
)

__all__ = ["NO_REPLICATES", "counts", "mean_replicates", "pair_replicates", "pooled_replicates"]

NO_REPLICATES: frozenset[str] = frozenset({"cka_debiased"})
"""Metrics without bootstrap replicates (see the module docstring)."""

_RANK_TYPE = ("effective_rank", "rank_deficiency", "condition_number", "spectral_norm")


def counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Count vectors ``(B, n)`` (float64) of resampled indices ``idx (B, m)`` over ``n`` texts."""
    out = np.zeros((idx.shape[0], n))
    np.add.at(out, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.reshape(-1)), 1.0)
    return out


def mean_replicates(values: Tensor | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of per-text values over each resample, NaN values (undefined texts) left out: ``(B,)``.

    Args:
        values: ``(n,)`` one value per text.
        idx: ``(B, n)`` resampled indices.
    """
    v = values.detach().cpu().double().numpy() if isinstance(values, Tensor) else np.asarray(values, float)
    picked = v.reshape(-1)[idx]
    ok = np.isfinite(picked)
    n_ok = ok.sum(axis=1)
    total = np.where(ok, picked, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_ok > 0, total / np.maximum(n_ok, 1), np.nan)


def _eigenbasis(Z: Tensor) -> tuple[Tensor, Tensor]:
    """``(P, V)``: the rows of ``Z (n, d)`` in the eigenbasis ``V (d, r)`` of ``ZᵀZ`` (``P = ZV``, ``r = min(n, d)``).

    Columns in descending order of eigenvalue, computed from the smaller Gram: for ``n ≤ d``, ``ZZᵀ = UΛUᵀ``
    gives ``P = UΛ^{1/2}`` and ``V = ZᵀUΛ^{-1/2}`` (0 for a zero eigenvalue).
    """
    n, d = Z.shape
    if n <= d:
        lam, U = torch.linalg.eigh(Z @ Z.mT)
        root = lam.clamp_min(0.0).sqrt()
        V = (Z.mT @ U) / torch.where(root > 0, root, 1.0)
        return (U * root).flip(-1), torch.where(root > 0, V, 0.0).flip(-1)
    _, V = torch.linalg.eigh(Z.mT @ Z)
    V = V.flip(-1)
    return Z @ V, V


def _first_order_spectrum(Z: Tensor, C: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """First-order eigenvalues ``(B, r)`` of ``Σ_i c_bi z_i z_iᵀ``, with the eigenbasis ``(P, V)`` they came from."""
    P, V = _eigenbasis(Z)
    return C @ P.square(), P, V


def _centring_shift(X: Tensor, Z: Tensor, P: Tensor, V: Tensor, C: Tensor, conv: Conventions) -> Tensor:
    """First-order change ``(B, r)`` of the eigenvalues when each resample centres the rows on its own mean.

    With ``z_i = (x_i − μ)/r_i`` (centred, then row-normalised), a change ``δμ`` of the mean moves ``z_i`` by
    ``J_i δμ``, ``J_i = −(I − z_i z_iᵀ)/r_i``, and the ``k``-th eigenvalue by ``w_k·δμ`` with
    ``w_k = 2 Σ_i q_ik J_iᵀ v_k = −2 Σ_i (q_ik/r_i)(v_k − q_ik z_i)`` (``q_ik = z_i·v_k``); ``δμ_b = Σ_i c_bi x_i/n
    − μ``. Rows centred but not normalised have ``Σ_i q_ik = 0``: no first-order change. Uncentred rows: none.
    """
    if not (conv.center and conv.row_normalize):
        return torch.zeros(C.shape[0], P.shape[1], dtype=P.dtype, device=P.device)
    mu = X.mean(dim=0)
    r = torch.linalg.vector_norm(X - mu, dim=1)
    inv = torch.where(r > 0, 1.0 / torch.where(r > 0, r, 1.0), 0.0)[:, None]
    s = (P * inv).sum(dim=0)  # Σ_i q_ik / r_i
    m = (P.square() * inv).mT @ Z  # (r, d): Σ_i q_ik² z_i / r_i
    W = -2.0 * (s[:, None] * V.mT - m)
    dmu = (C @ X) / C.sum(dim=1, keepdim=True) - mu
    return dmu @ W.mT


def _sorted_roots(lam: Tensor, n: int, d: int, conv: Conventions) -> Tensor:
    """Singular values from first-order eigenvalues, as :func:`~mbt.metrics.spectra._spectrum` treats them."""
    lam = lam.clamp_min(0.0).sort(dim=-1, descending=True).values
    if conv.zero_null_eigenvalues:
        lam = _zero_null(lam, max(n, d))
    return lam.sqrt()


def pooled_replicates(X: Tensor, idx: np.ndarray, names: Sequence[str], conv: Conventions,
                      source_dtype: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Pooled metrics of every resample ``b`` (first-order spectra, see the module docstring): ``{name: (B,)}``.

    Args:
        X: ``(n, D)`` pooled states of one model at one layer.
        idx: ``(B, n)`` resampled indices, the same for every layer and model.
        names: Pooled metric names (``dataset_entropy``, ``effective_rank``, ``rank_deficiency``,
            ``condition_number``, ``spectral_norm``).
        conv: Resolved conventions (the same as the metrics').
        source_dtype: The model's dtype (``rank_tol="dtype"`` uses its epsilon), as in
            :func:`~mbt.metrics.rank_deficiency`.
    """
    X64 = check_matrix(X, "X", min_rows=1)
    dtype = source_dtype if source_dtype is not None else original_dtype(X)
    n, d = X64.shape
    B = idx.shape[0]
    out = {name: np.full(B, np.nan) for name in names}
    if B == 0:
        return out
    C = torch.as_tensor(counts(idx, n), device=X64.device)
    rank_type = [m for m in names if m in _RANK_TYPE]
    if rank_type:
        sigma = _sorted_roots(_first_order_spectrum(X64, C)[0], n, d, conv)
        if conv.erank_center and "effective_rank" in rank_type:  # centred columns: exact to first order
            centred = _sorted_roots(_first_order_spectrum(X64 - X64.mean(dim=0, keepdim=True), C)[0], n, d, conv)
        else:
            centred = sigma
        batched = {"effective_rank": lambda: _erank_batched(centred, conv),
                   "rank_deficiency": lambda: _rank_deficiency_batched(sigma, torch.Size((n, d)), dtype, conv),
                   "condition_number": lambda: _condition_batched(sigma, conv),
                   "spectral_norm": lambda: sigma[:, 0]}
        for name in rank_type:
            out[name] = batched[name]().cpu().numpy()
    if "dataset_entropy" in names:
        m = torch.ones(1, n, dtype=torch.bool, device=X64.device)
        Z = _preprocess_rows(X64[None], m, conv)[0]
        lam, P, V = _first_order_spectrum(Z, C)
        lam = (lam + _centring_shift(X64, Z, P, V, C, conv)).clamp_min(0.0).sort(dim=-1, descending=True).values
        if conv.zero_null_eigenvalues:
            lam = _zero_null(lam, max(n, d))
        if n <= d:  # the kernel ZZᵀ/D + ridge·I, as dataset_entropy
            lam = lam / d + conv.ridge
        h = _entropy_of_spectrum(lam, torch.ones_like(lam, dtype=torch.bool), conv)
        out["dataset_entropy"] = _normalize_entropy(h, torch.full((B,), n, device=X64.device), d, conv).cpu().numpy()
    return out


def _centred_hsic(A: Tensor, Bm: Tensor, C: Tensor) -> Tensor:
    """``cᵀ(Ã ∘ B̃)c`` for every count vector ``c`` (rows of ``C``), with ``Ã``, ``B̃`` centred on ``c``'s mean.

    With ``n = Σc``, ``a = Ac/n``, ``α = cᵀAc/n²`` (likewise ``b``, ``β``) and ``Ã = A − a1ᵀ − 1aᵀ + α11ᵀ``,
    the sum is ``cᵀ(A∘B)c − 2n Σ_i c_i a_i b_i + n²αβ``; for ``c = 1`` it is the biased HSIC numerator
    ``⟨HAH, HBH⟩_F``.
    """
    n = C.sum(dim=1)
    CA, CB = C @ A, C @ Bm  # (B, n): rows c_bᵀA = (A c_b)ᵀ for symmetric A
    a, b = CA / n[:, None], CB / n[:, None]
    alpha, beta = (CA * C).sum(dim=1) / n**2, (CB * C).sum(dim=1) / n**2
    quadratic = ((C @ (A * Bm)) * C).sum(dim=1)
    return quadratic - 2.0 * n * (C * a * b).sum(dim=1) + n**2 * alpha * beta


def pair_replicates(X: Tensor, Y: Tensor, idx: np.ndarray, names: Sequence[str],
                    conv: Conventions) -> dict[str, np.ndarray]:
    """Base-vs-SFT metrics of every resample, exactly: ``{name: (B,)}``.

    For ``cka``, ``mean_shift`` and ``relative_mean_shift``. Per-text metrics (cosine similarity:
    :func:`mean_replicates` of its values) and :data:`NO_REPLICATES` are
    left out.

    Args:
        X: ``(n, D1)`` Base pooled states.
        Y: ``(n, D2)`` SFT pooled states of the same texts.
        idx: ``(B, n)`` resampled indices.
        names: Pair metric names.
        conv: Resolved conventions (``cka_eps``; ``mean_shift_relative`` makes ``mean_shift`` relative, as the
            metric does).
    """
    X64, Y64 = check_matrix(X, "X", min_rows=2), check_matrix(Y, "Y", min_rows=2)
    if X64.shape[0] != Y64.shape[0]:
        raise ValueError(f"X and Y must hold the same texts, got {tuple(X64.shape)} and {tuple(Y64.shape)}")
    n = X64.shape[0]
    out = {name: np.full(idx.shape[0], np.nan) for name in names if name in ("cka", "mean_shift",
                                                                              "relative_mean_shift")}
    if idx.shape[0] == 0 or not out:
        return out
    C = torch.as_tensor(counts(idx, n), device=X64.device)
    if "cka" in out:
        K, L = X64 @ X64.mT, Y64 @ Y64.mT
        cross = _centred_hsic(K, L, C)
        denom = (_centred_hsic(K, K, C).clamp_min(0.0) * _centred_hsic(L, L, C).clamp_min(0.0)).sqrt()
        denom = denom + float(conv.cka_eps)
        out["cka"] = torch.where(denom > 0, cross / torch.where(denom > 0, denom, 1.0),
                                 torch.full_like(cross, math.nan)).cpu().numpy()
    mx, my = (C @ X64) / n, (C @ Y64) / n
    shift = torch.linalg.vector_norm(my - mx, dim=-1)
    ref = torch.linalg.vector_norm(mx, dim=-1)
    rel = torch.where(ref > 0, shift / torch.where(ref > 0, ref, 1.0), torch.full_like(ref, math.nan))
    if "mean_shift" in out:
        out["mean_shift"] = (rel if conv.mean_shift_relative else shift).cpu().numpy()
    if "relative_mean_shift" in out:
        out["relative_mean_shift"] = rel.cpu().numpy()
    return out
