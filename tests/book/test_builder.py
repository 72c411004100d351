"""The book build behind `mbt book` (mbt.book.builder): staging, refusals, flags."""

from __future__ import annotations

import pytest
from conftest import REPO

from mbt import book, cli
from mbt.book import builder as book_build
from mbt.book import chapters as book_chapters
from mbt.book import jobs


def test_parameters_and_staging(tmp_path):
    nb = book_chapters.read_notebook(REPO / "notebooks" / "01_divergence.py")
    names = list(book_chapters.parameter_types(nb))
    for name in ("pair", "base", "sft", "quick", "datasets", "n_pooled", "n_token", "seed", "conventions"):
        assert name in names
    root = tmp_path / "root"
    (root / "book" / "_executed").mkdir(parents=True)
    (root / "book" / "_executed" / "stale.md").write_text("x")
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text("root: book/intro\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    stage = root / "book" / "_executed"
    book_build.stage_sources(root, stage)
    assert (stage / "_config.yml").exists() and (stage / "book" / "intro.md").read_text() == "# Intro\n"
    assert not (stage / "book" / "_executed").exists(), "the stage is never copied into itself"
    mtime = (stage / "book" / "intro.md").stat().st_mtime_ns
    book_build.stage_sources(root, stage)
    assert (stage / "book" / "intro.md").stat().st_mtime_ns == mtime, "unchanged files are left alone"


def test_build_refuses_bad_arguments_before_doing_anything(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        book.build("olmo9", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="has no _config.yml"):
        book.build("toy", root=tmp_path)
    with pytest.raises(ValueError, match="both --base and --sft"):
        book.build(base="x", root=tmp_path)
    (tmp_path / "_config.yml").write_text("title: t\n")
    with pytest.raises(ValueError, match="unknown chapters"):
        book.build("olmo2-1b", root=tmp_path, chapters=["99_nothing"], execute=False)


def test_cli_book_passes_flags_to_build(monkeypatch, capsys):
    seen = {}

    def fake_build(pair, **kwargs):
        seen.update(pair=pair, **kwargs)
        return book.BuildReport(pair=str(pair), stage=REPO, html=None)

    monkeypatch.setattr(book, "build", fake_build)
    code = cli.main(["book", "--pair", "olmo2-1b", "--quick", "--only", "1,05_swapping", "--param", "n_pooled=200",
                     "--param", "seeds=[0, 1]", "--param", "task=toy-math", "--force", "--strict"])
    assert code == 0
    assert seen["pair"] == "olmo2-1b" and seen["quick"] and seen["force"] and seen["strict"]
    assert seen["chapters"] == ["01_divergence", "05_swapping"]
    assert seen["parameters"] == {"n_pooled": 200, "seeds": [0, 1], "task": "toy-math"}
    code = cli.main(["book", "--base", "b", "--sft", "s", "--no-execute", "--no-html"])
    assert code == 0 and seen["pair"] is None and seen["base"] == "b" and not seen["execute"] and not seen["html"]
    assert cli.main(["book", "--param", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_build_refuses_bad_parameters_before_executing(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(jobs, "_execute", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(jobs.toy, "build", lambda *a, **k: ran.append("toy"))
    with pytest.raises(ValueError, match="valid names"):
        book.build("toy", parameters={"nonexistent": 1}, html=False)
    with pytest.raises(ValueError, match="must be int"):
        book.build("toy", parameters={"n_pooled": "abc"}, html=False)
    assert ran == []


def test_cli_book_outside_a_checkout_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "_execute", lambda *a, **k: pytest.fail("executed a chapter"))
    monkeypatch.setattr(jobs.toy, "build", lambda *a, **k: pytest.fail("built the toy pair"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["book", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ") and "pass --root" in err
    assert list(tmp_path.iterdir()) == []
