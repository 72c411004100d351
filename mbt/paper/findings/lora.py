r"""Chapter 6 (Fig. 7, Appendices A–B): Mid-Block LoRA against full-depth LoRA over seeds."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.findings.common import ALPHA, LEVEL, Finding, all_of, any_of, fmt, judged, undecidable
from mbt.paper.headlines import HEADLINES
from mbt.paper.verdicts import Decision

CHAPTER = "06_midblock_lora"
"""The chapter whose headlines this module decides."""


RETENTION_COLUMNS: tuple[tuple[str, str], ...] = (("ppl_instruct", "ifeval"), ("ppl_text", "mtbench"))
"""Retention columns of a :func:`mbt.tune.sweep` table and the paper's benchmark each stands in for
(Appendix B: IFEval ← held-out instructions, MT-Bench ← held-out general text)."""


def sweep_columns(table: pd.DataFrame) -> dict[str, Any]:
    """The score, interval, answer-NLL and retention columns present in a :func:`mbt.tune.sweep` table.

    Returns:
        ``{"score", "low", "high", "nll", "nll_low", "nll_high", "retention": [...]}`` (``None``
        where a column is absent).
    """
    def col(name: str) -> str | None:
        return name if name in table.columns else None

    return {"score": col("accuracy"), "low": col("accuracy_ci_low"), "high": col("accuracy_ci_high"),
            "nll": col("answer_nll"), "nll_low": col("answer_nll_ci_low"), "nll_high": col("answer_nll_ci_high"),
            "retention": [c for c, _ in RETENTION_COLUMNS if c in table.columns]}


def _by_seed(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as a seeds × masks table (mean over duplicate rows of a mask and seed)."""
    t = table.assign(mask=table["mask"].astype(str))
    if "seed" not in t.columns:
        t = t.assign(seed=0)
    return t.pivot_table(index="seed", columns="mask", values=column, aggfunc="mean")


