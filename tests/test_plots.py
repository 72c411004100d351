"""mbt.plots: every figure draws the expected lines and labels, with layers below and relative depth on top."""

from __future__ import annotations

import matplotlib
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


def _analysis_frame(datasets=("toy-math",)) -> pd.DataFrame:
    rows = []
    for ds in datasets:
        for layer in range(L + 1):
            d = layer / L
            for model, shift in (("base", 0.0), ("sft", 0.05)):
                rows.append(dict(model=model, layer=layer, depth=d, metric="effective_rank", value=5 + layer + shift,
                                 ci_low=np.nan, ci_high=np.nan, n=32, aggregation="dataset", dataset=ds))
                curv = 1.0 - 0.01 * layer + shift
                rows.append(dict(model=model, layer=layer, depth=d, metric="curvature", value=curv,
                                 ci_low=0.9 - 0.01 * layer, ci_high=1.1 - 0.01 * layer + shift, n=8,
                                 aggregation="sample_mean", dataset=ds))
                rows.append(dict(model=model, layer=layer, depth=d, metric="condition_number", value=10.0 ** (1 + d),
                                 ci_low=np.nan, ci_high=np.nan, n=32, aggregation="dataset", dataset=ds))
            rows.append(dict(model="pair", layer=layer, depth=d, metric="delta_curvature", value=0.05, ci_low=0.01,
                             ci_high=0.09, n=8, aggregation="sample_delta", dataset=ds))
            for metric, value in (("cka", 1.0 - 0.5 * d ** 4), ("cosine_similarity", 1.0 - 0.3 * d ** 3),
                                  ("mean_shift", 10 * d ** 3)):
                ci = 0.01 if metric == "cosine_similarity" else np.nan
                rows.append(dict(model="pair", layer=layer, depth=d, metric=metric, value=value,
                                 ci_low=value - ci, ci_high=value + ci, n=32, aggregation="alignment", dataset=ds))
    return pd.DataFrame(rows)


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]


def _depth_axis(ax):
    secondary = [c for c in ax.child_axes if c.__class__.__name__ == "SecondaryAxis"]
    assert len(secondary) == 1, "every layer axis has a relative-depth axis on top"
    return secondary[0]


def test_layer_axis_has_layers_below_and_depth_on_top():
    fig, ax = plt.subplots()
    ax.plot(range(L + 1), range(L + 1))
    sec = plots.layer_axis(ax, L)
    assert ax.get_xlabel() == "layer l"
    assert sec.get_xlabel() == "relative depth l / L"
    assert _depth_axis(ax) is sec
    assert list(sec.get_xticks()) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    # the secondary axis maps layer l to l / L
    assert ax.get_xlim()[1] == pytest.approx(L + 0.3)
    fwd, _ = sec._functions
    assert fwd(np.array([5.0]))[0] == pytest.approx(0.5)
    # the middle band (20-80 % depth) is shaded
    spans = [p for p in ax.patches if isinstance(p, matplotlib.patches.Polygon | matplotlib.patches.Rectangle)]
    assert spans


def test_divergence_figure_has_one_panel_per_metric_and_both_axes():
    fig = plots.divergence_figure(_analysis_frame(), title="Fig. 1")
    axes = _visible_axes(fig)
    assert len(axes) == 3
    for ax, metric in zip(axes, ("cka", "cosine_similarity", "mean_shift"), strict=True):
        assert ax.get_title() == plots.metric_label(metric)
        assert ax.get_xlabel() == "layer l"
        assert _depth_axis(ax).get_xlabel() == "relative depth l / L"
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == list(range(L + 1))
        assert line.get_linestyle() == "-"
    # cosine similarity has an interval band, CKA does not
    assert axes[1].collections and not axes[0].collections
    assert fig._suptitle.get_text() == "Fig. 1"
    assert fig.legends, "a shared legend"


def test_convergence_figure_draws_base_dashed_and_sft_solid():
    fig = plots.convergence_figure(_analysis_frame(), metrics=["effective_rank", "curvature", "absent_metric"])
    axes = _visible_axes(fig)
    assert len(axes) == 2, "metrics missing from the table are skipped"
    for ax in axes:
        styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
        assert styles == {"Base": "--", "SFT": "-"}
        assert _depth_axis(ax)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["Base", "SFT"]


