"""Base-vs-SFT alignment metrics on paired pooled representations: CKA, cosine similarity, mean shift.

``X`` holds one (pooled) vector per sample from the Base model and ``Y`` the vector of the same sample
from the SFT model, so row ``i`` of ``X`` and of ``Y`` describe the same input. All computation is in
float64 on the inputs' device.

References:
    Kornblith et al. (2019), *Similarity of Neural Network Representations Revisited* (linear CKA, and
    the debiased variant of their demo notebook); Song et al. (2012), *Feature Selection via Dependence
    Maximization* (unbiased HSIC); Nguyen, Raghu & Kornblith (2021), *Do Wide and Deep Networks Learn
    the Same Things?*; Zhao et al., *A Layer-wise Analysis of Supervised Fine-Tuning*, eq. (6)–(7);
    the authors' ``metric_utils.py`` (the book's appendix "The released code").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mbt.metrics._inputs import check_matrix, check_pair
from mbt.metrics.conventions import Conventions, resolve_conventions

__all__ = ["cka", "cosine_similarity", "mean_shift"]

CKA_FORMS: tuple[str, ...] = ("auto", "gram", "feature")


def _cka_terms(Xc: Tensor, Yc: Tensor, form: str) -> tuple[Tensor, Tensor, Tensor]:
    """Return ``(⟨K, L⟩_F, ⟨K, K⟩_F, ⟨L, L⟩_F)`` for the centred linear Grams ``K = XcXcᵀ``, ``L = YcYcᵀ``."""
    if form == "feature":
        xy = (Yc.mT @ Xc).square().sum()
        xx = (Xc.mT @ Xc).square().sum()
        yy = (Yc.mT @ Yc).square().sum()
    else:
        K = Xc @ Xc.mT
        L = Yc @ Yc.mT
        xy = (K * L).sum()
        xx = K.square().sum()
        yy = L.square().sum()
    return xy, xx, yy


def _linear_cka(X64: Tensor, Y64: Tensor, *, debiased: bool, eps: float, form: str = "auto") -> float:
    """Linear CKA of validated float64 matrices; ``form`` forces the Gram or the feature-space path."""
    if form not in CKA_FORMS:
        raise ValueError(f"form must be one of {list(CKA_FORMS)}, got {form!r}")
    n = X64.shape[0]
    if form == "auto":
        form = "feature" if n > max(X64.shape[1], Y64.shape[1]) else "gram"
    Xc = X64 - X64.mean(dim=0, keepdim=True)
    Yc = Y64 - Y64.mean(dim=0, keepdim=True)
    xy, xx, yy = _cka_terms(Xc, Yc, form)
    if debiased:
        # Unbiased HSIC (Song et al. 2012), times n(n-3), written for column-centred features:
        # with row norms r_i = ‖x_i‖², s = Σ r_i, the zero-diagonal Gram K̃ satisfies
        # tr(K̃L̃) = ⟨K, L⟩ − r_x·r_y, 1ᵀK̃1 = −s_x and K̃1 = −r_x, which gives
        # ⟨K, L⟩ − n/(n−2)·r_x·r_y + s_x s_y/((n−1)(n−2)).
        rx = Xc.square().sum(dim=1)
        ry = Yc.square().sum(dim=1)
        sx, sy = rx.sum(), ry.sum()
        c1 = n / (n - 2.0)
        c2 = 1.0 / ((n - 1.0) * (n - 2.0))
        xy = xy - c1 * (rx @ ry) + c2 * sx * sy
        xx = xx - c1 * (rx @ rx) + c2 * sx * sx
        yy = yy - c1 * (ry @ ry) + c2 * sy * sy
    prod = float(xx) * float(yy)
    if prod < 0.0 or (prod == 0.0 and eps == 0.0):
        return math.nan
    return float(xy) / (math.sqrt(prod) + eps)


def cka(
    X: Tensor,
    Y: Tensor,
    *,
    debiased: bool = False,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> float:
    r"""Linear centred kernel alignment between paired representations, paper eq. (6).

    Biased (Kornblith et al. 2019): with ``K = XXᵀ``, ``L = YYᵀ`` and ``H = I − 11ᵀ/N``,

    ``CKA = ⟨HKH, HLH⟩_F / (‖HKH‖_F ‖HLH‖_F + cka_eps)``
    ``    = ‖Y_cᵀX_c‖_F² / (‖X_cᵀX_c‖_F ‖Y_cᵀY_c‖_F + cka_eps)``  (column-centred ``X_c``, ``Y_c``).

    The feature-space form is used when ``N > max(D1, D2)`` (cheaper), the Gram form otherwise; they
    agree to round-off. Invariant to orthogonal transforms and isotropic scaling of either input; the
    biased value is in ``[0, 1]``.

    Debiased (``debiased=True``; Song et al. 2012, Kornblith's demo, Nguyen et al. 2021): every HSIC is
    replaced by the unbiased estimator

    ``HSIC₁(K, L) = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((N−1)(N−2)) − 2/(N−2)·1ᵀK̃L̃1] / (N(N−3))``

    with ``K̃``, ``L̃`` the Grams with zeroed diagonals. Needs ``N ≥ 4``. Not clipped: in small samples
    it can be slightly negative or above 1. NaN if a self-term ``HSIC₁(K, K)`` is not positive.

    Args:
        X: ``(N, D1)`` (e.g. Base pooled states), any float dtype.
        Y: ``(N, D2)`` (e.g. SFT pooled states of the same samples), same ``N``; ``D2`` may differ.
        debiased: Use the unbiased HSIC estimator.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``cka_eps``.

    Returns:
        CKA as a Python float; NaN if either input is constant (zero centred Gram) and ``cka_eps = 0``.

    Raises:
        ValueError: Different row counts, ``N < 2`` (``N < 4`` when debiased), non-finite entries.

    Notes:
        ``paper`` = the released code: biased, ``cka_eps = 1e-9`` (Gram double-centring, ≡ ``HKH``).
        Complexity ``O(N·D1·D2)`` (feature form) or ``O(N²·(D1 + D2))`` (Gram form).
    """
    conv = resolve_conventions(conventions, **overrides)
    min_rows = 4 if debiased else 2
    X64 = check_matrix(X, "X", min_rows=min_rows)
    Y64 = check_matrix(Y, "Y", min_rows=min_rows)
    if X64.shape[0] != Y64.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows (paired samples), got {tuple(X64.shape)} "
            f"and {tuple(Y64.shape)}"
        )
    if X64.device != Y64.device:
        raise ValueError(f"X and Y must be on the same device, got {X64.device} and {Y64.device}")
    return _linear_cka(X64, Y64, debiased=debiased, eps=float(conv.cka_eps))


def cosine_similarity(
    X: Tensor,
    Y: Tensor,
    *,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> Tensor:
    r"""Row-wise cosine similarity between paired vectors, paper eq. (7).

    ``c_i = x_i·y_i / (‖x_i‖ ‖y_i‖)`` (``cosine_eps = 0``, exact; NaN for a zero row) or, with
    ``cosine_eps = ε > 0``, ``x_i·y_i / (max(‖x_i‖, ε)·max(‖y_i‖, ε))`` (torch's
    ``F.cosine_similarity``; 0 for a zero row).

    Args:
        X: ``(N, D)``, any float dtype.
        Y: ``(N, D)``, same shape.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``cosine_eps``.

    Returns:
        Shape ``(N,)``, float64 in ``[−1, 1]``, on the inputs' device. The paper reports its mean.

    Notes:
        ``paper`` = the released code: torch's default ε = 1e-8, on pooled vectors.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64, Y64 = check_pair(X, Y)
    nx = torch.linalg.vector_norm(X64, dim=1)
    ny = torch.linalg.vector_norm(Y64, dim=1)
    dot = (X64 * Y64).sum(dim=1)
    eps = float(conv.cosine_eps)
    if eps > 0:
        return dot / (nx.clamp_min(eps) * ny.clamp_min(eps))
    ok = (nx > 0) & (ny > 0)
    nan = torch.full((), math.nan, dtype=torch.float64, device=X64.device)
    return torch.where(ok, dot / torch.where(ok, nx * ny, 1.0), nan)


def mean_shift(
    X: Tensor,
    Y: Tensor,
    *,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> float:
    r"""Euclidean distance between the centroids of two representation sets, paper eq. (7).

    ``shift = ‖mean_i y_i − mean_i x_i‖₂``; with ``mean_shift_relative`` it is divided by
    ``‖mean_i x_i‖₂`` (an extension, scale-free; NaN if that centroid is 0). The scale of the
    un-normalised value grows with the residual-stream norm of deeper layers.

    Args:
        X: ``(N1, D)``, e.g. Base pooled states.
        Y: ``(N2, D)``, e.g. SFT pooled states; only the centroids are compared, so ``N2`` may differ
            from ``N1`` (in the pipeline both hold the same samples).
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``mean_shift_relative``.

    Returns:
        A Python float.

    Notes:
        ``paper`` = the released code: un-normalised.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64, Y64 = check_pair(X, Y, same_rows=False)
    mx = X64.mean(dim=0)
    shift = float(torch.linalg.vector_norm(Y64.mean(dim=0) - mx))
    if conv.mean_shift_relative:
        ref = float(torch.linalg.vector_norm(mx))
        return shift / ref if ref > 0 else math.nan
    return shift
