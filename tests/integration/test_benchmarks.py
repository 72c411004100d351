"""Numbers the benchmark scripts compute themselves (not the measurements)."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import _common  # noqa: E402


def test_lm_head_share_counts_multiply_adds():
    # hidden 2, 1 layer, MLP 3, vocab 5, 4 tokens: layer 4*4 + 3*2*3 + 2*4*2 = 50, head 2*5 = 10
    assert _common.lm_head_share(hidden=2, layers=1, intermediate=3, vocab=5, tokens=4) == pytest.approx(10 / 60)
    assert _common.lm_head_share(hidden=2, layers=3, intermediate=3, vocab=5, tokens=4) == pytest.approx(10 / 160)


def test_paper_proportions_match_olmo2_1b_lm_head_share():
    olmo = _common.OLMO2_DIMS["olmo2-1b"]
    paper = _common.lm_head_share(hidden=olmo["hidden"], layers=olmo["layers"], intermediate=olmo["intermediate"],
                                  vocab=olmo["vocab"], tokens=128)
    assert paper == pytest.approx(0.16, abs=0.01)
    small = _common.lm_head_share(hidden=128, layers=16, intermediate=512, vocab=49 * 128, tokens=128)
    assert abs(small - paper) < 0.02
