r"""Figures in the book with alt text: from a figure's own labels in the kernel to ``<img alt=…>`` on the page.

Two halves, one key (:data:`ALT_KEY`):

* in a chapter's kernel, :func:`describe_figures` (called by :func:`mbt.book.setup_notebook`) makes every
  matplotlib figure the notebook shows carry its description (:func:`mbt.plots.alt_text`) in the output's
  metadata, ``{"image/png": {"alt": "…"}}``;
* when Jupyter Book renders the executed notebook, :class:`AltText` — a MyST-NB mime-render plugin,
  registered under the entry point group ``myst_nb.mime_renderers`` in ``pyproject.toml`` — renders such an
  image as MyST-NB does and sets the description as its alt text. An image without the key renders as before.
"""

from __future__ import annotations

import functools
from typing import Any

from mbt.plots import alt_text

__all__ = ["ALT_KEY", "AltText", "describe_figures", "figure_formatter"]

ALT_KEY = "alt"
"""Key of the description in an image output's metadata (per MIME type, as Jupyter keeps output metadata)."""

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def figure_formatter(inner: Any, mime_type: str = "image/png") -> Any:
    """Wrap an IPython formatter function for figures so that it also returns the figure's description.

    Args:
        inner: The formatter function already registered for ``matplotlib.figure.Figure`` (it returns the
            image data, or ``(data, metadata)``).
        mime_type: The MIME type it formats (only used to name the wrapper).

    Returns:
        ``fig -> (data, {**metadata, "alt": alt_text(fig)})``; ``None`` stays ``None`` (nothing to show).
    """
    @functools.wraps(inner)
    def with_alt(fig: Any) -> Any:
        out = inner(fig)
        if out is None:
            return None
        data, meta = out if isinstance(out, tuple) else (out, {})
        return data, {**(meta or {}), ALT_KEY: alt_text(fig)}

    with_alt.mbt_alt = mime_type  # type: ignore[attr-defined]  # marks the wrapper, so it is applied once
    return with_alt


def describe_figures(shell: Any = None) -> bool:
    """Make every figure the running IPython kernel displays carry its description (see the module docstring).

    Loads pyplot's backend (in a kernel the inline backend registers its figure formatters as it loads),
    then wraps the formatters registered for matplotlib figures. Safe to call twice.

    Args:
        shell: The IPython shell (default: the running one).

    Returns:
        ``True`` when at least one formatter was wrapped or already was; ``False`` outside IPython.
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with the notebook stack
            return False
        shell = get_ipython()
    if shell is None:
        return False
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    # pyplot loads its backend, and with the inline backend IPython's figure formatters, only when first
    # needed (the first figure): load it now, so that there is a formatter to wrap
    load_backend = getattr(plt, "_get_backend_mod", None)
    if load_backend is not None:
        load_backend()

    done = False
    for mime_type in _IMAGE_TYPES:
        formatter = shell.display_formatter.formatters.get(mime_type)
        if formatter is None:
            continue
        try:
            inner = formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        if not getattr(inner, "mbt_alt", None):
            formatter.for_type(Figure, figure_formatter(inner, mime_type))
        done = True
    return done


class AltText:
    """MyST-NB mime-render plugin: an image output with a description in its metadata gets it as alt text.

    MyST-NB takes alt text only from cell-level options (one for all images of a cell); this plugin reads
    each image output's own metadata instead, so a cell that shows several figures describes each one.
    """

    mime_priority_overrides: tuple[tuple[str, str, int | None], ...] = ()

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[Any] | None:
        """Render ``data`` as MyST-NB's own image renderer does, then set its alt text; ``None`` for other outputs."""
        if data.mime_type not in _IMAGE_TYPES:
            return None
        alt = (data.output_metadata or {}).get(data.mime_type, {}).get(ALT_KEY)
        if not alt:
            return None
        nodes = renderer.render_image_inline(data) if inline else renderer.render_image(data)
        for node in nodes:
            if node.tagname == "image" and not node.get("alt"):
                node["alt"] = str(alt)
        return nodes
