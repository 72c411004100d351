r"""Chapter 10 (ours): knowledge or format — what SFT teaches, what it takes away, and in which segment.

The three claims are ours (the paper's reading, §1 and §2.2, is that SFT is a surface-level steer toward
a format); each is one row, decided at the 95 % level. **Family:** this chapter's table is one family of
three comparisons, each with a false-verdict rate of at most 5 % under no effect (calibrated on simulated
problems, ``tests/paper/findings/test_knowledge.py``, beside swap tables of 10- and 40-layer pairs):

* ``sft_format_not_knowledge`` — per problem ``d_i = (qa_SFT,i − qa_Base,i) − (ar_SFT,i − ar_Base,i)``,
  the Q/A-format gain minus the arithmetic-alone gain (exact match, 0/1 each), with the expanded percentile
  bootstrap interval over problems (:func:`~mbt.paper.verdicts.bootstrap_interval`): holds above 0;
* ``own_format_forgotten`` — per problem ``own_SFT,i − own_Base,i``, bootstrap over problems: holds below 0;
* ``format_late`` — from the swaps scored by the Q/A format (:func:`mbt.knowledge.swap_sweeps`, the
  receiver's head): swapping the last segment moves the format more than swapping any other one, paired
  over problems — SFT's last segment adds more Q/A exact match to the Base than each other segment of SFT
  does (``+``), and the Base's last segment takes more from SFT than each other segment does (``−``). The
  ``2(k − 1)`` comparisons of ``k`` segments are one compound claim (:func:`~mbt.paper.findings.common.all_of`),
  each at ``1 − 0.05 / (2(k − 1))`` (Bonferroni): holds if every comparison holds, contradicted if any is.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.findings.common import ALPHA, LEVEL, Finding, all_of, judged, undecidable

CHAPTER = "10_knowledge_or_format"
"""The chapter whose headlines this module decides."""

N_BOOT = 2000
"""Bootstrap resamples of every interval here."""


def _wide(per_item: pd.DataFrame, fmt_name: str) -> pd.DataFrame:
    """Base and SFT exact match per item of one format (items scored for both), columns ``base``, ``sft``."""
    part = per_item[per_item["format"] == fmt_name]
    by_model = {m: part[part["model"] == m].drop_duplicates("item").set_index("item")["correct"].astype(float)
                for m in ("base", "sft")}
    return pd.DataFrame(by_model).dropna()


def _format_over_knowledge(per_item: pd.DataFrame, seed: int, n_boot: int) -> Finding:
    qa, ar = _wide(per_item, "qa"), _wide(per_item, "arithmetic")
    both = qa.index.intersection(ar.index)
    if len(both) < 2:
        return judged("sft_format_not_knowledge", "—", undecidable("fewer than 2 problems scored in both formats",
                                                                   unit="problems"))
    gain_qa = (qa.loc[both, "sft"] - qa.loc[both, "base"]).to_numpy()
    gain_ar = (ar.loc[both, "sft"] - ar.loc[both, "base"]).to_numpy()
    iv = V.bootstrap_interval(gain_qa, gain_ar, level=LEVEL, n_boot=n_boot, seed=seed, unit="problems")
    d = V.direction(iv, side=1)
    ours = f"format gain {gain_qa.mean():+.3f}, knowledge gain {gain_ar.mean():+.3f}"
    return judged("sft_format_not_knowledge", ours, d,
                  note="Q/A format 0-shot vs the arithmetic alone, both exact match on the same problems")


def _forgotten(per_item: pd.DataFrame, seed: int, n_boot: int) -> Finding:
    own = _wide(per_item, "own")
    if len(own) < 2:
        return judged("own_format_forgotten", "—", undecidable("fewer than 2 problems scored in the own format",
                                                               unit="problems"))
    iv = V.bootstrap_interval(own["sft"].to_numpy(), own["base"].to_numpy(), level=LEVEL, n_boot=n_boot, seed=seed,
                              unit="problems")
    d = V.direction(iv, side=-1)
    ours = f"own format {own['base'].mean():.3f} (Base) → {own['sft'].mean():.3f} (SFT)"
    return judged("own_format_forgotten", ours, d, note="exact match in the Base's own format, paired over problems")


def _scores(row: pd.Series) -> np.ndarray:
    return np.asarray(list(row["scores"]), dtype=float)


def _format_late(swaps: pd.DataFrame | None, seed: int, n_boot: int) -> Finding:
    hid = "format_late"
    if swaps is None or swaps.empty:
        return judged(hid, "—", undecidable("no swap table", unit="problems"))
    rows = swaps[(swaps["score_name"] == "format") & (swaps["kind"] == "swap") & (swaps["head"] == "receiver")]
    k = int(rows["segment"].max()) + 1 if len(rows) else 0
    if k < 2:
        return judged(hid, "—", undecidable("fewer than 2 segments swapped", unit="problems"))
    parts, shown = [], []
    level = 1 - ALPHA / (2 * (k - 1))
    for receiver, side in (("base", 1), ("sft", -1)):
        where = "SFT→Base" if side > 0 else "Base→SFT"
        seg = rows[rows["receiver"] == receiver].set_index("segment").sort_index()
        if len(seg) != k:
            return judged(hid, "—", undecidable(f"the {receiver} receiver lacks some of the {k} segments",
                                                unit="problems"))
        last = _scores(seg.loc[k - 1])
        for j in range(k - 1):
            iv = V.bootstrap_interval(last, _scores(seg.loc[j]), level=level, n_boot=n_boot, seed=seed + j,
                                      unit="problems")
            part = V.direction(iv, side=side)
            parts.append(replace(part, rule=f"{where}, segment {k} vs {j + 1}: {part.rule}"))
        shown.append(f"{where} last {float(seg.loc[k - 1, 'diff']):+.3f}, others "
                     + ", ".join(f"{float(seg.loc[j, 'diff']):+.3f}" for j in range(k - 1)))
    d = all_of(parts, f"the last of {k} segments moves the Q/A format more than each other one, both directions")
    return judged(hid, "; ".join(shown), d, note="Q/A exact match change when a segment is swapped (receiver's head)")


def knowledge_findings(per_item: pd.DataFrame, swaps: pd.DataFrame | None = None, *, seed: int = 0,
                       n_boot: int = N_BOOT) -> list[Finding]:
    r"""The chapter's three claims from its tables.

    Args:
        per_item: Exact match per problem of the chapter's pair: columns ``model`` (``"base"``/``"sft"``),
            ``format`` (:data:`mbt.knowledge.FORMATS`), ``item`` and ``correct`` (0/1) —
            :func:`mbt.book.knowledge_scores`.
        swaps: :func:`mbt.knowledge.swap_sweeps` (rows with ``score_name``, ``receiver``, ``kind``, ``head``,
            ``segment``, ``diff`` and per-item ``scores``), or ``None`` when swaps were not run.
        seed: Bootstrap seed.
        n_boot: Bootstrap resamples of every interval.

    Returns:
        Findings for ``sft_format_not_knowledge``, ``format_late`` and ``own_format_forgotten``.
    """
    return [_format_over_knowledge(per_item, seed, n_boot), _format_late(swaps, seed, n_boot),
            _forgotten(per_item, seed, n_boot)]


def mask_contrasts(table: pd.DataFrame, *, reference: str = "11111", untuned: str = "00000",
                   level: float = LEVEL) -> pd.DataFrame:
    r"""Does the LoRA mask that wins on the task win on the format or on the knowledge?

    The winner is the tuned mask with the highest mean ``accuracy`` (Q/A exact match) over seeds. It is
    compared with ``reference`` (full-depth LoRA) and with the untuned Base (``untuned``) on ``accuracy``
    and on ``arithmetic`` (the arithmetic alone, :func:`mbt.tune.evaluate_tuned`), each a mean difference
    paired by seed with a Student t interval (:func:`~mbt.paper.verdicts.t_interval`; the untuned row is
    the same for every seed). Descriptive: no claim is decided here.

    Args:
        table: A :func:`mbt.tune.sweep` table (``mask``, ``seed``, ``accuracy``, ``arithmetic``).
        reference: The mask to beat.
        untuned: The mask that means "no adapter".
        level: Confidence level.

    Returns:
        One row per comparison and score: ``mask``, ``against``, ``score`` (``"accuracy"``/``"arithmetic"``),
        ``mask_mean``, ``against_mean``, ``diff``, ``ci_low``, ``ci_high``, ``n`` (seeds); empty when the
        table has no arithmetic scores or no tuned mask.
    """
    cols = ["mask", "against", "score", "mask_mean", "against_mean", "diff", "ci_low", "ci_high", "n"]
    if table.empty or "arithmetic" not in table.columns or table["arithmetic"].isna().all():
        return pd.DataFrame(columns=cols)
    frame = table.assign(mask=table["mask"].astype(str), seed=table["seed"].astype(int))
    tuned = frame[frame["mask"].map(lambda m: "1" in m)]
    if tuned.empty:
        return pd.DataFrame(columns=cols)
    best = str(tuned.groupby("mask", sort=False)["accuracy"].mean().idxmax())
    rows = []
    for against in (reference, untuned):
        if against == best or against not in set(frame["mask"]):
            continue
        for score in ("accuracy", "arithmetic"):
            a = frame[frame["mask"] == best].set_index("seed")[score].astype(float)
            b = frame[frame["mask"] == against].set_index("seed")[score].astype(float)
            if against == untuned and b.notna().any():
                b = pd.Series(float(b.dropna().iloc[0]), index=a.index)
            seeds = a.index.intersection(b.index)
            iv = V.t_interval(a.loc[seeds].to_numpy(), b.loc[seeds].to_numpy(), paired=True, level=level)
            rows.append({"mask": best, "against": against, "score": score, "mask_mean": float(a.loc[seeds].mean()),
                         "against_mean": float(b.loc[seeds].mean()), "diff": iv.estimate, "ci_low": iv.low,
                         "ci_high": iv.high, "n": iv.n})
    return pd.DataFrame(rows, columns=cols)
