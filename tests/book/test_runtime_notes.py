"""Warnings as a page reader needs them (mbt.book.runtime.reader_notes): a sentence, or nothing."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest

from mbt.book import runtime

MBT = Path(runtime.__file__).resolve().parents[1]


@pytest.fixture
def notes(monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    runtime.reader_notes()
    return warnings.showwarning


def _shown(show, *args):
    out = io.StringIO()
    show(*args, file=out)
    return out.getvalue()


def test_a_warning_of_mbt_or_of_the_chapter_becomes_a_sentence_without_a_path(notes):
    text = "7 of 400 texts are longer than the models' 512 positions and were truncated"
    shown = _shown(notes, UserWarning(text), UserWarning, str(MBT / "book" / "runtime.py"), 145)
    assert shown == f"Note: {text[0].upper()}{text[1:]}\n"
    assert "runtime.py" not in shown and "145" not in shown
    cell = "/tmp/ipykernel_123/456.py"
    assert _shown(notes, "a cell's own note", UserWarning, cell, 3) == "Note: A cell's own note\n"


def test_a_librarys_internal_warning_is_left_out(notes):
    site = "/x/.venv/lib/python3.11/site-packages/tqdm/auto.py"
    assert _shown(notes, "IProgress not found", UserWarning, site, 21) == ""
    assert _shown(notes, "old API", DeprecationWarning, str(MBT / "book" / "runtime.py"), 1) == ""
    assert _shown(notes, "soon", FutureWarning, "/tmp/ipykernel_1/2.py", 1) == ""
    assert _shown(notes, "overflow", RuntimeWarning, str(MBT / "metrics" / "x.py"), 1) == ""


def test_warnings_raised_in_mbt_reach_the_reader_as_notes(notes, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = notes
        warnings.warn_explicit("3 of 8 texts have no scored token", UserWarning, str(MBT / "probe.py"), 273)
    assert capsys.readouterr().out == "Note: 3 of 8 texts have no scored token\n"


def test_drop_lines_removes_the_command_lines_cache_notes_and_passes_the_rest():
    out = io.StringIO()
    stream = runtime.DropLines(out, runtime.CLI_NOTES)
    print("mbt: cached analyze result 1234 (computed 2026-12-07; /root/.cache/mbt/analyze)", file=stream)
    print("mbt: sweep: 3 of 3 runs already in /root/.cache/mbt/book/sweeps/toy.parquet, nothing to run", file=stream)
    stream.write("mbt: cach")  # a dropped line written in pieces
    stream.flush()
    stream.write("ed x\nkept line\npartial")
    assert out.getvalue() == "kept line\n"
    stream.flush()  # a partial line that cannot become a dropped one goes out on flush
    assert out.getvalue() == "kept line\npartial"
    print(" end", file=stream)
    assert out.getvalue() == "kept line\npartial end\n"
    assert stream.getvalue() == out.getvalue()  # everything else is the wrapped stream's
