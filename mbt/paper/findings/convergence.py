r"""Chapter 2 (Fig. 2): each model's own metrics over depth — synchronised curves, three stages, rank peak."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mbt.metrics import INTRINSIC_METRICS
from mbt.metrics.registry import is_log_scale
from mbt.paper import curves, shapes
from mbt.paper import verdicts as V
from mbt.paper.findings.common import (
    ALPHA,
    Curve,
    Finding,
    all_index,
    all_of,
    curve_of,
    depth_of,
    finite,
    fmt,
    judged,
    n_layers_of,
    series,
    shape,
    single_vs_band,
    undecidable,
)
from mbt.paper.verdicts import Decision, Verdict

CHAPTER = "02_convergence"
"""The chapter whose headlines this module decides."""


def convergence_findings(frame: pd.DataFrame) -> list[Finding]:
    r"""Fig. 2 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Decided from the table's joint bootstrap replicates over texts (the same resampled texts at every layer
    and for both models):

    * ``synchronised``: for every intrinsic metric, the Base and SFT curves are close over the whole depth
      (:func:`mbt.paper.curves.closeness_by_band`, key ``"all"``): the largest gap ``max_l |s_l − b_l|`` within
      10 % of the Base curve's range (log scale for σ_max and the condition number: within a factor 1.1), a
      simultaneous interval over the layers; each metric at ``1 − 0.05/m``, holds if all ``m`` hold;
    * ``three_stages``: for every metric, normalised Base steps ``|Δv_l| / range(v)``: the 0 → 1 step above
      the middle steps (prediction interval) and the last-20 % steps above the middle ones (band
      contrast, layers as units); holds if all ``2m`` parts hold (Bonferroni);
    * ``erank_peak`` / ``cond_trough``: the SFT effective rank peaks, the condition number has a trough, in the
      middle: the middle band's geometric mean above (below) the early ``(0, 0.2]`` and the last band's
      (:func:`mbt.paper.shapes.middle_extremum`, Bonferroni over the two);
    * ``erank_collapse``: the SFT effective rank's last band below the middle (log ratio);
    * ``spectral_norm_500``: the SFT σ_max explodes in the last band (:func:`mbt.paper.shapes.explosion`, log
      ratio above 0; the paper's 500 grows with the number of pooled texts and is not compared).

    Args:
        frame: Analyze table of one dataset (with replicates; a table without them gets no verdict on the
            replicate-based rows, and says so).

    Returns:
        Findings for ``synchronised``, ``three_stages``, ``erank_peak``, ``cond_trough``,
        ``erank_collapse`` and ``spectral_norm_500``.
    """
    L = n_layers_of(frame)
    metrics = [m for m in INTRINSIC_METRICS if curve_of(frame, m, "base") is not None]
    pairs = {m: (curve_of(frame, m, "base"), curve_of(frame, m, "sft")) for m in metrics}
    usable = {m: (b, t) for m, (b, t) in pairs.items() if t is not None and b.replicates is not None
              and t.replicates is not None and np.isfinite(b.values).all() and np.isfinite(t.values).all()
              and (not is_log_scale(m) or (b.values.min() > 0 and t.values.min() > 0))}
    k = max(len(usable), 1)
    close: dict[str, Decision] = {}
    for m, (b, t) in usable.items():
        try:
            close[m] = curves.closeness_by_band(b.replicates, t.replicates, b.depth, base_estimate=b.values,
                                                sft_estimate=t.values, scale="log" if is_log_scale(m) else "range",
                                                level=1 - ALPHA / k, n_texts=b.n_texts)["all"]
        except ValueError:
            continue
    if close:
        d = all_of(list(close.values()), "Base and SFT curves close over the whole depth, for every metric")
        shown = list(close)[all_index(list(close.values()))]
        gaps = [v.effect for v in close.values() if math.isfinite(v.effect)]
        out = [judged("synchronised", f"largest Base–SFT gap per metric {fmt(min(gaps), 2)}–{fmt(max(gaps), 2)} "
                      f"over {len(close)} metrics; effect: {shown}", d,
                      note=f"gap in units of the Base curve's range (log scale for σ_max and the condition "
                      f"number); margin 10 %; {sum(v.verdict == Verdict.HOLDS for v in close.values())} of "
                      f"{len(close)} metrics close", value=float(np.median(gaps)) if gaps else None)]
    else:
        out = [judged("synchronised", "no metric with replicates", undecidable(
            "the table has no bootstrap replicates of both models' intrinsic metrics"))]
    parts: list[Decision] = []
    m_parts = max(len(metrics), 1)
    lvl = 1 - ALPHA / (2 * m_parts)
    for m in metrics:
        base = series(frame, m, "base")
        v = finite(np.log(base.clip(lower=1e-300)) if is_log_scale(m) else base)
        rng = float(v.max() - v.min()) if len(v) else 0.0
        if rng <= 0 or len(v) < 4:
            continue
        step = (v.diff().abs() / rng).dropna()
        parts.append(single_vs_band(step, L, 1, V.BANDS["middle"], side=1, level=lvl))
        parts.append(shape(step, L, level=lvl))
    d = all_of(parts, "the 0 → 1 step and the last-20 % steps exceed the middle steps, for every metric")
    out.append(judged("three_stages", "part shown", d,
                      note=f"{sum(p.verdict == Verdict.HOLDS for p in parts)} of {len(parts)} parts hold"))
    out += _log_shapes(frame, L)
    return out


def _log_shapes(frame: pd.DataFrame, L: int) -> list[Finding]:
    """``erank_peak``, ``erank_collapse``, ``cond_trough``, ``spectral_norm_500``: SFT curves on the log scale."""
    out: list[Finding] = []

    def decide(curve: Curve | None, fn: Any, **kw: Any) -> Decision:
        if curve is None or curve.replicates is None:
            return undecidable("the table has no bootstrap replicates of this metric")
        if not (np.isfinite(curve.values).all() and curve.values.min() > 0):
            return undecidable("the metric is not positive and finite at every layer (no log scale)")
        try:
            return fn(curve.replicates, curve.depth, estimate=curve.values, n_texts=curve.n_texts, **kw)
        except ValueError as err:
            return undecidable(str(err))

    erank = curve_of(frame, "effective_rank", "sft", min_layer=1)
    if erank is not None:
        peak = int(erank.layers[np.argmax(erank.values)])
        d = decide(erank, shapes.middle_extremum, kind="peak")
        out.append(judged("erank_peak", "log of middle ÷ neighbour band (part shown)" +
                          f"; peak {fmt(erank.values.max())} at layer {peak} (depth {depth_of(peak, L):.2f})", d,
                          note="layers ≥ 1; geometric means", value=float(erank.values.max())))
        d = decide(erank, shapes.log_band_contrast, band=V.BANDS["last"], reference=V.BANDS["middle"], side=-1)
        out.append(judged("erank_collapse", "log of last 20 % ÷ middle" +
                          f"; {fmt(erank.values[-1])} at layer {int(erank.layers[-1])}", d,
                          note="a decrease; the paper's collapse value was lost", value=float(erank.values[-1])))
    cond = curve_of(frame, "condition_number", "sft", min_layer=1)
    if cond is not None:
        trough = int(cond.layers[np.argmin(cond.values)])
        d = decide(cond, shapes.middle_extremum, kind="trough")
        out.append(judged("cond_trough", "log of middle ÷ neighbour band (part shown)" +
                          f"; min {fmt(cond.values.min())} at layer {trough} (depth {depth_of(trough, L):.2f})", d,
                          note="layers ≥ 1; geometric means; the paper's trough value was lost",
                          value=float(cond.values.min())))
    sn = curve_of(frame, "spectral_norm", "sft")
    if sn is not None:
        top = int(sn.layers[np.argmax(sn.values)])
        d = decide(sn, shapes.explosion)
        out.append(judged("spectral_norm_500", "log of last 20 % ÷ middle" +
                          f"; max {fmt(sn.values.max())} at layer {top} (N = {sn.n_texts})", d,
                          note="σ_max grows with N and the residual-stream norm, so 500 is not comparable; the "
                          "explosion is tested on the log scale", value=float(sn.values.max())))
    return out
