"""Alt text from the kernel to the page: the figure formatter's metadata and the MyST-NB plugin that reads it."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
from docutils import nodes
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

from mbt import plots
from mbt.book import figures


@pytest.fixture
def fig():
    f, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], label="SFT")
    ax.set_title("CKA per layer")
    ax.set_xlabel("layer l")
    ax.legend()
    f.suptitle("Fig. 1 on toy")
    yield f
    plt.close(f)


def test_the_formatter_adds_the_description_and_keeps_the_image(fig):
    wrapped = figures.figure_formatter(lambda f: "PNGDATA")
    data, meta = wrapped(fig)
    assert data == "PNGDATA" and meta == {"alt": plots.alt_text(fig)}
    data, meta = figures.figure_formatter(lambda f: ("PNGDATA", {"width": 10}))(fig)
    assert meta == {"width": 10, "alt": plots.alt_text(fig)}
    assert figures.figure_formatter(lambda f: None)(fig) is None


def test_describe_figures_wraps_the_kernels_figure_formatter_once(fig):
    formatter = DisplayFormatter()
    formatter.formatters["image/png"].for_type(Figure, lambda f: "PNGDATA")
    shell = SimpleNamespace(display_formatter=formatter)
    assert figures.describe_figures(shell)
    assert figures.describe_figures(shell)  # idempotent: wrapped once
    data, meta = formatter.format(fig, include={"image/png"})
    assert data == {"image/png": "PNGDATA"}
    assert meta == {"image/png": {"alt": "Fig. 1 on toy. Panel, x: layer l: CKA per layer. Legend: SFT."}}
    assert not figures.describe_figures(SimpleNamespace(display_formatter=DisplayFormatter()))  # no figure formatter
    assert figures.describe_figures(None) in (False, True)  # outside IPython: nothing to do


class _Renderer:
    def render_image(self, data):
        return [nodes.image(uri="x.png")]

    def render_image_inline(self, data):
        return self.render_image(data)


def test_the_myst_nb_plugin_sets_each_images_alt_text():
    data = SimpleNamespace(mime_type="image/png", output_metadata={"image/png": {"alt": "CKA per layer"}})
    (node,) = figures.AltText.handle_mime(_Renderer(), data, False)
    assert node["alt"] == "CKA per layer" and node["uri"] == "x.png"
    assert figures.AltText.handle_mime(_Renderer(), data, True)[0]["alt"] == "CKA per layer"
    plain = SimpleNamespace(mime_type="image/png", output_metadata={})
    assert figures.AltText.handle_mime(_Renderer(), plain, False) is None  # MyST-NB renders it as before
    text = SimpleNamespace(mime_type="text/plain", output_metadata={"text/plain": {"alt": "x"}})
    assert figures.AltText.handle_mime(_Renderer(), text, False) is None


def test_the_plugin_is_registered_with_myst_nb():
    from myst_nb.core.render import load_mime_renders

    load_mime_renders.cache_clear()
    assert figures.AltText in load_mime_renders(), "reinstall mbt (make venv) to register its entry points"


@pytest.mark.slow
def test_a_kernel_shows_figures_with_their_description(tmp_path):
    """End to end in a real kernel: pyplot's backend loads lazily, so the wrapping must load it first."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from mbt.book.figures import describe_figures\nassert describe_figures()"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1])\n"
                                  "ax.set_title('a line')\nax.set_xlabel('layer l')\nplt.show()"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(nb, str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    (image,) = [o for o in nbformat.read(out, as_version=4).cells[1].outputs if "image/png" in o.get("data", {})]
    assert image.metadata["image/png"]["alt"] == "Panel, x: layer l: a line."
