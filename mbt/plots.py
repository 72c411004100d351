"""The book's shared figure style: one look for every chapter, layers and relative depth on every layer axis.

Every function takes tidy tables straight from the library (:func:`mbt.analyze`,
:func:`mbt.probe.logit_lens`, :func:`mbt.weights.block_series`, :func:`mbt.correlate.layer_correlations`,
:func:`mbt.swap.swap_sweep`, a LoRA sweep table) and returns a :class:`matplotlib.figure.Figure`
made with :mod:`matplotlib.pyplot`, so a notebook shows it inline with no extra call. Nothing here
chooses a backend (the book would silently lose its figures under ``Agg``).

The module is longer than most (one figure function per paper figure and chapter): they share the
style, the layer axis and the legend helpers defined here, and splitting them by chapter would scatter
that one look over many files.

Conventions of every figure:

* **Base is dashed with hollow markers, SFT solid with filled ones** (the paper's Fig. 2 style), pair
  quantities (Base vs SFT) solid black; several datasets get one colour *and one marker shape* each.
* **Colours for every reader**: the Okabe–Ito palette (:data:`OKABE_ITO`), distinguishable with the common
  colour-vision deficiencies; since two of its colours can share a grey, line style and marker shape carry
  every distinction as well, so a figure also reads printed in greyscale. Figures have an opaque white
  background (:data:`STYLE`), so they read the same on a light and a dark page.
* Every figure carries a short description for readers who cannot see it (:func:`alt_text`, used as the
  figure's alt text in the book).
* A layer axis shows the layer index ``l`` (``0`` = embeddings, ``l`` = output of block ``l``) at the
  bottom and the relative depth ``l / L`` at the top (:func:`layer_axis`), and shades the paper's
  "middle" band, 20–80 % depth.
* Where the library gives an interval (``ci_low``/``ci_high``: 95 % bootstrap over samples) it is
  drawn as a band or an error bar; a point without one has no interval.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mbt.metrics import INTRINSIC_METRICS
from mbt.metrics.registry import is_log_scale
from mbt.metrics.registry import label as metric_label
from mbt.segments import MIDDLE

__all__ = [
    "BASE",
    "MARKERS",
    "OKABE_ITO",
    "PAIR",
    "PALETTE",
    "SFT",
    "STYLE",
    "alt_text",
    "conventions_figure",
    "convergence_figure",
    "correlation_figure",
    "EQUAL_STEP_PANELS",
    "delta_figure",
    "diffing_figure",
    "divergence_figure",
    "equal_step_figure",
    "graft_figure",
    "knowledge_figure",
    "layer_axis",
    "mask_figure",
    "plot_layers",
    "probe_figure",
    "selector_figure",
    "style",
    "swap_figure",
    "token_kl_figure",
    "use_style",
    "weight_figure",
]

OKABE_ITO: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7",
}
"""The Okabe–Ito palette: eight colours that stay apart for readers with the common colour-vision deficiencies."""

PALETTE: tuple[str, ...] = tuple(OKABE_ITO[c] for c in (
    "black", "blue", "vermillion", "bluish green", "reddish purple", "orange", "sky blue"))
"""Colours of several series (datasets, panels), in order; yellow is left out (too faint on white)."""

MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X")
"""Marker shapes of several series, paired with :data:`PALETTE`: series stay apart in greyscale too."""

BASE = {"color": OKABE_ITO["blue"], "linestyle": "--", "marker": "o", "markerfacecolor": "white", "label": "Base"}
SFT = {"color": OKABE_ITO["vermillion"], "linestyle": "-", "marker": "s", "label": "SFT"}
PAIR = {"color": OKABE_ITO["black"], "linestyle": "-", "marker": "o", "label": "Base vs SFT"}
_MODEL_STYLE = {"base": BASE, "sft": SFT, "pair": PAIR}
_PALETTE = PALETTE
_GREY = "#777777"
_BAND = "#999999"

STYLE: dict[str, Any] = {
    # opaque white plates: a transparent figure would show dark-mode text colours' opposite (black on black)
    "figure.facecolor": "white",
    "figure.edgecolor": "white",
    "savefig.facecolor": "white",
    "savefig.edgecolor": "white",
    "savefig.transparent": False,
    "axes.facecolor": "white",
    "axes.prop_cycle": mpl.cycler(color=list(PALETTE)),
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
    "font.size": 9.5,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "axes.spines.top": True,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 3.5,
}

def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib's global settings (once per notebook)."""
    mpl.rcParams.update(STYLE)


def _clean(text: str) -> str:
    return " ".join(str(text).replace("$", "").split())


