"""token_metrics: several token-level metrics validated once, equal to the public functions bit for bit."""

from __future__ import annotations

import pytest
import torch

import mbt.metrics as M
from mbt.metrics.registry import names


def _states(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    H = torch.randn(5, 9, 6, generator=gen, dtype=torch.float32)
    mask = torch.ones(5, 9, dtype=torch.bool)
    mask[1, 6:] = False  # right padding
    mask[3, :4] = False  # left padding
    mask[4, 2:] = False  # two real tokens: curvature undefined (NaN)
    H[1, 7] = float("nan")  # at a padded position: must be ignored
    return H, mask


@pytest.mark.parametrize("conventions", ["standard", "paper"])
def test_each_value_is_the_public_functions(conventions: str) -> None:
    H, mask = _states()
    got = M.token_metrics(H, mask, conventions=conventions)
    assert list(got) == list(M.TOKEN_LEVEL)
    for name, values in got.items():
        expected = getattr(M, name)(H, mask, conventions=conventions)
        assert values.dtype == torch.float64 and values.shape == (5,)
        torch.testing.assert_close(values, expected, rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(got["curvature"][4]) and torch.isfinite(got["curvature"][:4]).all()


def test_subset_order_and_overrides() -> None:
    H, mask = _states(1)
    got = M.token_metrics(H, mask, ["sparsity", "prompt_entropy"], sparsity_eps=0.5, center=True)
    assert list(got) == ["sparsity", "prompt_entropy"]
    torch.testing.assert_close(got["sparsity"], M.sparsity(H, mask, sparsity_eps=0.5), rtol=0, atol=0)
    torch.testing.assert_close(got["prompt_entropy"], M.prompt_entropy(H, mask, center=True), rtol=0, atol=0)
    assert not torch.equal(got["sparsity"], M.sparsity(H, mask))  # the override took effect


def test_bad_input_is_refused_with_the_valid_names() -> None:
    H, mask = _states()
    with pytest.raises(ValueError, match=r"unknown token-level metric.*'curvatur'.*prompt_entropy"):
        M.token_metrics(H, mask, ["curvatur"])
    H[0, 0, 0] = float("inf")  # a real position
    with pytest.raises(ValueError, match="non-finite"):
        M.token_metrics(H, mask)


def test_analysis_token_metrics_are_the_token_level_ones() -> None:
    assert set(names("token")) == set(M.TOKEN_LEVEL)
