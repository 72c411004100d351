"""Chapter 1's findings (mbt.paper.findings.divergence) on constructed tables."""

from __future__ import annotations

import pytest
from paper_fakes import CONTRADICTED, EARLY_DROP_CKA, HOLDS, INCONCLUSIVE, PAPER_LIKE_CKA, _by_id, _frame  # noqa: F401

from mbt import paper


def test_divergence_findings_hold_on_a_paper_like_curve():
    shift = [0.0, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.03, 0.1, 0.5]
    cos = [1.0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.98, 0.97, 0.9, 0.7]
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, shift, cos),
                                            halves=(_frame(PAPER_LIKE_CKA), _frame(PAPER_LIKE_CKA))))
    for hid in ("middle_stable", "cka_plateau", "cka_drop_start", "mean_shift_shallow", "mean_shift_final",
                "cosine_agrees", "seed_robust"):
        f = found[hid]
        assert f.verdict == HOLDS, (hid, f)
        assert f.agrees is True and f.rule and f.level == 0.95 and f.mde > 0 and f.ci_low <= f.effect <= f.ci_high
    assert found["cka_final"].verdict is None and found["cka_final"].agrees is None
    assert found["cka_final"].value == pytest.approx(0.6)
    assert "layer 10" in found["cka_final"].ours and "0.850 at 9" in found["cka_final"].ours
    # the shift is relative to the Base centroid: last band (0.1 + 0.5)/2 vs middle (layers 3–8) 0.015
    assert found["mean_shift_final"].effect == pytest.approx(0.3 / 0.015 - 1)
    assert found["mean_shift_shallow"].effect == pytest.approx(0.01 / 0.3 - 1)


def test_divergence_findings_contradicted_when_the_change_is_early():
    shift = [0.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3]
    cos = [1.0, 0.5, 0.6, 0.7, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9]
    noisy = [c + 0.2 for c in EARLY_DROP_CKA]
    found = _by_id(paper.divergence_findings(_frame(EARLY_DROP_CKA, shift, cos),
                                            halves=(_frame(EARLY_DROP_CKA), _frame(noisy))))
    for hid in ("middle_stable", "cka_plateau", "mean_shift_shallow", "mean_shift_final", "cosine_agrees",
                "seed_robust"):
        assert found[hid].verdict == CONTRADICTED, (hid, found[hid])
        assert found[hid].agrees is False
    assert "depth 0.20" in found["middle_stable"].ours


def test_divergence_findings_scale_free_and_honest_without_intervals():
    # SFT = 1.02 × Base: the raw shift grows with the residual norm, the relative one is flat
    flat = [0.02] * 11
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, flat)))
    assert found["mean_shift_final"].verdict != HOLDS
    assert found["mean_shift_shallow"].verdict == CONTRADICTED  # not negligible relative to the end
    # a table with only the raw shift gets no verdict on it
    raw_only = _frame(PAPER_LIKE_CKA, flat)
    raw_only = raw_only[raw_only["metric"] != "relative_mean_shift"]
    found = _by_id(paper.divergence_findings(raw_only))
    assert found["mean_shift_final"].verdict is None and "relative_mean_shift" in found["mean_shift_final"].note
    # without per-layer intervals the layers are the units (AR(0.9) layer noise, its level from the residuals
    # about a line per band): a drop of 0.23 against layer-to-layer wiggles of 0.005 is settled
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, ci=None)))
    assert found["middle_stable"].verdict == HOLDS and found["middle_stable"].unit == "layers"
