"""Token-level metrics: curvature and sparsity formulas, and masking for every token metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import randn

import mbt.metrics as M


def path(points: list[list[float]]) -> torch.Tensor:
    return torch.tensor(points, dtype=torch.float64)[None]


# ---------------------------------------------------------------------------------------------------
# Curvature
# ---------------------------------------------------------------------------------------------------


def test_curvature_of_straight_path_is_zero() -> None:
    a, b = randn(6, seed=1), randn(6, seed=2)
    t = torch.arange(8, dtype=torch.float64)
    H = (a + t[:, None] * b)[None]
    assert float(M.curvature(H)[0]) == pytest.approx(0.0, abs=1e-6)
    # uneven speed along the same line is still straight
    t2 = torch.tensor([0.0, 0.1, 0.5, 2.0, 2.2, 5.0], dtype=torch.float64)
    assert float(M.curvature((a + t2[:, None] * b)[None])[0]) == pytest.approx(0.0, abs=1e-6)
    paper = float(M.curvature(H, conventions="paper")[0])
    assert paper == pytest.approx(math.acos(0.999) / math.pi, abs=1e-9)


def test_curvature_of_orthogonal_steps_is_right_angle() -> None:
    eye = torch.eye(3, dtype=torch.float64)
    steps = torch.stack([eye[0], 2 * eye[1], eye[2], 0.5 * eye[0], eye[1]])
    H = torch.cat([torch.zeros(1, 3, dtype=torch.float64), steps.cumsum(0)])[None]
    assert float(M.curvature(H)[0]) == pytest.approx(math.pi / 2, abs=1e-12)
    assert float(M.curvature(H, curvature_units="pi")[0]) == pytest.approx(0.5, abs=1e-12)
    assert float(M.curvature(H, conventions="paper")[0]) == pytest.approx(0.5, abs=1e-12)


def test_curvature_of_reversal_is_pi() -> None:
    H = path([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    assert float(M.curvature(H)[0]) == pytest.approx(math.pi, abs=1e-7)
    assert float(M.curvature(H, conventions="paper")[0]) == pytest.approx(math.acos(-0.999) / math.pi)


def test_curvature_mixed_angles_match_numpy() -> None:
    H = randn(2, 9, 5, seed=3)
    out = M.curvature(H)
    for i in range(2):
        h = H[i].numpy()
        d = np.diff(h, axis=0)
        cos = np.sum(d[:-1] * d[1:], axis=1) / (np.linalg.norm(d[:-1], axis=1) * np.linalg.norm(d[1:], axis=1))
        assert float(out[i]) == pytest.approx(float(np.mean(np.arccos(cos))), abs=1e-12)


def test_curvature_zero_steps_skipped_in_standard() -> None:
    pts = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]]
    without_repeat = [pts[0], pts[1], pts[3], pts[4]]
    assert float(M.curvature(path(pts))[0]) == pytest.approx(float(M.curvature(path(without_repeat))[0]))
    assert float(M.curvature(path(pts))[0]) == pytest.approx(math.pi / 2)
    # not skipping, exact cosine: the zero step makes the sample undefined
    assert torch.isnan(M.curvature(path(pts), curvature_skip_zero_steps=False)[0])
    # all steps zero, or only one non-zero step: NaN
    assert torch.isnan(M.curvature(path([[1.0, 2.0]] * 4))[0])


def test_curvature_needs_three_real_tokens() -> None:
    H = randn(3, 5, 4, seed=4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    out = M.curvature(H, mask)
    assert torch.isnan(out[0]) and torch.isfinite(out[1]) and torch.isnan(out[2])
    assert torch.isnan(M.curvature(H[:, :2])).all()


# ---------------------------------------------------------------------------------------------------
# Sparsity
# ---------------------------------------------------------------------------------------------------


def test_sparsity_references_by_hand() -> None:
    H = torch.tensor([[[0.001, 0.5, -2.0, 0.0], [10.0, 0.06, 0.2, -0.09]]], dtype=torch.float64)
    # absolute, eps = 0.1: |h| < 0.1 -> 0.001, 0.0, 0.06, -0.09
    assert float(M.sparsity(H, sparsity_reference="absolute", sparsity_eps=0.1)[0]) == pytest.approx(4 / 8)
    # token_max, eps = 0.1: token 1 τ = 0.2 -> 0.001, 0.0 ; token 2 τ = 1.0 -> 0.06, 0.2, -0.09
    assert float(M.sparsity(H, sparsity_reference="token_max", sparsity_eps=0.1)[0]) == pytest.approx(5 / 8)
    # sample_max, eps = 0.01: τ = 0.1 -> same entries as absolute 0.1
    assert float(M.sparsity(H, conventions="paper")[0]) == pytest.approx(4 / 8)
    # token_rms, eps = 0.1: token 1 rms = sqrt(4.250001/4) ≈ 1.03, τ ≈ 0.103 -> 0.001, 0.0 ;
    # token 2 rms = sqrt(100.0517/4) ≈ 5.0, τ ≈ 0.5 -> 0.06, 0.2, -0.09
    assert float(M.sparsity(H, sparsity_eps=0.1)[0]) == pytest.approx(5 / 8)
    # the same tokens with eps = 0.01: τ ≈ 0.0103 and 0.050 -> 0.001, 0.0
    assert float(M.sparsity(H)[0]) == pytest.approx(2 / 8)


def test_sparsity_token_rms_is_scale_invariant_per_token() -> None:
    H = randn(3, 6, 16, seed=5) * torch.exp(2 * randn(3, 6, 16, seed=6))
    ref = M.sparsity(H)
    scales = torch.exp(randn(3, 6, 1, seed=7))
    torch.testing.assert_close(M.sparsity(H * scales), ref, atol=0, rtol=0)
    assert (ref > 0).all() and (ref < 1).all()


def test_sparsity_global_max_depends_on_the_batch_and_sample_max_does_not() -> None:
    H = randn(2, 5, 8, seed=8)
    H[1] *= 100.0  # a loud sample
    alone = M.sparsity(H[:1], sparsity_reference="global_max")
    together = M.sparsity(H, sparsity_reference="global_max")
    assert together[0] > alone[0]
    torch.testing.assert_close(M.sparsity(H[:1], conventions="paper"), M.sparsity(H, conventions="paper")[:1])


def test_sparsity_zero_tokens_and_empty_samples() -> None:
    H = torch.zeros(2, 3, 4, dtype=torch.float64)
    out = M.sparsity(H, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    assert out[0] == 1.0 and torch.isnan(out[1])


# ---------------------------------------------------------------------------------------------------
# Masking: padding is ignored completely by every token metric
# ---------------------------------------------------------------------------------------------------

LENGTHS = [7, 4, 3]
D = 6


def _samples() -> list[torch.Tensor]:
    return [randn(n, D, seed=10 + i) * torch.exp(randn(1, D, seed=20 + i)) for i, n in enumerate(LENGTHS)]


def _padded(side: str, extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    samples = _samples()
    T = max(LENGTHS) + extra
    H = 1e6 * randn(len(samples), T, D, seed=99)  # garbage in every padded slot
    mask = torch.zeros(len(samples), T, dtype=torch.bool)
    for i, s in enumerate(samples):
        n = s.shape[0]
        sl = slice(0, n) if side == "right" else slice(T - n, T)
        H[i, sl] = s
        mask[i, sl] = True
    return H, mask


TOKEN_METRICS = [M.prompt_entropy, M.sparsity, M.curvature]


@pytest.mark.parametrize("preset", ["standard", "paper"])
@pytest.mark.parametrize("fn", TOKEN_METRICS, ids=lambda f: f.__name__)
def test_padding_changes_nothing(fn, preset: str) -> None:
    singles = torch.cat([fn(s[None], conventions=preset) for s in _samples()])
    assert torch.isfinite(singles).all()
    for side in ("right", "left"):
        for extra in (0, 5):
            H, mask = _padded(side, extra)
            out = fn(H, mask, conventions=preset)
            assert out.shape == (len(LENGTHS),) and out.dtype == torch.float64
            torch.testing.assert_close(out, singles, atol=1e-10, rtol=0)
            # a 0/1 float mask means the same as a bool mask
            torch.testing.assert_close(fn(H, mask.double(), conventions=preset), out, atol=0, rtol=0)


@pytest.mark.parametrize("preset", ["standard", "paper"])
@pytest.mark.parametrize("fn", TOKEN_METRICS, ids=lambda f: f.__name__)
def test_result_does_not_depend_on_batch_mates(fn, preset: str) -> None:
    H, mask = _padded("right", 2)
    full = fn(H, mask, conventions=preset)
    for order in ([2, 0, 1], [1], [0, 2]):
        sub = fn(H[order], mask[order], conventions=preset)
        torch.testing.assert_close(sub, full[order], atol=1e-10, rtol=0)


@pytest.mark.parametrize("fn", TOKEN_METRICS, ids=lambda f: f.__name__)
def test_nan_in_padding_is_harmless_but_nan_in_real_tokens_raises(fn) -> None:
    H, mask = _padded("left", 2)
    ref = fn(H, mask)
    H_nan = H.clone()
    H_nan[~mask] = float("nan")
    torch.testing.assert_close(fn(H_nan, mask), ref, atol=0, rtol=0)
    H_nan[0, -1, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        fn(H_nan, mask)


@pytest.mark.parametrize("fn", TOKEN_METRICS, ids=lambda f: f.__name__)
def test_token_metric_input_validation(fn) -> None:
    H = randn(2, 5, 3, seed=40)
    with pytest.raises(ValueError, match=r"mask must have shape \(N, T\)"):
        fn(H, torch.ones(2, 4))
    with pytest.raises(ValueError, match="only 0 and 1"):
        fn(H, torch.full((2, 5), 2.0))
    with pytest.raises(ValueError, match="3-D"):
        fn(H[0])
    with pytest.raises(ValueError, match="valid presets"):
        fn(H, conventions="papers")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("fn", TOKEN_METRICS, ids=lambda f: f.__name__)
def test_token_metrics_compute_in_float64(fn, dtype: torch.dtype) -> None:
    H, mask = _padded("right", 1)
    H = (H / 1e6 * 1e3).clamp(-100, 100).to(dtype)  # representable in every dtype
    for preset in ("standard", "paper"):
        out = fn(H, mask, conventions=preset)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, fn(H.to(torch.float64), mask, conventions=preset), atol=0, rtol=0)
