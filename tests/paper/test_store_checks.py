"""Contributed stores are checked before they are shown, and the collected table and chapter 8 agree.

Issue 27, defects 3, 4 and 5; each test failed on the code before the fix.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import REPO
from store_fakes import registry_spec, write_store

from mbt import book, paper
from mbt.book import builder
from mbt.paper import store

GOOD = {"cka_final": {"id": "cka_final", "ours": "0.41", "verdict": "holds", "effect": 0.2, "ci_low": 0.1,
                      "ci_high": 0.3, "level": 0.95}}


@pytest.fixture
def pages(tmp_path, monkeypatch):
    """The two pages that show stores: the collected "Paper vs ours" table and chapter 8's reading of the stores."""
    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    contributed = tmp_path / "results"
    contributed.mkdir()
    stage = tmp_path / "stage"

    def collected() -> str:
        builder.stage_sources(REPO, stage)
        return builder.write_paper_vs_ours(stage, "toy", roots=[contributed]).read_text()

    def chapter_8(names):
        entries, missing = book.comparison_stores(names, extra=[contributed])
        return entries, missing, str(getattr(book.store_problems_note(extra=[contributed]), "data", ""))

    return contributed, collected, chapter_8


def test_3_stores_of_another_version_or_without_store_json_are_listed_once_never_shown(pages):
    contributed, collected, chapter_8 = pages
    write_store(contributed / "good", "good", findings=GOOD)
    old = write_store(contributed / "old", "old", findings=GOOD)
    meta = json.loads((old / "store.json").read_text())
    (old / "store.json").write_text(json.dumps({**meta, "version": 99}))
    bare = contributed / "bare" / "records"
    bare.mkdir(parents=True)
    (bare / "01_divergence.json").write_text(json.dumps({"findings": GOOD}))
    page = collected()
    assert "ours: `good`" in page and "ours: `old`" not in page and "ours: `bare`" not in page
    for folder, why in ((old, "format version 99"), (contributed / "bare", "no store.json")):
        line = next(x for x in page.splitlines() if f"`{folder}`" in x)
        assert why in line and page.count(f"`{folder}`") == 1
    entries, missing, note = chapter_8(["good", "old", "bare"])
    assert list(entries) == ["good"] and missing == ["old", "bare"]
    assert note.strip() and note.strip() in page  # the same list on both pages


def test_4_a_store_named_like_a_registered_pair_but_built_from_other_models_is_shown_under_its_own_label(pages):
    contributed, collected, chapter_8 = pages
    other = {**registry_spec("olmo2-1b"), "base": "someone/other-1b", "sft": "someone/other-1b-sft"}
    write_store(contributed / "olmo2-1b", "olmo2-1b", findings=GOOD, spec=other)
    page = collected()
    assert "ours: `olmo2-1b (other models)`" in page and "ours: `olmo2-1b`" not in page
    assert "claims to be the registered pair 'olmo2-1b'" in page and "someone/other-1b" in page
    entries, missing, note = chapter_8(["olmo2-1b", "olmo2-1b (other models)"])
    assert missing == ["olmo2-1b"] and list(entries) == ["olmo2-1b (other models)"]
    assert "claims to be the registered pair" in note


def test_4_a_chapter_run_on_other_models_than_its_store_names_is_left_out(tmp_path):
    folder = write_store(tmp_path / "olmo2-1b", "olmo2-1b", findings=GOOD)
    manifest = json.loads((folder / "jobs" / "01_divergence.json").read_text())
    manifest["inputs"]["pair"]["base"] = "someone/other-1b"
    (folder / "jobs" / "01_divergence.json").write_text(json.dumps(manifest))
    entry = store.load_store(folder)
    assert entry.label == "olmo2-1b" and entry.records == {}
    assert any("01_divergence left out" in p and "base" in p for p in entry.problems)


BAD = {
    "nan_effect_holds": ({"effect": math.nan}, "rests on no effect"),
    "infinite_interval": ({"ci_high": math.inf}, "ci_high is infinite"),
    "text_value": ({"effect": "0.2"}, "effect is str"),
    "unknown_verdict": ({"verdict": "maybe"}, "verdict 'maybe' is not one of"),
    "number_as_ours": ({"ours": 0.41}, "ours is float"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_5_a_record_with_nan_inf_text_or_an_unknown_verdict_leaves_its_store_out_naming_the_file(pages, case):
    contributed, collected, chapter_8 = pages
    change, reason = BAD[case]
    finding = {**GOOD["cka_final"], **change}
    folder = write_store(contributed / "bad", "bad", findings={"cka_final": finding},
                         tables={"pair_metrics": pd.DataFrame({"layer": [1], "depth": [1.0], "value": [0.5]})})
    write_store(contributed / "good", "good", findings=GOOD)
    page = collected()  # no crash
    assert "ours: `bad`" not in page and "ours: `good`" in page
    line = next(x for x in page.splitlines() if f"`{folder}`" in x)
    assert str(folder / "records" / "01_divergence.json") in line and reason in line
    assert "→ **holds**" in page  # the good store's verdict
    entries, missing, note = chapter_8(["bad", "good"])
    assert missing == ["bad"] and reason in note


def test_5_a_table_with_infinite_or_text_values_leaves_its_store_out(tmp_path):
    for column, bad in (("value", math.inf), ("depth", "deep")):
        frame = pd.DataFrame({"layer": [1, 2], "depth": [0.5, 1.0], "value": [0.1, 0.2]})
        frame[column] = frame[column].astype(object)
        frame.loc[1, column] = bad
        folder = write_store(tmp_path / column, column, findings=GOOD, tables={"pair_metrics": frame})
        with pytest.raises(ValueError, match=rf"pair_metrics.csv: column '{column}'"):
            store.load_store(folder)


def test_5_huge_numbers_print_in_scientific_notation_and_bad_findings_never_crash_the_table():
    huge = {**GOOD["cka_final"], "effect": 1e308, "ci_low": 1e307, "ci_high": 1.5e308}
    md = paper.paper_vs_ours_markdown({"p": {"cka_final": huge}})
    assert "+1e+308 [+1e+307, +1.5e+308] (95 %)" in md.replace("95%", "95 %") and "0" * 30 not in md
    for change, reason in BAD.values():
        md = paper.paper_vs_ours_markdown({"p": {"cka_final": {**GOOD["cka_final"], **change}}})
        assert "left out: the stored finding cannot be shown (" in md and reason in md and "→ **holds**" not in md
