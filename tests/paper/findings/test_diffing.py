"""Chapter 9's findings (mbt.paper.findings.diffing): constructed cases, and every rule calibrated at 10 and 40 layers.

Each claim holds on a constructed effect and is contradicted on its opposite; under no effect (simulated tables
shaped like the library's, noise correlated across layers as the same texts feed every layer) "holds" and
"contradicted" together occur in at most 5 % of replicates plus three binomial standard deviations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from diffing_fakes import SIGS, _difference, _gap, _grafts, _runs, _steering, _tokens

from mbt import paper
from mbt.paper import verdicts as V
from mbt.paper.findings import diffing as F

HOLDS, CONTRADICTED, INCONCLUSIVE = V.Verdict.HOLDS, V.Verdict.CONTRADICTED, V.Verdict.INCONCLUSIVE


def _slack(reps: int, p: float = 0.05) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / reps)


def _false(verdicts: list) -> float:
    return sum(v in (HOLDS, CONTRADICTED) for v in verdicts) / len(verdicts)


def _by_id(findings):
    return {f.id: f for f in findings}


# ---- tables shaped like mbt.diffing's -------------------------------------------------------------------


def test_each_claim_holds_on_its_effect_and_is_contradicted_on_the_opposite():
    rng = np.random.default_rng(0)
    found = _by_id(paper.diffing_findings(difference=_difference(rng, 10, 3.0), steering=_steering(rng, 10, 0.3),
                                          gap=_gap(rng, 10, 0.5), grafts=_grafts(rng, 0.3, -0.5, 0.05),
                                          tokens=_tokens(rng, 2.0),
                                          runs=_runs(rng, 10, equal_profile=0.3, standard_profile=0.6)))
    for hid in ("adl_depth", "adl_steering", "settles_later", "graft_late_mlp", "graft_late_mlp_reverse",
                "graft_mlp_over_attn", "template_tokens", *(f"equal_step_{s}" for s in SIGS),
                *(f"equal_step_{s}_flatter" for s in SIGS)):
        assert found[hid].verdict == HOLDS, (hid, found[hid])
        assert math.isfinite(found[hid].mde) and found[hid].mde > 0
    found = _by_id(paper.diffing_findings(difference=_difference(rng, 10, -0.6), steering=_steering(rng, 10, -0.3),
                                          gap=_gap(rng, 10, -0.5), grafts=_grafts(rng, -0.3, 0.5, 0.4),
                                          tokens=_tokens(rng, -1.0),
                                          runs=_runs(rng, 10, equal_profile=-0.3, standard_profile=-0.6)))
    for hid in ("adl_depth", "adl_steering", "settles_later", "graft_late_mlp", "graft_late_mlp_reverse",
                "graft_mlp_over_attn", "template_tokens", *(f"equal_step_{s}" for s in SIGS)):
        assert found[hid].verdict == CONTRADICTED, (hid, found[hid])
    for s in SIGS:  # equal-step steeper than standard: "flatter" is contradicted
        assert found[f"equal_step_{s}_flatter"].verdict == CONTRADICTED


def test_the_steering_claim_is_decided_at_the_middle_layer():
    rng = np.random.default_rng(1)
    table = _steering(rng, 10, 0.0)
    middle = table["layer"] == F.steering_layer(10)
    table.loc[middle, "reduction"] += 0.5
    assert _by_id(F.adl_findings(steering=table))["adl_steering"].verdict == HOLDS
    other = _steering(rng, 10, 0.0)
    other.loc[other["layer"] == 9, "reduction"] += 0.5  # an effect elsewhere is not the claim
    assert _by_id(F.adl_findings(steering=other))["adl_steering"].verdict != HOLDS
    assert F.steering_layer(40) == 20 and F.steering_layer(1) == 1


def test_missing_pieces_are_undecidable_not_wrong():
    rng = np.random.default_rng(2)
    plain = _tokens(rng, 2.0).assign(kind="text")
    assert _by_id(F.token_findings(plain))["template_tokens"].verdict == INCONCLUSIVE
    runs = _runs(rng, 10, equal_profile=0.3, standard_profile=0.6, seeds=(0,))
    found = _by_id(F.equal_step_findings(runs))
    assert found["equal_step_eq1"].verdict == INCONCLUSIVE and "one SFT seed" in found["equal_step_eq1"].rule
    diff = _difference(rng, 10, 3.0, reps=0)
    assert _by_id(F.adl_findings(diff))["adl_depth"].verdict == INCONCLUSIVE
    assert F.diffing_findings() == []


def test_profiles_are_signed_so_the_late_layer_pattern_is_positive():
    depth = pd.Series(np.arange(11) / 10)
    rising = pd.Series(1 + (depth > 0.8) * 0.5)
    assert F.profile(rising, depth, "eq1") == pytest.approx(0.5)
    assert F.profile(rising, depth, "lens") == pytest.approx(0.5)
    assert F.profile(1 - (depth > 0.8) * 0.2, depth, "cka") == pytest.approx(0.2)  # a CKA drop is positive
    assert math.isnan(F.profile(rising[:3], depth[:3], "eq1"))


def test_the_stratified_interval_pools_the_seed_variance_within_lengths():
    groups = {25: [1.0, 3.0], 60: [10.0, 12.0], 300: [5.0, 5.0]}
    iv = F.stratified_interval(groups)
    assert iv.estimate == pytest.approx((2 + 11 + 5) / 3)
    s2 = (2 + 2 + 0) / 3  # within-length sums of squares over 3 df
    se = math.sqrt(s2 * 1.5) / 3
    assert iv.df == 3 and iv.se == pytest.approx(se)
    assert iv.high - iv.estimate == pytest.approx(V.t_quantile(0.975, 3) * se)
    assert math.isnan(F.stratified_interval({25: [1.0], 60: [2.0]}).low)


# ---- null calibration at 10 and 40 layers -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("n_layers", [10, 40])
def test_null_calibration_of_every_rule(n_layers):
    reps = 100
    rng = np.random.default_rng(100 + n_layers)
    by_id: dict[str, list] = {}
    for _ in range(reps):
        found = paper.diffing_findings(difference=_difference(rng, n_layers, 0.0, reps=200),
                                       steering=_steering(rng, n_layers, 0.0), gap=_gap(rng, n_layers, 0.0),
                                       grafts=_grafts(rng, 0.0, 0.0, 0.0), tokens=_tokens(rng, 0.0),
                                       runs=_runs(rng, n_layers, equal_profile=0.0, standard_profile=0.0))
        for f in found:
            by_id.setdefault(f.id, []).append(f.verdict)
    flatter = [f"equal_step_{s}_flatter" for s in SIGS]
    assert len(by_id) == 15
    for hid, verdicts in by_id.items():
        assert _false(verdicts) <= _slack(reps), (hid, n_layers, _false(verdicts))
    assert all(by_id[h] for h in flatter)


@pytest.mark.slow
@pytest.mark.parametrize("n_layers", [10, 40])
def test_the_flatter_rule_is_calibrated_when_the_rules_agree_on_a_real_profile(n_layers):
    reps = 100
    rng = np.random.default_rng(200 + n_layers)
    verdicts = {s: [] for s in SIGS}
    for _ in range(reps):
        found = _by_id(F.equal_step_findings(_runs(rng, n_layers, equal_profile=0.4, standard_profile=0.4)))
        for s in SIGS:
            verdicts[s].append(found[f"equal_step_{s}_flatter"].verdict)
    for s, v in verdicts.items():
        assert _false(v) <= _slack(reps), (s, _false(v))


@pytest.mark.slow
def test_power_for_a_clear_difference_with_two_seeds():
    """Three lengths × two seeds: a profile of 0.3 against seed noise of 0.02 is found (three df)."""
    rng = np.random.default_rng(7)
    hits = []
    for _ in range(40):
        found = _by_id(F.equal_step_findings(_runs(rng, 10, equal_profile=0.3, standard_profile=0.3)))
        hits.append(found["equal_step_eq1"].verdict)
    assert sum(v == HOLDS for v in hits) / len(hits) >= 0.8