def test_several_datasets_get_one_colour_each():
    fig, ax = plt.subplots()
    plots.plot_layers(ax, _analysis_frame(("a", "b")), "effective_rank", models=("base", "sft"))
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["Base, a", "SFT, a", "Base, b", "SFT, b"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert [line.get_linestyle() for line in lines] == ["--", "-", "--", "-"]


def test_log_scale_for_condition_number_and_unknown_metric_error():
    fig, ax = plt.subplots()
    plots.plot_layers(ax, _analysis_frame(), "condition_number", models=("base", "sft"))
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="no rows for metric 'nope'"):
        plots.plot_layers(ax, _analysis_frame(), "nope")


def test_delta_figure_has_zero_line_and_interval():
    fig = plots.delta_figure(_analysis_frame(), ["curvature", "effective_rank"])
    (ax,) = _visible_axes(fig)
    assert ax.get_title().startswith("Δ")
    ys = [line.get_ydata()[0] for line in ax.get_lines() if line.get_label().startswith("_")]
    assert 0.0 in ys, "a horizontal zero line"
    assert ax.collections, "the per-text interval band"


def _lens() -> pd.DataFrame:
    rows = []
    for model in ("base", "sft"):
        for paper in (False, True):
            for layer in range(1, L + 1):
                acc = 0.6 * (layer / L) ** 4
                if paper and layer == L:
                    acc -= 0.1
                for metric, value in (("top1_acc", acc), ("kl_to_final", 5 * (1 - layer / L))):
                    rows.append(dict(layer=layer, depth=layer / L, metric=metric, value=value, ci_low=np.nan,
                                     ci_high=np.nan, pooled=value, pooled_ci_low=value - 0.01,
                                     pooled_ci_high=value + 0.01, paper=paper, model=model))
    return pd.DataFrame(rows)


def test_probe_figure_marks_the_authors_last_layer():
    fig = plots.probe_figure(_lens())
    axes = _visible_axes(fig)
    assert len(axes) == 2
    acc = axes[0]
    labels = [line.get_label() for line in acc.get_lines()]
    assert labels == ["Base", "Base, final norm twice (authors)", "SFT", "SFT, final norm twice (authors)"]
    crosses = [line for line in acc.get_lines() if line.get_marker() == "x"]
    assert all(list(line.get_xdata()) == [L] for line in crosses)
    assert crosses[0].get_ydata()[0] == pytest.approx(0.5)
    assert _depth_axis(acc).get_xlabel() == "relative depth l / L"


def test_weight_figure_one_panel_per_series():
    s = pd.Series({b: 0.1 * b for b in range(1, L + 1)})
    fig = plots.weight_figure({"Eq. 1": s, "relative": s / 10}, n_layers=L)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["Eq. 1", "relative"]
    assert list(axes[0].get_lines()[0].get_xdata()) == list(range(1, L + 1))
    assert axes[0].get_xlabel().startswith("block l")
    assert _depth_axis(axes[1])


def test_correlation_figure_annotates_r_with_stars():
    corr = pd.DataFrame([
        dict(x="w", metric="cka", method="pearson", r=-0.9, p=0.001, n=10, df=8, degree=0),
        dict(x="w", metric="cka", method="partial_pearson", r=-0.1, p=0.8, n=10, df=7, degree=1),
        dict(x="w", metric="spectral_norm", method="pearson", r=0.8, p=0.01, n=10, df=8, degree=0),
        dict(x="w", metric="spectral_norm", method="partial_pearson", r=0.7, p=0.04, n=10, df=7, degree=1),
    ])
    fig = plots.correlation_figure(corr)
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["+0.70*", "+0.80*", "-0.10", "-0.90*"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Pearson r", "partial r | depth"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cka", "spectral_norm"]


