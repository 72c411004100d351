"""Layer-wise representation metrics: pure tensor functions, no model code.

Three families, each computed in float64 on the input's device:

* spectra (:mod:`mbt.metrics.spectra`): :func:`matrix_entropy`, :func:`prompt_entropy`,
  :func:`dataset_entropy`, :func:`effective_rank`, :func:`rank_deficiency`, :func:`condition_number`,
  :func:`spectral_norm`, and the helpers :func:`gram_eigenvalues` / :func:`singular_values`;
* geometry (:mod:`mbt.metrics.geometry`): :func:`sparsity`, :func:`curvature` (token-level, masked);
* similarity (:mod:`mbt.metrics.similarity`): :func:`cka`, :func:`cosine_similarity`,
  :func:`mean_shift` (Base vs SFT, paired rows);
* :func:`token_metrics` (:mod:`mbt.metrics.tokens`): several token-level metrics of the same states,
  validated once;
* the registry (:mod:`mbt.metrics.registry`): every metric's name, level, function, label and scale, read
  by everything that handles metrics by name (:data:`METRICS`, :func:`metric`).

Token-level functions take ``H`` of shape ``(N, T, D)`` and a mask ``(N, T)`` and return ``(N,)``
float64 tensors; padded positions never enter a value. Matrix functions take ``X`` of shape ``(N, D)``
and return Python floats. Every function accepts ``conventions="standard"`` (textbook) or ``"paper"``
(the authors' released code), or a :class:`Conventions`, plus keyword overrides of single fields.
"""

from __future__ import annotations

from mbt.metrics import registry
from mbt.metrics.conventions import CONVENTION_PRESETS, Conventions, resolve_conventions
from mbt.metrics.geometry import curvature, sparsity
from mbt.metrics.registry import METRICS, Metric, metric
from mbt.metrics.similarity import cka, cosine_similarity, mean_shift
from mbt.metrics.spectra import (
    condition_number,
    dataset_entropy,
    effective_rank,
    gram_eigenvalues,
    matrix_entropy,
    prompt_entropy,
    rank_deficiency,
    singular_values,
    spectral_norm,
    spectral_summary,
)
from mbt.metrics.tokens import TOKEN_LEVEL, token_metrics

__all__ = [
    "INTRINSIC_METRICS",
    "METRICS",
    "CONVENTION_PRESETS",
    "TOKEN_LEVEL",
    "Conventions",
    "Metric",
    "cka",
    "condition_number",
    "cosine_similarity",
    "curvature",
    "dataset_entropy",
    "effective_rank",
    "gram_eigenvalues",
    "matrix_entropy",
    "mean_shift",
    "metric",
    "prompt_entropy",
    "rank_deficiency",
    "resolve_conventions",
    "singular_values",
    "sparsity",
    "spectral_norm",
    "spectral_summary",
    "token_metrics",
]

INTRINSIC_METRICS: tuple[str, ...] = registry.names(intrinsic=True)
"""Each model's own (intrinsic) metrics, in the order of the paper's Fig. 2 (from the registry)."""
