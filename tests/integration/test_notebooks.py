"""The chapter notebooks: text sources and .ipynb copies agree, and the whole book builds in quick mode.

The end-to-end test executes every chapter with papermill (a fresh kernel each, in order) on a tiny toy
pair built by :func:`mbt.toy.build`, then builds the Jupyter Book from the executed notebooks with
Sphinx warnings treated as errors, and checks what a reader would see: one page per chapter, each
with its figures and its Colab button, and the generated paper-vs-ours table.
"""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from conftest import REPO

from mbt import book, paper
from mbt.book import builder as book_build
from mbt.book import chapters as book_chapters
from mbt.book import jobs as book_jobs
from mbt.book.repository import repository_url

NOTEBOOKS = REPO / "notebooks"
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
    nb = book_chapters.read_notebook(NOTEBOOKS / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    first = code[0].source
    assert 'find_spec("mbt") is None' in first and '"pip", "install"' in first, "installs mbt on a fresh runtime"
    assert "setup_notebook()" in first, "picks the GPU when there is one"
    assert "parameters" in code[1].metadata.get("tags", []), "the second code cell is the papermill parameters cell"
    names = list(book_chapters.parameter_types(nb))
    if name == book.ACROSS:  # compares stored results of several pairs: it loads no pair and samples nothing
        assert {"pair", "pairs", "stores", "quick"} <= set(names)
    else:
        for required in REQUIRED_PARAMETERS:
            assert required in names, f"{name} lacks the parameter {required!r}"
        assert "seed" in names or "seeds" in names
    text = "\n".join(c.source for c in nb.cells)
    assert "MPLBACKEND" not in text and "matplotlib.use(" not in text, "never choose a backend: figures would vanish"
    assert "The paper's claim" in nb.cells[0].source or name in ("07_beyond", book.ACROSS)
    assert "$$" in text, "the method's formula"
    if name not in ("07_beyond", book.ACROSS):
        assert "paper.report(" in text, "the paper's number beside ours"


def test_toc_lists_every_chapter_and_prose_page():
    toc = (REPO / "_toc.yml").read_text()
    for name in book.CHAPTERS:
        assert f"file: notebooks/{name}\n" in toc
    for page in book.PROSE:
        assert (REPO / "book" / f"{page}.md").exists()
        assert f"book/{page}" in toc
    assert book.TABLE_MARKER in (REPO / "book" / "paper_vs_ours.md").read_text()
    config = (REPO / "_config.yml").read_text()
    assert 'execute_notebooks: "off"' in config and "colab_url" in config


@pytest.mark.slow
def test_every_chapter_runs_in_quick_mode_and_the_book_builds(tmp_path, monkeypatch):
    from mbt import toy

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels share two cores with the test runner
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    pair_dir = toy.build(tmp_path / "tiny", size="tiny", progress=False)
    stage, output = tmp_path / "stage", tmp_path / "out"
    args = dict(base=str(pair_dir / "base"), sft=str(pair_dir / "sft"), quick=True, root=REPO, stage=stage,
                output=output, strict=True, parameters={"threads": 1, "pairs": ["tiny"]}, log=lambda _: None)

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
        assert "hide-input" in injected[0].metadata.tags, "the injected parameters are folded on the page"

    html = output / "_build" / "html"
    assert (html / "index.html").exists()
    repo = repository_url(REPO).removeprefix("https://github.com/")  # the Colab buttons follow pyproject
    for name in book.CHAPTERS:
        page = (html / "notebooks" / f"{name}.html").read_text()
        assert re.search(r'<img [^>]*src="\.\./_images/[^"]+\.png"', page), f"{name}: no figure in the page"
        assert re.search(r'<img alt="[^"]* [^"]*" src="\.\./_images/', page), f"{name}: a figure without alt text"
        assert re.search(rf'href="\.\./_downloads/[0-9a-f]+/{name}-provenance\.json"', page), f"{name}: no downloads"
        assert f"colab.research.google.com/github/{repo}/blob/main/notebooks/{name}.ipynb" in page
        assert "Traceback" not in page
        # offline formulas: MathJax is served from the book itself, never from a CDN
        assert re.search(r'<script[^>]+src="\.\./_static/mathjax/tex-chtml\.js', page), f"{name}: MathJax not local"
        assert "cdn.jsdelivr.net" not in page and "mathjax@3" not in page
        assert re.search(r'class="[^"]*tag_injected-parameters[^"]*tag_hide-input', page), f"{name}: parameters shown"
        assert 'href="../_static/mbt.css' in page, "the stylesheet that lets wide tables scroll"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "overflow-x: auto" in (html / "_static" / "mbt.css").read_text()
    table = (html / "book" / "paper_vs_ours.html").read_text()
    assert table.count("<tr") >= len(paper.HEADLINES) + 1
    assert "mbt:paper-vs-ours" not in table
    collected = (stage / "book" / "paper_vs_ours.md").read_text()
    assert "ours: `tiny-quick`" in collected
    assert "## At a glance" in collected and "<details>" in collected  # marks first, then the folded details
    assert re.search(r"\*\*(holds|contradicted|inconclusive)\*\*", collected)
    assert (stage / "book" / "downloads" / "paper_vs_ours-table.csv").is_file()
    methods = (html / "book" / "methods.html").read_text()
    assert "erank_power" in methods, "the generated conventions table"

    start = time.perf_counter()
    again = book.build(**args)
    second = time.perf_counter() - start
    print(again.summary() + f"\nrebuild: {second:.1f} s")
    assert again.ok and all(c.status == "up to date" for c in again.chapters), [
        (c.name, c.status) for c in again.chapters if c.status != "up to date"]
    assert second < first / 2

    # the tiny pair's store, contributed from "another machine", renders beside the local pairs
    import json
    import shutil

    from mbt.book import builder
    from mbt.paper import store

    contributed = tmp_path / "results" / "tiny-gpu"
    shutil.copytree(store.store_folder("tiny", quick=True), contributed)
    meta = json.loads((contributed / "store.json").read_text())
    (contributed / "store.json").write_text(json.dumps({**meta, "pair": "tiny-gpu", "quick": False}))
    builder.stage_sources(REPO, stage)  # the staged page with its marker again
    page = builder.write_paper_vs_ours(stage, "tiny-quick", roots=[tmp_path / "results"])
    assert "ours: `tiny-gpu`" in page.read_text()
    entries, missing = book.comparison_stores(["tiny-gpu", "nowhere"], extra=[tmp_path / "results"])
    assert list(entries) == ["tiny-gpu"] and missing == ["nowhere"] and "pair_metrics" in entries["tiny-gpu"].tables

def test_injected_parameters_are_folded_and_the_stylesheet_is_staged(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
    ])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    book_jobs.fold_injected_parameters(path)
    book_jobs.fold_injected_parameters(path)  # idempotent
    tags = [c.metadata.tags for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters"], ["injected-parameters", "hide-input"]]

    stage = tmp_path / "stage"
    book_build.stage_sources(REPO, stage)
    assert (stage / "book" / "_static" / "mbt.css").read_text() == (REPO / "book" / "_static" / "mbt.css").read_text()
    assert not (stage / "book" / "_executed").exists()
    config = (REPO / "_config.yml").read_text()
    assert "- sphinx-mathjax-offline" in config and 'html_css_files: ["mbt.css"]' in config
