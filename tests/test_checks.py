"""Non-finite checks that name where a value appeared (mbt.checks)."""

from __future__ import annotations

import pytest


def test_require_finite_counts_and_passes():
    import numpy as np
    import torch

    from mbt.checks import NonFiniteError, require_finite

    require_finite(torch.ones(3, dtype=torch.bfloat16), "ok")
    require_finite(np.arange(3), "integers")
    require_finite(1.5, "a number")
    with pytest.raises(NonFiniteError, match=r"^here: 1 NaN and 2 infinite value\(s\) among 5"):
        require_finite(torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.0]), "here")
    with pytest.raises(NonFiniteError, match="1 NaN"):
        require_finite(np.array([np.nan, 1.0], dtype=np.float64), "array")
    with pytest.raises(NonFiniteError, match="0 NaN and 1 infinite"):
        require_finite(torch.tensor([1e308, float("inf")], dtype=torch.float64), "float64")
    assert issubclass(NonFiniteError, ValueError)
