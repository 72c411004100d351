"""Constructed analyze tables and the repository root, shared by the findings, render and book tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mbt import paper

L = 10

def _frame(cka, shift=None, cos=None, *, base=None, sft=None, ci=0.01, n_boot=400, seed=0) -> pd.DataFrame:
    """A tidy analyze-like table of one dataset from per-layer lists (``shift`` is the relative mean shift).

    Every row gets ``n_boot`` joint bootstrap replicates like :func:`mbt.analyze`'s: the value plus a text
    effect shared by every layer and model of a replicate and a smaller layer-specific part, scaled so that
    pair metrics have 95 % intervals of about ``± ci`` (``ci=None``: no replicates and no intervals), positive
    metrics multiplicatively. Model metrics (``base``/``sft`` curves) get relative noise of ``ci / 4``.
    """
    n_layers = len(cka) - 1
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=n_boot)  # the resampled texts' common effect on every row of a replicate
    rows = []

    def reps(value: float, sd: float, positive: bool) -> np.ndarray:
        if ci is None or n_boot == 0:
            return np.empty(0)
        noise = sd * (0.8 * shared + 0.6 * rng.normal(size=n_boot))
        return value * np.exp(noise / max(abs(value), 1e-12)) if positive and value > 0 else value + noise

    def add(model: str, layer: int, metric: str, value: float, sd: float, positive: bool, agg: str) -> None:
        r = reps(value, sd, positive)
        low, high = np.quantile(r, [0.025, 0.975]) if r.size else (np.nan, np.nan)
        rows.append(dict(model=model, layer=layer, depth=layer / n_layers, metric=metric, value=value, ci_low=low,
                         ci_high=high, n=100, aggregation=agg, replicates=r))

    sd = 0.0 if ci is None else ci / 1.96
    for layer in range(n_layers + 1):
        for metric, values, scale, positive in (("cka", cka, sd, False), ("relative_mean_shift", shift, sd / 2, True),
                                                ("mean_shift", None if shift is None else [100 * v for v in shift],
                                                 50 * sd, True), ("cosine_similarity", cos, sd, False)):
            if values is not None:
                add("pair", layer, metric, values[layer], scale, positive, "alignment")
        for model, curves in (("base", base or {}), ("sft", sft or {})):
            for metric, values in curves.items():
                add(model, layer, metric, values[layer], abs(values[layer]) * sd / 4, values[layer] > 0, "dataset")
    return pd.DataFrame(rows)


PAPER_LIKE_CKA = [1.0, 0.97, 0.96, 0.96, 0.955, 0.96, 0.955, 0.95, 0.95, 0.85, 0.6]

EARLY_DROP_CKA = [1.0, 0.7, 0.6, 0.62, 0.63, 0.64, 0.66, 0.68, 0.7, 0.72, 0.75]

HOLDS, CONTRADICTED, INCONCLUSIVE = paper.Verdict.HOLDS, paper.Verdict.CONTRADICTED, paper.Verdict.INCONCLUSIVE

def _by_id(findings):
    """Findings by every headline id they stand for (a row standing for two claims is found under both)."""
    return {hid: f for f in findings for hid in f.ids}


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


def _sweep_table(scores: dict[str, float], seeds=(0, 1, 2), retention=True, noise=0.005,
                 problems: int = 0) -> pd.DataFrame:
    """One row per mask and seed; with ``problems`` also per-problem 0/1 scores (column ``accuracy_items``):
    problem j is solved when its difficulty ``u_j`` (shared by every run) is below the run's accuracy."""
    rng = np.random.default_rng(0)
    difficulty = np.sort(rng.uniform(size=problems))[rng.permutation(problems)]
    rows = []
    for mask, score in scores.items():
        for s in seeds:
            acc = score + rng.normal(0, noise)
            row = dict(mask=mask, seed=s, accuracy=acc, accuracy_ci_low=acc - 0.05, accuracy_ci_high=acc + 0.05,
                       answer_nll=1 - acc)
            if problems:
                solved = (difficulty < acc) ^ (rng.uniform(size=problems) < 0.05)  # a few flips per run
                row.update(accuracy=float(solved.mean()), accuracy_items="".join("01"[int(x)] for x in solved))
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
