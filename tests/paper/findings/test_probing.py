"""Chapter 3's findings (mbt.paper.findings.probing) on constructed tables."""

from __future__ import annotations

import pandas as pd
import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, L, _by_id  # noqa: F401

from mbt import paper


def _lens(final_once: float, final_twice: float, penultimate: float = 0.6, ci: float = 0.005) -> pd.DataFrame:
    rows = []
    for paper_ in (False, True):
        for layer in range(1, L + 1):
            acc = 0.0 if layer < 8 else {8: 0.3, 9: penultimate, 10: final_twice if paper_ else final_once}[layer]
            rows.append(dict(model="sft", paper=paper_, layer=layer, depth=layer / L, metric="top1_acc", value=acc,
                             pooled=acc, pooled_ci_low=acc - ci, pooled_ci_high=acc + ci))
    return pd.DataFrame(rows)


def test_probing_findings_separate_the_double_norm_dip():
    found = _by_id(paper.probing_findings(_lens(final_once=0.65, final_twice=0.52)))
    assert found["probe_early"].verdict == HOLDS and found["probe_rise"].verdict == HOLDS
    dip = found["probe_final_dip"]
    assert dip.verdict == CONTRADICTED and "only with the final norm applied twice" in dip.note
    assert "0.600 → 0.650" in dip.ours and "0.520" in dip.ours
    assert dip.effect == pytest.approx(0.05) and dip.mde == pytest.approx(2.8016 * 0.01 / 1.95996, rel=1e-3)
    found = _by_id(paper.probing_findings(_lens(final_once=0.5, final_twice=0.4)))
    assert found["probe_final_dip"].verdict == HOLDS
    # a dip smaller than the layers' intervals is not a dip
    found = _by_id(paper.probing_findings(_lens(final_once=0.595, final_twice=0.4)))
    assert found["probe_final_dip"].verdict == INCONCLUSIVE