def _sweep() -> pd.DataFrame:
    rows = []
    for direction, receiver, donor in (("sft→base", "base", "sft"), ("base→sft", "sft", "base")):
        rows.append(dict(direction=direction, receiver=receiver, donor=donor, kind="receiver", head="receiver",
                         segment=-1, blocks=(), diff=0.0, diff_ci_low=np.nan, diff_ci_high=np.nan))
        rows.append(dict(direction=direction, receiver=receiver, donor=donor, kind="donor", head="donor", segment=-1,
                         blocks=(), diff=0.05, diff_ci_low=0.04, diff_ci_high=0.06))
        for seg in range(5):
            blocks = (2 * seg + 1, 2 * seg + 2)
            for head in ("receiver", "donor"):
                rows.append(dict(direction=direction, receiver=receiver, donor=donor, kind="swap", head=head,
                                 segment=seg, blocks=blocks, diff=0.01 * seg, diff_ci_low=0.01 * seg - 0.005,
                                 diff_ci_high=0.01 * seg + 0.005))
            rows.append(dict(direction=direction, receiver=receiver, donor=donor, kind="placebo", head="receiver",
                             segment=seg, blocks=blocks, diff=0.0, diff_ci_low=0.0, diff_ci_high=0.0))
    return pd.DataFrame(rows)


def test_swap_figure_has_both_directions_heads_placebo_and_donor_line():
    fig = plots.swap_figure(_sweep())
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["sft→base", "base→sft"]
    ax = axes[0]
    assert len(ax.containers) == 2, "one error-bar series per head"
    placebo = [line for line in ax.get_lines() if line.get_label() == "placebo (self-swap)"]
    assert len(placebo) == 1 and list(placebo[0].get_ydata()) == [0.0] * 5
    assert any(line.get_label() == "whole donor − receiver" for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "1\n1–2"


def test_mask_figure_bars_per_mask_dots_per_seed_and_reference():
    table = pd.DataFrame([dict(mask=m, seed=s, accuracy=0.1 * i + 0.01 * s, accuracy_ci_low=0.1 * i - 0.05,
                               accuracy_ci_high=0.1 * i + 0.05, answer_nll=1.0 - 0.1 * i)
                          for i, m in enumerate(["00000", "11111", "01100"]) for s in (0, 1)])
    fig = plots.mask_figure(table, ["accuracy", "answer_nll"],
                            intervals={"accuracy": ("accuracy_ci_low", "accuracy_ci_high")},
                            reference={"accuracy": 0.0}, ylabels={"accuracy": "exact match"})
    axes = _visible_axes(fig)
    assert len(axes) == 2
    ax = axes[0]
    bars = [p for p in ax.patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(bars) == 3
    assert bars[2].get_height() == pytest.approx(0.205)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["00000", "11111", "01100"]
    assert len(ax.containers) >= 3, "error bars on every seed's dot"
    assert ax.get_ylabel() == "exact match"
    assert any(line.get_label() == "reference" for line in ax.get_lines())
    # the middle mask is highlighted
    assert bars[2].get_facecolor() != bars[1].get_facecolor()


def test_conventions_figure_one_panel_per_metric_and_preset():
    frame = _analysis_frame()
    fig = plots.conventions_figure({"standard": frame, "paper": frame}, ["cka", "effective_rank"])
    titles = [ax.get_title() for ax in _visible_axes(fig)]
    assert titles == [f"{plots.metric_label('cka')} — standard", f"{plots.metric_label('cka')} — paper",
                      f"{plots.metric_label('effective_rank')} — standard",
                      f"{plots.metric_label('effective_rank')} — paper"]
    for ax in _visible_axes(fig):
        assert _depth_axis(ax)


def test_selector_figure_shades_the_chosen_segments():
    evidence = pd.DataFrame([dict(signal=s, layer=layer, value=float(layer)) for s in ("score", "cka")
                             for layer in range(1, L + 1)])
    fig = plots.selector_figure(evidence, "01100", L)
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["score", "cka"]
    spans = [p for p in axes[0].patches if isinstance(p, matplotlib.patches.Rectangle)]
    xs = sorted({round(float(x), 2) for p in spans for x in (p.get_x(), p.get_x() + p.get_width())})
    assert xs == [2.5, 4.5, 6.5], "segments 2 and 3 of 5 over 10 layers are layers 3-6"


def test_metric_labels():
    assert plots.metric_label("cka") == "linear CKA (Base, SFT)"
    assert plots.metric_label("delta_curvature") == "Δ curvature (SFT − Base)"
    assert plots.metric_label("something_new") == "something new"


def test_use_style_and_style_context():
    with plots.style():
        assert matplotlib.rcParams["axes.spines.right"] is False
    plots.use_style()
    assert matplotlib.rcParams["lines.linewidth"] == plots.STYLE["lines.linewidth"]
