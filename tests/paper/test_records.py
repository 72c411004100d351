"""Findings recorded per chapter and pair (mbt.paper.records)."""

from __future__ import annotations

import json

import pytest
from paper_fakes import CONTRADICTED, HOLDS, INCONCLUSIVE  # noqa: F401

from mbt import paper


def test_report_records_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    findings = [paper.Finding("cka_final", "0.5", None, "lost"),
                paper.Finding("middle_stable", "x", HOLDS, "ok", effect=0.2, ci_low=0.1, ci_high=0.3, level=0.95,
                              rule="holds if above 0", mde=0.14, n=10, unit="layers", threshold=0.0, p_verdict=0.001),
                paper.Finding("swap_first", "y", "contradicted", "opposite sign", effect=0.01, ci_low=0.005,
                              ci_high=0.015, level=0.95, rule="r", mde=0.007, n=50, threshold=0.0, p_verdict=0.002),
                paper.Finding("swap_last", "z", INCONCLUSIVE, "", effect=0.0, ci_low=-0.01, ci_high=0.01, level=0.95)]
    out = paper.report(findings, pair="toy", settings={"n": 3})
    text = getattr(out, "data", out)
    assert text.startswith("| claim | paper (model) | ours | effect [95 % interval] | MDE | verdict |")
    assert "**holds**" in text and "**contradicted**" in text and "**inconclusive**" in text
    assert "✓" not in text and "✗" not in text
    assert "+0.200 [+0.100, +0.300] (95%)" in text
    assert "1 hold, 1 contradicted, 1 inconclusive (of 3 distinct comparisons) on `toy`" in text
    assert "Contradicted: " + paper.BY_ID["swap_first"].claim + " — opposite sign" in text
    assert "1 more number is shown for scale only" in text
    stored = json.loads((tmp_path / "rec" / "01_divergence.json").read_text())
    assert set(stored["findings"]) == {"cka_final", "middle_stable"} and stored["pair"] == "toy"
    assert stored["findings"]["middle_stable"]["verdict"] == "holds"
    assert stored["findings"]["middle_stable"]["ci_low"] == 0.1
    assert set(paper.read_records(tmp_path / "rec")) == {"cka_final", "middle_stable", "swap_first", "swap_last"}


def test_one_comparison_standing_for_two_claims_is_recorded_and_counted_once(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    f = paper.Finding("lora_13b_10000", "x", HOLDS, effect=-0.05, ci_low=-0.08, ci_high=-0.02, level=0.95,
                      also=("lora_32b_10000",), threshold=0.0, p_verdict=0.01)
    text = getattr(paper.report([f], pair="toy"), "data", None) or paper.report([f], pair="toy")
    assert "(of 1 distinct comparison)" in text and "0.22 (OLMo2-13B); 0.25 (OLMo2-32B)" in text
    records = paper.read_records(tmp_path / "rec")
    assert records["lora_32b_10000"]["same_as"] == "lora_13b_10000"
    md = paper.paper_vs_ours_markdown({"toy": records})
    number = 1 + [h.id for h in paper.HEADLINES].index("lora_13b_10000")
    row = next(line for line in md[md.index("## Details"):].splitlines() if paper.BY_ID["lora_32b_10000"].claim in line
               and "OLMo2-32B" in line)
    assert f"same comparison as #{number}" in row
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("lora_13b_10000", "x", also=("nope",))


def test_an_undecidable_row_says_why_in_its_mark_and_a_decided_one_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    why = "not decidable here: 10 layers, fewer than 16; a depth spline has no knots (not calibrated)"
    paper.report([paper.Finding("corr_cosine_depth", "r beyond a depth spline", INCONCLUSIVE, rule=why, unit="layers"),
                  paper.Finding("corr_cosine", "raw r", INCONCLUSIVE, effect=-0.3, ci_low=-1.0, ci_high=0.3,
                                level=0.95, rule="the raw r's interval", unit="layers")], pair="toy")
    md = paper.paper_vs_ours_markdown({"toy": paper.read_records(tmp_path / "rec")})
    matrix = md[:md.index("## Details")] if "## Details" in md else md
    assert f"why: {why}" in matrix
    assert "why: the raw r" not in matrix  # an interval speaks for itself
