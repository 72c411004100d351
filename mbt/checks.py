"""Fail-fast checks shared by every module (foundation layer: imports no other ``mbt`` module).

A NaN or an infinity in a model's activations, logits or weights silently turns every downstream
number into garbage (NaN entropies averaged away, ``argmax`` of NaN logits counted as a hit,
perplexities of exactly 1). :func:`require_finite` stops the computation where the first
non-finite value appears and says where that was.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["NonFiniteError", "NonFiniteLossError", "require_finite", "require_finite_parameters"]


class NonFiniteError(ValueError):
    """Raised when a tensor, array or number that must be finite holds NaN or infinity."""


class NonFiniteLossError(NonFiniteError, FloatingPointError):
    """Raised by a training loop when a step's loss is NaN or infinite.

    A :class:`NonFiniteError` (so the ``mbt`` command reports it in one line) and, as before, a
    ``FloatingPointError`` (so callers that caught that keep working).
    """


def _counts(values: Any) -> tuple[int, int, int]:
    """``(n_nan, n_inf, n_total)`` of a tensor, array or number."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of mbt
        torch = None
    if torch is not None and isinstance(values, torch.Tensor):
        t = values.detach()
        if not (t.is_floating_point() or t.is_complex()):
            return 0, 0, t.numel()
        if t.is_floating_point() and t.dtype != torch.float64:
            # exact and allocation-free: a float64 sum of finite fp32/fp16/bf16 values cannot overflow
            if bool(torch.isfinite(t.sum(dtype=torch.float64))):
                return 0, 0, t.numel()
        elif bool(torch.isfinite(t).all()):
            return 0, 0, t.numel()
        return int(torch.isnan(t).sum()), int(torch.isinf(t).sum()), t.numel()
    if isinstance(values, int | float):
        x = float(values)
        return int(math.isnan(x)), int(math.isinf(x)), 1
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating)):
        return 0, 0, arr.size
    return int(np.isnan(arr).sum()), int(np.isinf(arr).sum()), arr.size


def require_finite(values: Any, where: str, *, unit: str = "value(s)") -> None:
    """Raise :class:`NonFiniteError` unless every entry of ``values`` is finite.

    Integer and boolean inputs always pass. The check runs on the values' own device; for a
    float32/16 tensor it costs one float64 sum (no full-size temporary) unless something is wrong.

    Args:
        values: A ``torch.Tensor``, NumPy array, array-like or Python number.
        where: Where the values come from, e.g. ``"base model, layer 3, hidden states"``; it
            starts the error message.
        unit: What one entry is, for the message (e.g. ``"token vector(s)"`` when ``values`` are
            per-token sums, which are finite exactly when every summed value is).

    Raises:
        NonFiniteError: e.g. ``"base model, layer 3, hidden states: 2 NaN and 0 infinite values
        among 4096"``.
    """
    n_nan, n_inf, total = _counts(values)
    if n_nan or n_inf:
        raise NonFiniteError(
            f"{where}: {n_nan} NaN and {n_inf} infinite {unit} among {total}; the computation was "
            "stopped because every number derived from them would be meaningless (check the weights, "
            "the dtype's range, or the inputs)"
        )


def require_finite_parameters(module: Any, where: str) -> None:
    """Raise :class:`NonFiniteError` naming the first parameter of ``module`` that holds NaN or infinity.

    Meant for the weights a computation starts from (a model about to be trained or evaluated): a
    poisoned checkpoint is then reported by tensor name before any step runs, instead of surfacing
    later as a NaN loss, NaN logits or a perplexity of exactly 1. Costs one float64 sum per tensor.

    Args:
        module: A ``torch.nn.Module`` (a PEFT or nnsight wrapper works too: anything with
            ``named_parameters()``).
        where: What the weights are, e.g. ``"train_lora: the Base model"``; it starts the message.

    Raises:
        NonFiniteError: e.g. ``"train_lora: the Base model, parameter 'model.layers.1.mlp.down_proj.weight':
        1 NaN and 0 infinite value(s) among 2048; ..."``.
    """
    import torch

    inner = getattr(module, "_module", None)  # an nnsight wrapper holds the module here
    if isinstance(inner, torch.nn.Module):
        module = inner
    for name, param in module.named_parameters():
        require_finite(param, f"{where}, parameter {name!r}")
