"""Chapter 5's findings (mbt.paper.findings.swapping) on constructed tables."""

from __future__ import annotations

import pandas as pd
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id  # noqa: F401

from mbt import paper


def _swap(diffs, width=0.004):
    rows = [dict(kind="swap", receiver="base", head="receiver", segment=i, diff=d, diff_ci_low=d - width / 2,
                 diff_ci_high=d + width / 2, diff_ci_width=width, n=50) for i, d in enumerate(diffs)]
    rows.append(dict(kind="swap", receiver="base", head="donor", segment=0, diff=1.0, diff_ci_low=0.9,
                     diff_ci_high=1.1, diff_ci_width=0.2, n=50))
    return pd.DataFrame(rows)


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
