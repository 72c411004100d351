r"""The one metric registry: every layer-wise metric's name, level, function, label, scale and meaning.

Everything that handles metrics by name reads this table: :func:`mbt.analyze` (which metrics exist at
which level and how each is computed), :func:`~mbt.metrics.token_metrics` (the token-level kernels),
:mod:`mbt.plots` (axis labels, log axes), the findings of :mod:`mbt.paper` (which metrics are compared on a
log scale, which are each model's own) and chapter 2 (the intrinsic metrics, in the paper's Fig. 2 order).
Adding a metric is one entry here plus its formula and oracle tests (CONTRIBUTING.md, "Add a metric").

Levels:

* ``token`` — per text from its real-token matrix ``H_i (n_i, D)``; ``compute(H (N, T, D), mask (N, T),
  conventions=…) -> (N,)`` and ``kernel(H64, mask, conv) -> (N,)`` on input validated once
  (:func:`~mbt.metrics.token_metrics`);
* ``pooled`` — one number per model and layer from the pooled matrix ``X (N, D)``:
  ``compute(X, conventions=…) -> float``; ``spectral`` ones share one singular spectrum
  (:func:`~mbt.metrics.spectral_summary`);
* ``pair`` — Base against SFT on the same texts: ``compute(X, Y, conventions=…)`` returns a float (a
  dataset-level number) or an ``(N,)`` tensor (one value per text, e.g. cosine similarity);
* ``lens`` — logit-lens quantities computed by :func:`mbt.probe.logit_lens` (label and scale only here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mbt.metrics.geometry import _curvature, _sparsity, curvature, sparsity
from mbt.metrics.similarity import cka, cosine_similarity, mean_shift
from mbt.metrics.spectra import (
    _token_entropies,
    condition_number,
    dataset_entropy,
    effective_rank,
    prompt_entropy,
    rank_deficiency,
    spectral_norm,
)

__all__ = ["LEVELS", "METRICS", "Metric", "is_log_scale", "label", "metric", "names"]

LEVELS: tuple[str, ...] = ("token", "pooled", "pair", "lens")
"""Where a metric's value comes from (see the module docstring)."""


@dataclass(frozen=True)
class Metric:
    """One layer-wise metric.

    Attributes:
        name: Stable key, as it appears in the ``metric`` column of every table.
        level: One of :data:`LEVELS`.
        label: Axis and table label (units or formula where it helps).
        compute: The public function (``None`` for ``lens`` metrics, computed by :mod:`mbt.probe`).
        kernel: ``token`` level only: the computation on validated float64 input ``(H64, mask, conv)``.
        log_scale: Positive quantity spanning orders of magnitude: plotted on a log axis and compared on a
            log scale by the findings.
        intrinsic: Each model's own metric, drawn per model in chapter 2 (the paper's Fig. 2).
        alike: For ``pair`` metrics: ``+1`` when a larger value means Base and SFT are more alike (CKA,
            cosine), ``−1`` when it means they differ more (mean shift); ``0`` otherwise.
        spectral: ``pooled`` level only: computed from the shared singular spectrum.
        min_rows: Fewest texts on which the metric is defined (a table shows NaN below it).
    """

    name: str
    level: str
    label: str
    compute: Callable[..., Any] | None = None
    kernel: Callable[..., Any] | None = None
    log_scale: bool = False
    intrinsic: bool = False
    alike: int = 0
    spectral: bool = False
    min_rows: int = 2

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"metric {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        if not self.label.strip():
            raise ValueError(f"metric {self.name!r} needs a label")
        if self.level != "lens" and self.compute is None:
            raise ValueError(f"metric {self.name!r} ({self.level}) needs a compute function")
        if self.level == "token" and self.kernel is None:
            raise ValueError(f"token-level metric {self.name!r} needs a kernel on validated input")
        if self.alike not in (-1, 0, 1):
            raise ValueError(f"metric {self.name!r}: alike must be -1, 0 or +1, got {self.alike}")


