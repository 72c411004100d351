r"""The book: the paper's headline numbers, the helpers its chapters call, and the build behind ``mbt book``.

Three parts, each usable on its own:

1. **Headlines** — :data:`HEADLINES` lists every headline number of the paper
   (``reference/authors-code.md`` §11), where the paper states it and how a chapter computes our
   counterpart. Chapters turn their results into :class:`Finding` objects with the ``*_findings``
   functions below (pure functions of library tables, unit-tested), and :func:`report` renders them
   as "paper vs ours" tables with a computed sentence on what agrees and what does not. Findings are
   also written to a records folder (one JSON file per chapter and pair) from which
   :func:`paper_vs_ours_markdown` builds the book's "Paper vs ours" table — nothing is typed by hand.
2. **Chapter helpers** — :func:`setup_notebook`, :func:`open_pair`, :func:`sizes`,
   :func:`default_datasets`, :func:`analyze_datasets`, :func:`logit_lens_table`, :func:`cached` (a
   result cache for anything expensive that :func:`mbt.analyze` does not already cache) and
   :func:`run_sweep` (:func:`mbt.tune.sweep` with a per-pair results file, so reruns resume).
3. **Build** — :func:`build` executes every chapter notebook with papermill (a fresh kernel each, in
   order) into a staging copy of the book, ``book/_executed/`` (git-ignored), then runs Jupyter Book 1
   on it to ``_build/html``. The staging copy mirrors the repository layout (``_config.yml``,
   ``_toc.yml``, ``book/*.md``, ``notebooks/*.ipynb``), so a page's Colab button opens the committed,
   output-free notebook of the same path. A chapter whose notebook source, parameters, ``mbt``
   sources and pair are unchanged is not executed again, so a rebuild after a prose edit only runs
   Sphinx; a re-executed chapter still reuses every cached analysis.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbt import cpu

__all__ = [
    "CHAPTERS",
    "CONVERGENCE_METRICS",
    "HEADLINES",
    "PAPER_MASKS",
    "PROSE",
    "RECORDS_ENV",
    "TABLE_MARKER",
    "BuildReport",
    "ChapterUnavailable",
    "Finding",
    "Headline",
    "analyze_datasets",
    "analyze_halves",
    "build",
    "cached",
    "chapter_of",
    "collect_records",
    "compare_conventions",
    "conventions_markdown",
    "conventions_sentence",
    "convergence_findings",
    "correlation_findings",
    "default_datasets",
    "device_name",
    "divergence_findings",
    "evidence_curves",
    "fill_markers",
    "find_root",
    "folder_label",
    "logit_lens_table",
    "lora_findings",
    "metric_table",
    "open_pair",
    "pair_fingerprint",
    "pair_label",
    "paper_vs_ours_markdown",
    "parameter_names",
    "probing_findings",
    "read_notebook",
    "read_records",
    "record",
    "records_root",
    "report",
    "require",
    "run_sweep",
    "setup_notebook",
    "single_segment_masks",
    "sizes",
    "stage_sources",
    "swap_findings",
    "sweep_columns",
    "sweep_path",
    "weights_findings",
    "write_paper_vs_ours",
]

CHAPTERS: tuple[str, ...] = (
    "01_divergence",
    "02_convergence",
    "03_probing",
    "04_weights",
    "05_swapping",
    "06_midblock_lora",
    "07_beyond",
)
"""Chapter notebooks (``notebooks/<name>.py``, jupytext py:percent), in execution order."""

PROSE: tuple[str, ...] = ("intro", "methods", "paper_vs_ours", "running_at_scale")
"""Prose chapters (``book/<name>.md``)."""

TITLES: dict[str, str] = {
    "01_divergence": "1 · Divergence",
    "02_convergence": "2 · Convergence",
    "03_probing": "3 · Probing",
    "04_weights": "4 · Weight change",
    "05_swapping": "5 · Swapping",
    "06_midblock_lora": "6 · Mid-Block LoRA",
    "07_beyond": "7 · Beyond the paper",
}
TABLE_MARKER = "<!-- mbt:paper-vs-ours -->"
"""Line of ``book/paper_vs_ours.md`` replaced by the generated table in the staged book."""
RECORDS_ENV = "MBT_BOOK_RECORDS"
"""Environment variable naming the folder where :func:`report` writes findings (set by :func:`build`)."""
MIDDLE = (0.2, 0.8)
"""The paper's middle layers: 20 %–80 % of the depth."""


# ==============================================================================================
# 1. Headlines
# ==============================================================================================


@dataclass(frozen=True)
class Headline:
    """One headline number (or claim) of the paper.

    Attributes:
        id: Stable key, e.g. ``"cka_final"``.
        chapter: Chapter notebook that computes our counterpart.
        claim: The claim, in the paper's terms.
        model: The paper's model (and dataset) for this number.
        paper: The paper's value; ``[lost]`` where the text extraction removed it.
        where: Where the paper states it.
        how: How our counterpart is computed.
    """

    id: str
    chapter: str
    claim: str
    model: str
    paper: str
    where: str
    how: str


def _h(id: str, chapter: str, claim: str, model: str, paper: str, where: str, how: str) -> Headline:
    return Headline(id, chapter, claim, model, paper, where, how)


