"""The built-book check (mbt.book.check) on small hand-made pages: static checks always, the browser when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbt.book import check

REPO = "https://github.com/mbt-project/mbt"


def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    for name, html in pages.items():
        path = tmp_path / "html" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html><head><title>{name}</title></head><body>{html}</body></html>")
    return tmp_path / "html"


def _png(path: Path, *, blank: bool) -> None:
    from PIL import Image

    image = Image.new("RGB", (8, 6), "white")
    if not blank:
        image.putpixel((3, 2), (0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _kinds(problems):
    return sorted((p.page, p.kind) for p in problems)


def test_path_warnings_finds_warnings_with_file_paths_and_nothing_else():
    text = ("device: cpu\n"
            "/x/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found\n"
            "/work/mbt/book/runtime.py:145: UserWarning: 7 of 400 texts are longer than 512 tokens\n"
            "  from .autonotebook import tqdm\n"
            "see mbt/book/repository.py for the URL; 7 of 400 texts were cut at 512 tokens\n"
            "C:\\Python\\Lib\\site-packages\\x\\y.py:3: FutureWarning: soon\n")
    assert check.path_warnings(text) == [
        "/x/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found",
        "/work/mbt/book/runtime.py:145: UserWarning: 7 of 400 texts are longer than 512 tokens",
        "C:\\Python\\Lib\\site-packages\\x\\y.py:3: FutureWarning: soon",
    ]
    assert check.path_warnings("all good\n3 of 4 texts were cut") == []


def test_untypeset_tex_reports_each_fragment_once_and_ignores_plain_prose():
    assert check.untypeset_tex("The cost is $5 and $10, a 20–80 % band, C:/path and e-mail a@b.c.") == []
    text = "Intro. $$\\mathrm{CKA}(X, Y) = \\frac{a}{b}$$ then text " + "x" * 200 + " \\(l/L\\) end"
    found = check.untypeset_tex(text)
    assert len(found) == 2
    assert "\\frac{a}{b}" in found[0] and "\\(l/L\\)" in found[1]
    assert check.untypeset_tex("inline $\\lambda_j$ left raw") == ["inline $\\lambda_j$ left raw"]


def test_image_is_blank(tmp_path):
    _png(tmp_path / "blank.png", blank=True)
    _png(tmp_path / "figure.png", blank=False)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    assert check.image_is_blank(tmp_path / "blank.png")
    assert not check.image_is_blank(tmp_path / "figure.png")
    assert check.image_is_blank(tmp_path / "empty.png")
    assert check.image_is_blank(tmp_path / "junk.png")
    assert check.image_is_blank(tmp_path / "missing.png")


def test_static_check_passes_a_clean_book(tmp_path):
    html = _site(tmp_path, {
        "index.html": '<a href="notebooks/ch.html#sec">chapter</a> <a href="https://arxiv.org/abs/1">paper</a>'
                      '<link rel="stylesheet" href="_static/s.css"><script src="_static/a.js"></script>',
        "notebooks/ch.html": '<h2 id="sec">S</h2><div class="cell_output docutils container">'
                             '<pre>7 of 400 texts were cut at 512 tokens</pre>'
                             '<img alt="Fig. 1: CKA per layer" src="../_images/f.png"></div>'
                             '<a href="../_downloads/abc/table.csv">table</a>'
                             '<script type="text/x-thebe-config">{ requestKernel: true, binderOptions: { repo: '
                             '"mbt-project/mbt", ref: "main" } }</script>',
    })
    (html / "_static").mkdir()
    (html / "_static" / "s.css").write_text("p {}")
    (html / "_static" / "a.js").write_text("")
    (html / "_downloads" / "abc").mkdir(parents=True)
    (html / "_downloads" / "abc" / "table.csv").write_text("a\n1\n")
    _png(html / "_images" / "f.png", blank=False)
    assert check.book_pages(html) == ["index.html", "notebooks/ch.html"]
    assert check.check_static(html, repository=REPO) == []


def test_static_check_finds_every_kind_of_problem(tmp_path):
    html = _site(tmp_path, {
        "index.html": '<a href="gone.html">x</a> <a href="#nowhere">y</a> <a href="other.html#nope">z</a>'
                      '<a href="../outside.html">o</a>'
                      '<script src="https://cdn.example.org/x.js"></script>'
                      '<link rel="stylesheet" href="//fonts.example.org/f.css">'
                      '<img src="_images/missing.png" alt="m">',
        "other.html": '<div class="cell_output docutils container">'
                      '<pre>/v/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found</pre>'
                      '<img src="_images/blank.png"><img alt="_images/f.png" src="_images/f.png"></div>'
                      '<script type="text/x-thebe-config">{ binderOptions: { repo: "binder-examples/'
                      'jupyter-stacks-datascience", ref: "master" } }</script>'
                      '<a href="https://mybinder.org/v2/gh/someone/else/main">binder</a>',
    })
    _png(html / "_images" / "blank.png", blank=True)
    _png(html / "_images" / "f.png", blank=False)
    (tmp_path / "outside.html").write_text("<html></html>")
    problems = check.check_static(html, repository=REPO)
    assert _kinds(problems) == sorted([
        ("index.html", "broken link"), ("index.html", "broken link"), ("index.html", "broken link"),
        ("index.html", "broken link"), ("index.html", "external request"), ("index.html", "external request"),
        ("index.html", "missing file"),
        ("other.html", "empty figure"), ("other.html", "figure without alt text"),
        ("other.html", "figure without alt text"), ("other.html", "path warning"),
        ("other.html", "live-code configuration"), ("other.html", "live-code configuration"),
    ])
    assert any("outside the book" in p.detail for p in problems)
    assert any("binder-examples" in p.detail for p in problems)
    with pytest.raises(FileNotFoundError, match="make book"):
        check.check_static(tmp_path / "nothing")


def test_main_explains_how_to_get_chromium_when_it_is_missing(tmp_path, monkeypatch, capsys):
    html = _site(tmp_path, {"index.html": "<p>hi</p>"})
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("CHROMIUM", raising=False)
    assert check.find_chromium() is None
    assert check.main([str(html), "--repository", REPO]) == 2
    assert "apt-get install chromium" in capsys.readouterr().err
    assert check.main([str(html), "--no-browser", "--repository", REPO]) == 0
    assert check.main([str(tmp_path / "nowhere")]) == 2
    with pytest.raises(FileNotFoundError, match="Chromium was not found"):
        check.check_browser(html, tmp_path / "shots")


@pytest.mark.skipif(check.find_chromium() is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_browser_check_catches_what_only_a_browser_sees(tmp_path):
    html = _site(tmp_path, {
        "index.html": '<p>Raw $$x^2 + \\frac{a}{b}$$ left for the reader.</p>'
                      '<img src="http://example.invalid/pixel.png" alt="remote">'
                      "<script>throw new Error('boom')</script>",
        "clean.html": '<p>Plain text.</p><img src="_images/f.png" alt="a figure">',
    })
    _png(html / "_images" / "f.png", blank=False)
    problems = check.check_browser(html, tmp_path / "shots", log=lambda s: None)
    kinds = {(p.page, p.kind, p.theme) for p in problems}
    for theme in check.THEMES:
        assert ("index.html", "untypeset TeX", theme) in kinds
        assert ("index.html", "external request", theme) in kinds
        assert ("index.html", "javascript error", theme) in kinds
        assert ("index.html", "broken image", theme) in kinds
        assert (tmp_path / "shots" / f"index-{theme}.png").stat().st_size > 0
        assert not check.image_is_blank(tmp_path / "shots" / f"clean-{theme}.png")
    assert not any(p.page == "clean.html" for p in problems)
    with pytest.raises(ValueError, match="themes"):
        check.check_browser(html, tmp_path / "shots", themes=["sepia"])
