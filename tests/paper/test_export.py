"""Findings as downloadable tables (mbt.paper.export)."""

from __future__ import annotations

from mbt import paper
from mbt.paper.export import FINDING_COLUMNS, RECORD_COLUMNS, findings_frame, records_frame
from mbt.paper.headlines import BY_ID, HEADLINES
from mbt.paper.verdicts import Verdict


def test_findings_frame_has_a_row_per_headline_with_numbers_as_numbers():
    f = paper.Finding("lora_13b_10000", "0.2 vs 0.3", Verdict.CONTRADICTED, effect=0.1, ci_low=0.02, ci_high=0.2,
                      level=0.95, mde=0.05, n=3, unit="seeds", rule="t over seeds", also=("lora_32b_10000",))
    frame = findings_frame([f])
    assert list(frame.columns) == list(FINDING_COLUMNS)
    assert frame["headline"].tolist() == ["lora_13b_10000", "lora_32b_10000"]
    assert frame["same_as"].tolist() == ["", "lora_13b_10000"]
    assert frame["verdict"].tolist() == ["contradicted", "contradicted"]
    row = frame.iloc[0]
    assert (row["effect"], row["ci_low"], row["ci_high"], row["level"], row["n"]) == (0.1, 0.02, 0.2, 0.95, 3)
    assert row["claim"] == BY_ID["lora_13b_10000"].claim and row["chapter"] == "06_midblock_lora"
    assert findings_frame([]).columns.tolist() == list(FINDING_COLUMNS)


def test_records_frame_follows_the_tables_order_and_skips_what_was_not_recorded():
    records = {"toy": {"cka_final": {"ours": "0.9", "verdict": None},
                       "middle_stable": {"ours": "x", "verdict": "holds", "effect": 0.2, "ci_low": 0.1, "ci_high": 0.3,
                                         "level": 0.95}},
               "olmo2-1b": {"middle_stable": {"ours": "y", "verdict": "inconclusive"}}}
    frame = records_frame(records)
    assert list(frame.columns) == list(RECORD_COLUMNS)
    number = {h.id: i for i, h in enumerate(HEADLINES, start=1)}
    assert frame[["pair", "headline"]].values.tolist() == [["toy", "middle_stable"], ["toy", "cka_final"],
                                                          ["olmo2-1b", "middle_stable"]]
    assert frame["number"].tolist() == [number["middle_stable"], number["cka_final"], number["middle_stable"]]
    assert frame["verdict"].tolist() == ["holds", "", "inconclusive"]
    assert records_frame({}).empty
