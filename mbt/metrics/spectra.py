"""Spectral metrics: matrix entropies, effective rank, rank deficiency, condition number, spectral norm.

Also the shared Gram-eigenvalue helpers :func:`gram_eigenvalues` and :func:`singular_values`.

Everything is computed in float64 on the input's device. Spectra come from ``torch.linalg.eigvalsh`` of
the smaller of the two Grams ``XXᵀ`` (n×n) and ``XᵀX`` (d×d), whose non-zero eigenvalues coincide; Gram
entries are never clamped. Singular values are ``σ = sqrt(max(λ, 0))``.

References:
    Giraldo, Rao & Príncipe (2014), *Measures of entropy from data using infinitely divisible kernels*
    (matrix-based α-entropy); Skean et al. (2025), *Layer by Layer* (prompt / dataset entropy);
    Roy & Vetterli (2007), *The effective rank*; Zhao et al., *A Layer-wise Analysis of Supervised
    Fine-Tuning* (its representation metrics; its Eq. 1 is the weight change, not an entropy); the
    authors' ``metric_utils.py`` (the book's appendix "The released code").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mbt.metrics._inputs import check_matrix, check_tokens, original_dtype
from mbt.metrics.conventions import Conventions, resolve_conventions

__all__ = [
    "condition_number",
    "dataset_entropy",
    "effective_rank",
    "gram_eigenvalues",
    "matrix_entropy",
    "prompt_entropy",
    "rank_deficiency",
    "singular_values",
    "spectral_norm",
    "spectral_summary",
]

_EPS64 = torch.finfo(torch.float64).eps
GRAM_SIDES: tuple[str, ...] = ("auto", "rows", "cols")


# ----------------------------------------------------------------------------------------------------
# Shared eigenvalue helpers
# ----------------------------------------------------------------------------------------------------


def gram_eigenvalues(X: Tensor, *, side: str = "auto") -> Tensor:
    """Eigenvalues of the row Gram ``XXᵀ``, in float64, sorted in descending order.

    ``XXᵀ`` (n×n) and ``XᵀX`` (d×d) share their non-zero eigenvalues, so the smaller Gram is
    decomposed with ``torch.linalg.eigvalsh`` and the result is padded with zeros (or truncated) to
    the ``n`` eigenvalues of ``XXᵀ``. Batched over leading dimensions. Gram entries are not clamped,
    so tiny negative eigenvalues (round-off) can appear.

    Args:
        X: Shape ``(..., n, d)``, any real dtype; cast to float64 on its own device.
        side: ``"auto"`` (``XXᵀ`` if ``n ≤ d``, else ``XᵀX``), ``"rows"`` (always ``XXᵀ``) or
            ``"cols"`` (always ``XᵀX``).

    Returns:
        Shape ``(..., n)``, float64, descending.

    Raises:
        ValueError: ``X`` has fewer than 2 dimensions or ``side`` is unknown.

    Complexity:
        ``O(n·d·min(n, d) + min(n, d)³)`` per matrix.
    """
    if X.ndim < 2:
        raise ValueError(f"X must have at least 2 dimensions (..., n, d), got shape {tuple(X.shape)}")
    if side not in GRAM_SIDES:
        raise ValueError(f"side must be one of {list(GRAM_SIDES)}, got {side!r}")
    X = X.to(torch.float64)
    n, d = X.shape[-2], X.shape[-1]
    if side == "auto":
        side = "rows" if n <= d else "cols"
    if side == "rows":
        return torch.linalg.eigvalsh(X @ X.mT).flip(-1)
    lam = torch.linalg.eigvalsh(X.mT @ X).flip(-1)
    if d >= n:
        return lam[..., :n]
    pad = torch.zeros(*lam.shape[:-1], n - d, dtype=lam.dtype, device=lam.device)
    return torch.cat([lam, pad], dim=-1)


def singular_values(X: Tensor, *, side: str = "auto") -> Tensor:
    """Singular values of ``X`` from its Gram spectrum: ``σ = sqrt(max(λ, 0))``, float64, descending.

    Args:
        X: Shape ``(..., n, d)``, any real dtype.
        side: Which Gram to decompose, see :func:`gram_eigenvalues`.

    Returns:
        Shape ``(..., min(n, d))``. Resolution: values below ≈ ``σ_max·sqrt(eps₆₄)`` are round-off.
    """
    n, d = X.shape[-2], X.shape[-1]
    lam = gram_eigenvalues(X, side=side)[..., : min(n, d)]
    return lam.clamp_min(0.0).sqrt()


def _zero_null(lam: Tensor, size: Tensor | int) -> Tensor:
    """Set eigenvalues ``λ ≤ size·eps₆₄·λ_max`` (round-off; ``lam`` descending, last dim) to exactly 0."""
    size_t = torch.as_tensor(size, dtype=torch.float64, device=lam.device)
    tol = lam[..., :1].clamp_min(0.0) * size_t.reshape(*size_t.shape, *([1] * (lam.ndim - size_t.ndim)))
    tol = tol * _EPS64
    return torch.where(lam > tol, lam, torch.zeros((), dtype=lam.dtype, device=lam.device))


# ----------------------------------------------------------------------------------------------------
# Entropy
# ----------------------------------------------------------------------------------------------------


def _preprocess_rows(X: Tensor, m: Tensor, conv: Conventions) -> Tensor:
    """Centre (over real rows) and L2-normalise rows of ``X`` (B, T, d); padded rows stay exactly 0."""
    zero = torch.zeros((), dtype=X.dtype, device=X.device)
    # scale of each sample before centring: rows whose norm falls below round-off of it are zero rows
    scale = torch.linalg.vector_norm(X, dim=-1).amax(dim=-1)
    if conv.center:
        n = m.sum(dim=1).clamp_min(1).to(X.dtype)
        mu = X.sum(dim=1, keepdim=True) / n[:, None, None]
        X = torch.where(m[..., None], X - mu, zero)
    if conv.row_normalize:
        norms = torch.linalg.vector_norm(X, dim=-1, keepdim=True)
        if conv.entropy_eps > 0:
            X = X / (norms + conv.entropy_eps)
        else:
            size = torch.clamp(m.sum(dim=1), min=X.shape[-1]).to(X.dtype)
            tol = (scale * size * _EPS64)[:, None, None]
            real = norms > tol
            X = torch.where(real, X / torch.where(real, norms, 1.0), zero)
    return X


def _entropy_of_spectrum(lam: Tensor, valid: Tensor, conv: Conventions) -> Tensor:
    """Matrix α-entropy (nats) of each row of ``lam`` (B, K), using only the ``valid`` entries."""
    alpha = float(conv.alpha)
    eps = float(conv.entropy_eps)
    zero = torch.zeros((), dtype=lam.dtype, device=lam.device)
    if eps > 0:  # the authors' guarded formula (the released code)
        lam = torch.where(valid, lam.clamp_min(eps), zero)
        trace = lam.sum(dim=-1)
        p = lam / (trace + eps)[:, None]
        if abs(alpha - 1.0) < 1e-6:
            h = -torch.where(valid, p * torch.log(p + eps), zero).sum(dim=-1)
        else:
            h = torch.log(torch.where(valid, p**alpha, zero).sum(dim=-1) + eps) / (1.0 - alpha)
        return torch.where(trace < eps, zero, h)
    lam = torch.where(valid & (lam > 0), lam, zero)
    trace = lam.sum(dim=-1)
    p = lam / torch.where(trace > 0, trace, 1.0)[:, None]
    pos = p > 0
    if alpha == 1.0:
        h = -torch.where(pos, p * torch.log(torch.where(pos, p, 1.0)), zero).sum(dim=-1)
    else:
        h = torch.log(torch.where(pos, p, zero).pow(alpha).sum(dim=-1).where(trace > 0, 1.0)) / (1.0 - alpha)
    return torch.where(trace > 0, h, torch.full((), math.nan, dtype=lam.dtype, device=lam.device))


def _normalize_entropy(h: Tensor, n: Tensor, d: int, conv: Conventions) -> Tensor:
    """Apply ``entropy_normalization``; samples without real rows become NaN."""
    nan = torch.full((), math.nan, dtype=h.dtype, device=h.device)
    if conv.entropy_normalization == "max":
        k = torch.clamp(n, max=d).to(h.dtype)
        denom = torch.log(k.clamp_min(2.0))
        h = torch.where(k > 1, h / denom, h * 0.0)
    return torch.where(n > 0, h, nan)


def _token_entropies(H64: Tensor, m: Tensor, conv: Conventions, *, side: str = "auto") -> Tensor:
    """Per-sample normalised entropy of masked token matrices ``H64`` (N, T, D) (pads already zero)."""
    _, T, D = H64.shape
    n = m.sum(dim=1)
    X = _preprocess_rows(H64, m, conv)
    lam = gram_eigenvalues(X, side=side)  # (N, T): the first n_i are the real-row kernel's eigenvalues
    if conv.zero_null_eigenvalues:
        lam = _zero_null(lam, torch.clamp(n, min=D))
    valid = torch.arange(T, device=H64.device)[None, :] < n[:, None]
    lam = lam / D + conv.ridge
    h = _entropy_of_spectrum(lam, valid, conv)
    return _normalize_entropy(h, n, D, conv)


def _dataset_entropy(X64: Tensor, conv: Conventions, *, side: str = "auto") -> float:
    """Normalised entropy of a pooled ``(N, D)`` matrix with the authors' ``N > D`` branch."""
    N, D = X64.shape
    m = torch.ones(1, N, dtype=torch.bool, device=X64.device)
    X = _preprocess_rows(X64[None], m, conv)
    lam = gram_eigenvalues(X, side=side)[:, : min(N, D)]
    if conv.zero_null_eigenvalues:
        lam = _zero_null(lam, max(N, D))
    if N <= D:  # kernel XXᵀ/D + ridge·I (N eigenvalues)
        lam = lam / D + conv.ridge
    # else: λ = σ(X)², D eigenvalues, no scaling and no ridge (the released code)
    valid = torch.ones_like(lam, dtype=torch.bool)
    h = _entropy_of_spectrum(lam, valid, conv)
    n = torch.full((1,), N, device=X64.device)
    return float(_normalize_entropy(h, n, D, conv)[0])


