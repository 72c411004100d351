"""Chapter 6's findings (mbt.paper.findings.lora) on constructed sweep tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id, _sweep_table

from mbt import paper, segments
from mbt.paper import seeds as Sd
from mbt.paper.findings.lora import PROBLEMS_COLUMN

SCORES = {"00000": 0.0, "11111": 0.28, "10000": 0.2, "01000": 0.37, "00100": 0.3, "00010": 0.29,
          "00001": 0.1, "01100": 0.33, "00110": 0.3, "01110": 0.35,
          "100": 0.4, "010": 0.5, "001": 0.3,
          **{m: v for m, v in zip(segments.single_segment_masks(10),
                                  (0.4, 0.43, 0.46, 0.5, 0.56, 0.5, 0.45, 0.42, 0.36, 0.3), strict=True)}}


def _items(table: pd.DataFrame, mask: str) -> np.ndarray:
    rows = table[table["mask"] == mask].sort_values("seed")
    return np.stack([np.array([int(c) for c in t]) for t in rows[PROBLEMS_COLUMN]]).astype(float)


def test_lora_findings_middle_beats_full_depth_on_seeds_crossed_with_problems():
    table = _sweep_table(SCORES, problems=1500)
    findings = paper.lora_findings(table)
    found = _by_id(findings)
    ids = [h for f in findings for h in f.ids]
    assert len(ids) == len(set(ids))  # one claim, one row
    full = found["lora_1b_11111"]
    assert full.verdict is None and "3 seeds" in full.ours
    assert set(full.also) == {"lora_7b_11111", "lora_13b_11111", "lora_32b_11111"}
    # the abstract's +10.2 % is OLMo 2 7B's 01000 vs 11111: the same row
    assert found["lora_gain"] is found["lora_7b_01000"]
    # 32B's 10000 is set against its best middle mask, 13B's against 11111: two comparisons, two rows
    assert found["lora_32b_10000"] is not found["lora_13b_10000"] and "01100" in found["lora_32b_10000"].ours
    for hid in ("lora_7b_01000", "lora_13b_01110", "lora_32b_01100", "lora_13b_10000", "lora_32b_10000",
                "lora_1b_00001", "lora_edge_gap", "appA_3_peak", "appA_10_peak"):
        f = found[hid]
        assert f.verdict == HOLDS, (hid, f)
        assert f.unit == "seeds × problems" and f.n == 3 and f.mde > 0 and f.rule, hid
    # the row is exactly the crossed interval of the two masks' per-problem scores
    want = Sd.crossed_interval(_items(table, "01000"), _items(table, "11111"))
    assert (found["lora_7b_01000"].effect, found["lora_7b_01000"].ci_low) == pytest.approx((want.estimate, want.low))
    assert found["appA_3_2"].value == pytest.approx(0.5, abs=0.03) and found["appA_3_2"].verdict is None
    assert {f"appB_{m}_{b}" for m in ("00000", "11111", "10000", "00001", "00110")
            for b in ("ifeval", "mtbench")} <= set(found)
    assert found["appB_middle_best"].verdict == HOLDS and found["appB_middle_best"].unit == "seeds"


def test_the_edge_gap_is_twenty_percent_of_the_middle_mask():
    base = {"00000": 0.0, "11111": 0.3, "01000": 0.3}
    near = _sweep_table({**base, "10000": 0.28}, problems=2000, noise=0.002)
    far = _sweep_table({**base, "10000": 0.12}, problems=2000, noise=0.002)
    assert _by_id(paper.lora_findings(near))["lora_edge_gap"].verdict == CONTRADICTED  # a gap of about 7 %
    f = _by_id(paper.lora_findings(far))["lora_edge_gap"]
    assert f.verdict == HOLDS  # a gap of about 50 %
    means = far.groupby("mask")["accuracy"].mean()
    assert f.effect == pytest.approx(0.8 * means["01000"] - means["10000"])


def test_without_per_problem_scores_the_seeds_alone_decide_and_the_rule_says_so():
    found = _by_id(paper.lora_findings(_sweep_table(SCORES)))
    f = found["lora_7b_01000"]
    assert f.verdict == HOLDS and f.unit == "seeds" and "no per-problem scores" in f.rule
    small = _by_id(paper.lora_findings(_sweep_table({"00000": 0.0, "11111": 0.3, "01100": 0.2}, retention=False)))
    assert small["lora_32b_01100"].verdict == CONTRADICTED and "appA_3_peak" not in small
    one = _by_id(paper.lora_findings(_sweep_table(SCORES, seeds=(0,), problems=100)))
    assert one["lora_7b_01000"].verdict == INCONCLUSIVE and "at least 2" in one["lora_7b_01000"].rule


def test_malformed_per_problem_scores_are_refused_with_the_run():
    table = _sweep_table({"11111": 0.3, "01000": 0.4}, problems=10)
    table.loc[0, PROBLEMS_COLUMN] = "01x"
    with pytest.raises(ValueError, match="mask 11111, seed 0"):
        paper.lora_findings(table)


def test_retention_is_compared_on_log_perplexities():
    """00110 is closest to Base in ratio; 11111 differs more in raw perplexity only because its set is larger."""
    rows = []
    for seed in range(3):
        for mask, ppl in (("00000", 10.0), ("00110", 10.3), ("11111", 11.0), ("10000", 10.8)):
            rows.append(dict(mask=mask, seed=seed, accuracy=0.3, ppl_instruct=ppl * (1 + 0.001 * seed)))
    f = _by_id(paper.lora_findings(pd.DataFrame(rows)))["appB_middle_best"]
    assert f.verdict == HOLDS and "log" in f.rule
    parts = [np.log(p / 10.0) - np.log(10.3 / 10.0) for p in (11.0, 10.8)]  # 11111 and 10000 against 00110
    assert min(abs(f.effect - x) for x in parts) < 1e-9
    bad = pd.DataFrame(rows).assign(ppl_instruct=lambda t: t["ppl_instruct"] - 10.5)
    with pytest.raises(ValueError, match="positive"):
        paper.lora_findings(bad)
