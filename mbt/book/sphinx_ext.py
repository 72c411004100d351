r"""A Sphinx extension the book's build loads (``_config.yml``: ``sphinx: extra_extensions``).

Jupyter Book 1 adds the live-code extension (sphinx-thebe) to every book, and that extension declares its
inline configuration script (``const THEBE_JS_URL = …``) once per read phase, so every page carried it
twice and the browser raised ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared`` on every
page. :func:`unique_scripts` drops a script that a page already loads, keeping the first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["setup", "unique_scripts"]


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
