r"""Chapter 5 (Fig. 6): swapping segments of blocks between Base and SFT."""

from __future__ import annotations

import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.findings.common import Finding, fmt, judged

CHAPTER = "05_swapping"
"""The chapter whose headlines this module decides."""


def swap_findings(sweep: pd.DataFrame) -> list[Finding]:
    r"""Fig. 6 counterparts from a :func:`mbt.swap.swap_sweep` table (SFT → Base, receiver's head).

    The effect is the sweep's mean paired change in token accuracy over texts (swapped − unswapped)
    with its paired bootstrap interval (``diff_ci_low``/``diff_ci_high``); the claimed side is the sign
    of the paper's value (first −, middle +, last −). The note says whether our MDE can resolve an
    effect of the paper's size.

    Returns:
        Findings for ``swap_first``, ``swap_middle`` and ``swap_last``.
    """
    rows = sweep[(sweep["kind"] == "swap") & (sweep["receiver"] == "base") & (sweep["head"] == "receiver")]
    rows = rows.set_index("segment").sort_index()
    if rows.empty:
        return []
    n = int(rows.index.max()) + 1
    out = []
    for hid, seg, paper in (("swap_first", 0, -0.001), ("swap_middle", n // 2, 0.003), ("swap_last", n - 1, -0.002)):
        r = rows.loc[seg]
        iv = V.interval_from_summary(float(r["diff"]), float(r["diff_ci_low"]), float(r["diff_ci_high"]),
                                     n=int(r["n"]), method="the sweep's paired bootstrap over texts")
        d = V.direction(iv, side=1 if paper > 0 else -1)
        if float(r["diff"]) == 0.0 and float(r["diff_ci_low"]) == float(r["diff_ci_high"]) == 0.0:
            note = "no text's score changed at all"
        else:
            note = (f"MDE {fmt(d.mde, 4)} " + ("resolves" if d.mde <= abs(paper) else "is larger than")
                    + f" an effect of the paper's size ({paper:+g})")
        out.append(judged(hid, f"token accuracy, swapped − unswapped, {int(r['n'])} texts", d, note=note))
    return out
