r"""Chapter 1 (Fig. 1): where Base and SFT part ways — CKA, cosine similarity, mean shift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mbt.paper import curves
from mbt.paper import verdicts as V
from mbt.paper.findings.common import (
    ALPHA,
    LEVEL,
    Curve,
    Finding,
    all_of,
    curve_of,
    depth_of,
    fmt,
    judged,
    n_layers_of,
    series,
    undecidable,
)
from mbt.paper.verdicts import Decision, Verdict

CHAPTER = "01_divergence"
"""The chapter whose headlines this module decides."""


def _contrast(c: Curve | None, L: int, *, band: tuple[float, float] = V.BANDS["last"],
              reference: tuple[float, float] = V.BANDS["middle"], statistic: str = "difference", side: int = 1,
              threshold: float = 0.0, level: float = LEVEL) -> Decision:
    """A band contrast of a curve: from its joint bootstrap replicates, else with the layers as units."""
    if c is None:
        return undecidable("the table has no such metric", level=level)
    try:
        if c.replicates is not None:
            return V.band_contrast(c.replicates, c.depth, band=band, reference=reference, unit="replicates",
                                   statistic=statistic, estimate=c.values, side=side, threshold=threshold,
                                   level=level, n_texts=c.n_texts)
        return V.band_contrast(c.values, c.depth, band=band, reference=reference, unit="layers", statistic=statistic,
                               side=side, threshold=threshold, level=level)
    except ValueError as err:
        return undecidable(str(err), level=level)


def _same_bands(depth: np.ndarray, a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]) -> bool:
    """Whether two pairs of bands select the same layers (then their contrasts are one comparison)."""
    def mask(band: tuple[float, float]) -> tuple[bool, ...]:
        return tuple(bool(x) for x in (depth > band[0]) & (depth <= band[1]))
    return [mask(x) for x in a] == [mask(x) for x in b]


_PLATEAU = (0.2, 0.875)
_FINAL = (0.875, 1.0)


def divergence_findings(frame: pd.DataFrame, *,
                        halves: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[Finding]:
    r"""Fig. 1 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Every contrast is decided from the table's joint bootstrap replicates over texts (the same resampled
    texts at every layer, so a band contrast is a paired difference; :func:`mbt.paper.verdicts.band_contrast`,
    ``unit="replicates"``); a table without replicates falls back to the layers as units.

    * ``middle_stable``: ``mean_{last}(1 − CKA) − mean_{middle}(1 − CKA) > 0`` (last 20 % vs 20–80 % depth);
    * ``similarity_decline``: the slope of CKA over relative depth ``(0, 0.8]`` below 0 (a *progressive*
      decline before the final drop; :func:`mbt.paper.curves.depth_trend`);
    * ``cka_plateau``: ``mean_{(0.875, 1]} CKA − mean_{(0.2, 0.875]} CKA < 0``; where these bands hold the same
      layers as ``middle_stable``'s (e.g. at 10 layers) the two are one comparison, shown once;
    * ``cka_drop_start``: per-layer decrease ``s_l = CKA_{l−1} − CKA_l`` (``l ≥ 2``) larger in the last 20 %
      than in the middle;
    * ``mean_shift_shallow``: relative mean shift ``ρ_l = ‖μ_SFT − μ_Base‖/‖μ_Base‖`` over depth ``(0, 0.5]``
      below a quarter of the last band's: ``mean_{(0,0.5]} log ρ − mean_{last} log ρ < log 0.25``;
    * ``mean_shift_final``: ``mean_{last} log ρ − mean_{middle} log ρ > 0`` (a ratio of geometric means);
    * ``cosine_agrees``: cosine similarity lower in the last band than in the middle;
    * ``seed_robust``: the cosine (else 1 − CKA) contrast on each of two disjoint halves of the texts, each at
      ``1 − 0.05/2``: holds if it holds on both, contradicted if it is contradicted on either; the row shows
      the deciding half;
    * ``cka_final``: scale only (the paper's value was lost).

    The raw ``mean_shift`` grows with the residual-stream norm, so it gets no verdict; without a
    ``relative_mean_shift`` metric in the table the two mean-shift rows are shown for scale only.

    Args:
        frame: Analyze table (one dataset) with the pair metrics ``cka``, ``cosine_similarity``,
            ``mean_shift`` and ``relative_mean_shift``.
        halves: The same pair metrics on two disjoint halves of the sample (:func:`analyze_halves`),
            for the robustness claim; omitted when ``None``.

    Returns:
        Findings for ``middle_stable``, ``similarity_decline``, ``cka_plateau``, ``cka_drop_start``,
        ``cka_final``, ``mean_shift_shallow``, ``mean_shift_final``, ``cosine_agrees`` and ``seed_robust``.
    """
    L = n_layers_of(frame)
    cka = curve_of(frame, "cka", "pair")
    if cka is None:
        raise ValueError("the table has no 'cka' rows (run analyze with the pair metrics)")
    out: list[Finding] = []
    distance = cka.map(lambda v: 1.0 - v)
    d = _contrast(distance, L)
    inner = cka.select(cka.layers > 0)
    worst = int(inner.layers[np.argmin(inner.values)]) if inner.layers.size else L
    merged = _same_bands(cka.depth, (V.BANDS["last"], V.BANDS["middle"]), (_FINAL, _PLATEAU))
    out.append(judged("middle_stable", "1 − CKA, last 20 % − middle" + f"; largest at layer {worst} "
                      f"(depth {depth_of(worst, L):.2f})", d,
                      note=("the final layers differ more than the middle" if d.verdict == Verdict.HOLDS
                            else "the final layers do not differ more than the middle"
                            if d.verdict == Verdict.CONTRADICTED
                            else "this sample cannot tell whether the final layers differ more")
                      + ("; at this depth the CKA plateau claim is the same comparison" if merged else ""),
                      also=("cka_plateau",) if merged else ()))
    try:
        trend = (curves.depth_trend(cka.replicates, cka.depth, estimate=cka.values, n_texts=cka.n_texts)
                 if cka.replicates is not None else undecidable("the table has no bootstrap replicates"))
    except ValueError as err:
        trend = undecidable(str(err))
    out.append(judged("similarity_decline", "slope of CKA over relative depth (0, 0.8]", trend,
                      note="a progressive decline before the last band (a drop confined to it is not one)"))
    plateau = cka.values[(cka.depth > _PLATEAU[0]) & (cka.depth <= _PLATEAU[1])]
    if not merged:
        d = _contrast(cka, L, band=_FINAL, reference=_PLATEAU, side=-1)
        out.append(judged("cka_plateau", "CKA, depth > 0.875 − plateau" +
                          (f"; plateau {fmt(plateau.min())}–{fmt(plateau.max())}" if plateau.size else ""), d,
                          note="tests the drop after the plateau; the plateau level was lost",
                          value=float(plateau.min()) if plateau.size else None))
    steps = cka.select(cka.layers >= 1)
    steps = Curve(steps.layers[1:], steps.depth[1:], steps.values[:-1] - steps.values[1:],
                  None if steps.replicates is None else steps.replicates[:, :-1] - steps.replicates[:, 1:],
                  steps.n_texts)
    d = _contrast(steps, L)
    big = int(steps.layers[np.argmax(steps.values)]) if steps.layers.size else L
    out.append(judged("cka_drop_start", "per-layer CKA decrease, last 20 % − middle" +
                      f"; largest step {big - 1} → {big} (depth {depth_of(big, L):.2f})", d,
                      note="the decrease concentrates in the last 20 %" if d.verdict == Verdict.HOLDS else
                      "the per-layer decrease is not larger in the last 20 %" if d.verdict == Verdict.CONTRADICTED
                      else "this sample cannot place the drop", value=depth_of(big, L)))
    final = dict(zip(cka.layers.tolist(), cka.values.tolist(), strict=True))
    prev = f" ({fmt(final[L - 1])} at {L - 1})" if L - 1 in final else ""
    out.append(Finding("cka_final", f"{fmt(final[L])} at layer {L}{prev}", None,
                       "the paper's value was lost in extraction; shown for scale", float(final[L])))
    rel = curve_of(frame, "relative_mean_shift", "pair")
    raw = series(frame, "mean_shift", "pair")
    if rel is not None:
        positive = rel.select(rel.layers >= 1)
        d = _contrast(positive, L, band=(0.0, 0.5), reference=V.BANDS["last"], statistic="log_ratio", side=-1,
                      threshold=math.log(0.25))
        shallow = rel.values[(rel.depth > 0) & (rel.depth <= 0.5)]
        out.append(judged("mean_shift_shallow", "log of the relative shift, depth ≤ 0.5 ÷ last 20 %", d,
                          note="negligible = below a quarter of the last band's (threshold log 0.25 = −1.39)",
                          value=float(shallow.max()) if shallow.size else None))
        d = _contrast(positive, L, statistic="log_ratio")
        top = int(rel.layers[np.argmax(rel.values)])
        out.append(judged("mean_shift_final", "log of the relative shift, last 20 % ÷ middle" +
                          f"; max {fmt(rel.values.max())} at layer {top}", d,
                          note="relative to the Base centroid norm, so a uniform rescaling is flat",
                          value=float(rel.values.max())))
    elif not raw.empty:
        for hid in ("mean_shift_shallow", "mean_shift_final"):
            out.append(Finding(hid, f"max {fmt(raw.max())} at layer {int(raw.idxmax())} (unnormalised)", None,
                               "the raw shift grows with the residual-stream norm; a verdict needs "
                               "relative_mean_shift in the table", float(raw.max())))
    cos = curve_of(frame, "cosine_similarity", "pair")
    if cos is not None:
        d = _contrast(cos, L, side=-1)
        inner = cos.select(cos.layers > 0)
        low = int(inner.layers[np.argmin(inner.values)])
        out.append(judged("cosine_agrees", "cosine, last 20 % − middle" + f"; lowest at layer {low}", d,
                          note="joint bootstrap over texts (the same resampled texts at every layer)",
                          value=float(inner.values.min())))
    if halves is not None:
        parts = []
        for h in halves:
            c = curve_of(h, "cosine_similarity", "pair")
            parts.append(_contrast(c, L, side=-1, level=1 - ALPHA / 2) if c is not None else
                         _contrast(curve_of(h, "cka", "pair").map(lambda v: 1.0 - v), L, level=1 - ALPHA / 2))
        d = all_of(parts, "the last-vs-middle contrast on each of two disjoint halves of the texts")
        out.append(judged("seed_robust", f"half 1: {V.effect_text(parts[0])} ({parts[0].verdict}); half 2: "
                          f"{V.effect_text(parts[1])} ({parts[1].verdict})", d,
                          note="independent texts, not identical re-runs (the authors' check); the deciding half "
                          "is shown"))
    return out
