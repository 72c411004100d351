r"""Chapter 4 (Figs. 4–5): weight change per block and its correlation with the metrics over depth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mbt.metrics.registry import is_log_scale
from mbt.paper import verdicts as V
from mbt.paper.findings.common import Finding, depth_of, fmt, judged, shape, undecidable

CHAPTER = "04_weights"
"""The chapter whose headlines this module decides."""


def weights_findings(checkpoint: pd.Series, finetune: pd.Series | None = None) -> list[Finding]:
    r"""Fig. 4 counterparts.

    * ``weight_j``: relative Eq. 1 change per block, ``c_b = Σ‖ΔW‖_F / Σ‖W_Base‖_F``, last 20 % of the
      blocks against the middle 20–80 %: ``gmean_{last} c ÷ gmean_{middle} c − 1 > 0`` with the blocks as
      units (autocorrelation-corrected Welch interval on ``log c``);
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
    d = shape(s, L, statistic="ratio")
    early = float(s[[depth_of(b, L) <= 0.5 for b in s.index]].mean())
    out = [judged("weight_j", "last 20 % ÷ middle − 1" + f"; early mean {fmt(early)}, last block "
                   f"{fmt(s.loc[L])}, max at block {int(s.idxmax())}", d,
                   note="relative Eq. 1 change (÷ ‖W_Base‖_F), ratio of geometric means", value=float(s.loc[L]))]
    if finetune is not None:
        f = finetune.sort_index().astype(float)
        out.append(Finding("weight_final", f"{fmt(f.loc[f.index.max()])} (max at block {int(f.idxmax())})", None,
                           "scale set by learning rate and steps, not comparable across set-ups; shown for scale",
                           float(f.loc[f.index.max()])))
    return out


def correlation_findings(weights: pd.Series, metrics: pd.DataFrame, *, cosine: str = "cosine_similarity",
                         spectral: str = "spectral_norm", n_surrogates: int = 999) -> list[Finding]:
    r"""Fig. 5 counterparts: weight change against a metric over layers, beyond their shared depth trend.

    :func:`~mbt.paper.verdicts.curve_correlation` of the relative Eq. 1 change per block (block ``b``
    feeds layer ``b``) with the metric per layer: both residualised on a cubic regression spline in
    depth, ``r`` of the residuals, interval from phase-randomised surrogates (smooth-curve null, not
    independent layers). σ_max is compared on a log scale.

    * ``corr_cosine``: ``r < 0`` (side −1);
    * ``corr_spectral``: ``r > 0``.

    Args:
        weights: Relative Eq. 1 change per block, indexed by block ``1..L``.
        metrics: Per-layer metrics (:func:`mbt.book.metric_table`), indexed by layer.
        cosine: Column of the cosine similarity.
        spectral: Column of the spectral norm.
        n_surrogates: Surrogates of the null.

    Returns:
        Findings for ``corr_cosine`` and ``corr_spectral`` (those whose column exists).
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
        try:
            d = V.curve_correlation(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy(),
                                    np.array([depth_of(i, L) for i in both.index]), side=side,
                                    n_surrogates=n_surrogates)
        except ValueError as err:
            d = undecidable(str(err))
        raw = float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]) if len(both) > 2 else float("nan")
        out.append(judged(hid, f"raw r = {raw:+.2f}; effect: r given a depth spline (p = {fmt(d.p, 3)})",
                           d, note=f"{len(both)} layers; the raw r includes the shared depth trend", value=raw))
    return out
