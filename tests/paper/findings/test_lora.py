"""Chapter 6's findings (mbt.paper.findings.lora) on constructed sweep tables."""

from __future__ import annotations

import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE, _by_id, _sweep_table  # noqa: F401

from mbt import paper, segments


def test_lora_findings_middle_beats_full_depth():
    scores = {"00000": 0.0, "11111": 0.28, "10000": 0.2, "01000": 0.37, "00100": 0.3, "00010": 0.29,
              "00001": 0.1, "01100": 0.33, "00110": 0.3, "01110": 0.31,
              "100": 0.4, "010": 0.5, "001": 0.3,
              **{m: v for m, v in zip(segments.single_segment_masks(10),
                                      (0.45, 0.46, 0.47, 0.48, 0.49, 0.48, 0.45, 0.42, 0.4, 0.38), strict=True)}}
    findings = paper.lora_findings(_sweep_table(scores))
    found = _by_id(findings)
    # one claim, one row: the four 11111 numbers and the 13B/32B edge claims are one row each
    ids = [h for f in findings for h in f.ids]
    assert len(ids) == len(set(ids))
    full = found["lora_1b_11111"]
    assert full.verdict is None and "3 seeds" in full.ours
    assert set(full.also) == {"lora_7b_11111", "lora_13b_11111", "lora_32b_11111"}
    assert found["lora_13b_10000"].also == ("lora_32b_10000",) and found["lora_32b_10000"] is found["lora_13b_10000"]
    for hid in ("lora_7b_01000", "lora_13b_01110", "lora_32b_01100", "lora_13b_10000", "lora_1b_00001",
                "lora_gain", "lora_edge_gap", "appA_3_peak", "appA_10_peak", "appB_middle_best"):
        f = found[hid]
        assert f.verdict == HOLDS, (hid, f)
        assert f.unit == "seeds" and f.n == 3 and f.mde > 0 and f.rule
    assert found["lora_gain"].effect == pytest.approx(0.09, abs=0.015)
    assert "Bonferroni" in found["lora_gain"].rule and "01000" in found["lora_gain"].ours
    assert found["appA_3_2"].value == pytest.approx(0.5, abs=0.01) and found["appA_3_2"].verdict is None
    assert {f"appB_{m}_{b}" for m in ("00000", "11111", "10000", "00001", "00110")
            for b in ("ifeval", "mtbench")} <= set(found)
    # a sweep without the optional families still works
    small = _by_id(paper.lora_findings(_sweep_table({"00000": 0.0, "11111": 0.3, "01100": 0.2}, retention=False)))
    assert small["lora_32b_01100"].verdict == CONTRADICTED and "appA_3_peak" not in small
    # one seed: no seed-to-seed spread, so no verdict either way
    one = _by_id(paper.lora_findings(_sweep_table(scores, seeds=(0,))))
    assert one["lora_7b_01000"].verdict == INCONCLUSIVE and "at least 2" in one["lora_7b_01000"].rule
