"""The collected "Paper vs ours" page: counts, a per-chapter matrix of marks, then folded details."""

from __future__ import annotations

import html
import re

from mbt import paper
from mbt.book.chapters import TITLES
from mbt.paper.headlines import BY_ID, HEADLINES

NUMBER = {h.id: i for i, h in enumerate(HEADLINES, start=1)}


def _f(verdict, effect=0.1, ours="0.5"):
    return {"ours": ours, "verdict": verdict, "effect": effect, "ci_low": effect - 0.05, "ci_high": effect + 0.05,
            "level": 0.95}


RECORDS = {
    # the book's pair ran chapters 1 and 6
    "toy": {"middle_stable": _f("holds", ours="a|b"), "cka_plateau": _f("contradicted"), "cka_final": {"ours": "0.9"},
            "lora_13b_10000": _f("inconclusive", 0.0), "lora_32b_10000": {**_f("inconclusive", 0.0),
                                                                          "same_as": "lora_13b_10000"}},
    # a ladder rung ran chapter 1 only
    "toy-sft10": {"middle_stable": _f("inconclusive", 0.0), "cka_drop_start": _f("holds")},
}


def _section(md, start, end=None):
    a = md.index(start)
    return md[a:md.index(end, a + len(start))] if end else md[a:]


def _table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #")
            and not line.startswith("| pair")]


def test_counts_per_pair_count_distinct_comparisons_and_name_the_chapters_run():
    md = paper.paper_vs_ours_markdown(RECORDS, titles=TITLES)
    counts = _section(md, "## Counts per pair", "## At a glance")
    assert "| `toy` | 1, 6 | 1 | 1 | 1 | 1 |" in counts  # the same_as row is not counted again
    assert "| `toy-sft10` | 1 | 1 | 0 | 1 | 0 |" in counts


def test_the_matrix_folds_away_the_columns_of_chapters_a_pair_did_not_run():
    md = paper.paper_vs_ours_markdown(RECORDS, titles=TITLES)
    glance = _section(md, "## At a glance", "## Details")
    divergence = _section(glance, f"### {TITLES['01_divergence']}", "###")
    lora = _section(glance, f"### {TITLES['06_midblock_lora']}")  # the last chapter with headlines
    assert "| # | claim (paper's model) | `toy` | `toy-sft10` |" in divergence
    assert "| # | claim (paper's model) | `toy` |" in lora and "`toy-sft10` |" not in lora.split("\n\n")[1]
    assert "Not run for this chapter: `toy-sft10`." in lora
    assert "No pair has run this chapter yet." in _section(glance, f"### {TITLES['05_swapping']}", "###")
    rows = _table_rows(divergence)
    assert len(rows) == sum(h.chapter == "01_divergence" for h in HEADLINES)
    stable = next(r for r in rows if BY_ID["middle_stable"].claim in r)
    cells = [c.strip() for c in stable.strip("|").split(" | ")]
    assert cells[0] == str(NUMBER["middle_stable"]) and cells[1].endswith("(all models)")
    toy, rung = cells[2], cells[3]
    assert toy.endswith(">✓</abbr>") and rung.endswith(">?</abbr>")
    # the value, the effect and its interval on demand, escaped for the attribute and the table
    title = html.unescape(re.search(r'title="([^"]*)"', toy).group(1).replace("&#124;", "|"))
    assert title == "holds: ours: a|b; effect +0.100 [+0.050, +0.150] (95%)"
    assert "|" not in re.search(r'title="([^"]*)"', toy).group(1)
    final = next(r for r in rows if BY_ID["cka_final"].claim in r)
    assert ">○</abbr>" in final and final.rstrip(" |").endswith("–")  # scale row; not computed for the rung
    same = next(r for r in _table_rows(lora) if BY_ID["lora_32b_10000"].claim in r and "OLMo2-32B" in r)
    assert f"= #{NUMBER['lora_13b_10000']}" in same


def test_the_details_fold_each_chapter_and_list_every_headline_once():
    md = paper.paper_vs_ours_markdown(RECORDS, titles=TITLES)
    details = _section(md, "## Details")
    assert details.count("<details>") == details.count("</details>") == len({h.chapter for h in HEADLINES})
    rows = _table_rows(details)
    assert len(rows) == len(HEADLINES)
    stable = next(r for r in rows if BY_ID["middle_stable"].claim in r)
    assert "a\\|b — +0.100 [+0.050, +0.150] (95%) → **holds**" in stable
    lora_block = _section(details, TITLES["06_midblock_lora"], "</details>")
    assert "ours: `toy`" in lora_block and "ours: `toy-sft10`" not in lora_block
    assert "same comparison as #" in lora_block and "not computed" in lora_block


def test_an_empty_pair_renders_without_any_matrix_column():
    md = paper.paper_vs_ours_markdown({"toy": {}})
    assert "| `toy` | none | 0 | 0 | 0 | 0 |" in md
    assert md.count("No pair has run this chapter yet.") == len({h.chapter for h in HEADLINES})
