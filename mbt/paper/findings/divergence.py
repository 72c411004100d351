r"""Chapter 1 (Fig. 1): where Base and SFT part ways — CKA, cosine similarity, mean shift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.findings.common import (
    LEVEL,
    Finding,
    depth_of,
    fmt,
    judged,
    n_layers_of,
    rows_of,
    series,
    shape,
    shape_of,
)
from mbt.paper.verdicts import Decision, Verdict

CHAPTER = "01_divergence"
"""The chapter whose headlines this module decides."""


def divergence_findings(frame: pd.DataFrame, *,
                        halves: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[Finding]:
    r"""Fig. 1 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    * ``middle_stable``: ``mean_{last}(1 − CKA) − mean_{middle}(1 − CKA) > 0`` (last 20 % vs 20–80 % depth);
    * ``cka_plateau``: ``mean_{(0.875, 1]} CKA − mean_{(0.2, 0.875]} CKA < 0`` (the drop after the plateau);
    * ``cka_drop_start``: per-layer decrease ``s_l = CKA_{l−1} − CKA_l`` (``l ≥ 2``) larger in the last 20 %
      than in the middle;
    * ``mean_shift_shallow``: relative mean shift ``ρ_l = ‖μ_SFT − μ_Base‖/‖μ_Base‖`` over depth
      ``(0, 0.5]`` below a quarter of the last band: ``mean_{(0,0.5]} ρ / mean_{last} ρ − 1 < −0.75``;
    * ``mean_shift_final``: ``mean_{last} ρ / mean_{middle} ρ − 1 > 0``;
    * ``cosine_agrees``: cosine similarity lower in the last band than in the middle;
    * ``seed_robust``: the cosine (else 1 − CKA) contrast replicated on two disjoint halves of the texts —
      holds if it holds on both, contradicted if it is contradicted on either;
    * ``cka_final``: scale only (the paper's value was lost).

    The raw ``mean_shift`` grows with the residual-stream norm, so it gets no verdict; without a
    ``relative_mean_shift`` metric in the table the two mean-shift rows are shown for scale only.

    Args:
        frame: Analyze table (one dataset) with the pair metrics ``cka``, ``cosine_similarity``,
            ``mean_shift`` and ``relative_mean_shift``.
        halves: The same pair metrics on two disjoint halves of the sample (:func:`analyze_halves`),
            for the robustness claim; omitted when ``None``.

    Returns:
        Findings for ``middle_stable``, ``cka_plateau``, ``cka_drop_start``, ``cka_final``,
        ``mean_shift_shallow``, ``mean_shift_final``, ``cosine_agrees`` and ``seed_robust``.
    """
    L = n_layers_of(frame)
    cka = series(frame, "cka", "pair")
    if cka.empty:
        raise ValueError("the table has no 'cka' rows (run analyze with the pair metrics)")
    out: list[Finding] = []

    def dist(v: pd.Series) -> pd.Series:
        return 1.0 - v

    d = shape_of(frame, "cka", "pair", L, transform=dist)
    worst = int(dist(cka).drop(index=0, errors="ignore").idxmax())
    out.append(judged("middle_stable", "1 − CKA, last 20 % − middle" +
                       f"; largest at layer {worst} (depth {depth_of(worst, L):.2f})", d,
                       note="the final layers differ more than the middle" if d.verdict == Verdict.HOLDS
                       else "the final layers do not differ more than the middle" if d.verdict == Verdict.CONTRADICTED
                       else "this sample cannot tell whether the final layers differ more"))
    plateau = (0.2, 0.875)
    d = shape_of(frame, "cka", "pair", L, band=(0.875, 1.0), reference=plateau, side=-1)
    band = cka[[plateau[0] < depth_of(i, L) <= plateau[1] for i in cka.index]]
    out.append(judged("cka_plateau", "CKA, depth > 0.875 − plateau" +
                       f"; plateau {fmt(band.min())}–{fmt(band.max())}", d,
                       note="tests the drop after the plateau; the plateau level was lost", value=float(band.min())
                       if len(band) else None))
    steps = (cka.shift(1) - cka).drop(index=[0, 1], errors="ignore").dropna()
    rows = rows_of(frame, "cka", "pair")
    lo_s = hi_s = None
    if {"ci_low", "ci_high"} <= set(rows.columns) and np.isfinite(rows[["ci_low", "ci_high"]].to_numpy()).all():
        z = V.normal_quantile(0.975)
        se = (rows["ci_high"] - rows["ci_low"]) / (2 * z)
        half = z * (se.shift(1) + se).reindex(steps.index)
        lo_s, hi_s = steps - half, steps + half
    d = shape(steps, L, low=lo_s, high=hi_s)
    big = int(steps.idxmax()) if len(steps) else L
    out.append(judged("cka_drop_start", "per-layer CKA decrease, last 20 % − middle" +
                       f"; largest step {big - 1} → {big} (depth {depth_of(big, L):.2f})", d,
                       note="the decrease concentrates in the last 20 %" if d.verdict == Verdict.HOLDS else
                       "the per-layer decrease is not larger in the last 20 %" if d.verdict == Verdict.CONTRADICTED
                       else "this sample cannot place the drop", value=depth_of(big, L)))
    prev = f" ({fmt(cka.loc[L - 1])} at {L - 1})" if L - 1 in cka.index else ""
    out.append(Finding("cka_final", f"{fmt(cka.loc[L])} at layer {L}{prev}", None,
                       "the paper's value was lost in extraction; shown for scale", float(cka.loc[L])))
    rel = series(frame, "relative_mean_shift", "pair")
    raw = series(frame, "mean_shift", "pair")
    if not rel.empty:
        d = shape_of(frame, "relative_mean_shift", "pair", L, band=(0.0, 0.5), reference=V.BANDS["last"],
                      statistic="ratio", side=-1, threshold=-0.75)
        out.append(judged("mean_shift_shallow", "relative shift, depth ≤ 0.5 ÷ last 20 % − 1", d,
                           note="negligible = below a quarter of the last band's relative shift (threshold −0.75)",
                           value=float(rel[[0 < depth_of(i, L) <= 0.5 for i in rel.index]].max())))
        d = shape_of(frame, "relative_mean_shift", "pair", L, statistic="ratio")
        top = int(rel.idxmax())
        out.append(judged("mean_shift_final", "relative shift, last 20 % ÷ middle − 1" +
                           f"; max {fmt(rel.max())} at layer {top}", d,
                           note="relative to the Base centroid norm, so a uniform rescaling is flat",
                           value=float(rel.max())))
    elif not raw.empty:
        for hid in ("mean_shift_shallow", "mean_shift_final"):
            out.append(Finding(hid, f"max {fmt(raw.max())} at layer {int(raw.idxmax())} (unnormalised)", None,
                               "the raw shift grows with the residual-stream norm; a verdict needs "
                               "relative_mean_shift in the table", float(raw.max())))
    cos = rows_of(frame, "cosine_similarity", "pair")
    if not cos.empty:
        d = shape_of(frame, "cosine_similarity", "pair", L, side=-1)
        low = int(cos["value"].drop(index=0, errors="ignore").idxmin())
        out.append(judged("cosine_agrees", "cosine, last 20 % − middle" + f"; lowest at layer {low}", d,
                           note="per-layer bootstrap intervals over texts, bound for any correlation between layers",
                           value=float(cos.loc[low, "value"])))
    if halves is not None:
        parts = []
        for h in halves:
            if not rows_of(h, "cosine_similarity", "pair").empty:
                parts.append(shape_of(h, "cosine_similarity", "pair", L, side=-1, level=LEVEL))
            else:
                parts.append(shape_of(h, "cka", "pair", L, transform=dist))
        a, b = parts
        se = math.hypot(*(((p.ci_high - p.ci_low) / (2 * V.normal_quantile(0.975))) for p in parts))
        diff = b.effect - a.effect
        z = V.normal_quantile(0.975)
        verdicts = [p.verdict for p in parts]
        verdict = (Verdict.HOLDS if all(v == Verdict.HOLDS for v in verdicts) else
                   Verdict.CONTRADICTED if Verdict.CONTRADICTED in verdicts else Verdict.INCONCLUSIVE)
        rule = ("replication on two disjoint halves of the texts: holds if the last-vs-middle contrast holds on "
                "both halves, contradicted if it is contradicted on either; effect = half 2 − half 1")
        d = Decision(verdict, diff, diff - z * se, diff + z * se, LEVEL, rule, V.mde(se), a.n + b.n, a.unit)
        out.append(judged("seed_robust", f"half 1: {V.effect_text(a)} ({a.verdict}); half 2: {V.effect_text(b)} "
                           f"({b.verdict})", d, note="independent texts, not identical re-runs (the authors' check)"))
    return out
