"""Markdown tables and sentences of the findings (mbt.paper.render)."""

from __future__ import annotations

from paper_fakes import EARLY_DROP_CKA, PAPER_LIKE_CKA, L, _frame  # noqa: F401

from mbt import paper


def test_compare_conventions_and_sentence():
    standard = _frame(PAPER_LIKE_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    authors = _frame(EARLY_DROP_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    table = paper.compare_conventions({"standard": standard, "paper": authors})
    assert {"claim", "standard: ours", "paper: verdict", "same verdict"} <= set(table.columns)
    row = table[table["claim"] == paper.BY_ID["middle_stable"].claim].iloc[0]
    assert (row["standard: verdict"], row["paper: verdict"], row["same verdict"]) == ("holds", "contradicted", "NO")
    sentence = paper.conventions_sentence(table)
    assert "change with the conventions" in sentence and paper.BY_ID["middle_stable"].claim in sentence
    same = paper.compare_conventions({"standard": standard, "paper": standard})
    assert "do not change any conclusion" in paper.conventions_sentence(same)


def test_paper_vs_ours_table_lists_every_headline():
    md = paper.paper_vs_ours_markdown({"toy": {"cka_final": {"ours": "0.5", "verdict": None},
                                              "middle_stable": {"ours": "x", "verdict": "holds", "effect": 0.2,
                                                                "ci_low": 0.1, "ci_high": 0.3, "level": 0.95},
                                              "cka_plateau": {"ours": "y", "verdict": "inconclusive", "effect": 0.0,
                                                              "ci_low": -0.1, "ci_high": 0.1, "level": 0.95}},
                                      "olmo2-1b": {}})
    details = md[md.index("## Details"):]
    lines = [line for line in details.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert len(lines) == len(paper.HEADLINES)  # every headline once in the details
    assert "ours: `toy`" in details and "ours: `olmo2-1b`" not in details  # a pair shows where it ran
    stable = next(line for line in lines if paper.BY_ID["middle_stable"].claim in line)
    assert "x — +0.200 [+0.100, +0.300] (95%) → **holds**" in stable and "not computed" not in stable
    plateau = next(line for line in lines if paper.BY_ID["cka_plateau"].claim in line)
    assert "**inconclusive**" in plateau
    assert "(../notebooks/01_divergence.ipynb)" in stable
    assert "**contradicted**" in md  # the legend names all three


def test_conventions_markdown_lists_every_field():
    from dataclasses import fields

    from mbt.metrics.conventions import Conventions

    md = paper.conventions_markdown()
    for f in fields(Conventions):
        if f.name != "name":
            assert f"| `{f.name}` |" in md
    assert "| `erank_power` | `1` | `2` **≠** |" in md
    assert ":func:" not in md and "``" not in md
