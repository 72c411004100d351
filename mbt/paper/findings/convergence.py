r"""Chapter 2 (Fig. 2): each model's own metrics over depth — synchronised curves, three stages, rank peak."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mbt.metrics import INTRINSIC_METRICS
from mbt.metrics.registry import is_log_scale
from mbt.paper import verdicts as V
from mbt.paper.findings.common import (
    ALPHA,
    Finding,
    all_index,
    all_of,
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


def convergence_findings(frame: pd.DataFrame, *, n_surrogates: int = 999) -> list[Finding]:
    r"""Fig. 2 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    * ``synchronised``: for every intrinsic metric, :func:`~mbt.paper.verdicts.curve_correlation` of the
      Base and SFT curves (log scale for σ_max and the condition number; a cubic spline in depth
      removed, phase surrogates), each at ``1 − 0.05/m``; holds if all ``m`` hold;
    * ``three_stages``: for every metric, normalised Base steps ``|Δv_l| / range(v)``: the 0 → 1 step above
      the middle steps (prediction interval) and the last-20 % steps above the middle ones (band
      contrast); holds if all ``2m`` parts hold (Bonferroni);
    * ``erank_peak``: SFT effective rank, middle band above both the early band ``(0, 0.2]`` and the last
      band (ratio contrasts, Bonferroni over 2);
    * ``erank_collapse``: SFT effective rank lower in the last band than in the middle (ratio);
    * ``cond_trough``, ``spectral_norm_500``: scale only (the trough was lost; σ_max grows with ``N``
      and the residual-stream norm, so 500 is not comparable).

    Args:
        frame: Analyze table of one dataset.
        n_surrogates: Surrogates per curve correlation.

    Returns:
        Findings for ``synchronised``, ``three_stages``, ``erank_peak``, ``cond_trough``,
        ``erank_collapse`` and ``spectral_norm_500``.
    """
    L = n_layers_of(frame)
    metrics = [m for m in INTRINSIC_METRICS if not series(frame, m, "base").empty]
    curves: dict[str, pd.DataFrame] = {}
    for m in metrics:
        both = pd.concat([series(frame, m, "base"), series(frame, m, "sft")], axis=1, join="inner")
        both = both[np.isfinite(both.to_numpy(float)).all(axis=1)]
        if is_log_scale(m):
            both = np.log(both.clip(lower=1e-300))
        curves[m] = both
    usable = {m: c for m, c in curves.items() if len(c) >= 7 and c.std().min() > 0}
    k = max(len(usable), 1)
    rs = {}
    for m, c in usable.items():
        try:
            rs[m] = V.curve_correlation(c.iloc[:, 0].to_numpy(), c.iloc[:, 1].to_numpy(),
                                        np.array([depth_of(i, L) for i in c.index]), side=1, level=1 - ALPHA / k,
                                        n_surrogates=n_surrogates)
        except ValueError:
            continue
    if rs:
        d = all_of(list(rs.values()), "Base and SFT curves co-vary beyond depth for every metric")
        weakest = min(rs, key=lambda m: rs[m].effect if math.isfinite(rs[m].effect) else -2)
        shown = list(rs)[all_index(list(rs.values()))]
        out = [judged("synchronised", f"residual r(Base, SFT) {fmt(min(v.effect for v in rs.values()), 2)}–"
                       f"{fmt(max(v.effect for v in rs.values()), 2)} over {len(rs)} metrics; effect: {shown}", d,
                       note=f"weakest: {weakest}",
                       value=float(np.median([v.effect for v in rs.values()])))]
    else:
        out = [judged("synchronised", "no metric has enough layers", undecidable("fewer than 7 layers per curve"))]
    parts: list[Decision] = []
    m_parts = max(len(curves), 1)
    lvl = 1 - ALPHA / (2 * m_parts)
    for c in curves.values():
        v = c.iloc[:, 0]
        rng = float(v.max() - v.min())
        if rng <= 0 or len(v) < 4:
            continue
        step = (v.diff().abs() / rng).dropna()
        parts.append(single_vs_band(step, L, 1, V.BANDS["middle"], side=1, level=lvl))
        parts.append(shape(step, L, level=lvl))
    d = all_of(parts, "the 0 → 1 step and the last-20 % steps exceed the middle steps, for every metric")
    out.append(judged("three_stages", "part shown", d,
                       note=f"{sum(p.verdict == Verdict.HOLDS for p in parts)} of {len(parts)} parts hold"))
    erank = finite(series(frame, "effective_rank", "sft").drop(index=0, errors="ignore"))
    if not erank.empty:
        early = (0.0, 0.2)
        peak = int(erank.idxmax())
        sides = [shape(erank, L, band=V.BANDS["middle"], reference=ref, statistic="ratio", level=1 - ALPHA / 2)
                 for ref in (early, V.BANDS["last"])]
        d = all_of(sides, "middle band above the early and the last band")
        out.append(judged("erank_peak", "middle ÷ neighbour − 1 (part shown)" +
                           f"; peak {fmt(erank.max())} at layer {peak} (depth {depth_of(peak, L):.2f})", d,
                           note="layers ≥ 1; ratio of band means", value=float(erank.max())))
        d = shape(erank, L, statistic="ratio", side=-1)
        out.append(judged("erank_collapse", "last 20 % ÷ middle − 1" +
                           f"; {fmt(erank.loc[erank.index.max()])} at layer {int(erank.index.max())}", d,
                           note="a decrease; the paper's collapse value was lost",
                           value=float(erank.loc[erank.index.max()])))
    cond = finite(series(frame, "condition_number", "sft").drop(index=0, errors="ignore"))
    if not cond.empty:
        trough = int(cond.idxmin())
        out.append(Finding("cond_trough", f"min {fmt(cond.min())} at layer {trough} (depth {depth_of(trough, L):.2f})",
                           None, "the paper's trough value was lost; shown for scale", float(cond.min())))
    sn = finite(series(frame, "spectral_norm", "sft"))
    if not sn.empty:
        top = int(sn.idxmax())
        n_rows = frame.loc[frame["metric"] == "spectral_norm", "n"]
        n_pooled = int(n_rows.max()) if len(n_rows) else 0
        out.append(Finding("spectral_norm_500", f"max {fmt(sn.max())} at layer {top} (N = {n_pooled})", None,
                           "σ_max grows with N and the residual-stream norm, so 500 is not comparable; shown for scale",
                           float(sn.max())))
    return out
