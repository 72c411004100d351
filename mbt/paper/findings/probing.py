r"""Chapter 3 (Fig. 3): the logit lens — when the SFT model's predictions emerge, and the final-layer dip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mbt.paper.findings.common import Finding, depth_of, fmt, judged, n_layers_of, shape, undecidable
from mbt.paper.verdicts import Verdict

CHAPTER = "03_probing"
"""The chapter whose headlines this module decides."""


def probing_findings(lens: pd.DataFrame, *, model: str = "sft") -> list[Finding]:
    r"""Fig. 3 counterparts from concatenated :func:`mbt.probe.logit_lens` tables.

    Uses the token-weighted ``pooled`` accuracy (the authors' number) with its cluster-bootstrap
    interval per layer when present (else the per-text mean ``value`` with ``ci_low/ci_high``); the
    contrasts bound their standard error by the per-layer intervals (any correlation between layers).

    * ``probe_early``: ``mean_{depth ≤ 50/64} acc ÷ mean_{depth > 50/64} acc − 1 < −0.5`` (low = below
      half of the late accuracy);
    * ``probe_rise``: ``mean_{depth > 50/64} acc − mean_{depth ≤ 50/64} acc > 0`` (the 0.60 level depends
      on the model and task and is not compared);
    * ``probe_final_dip``: ``acc_L − acc_{L−1} < 0`` with the correct single final norm; the value with
      the norm applied twice (the authors' code) is shown next to it.

    Args:
        lens: Logit-lens tables with a ``model`` column and the library's ``paper`` column, metric
            ``top1_acc``.
        model: Which model's curve to compare (the paper does not say; SFT by default).

    Returns:
        Findings for ``probe_early``, ``probe_rise`` and ``probe_final_dip``.
    """
    sel = lens[(lens["metric"] == "top1_acc") & (lens["model"] == model)]
    once_rows = sel[~sel["paper"].astype(bool)].set_index("layer").sort_index()
    twice_rows = sel[sel["paper"].astype(bool)].set_index("layer").sort_index()
    L = n_layers_of(sel)
    col, lo_col, hi_col = "pooled", "pooled_ci_low", "pooled_ci_high"
    if not {lo_col, hi_col} <= set(once_rows.columns) or not np.isfinite(once_rows[[lo_col, hi_col]]
                                                                         .to_numpy(float)).all():
        col, lo_col, hi_col = ("value", "ci_low", "ci_high") if "value" in once_rows.columns else (col, lo_col, hi_col)
    once = once_rows[col].astype(float)
    lo, hi = once_rows.get(lo_col), once_rows.get(hi_col)
    split = 50 / 64
    early, late = (-1.0, split), (split, 1.0)
    d = shape(once, L, low=lo, high=hi, band=early, reference=late, statistic="ratio", side=-1, threshold=-0.5)
    early_max = float(once[[depth_of(i, L) <= split for i in once.index]].max())
    out = [judged("probe_early", "depth ≤ 0.78 ÷ later − 1" + f"; max {fmt(early_max)} early", d,
                   note="low = below half of the later accuracy (threshold −0.5)", value=early_max)]
    d = shape(once, L, low=lo, high=hi, band=late, reference=early)
    out.append(judged("probe_rise", "later − depth ≤ 0.78" + f"; peak {fmt(once.max())}", d,
                       note="a rise in the last 22 % of depth; the 0.60 level depends on the model and task",
                       value=float(once.max())))
    if L - 1 in once.index and L in once.index:
        a, b = float(once.loc[L - 1]), float(once.loc[L])
        c = float(twice_rows.loc[L, col]) if L in twice_rows.index else float("nan")
        last, prev = (depth_of(L - 1, L), 1.0), (depth_of(L - 2, L), depth_of(L - 1, L))
        pair = once.loc[[L - 1, L]]
        d = shape(pair, L, low=None if lo is None else lo.loc[[L - 1, L]],
                   high=None if hi is None else hi.loc[[L - 1, L]], band=last, reference=prev, side=-1)
        if not (lo is not None and hi is not None and np.isfinite([lo.loc[L - 1], lo.loc[L], hi.loc[L - 1],
                                                                    hi.loc[L]]).all()):
            d = undecidable("the lens table has no per-layer intervals for the last two layers")
        twice = (" the dip appears only with the final norm applied twice" if c < a and d.verdict != Verdict.HOLDS
                 else "")
        out.append(judged("probe_final_dip", f"{fmt(a)} → {fmt(b)} (single norm); → {fmt(c)} (norm twice); "
                           "effect: acc_L − acc_(L−1), single norm", d,
                           note="layer L − (L − 1), SE bounded by the two layers' intervals;"
                           + twice, value=b - a))
    return out
