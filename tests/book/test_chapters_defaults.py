"""The declared defaults of a chapter's parameters cell (mbt.book.chapters.parameter_defaults)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from mbt.book.chapters import parameter_defaults, parameter_types, read_notebook

ROOT = Path(__file__).resolve().parents[2]


def test_parameter_defaults_reads_literals_and_skips_expressions():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell('pair: str = "toy"  # comment\nseeds: list = [0, 1]\nquick = False\n'
                                  "depth: int = 2 * 3\nlimit: float = -1.5\nempty: dict = {}",
                                  metadata={"tags": ["parameters"]}),
    ])
    assert parameter_defaults(nb) == {"pair": "toy", "seeds": [0, 1], "quick": False, "limit": -1.5, "empty": {}}
    assert parameter_defaults(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])) == {}


def test_every_chapter_declares_a_literal_default_for_each_parameter():
    for source in sorted((ROOT / "notebooks").glob("0*.py")):
        nb = read_notebook(source)
        assert set(parameter_defaults(nb)) == set(list(parameter_types(nb))), source.name
