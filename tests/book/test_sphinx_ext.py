"""The book's Sphinx extension: each script once per page."""

from __future__ import annotations

from types import SimpleNamespace

from sphinx.builders.html._assets import _JavaScript

from mbt.book import sphinx_ext


def test_unique_scripts_keeps_the_first_of_identical_scripts_in_order():
    inline = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=inline), _JavaScript("_static/b.js", async_="1"),
               _JavaScript("", body=inline), _JavaScript("_static/a.js"), _JavaScript("_static/b.js"),
               _JavaScript(None, body="other")]
    context = {"script_files": scripts}
    sphinx_ext.unique_scripts(None, "page", "page.html", context, None)
    kept = context["script_files"]
    assert kept is scripts  # changed in place, as Sphinx renders the context's own list
    assert [(s.filename, dict(s.attributes)) for s in kept] == [
        ("_static/a.js", {}), (None, {"body": inline}), ("_static/b.js", {"async_": "1"}), ("_static/b.js", {}),
        (None, {"body": "other"})]
    empty = {}
    sphinx_ext.unique_scripts(None, "page", "page.html", empty, None)
    assert empty == {}


def test_setup_connects_early_and_is_parallel_safe():
    calls = []
    app = SimpleNamespace(connect=lambda *args, **kw: calls.append((args, kw)))
    assert sphinx_ext.setup(app) == {"parallel_read_safe": True, "parallel_write_safe": True}
    assert calls == [(("html-page-context", sphinx_ext.unique_scripts), {"priority": 100})]


def test_the_alt_text_plugin_is_found_by_myst_nb_and_its_absence_is_warned(monkeypatch, caplog):
    assert sphinx_ext.alt_text_plugin_registered()
    from myst_nb.core import render

    monkeypatch.setattr(render, "load_mime_renders", lambda: [])
    assert not sphinx_ext.alt_text_plugin_registered()
    app = SimpleNamespace(connect=lambda *args, **kw: None)
    with caplog.at_level("WARNING"):
        sphinx_ext.setup(app)
    assert "figures get no alt text" in caplog.text
