"""The one metric registry (mbt.metrics.registry): every metric is complete, and everything reads it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mbt import analysis, plots
from mbt.metrics import INTRINSIC_METRICS, METRICS, TOKEN_LEVEL, Metric, metric, registry, token_metrics


def test_every_metric_has_a_label_a_level_and_a_computation():
    for spec in METRICS.values():
        assert spec.label.strip() and spec.level in registry.LEVELS
        if spec.level != "lens":
            assert callable(spec.compute)
    assert INTRINSIC_METRICS == ("prompt_entropy", "dataset_entropy", "effective_rank", "rank_deficiency",
                                 "condition_number", "spectral_norm", "curvature", "sparsity")


@pytest.mark.parametrize(("change", "match"), [({"label": " "}, "needs a label"), ({"compute": None}, "compute"),
                                                ({"level": "layer"}, "level"), ({"alike": 2}, "alike")])
def test_an_incomplete_entry_is_refused(change, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(METRICS["cka"], **change)
    with pytest.raises(ValueError, match="kernel"):
        Metric("x", "token", "x", compute=lambda *a, **k: None)


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ValueError, match="registered: prompt_entropy, dataset_entropy"):
        metric("entropy_of_everything")
    with pytest.raises(ValueError, match="level"):
        registry.names("layer")


def test_labels_and_scales_come_from_the_registry():
    assert registry.label("cka") == "linear CKA (Base, SFT)" == plots.metric_label("cka")
    assert registry.label("delta_curvature") == "Δ curvature (SFT − Base)"
    assert registry.label("something_new") == "something new"
    assert {m for m in METRICS if registry.is_log_scale(m)} == {"condition_number", "spectral_norm"}
    assert not registry.is_log_scale("delta_spectral_norm")


def test_analyze_computes_exactly_the_registered_token_pooled_and_pair_metrics():
    assert set(analysis.ALL_METRICS) == {m for m, s in METRICS.items() if s.level in ("token", "pooled", "pair")}
    assert TOKEN_LEVEL == registry.names("token")


def test_every_registered_metric_computes_on_small_inputs():
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    H, mask = torch.randn(3, 7, 6, generator=g), torch.ones(3, 7, dtype=torch.bool)
    for spec in METRICS.values():
        if spec.level == "token":
            value = spec.compute(H, mask)
            assert value.shape == (3,) and torch.isfinite(value).all()
            assert torch.equal(token_metrics(H, mask, [spec.name])[spec.name], value)  # the kernel, validated once
        elif spec.level == "pooled":
            assert torch.isfinite(torch.tensor(spec.compute(X)))
        elif spec.level == "pair":
            value = spec.compute(X, Y)
            assert torch.isfinite(torch.as_tensor(value)).all(), spec.name
