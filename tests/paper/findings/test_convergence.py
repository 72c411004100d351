"""Chapter 2's findings (mbt.paper.findings.convergence) on constructed tables."""

from __future__ import annotations

import numpy as np
import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id, _frame  # noqa: F401

from mbt import paper


def _curves(n_layers: int, fn, seed: int = 0, noise: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    d = np.arange(n_layers + 1) / n_layers
    return list(fn(d) + rng.normal(0, noise, d.size))


def test_convergence_findings():
    n = 40

    def stages(start, plateau, end):  # a jump 0 → 1, a plateau, a ramp over the last 20 %
        return lambda d: np.where(d == 0, start, np.where(d > 0.8, plateau + (end - plateau) * (d - 0.8) / 0.2,
                                                          plateau))

    base = {"effective_rank": _curves(n, stages(60, 25, 8), 0, 0.2),
            "condition_number": list(np.exp(_curves(n, stages(9.0, 3.5, 7.0), 1, 0.02))),  # log scale
            "spectral_norm": list(np.exp(_curves(n, stages(5.0, 1.5, 6.0), 2, 0.02)))}
    rng = np.random.default_rng(3)
    sft = {k: [v * (1.01 + 1e-4 * rng.normal()) for v in vals] for k, vals in base.items()}
    cka = [1.0] + [0.95] * 32 + [0.9] * 8
    found = _by_id(paper.convergence_findings(_frame(cka, base=base, sft=sft)))
    # SFT = 1.01 × Base: within the 10 % margin (range, or a factor 1.1 on the log scale) at every layer
    assert found["synchronised"].verdict == HOLDS and found["synchronised"].unit == "texts"
    assert found["three_stages"].verdict == HOLDS, found["three_stages"]
    assert found["erank_collapse"].verdict == HOLDS and found["erank_collapse"].effect < -0.3  # the ramp 25 → 8
    assert found["erank_peak"].verdict != HOLDS  # a plateau above the early band is no peak: early is higher
    # the condition number: a plateau of e^3.5 between e^9 and a ramp to e^7 is a trough
    assert found["cond_trough"].verdict == HOLDS and "layer" in found["cond_trough"].ours
    assert found["spectral_norm_500"].verdict == HOLDS and "N = 100" in found["spectral_norm_500"].ours
    # a peak in the middle band
    hump = {"effective_rank": _curves(n, lambda d: np.where(d == 0, 60, np.where(d <= 0.2, 15, np.where(
        d <= 0.8, 30, 8))), 4, 0.3)}
    found = _by_id(paper.convergence_findings(_frame(cka, base=hump, sft=hump)))
    assert found["erank_peak"].verdict == HOLDS and found["erank_peak"].unit == "texts"
    assert found["erank_collapse"].verdict == HOLDS and found["erank_collapse"].effect == pytest.approx(
        np.log(8 / 30), abs=0.02)
    # independent curves are not "synchronised", and flat ones neither peak nor collapse
    other = {k: _curves(n, lambda d: np.full(d.size, 5.0), 10 + i, 1.0) for i, k in enumerate(base)}
    found = _by_id(paper.convergence_findings(_frame(cka, base=base, sft=other)))
    assert found["synchronised"].verdict != HOLDS
    assert found["erank_peak"].verdict != HOLDS and found["erank_collapse"].verdict != HOLDS
