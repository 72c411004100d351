"""What every chapter's findings share (mbt.paper.findings.common): compound rules, a layer against a band."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mbt.paper import verdicts as V
from mbt.paper.verdicts import Verdict

HOLDS, CONTRADICTED, INCONCLUSIVE = Verdict.HOLDS, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE


def test_single_layer_against_a_band_prediction_interval():
    from mbt.paper.findings.common import single_vs_band as _single_vs_band

    ref = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0])  # alternating: lag-1 autocorrelation < 0, clipped to 0
    values = pd.Series(np.r_[9.0, 9.0, ref, 1.5], index=range(0, 9))
    d = _single_vs_band(values, 8, 1, (0.2, 0.9), side=1, level=0.95)
    s = ref.std(ddof=1)
    se = s * math.sqrt(1 + 1 / ref.size)
    assert d.effect == pytest.approx(9.0 - ref.mean())
    half = V.t_quantile(0.975, ref.size - 1) * se
    assert (d.ci_low, d.ci_high) == pytest.approx((d.effect - half, d.effect + half))
    assert d.verdict == HOLDS and d.n == ref.size
    assert _single_vs_band(values, 8, 20, (0.2, 0.9), side=1, level=0.95).verdict == INCONCLUSIVE


def test_all_of_and_any_of_combine_parts():
    from mbt.paper.findings.common import all_of as _all_of
    from mbt.paper.findings.common import any_of as _any_of

    def part(verdict, effect):
        return V.Decision(verdict, effect, effect - 1, effect + 1, 0.975, f"rule {effect}", 1.0, 3, "seeds")

    h, c, i = part(HOLDS, 3.0), part(CONTRADICTED, -3.0), part(INCONCLUSIVE, 0.5)
    assert _all_of([h, h], "x").verdict == HOLDS
    assert _all_of([h, i], "x").verdict == INCONCLUSIVE and "rule 0.5" in _all_of([h, i], "x").rule
    assert _all_of([h, i, c], "x").verdict == CONTRADICTED and _all_of([h, i, c], "x").effect == -3.0
    assert "Bonferroni over 3" in _all_of([h, i, c], "x").rule
    assert _any_of([c, i, h], "y").verdict == HOLDS and _any_of([c, i, h], "y").effect == 3.0
    assert _any_of([c, i], "y").verdict == INCONCLUSIVE and _any_of([c, i], "y").effect == 0.5
    assert _any_of([c, c], "y").verdict == CONTRADICTED
    assert _all_of([], "z").verdict == INCONCLUSIVE
