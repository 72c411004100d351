"""Chapter 9's figures (mbt.plots): each draws its curves and bars from the library's tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mbt import plots

L = 10


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_the_diffing_figure_has_three_depth_panels():
    layers = np.arange(L + 1)
    difference = pd.DataFrame({"layer": layers, "depth": layers / L, "relative": 0.1 + 0.01 * layers,
                               "ci_low": 0.09 + 0.01 * layers, "ci_high": 0.11 + 0.01 * layers})
    steering = pd.DataFrame({"layer": layers[1:], "depth": layers[1:] / L, "reduction": 0.3, "reduction_random": 0.1})
    gap = pd.DataFrame([{"model": m, "layer": x, "depth": x / L, "value": 3 - 0.3 * x + (m == "sft"), "ci_low": 0.0,
                         "ci_high": 5.0} for m in ("base", "sft") for x in layers[1:]])
    fig = plots.diffing_figure(difference, steering, gap, title="t")
    axes = [ax for ax in fig.axes if ax.get_ylabel()]
    assert len(axes) == 3
    assert [len(ax.lines) for ax in axes] == [1, 2, 2]
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), difference["relative"])


def test_the_graft_and_token_figures_draw_one_bar_per_row():
    summary = pd.DataFrame([{"direction": d, "part": p, "kind": k, "diff": 0.1, "diff_ci_low": 0.05,
                             "diff_ci_high": 0.15} for d in ("sft→base", "base→sft") for p in ("mlp", "attn")
                            for k in ("graft", "random")])
    summary = pd.concat([summary, pd.DataFrame([{"direction": "sft→base", "part": "none", "kind": "receiver",
                                                  "diff": 0.0, "diff_ci_low": 0.0, "diff_ci_high": 0.0}])])
    fig = plots.graft_figure(summary)
    assert [len(ax.patches) for ax in fig.axes if ax.get_visible()] == [4, 4]
    kinds = pd.DataFrame({"group": ["answer", "prompt", "template"], "kl": [1.0, 2.0, 3.0], "ci_low": [0.9, 1.9, 2.9],
                          "ci_high": [1.1, 2.1, 3.1]})
    positions = pd.DataFrame({"group": [0.0, 0.5], "kl": [1.0, 2.0], "ci_low": [0.5, 1.5], "ci_high": [1.5, 2.5]})
    fig = plots.token_kl_figure(kinds, positions)
    assert len(fig.axes[0].patches) == 3 and len(fig.axes[1].lines) == 1


def test_the_equal_step_figure_draws_both_rules_per_length():
    rows = [{"rule": r, "steps": k, "seed": s, "signature": sig, "layer": x, "depth": x / L, "value": 1.0 + x}
            for r in ("standard", "equal_step") for k in (25, 60) for s in (0, 1) for sig in plots.EQUAL_STEP_PANELS
            for x in range(1, L + 1)]
    fig = plots.equal_step_figure(pd.DataFrame(rows))
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(panels) == 4 and all(len(ax.lines) == 4 for ax in panels)
    styles = {line.get_linestyle() for line in panels[0].lines}
    assert styles == {"-", "--"}
