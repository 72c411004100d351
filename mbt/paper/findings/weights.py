r"""Chapter 4 (Figs. 4–5): weight change per block and its correlation with the metrics over depth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mbt.metrics.registry import is_log_scale
from mbt.paper import curves, shapes
from mbt.paper import verdicts as V
from mbt.paper.findings.common import Finding, depth_of, fmt, judged, undecidable
from mbt.paper.verdicts import Verdict

CHAPTER = "04_weights"
"""The chapter whose headlines this module decides."""


def weights_findings(checkpoint: pd.Series, finetune: pd.Series | None = None) -> list[Finding]:
    r"""Fig. 4 counterparts.

    * ``weight_j``: the relative Eq. 1 change per block, ``c_b = Σ‖ΔW‖_F / Σ‖W_Base‖_F``, is J-shaped in all
      three of the paper's parts (:func:`mbt.paper.shapes.weight_j`, on ``log c`` with the blocks as units,
      each part at ``1 − 0.05/3``): small in the early layers (the first half's geometric mean below half the
      last band's), a peak at the final block, the last 20 % above the middle 20–80 %; holds if all three hold;
    * ``weight_final``: scale only (set by learning rate and steps).

    Args:
        checkpoint: Relative Eq. 1 change per block from the checkpoints
            (``block_series(weight_change(pair), kind="eq1", column="relative")``), indexed ``1..L``.
        finetune: The own-fine-tune mean ‖Δθ‖_F per block (``kind="block_mean"``), the authors' Fig. 4
            quantity; omitted when ``None``.

    Returns:
        Findings for ``weight_j`` and, with ``finetune``, ``weight_final``.
    """
    s = checkpoint.sort_index().astype(float)
    L = int(s.index.max())
    depth = np.array([depth_of(b, L) for b in s.index])
    try:
        parts = shapes.weight_j(s.to_numpy(), depth)
        d = parts["all"]
        held = ", ".join(k.replace("_", " ") for k in ("small_early", "final_peak", "last_above_middle")
                         if parts[k].verdict == Verdict.HOLDS) or "none"
    except ValueError as err:
        d, held = undecidable(str(err)), "none"
    early = float(s[depth <= 0.5].mean())
    out = [judged("weight_j", "J shape, the deciding part (log scale)" + f"; early mean {fmt(early)}, last block "
                   f"{fmt(s.loc[L])}, max at block {int(s.idxmax())}", d,
                   note=f"relative Eq. 1 change (÷ ‖W_Base‖_F); parts that hold: {held}", value=float(s.loc[L]))]
    if finetune is not None:
        f = finetune.sort_index().astype(float)
        out.append(Finding("weight_final", f"{fmt(f.loc[f.index.max()])} (max at block {int(f.idxmax())})", None,
                           "scale set by learning rate and steps, not comparable across set-ups; shown for scale",
                           float(f.loc[f.index.max()])))
    return out


def correlation_findings(weights: pd.Series, metrics: pd.DataFrame, *, cosine: str = "cosine_similarity",
                         spectral: str = "spectral_norm", n_surrogates: int = 999) -> list[Finding]:
    r"""Fig. 5 counterparts: weight change against a metric over layers, as the paper reports it and beyond depth.

    The relative Eq. 1 change per block (block ``b`` feeds layer ``b``) against the metric per layer (σ_max on
    a log scale):

    * ``corr_cosine`` (``r < 0``), ``corr_spectral`` (``r > 0``): the raw Pearson ``r`` over the layers, the
      number the paper reports, against surrogates that keep each curve's smoothness and give its straight
      trend a random sign (:func:`mbt.paper.curves.raw_correlation`): two curves that share their shape count,
      two unrelated trending curves do not;
    * ``corr_cosine_depth``, ``corr_spectral_depth`` (ours): ``r`` of the residuals from a depth spline with a
      surrogate null (:func:`mbt.paper.verdicts.curve_correlation`): linked beyond the shared depth shape;
      inconclusive below 16 layers, where the spline cannot be told from the shape.

    Args:
        weights: Relative Eq. 1 change per block, indexed by block ``1..L``.
        metrics: Per-layer metrics (:func:`mbt.book.metric_table`), indexed by layer.
        cosine: Column of the cosine similarity.
        spectral: Column of the spectral norm.
        n_surrogates: Surrogates of the nulls.

    Returns:
        Findings for the four claims (those whose column exists).
    """
    out = []
    w = weights.sort_index().astype(float)
    L = int(max(w.index.max(), metrics.index.max()))
    for hid, column, side in (("corr_cosine", cosine, -1), ("corr_spectral", spectral, 1)):
        if column not in metrics.columns:
            continue
        y = metrics[column].astype(float)
        if is_log_scale(column):
            y = np.log(y.clip(lower=1e-300))
        both = pd.concat([w, y], axis=1, join="inner")
        both = both[np.isfinite(both.to_numpy(float)).all(axis=1)]
        x, v = both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy()
        depth = np.array([depth_of(i, L) for i in both.index])
        for key, test in ((hid, curves.raw_correlation), (f"{hid}_depth", V.curve_correlation)):
            try:
                d = test(x, v, depth, side=side, n_surrogates=n_surrogates)
            except ValueError as err:
                d = undecidable(str(err))
            what = "raw r over the layers" if key == hid else "r beyond a depth spline (ours)"
            out.append(judged(key, f"{what} (p = {fmt(d.p, 3)})", d, note=f"{len(both)} layers"
                              + ("; the shared depth shape is part of the claim" if key == hid
                                 else "; the shared depth shape removed")))
    return out
