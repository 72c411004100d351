"""Chapter 4's findings (mbt.paper.findings.weights) on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id  # noqa: F401

from mbt import paper


def test_weights_and_correlation_findings():
    n = 40
    blocks = range(1, n + 1)
    rng = np.random.default_rng(0)
    d = np.arange(1, n + 1) / n
    j = pd.Series(0.01 * np.exp(4 * d + rng.normal(0, 0.02, n)), index=blocks)  # small early, peak at the end
    found = _by_id(paper.weights_findings(j, j / 100))
    assert found["weight_j"].verdict == HOLDS and found["weight_final"].verdict is None
    assert "small early, final peak, last above middle" in found["weight_j"].note
    step = pd.Series(np.where(d > 0.8, 0.05, 0.01) + rng.normal(0, 0.0005, n), index=blocks)
    assert _by_id(paper.weights_findings(step))["weight_j"].verdict != HOLDS  # a flat last band has no final peak
    assert found["weight_j"].unit == "layers"
    flat = pd.Series(0.01 + rng.normal(0, 0.0005, n), index=blocks)
    assert _by_id(paper.weights_findings(flat))["weight_j"].verdict != HOLDS

    wiggle = rng.normal(0, 1.0, n)
    x = pd.Series(d ** 4 + 0.05 * wiggle, index=blocks)
    linked = pd.DataFrame({"cosine_similarity": 1 - d ** 4 - 0.05 * wiggle + rng.normal(0, 0.01, n),
                           "spectral_norm": np.exp(3 * d ** 4 + 0.1 * wiggle)}, index=blocks)
    found = _by_id(paper.correlation_findings(x, linked, n_surrogates=199))
    assert found["corr_cosine"].verdict == HOLDS and found["corr_spectral"].verdict == HOLDS
    assert found["corr_cosine_depth"].verdict == HOLDS and found["corr_spectral_depth"].verdict == HOLDS
    # curves that share only their depth shape: the paper's raw r holds (sharing the shape is its claim),
    # ours beyond the depth shape does not
    trend = pd.DataFrame({"cosine_similarity": 1 - d ** 4 + rng.normal(0, 0.05, n),
                          "spectral_norm": np.exp(3 * d ** 4 + rng.normal(0, 0.05, n))}, index=blocks)
    found = _by_id(paper.correlation_findings(x, trend, n_surrogates=199))
    assert found["corr_cosine"].value < -0.9 and found["corr_cosine"].verdict == HOLDS
    assert found["corr_cosine_depth"].verdict != HOLDS and found["corr_spectral_depth"].verdict != HOLDS
    # at 10 layers the depth-controlled test cannot be calibrated, and says so
    short = _by_id(paper.correlation_findings(x.iloc[:10], linked.iloc[:10], n_surrogates=199))
    assert short["corr_cosine_depth"].verdict == INCONCLUSIVE and "16" in short["corr_cosine_depth"].rule
