"""Several token-level metrics of the same states, validated and converted to float64 once.

:func:`token_metrics` is what a layer-by-layer pipeline calls for every batch of every layer: the
public functions (:func:`~mbt.metrics.prompt_entropy`, :func:`~mbt.metrics.curvature`,
:func:`~mbt.metrics.sparsity`) each validate their input (shape, mask, finiteness at real
positions) and copy it to float64, which for three metrics means three copies and three scans of
the same ``(N, T, D)`` tensor. Here that happens once; the values are bit-identical to the public
functions'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from mbt.metrics._inputs import check_tokens
from mbt.metrics.conventions import Conventions, resolve_conventions
from mbt.metrics.registry import METRICS, names

__all__ = ["TOKEN_LEVEL", "token_metrics"]

#: The token-level metrics of the registry (:mod:`mbt.metrics.registry`), in their canonical order.
TOKEN_LEVEL: tuple[str, ...] = names("token")

#: Token-level metric name → its computation on validated ``(H64, mask, conventions)``.
_KERNELS: dict[str, Callable[[Tensor, Tensor, Conventions], Tensor]] = {k: METRICS[k].kernel for k in TOKEN_LEVEL}


def token_metrics(
    H: Tensor,
    mask: Tensor | None = None,
    names: Sequence[str] = TOKEN_LEVEL,
    *,
    conventions: str | Conventions = "standard",
    **overrides: Any,
) -> dict[str, Tensor]:
    """Compute several per-sample token-level metrics of the same hidden states.

    ``token_metrics(H, mask, names)[k]`` equals ``mbt.metrics.<k>(H, mask)`` for every ``k`` (same
    conventions), each of shape ``(N,)`` float64 on ``H``'s device; padded positions never enter a
    value.

    Args:
        H: Hidden states ``(N, T, D)``, any float dtype and device.
        mask: ``(N, T)`` bool or 0/1, 1 = real token; ``None`` = all real.
        names: Which metrics, any of :data:`TOKEN_LEVEL`.
        conventions: Preset name or :class:`~mbt.metrics.Conventions`.
        **overrides: Fields of the conventions to override (shared by all metrics).

    Returns:
        Metric name → ``(N,)`` values, in the order of ``names``.

    Raises:
        ValueError: An unknown metric name (the valid ones are listed), bad shapes or mask values,
            non-finite values at real positions, unknown conventions.
    """
    unknown = [k for k in names if k not in _KERNELS]
    if unknown:
        raise ValueError(f"unknown token-level metric(s) {unknown}; choose from {list(TOKEN_LEVEL)}")
    conv = resolve_conventions(conventions, **overrides)
    H64, m = check_tokens(H, mask)
    return {k: _KERNELS[k](H64, m, conv) for k in names}
