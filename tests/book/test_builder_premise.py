"""The premise (what the pair's Base can and cannot do) filled into the staged introduction and chapter 8."""

from __future__ import annotations

import nbformat
import pandas as pd
from conftest import REPO

from mbt.book import builder


def _stage(tmp_path):
    stage = tmp_path / "stage"
    builder.stage_sources(REPO, stage)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(f"Before.\n\n{builder.PREMISE[0]}\n*(to be filled)*\n{builder.PREMISE[1]}\n"),
        nbformat.v4.new_code_cell("x = 1")])
    (stage / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, stage / "notebooks" / "08_across_pairs.ipynb")
    return stage


def _store(folder, score):
    rows = [dict(pair="toy", model=m, format=f, score=s, ci_low=s, ci_high=s, n=200, empty=e)
            for m, f, s, e in (("base", "qa", 0.0, 1.0), ("base", "own", score, 0.0), ("base", "arithmetic", 0.5, 0.0),
                               ("sft", "qa", 0.6, 0.0), ("sft", "own", 0.1, 0.0), ("sft", "arithmetic", 0.6, 0.0))]
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "tables" / "knowledge.csv", index=False)


def test_the_premise_is_filled_from_the_store_and_refilled_on_the_next_build(tmp_path):
    stage, folder = _stage(tmp_path), tmp_path / "store" / "toy"
    assert builder.PREMISE[0] in (REPO / "book" / "intro.md").read_text()
    assert builder.PREMISE[0] in (REPO / "notebooks" / "08_across_pairs.py").read_text()
    changed = builder.fill_premise(stage, folder, "toy")  # chapter 10 has not run: a placeholder says so
    assert len(changed) == 2 and "has not run for this pair yet" in (stage / "book" / "intro.md").read_text()
    _store(folder, 0.3)
    builder.fill_premise(stage, folder, "toy")
    intro = (stage / "book" / "intro.md").read_text()
    assert "it solves 0.300 [0.300, 0.300]" in intro and "has not run" not in intro
    assert intro.count(builder.PREMISE[0]) == 1 and intro.count(builder.PREMISE[1]) == 1
    _store(folder, 0.25)  # a later build with other numbers replaces, never appends
    builder.fill_premise(stage, folder, "toy")
    cell = nbformat.read(stage / "notebooks" / "08_across_pairs.ipynb", as_version=4).cells[0].source
    assert cell.startswith("Before.") and "it solves 0.250" in cell and "0.300" not in cell
    assert builder.fill_premise(stage, folder, "toy") == []  # nothing changes twice


def test_filling_the_premise_keeps_the_executed_chapter_up_to_date(tmp_path):
    import json

    from mbt.book import jobs
    from mbt.results import file_sha256

    stage, folder = _stage(tmp_path), tmp_path / "store" / "toy"
    page = stage / "notebooks" / "08_across_pairs.ipynb"
    stamps = page.parent / ".mbt-stamps.json"
    stamps.write_text(json.dumps({"08_across_pairs": {"key": "k", "sha256": file_sha256(page)}}))
    _store(folder, 0.3)
    builder.fill_premise(stage, folder, "toy")
    assert jobs._notebook_current(stamps, "08_across_pairs", "k", page)  # the next build will not rerun it
    assert not jobs.restamp(page, "0" * 64)  # a stamp naming other content is left alone
    stamps.write_text(json.dumps({"08_across_pairs": {"key": "k", "sha256": "f" * 64}}))
    _store(folder, 0.25)
    builder.fill_premise(stage, folder, "toy")
    assert not jobs._notebook_current(stamps, "08_across_pairs", "k", page)  # stale before: stale after
