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