_F7 = "06_midblock_lora"
HEADLINES: tuple[Headline, ...] = (
    # --- representation analysis (authors-code.md §11, items 1-8)
    _h("middle_stable", "01_divergence", "middle layers (20–80 % depth) stable, final layers most sensitive",
       "all models", "qualitative", "abstract, §4.2",
       "depth of the largest 1 − CKA(Base, SFT) over layers 1..L; must lie in the last 20 %"),
    _h("cka_plateau", "01_divergence", "CKA plateau for layers 0–56 of 64", "OLMo2-32B", "above [lost]", "§4.2, Fig. 1",
       "min and spread of CKA over 20 %–87.5 % depth; a plateau if its spread is below the final drop"),
    _h("cka_drop_start", "01_divergence", "sharp CKA drop from layer ~56 of 64 to the end", "OLMo2-32B",
       "depth ≈ 0.875", "§4.2, Fig. 1", "depth of the largest layer-to-layer CKA decrease (l ≥ 2)"),
    _h("cka_final", "01_divergence", "CKA at the final layer", "OLMo2-32B", "≈[lost]", "§4.2, Fig. 1",
       "CKA at layer L (and at L − 1, the authors' last extracted layer)"),
    _h("mean_shift_shallow", "01_divergence", "mean shift negligible in shallow layers", "OLMo2-32B", "< [lost]",
       "§4.2, Fig. 1", "largest mean shift over the first half of the layers, as a share of the maximum"),
    _h("mean_shift_final", "01_divergence", "mean shift spikes in the final 5 layers", "OLMo2-32B", "over [lost]",
       "§4.2, Fig. 1", "layer and value of the largest mean shift"),
    _h("cosine_agrees", "01_divergence", "cosine similarity agrees (lowest in the final layers)", "OLMo2-32B",
       "qualitative", "§4.2, Fig. 1", "layer of the lowest mean cosine similarity, with its 95 % interval"),
    _h("seed_robust", "01_divergence", "robust to random seeds (t-test)", "OLMo2-32B", "p < [lost]", "§4.2",
       "largest |ΔCKA| over layers between two independent samples (seeds), against the final CKA drop"),
    _h("synchronised", "02_convergence", "Base and SFT intrinsic curves synchronised", "all models", "qualitative",
       "§4.2, Fig. 2", "median over metrics of the Pearson r between the Base and SFT curves"),
    _h("three_stages", "02_convergence", "three stages: transition 0 → 1, plateau, final shift", "all models",
       "qualitative", "§4.2, Fig. 2",
       "share of metrics whose largest step is 0 → 1, and whose final-20 % steps exceed the middle steps"),
    _h("erank_peak", "02_convergence", "effective rank peaks in the middle", "OLMo2-13B", "peak [lost]", "§4.2, Fig. 2",
       "layer and value of the largest SFT effective rank"),
    _h("cond_trough", "02_convergence", "condition number trough", "OLMo2-13B", "trough [lost]", "§4.2, Fig. 2",
       "layer and value of the smallest SFT condition number (layers ≥ 1)"),
    _h("erank_collapse", "02_convergence", "effective rank collapses in the last layers", "OLMo2-13B", "to [lost]",
       "§4.2, Fig. 2", "SFT effective rank at layer L as a share of its peak"),
    _h("spectral_norm_500", "02_convergence", "spectral norm exceeds 500 in the last layers", "OLMo2-13B (N = 200)",
       "> 500", "§4.2, Fig. 2", "largest SFT spectral norm and its layer (σ_max grows like √N × the vector norm)"),
    _h("probe_early", "03_probing", "logit-lens accuracy low for the first 50 of 64 layers", "OLMo2-32B, MMLU",
       "< [lost]", "§4.3, Fig. 3", "largest SFT top-1 accuracy at depth ≤ 50/64"),
    _h("probe_rise", "03_probing", "accuracy rises from ≈0 to > 0.60 within the last 14 layers", "OLMo2-32B, MMLU",
       "> 0.60", "§4.3, Fig. 3", "peak SFT top-1 accuracy and the depth where it first reaches half of it"),
    _h("probe_final_dip", "03_probing", "final-layer accuracy drop", "OLMo2-32B, MMLU", "0.60 → 0.52", "§4.3, Fig. 3",
       "SFT accuracy at layer L − 1 → L with the final norm once, and twice (the authors' code)"),
    _h("weight_j", "04_weights", "weight change J-shaped, small in early layers", "OLMo2-13B", "< [lost] early",
       "§4.3, Fig. 4", "relative Eq. 1 change per block from the checkpoints: early mean vs the last block"),
    _h("weight_final", "04_weights", "weight change in the final layer", "OLMo2-13B", "> 0.10", "§4.3, Fig. 4",
       "own short fine-tune, mean ‖Δθ‖_F over the block's tensors (the authors' quantity), last block"),
    _h("corr_cosine", "04_weights", "weight change vs cosine similarity: strong negative", "OLMo2-13B", "r = [lost]",
       "§4.3, Fig. 5", "Pearson r over layers, and partial r given depth"),
    _h("corr_spectral", "04_weights", "weight change vs spectral metrics: strong positive", "OLMo2-13B", "r = [lost]",
       "§4.3, Fig. 5", "Pearson r with the SFT spectral norm over layers, and partial r given depth"),
    _h("swap_first", "05_swapping", "swap first 20 % (SFT → Base, Base head)", "OLMo2-13B, MMLU", "−0.001",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 1 of 5"),
    _h("swap_middle", "05_swapping", "swap middle (SFT → Base, Base head)", "OLMo2-13B, MMLU", "+0.003",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 3 of 5"),
    _h("swap_last", "05_swapping", "swap last 20 % (SFT → Base, Base head)", "OLMo2-13B, MMLU", "−0.002",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 5 of 5"),
    # --- Mid-Block Efficient Tuning (Fig. 7, abstract, intro)
    _h("lora_1b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-1B", "0.19", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_1b_00001", _F7, "GSM8K, edge mask 00001 (below 11111)", "OLMo2-1B", "0.135", "§4.4, Fig. 7",
       "our 00001 score; agrees if below our 11111"),
    _h("lora_7b_01000", _F7, "GSM8K, best middle 01000 (above 11111)", "OLMo2-7B", "0.375", "§4.4, Fig. 7",
       "our 01000 score; agrees if above our 11111"),
    _h("lora_7b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-7B", "0.28", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_13b_01110", _F7, "GSM8K, best middle 01110 (above 11111)", "OLMo2-13B", "0.30", "§4.4, Fig. 7",
       "our 01110 score; agrees if above our 11111"),
    _h("lora_13b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-13B", "0.27", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_13b_10000", _F7, "GSM8K, edge mask 10000 (below 11111)", "OLMo2-13B", "0.22", "§4.4, Fig. 7",
       "our 10000 score; agrees if below our 11111"),
    _h("lora_32b_01100", _F7, "GSM8K, best middle 01100 (above 11111, fewer params)", "OLMo2-32B", "0.32",
       "§4.4, Fig. 7", "our 01100 score; agrees if above our 11111"),
    _h("lora_32b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-32B", "0.29", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_32b_10000", _F7, "GSM8K, edge mask 10000 (below 11111)", "OLMo2-32B", "0.25", "§4.4, Fig. 7",
       "our 10000 score; agrees if below our 11111"),
    _h("lora_mistral", _F7, "same tendency on Mistral-7B", "Mistral-7B", "no numbers", "§4.4",
       "not run on the toy pair (a Mistral-architecture pair is needed)"),
    _h("lora_gain", _F7, "Mid-Block beats standard LoRA", "OLMo2-7B", "+10.2 % (37.5 vs 28)", "abstract, §1",
       "best middle mask − 11111, in points, against the seed-to-seed spread"),
    _h("lora_edge_gap", _F7, "best middle − worst edge exceeds 20 % of the score", "OLMo2 family", "> 20 %", "§4.4",
       "(best middle − worst single edge segment) / best middle"),
    *(_h(f"appA_3_{i + 1}", _F7, f"3 segments, segment {i + 1} tuned", "OLMo2-13B, ToxiGen", v, "App. A, Tab. 1",
         f"our mask {'1' if i == 0 else '0'}{'1' if i == 1 else '0'}{'1' if i == 2 else '0'} score")
      for i, v in enumerate(("0.4650", "0.4721", "0.4550"))),
    _h("appA_3_peak", _F7, "3 segments: the middle segment is best", "OLMo2-13B, ToxiGen", "segment 2",
       "App. A, Tab. 1", "argmax of our 3-segment scores"),
    *(_h(f"appA_10_{i + 1}", _F7, f"10 segments, segment {i + 1} tuned", "OLMo2-13B, ToxiGen", v, "App. A, Tab. 2",
         f"our 10-segment mask with only segment {i + 1} on")
      for i, v in enumerate(("0.4503", "0.4589", "0.4693", "0.4761", "0.4771", "0.4754", "0.4502", "0.4215",
                             "0.3966", "0.3821"))),
    _h("appA_10_peak", _F7, "10 segments: inverted U, peak at segment 5, worst at 10", "OLMo2-13B, ToxiGen",
       "peak 5, min 10", "App. A, Tab. 2", "argmax and argmin of our 10-segment scores"),
    *(_h(f"appB_{mask}_{bench}", _F7, f"retention, {mask}, {label}", "OLMo2-13B", v, "App. B, Tab. 4",
         f"our retention loss of {mask} on the {label} stand-in")
      for mask, vals in (("00000", ("14.53", "13.58")), ("11111", ("14.70", "13.76")), ("10000", ("14.61", "13.63")),
                         ("00001", ("14.65", "13.72")), ("00110", ("14.54", "13.60")))
      for bench, label, v in (("ifeval", "IFEval", vals[0]), ("mtbench", "MT-Bench", vals[1]))),
    _h("appB_middle_best", _F7, "middle segments (00110) retain the most", "OLMo2-13B", "00110 closest to Base",
       "App. B", "tuned mask whose retention loss is closest to the untuned Base"),
)
"""Every headline number of the paper, in the order of ``reference/authors-code.md`` §11."""

_BY_ID: dict[str, Headline] = {h.id: h for h in HEADLINES}


def chapter_of(headline_id: str) -> str:
    """The chapter that computes a headline (``KeyError`` for an unknown id)."""
    return _BY_ID[headline_id].chapter


@dataclass(frozen=True)
class Finding:
    """Our counterpart of one headline.

    Attributes:
        id: A :data:`HEADLINES` id.
        ours: Our value, formatted for a table.
        agrees: ``True``/``False`` whether the paper's claim holds on our pair, ``None`` where the
            comparison is not meaningful (the paper's number was lost, or it is a scale).
        note: One short clause explaining the verdict.
        value: The main number, when there is one (for machine use).
    """

    id: str
    ours: str
    agrees: bool | None = None
    note: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        if self.id not in _BY_ID:
            raise ValueError(f"unknown headline id {self.id!r}")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(xf):
        return "n/a" if math.isnan(xf) else ("∞" if xf > 0 else "−∞")
    if xf != 0 and (abs(xf) >= 1e4 or abs(xf) < 10 ** (-digits)):
        return f"{xf:.2e}"
    if abs(xf) >= 100:
        return f"{xf:.0f}"
    return f"{xf:.{digits}f}"


def _ci(value: float, low: float, high: float, digits: int = 3) -> str:
    if np.isfinite(low) and np.isfinite(high):
        return f"{_fmt(value, digits)} [{_fmt(low, digits)}, {_fmt(high, digits)}]"
    return _fmt(value, digits)


# ==============================================================================================
# 1b. Findings: pure functions of library tables
# ==============================================================================================


def _series(frame: pd.DataFrame, metric: str, model: str) -> pd.Series:
    """``value`` per layer for one metric and model of a tidy :func:`mbt.analyze` table."""
    rows = frame[(frame["metric"] == metric) & (frame["model"] == model)]
    if rows.empty:
        return pd.Series(dtype=float)
    if rows["layer"].duplicated().any():
        raise ValueError(f"several rows per layer for {model}:{metric}; filter the table to one dataset first")
    return rows.set_index("layer")["value"].astype(float).sort_index()


def _n_layers(frame: pd.DataFrame) -> int:
    sel = frame[frame["depth"] > 0]
    if sel.empty:
        return int(frame["layer"].max())
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def _depth(layer: float, L: int) -> float:
    return float(layer) / L


def divergence_findings(frame: pd.DataFrame, *,
                        halves: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[Finding]:
    """Fig. 1 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Args:
        frame: Analyze table (one dataset) with the pair metrics ``cka``, ``cosine_similarity`` and
            ``mean_shift``.
        halves: The same pair metrics on two disjoint halves of the sample (:func:`analyze_halves`),
            for the robustness claim; omitted when ``None``.

    Returns:
        Findings for ``middle_stable``, ``cka_plateau``, ``cka_drop_start``, ``cka_final``,
        ``mean_shift_shallow``, ``mean_shift_final``, ``cosine_agrees`` and ``seed_robust``.
    """
    L = _n_layers(frame)
    cka = _series(frame, "cka", "pair")
    out: list[Finding] = []
    if cka.empty:
        raise ValueError("the table has no 'cka' rows (run analyze with the pair metrics)")
    dist = (1.0 - cka).drop(index=0, errors="ignore")
    worst = int(dist.idxmax())
    mid = dist[[_depth(l_, L) >= MIDDLE[0] and _depth(l_, L) <= MIDDLE[1] for l_ in dist.index]]
    out.append(Finding(
        "middle_stable", f"1 − CKA largest at layer {worst} (depth {_depth(worst, L):.2f}); middle mean "
        f"{_fmt(mid.mean())}, max {_fmt(dist.max())}",
        agrees=_depth(worst, L) > MIDDLE[1],
        note="the largest Base–SFT difference is in the last 20 % of layers" if _depth(worst, L) > MIDDLE[1]
        else f"the largest Base–SFT difference is at depth {_depth(worst, L):.2f}, not in the last 20 %",
        value=float(dist.max()),
    ))
    plateau = cka[[MIDDLE[0] <= _depth(l_, L) <= 0.875 and l_ < L for l_ in cka.index]]
    p_min, p_spread = float(plateau.min()), float(plateau.max() - plateau.min())
    drop = p_min - float(cka.loc[L])
    out.append(Finding(
        "cka_plateau", f"≥ {_fmt(p_min)} (spread {_fmt(p_spread)}) for depth 0.2–0.875",
        agrees=bool(p_spread < drop),
        note="flat band, then a larger final drop" if p_spread < drop
        else "the band varies more than the final drop",
        value=p_min,
    ))
    steps = (cka.shift(1) - cka).drop(index=[0, 1], errors="ignore")
    big = int(steps.idxmax())
    out.append(Finding(
        "cka_drop_start", f"largest step {big - 1} → {big} (depth {_depth(big, L):.2f}), −{_fmt(steps.max())}",
        agrees=_depth(big, L) > MIDDLE[1],
        note="the sharpest decrease is in the last 20 %" if _depth(big, L) > MIDDLE[1]
        else "the sharpest decrease is not in the last 20 %",
        value=_depth(big, L),
    ))
    out.append(Finding(
        "cka_final", f"{_fmt(cka.loc[L])} at layer {L} ({_fmt(cka.loc[L - 1])} at {L - 1})",
        agrees=None, note="the paper's value was lost in extraction", value=float(cka.loc[L]),
    ))
    shift = _series(frame, "mean_shift", "pair")
    if not shift.empty:
        first = shift[[_depth(l_, L) <= 0.5 for l_ in shift.index]].max()
        share = float(first / shift.max()) if shift.max() > 0 else float("nan")
        out.append(Finding(
            "mean_shift_shallow", f"max over depth ≤ 0.5: {_fmt(first)} ({share:.0%} of the maximum)",
            agrees=bool(share < 0.25), note="threshold: below 25 % of the largest shift", value=float(first),
        ))
        top = int(shift.idxmax())
        out.append(Finding(
            "mean_shift_final", f"max {_fmt(shift.max())} at layer {top} (depth {_depth(top, L):.2f})",
            agrees=_depth(top, L) > MIDDLE[1],
            note="peaks in the last 20 %" if _depth(top, L) > MIDDLE[1] else "does not peak in the last 20 %",
            value=float(shift.max()),
        ))
    cos = frame[(frame["metric"] == "cosine_similarity") & (frame["model"] == "pair")].set_index("layer").sort_index()
    if not cos.empty:
        low = int(cos["value"].drop(index=0, errors="ignore").idxmin())
        row = cos.loc[low]
        out.append(Finding(
            "cosine_agrees", f"min {_ci(row['value'], row['ci_low'], row['ci_high'])} at layer {low}",
            agrees=_depth(low, L) > MIDDLE[1],
            note="lowest in the last 20 %" if _depth(low, L) > MIDDLE[1] else "lowest before the last 20 %",
            value=float(row["value"]),
        ))
    if halves is not None:
        cka_a, cka_b = (_series(h, "cka", "pair") for h in halves)
        diff = float((cka_a - cka_b).abs().max())
        total = float(1.0 - cka.loc[L])
        out.append(Finding(
            "seed_robust", f"max |ΔCKA| between two disjoint halves {_fmt(diff)} vs 1 − CKA_L = {_fmt(total)}",
            agrees=bool(diff < total / 3),
            note="robust if the halves differ by less than a third of the final drop; independent texts, "
                 "not identical re-runs (the authors' check)",
            value=diff,
        ))
    return out


CONVERGENCE_METRICS: tuple[str, ...] = (
    "prompt_entropy", "dataset_entropy", "effective_rank", "rank_deficiency", "condition_number", "spectral_norm",
    "curvature", "sparsity",
)


def _finite(s: pd.Series) -> pd.Series:
    return s[np.isfinite(s.to_numpy(float))]


def convergence_findings(frame: pd.DataFrame) -> list[Finding]:
    """Fig. 2 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Returns:
        Findings for ``synchronised``, ``three_stages``, ``erank_peak``, ``cond_trough``,
        ``erank_collapse`` and ``spectral_norm_500``.
    """
    L = _n_layers(frame)
    metrics = [m for m in CONVERGENCE_METRICS if not _series(frame, m, "base").empty]
    rs, first_step, final_gt = {}, 0, 0
    for m in metrics:
        b, s = _finite(_series(frame, m, "base")), _finite(_series(frame, m, "sft"))
        both = pd.concat([b, s], axis=1, join="inner").dropna()
        if m in ("condition_number", "spectral_norm"):
            both = np.log(both.clip(lower=1e-300))
        if len(both) >= 3 and both.iloc[:, 0].std() > 0 and both.iloc[:, 1].std() > 0:
            rs[m] = float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1])
        v = both.iloc[:, 0] if len(both) else b
        rng = float(v.max() - v.min())
        if rng <= 0 or len(v) < 4:
            continue
        step = (v.diff().abs() / rng).dropna()
        first_step += int(step.idxmax() == 1)
        mid = step[[MIDDLE[0] < _depth(l_, L) <= MIDDLE[1] for l_ in step.index]]
        fin = step[[_depth(l_, L) > MIDDLE[1] for l_ in step.index]]
        final_gt += int(len(fin) > 0 and len(mid) > 0 and fin.mean() > mid.mean())
    n = len(metrics)
    med = float(np.median(list(rs.values()))) if rs else float("nan")
    lowest = min(rs, key=rs.get) if rs else "—"
    out = [Finding(
        "synchronised", f"median r(Base, SFT) = {_fmt(med, 2)} over {len(rs)} metrics (lowest: {lowest}, "
        f"{_fmt(rs.get(lowest), 2)})", agrees=bool(med > 0.9) if rs else None,
        note="Pearson r over layers; log scale for σ_max and condition number", value=med,
    ), Finding(
        "three_stages", f"largest Base step at 0 → 1 for {first_step}/{n} metrics; final steps > middle steps "
        f"for {final_gt}/{n}", agrees=bool(first_step > n / 2 and final_gt > n / 2),
        note="both must hold for a majority of metrics", value=float(first_step) / max(n, 1),
    )]
    erank = _finite(_series(frame, "effective_rank", "sft").drop(index=0, errors="ignore"))
    if not erank.empty:
        peak = int(erank.idxmax())
        out.append(Finding(
            "erank_peak", f"peak {_fmt(erank.max())} at layer {peak} (depth {_depth(peak, L):.2f})",
            agrees=MIDDLE[0] <= _depth(peak, L) <= MIDDLE[1], note="layers ≥ 1; the middle is 20–80 % depth",
            value=float(erank.max()),
        ))
        share = float(erank.loc[L] / erank.max())
        out.append(Finding(
            "erank_collapse", f"{_fmt(erank.loc[L])} at layer {L} ({share:.0%} of the peak)",
            agrees=bool(share < 0.5 and peak != L), note="collapse = below half of the peak", value=float(erank.loc[L]),
        ))
    cond = _finite(_series(frame, "condition_number", "sft").drop(index=0, errors="ignore"))
    if not cond.empty:
        trough = int(cond.idxmin())
        out.append(Finding(
            "cond_trough", f"min {_fmt(cond.min())} at layer {trough} (depth {_depth(trough, L):.2f})",
            agrees=None, note="the paper's trough value was lost", value=float(cond.min()),
        ))
    sn = _finite(_series(frame, "spectral_norm", "sft"))
    if not sn.empty:
        top = int(sn.idxmax())
        n_rows = frame.loc[frame["metric"] == "spectral_norm", "n"]
        n_pooled = int(n_rows.max()) if len(n_rows) else 0
        late = _depth(top, L) > MIDDLE[1]
        out.append(Finding(
            "spectral_norm_500", f"max {_fmt(sn.max())} at layer {top} (N = {n_pooled})",
            agrees=bool(late),
            note=("largest in the last 20 %" if late else f"largest at depth {_depth(top, L):.2f}")
            + "; its scale grows with N and the model's width, so 500 is not comparable",
            value=float(sn.max()),
        ))
    return out


def probing_findings(lens: pd.DataFrame, *, model: str = "sft") -> list[Finding]:
    """Fig. 3 counterparts from concatenated :func:`mbt.probe.logit_lens` tables.

    Args:
        lens: Logit-lens tables with a ``model`` column and the library's ``paper`` column, metric
            ``top1_acc``; the token-weighted ``pooled`` value is the authors' number.
        model: Which model's curve to compare (the paper does not say; SFT by default).

    Returns:
        Findings for ``probe_early``, ``probe_rise`` and ``probe_final_dip``.
    """
    sel = lens[(lens["metric"] == "top1_acc") & (lens["model"] == model)]
    once = sel[~sel["paper"].astype(bool)].set_index("layer")["pooled"].sort_index()
    twice = sel[sel["paper"].astype(bool)].set_index("layer")["pooled"].sort_index()
    L = _n_layers(sel)
    early = once[[_depth(l_, L) <= 50 / 64 for l_ in once.index]]
    peak = float(once.max())
    half = next((int(l_) for l_, v in once.items() if v >= peak / 2), L)
    out = [
        Finding("probe_early", f"max {_fmt(early.max())} for depth ≤ 0.78 (peak {_fmt(peak)})",
                agrees=bool(early.max() < peak / 2), note="low = below half of the peak", value=float(early.max())),
        Finding("probe_rise", f"peak {_fmt(peak)}; half of it first reached at depth {_depth(half, L):.2f}",
                agrees=bool(_depth(half, L) >= 0.7), note="rise in the last 30 % of depth; a 0.60 level depends on "
                "the model and task", value=peak),
    ]
    if L - 1 in once.index and L in once.index:
        a, b = float(once.loc[L - 1]), float(once.loc[L])
        c = float(twice.loc[L]) if L in twice.index else float("nan")
        note = ("the dip appears only with the final norm applied twice" if c < a <= b
                else "a dip with the correct single norm too" if b < a
                else "no dip with either lens")
        out.append(Finding(
            "probe_final_dip", f"{_fmt(a)} → {_fmt(b)} (single norm); → {_fmt(c)} (norm twice)",
            agrees=bool(b < a), note=note, value=b - a,
        ))
    return out


def weights_findings(checkpoint: pd.Series, finetune: pd.Series | None = None) -> list[Finding]:
    """Fig. 4 counterparts.

    Args:
        checkpoint: Relative Eq. 1 change per block from the checkpoints
            (``block_series(weight_change(pair), kind="eq1", column="relative")``).
        finetune: The own-fine-tune mean ‖Δθ‖_F per block (``kind="block_mean"``), the authors' Fig. 4
            quantity; omitted when ``None``.

    Returns:
        Findings for ``weight_j`` and, with ``finetune``, ``weight_final``.
    """
    s = checkpoint.sort_index().astype(float)
    L = int(s.index.max())
    early = float(s[[_depth(b, L) <= 0.5 for b in s.index]].mean())
    last = float(s.loc[L])
    top = int(s.idxmax())
    out = [Finding(
        "weight_j", f"early mean {_fmt(early)}, last block {_fmt(last)} (×{last / early:.2f}); max at block {top}",
        agrees=bool(top == L and last > 1.2 * early),
        note="J = the last block changes most, clearly above the early blocks", value=last,
    )]
    if finetune is not None:
        f = finetune.sort_index().astype(float)
        out.append(Finding(
            "weight_final", f"{_fmt(f.loc[f.index.max()])} (max at block {int(f.idxmax())})",
            agrees=None, note="scale set by learning rate and steps, not comparable across set-ups",
            value=float(f.loc[f.index.max()]),
        ))
    return out


def correlation_findings(corr: pd.DataFrame, *, cosine: str = "cosine_similarity",
                         spectral: str = "spectral_norm") -> list[Finding]:
    """Fig. 5 counterparts from a :func:`mbt.correlate.layer_correlations` table (weight change as ``x``).

    Returns:
        Findings for ``corr_cosine`` and ``corr_spectral``; each states the raw Pearson r and the
        partial r given depth, and whether the sign survives the depth control.
    """
    out = []
    for hid, metric, sign in (("corr_cosine", cosine, -1), ("corr_spectral", spectral, 1)):
        rows = corr[corr["metric"] == metric].set_index("method")
        if rows.empty or "pearson" not in rows.index:
            continue
        r, p = float(rows.loc["pearson", "r"]), float(rows.loc["pearson", "p"])
        pr = float(rows.loc["partial_pearson", "r"]) if "partial_pearson" in rows.index else float("nan")
        pp = float(rows.loc["partial_pearson", "p"]) if "partial_pearson" in rows.index else float("nan")
        survives = bool(np.sign(pr) == sign and pp < 0.05)
        out.append(Finding(
            hid, f"r = {r:+.2f} (p = {_fmt(p, 3)}); partial r | depth = {pr:+.2f} (p = {_fmt(pp, 3)})",
            agrees=bool(sign * r > 0.5),
            note=("survives the depth control" if survives else "does not survive the depth control"),
            value=r,
        ))
    return out


def swap_findings(sweep: pd.DataFrame) -> list[Finding]:
    """Fig. 6 counterparts from a :func:`mbt.swap.swap_sweep` table (SFT → Base, receiver's head).

    Returns:
        Findings for ``swap_first``, ``swap_middle`` and ``swap_last``: agreement in sign with the
        paper, and whether our paired interval can resolve an effect of the paper's size.
    """
    rows = sweep[(sweep["kind"] == "swap") & (sweep["receiver"] == "base") & (sweep["head"] == "receiver")]
    rows = rows.set_index("segment").sort_index()
    if rows.empty:
        return []
    n = int(rows.index.max()) + 1
    out = []
    for hid, seg, paper in (("swap_first", 0, -0.001), ("swap_middle", n // 2, 0.003), ("swap_last", n - 1, -0.002)):
        r = rows.loc[seg]
        half = float(r["diff_ci_width"]) / 2
        if float(r["diff"]) == 0.0:
            note = "no text's score changed at all"
        else:
            note = ("same sign as the paper; " if np.sign(r["diff"]) == np.sign(paper) else "opposite sign; ") + (
                f"interval half-width {_fmt(half, 4)} "
                + ("resolves" if half < abs(paper) else "is wider than") + " an effect of the paper's size")
        out.append(Finding(
            hid, _ci(r["diff"], r["diff_ci_low"], r["diff_ci_high"], 4) + f" (n = {int(r['n'])})",
            agrees=bool(np.sign(r["diff"]) == np.sign(paper)), note=note, value=float(r["diff"]),
        ))
    return out


# ---- Mid-Block LoRA --------------------------------------------------------------------------------

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


def _mask_means(table: pd.DataFrame, column: str) -> pd.Series:
    return table.assign(mask=table["mask"].astype(str)).groupby("mask")[column].mean()


def lora_findings(table: pd.DataFrame) -> list[Finding]:
    """Fig. 7 and Appendix A/B counterparts from a LoRA sweep table (one row per mask and seed).

    Every paper mask that the sweep ran gets its score (mean over seeds, ± half the seed range); a
    middle mask "agrees" when it beats our ``11111``, an edge mask when it falls below it. Appendix A
    rows use the 3- and 10-segment single-segment masks, Appendix B the retention columns (first:
    the IFEval stand-in, second: the MT-Bench stand-in).

    Returns:
        Findings for every LoRA headline the table can answer.
    """
    cols = sweep_columns(table)
    score = cols["score"]
    if score is None:
        raise ValueError(f"the sweep table has no 'accuracy' column: {list(table.columns)}")
    t = table.assign(mask=table["mask"].astype(str))
    means = _mask_means(t, score)
    spread = t.groupby("mask")[score].agg(lambda v: (v.max() - v.min()) / 2 if len(v) > 1 else float("nan"))
    nseeds = t.groupby("mask")[score].size()
    full = means.get("11111")

    def text(m: str) -> str:
        extra = f" ± {_fmt(spread[m], 3)}" if np.isfinite(spread[m]) else ""
        return f"{_fmt(means[m], 3)}{extra} ({int(nseeds[m])} seed{'s' if nseeds[m] > 1 else ''})"

    out: list[Finding] = []
    for h in HEADLINES:
        if not h.id.startswith("lora_") or h.id in ("lora_gain", "lora_edge_gap", "lora_mistral"):
            continue
        m = h.id.rsplit("_", 1)[1]
        if m not in means.index:
            continue
        if m == "11111" or full is None:
            out.append(Finding(h.id, text(m), agrees=None, note="reference", value=float(means[m])))
            continue
        middle = m[0] == "0" and m[-1] == "0"
        ok = bool(means[m] > full) if middle else bool(means[m] < full)
        out.append(Finding(h.id, text(m), agrees=ok,
                           note=f"{'above' if means[m] > full else 'not above'} our 11111 ({_fmt(full, 3)})",
                           value=float(means[m])))
    five = [m for m in means.index if len(m) == 5 and m not in ("00000", "11111")]
    middles = [m for m in five if m[0] == "0" and m[-1] == "0"]
    edges = [m for m in ("10000", "00001") if m in means.index]
    if middles and full is not None:
        best = max(middles, key=lambda m: means[m])
        gain = float(means[best] - full)
        spreads = [v for v in (spread.get(best, np.nan), spread.get("11111", np.nan)) if np.isfinite(v)]
        if spreads:
            noise = max(spreads)
            text_ = f"{best}: {gain * 100:+.1f} points over 11111 (seed spread ±{noise * 100:.1f})"
            ok, note = gain > max(noise, 0.0), "must exceed the seed-to-seed spread"
        else:
            text_ = f"{best}: {gain * 100:+.1f} points over 11111"
            ok, note = gain > 0, "one seed per mask: the seed-to-seed spread is unknown"
        out.append(Finding("lora_gain", text_, agrees=bool(ok), note=note, value=gain))
        if edges:
            worst = min(edges, key=lambda m: means[m])
            share = float((means[best] - means[worst]) / means[best]) if means[best] > 0 else float("nan")
            out.append(Finding("lora_edge_gap", f"({best} − {worst}) / {best} = {share:.0%}",
                               agrees=bool(share > 0.2), note="relative to the best middle mask", value=share))
    for n_seg, key in ((3, "appA_3"), (10, "appA_10")):
        singles = ["".join("1" if j == i else "0" for j in range(n_seg)) for i in range(n_seg)]
        got = [m for m in singles if m in means.index]
        for i, m in enumerate(singles):
            if m in means.index:
                out.append(Finding(f"{key}_{i + 1}", text(m), agrees=None, note="different task and model",
                                   value=float(means[m])))
        if len(got) == n_seg:
            vals = [means[m] for m in singles]
            top, bottom = int(np.argmax(vals)) + 1, int(np.argmin(vals)) + 1
            if n_seg == 3:
                out.append(Finding(key + "_peak", f"best segment {top}", agrees=top == 2,
                                   note="inverted U" if top == 2 else "not an inverted U", value=float(top)))
            else:
                inner = 1 < top < n_seg
                out.append(Finding(key + "_peak", f"best segment {top}, worst {bottom}",
                                   agrees=bool(inner and bottom == n_seg),
                                   note="peak inside and worst at the output end" if inner and bottom == n_seg
                                   else "not the paper's shape", value=float(top)))
    ret = dict(RETENTION_COLUMNS)
    present = [c for c in cols["retention"]]
    for column in present:
        bench = ret[column]
        rmeans = _mask_means(t, column)
        for m in ("00000", "11111", "10000", "00001", "00110"):
            if m in rmeans.index:
                out.append(Finding(f"appB_{m}_{bench}", f"{_fmt(rmeans[m], 3)} ({column})", agrees=None,
                                   note="perplexity on a stand-in set, not comparable", value=float(rmeans[m])))
    if present:
        column = present[0]
        rmeans = _mask_means(t, column)
        tuned = [m for m in ("11111", "10000", "00001", "00110") if m in rmeans.index]
        if "00000" in rmeans.index and "00110" in tuned and len(tuned) > 1:
            closest = min(tuned, key=lambda m: abs(rmeans[m] - rmeans["00000"]))
            out.append(Finding("appB_middle_best", f"closest to Base: {closest}", agrees=closest == "00110",
                               note=f"|Δ| = {_fmt(abs(rmeans[closest] - rmeans['00000']), 3)} on {column}",
                               value=float(rmeans[closest])))
    return out


# ---- conventions side by side ------------------------------------------------------------------------


def compare_conventions(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The representation claims under several convention presets, side by side.

    Args:
        frames: ``{preset: analyze table of one dataset}``, e.g. ``{"standard": ..., "paper": ...}``.

    Returns:
        One row per claim (Fig. 1 and Fig. 2 findings), with ``claim``, per preset ``<preset>: ours``
        and ``<preset>: agrees``, and ``survives`` — the verdict is the same under every preset.
    """
    per: dict[str, dict[str, Finding]] = {}
    for name, frame in frames.items():
        found = divergence_findings(frame) + convergence_findings(frame)
        per[name] = {f.id: f for f in found}
    ids = [h.id for h in HEADLINES if any(h.id in p for p in per.values())]
    rows = []
    for hid in ids:
        row: dict[str, Any] = {"claim": _BY_ID[hid].claim}
        verdicts = []
        for name in frames:
            f = per[name].get(hid)
            row[f"{name}: ours"] = f.ours if f else "—"
            row[f"{name}: agrees"] = _mark(f.agrees if f else None)
            verdicts.append(f.agrees if f else None)
        known = [v for v in verdicts if v is not None]
        row["same verdict"] = "—" if len(known) < len(verdicts) else ("yes" if len(set(known)) == 1 else "NO")
        rows.append(row)
    return pd.DataFrame(rows)


def conventions_sentence(table: pd.DataFrame) -> str:
    """One sentence on a :func:`compare_conventions` table: which conclusions survive the change of preset."""
    judged = table[table["same verdict"] != "—"]
    flipped = judged[judged["same verdict"] == "NO"]
    if judged.empty:
        return "No claim could be judged under every preset."
    text = f"{len(judged) - len(flipped)} of {len(judged)} judged conclusions get the same verdict under every preset"
    if len(flipped):
        text += "; these change with the conventions: " + "; ".join(flipped["claim"]) + "."
    else:
        text += ": on this pair the paper's conventions do not change any conclusion, only the numbers."
    return text


# ==============================================================================================
# 1c. Recording and rendering
# ==============================================================================================

_SESSION: dict[str, dict[str, Any]] = {}


def _mark(agrees: bool | None) -> str:
    return "—" if agrees is None else ("yes" if agrees else "no")


def _records_dir() -> Path | None:
    path = os.environ.get(RECORDS_ENV)
    return Path(path) if path else None


def record(findings: Iterable[Finding], *, pair: str = "", settings: Mapping[str, Any] | None = None) -> None:
    """Keep findings for this session and, under :func:`build`, write them to the records folder.

    Args:
        findings: Findings of one chapter (or several).
        pair: Label of the pair they were computed on.
        settings: What produced them (sample sizes, datasets, conventions): stored with the records.
    """
    by_chapter: dict[str, list[Finding]] = {}
    for f in findings:
        _SESSION[f.id] = {**dataclasses.asdict(f), "pair": pair, "settings": dict(settings or {})}
        by_chapter.setdefault(chapter_of(f.id), []).append(f)
    folder = _records_dir()
    if folder is None:
        return
    from mbt.results import atomic_write

    for chapter, found in by_chapter.items():
        path = folder / f"{chapter}.json"
        data = json.loads(path.read_text()) if path.exists() else {"chapter": chapter, "findings": {}}
        data["pair"] = pair
        data["settings"] = dict(settings or {})
        for f in found:
            data["findings"][f.id] = dataclasses.asdict(f)
        blob = json.dumps(data, indent=1, default=str)
        atomic_write(path, lambda tmp, blob=blob: tmp.write_text(blob))


def read_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """All findings stored in a records folder, ``{headline id: finding dict}``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.update(data.get("findings", {}))
    return out


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sentence(findings: Sequence[Finding], pair: str) -> str:
    agree = [f for f in findings if f.agrees is True]
    differ = [f for f in findings if f.agrees is False]
    other = [f for f in findings if f.agrees is None]
    where = f" on `{pair}`" if pair else ""
    if not agree and not differ:
        return f"None of these numbers can be compared directly{where}; they are shown for scale only."
    n = len(agree) + len(differ)
    parts = [f"{len(agree)} of {n} comparable claim{'s' if n != 1 else ''} hold{'s' if n == 1 else ''}{where}"]
    if agree:
        parts[0] += ": " + "; ".join(dict.fromkeys(_BY_ID[f.id].claim for f in agree))
    if differ:
        parts.append("Not reproduced: " + "; ".join(dict.fromkeys(f"{_BY_ID[f.id].claim} — {f.note}"
                                                                   for f in differ)))
    if other:
        parts.append(f"{len(other)} more number{'s are' if len(other) != 1 else ' is'} shown for scale only")
    return ". ".join(parts) + "."


def report(findings: Sequence[Finding], *, pair: str = "", settings: Mapping[str, Any] | None = None) -> Any:
    """Record findings (see :func:`record`) and render them: a paper-vs-ours table and a computed sentence.

    Returns:
        An ``IPython.display.Markdown`` object (a notebook shows it as formatted text), or the
        Markdown string when IPython is missing.
    """
    findings = list(findings)
    record(findings, pair=pair, settings=settings)
    lines = ["| claim | paper (model) | ours | agrees? | why |", "|---|---|---|---|---|"]
    for f in findings:
        h = _BY_ID[f.id]
        lines.append(f"| {_md_cell(h.claim)} | {_md_cell(h.paper)} ({_md_cell(h.model)}) | {_md_cell(f.ours)} | "
                     f"{_mark(f.agrees)} | {_md_cell(f.note)} |")
    text = "\n".join(lines) + "\n\n" + _sentence(findings, pair)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)


def paper_vs_ours_markdown(records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The book's "Paper vs ours" table: every headline, the paper's value and ours for each recorded pair.

    Args:
        records: ``{pair label: {headline id: finding dict}}`` (see :func:`read_records`).

    Returns:
        A Markdown table (MyST) with one row per :data:`HEADLINES` entry.
    """
    pairs = list(records)
    head = ["#", "claim", "paper", "paper's model", *[f"ours: `{p}`" for p in pairs], "how ours is computed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, h in enumerate(HEADLINES, start=1):
        cells = [str(i), _md_cell(h.claim), _md_cell(h.paper), _md_cell(f"{h.model}; {h.where}")]
        for p in pairs:
            f = records[p].get(h.id)
            if f is None:
                cells.append("not run")
            else:
                verdict = {True: " ✓", False: " ✗", None: ""}[f.get("agrees")]
                cells.append(_md_cell(f"{f.get('ours', '')}{verdict}"))
        cells.append(f"[{TITLES[h.chapter]}](../notebooks/{h.chapter}.ipynb): {_md_cell(h.how)}")
        lines.append("| " + " | ".join(cells) + " |")
    legend = ("✓ the paper's claim holds on that pair, ✗ it does not, no mark: shown for scale only "
              "(the paper's number was lost, or the quantity depends on model size or set-up).")
    return "\n".join(lines) + "\n\n" + legend + "\n"


# ==============================================================================================
# 2. Chapter helpers
# ==============================================================================================


class ChapterUnavailable(RuntimeError):
    """A chapter needs a part of ``mbt`` that this installation does not have yet."""


def setup_notebook(*, quiet: bool = True) -> str:
    """First call of every chapter: the book's figure style, quiet progress bars, and the device in use.

    Applies :func:`mbt.plots.use_style`, hides tqdm's "IProgress not found" warning and the
    checkpoint-loading progress bars (they would land in the book as stderr blocks), prints the
    device and returns ``"cuda"`` when a GPU is visible, else ``"cpu"``. It does not choose a
    matplotlib backend.
    """
    from mbt import plots

    plots.use_style()
    if quiet:
        warnings.filterwarnings("ignore", message="IProgress not found")
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()  # e.g. generation-length reminders of tiny models
    device = device_name()
    if device == "cuda":
        import torch

        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"device: cuda ({names})")
    else:
        print("device: cpu (no GPU visible; the toy pair runs in minutes, real pairs need a GPU)")
    return device


def device_name() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def open_pair(pair: str = "toy", base: str | None = "", sft: str | None = "", *, device_map: str | None = "",
              **kwargs: Any) -> Any:
    """Load the chapter's pair: ``base``/``sft`` (folders or Hub ids) when both are given, else ``pair``.

    Empty strings count as "not given", so a papermill parameters cell can default them to ``""``.

    Args:
        pair: Registry name (the toy pair is built if missing).
        base: Base model folder or Hub id.
        sft: SFT model folder or Hub id.
        device_map: ``"auto"`` (or a dict) spreads each model over the visible GPUs (and CPU); empty:
            one device, the GPU when there is one.
        **kwargs: More :func:`mbt.load_pair` arguments (``max_memory=``, ``dtype=``, ``device=``, ...).
    """
    from mbt.pairs import load_pair

    kwargs.setdefault("progress", False)
    if device_map:
        kwargs["device_map"] = device_map
    if base or sft:
        if not (base and sft):
            raise ValueError("give both base= and sft= (or neither, to use pair=)")
        return load_pair(base=str(base), sft=str(sft), **kwargs)
    return load_pair(pair, **kwargs)


def analyze_datasets(pair: Any, datasets: Sequence[str], *, n_pooled: int, n_token: int, seed: int = 0,
                     conventions: str = "standard", metrics: str | Sequence[str] = "all", batch_size: int = 8,
                     max_length: int = 512, cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.analyze` on a seeded sample of each dataset, one table with a ``dataset`` column.

    Chapters that ask for the same datasets, sizes, seed and conventions share one cached result.

    Args:
        pair: The loaded pair.
        datasets: Dataset names (:data:`mbt.data.DATASETS`).
        n_pooled: Pooled samples per dataset (paper: 1,000; fewer when the split is smaller).
        n_token: Token-level samples, the first ``n_token`` of the pooled ones (paper: 100; 0 for
            pooled-only datasets).
        seed: Sampling seed.
        conventions: ``"standard"`` or ``"paper"``.
        metrics: ``"all"`` or names (see :data:`mbt.analysis.ALL_METRICS`).
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse stored results.
    """
    from mbt.analysis import analyze
    from mbt.data import load_sample

    frames = []
    for name in datasets:
        sample = load_sample(name, n_pooled=n_pooled, n_token=n_token, seed=seed)
        frame = analyze(pair, sample.texts, n_token=sample.n_token, metrics=metrics, conventions=conventions,
                        batch_size=batch_size, max_length=max_length, cache=cache, progress=False)
        frames.append(frame.assign(dataset=name))
    return pd.concat(frames, ignore_index=True)


def analyze_halves(pair: Any, dataset: str, *, n_pooled: int, seed: int = 0, conventions: str = "standard",
                   metrics: Sequence[str] = ("cka", "cosine_similarity", "mean_shift"), batch_size: int = 8,
                   max_length: int = 512, cache: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair metrics on two disjoint halves of a dataset's seeded sample (even and odd positions).

    Two independent samples of texts, unlike the authors' "seed" check, which re-ran identical forward
    passes; also valid when the split is smaller than ``n_pooled`` (then any two seeds would draw the same
    texts).
    """
    from mbt.analysis import analyze
    from mbt.data import load_sample

    texts = load_sample(dataset, n_pooled=n_pooled, n_token=0, seed=seed).texts
    if len(texts) < 8:
        raise ValueError(f"{dataset}: {len(texts)} texts are too few to split into two halves")
    return tuple(  # type: ignore[return-value]
        analyze(pair, half, n_token=0, metrics=list(metrics), conventions=conventions, batch_size=batch_size,
                max_length=max_length, cache=cache, progress=False).assign(dataset=dataset)
        for half in (texts[0::2], texts[1::2])
    )


def logit_lens_table(pair: Any, texts: Sequence[str], *, positions: str = "all", batch_size: int = 8,
                     max_length: int = 512, cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.probe.logit_lens` for Base and SFT, with the final norm once and twice (the authors' bug).

    Returns:
        The four tables stacked with a ``model`` column (``"base"``/``"sft"``); the library's ``paper``
        column tells the lens variants apart. Cached (:func:`cached`).
    """
    from mbt.data import fingerprint
    from mbt.probe import logit_lens

    settings = {"pair": pair_fingerprint(pair), "texts": fingerprint(texts), "positions": positions,
                "max_length": max_length}

    def compute() -> pd.DataFrame:
        parts = []
        for role, model in pair.models().items():
            for paper in (False, True):
                lens = logit_lens(model, texts, positions=positions, paper=paper, batch_size=batch_size,
                                  max_length=max_length, progress=False)
                parts.append(lens.assign(model=role))
        return pd.concat(parts, ignore_index=True)

    return cached("logit_lens", settings, compute, cache=cache)


def sizes(n_pooled: int, n_token: int, quick: bool) -> tuple[int, int]:
    """Sample sizes for a chapter: as given, or a smoke-test size in quick mode (≤ 32 pooled, ≤ 8 token-level)."""
    if quick:
        return min(n_pooled, 32), min(n_token, 8)
    return n_pooled, n_token


def default_datasets(pair: Any, purpose: str = "analysis") -> list[str]:
    """The datasets a chapter uses when the reader gives none.

    Args:
        pair: A :class:`~mbt.pairs.ModelPair` or :class:`~mbt.pairs.PairSpec`.
        purpose: ``"analysis"`` (Figs. 1–2: a math and a knowledge task, and plain text),
            ``"probing"`` (MMLU, as Fig. 3), ``"swapping"`` (MMLU, as Fig. 6) or ``"finetune"`` (GSM8K,
            as Figs. 4 and 7). Toy pairs use ``toy-math`` for all three: the task their SFT learned.

    Returns:
        Toy task names for the toy pairs and for pairs built by :mod:`mbt.toy` (folders with a toy
        manifest), the paper's Hub datasets otherwise.
    """
    spec = getattr(pair, "spec", pair)
    toy = getattr(spec, "family", "") == "toy" or _is_toy_folder(getattr(spec, "base", ""))
    if purpose in ("probing", "swapping"):
        # the toy SFT data are math word problems: its MMLU stand-in (toy-mc) is near chance for both models
        return ["toy-math"] if toy else ["mmlu"]
    if purpose == "finetune":
        return ["toy-math"] if toy else ["gsm8k"]
    if purpose != "analysis":
        raise ValueError(f"purpose must be 'analysis', 'probing', 'swapping' or 'finetune', got {purpose!r}")
    return ["toy-math", "toy-mc", "toy-text"] if toy else ["gsm8k", "mmlu", "wikitext"]


def _is_toy_folder(path: str) -> bool:
    manifest = Path(str(path)).parent / "manifest.json"
    try:
        return manifest.is_file() and "mbt_toy_manifest" in json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def folder_label(base: str, sft: str) -> str:
    """Label of a pair given as two folders or Hub ids.

    Two local folders in one parent folder (a toy build: ``<build>/base``, ``<build>/sft``) are named
    after the parent; anything else ``"<base name> vs <sft name>"``.
    """
    b, s = Path(str(base)), Path(str(sft))
    if b.parent == s.parent and b.parent.name and b.is_dir() and s.is_dir():
        return b.parent.name
    return f"{b.name} vs {s.name}"


def pair_label(pair: Any) -> str:
    """A short label of a loaded pair for tables (registry name, or :func:`folder_label`)."""
    spec = pair.spec
    if spec.family != "custom":
        return spec.name
    return folder_label(spec.base, spec.sft)


def pair_fingerprint(pair: Any) -> dict[str, Any]:
    """What identifies a loaded pair's weights, for cache keys (see :func:`cached`)."""
    from mbt.analysis import _model_fingerprint

    return {"name": pair.spec.name, "base": _model_fingerprint(pair.base), "sft": _model_fingerprint(pair.sft)}


def cached(kind: str, settings: Mapping[str, Any], compute: Callable[[], pd.DataFrame], *,
           cache: bool = True) -> pd.DataFrame:
    """Return a stored table for ``settings`` or compute, store and return it.

    The store is :class:`mbt.results.ResultCache` (``$MBT_CACHE/book-<kind>/``), keyed by every
    setting (include :func:`pair_fingerprint` and the texts' fingerprint), with provenance.

    Args:
        kind: Result kind, e.g. ``"logit_lens"``.
        settings: JSON-serialisable settings that fully determine the result.
        compute: Builds the table when it is not stored.
        cache: ``False`` always recomputes (and stores nothing).
    """
    if not cache:
        return compute()
    from mbt.results import ResultCache, make_key

    store = ResultCache(kind=f"book-{kind}")
    key = make_key({"kind": kind, **settings})
    hit = store.load(key)
    if hit is not None:
        return hit
    start = time.perf_counter()
    table = compute()
    store.save(key, table, {"kind": kind, **settings}, seconds=round(time.perf_counter() - start, 3))
    return table


def metric_table(frame: pd.DataFrame, *, model: str = "sft") -> pd.DataFrame:
    """Wide per-layer table of an analyze result: the pair metrics and one model's own metrics.

    Columns are plain metric names (``cka``, ``cosine_similarity``, ``mean_shift``, ``effective_rank``,
    …), the index is the layer. The input for :func:`mbt.correlate.layer_correlations`.
    """
    pair = frame[(frame["model"] == "pair") & (frame["aggregation"] == "alignment")]
    own = frame[frame["model"] == model]
    both = pd.concat([pair, own])
    return both.pivot_table(index="layer", columns="metric", values="value", sort=False)


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`ChapterUnavailable` with a message a reader can act on."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ChapterUnavailable(
            f"{module} is not available in this installation of mbt ({exc}); this chapter needs it. "
            "Update mbt or run the other chapters."
        ) from exc


PAPER_MASKS: tuple[str, ...] = ("00000", "11111", "10000", "01000", "00100", "00010", "00001", "01100", "00110",
                                 "01110")
"""The paper's 5-segment masks (Fig. 7, App. B): no adapter, full depth, each single segment, three middle blocks."""


def single_segment_masks(n_segments: int) -> list[str]:
    """The masks with exactly one segment on, input side first (Appendix A's 3- and 10-segment families)."""
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    return ["".join("1" if j == i else "0" for j in range(n_segments)) for i in range(n_segments)]


def sweep_path(pair: Any) -> Path:
    """Where a pair's LoRA sweep results live: ``$MBT_CACHE/book/sweeps/<pair>.parquet`` (one file per pair)."""
    from mbt.results import cache_root

    return cache_root() / "book" / "sweeps" / f"{_slug(pair_label(pair))}.parquet"


def run_sweep(pair: Any, *, masks: Sequence[str], seeds: Sequence[int], **options: Any) -> pd.DataFrame:
    """Run (or resume, or just read) a segment-LoRA sweep with :func:`mbt.tune.sweep`.

    The table lives in :func:`sweep_path`; :func:`mbt.tune.sweep` skips every ``(mask, seed)`` it
    already holds for the same settings, so a rebuild of the book — and chapter 7, which grades the
    selector against this sweep — costs nothing.

    Args:
        pair: The loaded pair (tuning starts from ``pair.base``).
        masks: Segment masks, e.g. ``["00000", "11111", "01100"]``.
        seeds: Seeds (data order and adapter initialisation).
        **options: More :func:`mbt.tune.sweep` arguments (``task``, ``steps``, ``rank``, ``preset``,
            ``n_train``, ``n_test``, ...).

    Raises:
        ChapterUnavailable: :mod:`mbt.tune` is missing.
    """
    tune = require("mbt.tune")
    options.setdefault("out", sweep_path(pair))
    return tune.sweep(pair, list(masks), [int(s) for s in seeds], **options)


def evidence_curves(evidence: pd.DataFrame) -> pd.DataFrame:
    """The selector's per-block evidence (:func:`mbt.select.suggest_block`) as a tidy ``(signal, layer, value)`` table.

    One curve per raw signal (``evidence.attrs["signals"]``) and the combined ``score``, indexed by
    the layer each block writes (block ``b`` → layer ``b + 1``).
    """
    names = [c for c in evidence.attrs.get("signals", []) if c in evidence.columns]
    names += [c for c in ("score",) if c in evidence.columns]
    tidy = evidence.melt(id_vars="layer", value_vars=names, var_name="signal", value_name="value")
    return tidy[["signal", "layer", "value"]]


# ==============================================================================================
# 3. Build
# ==============================================================================================


@dataclass
class ChapterRun:
    """How one chapter went in a build."""

    name: str
    status: str  # "executed", "up to date", "failed", "skipped"
    seconds: float = 0.0
    path: Path | None = None
    error: str = ""


@dataclass
class BuildReport:
    """The outcome of :func:`build`."""

    pair: str
    stage: Path
    html: Path | None
    chapters: list[ChapterRun] = field(default_factory=list)
    book_seconds: float = 0.0
    book_returncode: int | None = None

    @property
    def ok(self) -> bool:
        """No chapter failed and the book (if built) built."""
        return all(c.status != "failed" for c in self.chapters) and self.book_returncode in (None, 0)

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"{c.name:20s} {c.status:11s} {c.seconds:7.1f} s" + (f"  {c.error}" if c.error else "")
                 for c in self.chapters]
        if self.book_returncode is not None:
            state = "ok" if self.book_returncode == 0 else f"FAILED (exit {self.book_returncode})"
            lines.append(f"{'jupyter-book':20s} {state:11s} {self.book_seconds:7.1f} s")
        if self.html is not None and self.book_returncode == 0:
            lines.append(f"book: {self.html / 'index.html'}")
        return "\n".join(lines)


def find_root(start: str | Path | None = None) -> Path:
    """The book root: ``start`` (default: the working directory) or the checkout ``mbt`` runs from."""
    if start is not None:
        return Path(start).resolve()
    cwd = Path.cwd()
    if (cwd / "_config.yml").exists():
        return cwd
    here = Path(__file__).resolve().parent.parent
    return here if (here / "_config.yml").exists() else cwd


def parameter_names(notebook: Any) -> list[str]:
    """Names assigned in a notebook's cell tagged ``parameters`` (empty if it has none)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


def read_notebook(path: str | Path) -> Any:
    """Read a chapter from its jupytext source (``.py``), the source of truth, as an nbformat notebook."""
    import jupytext

    return jupytext.read(Path(path))


def _sources_digest() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _pair_identity(pair: str | None, base: str | None, sft: str | None) -> dict[str, Any]:
    """Identify the pair a build runs on without loading it (folder stats, toy settings, Hub ids)."""
    def folder(path: str) -> Any:
        p = Path(path)
        if not p.is_dir():
            return path
        return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())

    if base or sft:
        return {"base": str(base), "sft": str(sft), "files": [folder(str(base)), folder(str(sft))]}
    from mbt.pairs import get_pair

    spec = get_pair(str(pair))
    info: dict[str, Any] = dataclasses.asdict(spec)
    if spec.source == "toy":
        from mbt import toy

        variant = "seen" if spec.name == "toy-seen" else "toy"
        info["toy"] = toy.settings_hash(variant=variant)
    return info


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def stage_sources(root: Path, stage: Path) -> None:
    """Mirror the book's sources into ``stage``: ``_config.yml``, ``_toc.yml`` and ``book/`` (not its build folders).

    Unchanged files are left alone (their modification times too), so Sphinx rebuilds only what changed.
    """
    for name in ("_config.yml", "_toc.yml"):
        _copy_if_changed(root / name, stage / name)
    book = root / "book"
    for src in sorted(book.rglob("*")):
        rel = src.relative_to(book)
        if not src.is_file() or rel.parts[0].startswith(("_", ".")) or stage.resolve() in src.resolve().parents:
            continue
        _copy_if_changed(src, stage / "book" / rel)


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def records_root() -> Path:
    """Where findings of every built pair are kept: ``$MBT_CACHE/book/records`` (see :func:`mbt.results.cache_root`)."""
    from mbt.results import cache_root

    return cache_root() / "book" / "records"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def collect_records(current: str) -> dict[str, dict[str, Any]]:
    """Records of the current build's pair first, then every other pair built in full (not quick) mode."""
    root = records_root()
    out = {}
    cur = root / _slug(current)
    if cur.is_dir():
        out[current] = read_records(cur)
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            label = folder.name
            if folder == cur or label.endswith("-quick"):
                continue
            found = read_records(folder)
            if found:
                out[label] = found
    if not out:
        out[current] = {}
    return out


def conventions_markdown() -> str:
    """A table of every :class:`mbt.metrics.Conventions` field: ``standard`` value, ``paper`` value, meaning.

    Generated from the presets and the class docstring, so the methods chapter never drifts from the code.
    """
    import re

    from mbt.metrics.conventions import PRESETS, Conventions

    doc = inspect_doc(Conventions)
    meanings: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"^ {4}(\w+): (.*)$", line)
        if m:
            current = m.group(1)
            meanings[current] = m.group(2).strip()
        elif current and line.startswith(" " * 8):
            meanings[current] += " " + line.strip()
    std, pap = PRESETS["standard"], PRESETS["paper"]
    lines = ["| field | `standard` | `paper` | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Conventions):
        if f.name == "name":
            continue
        a, b = getattr(std, f.name), getattr(pap, f.name)
        flag = "" if a == b else " **≠**"
        meaning = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", meanings.get(f.name, "")).replace("``", "`")
        lines.append(f"| `{f.name}` | `{a!r}` | `{b!r}`{flag} | {_md_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def inspect_doc(obj: Any) -> str:
    """``obj``'s docstring with its indentation normalised."""
    import inspect

    return inspect.getdoc(obj) or ""


MARKERS: dict[str, str] = {
    "<!-- mbt:conventions -->": "conventions_markdown",
}
"""Lines of the prose chapters replaced, in the staged copy, by tables generated from the code."""


def fill_markers(stage: Path) -> None:
    """Replace every :data:`MARKERS` line in the staged ``book/*.md`` with its generated table."""
    for page in sorted((stage / "book").glob("*.md")):
        text = page.read_text()
        new = text
        for marker, fn in MARKERS.items():
            if marker in new:
                new = new.replace(marker, globals()[fn]())
        if new != text:
            page.write_text(new)


def write_paper_vs_ours(stage: Path, current: str) -> Path:
    """Replace :data:`TABLE_MARKER` in the staged ``book/paper_vs_ours.md`` with the generated table."""
    page = stage / "book" / "paper_vs_ours.md"
    text = page.read_text()
    table = paper_vs_ours_markdown(collect_records(current))
    if TABLE_MARKER not in text:
        raise ValueError(f"{page} has no line {TABLE_MARKER!r} to replace with the table")
    new = text.replace(TABLE_MARKER, table)
    if not page.exists() or page.read_text() != new:
        page.write_text(new)
    return page


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else "jupyter-book"


def build(
    pair: str | None = "toy",
    *,
    base: str | None = None,
    sft: str | None = None,
    quick: bool = False,
    root: str | Path | None = None,
    stage: str | Path | None = None,
    output: str | Path | None = None,
    chapters: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    execute: bool = True,
    force: bool = False,
    html: bool = True,
    strict: bool = False,
    kernel_name: str = "python3",
    timeout: int | None = None,
    log: Callable[[str], None] = print,
) -> BuildReport:
    """Execute every chapter for a pair with papermill, then build the Jupyter Book.

    Steps: check the pair and the book root; build the toy pair if it is the chosen pair and
    missing (:func:`mbt.toy.build`); mirror the prose sources into ``stage``; execute each chapter's
    jupytext source with papermill in a **fresh kernel, in order**, into
    ``stage/notebooks/<chapter>.ipynb`` (skipping a chapter whose source, parameters, ``mbt`` code
    and pair are unchanged since its last successful run, unless ``force``); generate the "Paper vs
    ours" table from the recorded findings; run ``jupyter-book build stage --path-output output``.

    Args:
        pair: Registry name (``mbt pairs``); ignored when ``base`` and ``sft`` are given.
        base: Base model folder or Hub id (with ``sft``).
        sft: SFT model folder or Hub id.
        quick: Pass ``quick=True`` to every chapter (a smoke run: tiny samples, seconds each).
        root: Book root with ``_config.yml``, ``_toc.yml``, ``book/`` and ``notebooks/`` (default:
            the working directory, else the checkout ``mbt`` is installed from).
        stage: Staging folder (default ``<root>/book/_executed``, git-ignored).
        output: Folder that receives ``_build/html`` (default: ``root``).
        chapters: Subset of :data:`CHAPTERS` to execute (the others are left as they are).
        parameters: Extra notebook parameters (each passed only to chapters that declare it).
        execute: ``False`` skips execution (rebuild the HTML from the staged notebooks).
        force: Execute every chapter even if it is up to date.
        html: Run Jupyter Book after executing.
        strict: Treat Sphinx warnings as errors (``-W --keep-going``).
        kernel_name: Jupyter kernel for the chapters.
        timeout: Per-cell timeout in seconds (``None`` = none).
        log: Progress messages.

    Returns:
        A :class:`BuildReport` (``report.ok``; per-chapter status and seconds; the HTML folder).

    Raises:
        ValueError: Unknown pair or chapter, or only one of ``base``/``sft``.
        FileNotFoundError: ``root`` has no ``_config.yml``.
    """
    from mbt.pairs import get_pair

    if bool(base) != bool(sft):
        raise ValueError("give both --base and --sft (or neither, to use --pair)")
    if not base:
        spec = get_pair(str(pair))  # refuse an unknown name before anything else
        label = spec.name
    else:
        spec = None
        label = folder_label(str(base), str(sft))
    root = find_root(root)
    if not (root / "_config.yml").exists():
        raise FileNotFoundError(f"{root} has no _config.yml (run from the repository root or pass --root)")
    wanted = list(CHAPTERS if chapters is None else chapters)
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; valid: {', '.join(CHAPTERS)}")
    stage = Path(stage) if stage is not None else root / "book" / "_executed"
    output = Path(output) if output is not None else root
    stage.mkdir(parents=True, exist_ok=True)
    report_ = BuildReport(pair=label, stage=stage, html=output / "_build" / "html" if html else None)

    if execute and spec is not None and spec.source == "toy":
        from mbt import toy

        log(f"toy pair: {toy.build(variant='seen' if spec.name == 'toy-seen' else 'toy', progress=True)}")
    stage_sources(root, stage)
    (stage / "notebooks").mkdir(exist_ok=True)
    slug = _slug(label) + ("-quick" if quick else "")
    records = records_root() / slug
    stamps_path = stage / ".mbt-stamps.json"
    stamps = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
    common = {"pair": str(pair or ""), "base": str(base or ""), "sft": str(sft or ""), "quick": bool(quick)}
    identity = _pair_identity(None if base else pair, base, sft)
    digest = _sources_digest()
    extra = dict(parameters or {})
    declared_anywhere: set[str] = set()

    failed = False
    for name in CHAPTERS:
        out = stage / "notebooks" / f"{name}.ipynb"
        if name not in wanted or not execute:
            report_.chapters.append(ChapterRun(name, "skipped", path=out if out.exists() else None))
            continue
        if failed:
            report_.chapters.append(ChapterRun(name, "skipped"))
            continue
        source = root / "notebooks" / f"{name}.py"
        nb = read_notebook(source)
        declared = set(parameter_names(nb))
        declared_anywhere |= declared
        params = {k: v for k, v in {**common, **extra}.items() if k in declared}
        key = hashlib.sha256(json.dumps({"source": source.read_text(), "params": params, "mbt": digest,
                                         "pair": identity, "records": str(records)}, sort_keys=True,
                                        default=str).encode()).hexdigest()
        if not force and stamps.get(name) == key and out.exists():
            report_.chapters.append(ChapterRun(name, "up to date", path=out))
            log(f"{name}: up to date")
            continue
        nb.metadata.pop("jupytext", None)
        nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
        (records / f"{name}.json").unlink(missing_ok=True)
        log(f"{name}: executing ({', '.join(f'{k}={v!r}' for k, v in params.items())})")
        start = time.perf_counter()
        try:
            _execute(nb, out, params, kernel_name=kernel_name, cwd=stage / "notebooks", timeout=timeout,
                     records=records)
        except Exception as exc:  # papermill raises its own execution error types
            seconds = time.perf_counter() - start
            report_.chapters.append(ChapterRun(name, "failed", seconds, out, _short_error(exc)))
            log(f"{name}: FAILED after {seconds:.1f} s — see {out}")
            stamps.pop(name, None)
            failed = True
            continue
        seconds = time.perf_counter() - start
        stamps[name] = key
        stamps_path.write_text(json.dumps(stamps, indent=1))
        report_.chapters.append(ChapterRun(name, "executed", seconds, out))
        log(f"{name}: done in {seconds:.1f} s")
    unused = sorted(set(extra) - declared_anywhere)
    if unused and execute:
        warnings.warn(f"parameters {unused} are not declared by any executed chapter", stacklevel=2)
    stamps_path.write_text(json.dumps(stamps, indent=1))
    write_paper_vs_ours(stage, label if not quick else label + "-quick")
    fill_markers(stage)
    if html and not failed:
        missing = [n for n in CHAPTERS if not (stage / "notebooks" / f"{n}.ipynb").exists()]
        if missing:
            raise FileNotFoundError(f"chapters never executed: {missing}; run without --only/--no-execute first")
        cmd = [_jupyter_book(), "build", str(stage), "--path-output", str(output)]
        if strict:
            cmd += ["-W", "-n", "--keep-going"]
        start = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        report_.book_returncode = subprocess.call(cmd, env=env)
        report_.book_seconds = time.perf_counter() - start
    return report_


def _short_error(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return f"{name}: {value[0] if value else ''}"[:300]


@functools.cache
def _kernel_manager() -> type | None:
    """A kernel manager that talks to the kernel over local IPC sockets where the OS has them.

    Nothing then listens on a TCP port, and ipykernel (≥ 7.3) no longer prints its warning about
    unencrypted TCP once per chapter. ``None`` (nbclient's default, TCP) on Windows.
    """
    if os.name == "nt":
        return None
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    return IPCKernelManager


def _execute(nb: Any, out: Path, params: Mapping[str, Any], *, kernel_name: str, cwd: Path, timeout: int | None,
             records: Path) -> None:
    import papermill

    records.mkdir(parents=True, exist_ok=True)
    # the kernel inherits this environment: never Agg (figures would vanish), records folder for report(),
    # and the OpenMP wait policy that suits how busy the CPUs are now (mbt.cpu; scheduling only)
    omp = cpu.wait_policy(os.cpu_count() or 1)
    with _environment(MPLBACKEND=None, OMP_WAIT_POLICY=omp, **{RECORDS_ENV: str(records)}), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        papermill.execute_notebook(
            nb, str(out), parameters=dict(params), kernel_name=kernel_name, cwd=str(cwd), progress_bar=False,
            log_output=False, request_save_on_cell_execute=False, execution_timeout=timeout,
            **({"kernel_manager_class": manager} if (manager := _kernel_manager()) else {}),
        )