def _conventions_with_alpha(alpha: float | None, conventions: str | Conventions,
                            overrides: dict[str, Any]) -> Conventions:
    if alpha is not None:
        overrides = {**overrides, "alpha": alpha}
    return resolve_conventions(conventions, **overrides)


def prompt_entropy(
    H: Tensor,
    mask: Tensor | None = None,
    *,
    alpha: float | None = None,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> Tensor:
    r"""Per-sample (prompt) matrix entropy of token representations: the entropy of each prompt's token kernel.

    For sample ``i`` with real-token matrix ``X_i ∈ R^{n_i×D}`` (padding removed): optionally centre
    (``center``) and L2-normalise rows (``row_normalize``), form the kernel
    ``K_i = X_i X_iᵀ / D + ridge·I_{n_i}`` with eigenvalues ``λ_j``, ``p_j = λ_j / Σ_k λ_k``, and

    ``S_α = −Σ_j p_j log p_j`` (α = 1) or ``S_α = log(Σ_j p_j^α) / (1 − α)`` (α ≠ 1),

    divided by ``log(min(n_i, D))`` when ``entropy_normalization="max"``. With ``"max"`` and
    centring the attainable maximum is ``log(min(n_i − 1, D)) / log(min(n_i, D))`` (centring removes a
    dimension). All samples go through one batched ``eigvalsh`` of shape ``(N, k, k)``, ``k = min(T, D)``;
    padded positions are zeroed first and their null eigenvalues dropped, so the result does not depend
    on padding side, padding amount or the other samples of the batch.

    Args:
        H: Hidden states, shape ``(N, T, D)``, any float dtype and device.
        mask: ``(N, T)`` bool or 0/1, 1 = real token; ``None`` = all real.
        alpha: Entropy order α > 0; ``None`` = the preset's (1 in both presets).
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: Fields to override: ``center``, ``row_normalize``, ``entropy_normalization``,
            ``ridge``, ``entropy_eps``, ``zero_null_eigenvalues``.

    Returns:
        Shape ``(N,)``, float64, on ``H``'s device. NaN for a sample with no real token, and in
        ``standard`` for a sample whose preprocessed matrix is zero (e.g. one real token with centring:
        no spread, no spectrum); 0 when ``min(n_i, D) = 1`` otherwise.

    Raises:
        ValueError: Bad shapes, mask values, non-finite real entries, unknown conventions.

    Notes:
        ``paper`` = the released code: rows ``x/(‖x‖+1e-10)``, no centring, ``K = XXᵀ/D + 1e-6·I``,
        the 1e-10 guards of §4.2, divided by ``log(min(n_i, D))`` — but over real tokens only.
    """
    conv = _conventions_with_alpha(alpha, conventions, overrides)
    H64, m = check_tokens(H, mask)
    return _token_entropies(H64, m, conv)


def matrix_entropy(
    X: Tensor,
    *,
    alpha: float | None = None,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> float:
    r"""Normalised matrix α-entropy of one representation matrix (Giraldo et al.'s matrix-based entropy).

    ``X ∈ R^{n×d}`` is treated like one prompt's token matrix (see :func:`prompt_entropy` for the
    formula): centre / row-normalise per the conventions, eigenvalues ``λ`` of ``XXᵀ/d + ridge·I_n``,
    ``p = λ/Σλ``, Shannon (α = 1) or Rényi entropy, divided by ``log(min(n, d))`` under ``"max"``.
    Equivalent to ``prompt_entropy(X[None])[0]``.

    Args:
        X: Shape ``(n, d)``, ``n ≥ 1``, any float dtype.
        alpha: Entropy order α > 0; ``None`` = the preset's.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: Convention fields to override (see :func:`prompt_entropy`).

    Returns:
        The entropy as a Python float (NaN if the preprocessed matrix is zero in ``standard``).
    """
    conv = _conventions_with_alpha(alpha, conventions, overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    m = torch.ones(1, X64.shape[0], dtype=torch.bool, device=X64.device)
    return float(_token_entropies(X64[None], m, conv)[0])


def dataset_entropy(
    X: Tensor,
    *,
    alpha: float | None = None,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> float:
    r"""Dataset-level matrix entropy of pooled sample vectors: the entropy of the samples' kernel.

    ``X ∈ R^{N×D}`` holds one pooled vector per sample. Centre / L2-normalise rows per the
    conventions; if ``N ≤ D`` the eigenvalues are those of ``XXᵀ/D + ridge·I_N``; if ``N > D`` they are
    ``σ(X)²`` (D values, no scaling, no ridge — the authors' branch; irrelevant in ``standard`` where
    the ridge is 0 and scaling cancels). Then ``p = λ/Σλ``, Shannon (α = 1) or Rényi entropy, divided by
    ``log(min(N, D))`` under ``"max"``.

    Args:
        X: Shape ``(N, D)``, ``N ≥ 2``, any float dtype.
        alpha: Entropy order α > 0; ``None`` = the preset's.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: Convention fields to override (see :func:`prompt_entropy`).

    Returns:
        The entropy as a Python float.

    Notes:
        ``paper`` = the released code (rows ``x/(‖x‖+1e-10)``, no centring, 1e-10 guards).
    """
    conv = _conventions_with_alpha(alpha, conventions, overrides)
    X64 = check_matrix(X, "X", min_rows=2)
    return _dataset_entropy(X64, conv)


# ----------------------------------------------------------------------------------------------------
# Rank-type spectral metrics on a pooled matrix
# ----------------------------------------------------------------------------------------------------


def _spectrum(X64: Tensor, conv: Conventions) -> Tensor:
    """Descending singular values (length ``min(n, d)``), round-off zeroed if the conventions say so."""
    n, d = X64.shape
    lam = gram_eigenvalues(X64)[: min(n, d)]
    if conv.zero_null_eigenvalues:
        lam = _zero_null(lam, max(n, d))
    return lam.clamp_min(0.0).sqrt()


def effective_rank(X: Tensor, *, conventions: str | Conventions = "standard", **overrides: Any) -> float:
    r"""Effective rank of a pooled representation matrix, paper eq. (4).

    With singular values ``σ_i`` of ``X`` (``i ≤ min(n, d)``; columns centred first if
    ``erank_center``), weights ``w_i = σ_i`` (``erank_power=1``, Roy & Vetterli 2007) or ``w_i = σ_i²``
    (``erank_power=2``), ``p_i = w_i / Σ_j w_j`` and

    ``erank = exp(−Σ_i p_i log p_i)``  (``0 log 0 = 0``),

    divided by ``min(n, d)`` if ``erank_normalize``. A matrix with ``k`` equal non-zero singular values
    has effective rank ``k`` under both powers.

    Args:
        X: Shape ``(n, d)``, any float dtype.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``erank_power``, ``erank_normalize``, ``erank_center``, ``erank_eps``,
            ``zero_null_eigenvalues``.

    Returns:
        The effective rank as a Python float (NaN for an all-zero matrix in ``standard``).

    Notes:
        ``paper`` = the released code: raw matrix, ``p_i = σ_i² / Σ_j (σ_j² + 1e-9)``,
        ``exp(−Σ p log(p + 1e-9)) / min(n, d)``.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    if conv.erank_center:
        X64 = X64 - X64.mean(dim=0, keepdim=True)
    return _erank_from_sigma(_spectrum(X64, conv), conv)


def _erank_from_sigma(sigma: Tensor, conv: Conventions) -> float:
    return float(_erank_batched(sigma, conv))


def _erank_batched(sigma: Tensor, conv: Conventions) -> Tensor:
    """Effective rank of every spectrum along the last dimension of ``sigma (..., K)`` (descending values)."""
    w = sigma if conv.erank_power == 1 else sigma**2
    k = sigma.shape[-1]
    if conv.erank_eps > 0:
        p = w / (w + conv.erank_eps).sum(dim=-1, keepdim=True)
        h = -(p * torch.log(p + conv.erank_eps)).sum(dim=-1)
        erank = torch.exp(h)
    else:
        total = w.sum(dim=-1, keepdim=True)
        p = w / torch.where(total > 0, total, 1.0)
        pos = p > 0
        h = -(torch.where(pos, p * torch.log(torch.where(pos, p, 1.0)), 0.0)).sum(dim=-1)
        erank = torch.where(total[..., 0] > 0, torch.exp(h), torch.full_like(h, math.nan))
    return erank / k if conv.erank_normalize else erank


def rank_deficiency(X: Tensor, *, conventions: str | Conventions = "standard", source_dtype: torch.dtype | None = None,
                    **overrides: Any) -> float:
    r"""Rank deficiency ``1 − rank(X) / min(n, d)`` of a pooled matrix (paper §3.3, "algebraic").

    ``rank(X) = #{i : σ_i > τ}`` with ``τ = σ_max·max(n, d)·eps(dtype)`` (``rank_tol="dtype"``, the
    NumPy ``matrix_rank`` rule with the epsilon of the input's *original* dtype) or ``τ = r·σ_max``
    (``rank_tol=r``, a relative numerical rank).

    Args:
        X: Shape ``(n, d)``, any float dtype.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        source_dtype: The dtype ``X`` was computed in, when it was upcast before this call (e.g.
            bf16 hidden states pooled into a float32 matrix); ``rank_tol="dtype"`` uses its epsilon.
            Default: ``X``'s own dtype.
        **overrides: ``rank_tol``, ``zero_null_eigenvalues``.

    Returns:
        A Python float in ``[0, 1]`` (1 for the zero matrix).

    Notes:
        ``paper`` = the released code: ``1 − #{σ_i > 0.01·σ_max} / min(n, d)``. With
        ``rank_tol="dtype"`` a bf16 input gets ``eps = 2⁻⁷``, i.e. a very loose threshold: pass a float
        ``rank_tol`` for low-precision data.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    dtype = source_dtype if source_dtype is not None else original_dtype(X)
    return _rank_deficiency_from_sigma(_spectrum(X64, conv), X64.shape, dtype, conv)


def _rank_deficiency_from_sigma(sigma: Tensor, shape: torch.Size, dtype: torch.dtype, conv: Conventions) -> float:
    return float(_rank_deficiency_batched(sigma, shape, dtype, conv))


def _rank_deficiency_batched(sigma: Tensor, shape: torch.Size, dtype: torch.dtype, conv: Conventions) -> Tensor:
    """Rank deficiency of every spectrum along the last dimension of ``sigma (..., K)`` (descending values)."""
    n, d = shape
    s_max = sigma[..., :1]
    if conv.rank_tol == "dtype":
        tol = s_max * max(n, d) * torch.finfo(dtype).eps
    else:
        tol = s_max * float(conv.rank_tol)
    rank = (sigma > tol).sum(dim=-1).to(torch.float64)
    return 1.0 - rank / min(n, d)


def condition_number(X: Tensor, *, conventions: str | Conventions = "standard", **overrides: Any) -> float:
    r"""Condition number ``σ_max / (σ_min + cond_eps)`` of a pooled matrix (paper §4.2).

    ``σ_min`` is the ``min(n, d)``-th singular value (so a wide or tall matrix is judged on its
    ``min(n, d)`` non-trivial directions).

    Args:
        X: Shape ``(n, d)``, any float dtype.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``cond_eps``, ``zero_null_eigenvalues``.

    Returns:
        A Python float; ``inf`` for a rank-deficient input when ``cond_eps = 0`` (``standard``), NaN
        for the zero matrix. Singular values come from the Gram spectrum, so ratios beyond ≈ 1e7 are
        at the float64 resolution limit and reported as ``inf`` in ``standard``.

    Notes:
        ``paper`` = the released code: ``σ_max / (σ_min + 1e-9)``.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    return _condition_from_sigma(_spectrum(X64, conv), conv)


def _condition_from_sigma(sigma: Tensor, conv: Conventions) -> float:
    return float(_condition_batched(sigma, conv))


def _condition_batched(sigma: Tensor, conv: Conventions) -> Tensor:
    """Condition number of every spectrum along the last dimension of ``sigma (..., K)`` (descending values).

    ``σ_max / (σ_min + cond_eps)``; ``inf`` where that denominator is 0 and ``σ_max > 0``, NaN for a zero spectrum.
    """
    s_max, s_min = sigma[..., 0], sigma[..., -1]
    denom = s_min + conv.cond_eps
    ratio = s_max / torch.where(denom == 0, 1.0, denom)
    singular = torch.where(s_max > 0, torch.full_like(s_max, math.inf), torch.full_like(s_max, math.nan))
    return torch.where(denom == 0, singular, ratio)


def spectral_norm(X: Tensor, *, conventions: str | Conventions = "standard", **overrides: Any) -> float:
    r"""Spectral norm ``σ_max(X) = ‖X‖₂`` of the raw pooled matrix (paper §4.2).

    Not per sample: for ``N`` pooled vectors it grows like ``√N`` times a typical norm (the paper's
    "over 500" is at N = 200). Same in both presets.

    Args:
        X: Shape ``(n, d)``, any float dtype.
        conventions: Preset name or :class:`~mbt.metrics.Conventions` (accepted for uniformity).
        **overrides: Convention fields (none changes this metric).

    Returns:
        A Python float.
    """
    conv = resolve_conventions(conventions, **overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    return float(_spectrum(X64, conv)[0])


_FROM_SIGMA = ("effective_rank", "rank_deficiency", "condition_number", "spectral_norm")


def spectral_summary(
    X: Tensor,
    *,
    metrics: tuple[str, ...] = _FROM_SIGMA,
    conventions: str | Conventions = "standard",
    source_dtype: torch.dtype | None = None,
    **overrides: Any,
) -> dict[str, float]:
    """Several rank-type metrics of one pooled matrix from a single eigendecomposition.

    Gives exactly what :func:`effective_rank`, :func:`rank_deficiency`, :func:`condition_number`
    and :func:`spectral_norm` give one by one, but computes the singular values of ``X`` once
    (twice when ``erank_center`` asks for the centred spectrum).

    Args:
        X: Shape ``(n, d)``, any float dtype.
        metrics: Any of ``"effective_rank"``, ``"rank_deficiency"``, ``"condition_number"``,
            ``"spectral_norm"``.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        source_dtype: The dtype ``X`` was computed in (see :func:`rank_deficiency`); default ``X``'s own.
        **overrides: Convention fields.

    Returns:
        ``{metric: value}`` for the requested metrics.
    """
    unknown = [m for m in metrics if m not in _FROM_SIGMA]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid: {', '.join(_FROM_SIGMA)}")
    conv = resolve_conventions(conventions, **overrides)
    X64 = check_matrix(X, "X", min_rows=1)
    sigma = _spectrum(X64, conv)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "effective_rank":
            centred = _spectrum(X64 - X64.mean(dim=0, keepdim=True), conv) if conv.erank_center else sigma
            out[name] = _erank_from_sigma(centred, conv)
        elif name == "rank_deficiency":
            dtype = source_dtype if source_dtype is not None else original_dtype(X)
            out[name] = _rank_deficiency_from_sigma(sigma, X64.shape, dtype, conv)
        elif name == "condition_number":
            out[name] = _condition_from_sigma(sigma, conv)
        else:
            out[name] = float(sigma[0])
    return out