def alt_text(fig: Any, *, limit: int = 600) -> str:
    """A figure described in words from its own labels: the caption a reader who cannot see it gets.

    ``"<suptitle>. <n> panels, x: <shared x label>: <panel title> (y: <label>); …. Legend: <a>; <b>."`` —
    the figure's title, each visible panel's title and axis labels (an x label all panels share is said
    once, a y label that repeats the panel's title is left out), and the legend's entries (figure-level and
    per panel), deduplicated, cut at ``limit`` characters. Colour bars and secondary axes are left out.

    Args:
        fig: A matplotlib figure.
        limit: Longest description returned (a longer one ends with ``…``).

    Returns:
        The description; ``"Figure."`` for a figure without any text.
    """
    parts: list[str] = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        parts.append(_clean(suptitle.get_text()).rstrip(".") + ".")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"
            and not any(ax in getattr(other, "child_axes", ()) for other in fig.axes)]
    xlabels = {_clean(ax.get_xlabel()) for ax in axes}
    shared_x = xlabels.pop() if len(xlabels) == 1 else ""
    panels = []
    for ax in axes:
        title, x, y = _clean(ax.get_title()), _clean(ax.get_xlabel()), _clean(ax.get_ylabel())
        labels = [f"{name}: {text}" for name, text in (("x", "" if shared_x else x), ("y", "" if y == title else y))
                  if text]
        panel = title + (f" ({', '.join(labels)})" if labels else "") if title else ", ".join(labels)
        if panel and panel not in panels:
            panels.append(panel)
    head = (f"{len(panels)} panels" if len(panels) > 1 else "Panel") + (f", x: {shared_x}" if shared_x else "")
    if panels:
        parts.append(f"{head}: " + "; ".join(panels) + ".")
    elif shared_x:
        parts.append(f"{head}.")
    entries: list[str] = []
    for legend in [*getattr(fig, "legends", []), *(ax.get_legend() for ax in axes)]:
        if legend is None:
            continue
        for text in legend.get_texts():
            entry = _clean(text.get_text())
            if entry and entry not in entries:
                entries.append(entry)
    if entries:
        parts.append("Legend: " + "; ".join(entries) + ".")
    text = " ".join(parts) or "Figure."
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Context manager applying :data:`STYLE` for the figures created inside it."""
    with mpl.rc_context(STYLE):
        yield


def _n_layers(frame: pd.DataFrame) -> int:
    """``L`` from a table with ``layer`` and ``depth`` columns (``layer / depth`` where depth > 0)."""
    sel = frame[frame["depth"] > 0]
    if sel.empty:
        return int(frame["layer"].max())
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def layer_axis(ax: Any, n_layers: int, *, middle: bool = True, depth: bool = True, xlabel: str = "layer l") -> Any:
    """Label ``ax``'s x axis in layers, add relative depth ``l / L`` on top and shade the middle band.

    Args:
        ax: A matplotlib axes whose x data are layer indices ``0..L``.
        n_layers: ``L``, the number of decoder blocks.
        middle: Shade the paper's middle layers, 20–80 % depth.
        depth: Add the secondary (top) axis in relative depth.
        xlabel: Bottom label.

    Returns:
        The secondary axis (or ``None`` without ``depth``).
    """
    L = max(int(n_layers), 1)
    ax.set_xlabel(xlabel)
    ax.set_xlim(-0.3, L + 0.3)
    step = max(1, int(math.ceil(L / 10)))
    ax.set_xticks(list(range(0, L + 1, step)))
    if middle:
        ax.axvspan(MIDDLE[0] * L, MIDDLE[1] * L, color=_BAND, alpha=0.08, lw=0, zorder=0)
    if not depth:
        return None
    sec = ax.secondary_xaxis("top", functions=(lambda x: x / L, lambda d: d * L))
    sec.set_xlabel("relative depth l / L")
    sec.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    return sec


def _hue_values(frame: pd.DataFrame, hue: str | None) -> list[Any]:
    if hue is None or hue not in frame.columns:
        return [None]
    return list(dict.fromkeys(frame[hue].tolist()))


def plot_layers(
    ax: Any,
    frame: pd.DataFrame,
    metric: str,
    *,
    models: Sequence[str] = ("base", "sft", "pair"),
    hue: str | None = "dataset",
    ci: bool = True,
    n_layers: int | None = None,
    label_suffix: str = "",
    axis: bool = True,
    **line_kw: Any,
) -> None:
    """Draw one metric per layer from a tidy :func:`mbt.analyze` table.

    Base dashed, SFT solid, pair quantities black; with several values in the ``hue`` column
    (e.g. datasets) each gets a colour and the line style still tells Base from SFT.
    Bands show ``ci_low``–``ci_high`` where they are finite.

    Args:
        ax: Target axes.
        frame: Tidy table with ``model``, ``layer``, ``depth``, ``metric``, ``value`` (and optionally
            ``ci_low``, ``ci_high`` and the ``hue`` column).
        metric: Metric name.
        models: Which ``model`` values to draw.
        hue: Column that splits lines by colour (ignored when absent or constant).
        ci: Draw interval bands.
        n_layers: ``L`` (default: inferred from ``layer``/``depth``).
        label_suffix: Appended to every legend label.
        axis: Format the x axis with :func:`layer_axis`.
        **line_kw: Extra keyword arguments for ``ax.plot``.
    """
    sel = frame[frame["metric"] == metric]
    if sel.empty:
        raise ValueError(f"no rows for metric {metric!r}; metrics present: {sorted(frame['metric'].unique())}")
    hues = _hue_values(sel, hue)
    many = len(hues) > 1
    for k, h in enumerate(hues):
        part = sel if h is None else sel[sel[hue] == h]
        for model in models:
            rows = part[part["model"] == model].sort_values("layer")
            if rows.empty:
                continue
            st = dict(_MODEL_STYLE.get(model, PAIR))
            if many:
                st["color"] = _PALETTE[k % len(_PALETTE)]
                st["marker"] = MARKERS[k % len(MARKERS)]
            label = st.pop("label")
            if many:
                label = f"{label}, {h}" if model != "pair" else str(h)
            kw = {**st, **line_kw}
            ax.plot(rows["layer"], rows["value"], label=label + label_suffix, **kw)
            if ci and {"ci_low", "ci_high"} <= set(rows.columns):
                low, high = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
                ok = np.isfinite(low) & np.isfinite(high)
                if ok.any():
                    ax.fill_between(rows["layer"].to_numpy()[ok], low[ok], high[ok], color=kw["color"], alpha=0.15,
                                    lw=0)
    if is_log_scale(metric):
        values = sel["value"].to_numpy(float)
        if np.all(values[np.isfinite(values)] > 0):
            ax.set_yscale("log")
    ax.set_ylabel(metric_label(metric))
    if axis:
        layer_axis(ax, n_layers or _n_layers(frame))


def _grid(n: int, ncols: int, panel: tuple[float, float] = (4.0, 2.9)) -> tuple[Any, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = int(math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend(fig: Any, axes: Sequence[Any]) -> None:
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))


def divergence_figure(
    frame: pd.DataFrame,
    metrics: Sequence[str] = ("cka", "cosine_similarity", "mean_shift"),
    *,
    hue: str | None = "dataset",
    title: str | None = None,
) -> Any:
    """Paper Fig. 1: Base-vs-SFT alignment per layer (CKA, cosine similarity, mean shift).

    Args:
        frame: Tidy :func:`mbt.analyze` table (rows with ``model == "pair"`` are used).
        metrics: Alignment metrics, one panel each.
        hue: Column with one colour per value (e.g. ``"dataset"``).
        title: Figure title.
    """
    with style():
        fig, axes = _grid(len(metrics), 3)
        for ax, metric in zip(axes, metrics, strict=True):
            plot_layers(ax, frame, metric, models=("pair",), hue=hue)
            ax.set_title(metric_label(metric), fontsize=9.5)
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig




def convergence_figure(
    frame: pd.DataFrame,
    metrics: Sequence[str] = INTRINSIC_METRICS,
    *,
    hue: str | None = "dataset",
    ncols: int = 4,
    title: str | None = None,
) -> Any:
    """Paper Fig. 2: each model's own metrics per layer, Base dashed and SFT solid.

    Args:
        frame: Tidy :func:`mbt.analyze` table.
        metrics: Metrics, one panel each (those absent from ``frame`` are skipped).
        hue: Column with one colour per value.
        ncols: Panels per row.
        title: Figure title.
    """
    present = [m for m in metrics if m in set(frame["metric"])]
    with style():
        fig, axes = _grid(len(present), ncols, panel=(3.4, 2.7))
        for ax, metric in zip(axes, present, strict=True):
            plot_layers(ax, frame, metric, models=("base", "sft"), hue=hue)
            ax.set_title(metric_label(metric), fontsize=9.5)
            ax.set_ylabel("")
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig


def delta_figure(
    frame: pd.DataFrame,
    metrics: Sequence[str],
    *,
    hue: str | None = "dataset",
    ncols: int = 4,
    title: str | None = None,
) -> Any:
    """SFT − Base per layer (paper Eq. 8–9) with 95 % intervals where defined, and a zero line.

    Args:
        frame: Tidy :func:`mbt.analyze` table; ``metrics`` are base names (``"curvature"``): the
            ``delta_*`` rows are drawn.
        metrics: Base metric names.
        hue: Column with one colour per value.
        ncols: Panels per row.
        title: Figure title.
    """
    present = [m for m in metrics if f"delta_{m}" in set(frame["metric"])]
    with style():
        fig, axes = _grid(len(present), ncols, panel=(3.4, 2.5))
        for ax, metric in zip(axes, present, strict=True):
            plot_layers(ax, frame, f"delta_{metric}", models=("pair",), hue=hue)
            ax.axhline(0.0, color=_GREY, lw=0.8, zorder=1)
            ax.set_title(f"Δ {metric_label(metric)}", fontsize=9.5)
            ax.set_ylabel("")
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig


def probe_figure(
    lens: pd.DataFrame,
    metrics: Sequence[str] = ("top1_acc", "kl_to_final"),
    *,
    value: str = "pooled",
    title: str | None = None,
) -> Any:
    """Paper Fig. 3: logit-lens quantities per layer for Base and SFT; ``paper=True`` rows dotted.

    Args:
        lens: Concatenated :func:`mbt.probe.logit_lens` tables with a ``model`` column
            (``"base"``/``"sft"``) and the library's ``paper`` column (``True`` = final norm applied
            twice at the last layer, the authors' bug).
        metrics: Lens metrics, one panel each.
        value: ``"pooled"`` (token-weighted, the authors' number; intervals ``pooled_ci_*``) or
            ``"value"`` (mean over samples; intervals ``ci_*``).
        title: Figure title.
    """
    low, high = ("pooled_ci_low", "pooled_ci_high") if value == "pooled" else ("ci_low", "ci_high")
    L = _n_layers(lens)
    with style():
        fig, axes = _grid(len(metrics), 2, panel=(4.6, 3.0))
        for ax, metric in zip(axes, metrics, strict=True):
            for model in ("base", "sft"):
                for paper in (False, True):
                    rows = lens[(lens["metric"] == metric) & (lens["model"] == model) & (lens["paper"] == paper)]
                    rows = rows.sort_values("layer")
                    if rows.empty:
                        continue
                    st = dict(_MODEL_STYLE[model])
                    label = st.pop("label")
                    if paper:
                        # the paper variant differs only at the last layer: draw that point
                        last = rows[rows["layer"] == rows["layer"].max()]
                        ax.plot(last["layer"], last[value], marker="x", ls="none", ms=8, color=st["color"],
                                label=f"{label}, final norm twice (authors)")
                        continue
                    ax.plot(rows["layer"], rows[value], label=label, **st)
                    lo, hi = rows[low].to_numpy(float), rows[high].to_numpy(float)
                    ok = np.isfinite(lo) & np.isfinite(hi)
                    if ok.any():
                        ax.fill_between(rows["layer"].to_numpy()[ok], lo[ok], hi[ok], color=st["color"], alpha=0.15,
                                        lw=0)
            ax.set_ylabel(metric_label(metric))
            ax.set_title(metric_label(metric), fontsize=9.5)
            layer_axis(ax, L)
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig


def weight_figure(
    series: Mapping[str, pd.Series],
    *,
    n_layers: int | None = None,
    ylabels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """Paper Fig. 4: one per-block weight-change series per panel (block ``l`` produces layer ``l``).

    Args:
        series: ``{panel title: Series indexed by block 1..L}`` (e.g. from
            :func:`mbt.weights.block_series`).
        n_layers: ``L`` (default: the largest block index).
        ylabels: Optional y label per panel.
        title: Figure title.
    """
    L = n_layers or int(max(int(s.index.max()) for s in series.values()))
    with style():
        fig, axes = _grid(len(series), 3, panel=(3.9, 2.8))
        for k, (ax, (name, s)) in enumerate(zip(axes, series.items(), strict=True)):
            s = s.sort_index()
            ax.plot(s.index.to_numpy(int), s.to_numpy(float), marker=MARKERS[k % len(MARKERS)],
                    color=_PALETTE[k % len(_PALETTE)],
                    label=name)
            ax.set_title(name, fontsize=9.5)
            ax.set_ylabel((ylabels or {}).get(name, ""))
            layer_axis(ax, L, xlabel="block l (produces layer l)")
        if title:
            fig.suptitle(title)
    return fig


def correlation_figure(
    corr: pd.DataFrame,
    methods: Sequence[str] = ("pearson", "partial_pearson"),
    *,
    titles: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Any:
    """Paper Fig. 5: correlation of a per-layer series with every metric, raw next to depth-controlled.

    Args:
        corr: :func:`mbt.correlate.layer_correlations` table (columns ``metric``, ``method``, ``r``, ``p``).
        methods: Columns of the heatmap, e.g. raw Pearson and partial Pearson given depth.
        titles: Column labels per method.
        title: Figure title.
    """
    names = {"pearson": "Pearson r", "spearman": "Spearman ρ", "partial_pearson": "partial r | depth",
             "partial_spearman": "partial ρ | depth", **(titles or {})}
    wide = corr.pivot_table(index="metric", columns="method", values="r", sort=False)
    pvals = corr.pivot_table(index="metric", columns="method", values="p", sort=False)
    cols = [m for m in methods if m in wide.columns]
    wide, pvals = wide[cols], pvals[cols]
    with style():
        fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(cols), 0.9 + 0.32 * len(wide)), layout="constrained")
        im = ax.imshow(wide.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(cols)), [names.get(c, c) for c in cols])
        ax.set_yticks(range(len(wide)), [str(m) for m in wide.index])
        ax.grid(False)
        for i in range(wide.shape[0]):
            for j in range(wide.shape[1]):
                r, p = wide.iat[i, j], pvals.iat[i, j]
                if np.isfinite(r):
                    star = "*" if np.isfinite(p) and p < 0.05 else ""
                    ax.text(j, i, f"{r:+.2f}{star}", ha="center", va="center", fontsize=7.5,
                            color="white" if abs(r) > 0.6 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8, label="r   (* p < 0.05)")
        ax.set_title(title or "correlation over layers", fontsize=10)
    return fig


def swap_figure(sweep: pd.DataFrame, *, title: str | None = None) -> Any:
    """Paper Fig. 6: change of the receiver's score when each segment is swapped, with paired intervals.

    One panel per direction (``"sft→base"``: SFT blocks into Base, the authors' only direction);
    x = segment, y = ``diff`` (configuration − unswapped receiver) with its paired 95 % interval; one
    series per head; placebo swaps (a segment replaced by a copy of itself) as grey crosses; the
    full donor's difference as a dotted line.

    Args:
        sweep: :func:`mbt.swap.swap_sweep` table.
        title: Figure title.
    """
    directions = list(dict.fromkeys(sweep["direction"]))
    heads = {"receiver": ("receiver's head", OKABE_ITO["blue"], "o"),
             "donor": ("donor's head", OKABE_ITO["vermillion"], "s")}
    with style():
        fig, axes = _grid(len(directions), 2, panel=(4.8, 3.2))
        for ax, direction in zip(axes, directions, strict=True):
            part = sweep[sweep["direction"] == direction]
            n_seg = int(part["segment"].max()) + 1
            offset = {"receiver": -0.12, "donor": 0.12}
            for head, (label, color, marker) in heads.items():
                rows = part[(part["kind"] == "swap") & (part["head"] == head)].sort_values("segment")
                if rows.empty:
                    continue
                x = rows["segment"].to_numpy(float) + offset[head]
                y = rows["diff"].to_numpy(float)
                err = np.vstack([y - rows["diff_ci_low"].to_numpy(float), rows["diff_ci_high"].to_numpy(float) - y])
                ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0.0), fmt=marker, color=color, capsize=2.5,
                            label=label, ls="-", lw=1.0)
            plc = part[part["kind"] == "placebo"].sort_values("segment")
            if not plc.empty:
                ax.plot(plc["segment"], plc["diff"], "x", color=_GREY, ms=7, label="placebo (self-swap)")
            donor = part[part["kind"] == "donor"]
            if not donor.empty:
                ax.axhline(float(donor["diff"].iloc[0]), color="#555555", ls=":", lw=1.0,
                           label="whole donor − receiver")
            ax.axhline(0.0, color=_BAND, lw=0.8)
            blocks = {int(r.segment): r.blocks for r in part[part["kind"] == "swap"].itertuples()}
            ax.set_xticks(range(n_seg), [f"{i + 1}\n{_blocks_label(blocks.get(i, ()))}" for i in range(n_seg)])
            ax.set_xlabel("segment (blocks swapped)")
            ax.set_ylabel("Δ score vs unswapped receiver")
            ax.set_title(direction, fontsize=9.5)
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig


def _blocks_label(blocks: Iterable[int]) -> str:
    b = list(blocks)
    if not b:
        return ""
    return f"{b[0]}–{b[-1]}" if len(b) > 1 else str(b[0])


def mask_figure(
    table: pd.DataFrame,
    values: Sequence[str],
    *,
    mask: str = "mask",
    seed: str = "seed",
    intervals: Mapping[str, tuple[str, str]] | None = None,
    reference: Mapping[str, float] | None = None,
    ylabels: Mapping[str, str] | None = None,
    order: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """Paper Fig. 7: one bar per segment mask (mean over seeds), every seed as a dot, intervals as bars.

    Args:
        table: A sweep table, one row per ``(mask, seed)``.
        values: Columns to plot, one panel each (e.g. accuracy, answer NLL, retention).
        mask: Column holding the mask string (``"01100"``: first character = segment nearest the input).
        seed: Column holding the seed.
        intervals: ``{value column: (low column, high column)}``: a per-run interval; drawn as error
            bars on each seed's dot.
        reference: ``{value column: y}`` for a horizontal reference line (e.g. the untuned Base).
        ylabels: Label per value column.
        order: Order of the masks on the x axis (default: as they first appear).
        title: Figure title.
    """
    masks = list(order) if order is not None else list(dict.fromkeys(table[mask].astype(str)))
    masks = [m for m in masks if m in set(table[mask].astype(str))]
    with style():
        fig, axes = _grid(len(values), 3, panel=(max(3.6, 0.42 * len(masks) + 1.2), 3.0))
        for ax, col in zip(axes, values, strict=True):
            for i, m in enumerate(masks):
                rows = table[table[mask].astype(str) == m]
                vals = rows[col].to_numpy(float)
                fin = vals[np.isfinite(vals)]
                if fin.size:
                    middle = _is_middle(m)  # middle masks: vermillion and hatched, so greyscale still tells them apart
                    colour = OKABE_ITO["vermillion"] if middle else OKABE_ITO["sky blue"]
                    ax.bar(i, fin.mean(), color=colour, alpha=0.75, width=0.7, hatch="//" if middle else None,
                           edgecolor="white")
                jitter = np.linspace(-0.18, 0.18, len(vals)) if len(vals) > 1 else np.zeros(1)
                if intervals and col in intervals:
                    lo_c, hi_c = intervals[col]
                    lo, hi = rows[lo_c].to_numpy(float), rows[hi_c].to_numpy(float)
                    err = np.vstack([vals - lo, hi - vals])
                    ax.errorbar(i + jitter, vals, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o",
                                color=PAIR["color"], ms=3, capsize=2, lw=0.8)
                else:
                    ax.plot(i + jitter, vals, "o", color=PAIR["color"], ms=3)
            if reference and col in reference and np.isfinite(reference[col]):
                ax.axhline(reference[col], color="#555555", ls=":", lw=1.0, label="reference")
            ax.set_xticks(range(len(masks)), masks, rotation=60, fontsize=7.5, family="monospace")
            ax.set_xlabel("segment mask (input → output)")
            ax.set_ylabel((ylabels or {}).get(col, col.replace("_", " ")))
            ax.set_title((ylabels or {}).get(col, col.replace("_", " ")), fontsize=9.5)
            ax.grid(axis="x", visible=False)
        if title:
            fig.suptitle(title)
    return fig


def _is_middle(mask: str) -> bool:
    """A mask that adapts neither the first nor the last segment but something in between."""
    return len(mask) > 2 and "1" in mask and mask[0] == "0" and mask[-1] == "0"


def conventions_figure(
    frames: Mapping[str, pd.DataFrame],
    metrics: Sequence[str],
    *,
    models: Sequence[str] = ("base", "sft"),
    ncols: int = 4,
    title: str | None = None,
) -> Any:
    """The same metrics under several convention presets, one row of panels per metric.

    Args:
        frames: ``{preset name: tidy analyze table}`` (e.g. ``"standard"`` and ``"paper"``).
        metrics: Metrics to compare (pair metrics are drawn for ``model == "pair"``).
        models: Models drawn for per-model metrics.
        ncols: Panels per row.
        title: Figure title.
    """
    presets = list(frames)
    panels = [(m, p) for m in metrics for p in presets]
    with style():
        fig, axes = _grid(len(panels), max(ncols, len(presets)) // len(presets) * len(presets), panel=(3.2, 2.5))
        for ax, (metric, preset) in zip(axes, panels, strict=True):
            frame = frames[preset]
            is_pair = metric in set(frame.loc[frame["model"] == "pair", "metric"])
            plot_layers(ax, frame, metric, models=("pair",) if is_pair else models, hue=None)
            ax.set_title(f"{metric_label(metric)} — {preset}", fontsize=8.5)
            ax.set_ylabel("")
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig


def selector_figure(
    evidence: pd.DataFrame,
    mask: str,
    n_layers: int,
    *,
    layer: str = "layer",
    signal: str = "signal",
    value: str = "value",
    title: str | None = None,
) -> Any:
    """The training-free selector's evidence curves per layer, with the chosen segments shaded.

    Args:
        evidence: Tidy table, one row per ``(signal, layer)``.
        mask: The suggested segment mask (first character = segment nearest the input).
        n_layers: ``L``.
        layer: Column of the layer index (0..L).
        signal: Column naming the signal.
        value: Column of the value.
        title: Figure title.
    """
    signals = list(dict.fromkeys(evidence[signal]))
    with style():
        fig, axes = _grid(max(1, len(signals)), 3, panel=(3.8, 2.7))
        n = len(mask)
        for ax, name in zip(axes, signals, strict=False):
            rows = evidence[evidence[signal] == name].sort_values(layer)
            ax.plot(rows[layer], rows[value], marker="o", color=PAIR["color"])
            for i, bit in enumerate(mask):
                if bit == "1":
                    # segment i covers 0-based blocks [floor(iL/n), floor((i+1)L/n)) = layers start+1..end
                    start, end = (i * n_layers) // n, ((i + 1) * n_layers) // n
                    ax.axvspan(start + 0.5, end + 0.5, color=OKABE_ITO["vermillion"], alpha=0.12, lw=0)
            ax.set_title(str(name), fontsize=9.5)
            layer_axis(ax, n_layers, middle=False)
        if title:
            fig.suptitle(title)
    return fig


ACROSS_PANELS: dict[str, str] = {
    "cka": "CKA(Base, SFT)",
    "relative_mean_shift": "relative mean shift",
    "weight_change_rel": "relative Eq. 1 weight change",
    "lens_top1": "logit-lens top-1 accuracy (SFT)",
    "effective_rank": "effective rank (SFT)",
}
"""The cross-pair figure's panels: signature curve name → axis label."""


def across_figure(curves: pd.DataFrame, order: Sequence[str], *, ncols: int = 3, title: str | None = None) -> Any:
    """The paper's depth signatures of several pairs on one relative-depth axis, one panel per signature.

    Args:
        curves: :func:`mbt.paper.signatures.signature_curves` (``pair, signature, depth, value, ci_low,
            ci_high``).
        order: Pairs in the order of their SFT strength (colours run light → dark along it).
        ncols: Panels per row.
        title: Figure title.
    """
    names = [n for n in ACROSS_PANELS if n in set(curves["signature"])]
    fig, axes = _grid(max(1, len(names)), ncols)
    colours = mpl.colormaps["viridis"](np.linspace(0.1, 0.9, max(2, len(order))))
    for ax, name in zip(axes, names, strict=False):
        part = curves[curves["signature"] == name]
        for colour, pair in zip(colours, order, strict=False):
            rows = part[part["pair"] == pair].sort_values("depth")
            if rows.empty:
                continue
            marker = MARKERS[list(order).index(pair) % len(MARKERS)]
            ax.plot(rows["depth"], rows["value"], marker=marker, ms=3, color=colour, label=pair)
            if rows["ci_low"].notna().any():
                ax.fill_between(rows["depth"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.15, lw=0)
        ax.axvspan(MIDDLE[0], MIDDLE[1], color=_BAND, alpha=0.08, lw=0, zorder=0)
        ax.set_xlabel("relative depth l / L")
        ax.set_ylabel(ACROSS_PANELS[name])
    for ax in axes[len(names):]:
        ax.set_visible(False)
    _legend(fig, axes[:1])
    if title:
        fig.suptitle(title)
    return fig


def ladder_figure(summary: pd.DataFrame, strength: Mapping[str, float], *, replicate: Mapping[str, int] | None = None,
                  ncols: int = 3, title: str | None = None) -> Any:
    """Each signature against SFT strength (log axis), one point per pair, with its trend in the panel title.

    Args:
        summary: :func:`mbt.paper.signatures.signature_summary` (one row per signature, one column per pair,
            plus ``trend``).
        strength: ``{pair: SFT ÷ pretraining tokens}``; pairs without a finite strength are left out.
        replicate: ``{pair: replicate}``: one line (and marker) per replicate through its own rungs, with a
            legend; without it, one line through every pair, each point labelled with its pair.
        ncols: Panels per row.
        title: Figure title.
    """
    pairs = [p for p in summary.columns if p in strength and np.isfinite(strength[p])]
    rows = [name for name in summary.index if summary.loc[name, pairs].notna().sum() >= 2] if pairs else []
    groups = {0: pairs} if replicate is None else {
        r: [p for p in pairs if replicate.get(p, 0) == r] for r in sorted({replicate.get(p, 0) for p in pairs})}
    fig, axes = _grid(max(1, len(rows)), ncols, panel=(3.6, 2.7))
    for ax, name in zip(axes, rows, strict=False):
        for k, (r, members) in enumerate(groups.items()):
            members = sorted(members, key=lambda p: strength[p])
            x = np.array([strength[p] for p in members], dtype=float)
            y = summary.loc[name, members].to_numpy(dtype=float)
            ax.plot(x, y, marker=MARKERS[k % len(MARKERS)], color=PALETTE[k % len(PALETTE)],
                    label=None if replicate is None else f"replicate {r}")
            if replicate is None:
                for xi, yi, p in zip(x, y, members, strict=True):
                    if np.isfinite(yi):
                        ax.annotate(p, (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("SFT tokens ÷ pretraining tokens")
        ax.set_title(f"{name}: {summary.loc[name, 'trend']}", fontsize=9)
        if replicate is not None and len(groups) > 1:
            ax.legend(fontsize=7)
    if not rows:
        axes[0].text(0.5, 0.5, "fewer than two pairs with a known SFT strength", ha="center", va="center")
        axes[0].set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def diffing_figure(difference: pd.DataFrame, steering: pd.DataFrame, gap: pd.DataFrame, *,
                   title: str | None = None) -> Any:
    """Chapter 9's three depth curves: the activation difference, the steering check and the convergence gap.

    Args:
        difference: :func:`mbt.diffing.difference_summary` (``layer, relative, ci_low, ci_high``).
        steering: :func:`mbt.diffing.steering_summary` (``layer, reduction, reduction_random, effect, ci_low,
            ci_high``).
        gap: :func:`mbt.diffing.gap_summary` (``model, layer, value, ci_low, ci_high``).
        title: Figure title.
    """
    L = _n_layers(gap) if not gap.empty else int(difference["layer"].max())
    with style():
        fig, axes = _grid(3, 3)
        d = difference.sort_values("layer")
        axes[0].plot(d["layer"], d["relative"], marker="o", color=PAIR["color"], label="ρ_l = ‖δ_l‖ / ‖h_Base,l‖")
        axes[0].fill_between(d["layer"], d["ci_low"], d["ci_high"], color=PAIR["color"], alpha=0.15, lw=0)
        axes[0].set_ylabel("relative size of δ_l")
        axes[0].set_title("activation difference on unrelated text", fontsize=9.5)
        s = steering.sort_values("layer")
        axes[1].plot(s["layer"], s["reduction"], marker=SFT["marker"], color=SFT["color"], label="α·δ_l added to Base")
        axes[1].plot(s["layer"], s["reduction_random"], marker="D", color=OKABE_ITO["black"], linestyle=":",
                     markerfacecolor="white", label="random direction, same norm")
        axes[1].set_ylabel("KL(p_SFT ‖ p_Base) reduction (nats)")
        axes[1].set_title("steering the Base with δ_l", fontsize=9.5)
        for model, st in (("base", BASE), ("sft", SFT)):
            rows = gap[gap["model"] == model].sort_values("layer")
            kw = {k: v for k, v in st.items() if k != "label"}
            axes[2].plot(rows["layer"], rows["value"], label=f"{st['label']}: KL to its own output", **kw)
            axes[2].fill_between(rows["layer"], rows["ci_low"], rows["ci_high"], color=st["color"], alpha=0.15, lw=0)
        axes[2].set_ylabel("KL(p_L ‖ p_l) (nats)")
        axes[2].set_title("convergence: lens vs own output", fontsize=9.5)
        for ax in axes:
            layer_axis(ax, L)
            ax.legend(fontsize=7)
        if title:
            fig.suptitle(title)
    return fig


def graft_figure(summary: pd.DataFrame, *, title: str | None = None) -> Any:
    """Late-KL change of each graft and of its matched random perturbation, one panel per direction.

    Args:
        summary: :func:`mbt.diffing.graft_summary` (``direction, part, kind, diff, diff_ci_low, diff_ci_high``).
        title: Figure title.
    """
    directions = list(dict.fromkeys(summary["direction"]))
    with style():
        fig, axes = _grid(max(1, len(directions)), 2)
        for ax, direction in zip(axes, directions, strict=False):
            rows = summary[(summary["direction"] == direction) & (summary["kind"] != "receiver")]
            labels = [f"{r.part} {r.kind}" for r in rows.itertuples()]
            colours = [SFT["color"] if r.kind == "graft" else "white" for r in rows.itertuples()]
            y = rows["diff"].to_numpy(float)
            err = np.vstack([y - rows["diff_ci_low"].to_numpy(float), rows["diff_ci_high"].to_numpy(float) - y])
            ax.bar(range(len(y)), y, color=colours, edgecolor=OKABE_ITO["black"],
                   yerr=np.where(np.isfinite(err), err, 0), capsize=3)
            ax.axhline(0, color="#222222", lw=0.8)
            ax.set_xticks(range(len(y)), labels, rotation=20, fontsize=8)
            ax.set_ylabel("late KL change (nats)")
            ax.set_title(f"{direction}: receiver's late KL to its own output", fontsize=9.5)
        if title:
            fig.suptitle(title)
    return fig


def token_kl_figure(by_kind: pd.DataFrame, by_position: pd.DataFrame, *, title: str | None = None) -> Any:
    """Per-token ``KL(p_SFT ‖ p_Base)`` by the kind of the predicted token and by relative position.

    Args:
        by_kind: :func:`mbt.diffing.token_kl_summary` with ``by="kind"``.
        by_position: :func:`mbt.diffing.token_kl_summary` with ``by="position"``.
        title: Figure title.
    """
    with style():
        fig, axes = _grid(2, 2)
        y = by_kind["kl"].to_numpy(float)
        err = np.vstack([y - by_kind["ci_low"].to_numpy(float), by_kind["ci_high"].to_numpy(float) - y])
        axes[0].bar(range(len(y)), y, color=PAIR["color"], yerr=np.where(np.isfinite(err), err, 0), capsize=3)
        axes[0].set_xticks(range(len(y)), [str(g) for g in by_kind["group"]])
        axes[0].set_ylabel("KL(p_SFT ‖ p_Base) (nats)")
        axes[0].set_title("by the kind of the predicted token", fontsize=9.5)
        p = by_position.sort_values("group")
        axes[1].plot(p["group"], p["kl"], marker="o", color=PAIR["color"])
        axes[1].fill_between(p["group"], p["ci_low"], p["ci_high"], color=PAIR["color"], alpha=0.15, lw=0)
        axes[1].set_xlabel("relative position in the text")
        axes[1].set_title("by position", fontsize=9.5)
        if title:
            fig.suptitle(title)
    return fig


EQUAL_STEP_PANELS: dict[str, str] = {
    "eq1": "relative Eq. 1 weight change", "cka": "CKA(Base, SFT)", "shift": "relative mean shift",
    "lens": "lens top-1 accuracy (answer)",
}
"""Panels of :func:`equal_step_figure`: the depth signatures and their axis labels."""


def equal_step_figure(runs: pd.DataFrame, *, ncols: int = 4, title: str | None = None) -> Any:
    """The depth signatures under the standard and the equal-step rule: mean over SFT seeds, one line per length.

    Standard runs solid, equal-step runs dashed; one colour per SFT length.

    Args:
        runs: :func:`mbt.equal_step.equal_step_runs` (``rule, steps, seed, signature, layer, depth, value``).
        ncols: Panels per row.
        title: Figure title.
    """
    names = [n for n in EQUAL_STEP_PANELS if n in set(runs["signature"])]
    steps = sorted(runs["steps"].unique())
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(steps))]
    markers = [MARKERS[i % len(MARKERS)] for i in range(len(steps))]
    with style():
        fig, axes = _grid(max(1, len(names)), ncols, panel=(3.4, 2.7))
        for ax, name in zip(axes, names, strict=False):
            part = runs[runs["signature"] == name]
            for colour, marker, k in zip(colours, markers, steps, strict=False):
                for rule, ls, face in (("standard", "-", colour), ("equal_step", "--", "white")):
                    rows = part[(part["steps"] == k) & (part["rule"] == rule)]
                    if rows.empty:
                        continue
                    mean = rows.groupby("depth")["value"].mean()
                    ax.plot(mean.index, mean.to_numpy(), color=colour, linestyle=ls, marker=marker, ms=3,
                            markerfacecolor=face, label=f"{k} steps, {rule.replace('_', '-')}")
            ax.axvspan(MIDDLE[0], MIDDLE[1], color="#999999", alpha=0.08, lw=0, zorder=0)
            ax.set_xlabel("relative depth l / L")
            ax.set_title(EQUAL_STEP_PANELS[name], fontsize=9.5)
        _legend(fig, axes[:1])
        if title:
            fig.suptitle(title)
    return fig


def knowledge_figure(summary: pd.DataFrame, *, labels: Mapping[str, str] | None = None,
                     title: str | None = None) -> Any:
    """Exact match of Base and SFT in each format, one panel per format, one x position per pair.

    Pairs are ordered by SFT steps where known (the SFT-intensity ladder, weakest first); each point has its
    95 % interval. A Base shared by every pair appears as the same point at every position.

    Args:
        summary: :func:`mbt.knowledge.summarize_scores` rows (``pair``, ``model``, ``format``, ``score``,
            ``ci_low``, ``ci_high``; ``sft_steps`` optional).
        labels: Panel titles by format (default: the format names).
        title: Figure title.
    """
    frame = summary if "pair" in summary.columns else summary.assign(pair="pair")
    steps = frame.groupby("pair", sort=False)["sft_steps"].first() if "sft_steps" in frame.columns else None
    pairs = list(dict.fromkeys(frame["pair"]))
    if steps is not None:
        pairs.sort(key=lambda p: (not np.isfinite(float(steps[p])), float(steps[p]) if np.isfinite(float(steps[p]))
                                  else 0.0))
    formats = list(dict.fromkeys(frame["format"]))
    ticks = [p + (f"\n{int(steps[p])} steps" if steps is not None and np.isfinite(float(steps[p])) else "")
             for p in pairs]
    with style():
        fig, axes = _grid(len(formats), 3, panel=(3.8, 2.9))
        for ax, fmt in zip(axes, formats, strict=True):
            for model, look, shift in (("base", BASE, -0.08), ("sft", SFT, 0.08)):
                rows = frame[(frame["format"] == fmt) & (frame["model"] == model)].set_index("pair")
                rows = rows.reindex([p for p in pairs if p in rows.index])
                if rows.empty:
                    continue
                x = np.array([pairs.index(p) for p in rows.index], dtype=float) + shift
                y = rows["score"].to_numpy(float)
                err = np.vstack([y - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - y])
                ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o", color=look["color"],
                            ls=look["linestyle"], lw=1.0, capsize=2.5, label=look["label"])
            ax.set_xticks(range(len(pairs)), ticks, fontsize=7)
            ax.set_ylim(-0.03, 1.03)
            ax.set_ylabel("exact match")
            ax.set_title((labels or {}).get(fmt, fmt), fontsize=9.5)
        _legend(fig, axes)
        if title:
            fig.suptitle(title)
    return fig
