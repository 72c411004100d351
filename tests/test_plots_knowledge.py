"""mbt.plots.knowledge_figure: one panel per format, the pairs in the ladder's order, Base and SFT with intervals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from mbt import plots


def test_knowledge_figure_orders_pairs_by_sft_steps():
    rows = []
    for pair, steps in (("toy", 300.0), ("toy-sft10", 10.0), ("other", float("nan"))):
        for fmt in ("own", "arithmetic", "qa"):
            for model, score in (("base", 0.3), ("sft", 0.6)):
                rows.append(dict(pair=pair, sft_steps=steps, model=model, format=fmt, score=score,
                                 ci_low=score - 0.1, ci_high=score + 0.1))
    fig = plots.knowledge_figure(pd.DataFrame(rows), labels={"qa": "Q/A format, 0-shot"}, title="t")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert [ax.get_title() for ax in axes] == ["own", "arithmetic", "Q/A format, 0-shot"]
    ticks = [t.get_text() for t in axes[0].get_xticklabels()]
    assert ticks == ["toy-sft10\n10 steps", "toy\n300 steps", "other"]
    lines = axes[0].lines
    assert any(line.get_color() == plots.SFT["color"] for line in lines)
    plt.close(fig)
