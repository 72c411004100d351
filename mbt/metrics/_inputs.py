"""Input validation shared by the metric functions (private).

Every public metric converts its inputs here: a clear ``ValueError`` for a wrong shape, too few rows,
non-finite values or a malformed mask, and a float64 copy on the input's device for the computation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _as_tensor(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{name} must be a tensor (or array-like), got {type(x).__name__}") from err
    if x.is_complex():
        raise ValueError(f"{name} must be real-valued, got dtype {x.dtype}")
    return x


def original_dtype(x: Any) -> torch.dtype:
    """Return the floating dtype whose machine epsilon describes ``x`` (float64 for non-float inputs)."""
    if isinstance(x, Tensor) and x.is_floating_point():
        return x.dtype
    return torch.float64


def check_matrix(X: Any, name: str = "X", *, min_rows: int = 1) -> Tensor:
    """Validate a ``(n, d)`` matrix and return it as float64 on its own device.

    Args:
        X: The matrix.
        name: Argument name used in error messages.
        min_rows: Smallest allowed ``n``.

    Returns:
        ``X`` in float64, shape ``(n, d)``.

    Raises:
        ValueError: Not 2-D, ``n < min_rows``, ``d < 1`` or non-finite entries.
    """
    X = _as_tensor(X, name)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) matrix, got shape {tuple(X.shape)} ({X.ndim}-D)")
    n, d = X.shape
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} row(s), got shape {tuple(X.shape)}")
    if d < 1:
        raise ValueError(f"{name} needs at least one column, got shape {tuple(X.shape)}")
    X64 = X.to(torch.float64)
    if not bool(torch.isfinite(X64).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return X64


def check_pair(X: Any, Y: Any, *, min_rows: int = 1, same_rows: bool = True,
               same_cols: bool = True) -> tuple[Tensor, Tensor]:
    """Validate two matrices compared row by row (or by centroid) and return both as float64.

    Raises:
        ValueError: Either matrix is invalid, the row counts differ (``same_rows``), the column counts
            differ (``same_cols``) or the two live on different devices.
    """
    X64 = check_matrix(X, "X", min_rows=min_rows)
    Y64 = check_matrix(Y, "Y", min_rows=min_rows)
    if same_rows and X64.shape[0] != Y64.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows (paired samples), got {tuple(X64.shape)} "
            f"and {tuple(Y64.shape)}"
        )
    if same_cols and X64.shape[1] != Y64.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns, got {tuple(X64.shape)} and {tuple(Y64.shape)}"
        )
    if X64.device != Y64.device:
        raise ValueError(f"X and Y must be on the same device, got {X64.device} and {Y64.device}")
    return X64, Y64


def check_tokens(H: Any, mask: Any = None, name: str = "H") -> tuple[Tensor, Tensor]:
    """Validate token-level states ``(N, T, D)`` and their mask; zero the padded positions.

    Padded positions are replaced by exact zeros *before* anything else (``torch.where``, so even
    NaN/inf there is harmless), which is what makes every token metric ignore them completely.

    Args:
        H: Hidden states, shape ``(N, T, D)``.
        mask: ``None`` (all positions real) or shape ``(N, T)``, bool or 0/1 values; 1 = real token.
        name: Argument name used in error messages.

    Returns:
        ``(H64, m)``: float64 states with padded positions set to 0, and the boolean mask on
        ``H``'s device.

    Raises:
        ValueError: ``H`` not 3-D or empty, mask of the wrong shape or with values other than 0/1,
            non-finite values at real positions.
    """
    H = _as_tensor(H, name)
    if H.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (N samples, T tokens, D dims), got shape {tuple(H.shape)} ({H.ndim}-D)"
        )
    N, T, D = H.shape
    if N < 1 or T < 1 or D < 1:
        raise ValueError(f"{name} must have N, T, D >= 1, got shape {tuple(H.shape)}")
    if mask is None:
        m = torch.ones(N, T, dtype=torch.bool, device=H.device)
    else:
        mask = _as_tensor(mask, "mask")
        if tuple(mask.shape) != (N, T):
            raise ValueError(
                f"mask must have shape (N, T) = {(N, T)} matching {name} {tuple(H.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        mask = mask.to(H.device)
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask must be boolean or contain only 0 and 1")
            mask = mask != 0
        m = mask
    H64 = torch.where(m[..., None], H.to(torch.float64), torch.zeros((), dtype=torch.float64, device=H.device))
    if not bool(torch.isfinite(H64).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf) at real (unmasked) positions")
    return H64, m
