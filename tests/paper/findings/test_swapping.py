"""Chapter 5's findings (mbt.paper.findings.swapping) on constructed tables."""

from __future__ import annotations

from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id, _swap  # noqa: F401

from mbt import paper


def test_swap_findings_use_the_paired_interval():
    found = _by_id(paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03], width=0.001)))
    assert [found[h].verdict for h in ("swap_first", "swap_middle", "swap_last")] == [HOLDS] * 3
    assert "resolves" in found["swap_first"].note and found["swap_first"].effect == -0.01
    # the same signs inside a wide interval are not a verdict
    found = _by_id(paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03], width=0.1)))
    assert [found[h].verdict for h in ("swap_first", "swap_middle", "swap_last")] == [INCONCLUSIVE] * 3
    assert "is larger than" in found["swap_first"].note
    found = _by_id(paper.swap_findings(_swap([0.01, 0.0, 0.0, 0.0, 0.0], width=0.001)))
    assert found["swap_first"].verdict == CONTRADICTED
    assert found["swap_first"].interval_text() == "+0.0100 [+0.0095, +0.0105] (95%)"
    found = _by_id(paper.swap_findings(_swap([0.0] * 5, width=0.0)))
    assert found["swap_middle"].note == "no text's score changed at all"
    assert found["swap_middle"].verdict == INCONCLUSIVE
