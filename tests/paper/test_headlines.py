"""The paper's headline numbers as data (mbt.paper.headlines)."""

from __future__ import annotations

import re

import pytest

from mbt import book, paper


def test_headlines_cover_every_number_of_section_11():
    ids = [h.id for h in paper.HEADLINES]
    assert len(ids) == len(set(ids))
    assert all(h.chapter in book.CHAPTERS for h in paper.HEADLINES)
    papers = " ".join(h.paper for h in paper.HEADLINES)
    # representation analysis, probing, weights, swapping
    for number in ("> 500", "0.60 → 0.52", "> 0.10", "−0.001", "+0.003", "−0.002", "> 0.60"):
        assert number in papers, number
    # Fig. 7, abstract/intro, Appendix A (3 and 10 segments) and Appendix B (5 configs x 2 benchmarks)
    for number in ("0.19", "0.135", "0.375", "0.28", "0.30", "0.27", "0.22", "0.32", "0.29", "0.25",
                   "+10.2 %", "0.4650", "0.4721", "0.4550", "0.4503", "0.4589", "0.4693", "0.4761", "0.4771",
                   "0.4754", "0.4502", "0.4215", "0.3966", "0.3821", "14.53", "13.58", "14.70", "13.76", "14.61",
                   "13.63", "14.65", "13.72", "14.54", "13.60"):
        assert re.search(rf"(^|[^\d]){re.escape(number)}($|[^\d])", papers), number
    assert paper.chapter_of("cka_final") == "01_divergence"
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("no_such_claim", "1")
