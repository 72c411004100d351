"""The chapter notebooks: text sources and .ipynb copies agree, and the whole book builds in quick mode.

The end-to-end test executes every chapter with papermill (a fresh kernel each, in order) on a tiny toy
pair built by :func:`mbt.toy.build`, then builds the Jupyter Book from the executed notebooks with
Sphinx warnings treated as errors, and checks what a reader would see: one page per chapter, each
with its figures and its Colab button, and the generated paper-vs-ours table.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

from mbt import book, paper
from mbt.book import builder as book_build

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REQUIRED_PARAMETERS = ("pair", "base", "sft", "device_map", "quick")


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_text_source_and_ipynb_agree(name):
    """jupytext py:percent is the source in git; the .ipynb copy (for Colab) must have the same cells and no outputs."""
    import jupytext

    source = NOTEBOOKS / f"{name}.py"
    paired = NOTEBOOKS / f"{name}.ipynb"
    assert source.exists() and paired.exists(), "run `jupytext --sync notebooks/*.py` to create the .ipynb copy"
    from_text = jupytext.read(source)
    from_ipynb = jupytext.read(paired)
    assert _cells(from_text) == _cells(from_ipynb), (
        f"{paired.name} and {source.name} disagree: edit the .py and run `jupytext --sync notebooks/{name}.py`")
    raw = nbformat.read(paired, as_version=4)
    for cell in raw.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{paired.name}: commit it without outputs"
    assert raw.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("name", book.CHAPTERS)
def test_chapter_structure(name):
    """Each chapter: a title, an install-and-device first code cell, a `parameters` cell, a paper-vs-ours report."""
    nb = book_build.read_notebook(NOTEBOOKS / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    first = code[0].source
    assert 'find_spec("mbt") is None' in first and '"pip", "install"' in first, "installs mbt on a fresh runtime"
    assert "setup_notebook()" in first, "picks the GPU when there is one"
    assert "parameters" in code[1].metadata.get("tags", []), "the second code cell is the papermill parameters cell"
    names = book.parameter_names(nb)
    for required in REQUIRED_PARAMETERS:
        assert required in names, f"{name} lacks the parameter {required!r}"
    assert "seed" in names or "seeds" in names
    text = "\n".join(c.source for c in nb.cells)
    assert "MPLBACKEND" not in text and "matplotlib.use(" not in text, "never choose a backend: figures would vanish"
    assert "The paper's claim" in nb.cells[0].source or name == "07_beyond"
    assert "$$" in text, "the method's formula"
    if name != "07_beyond":
        assert "paper.report(" in text, "the paper's number beside ours"


def test_toc_lists_every_chapter_and_prose_page():
    toc = (ROOT / "_toc.yml").read_text()
    for name in book.CHAPTERS:
        assert f"file: notebooks/{name}\n" in toc
    for page in book.PROSE:
        assert (ROOT / "book" / f"{page}.md").exists()
        assert f"book/{page}" in toc
    assert book.TABLE_MARKER in (ROOT / "book" / "paper_vs_ours.md").read_text()
    config = (ROOT / "_config.yml").read_text()
    assert 'execute_notebooks: "off"' in config and "colab_url" in config


@pytest.mark.slow
def test_every_chapter_runs_in_quick_mode_and_the_book_builds(tmp_path, monkeypatch):
    from mbt import toy

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels share two cores with the test runner
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    pair_dir = toy.build(tmp_path / "tiny", size="tiny", progress=False)
    stage, output = tmp_path / "stage", tmp_path / "out"
    args = dict(base=str(pair_dir / "base"), sft=str(pair_dir / "sft"), quick=True, root=ROOT, stage=stage,
                output=output, strict=True, parameters={"threads": 1}, log=lambda _: None)

    start = time.perf_counter()
    report = book.build(**args)
    first = time.perf_counter() - start
    print("\n" + report.summary() + f"\nfirst build: {first:.1f} s")
    assert report.ok, report.summary()
    assert [c.name for c in report.chapters] == list(book.CHAPTERS)
    assert all(c.status == "executed" for c in report.chapters)

    for name in book.CHAPTERS:
        executed = nbformat.read(stage / "notebooks" / f"{name}.ipynb", as_version=4)
        counts = [c.execution_count for c in executed.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1)), f"{name}: not run in order on a fresh kernel"
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors
        injected = [c for c in executed.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert injected and "quick = True" in injected[0].source

    html = output / "_build" / "html"
    assert (html / "index.html").exists()
    for name in book.CHAPTERS:
        page = (html / "notebooks" / f"{name}.html").read_text()
        assert re.search(r'<img [^>]*src="\.\./_images/[^"]+\.png"', page), f"{name}: no figure in the page"
        assert f"colab.research.google.com/github/mbt-project/mbt/blob/main/notebooks/{name}.ipynb" in page
        assert "Traceback" not in page
    table = (html / "book" / "paper_vs_ours.html").read_text()
    assert table.count("<tr") >= len(paper.HEADLINES) + 1
    assert "mbt:paper-vs-ours" not in table
    collected = (stage / "book" / "paper_vs_ours.md").read_text()
    assert "ours: `tiny-quick`" in collected
    assert "✓" not in collected and re.search(r"\*\*(holds|contradicted|inconclusive)\*\*", collected)
    methods = (html / "book" / "methods.html").read_text()
    assert "erank_power" in methods, "the generated conventions table"

    start = time.perf_counter()
    again = book.build(**args)
    second = time.perf_counter() - start
    print(again.summary() + f"\nrebuild: {second:.1f} s")
    assert again.ok and all(c.status == "up to date" for c in again.chapters)
    assert second < first / 2
