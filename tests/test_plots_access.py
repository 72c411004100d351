"""Figures for every reader (mbt.plots): a colour-blind-safe palette, greyscale-safe styles, opaque plates, alt text."""

from __future__ import annotations

import io

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mbt import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _frame(datasets=("toy-math", "toy-mc", "toy-text"), L=6):
    rows = []
    for ds in datasets:
        for layer in range(L + 1):
            for model, shift in (("base", 0.0), ("sft", 0.1)):
                rows.append(dict(model=model, layer=layer, depth=layer / L, metric="effective_rank",
                                 value=3.0 + layer + shift, dataset=ds))
            rows.append(dict(model="pair", layer=layer, depth=layer / L, metric="cka", value=1.0 - 0.05 * layer,
                             dataset=ds))
    return pd.DataFrame(rows)


def _grey(colour):
    r, g, b = mcolors.to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_palette_is_okabe_ito_and_every_series_has_its_own_marker():
    assert set(plots.PALETTE) <= set(plots.OKABE_ITO.values())
    assert plots.OKABE_ITO["yellow"] not in plots.PALETTE  # too faint on a white plate
    assert len(set(plots.PALETTE)) == len(plots.PALETTE) == len(plots.MARKERS) == len(set(plots.MARKERS))
    for style in (plots.BASE, plots.SFT, plots.PAIR):
        assert style["color"] in plots.OKABE_ITO.values()


def test_base_and_sft_differ_without_colour():
    # blue and vermillion are nearly the same grey: line style, marker and fill carry the difference
    assert abs(_grey(plots.BASE["color"]) - _grey(plots.SFT["color"])) < 0.2
    assert plots.BASE["linestyle"] != plots.SFT["linestyle"]
    assert plots.BASE["marker"] != plots.SFT["marker"]
    assert plots.BASE.get("markerfacecolor") == "white" and "markerfacecolor" not in plots.SFT


def test_several_datasets_differ_in_colour_and_marker_and_base_stays_hollow():
    fig, ax = plt.subplots()
    plots.plot_layers(ax, _frame(), "effective_rank", models=("base", "sft"))
    lines = ax.get_lines()
    assert len(lines) == 6
    by_dataset = {}
    for line in lines:
        by_dataset.setdefault(line.get_label().split(", ")[1], set()).add((line.get_color(), line.get_marker()))
    assert len({next(iter(v)) for v in by_dataset.values()}) == 3  # three (colour, marker) pairs
    assert all(len(v) == 1 for v in by_dataset.values())  # Base and SFT of a dataset share them
    for line in lines:
        hollow = mcolors.to_hex(line.get_markerfacecolor()) == "#ffffff"
        assert hollow == line.get_label().startswith("Base")
        assert line.get_linestyle() == ("--" if line.get_label().startswith("Base") else "-")


def test_figures_have_an_opaque_white_plate():
    fig = plots.divergence_figure(_frame(), metrics=("cka",))
    assert mcolors.to_rgba(fig.get_facecolor()) == (1.0, 1.0, 1.0, 1.0)
    plots.use_style()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    from PIL import Image

    buffer.seek(0)
    alpha = np.asarray(Image.open(buffer).convert("RGBA"))[..., 3]
    assert alpha.min() == 255  # no transparent pixel: the figure reads the same on a dark page


def test_alt_text_describes_a_figure_from_its_own_labels():
    fig = plots.divergence_figure(_frame(), metrics=("cka",), title="Fig. 1 on toy: Base vs SFT per layer")
    text = plots.alt_text(fig)
    assert text.startswith("Fig. 1 on toy: Base vs SFT per layer. Panel, x: layer l: ")
    assert plots.metric_label("cka") in text and "x: layer l" in text
    assert "Legend: toy-math; toy-mc; toy-text." in text
    assert "relative depth" not in text  # the secondary axis is not a panel of its own
    multi = plots.convergence_figure(_frame(), metrics=("effective_rank",))
    assert "Legend: Base, toy-math; SFT, toy-math; Base, toy-mc" in plots.alt_text(multi)
    empty, _ = plt.subplots()
    assert plots.alt_text(empty) == "Figure."
    long = plots.alt_text(fig, limit=30)
    assert len(long) == 30 and long.endswith("…")


def test_alt_text_says_a_shared_x_label_once_and_skips_a_y_label_that_repeats_the_title():
    fig, (a, b) = plt.subplots(1, 2)
    for ax, title in ((a, "cka"), (b, "cosine")):
        ax.plot([0, 1])
        ax.set_title(title)
        ax.set_xlabel("layer l")
        ax.set_ylabel(title)
    assert plots.alt_text(fig) == "2 panels, x: layer l: cka; cosine."
    b.set_xlabel("block l")
    b.set_ylabel("value")
    assert plots.alt_text(fig) == "2 panels: cka (x: layer l); cosine (x: block l, y: value)."