def _paired(piv: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores of masks ``a`` and ``b`` on the seeds both ran (paired by seed)."""
    x, y = piv[a].to_numpy(float), piv[b].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _mask_text(piv: pd.DataFrame, m: str) -> str:
    v = piv[m].dropna()
    sd = f" ± {fmt(v.std(ddof=1), 3)} sd" if len(v) > 1 else ""
    return f"{fmt(v.mean(), 3)}{sd} ({len(v)} seed{'s' if len(v) != 1 else ''})"


def _contrast(piv: pd.DataFrame, a: str, b: str, *, side: int, level: float = LEVEL,
              threshold: float = 0.0) -> Decision:
    """Paired seed contrast ``a − b`` (:func:`~mbt.paper.verdicts.seed_contrast`), inconclusive with < 2 seeds."""
    x, y = _paired(piv, a, b)
    if x.size < 2:
        return undecidable(f"{a} and {b} share {x.size} seed(s); a seed-to-seed spread needs at least 2",
                            unit="seeds", level=level)
    return V.seed_contrast(x, y, side=side, threshold=threshold, level=level)


def lora_findings(table: pd.DataFrame) -> list[Finding]:
    r"""Fig. 7 and Appendix A/B counterparts from a LoRA sweep table (one row per mask and seed).

    Masks trained with the same seeds are paired by seed; every comparison is a Student t interval
    over seeds (:func:`~mbt.paper.verdicts.seed_contrast`), exact for normal seed noise even with 3
    seeds, and inconclusive with fewer than 2 shared seeds.

    * per-mask claims: ``mask − 11111 > 0`` for a middle mask, ``< 0`` for an edge mask. Claims of
      different paper models that are the same comparison here (``10000`` for 13B and 32B) are one row
      (:func:`~mbt.paper.verdicts.collapse`); the four ``11111`` numbers are one scale row;
    * ``lora_gain``: every middle mask (first and last segment off) against ``11111`` at the Bonferroni
      level ``1 − 0.05/k``; holds if any holds, contradicted if all are contradicted. No best-of-k
      selection: picking the best mask and testing it at 95 % would be right by chance far too often;
    * ``lora_edge_gap``: per seed ``g = (middle − edge) / middle`` for every (middle, edge) pair, one-sample
      t interval against 0.20, Bonferroni over the pairs; holds if any pair holds;
    * ``appA_3_peak``: ``010 − 100 > 0`` and ``010 − 001 > 0``; ``appA_10_peak``: segment 5 above
      segments 1 and 10, and 10 below 1 (Bonferroni, all must hold);
    * ``appB_middle_best``: per seed ``|r_m − r_00000| − |r_00110 − r_00000| > 0`` for every other tuned
      mask ``m`` on the first retention column (Bonferroni, all must hold);
    * single-segment scores and retention values: scale only;
    * ``lora_mistral``: no verdict from one sweep (the claim is about another architecture; the same rows on a
      Mistral pair answer it).

    Returns:
        One finding per distinct comparison the table can answer.
    """
    cols = sweep_columns(table)
    score = cols["score"]
    if score is None:
        raise ValueError(f"the sweep table has no 'accuracy' column: {list(table.columns)}")
    piv = _by_seed(table, score)
    masks = set(piv.columns)
    out: list[Finding] = []
    full = "11111"
    refs = [h.id for h in HEADLINES if h.id.startswith("lora_") and h.id.endswith("_" + full)]
    if full in masks:
        out.append(Finding(refs[0], _mask_text(piv, full), None, "reference; the paper's values differ by model "
                           "size", float(piv[full].mean()), also=tuple(refs[1:])))
    decisions: list[Decision] = []
    for h in HEADLINES:
        if not h.id.startswith("lora_") or h.id in ("lora_gain", "lora_edge_gap", "lora_mistral") or h.id in refs:
            continue
        m = h.id.rsplit("_", 1)[1]
        if m not in masks or full not in masks:
            continue
        middle = m[0] == "0" and m[-1] == "0"
        d = _contrast(piv, m, full, side=1 if middle else -1)
        decisions.append(replace(d, key=f"{m} vs {full}", sources=(h.id,), paper=(f"{h.paper} ({h.model})",)))
    for d in V.collapse(decisions):
        m = d.key.split(" ")[0]
        out.append(judged(d.sources[0], f"{m} {_mask_text(piv, m)}; effect: {m} − {full}, paired by seed", d,
                           note=f"{'above' if m[0] == '0' and m[-1] == '0' else 'below'} 11111 claimed; paired by seed",
                           value=float(piv[m].mean()), also=d.sources[1:]))
    out.append(Finding("lora_mistral", "a per-pair claim: this sweep's rows are the comparison on its own pair", None,
                       "the same masks on a Mistral-architecture pair answer it (e.g. `mbt batch --pairs mistral-7b`)"))
    five = sorted(m for m in masks if len(m) == 5 and m not in ("00000", full))
    middles = [m for m in five if m[0] == "0" and m[-1] == "0"]
    edges = [m for m in ("10000", "00001") if m in masks]
    if middles and full in masks:
        k = len(middles)
        parts = [replace(_contrast(piv, m, full, side=1, level=1 - ALPHA / k), key=m) for m in middles]
        d = any_of(parts, f"some middle mask ({', '.join(middles)}) beats 11111")
        out.append(judged("lora_gain", f"effect: {d.key} − 11111 ({d.effect * 100:+.1f} points)"
                           if math.isfinite(d.effect) else "no shared seeds", d,
                           note=f"all {k} middle masks tested, Bonferroni; no best-of-{k} selection"))
        if edges:
            pairs = [(m, e) for m in middles for e in edges]
            gparts = []
            for m, e in pairs:
                x, y = _paired(piv, m, e)
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = (x - y) / x
                if g.size < 2 or not np.isfinite(g).all():
                    why = undecidable(f"{m}, {e}: fewer than 2 seeds", "seeds", 1 - ALPHA / len(pairs))
                    gparts.append(replace(why, key=f"{m}/{e}"))
                    continue
                iv = V.t_interval(g, level=1 - ALPHA / len(pairs), unit="seeds")
                gparts.append(replace(V.direction(iv, side=1, threshold=0.2), key=f"{m}/{e}"))
            d = any_of(gparts, "some (middle − edge) / middle exceeds 20 %")
            m, e = d.key.split("/") if "/" in d.key else (d.key, "")
            out.append(judged("lora_edge_gap", f"effect: ({m} − {e}) / {m} per seed", d,
                               note=f"{len(pairs)} (middle, edge) pairs, Bonferroni; relative to the middle mask"))
    for n_seg, key in ((3, "appA_3"), (10, "appA_10")):
        singles = ["".join("1" if j == i else "0" for j in range(n_seg)) for i in range(n_seg)]
        for i, m in enumerate(singles):
            if m in masks:
                out.append(Finding(f"{key}_{i + 1}", _mask_text(piv, m), None,
                                   "different task and model; shown for scale", float(piv[m].mean())))
        if all(m in masks for m in singles):
            if n_seg == 3:
                specs = [("010", "100", 1), ("010", "001", 1)]
                what = "segment 2 above segments 1 and 3"
            else:
                s1, s5, s10 = singles[0], singles[4], singles[9]
                specs = [(s5, s1, 1), (s5, s10, 1), (s10, s1, -1)]
                what = "segment 5 above 1 and 10, segment 10 below 1"
            parts = [_contrast(piv, a, b, side=side, level=1 - ALPHA / len(specs)) for a, b, side in specs]
            d = all_of(parts, what)
            means = piv[singles].mean()
            out.append(judged(key + "_peak", f"best segment {int(np.argmax(means.to_numpy())) + 1}, worst "
                               f"{int(np.argmin(means.to_numpy())) + 1}; effect: the deciding contrast", d,
                               note="paired over seeds; the appendix families often run one seed",
                               value=float(np.argmax(means.to_numpy()) + 1)))
    ret = dict(RETENTION_COLUMNS)
    present = list(cols["retention"])
    for column in present:
        bench = ret[column]
        rpiv = _by_seed(table, column)
        for m in ("00000", "11111", "10000", "00001", "00110"):
            if m in rpiv.columns:
                out.append(Finding(f"appB_{m}_{bench}", f"{fmt(rpiv[m].mean(), 3)} ({column})", None,
                                   "perplexity on a stand-in set, not comparable; shown for scale",
                                   float(rpiv[m].mean())))
    if present:
        column = present[0]
        rpiv = _by_seed(table, column)
        others = [m for m in ("11111", "10000", "00001") if m in rpiv.columns]
        if "00000" in rpiv.columns and "00110" in rpiv.columns and others:
            base = rpiv["00000"].fillna(rpiv["00000"].mean())
            dist = (rpiv.drop(columns="00000").sub(base, axis=0)).abs()
            parts = [_contrast(dist, m, "00110", side=1, level=1 - ALPHA / len(others)) for m in others]
            d = all_of(parts, "every other tuned mask farther from Base than 00110")
            closest = str(dist[["00110", *others]].mean().idxmin())
            out.append(judged("appB_middle_best", f"closest to Base: {closest}; effect: the deciding contrast", d,
                               note=f"|Δ| to 00000 on {column}, paired over seeds"))
    return out
