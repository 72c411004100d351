"""Token-level geometry: activation sparsity and trajectory curvature, per sample, padding ignored.

Both functions take hidden states ``H`` of shape ``(N, T, D)`` and an optional mask ``(N, T)`` and
return one float64 value per sample on ``H``'s device. Padded positions are zeroed before anything
else and never enter a value, so results do not depend on padding side or amount, nor (except for
``sparsity_reference="global_max"``) on the other samples of the batch.

References:
    Zhao et al., *A Layer-wise Analysis of Supervised Fine-Tuning*, §3.3 (sparsity) and eq. (5)
    (curvature); Hosseini & Fedorenko (2023), *Large language models implicitly learn to straighten
    neural sentence trajectories* (curvature); the authors' ``metric_utils.py``
    (the book's appendix "The released code").
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mbt.metrics._inputs import check_tokens
from mbt.metrics.conventions import Conventions, resolve_conventions

__all__ = ["curvature", "sparsity"]


def sparsity(
    H: Tensor,
    mask: Tensor | None = None,
    *,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> Tensor:
    r"""Fraction of inactive activations per sample (paper §3.3, "fraction of inactive neurons").

    For sample ``i`` with real tokens ``t`` and dims ``d``:

    ``s_i = #{(t, d) : |h_td| < ε·r} / (n_i·D)``

    where ``ε = sparsity_eps`` and the reference ``r`` is (``sparsity_reference``): 1 (``"absolute"``),
    ``rms_d(h_t) = sqrt(mean_d h_td²)`` (``"token_rms"``, scale-invariant and batch-independent),
    ``max_d |h_td|`` (``"token_max"``), ``max_{t,d} |h_td|`` over the sample's real tokens
    (``"sample_max"``) or over every real entry of the whole ``H`` (``"global_max"``, the authors'
    group rule — a sample's value then depends on its batch). Exact zeros always count as inactive
    (this only matters when the reference is itself 0, e.g. an all-zero token under ``"token_rms"``).

    Args:
        H: Hidden states ``(N, T, D)``, any float dtype and device.
        mask: ``(N, T)`` bool or 0/1, 1 = real token; ``None`` = all real.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``sparsity_eps``, ``sparsity_reference``.

    Returns:
        Shape ``(N,)``, float64 in ``[0, 1]``, on ``H``'s device; NaN for a sample without real tokens.

    Notes:
        ``paper`` uses ``"sample_max"`` with ε = 0.01, the batch-independent per-sample analogue of the
        authors' ``|h| < 0.01·max|h|`` over a 10-sample group (the released code); pass
        ``sparsity_reference="global_max"`` on their group to reproduce their exact value.
    """
    conv = resolve_conventions(conventions, **overrides)
    H64, m = check_tokens(H, mask)
    return _sparsity(H64, m, conv)


def _sparsity(H64: Tensor, m: Tensor, conv: Conventions) -> Tensor:
    """:func:`sparsity` on validated float64 states ``(N, T, D)`` with zeroed pads and a bool mask ``(N, T)``."""
    D = H64.shape[-1]
    A = H64.abs()
    eps = float(conv.sparsity_eps)
    ref = conv.sparsity_reference
    if ref == "absolute":
        tau = torch.full((1, 1, 1), eps, dtype=A.dtype, device=A.device)
    elif ref == "token_rms":
        tau = eps * torch.sqrt((H64**2).mean(dim=-1, keepdim=True))
    elif ref == "token_max":
        tau = eps * A.amax(dim=-1, keepdim=True)
    elif ref == "sample_max":
        tau = eps * A.amax(dim=(1, 2), keepdim=True)  # pads are exact zeros, so they never win the max
    else:  # "global_max"
        tau = (eps * A.max()).reshape(1, 1, 1)
    inactive = ((A < tau) | (A == 0)) & m[..., None]
    n = m.sum(dim=1).to(torch.float64)
    frac = inactive.sum(dim=(1, 2)).to(torch.float64) / (n * D).clamp_min(1.0)
    return torch.where(n > 0, frac, torch.full((), math.nan, dtype=torch.float64, device=H64.device))


def _compact(values: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Move the kept positions of ``values`` (N, T, D) to the front, in order; return them and counts."""
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    gathered = torch.gather(values, 1, order[..., None].expand_as(values))
    return gathered, keep.sum(dim=1)


def _cosine_rows(a: Tensor, b: Tensor, eps: float) -> Tensor:
    """Cosine along the last dim: exact (``eps = 0``, NaN for a zero vector) or torch-style clamped."""
    na = torch.linalg.vector_norm(a, dim=-1)
    nb = torch.linalg.vector_norm(b, dim=-1)
    dot = (a * b).sum(dim=-1)
    if eps > 0:
        return dot / (na.clamp_min(eps) * nb.clamp_min(eps))
    return dot / (na * nb)


def curvature(
    H: Tensor,
    mask: Tensor | None = None,
    *,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> Tensor:
    r"""Mean turning angle of each sample's token trajectory, paper eq. (5).

    Padding is removed first (real tokens keep their order, so left and right padding agree). With the
    real states ``h_1..h_n`` of a sample, steps ``d_t = h_{t+1} − h_t`` and

    ``θ_t = arccos(clip(cos(d_t, d_{t+1})))``,   value ``= mean_t θ_t``

    in radians, or divided by π (``curvature_units="pi"``, in ``[0, 1]``). ``clip`` is ``[−1, 1]``
    (round-off only) or ``[−c, c]`` with ``c = curvature_clip``. A straight path scores 0, orthogonal
    successive steps π/2, a reversal π. With ``curvature_skip_zero_steps`` zero-length steps (repeated
    states, e.g. repeated tokens at the embedding layer) are dropped before the angles are taken.

    Args:
        H: Hidden states ``(N, T, D)``, any float dtype and device.
        mask: ``(N, T)`` bool or 0/1, 1 = real token; ``None`` = all real.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: ``curvature_units``, ``curvature_clip``, ``curvature_skip_zero_steps``,
            ``cosine_eps``.

    Returns:
        Shape ``(N,)``, float64, on ``H``'s device. NaN for a sample with fewer than 3 real tokens, or
        fewer than 2 non-zero steps when zero steps are skipped.

    Notes:
        ``paper`` = the released code: torch cosine (eps 1e-8, so a zero step has cosine 0), clamp
        to ±0.999, divided by π; a straight path scores ``arccos(0.999)/π ≈ 0.0142``. The authors
        average over all positions of a 10-sample group; here each sample gets its own mean.
    """
    conv = resolve_conventions(conventions, **overrides)
    H64, m = check_tokens(H, mask)
    return _curvature(H64, m, conv)


def _curvature(H64: Tensor, m: Tensor, conv: Conventions) -> Tensor:
    """:func:`curvature` on validated float64 states ``(N, T, D)`` with zeroed pads and a bool mask ``(N, T)``."""
    N, T, _ = H64.shape
    device = H64.device
    nan = torch.full((), math.nan, dtype=torch.float64, device=device)
    if T < 3:
        return nan.expand(N).clone()
    Hc, n = _compact(H64, m)
    steps = Hc[:, 1:] - Hc[:, :-1]  # (N, T-1, D)
    step_ok = torch.arange(T - 1, device=device)[None, :] < (n - 1)[:, None]
    if conv.curvature_skip_zero_steps:
        step_ok = step_ok & (torch.linalg.vector_norm(steps, dim=-1) > 0)
        steps, n_steps = _compact(steps, step_ok)
    else:
        n_steps = step_ok.sum(dim=1)
    pair_ok = torch.arange(T - 2, device=device)[None, :] < (n_steps - 1)[:, None]
    a, b = steps[:, :-1], steps[:, 1:]
    if conv.cosine_eps > 0:
        cos = _cosine_rows(a, b, conv.cosine_eps)
    else:  # exact; invalid pairs get a harmless denominator so no NaN leaks into valid sums
        na = torch.linalg.vector_norm(a, dim=-1)
        nb = torch.linalg.vector_norm(b, dim=-1)
        denom = na * nb
        cos = (a * b).sum(dim=-1) / torch.where(pair_ok, denom, 1.0)
    clip = 1.0 if conv.curvature_clip is None else float(conv.curvature_clip)
    theta = torch.arccos(cos.clamp(-clip, clip))
    count = pair_ok.sum(dim=1).to(torch.float64)
    total = torch.where(pair_ok, theta, torch.zeros((), dtype=torch.float64, device=device)).sum(dim=1)
    value = torch.where(count > 0, total / count.clamp_min(1.0), nan)
    if conv.curvature_units == "pi":
        value = value / math.pi
    return value
