"""The book's chapters are one list (mbt.book.chapters.TOC): everything that names chapters follows it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from mbt import paper
from mbt.book import chapters
from mbt.book.chapters import CHAPTERS, TITLES, TOC

ROOT = Path(__file__).resolve().parents[1]


def _toc_notebooks(text: str) -> list[str]:
    return re.findall(r"^\s*- file: notebooks/(\S+)\s*$", text, flags=re.M)


def test_toc_lists_the_chapters_in_order():
    assert _toc_notebooks((ROOT / "_toc.yml").read_text()) == list(CHAPTERS)


def test_a_chapter_missing_from_the_toc_is_caught():
    text = (ROOT / "_toc.yml").read_text().replace("      - file: notebooks/05_swapping\n", "")
    assert _toc_notebooks(text) != list(CHAPTERS)


def test_every_chapter_has_a_notebook_whose_heading_starts_with_its_title():
    sources = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sources == sorted(CHAPTERS)
    for chapter in TOC:
        text = (ROOT / "notebooks" / f"{chapter.name}.py").read_text()
        heading = re.search(r"^# # (.+)$", text, flags=re.M)
        assert heading and heading.group(1).startswith(chapter.title.split(":")[0]), chapter.name


def test_the_notebooks_readme_has_a_row_per_chapter():
    rows = re.findall(r"^\| `(\d\d_\w+)` \| ([^|]+) \| ([^|]+) \|$", (ROOT / "notebooks" / "README.md").read_text(),
                      flags=re.M)
    assert [r[0] for r in rows] == list(CHAPTERS)
    for (name, where, shows), chapter in zip(rows, TOC, strict=True):
        assert (where.strip(), shows.strip()) == (chapter.paper, chapter.shows), name


def test_every_headline_and_findings_module_names_a_chapter():
    assert {h.chapter for h in paper.HEADLINES} <= set(CHAPTERS)
    package = importlib.import_module("mbt.paper.findings")
    modules = [importlib.import_module(f"mbt.paper.findings.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    declared = [m.CHAPTER for m in modules if hasattr(m, "CHAPTER")]
    assert declared and set(declared) <= set(CHAPTERS) and len(declared) == len(set(declared))


def test_derived_lists_follow_the_flags():
    assert chapters.ACROSS == "08_across_pairs" and TITLES[chapters.ACROSS].startswith("8 ·")
    assert chapters.LADDER_CHAPTERS == ("01_divergence", "02_convergence", "03_probing", "04_weights")
    assert set(chapters.LADDER_CHAPTERS) <= set(chapters.BESIDE_THE_LADDER)


@pytest.mark.parametrize("chapter", TOC, ids=lambda c: c.name)
def test_titles_are_numbered_like_the_file(chapter):
    assert chapter.title.split(" ")[0] == str(int(chapter.name[:2]))
