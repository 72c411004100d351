r"""Chapter 6 (Fig. 7, Appendices A–B): Mid-Block LoRA against full-depth LoRA over seeds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper import seeds as Sd
from mbt.paper import verdicts as V
from mbt.paper.findings.common import ALPHA, LEVEL, Finding, all_of, any_of, fmt, judged, undecidable
from mbt.paper.headlines import BY_ID, HEADLINES
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


PROBLEMS_COLUMN = "accuracy_items"
"""Column of a :func:`mbt.tune.sweep` table with a run's per-problem scores: one ``0``/``1`` digit per test
problem, in the fixed order of the seeded test sample (the same problems for every mask and seed)."""


def _problem_scores(table: pd.DataFrame, mask: str) -> dict[int, np.ndarray] | None:
    """``{seed: per-problem scores}`` of ``mask`` (mean over duplicate runs); ``None`` when a run lacks them."""
    if PROBLEMS_COLUMN not in table.columns:
        return None
    rows = table[table["mask"].astype(str) == mask]
    seeds = rows["seed"] if "seed" in rows.columns else pd.Series(0, index=rows.index)
    out: dict[int, list[np.ndarray]] = {}
    for seed, text in zip(seeds, rows[PROBLEMS_COLUMN], strict=True):
        if not isinstance(text, str) or not text:
            return None
        if set(text) - {"0", "1"}:
            raise ValueError(f"mask {mask}, seed {seed}: {PROBLEMS_COLUMN} must hold only 0/1 digits, got "
                             f"{text[:20]!r}")
        out.setdefault(int(seed), []).append(np.frombuffer(text.encode(), dtype=np.uint8) - ord("0"))
    return {k: np.mean(v, axis=0) for k, v in out.items()}


def _contrast(table: pd.DataFrame, piv: pd.DataFrame, a: str, b: str, *, side: int, level: float = LEVEL,
              threshold: float = 0.0, weight: float = 1.0) -> Decision:
    r"""``weight·a − b`` against ``threshold``: seeds crossed with test problems, or seeds alone.

    With per-problem scores (:data:`PROBLEMS_COLUMN`) for both masks on at least 2 shared seeds the
    interval is :func:`mbt.paper.seeds.crossed_contrast` (seeds × problems: a mask × problem interaction
    is part of the error, calibrated in ``scripts/calibrate_verdicts.py``); without them it is the paired
    Student t over the seeds' means (:func:`~mbt.paper.verdicts.seed_contrast`, says so in its rule).
    Inconclusive with fewer than 2 shared seeds.
    """
    x, y = _paired(piv, a, b)
    if x.size < 2:
        return undecidable(f"{a} and {b} share {x.size} seed(s); a seed-to-seed spread needs at least 2",
                            unit="seeds", level=level)
    pa, pb = _problem_scores(table, a), _problem_scores(table, b)
    shared = sorted(set(pa or ()) & set(pb or ()))
    if pa is not None and pb is not None and len(shared) >= 2 and len({pa[k].size for k in shared}
                                                                      | {pb[k].size for k in shared}) == 1:
        return Sd.crossed_contrast(weight * np.stack([pa[k] for k in shared]), np.stack([pb[k] for k in shared]),
                                   side=side, threshold=threshold, level=level)
    d = V.seed_contrast(weight * x, y, side=side, threshold=threshold, level=level)
    return replace(d, rule=d.rule + " (seeds only: the table stores no per-problem scores)")


_COMPARISONS: dict[str, tuple[str, str]] = {
    "lora_1b_00001": ("00001", "11111"),
    "lora_7b_01000": ("01000", "11111"),
    "lora_13b_01110": ("01110", "11111"),
    "lora_13b_10000": ("10000", "11111"),
    "lora_32b_01100": ("01100", "11111"),
    "lora_32b_10000": ("10000", "01100"),
}
"""Fig. 7's per-mask claims as the paper makes them: ``{headline: (mask, the mask it is compared with)}``. A
middle mask is claimed above, an edge mask below; OLMo 2 32B's ``10000`` is set against its best middle
mask ``01100``, not against ``11111``."""

_ALSO: dict[str, tuple[str, ...]] = {"lora_7b_01000": ("lora_gain",)}
"""Claims that are the same comparison: the abstract's +10.2 % is OLMo 2 7B's ``01000`` against ``11111``."""


def lora_findings(table: pd.DataFrame) -> list[Finding]:
    r"""Fig. 7 and Appendix A/B counterparts from a LoRA sweep table (one row per mask and seed).

    Masks trained with the same seeds are paired by seed, and scored on the same test problems; every
    accuracy comparison is :func:`_contrast`: the crossed seeds × problems interval when the table holds
    per-problem scores (:data:`PROBLEMS_COLUMN`), else a Student t over seeds; inconclusive with fewer
    than 2 shared seeds.

    * per-mask claims (:data:`_COMPARISONS`): ``mask − reference > 0`` for a middle mask, ``< 0`` for an
      edge mask; the reference is ``11111`` except for OLMo 2 32B's ``10000``, which the paper sets
      against that model's best middle mask ``01100``. ``lora_gain`` (the abstract's +10.2 %) is the
      same comparison as ``lora_7b_01000`` and shares its row; the four ``11111`` numbers are one scale
      row;
    * ``lora_edge_gap``: ``(middle − edge) / middle > 0.20``, tested as ``0.8·middle − edge > 0`` on the
      mean scores for every (middle, edge) pair at the Bonferroni level; holds if any pair holds;
    * ``appA_3_peak``: ``010 − 100 > 0`` and ``010 − 001 > 0``; ``appA_10_peak``: segment 5 above
      segments 1 and 10, and 10 below 1 (Bonferroni, all must hold);
    * ``appB_middle_best``: per seed ``|log r_m − log r_00000| − |log r_00110 − log r_00000| > 0`` for every
      other tuned mask ``m`` on the first retention column (perplexities of different sizes compared as
      log ratios; Student t over seeds, Bonferroni, all must hold);
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
    for hid, (m, ref) in _COMPARISONS.items():
        if m not in masks or ref not in masks:
            continue
        middle = m[0] == "0" and m[-1] == "0"
        d = _contrast(table, piv, m, ref, side=1 if middle else -1)
        paper = tuple(f"{BY_ID[h].paper} ({BY_ID[h].model})" for h in (hid, *_ALSO.get(hid, ())))
        decisions.append(replace(d, key=f"{m} vs {ref}", sources=(hid, *_ALSO.get(hid, ())), paper=paper))
    for d in V.collapse(decisions):
        m, _, ref = d.key.split(" ")
        above = m[0] == "0" and m[-1] == "0"
        out.append(judged(d.sources[0], f"{m} {_mask_text(piv, m)}; effect: {m} − {ref}", d,
                           note=f"{'above' if above else 'below'} {ref} claimed; paired by seed and problem",
                           value=float(piv[m].mean()), also=d.sources[1:]))
    out.append(Finding("lora_mistral", "a per-pair claim: this sweep's rows are the comparison on its own pair", None,
                       "the same masks on a Mistral-architecture pair answer it (e.g. `mbt batch --pairs mistral-7b`)"))
    five = sorted(m for m in masks if len(m) == 5 and m not in ("00000", full))
    middles = [m for m in five if m[0] == "0" and m[-1] == "0"]
    edges = [m for m in ("10000", "00001") if m in masks]
    if middles and edges:
        pairs = [(m, e) for m in middles for e in edges]
        level = 1 - ALPHA / len(pairs)
        gparts = [replace(_contrast(table, piv, m, e, side=1, level=level, weight=0.8), key=f"{m}/{e}")
                  for m, e in pairs]
        d = any_of(gparts, "some (middle − edge) / middle exceeds 20 %")
        m, e = d.key.split("/") if "/" in d.key else (d.key, "")
        out.append(judged("lora_edge_gap", f"effect: 0.8 × {m} − {e} (above 0 ⇔ the gap exceeds 20 % of {m})", d,
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
            parts = [_contrast(table, piv, a, b, side=side, level=1 - ALPHA / len(specs)) for a, b, side in specs]
            d = all_of(parts, what)
            means = piv[singles].mean()
            out.append(judged(key + "_peak", f"best segment {int(np.argmax(means.to_numpy())) + 1}, worst "
                               f"{int(np.argmin(means.to_numpy())) + 1}; effect: the deciding contrast", d,
                               note="paired by seed and problem; the appendix families often run one seed",
                               value=float(np.argmax(means.to_numpy()) + 1)))
    out += _retention(table, cols["retention"])
    return out


def _retention(table: pd.DataFrame, present: list[str]) -> list[Finding]:
    """Appendix B: the retention values (scale rows) and ``appB_middle_best`` on log perplexities."""
    out: list[Finding] = []
    ret = dict(RETENTION_COLUMNS)
    for column in present:
        rpiv = _by_seed(table, column)
        for m in ("00000", "11111", "10000", "00001", "00110"):
            if m in rpiv.columns:
                out.append(Finding(f"appB_{m}_{ret[column]}", f"{fmt(rpiv[m].mean(), 3)} ({column})", None,
                                   "perplexity on a stand-in set, not comparable; shown for scale",
                                   float(rpiv[m].mean())))
    if not present:
        return out
    column = present[0]
    rpiv = _by_seed(table, column)
    others = [m for m in ("11111", "10000", "00001") if m in rpiv.columns]
    if "00000" in rpiv.columns and "00110" in rpiv.columns and others:
        values = rpiv.to_numpy(float)
        if (values[np.isfinite(values)] <= 0).any():
            raise ValueError(f"{column}: a perplexity must be positive, got {np.nanmin(values)}")
        logs = np.log(rpiv)
        base = logs["00000"].fillna(logs["00000"].mean())
        dist = logs.drop(columns="00000").sub(base, axis=0).abs()
        parts = []
        for m in others:
            x, y = _paired(dist, m, "00110")
            level = 1 - ALPHA / len(others)
            parts.append(V.seed_contrast(x, y, side=1, level=level) if x.size >= 2 else
                         undecidable(f"{m} and 00110 share {x.size} seed(s)", unit="seeds", level=level))
        d = all_of(parts, "every other tuned mask farther from Base than 00110 (|log ratio| of perplexities)")
        closest = str(dist[["00110", *others]].mean().idxmin())
        out.append(judged("appB_middle_best", f"closest to Base: {closest}; effect: the deciding contrast", d,
                           note=f"|log(ppl / ppl of 00000)| on {column}, paired over seeds"))
    return out
