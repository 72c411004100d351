"""Constructed analyze tables and the repository root, shared by the findings, render and book tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mbt import paper

L = 10

def _frame(cka, shift=None, cos=None, *, base=None, sft=None, ci=0.01) -> pd.DataFrame:
    """A tidy analyze-like table of one dataset from per-layer lists (``shift`` is the relative mean shift).

    Pair metrics get per-layer intervals ``± ci`` (``ci=None``: none), like bootstrap intervals over texts.
    """
    n_layers = len(cka) - 1
    rows = []
    half = np.nan if ci is None else ci
    for layer in range(n_layers + 1):
        d = layer / n_layers
        for metric, values, h in (("cka", cka, half), ("relative_mean_shift", shift, half / 2),
                                  ("mean_shift", None if shift is None else [100 * v for v in shift], np.nan),
                                  ("cosine_similarity", cos, half)):
            if values is not None:
                rows.append(dict(model="pair", layer=layer, depth=d, metric=metric, value=values[layer],
                                 ci_low=values[layer] - h, ci_high=values[layer] + h, n=100,
                                 aggregation="alignment"))
        for model, curves in (("base", base or {}), ("sft", sft or {})):
            for metric, values in curves.items():
                rows.append(dict(model=model, layer=layer, depth=d, metric=metric, value=values[layer],
                                 ci_low=np.nan, ci_high=np.nan, n=100, aggregation="dataset"))
    return pd.DataFrame(rows)

PAPER_LIKE_CKA = [1.0, 0.97, 0.96, 0.96, 0.955, 0.96, 0.955, 0.95, 0.95, 0.85, 0.6]

EARLY_DROP_CKA = [1.0, 0.7, 0.6, 0.62, 0.63, 0.64, 0.66, 0.68, 0.7, 0.72, 0.75]

HOLDS, CONTRADICTED, INCONCLUSIVE = paper.Verdict.HOLDS, paper.Verdict.CONTRADICTED, paper.Verdict.INCONCLUSIVE

def _by_id(findings):
    return {f.id: f for f in findings}


def _lens(final_once: float, final_twice: float, penultimate: float = 0.6, ci: float = 0.005) -> pd.DataFrame:
    rows = []
    for paper_ in (False, True):
        for layer in range(1, L + 1):
            acc = 0.0 if layer < 8 else {8: 0.3, 9: penultimate, 10: final_twice if paper_ else final_once}[layer]
            rows.append(dict(model="sft", paper=paper_, layer=layer, depth=layer / L, metric="top1_acc", value=acc,
                             pooled=acc, pooled_ci_low=acc - ci, pooled_ci_high=acc + ci))
    return pd.DataFrame(rows)


def _swap(diffs, width=0.004):
    rows = [dict(kind="swap", receiver="base", head="receiver", segment=i, diff=d, diff_ci_low=d - width / 2,
                 diff_ci_high=d + width / 2, diff_ci_width=width, n=50) for i, d in enumerate(diffs)]
    rows.append(dict(kind="swap", receiver="base", head="donor", segment=0, diff=1.0, diff_ci_low=0.9,
                     diff_ci_high=1.1, diff_ci_width=0.2, n=50))
    return pd.DataFrame(rows)


def _sweep_table(scores: dict[str, float], seeds=(0, 1, 2), retention=True, noise=0.005) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for mask, score in scores.items():
        for s in seeds:
            acc = score + rng.normal(0, noise)
            row = dict(mask=mask, seed=s, accuracy=acc, accuracy_ci_low=acc - 0.05, accuracy_ci_high=acc + 0.05,
                       answer_nll=1 - acc)
            if retention:
                row.update(ppl_instruct=10 + abs(score - 0.3) * (mask != "00000") + rng.normal(0, 0.001),
                           ppl_text=20 + score * (mask != "00000"))
            rows.append(row)
    return pd.DataFrame(rows)


def _knowledge(n: int = 40, n_segments: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 10's two tables: per-problem exact match of Base and SFT in three formats, and swaps by format."""
    rng = np.random.default_rng(0)
    p = {("base", "own"): 0.3, ("sft", "own"): 0.1, ("base", "arithmetic"): 0.5, ("sft", "arithmetic"): 0.6,
         ("base", "qa"): 0.0, ("sft", "qa"): 0.7}
    per_item = pd.DataFrame([dict(model=m, format=f, item=i, correct=float(rng.random() < q))
                             for (m, f), q in p.items() for i in range(n)])
    rows = []
    for receiver in ("base", "sft"):
        for seg in range(n_segments):
            scores = tuple(float(x) for x in rng.random(n) < 0.3)
            rows.append(dict(score_name="format", receiver=receiver, kind="swap", head="receiver", segment=seg,
                             diff=float(np.mean(scores)), scores=scores))
    return per_item, pd.DataFrame(rows)