def _entry(name: str, level: str, label: str, compute: Callable[..., Any] | None = None, **kw: Any) -> Metric:
    return Metric(name, level, label, compute, **kw)


_ALL: tuple[Metric, ...] = (
    # each model's own metrics, in the order of the paper's Fig. 2
    _entry("prompt_entropy", "token", "prompt entropy", prompt_entropy, kernel=_token_entropies, intrinsic=True),
    _entry("dataset_entropy", "pooled", "dataset entropy", dataset_entropy, intrinsic=True),
    _entry("effective_rank", "pooled", "effective rank", effective_rank, intrinsic=True, spectral=True),
    _entry("rank_deficiency", "pooled", "rank deficiency", rank_deficiency, intrinsic=True, spectral=True),
    _entry("condition_number", "pooled", "condition number", condition_number, log_scale=True, intrinsic=True,
           spectral=True),
    _entry("spectral_norm", "pooled", "spectral norm σ_max", spectral_norm, log_scale=True, intrinsic=True,
           spectral=True),
    _entry("curvature", "token", "curvature", curvature, kernel=_curvature, intrinsic=True),
    _entry("sparsity", "token", "sparsity", sparsity, kernel=_sparsity, intrinsic=True),
    # Base against SFT
    _entry("cka", "pair", "linear CKA (Base, SFT)", cka, alike=1),
    _entry("cka_debiased", "pair", "debiased CKA", functools.partial(cka, debiased=True), alike=1,
           min_rows=4),
    _entry("cosine_similarity", "pair", "cosine similarity", cosine_similarity, alike=1),
    _entry("mean_shift", "pair", "mean shift ‖μ_SFT − μ_Base‖", mean_shift, alike=-1),
    _entry("relative_mean_shift", "pair", "relative mean shift ‖μ_SFT − μ_Base‖ / ‖μ_Base‖",
           functools.partial(mean_shift, mean_shift_relative=True), alike=-1),
    # logit lens (computed by mbt.probe)
    _entry("top1_acc", "lens", "logit-lens top-1 accuracy"),
    _entry("top5_acc", "lens", "logit-lens top-5 accuracy"),
    _entry("cross_entropy", "lens", "logit-lens cross-entropy (nats)"),
    _entry("entropy", "lens", "lens entropy (nats)"),
    _entry("kl_to_final", "lens", "KL(output ‖ lens) (nats)"),
    _entry("kl_sft_base", "lens", "KL(SFT lens ‖ Base lens)"),
    _entry("top1_agreement", "lens", "top-1 agreement SFT/Base"),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
"""Every metric by name, in canonical order (the intrinsic ones in the paper's Fig. 2 order)."""


def metric(name: str) -> Metric:
    """The registry entry of ``name``.

    Raises:
        ValueError: An unknown name (the valid ones are listed).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; registered: {', '.join(METRICS)}") from None


def names(level: str | None = None, *, intrinsic: bool | None = None) -> tuple[str, ...]:
    """Registered metric names in canonical order, optionally of one level and/or (not) intrinsic."""
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return tuple(m.name for m in METRICS.values()
                 if (level is None or m.level == level) and (intrinsic is None or m.intrinsic == intrinsic))


def label(name: str) -> str:
    """Human label of a metric; ``delta_<m>`` (an SFT − Base difference) becomes ``"Δ <label> (SFT − Base)"``.

    Names the registry does not know (e.g. a column of another table) are shown with spaces for underscores.
    """
    if name.startswith("delta_"):
        inner = name[len("delta_"):]
        return f"Δ {METRICS[inner].label if inner in METRICS else inner} (SFT − Base)"
    return METRICS[name].label if name in METRICS else name.replace("_", " ")


def is_log_scale(name: str) -> bool:
    """Whether a metric is compared and drawn on a log scale (unknown names and ``delta_`` differences: no)."""
    return name in METRICS and METRICS[name].log_scale
