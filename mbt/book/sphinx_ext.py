r"""A Sphinx extension the book's build loads (``_config.yml``: ``sphinx: extra_extensions``).

* Jupyter Book 1 adds the live-code extension (sphinx-thebe) to every book, and that extension declares its
  inline configuration script (``const THEBE_JS_URL = …``) twice, so the browser raised ``SyntaxError:
  Identifier 'THEBE_JS_URL' has already been declared`` on every page. :func:`unique_scripts` drops a
  script that a page already loads, keeping the first.
* Figures get their alt text from :class:`mbt.book.figures.AltText`, which MyST-NB finds through an entry
  point of the installed ``mbt``; :func:`alt_text_plugin_registered` says whether it will, and the build
  warns when not (an ``mbt`` installed before the entry point existed: reinstall it, ``make venv``).
"""

from __future__ import annotations

from typing import Any

from mbt.book.figures import AltText

__all__ = ["alt_text_plugin_registered", "setup", "unique_scripts"]


def alt_text_plugin_registered() -> bool:
    """Whether MyST-NB will render figures through :class:`~mbt.book.figures.AltText` (its entry point)."""
    try:
        from myst_nb.core.render import load_mime_renders
    except ImportError:  # no MyST-NB: no notebooks to render
        return False
    return AltText in load_mime_renders()


def _key(script: Any) -> tuple[Any, ...]:
    """What makes two script entries the same: the file and every attribute, the inline code included.

    Inline code has no file, given as ``None`` or ``""`` depending on how it was added: both count as one.
    """
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", script) or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def unique_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """``html-page-context`` handler: keep each script of ``context["script_files"]`` once, in order."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Any) -> dict[str, Any]:
    """Register :func:`unique_scripts`, early.

    Sphinx stops calling ``html-page-context`` handlers at the first one that returns a template name, so a
    late handler may never run.
    """
    app.connect("html-page-context", unique_scripts, priority=100)
    if not alt_text_plugin_registered():
        from sphinx.util import logging

        logging.getLogger(__name__).warning("mbt's MyST-NB plugin (mbt.book.figures:AltText) is not registered: "
                                            "figures get no alt text; reinstall mbt (make venv)")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
