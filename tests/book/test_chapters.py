"""The book's chapters are one list (mbt.book.chapters.TOC): everything that names chapters follows it."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from conftest import REPO

from mbt import book, paper
from mbt.book import chapters
from mbt.book import chapters as book_chapters
from mbt.book.chapters import CHAPTERS, TITLES, TOC


def _toc_notebooks(text: str) -> list[str]:
    return re.findall(r"^\s*- file: notebooks/(\S+)\s*$", text, flags=re.M)


def test_toc_lists_the_chapters_in_order():
    assert _toc_notebooks((REPO / "_toc.yml").read_text()) == list(CHAPTERS)


def test_a_chapter_missing_from_the_toc_is_caught():
    text = (REPO / "_toc.yml").read_text().replace("      - file: notebooks/05_swapping\n", "")
    assert _toc_notebooks(text) != list(CHAPTERS)


def test_every_chapter_has_a_notebook_whose_heading_starts_with_its_title():
    sources = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sources == sorted(CHAPTERS)
    for chapter in TOC:
        text = (REPO / "notebooks" / f"{chapter.name}.py").read_text()
        heading = re.search(r"^# # (.+)$", text, flags=re.M)
        assert heading and heading.group(1).startswith(chapter.title.split(":")[0]), chapter.name


def test_the_notebooks_readme_has_a_row_per_chapter():
    rows = re.findall(r"^\| `(\d\d_\w+)` \| ([^|]+) \| ([^|]+) \|$", (REPO / "notebooks" / "README.md").read_text(),
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


def test_papermill_reads_every_parameter_with_its_type(recwarn):
    """papermill's own parser (``--help-notebook``) must see every parameter, typed; '=' in a comment broke it."""
    from papermill.translators import PythonTranslator

    for name in book.CHAPTERS:
        nb = book_chapters.read_notebook(REPO / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        seen = {p.name: p.inferred_type_name for p in PythonTranslator.inspect(cell)}
        assert set(seen) == set(list(book_chapters.parameter_types(nb))), name
        assert all(t != "None" for t in seen.values()), (name, seen)
        assert seen == book_chapters.parameter_types(nb)


def test_check_parameters_refuses_unknown_names_and_wrong_types():
    declared = {"01_divergence": {"n_pooled": "int", "datasets": "list", "quick": "bool"},
                "03_probing": {"n_samples": "int"}}
    book_chapters.check_parameters({"n_pooled": 200, "datasets": ["toy-math"], "n_samples": 3}, declared)
    with pytest.raises(ValueError, match="no chosen chapter has a parameter 'nonexistent'.*n_pooled"):
        book_chapters.check_parameters({"nonexistent": 1}, declared)
    with pytest.raises(ValueError, match="'n_pooled' must be int.*got str 'abc'"):
        book_chapters.check_parameters({"n_pooled": "abc"}, declared)
    with pytest.raises(ValueError, match="must be int"):
        book_chapters.check_parameters({"n_pooled": True}, declared)
    with pytest.raises(ValueError, match="must be bool"):
        book_chapters.check_parameters({"quick": 1}, declared)


def test_find_root_is_the_working_directory_or_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert book.find_root() == REPO
    assert book.find_root(tmp_path) == tmp_path.resolve()  # --root is taken as given; build() checks it
    monkeypatch.chdir(tmp_path)  # no _config.yml here: never fall back to the checkout mbt was imported from
    with pytest.raises(FileNotFoundError, match="run from the repository root or pass --root"):
        book.find_root()
    (tmp_path / "_config.yml").write_text("title: t\n")
    assert book.find_root() == tmp_path
