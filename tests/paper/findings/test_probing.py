"""Chapter 3's findings (mbt.paper.findings.probing) on constructed tables."""

from __future__ import annotations

import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, L, _by_id, _lens  # noqa: F401

from mbt import paper


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
