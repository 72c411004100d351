"""Families (mbt.paper.families): adjusted p-values by hand, family-wise calibration, and row checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mbt.paper import families as F
from mbt.paper import verdicts as V
from mbt.paper.verdicts import Decision, Verdict


def slack(reps: int, rate: float = 0.05) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / reps)


def test_adjusted_pvalues_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04
    # → running max 0.02, 0.03, 0.06, 0.06
    assert F.adjusted_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: m·p/rank = 0.02, 0.02, 0.04, 0.04 → running min from the top: 0.02, 0.02, 0.04, 0.04
    assert F.adjusted_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert F.adjusted_pvalues([float("nan"), 0.01], "holm") == pytest.approx([1.0, 0.02])
    with pytest.raises(ValueError, match="method"):
        F.adjusted_pvalues(p, "bonferroni")


def _direction(z: float, se: float = 1.0) -> Decision:
    """A decision from a normal interval with estimate z·se (side +1, threshold 0)."""
    q = V.normal_quantile(0.975)
    iv = V.Interval(z * se, (z - q) * se, (z + q) * se, 0.95, se, 100)
    return V.direction(iv)


def test_adjust_keeps_strong_rows_and_explains():
    rows = [_direction(5.0), _direction(2.2), _direction(-2.1), _direction(0.3)]
    assert [r.verdict for r in rows] == [Verdict.HOLDS, Verdict.HOLDS, Verdict.CONTRADICTED, Verdict.INCONCLUSIVE]
    out = F.adjust(rows, method="holm")
    assert [r.verdict for r in out] == [Verdict.HOLDS, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE]
    assert "Holm over the 4 rows" in out[0].rule and "not decided" in out[1].rule
    assert out[0].p_verdict == pytest.approx(4 * rows[0].p_verdict)
    assert "adjusted p < 0.001" in out[0].rule and f"adjusted p = {out[1].p_verdict:.3g}" in out[1].rule
    bad = Decision(Verdict.HOLDS, 1.0, 0.5, 1.5, 0.95, "r", 0.1, 10, "texts")
    with pytest.raises(ValueError, match="p_verdict"):
        F.adjust([bad])


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("method", ["holm", "bh"])
def test_family_rate_under_a_joint_null(rho, method):
    """12 rows with no effect, z-statistics equicorrelated ρ: any decided row in at most 5 % of tables."""
    reps, m = 2000, 12
    rng = np.random.default_rng(int(10 * rho) + (0 if method == "holm" else 100))
    z = math.sqrt(rho) * rng.normal(size=(reps, 1)) + math.sqrt(1 - rho) * rng.normal(size=(reps, m))
    raw = np.mean([any(_direction(x).verdict != Verdict.INCONCLUSIVE for x in row) for row in z[:300]])
    assert raw > 0.1 or rho == 0.9  # the scenario has teeth: uncorrected tables decide something often
    family = [any(d.verdict != Verdict.INCONCLUSIVE for d in F.adjust([_direction(x) for x in row], method=method))
              for row in z]
    assert np.mean(family) <= slack(reps), np.mean(family)


def test_expected_false_and_sentence():
    assert F.expected_false(12, method=None) == pytest.approx(0.6)
    assert F.expected_false(12, method="holm") == pytest.approx(0.05, abs=0.006)
    assert F.expected_false(0) == 0.0
    rows = F.adjust([_direction(5.0), _direction(0.1), _direction(0.2)])
    text = F.family_sentence(rows)
    assert text.startswith("1 of 3 rows decided.") and "Holm" in text and "0.15 without a correction" in text


def _row(key: str, verdict: Verdict, effect: float, lo: float, hi: float, threshold: float = 0.0,
         n: int = 100, unit: str = "texts") -> Decision:
    return Decision(verdict, effect, lo, hi, 0.95, "r", 0.1, n, unit, key=key, threshold=threshold, p_verdict=0.01)


def test_row_problems_find_every_kind():
    sound = [_row("a", Verdict.HOLDS, 0.2, 0.1, 0.3), _row("b", Verdict.INCONCLUSIVE, 0.2, 0.1, 0.3)]
    assert F.row_problems(sound) == []
    # middle_stable vs cka_plateau at 10 layers: the same contrast with the sign flipped
    twins = [_row("middle_stable", Verdict.HOLDS, 0.15, 0.05, 0.25),
             _row("cka_plateau", Verdict.HOLDS, -0.15, -0.25, -0.05)]
    (problem,) = F.row_problems(twins)
    assert "one comparison" in problem and "sign flipped" in problem
    # seed_robust: "half 2 − half 1" with an interval containing 0 next to holds
    robust = [_row("seed_robust", Verdict.HOLDS, 0.01, -0.02, 0.04)]
    assert "contains its threshold" in F.row_problems(robust)[0]
    # the replicates branch's old n: bootstrap resamples counted as texts
    reps = [_row("cka", Verdict.HOLDS, 0.2, 0.1, 0.3, n=2000, unit="bootstrap replicates")]
    assert "not units of replication" in F.row_problems(reps)[0]
    no_thr = [Decision(Verdict.HOLDS, 1.0, 0.5, 1.5, 0.95, "r", 0.1, 10, "texts", key="x")]
    assert "no threshold" in F.row_problems(no_thr)[0] and F.row_problems(no_thr, require_threshold=False) == []


def test_every_decision_function_reports_a_checkable_row():
    """Rows from the engine's own functions pass the checks (threshold set, interval on the right side)."""
    from mbt.paper import nulls as N
    from mbt.paper import shapes as S

    rng = np.random.default_rng(3)
    d = N.depth_grid(10)
    est, boot = N.replicates(rng, np.log(1 + N.shape("j", d))[None, :] + 1.0, n_boot=400, sd=0.01)
    rows = [V.band_contrast(np.exp(boot[0]), d, unit="replicates", statistic="log_ratio", estimate=np.exp(est[0]),
                            n_texts=50),
            V.seed_contrast([0.4, 0.41, 0.42], [0.3, 0.3, 0.31]),
            S.weight_j(np.exp(est[0]), d)["all"]]
    assert F.row_problems(rows) == []


def test_p_values_are_printed_with_three_digits_and_never_as_zero():
    assert [F.p_text(p) for p in (0.0, 0.0004, 0.001, 0.0234, 1.0)] == [
        "< 0.001", "< 0.001", "= 0.001", "= 0.0234", "= 1"]
