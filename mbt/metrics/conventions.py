"""Every ambiguous choice behind a metric, in one frozen dataclass, plus the two presets.

The paper's formulas were lost in extraction and its released code differs from the textbook
definitions in several places (centring, α, σ vs σ² in the effective rank, the sparsity threshold,
the entropy normalisation, small epsilons). Instead of hiding these choices in function bodies, each
one is a field of :class:`Conventions`. Two presets exist:

* ``"standard"`` — textbook definitions (the default everywhere in ``mbt``).
* ``"paper"`` — the authors' ``metric_utils.py`` formulas (the book's appendix "The released code")
  wherever a value belongs to one sample or one matrix. It departs from their code in four places,
  each documented in the function concerned:

  - padding is always masked out (our fix, kept in both presets);
  - sparsity's reference maximum is the sample's own ``max |h|`` (``"sample_max"``), not the maximum
    over a 10-sample batch (``"global_max"``, available as an override);
  - curvature is averaged per sample, not over all positions of a 10-sample batch;
  - prompt entropy is normalised by ``log(min(n_i, D))`` with ``n_i`` the sample's real tokens, not
    the padded length.

  Where the authors' value depends on how samples were batched, ``paper`` gives the
  batch-independent per-sample analogue.

Every metric function takes ``conventions=`` (a preset name or a :class:`Conventions`) plus keyword
overrides of single fields, resolved by :func:`resolve_conventions`. Store :meth:`Conventions.describe`
(or :meth:`Conventions.as_dict`) next to every number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

ENTROPY_NORMALIZATIONS: tuple[str, ...] = ("max", "none")
SPARSITY_REFERENCES: tuple[str, ...] = ("absolute", "token_rms", "token_max", "sample_max", "global_max")
CURVATURE_UNITS: tuple[str, ...] = ("radians", "pi")
ERANK_POWERS: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Conventions:
    """The explicit choices behind every metric in :mod:`mbt.metrics`.

    Instances are immutable; derive variants with :func:`resolve_conventions` (or
    :func:`dataclasses.replace`). Field values are validated on construction.

    Attributes:
        name: Name of the preset these conventions derive from (``"standard"`` or ``"paper"``). Kept
            unchanged by overrides; :meth:`describe` lists the fields that differ from that preset.
        alpha: Order α > 0 of the matrix entropy. ``1`` is the explicit Shannon / von Neumann limit
            ``−Σ p log p`` (natural log); otherwise Rényi ``log(Σ p^α) / (1 − α)``.
        center: Entropy only. Subtract the mean row before anything else (for prompt entropy: the mean
            over that sample's real tokens; for dataset entropy: the mean pooled vector).
        row_normalize: Entropy only. L2-normalise every row (after centring), so the Gram matrix is a
            cosine kernel. With ``entropy_eps = 0`` rows that are zero up to round-off (norm below
            ``max(n, d)·eps₆₄`` times the largest row norm before centring, e.g. a token equal to the
            mean) stay zero; with ``entropy_eps > 0`` every row is divided by ``‖x‖ + entropy_eps``.
        entropy_normalization: ``"max"`` divides the entropy by ``log(min(n, d))`` where ``n`` counts
            real rows only (0 when ``min(n, d) = 1``); ``"none"`` returns nats.
        ridge: Added to the diagonal of the kernel ``K = XXᵀ/d`` (real rows only). Prompt entropy /
            :func:`~mbt.metrics.matrix_entropy`: always. Dataset entropy: only when ``n ≤ d``; for
            ``n > d`` the eigenvalues are ``σ(X)²`` (no ``/d``, no ridge), exactly like the authors.
        entropy_eps: ``0`` = exact formula (zero eigenvalues carry no mass; a spectrum with zero trace
            gives NaN). ``> 0`` = the authors' guarded formula with this ε everywhere: rows divided by
            ``‖x‖ + ε``, ``λ ← max(λ, ε)``, ``p = λ / (Σλ + ε)``, ``H = −Σ p log(p + ε)`` (or
            ``log(Σ p^α + ε)/(1 − α)``, with α treated as 1 when ``|α − 1| < 1e-6``), and
            ``H = 0`` when ``Σλ < ε``.
        zero_null_eigenvalues: Set Gram eigenvalues ``λ ≤ max(n, d)·eps₆₄·λ_max`` (round-off of
            ``eigvalsh``) to exactly 0 before use, so null directions contribute nothing to Rényi
            entropies with α < 1, to the effective rank, to ranks and condition numbers. The flip side:
            singular values below ``σ_max·sqrt(max(n, d)·eps₆₄)`` (≈ 1e-7·σ_max) count as zero.
        erank_power: ``1`` = Roy & Vetterli ``p_i = σ_i / Σ_j σ_j``; ``2`` = ``p_i = σ_i² / Σ_j σ_j²``
            (the authors' code).
        erank_normalize: Divide the effective rank by ``min(n, d)``.
        erank_center: Centre the columns of ``X`` before the effective rank.
        erank_eps: ``0`` = exact; ``> 0`` = the authors' guards ``p_i = w_i / Σ_j (w_j + ε)`` and
            ``−Σ p log(p + ε)``.
        rank_tol: Rank deficiency threshold. ``"dtype"``: ``σ_i`` counts if ``σ_i > σ_max·max(n, d)·eps``
            with ``eps`` of the input's original dtype (NumPy ``matrix_rank`` rule; very conservative for
            bf16/fp16 inputs, where eps is 2⁻⁷/2⁻¹⁰). A float ``r`` in ``(0, 1)``: counts if
            ``σ_i > r·σ_max``.
        cond_eps: Added to ``σ_min`` in the condition number (0 → ``inf`` for rank-deficient inputs).
        sparsity_eps: Threshold factor ε of the sparsity ``|h| < ε·reference``.
        sparsity_reference: What ε multiplies: ``"absolute"`` (1), ``"token_rms"`` (the token's RMS over
            dims), ``"token_max"`` (the token's max ``|h|``), ``"sample_max"`` (max ``|h|`` over the
            sample's real tokens and all dims), ``"global_max"`` (max ``|h|`` over every real entry of
            the whole ``H`` passed in — the authors' group rule, which makes a sample's value depend on
            its batch: call it on their 10-sample groups to reproduce them exactly).
        curvature_units: ``"radians"`` or ``"pi"`` (angles divided by π, in ``[0, 1]``).
        curvature_clip: ``None``: cosines clamped to ``[−1, 1]`` only against round-off. A float ``c``:
            clamped to ``[−c, c]`` (authors: 0.999, so a straight path scores ``arccos(0.999)``).
        curvature_skip_zero_steps: Drop zero-length steps (repeated states) before measuring turning
            angles, so ``a → b → b → c`` has one turn at ``b``. ``False``: keep them; their cosine is
            then 0 (``cosine_eps > 0``, the authors' behaviour, angle π/2) or NaN (``cosine_eps = 0``).
        cosine_eps: ``0`` = exact ``x·y / (‖x‖‖y‖)`` (NaN for a zero vector); ``> 0`` = torch semantics
            ``x·y / (max(‖x‖, ε)·max(‖y‖, ε))``. Used by cosine similarity and by curvature.
        cka_eps: Added to the CKA denominator (authors: 1e-9).
        mean_shift_relative: Divide the mean shift by ``‖mean_i X_i‖`` (an extension; not in the paper).
    """

    name: str = "standard"
    alpha: float = 1.0
    center: bool = True
    row_normalize: bool = True
    entropy_normalization: str = "max"
    ridge: float = 0.0
    entropy_eps: float = 0.0
    zero_null_eigenvalues: bool = True
    erank_power: int = 1
    erank_normalize: bool = False
    erank_center: bool = False
    erank_eps: float = 0.0
    rank_tol: str | float = "dtype"
    cond_eps: float = 0.0
    sparsity_eps: float = 0.01
    sparsity_reference: str = "token_rms"
    curvature_units: str = "radians"
    curvature_clip: float | None = None
    curvature_skip_zero_steps: bool = True
    cosine_eps: float = 0.0
    cka_eps: float = 0.0
    mean_shift_relative: bool = False

    def __post_init__(self) -> None:
        _check_positive("alpha", self.alpha)
        _check_choice("entropy_normalization", self.entropy_normalization, ENTROPY_NORMALIZATIONS)
        _check_choice("sparsity_reference", self.sparsity_reference, SPARSITY_REFERENCES)
        _check_choice("curvature_units", self.curvature_units, CURVATURE_UNITS)
        if self.erank_power not in ERANK_POWERS or isinstance(self.erank_power, bool):
            raise ValueError(f"erank_power must be one of {list(ERANK_POWERS)}, got {self.erank_power!r}")
        for field_name in ("ridge", "entropy_eps", "erank_eps", "cond_eps", "cosine_eps", "cka_eps"):
            _check_nonnegative(field_name, getattr(self, field_name))
        _check_positive("sparsity_eps", self.sparsity_eps)
        if isinstance(self.rank_tol, str):
            if self.rank_tol != "dtype":
                raise ValueError(f"rank_tol must be 'dtype' or a float in (0, 1), got {self.rank_tol!r}")
        elif not (isinstance(self.rank_tol, int | float) and 0.0 < float(self.rank_tol) < 1.0):
            raise ValueError(f"rank_tol must be 'dtype' or a float in (0, 1), got {self.rank_tol!r}")
        if self.curvature_clip is not None and not (
            isinstance(self.curvature_clip, int | float) and 0.0 < float(self.curvature_clip) <= 1.0
        ):
            raise ValueError(f"curvature_clip must be None or a float in (0, 1], got {self.curvature_clip!r}")
        for field_name in (
            "center", "row_normalize", "zero_null_eigenvalues", "erank_normalize", "erank_center",
            "curvature_skip_zero_steps", "mean_shift_relative",
        ):
            if not isinstance(getattr(self, field_name), bool):
                raise ValueError(f"{field_name} must be a bool, got {getattr(self, field_name)!r}")

    def as_dict(self) -> dict[str, Any]:
        """Return every field as a plain dict (JSON-serialisable), for result provenance."""
        return asdict(self)

    def describe(self) -> str:
        """Return a short label: the preset name, plus ``key=value`` for fields that differ from it.

        Examples: ``"standard"``, ``"paper"``, ``"standard+alpha=2.0,center=False"``.
        """
        base = CONVENTION_PRESETS.get(self.name)
        if base is None:
            return self.name + "+" + ",".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "name")
        diffs = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name != "name" and getattr(self, f.name) != getattr(base, f.name)
        ]
        return self.name if not diffs else self.name + "+" + ",".join(diffs)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_nonnegative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


CONVENTION_PRESETS: dict[str, Conventions] = {
    "standard": Conventions(),
    "paper": Conventions(
        name="paper",
        alpha=1.0,
        center=False,
        row_normalize=True,
        entropy_normalization="max",
        ridge=1e-6,
        entropy_eps=1e-10,
        zero_null_eigenvalues=False,
        erank_power=2,
        erank_normalize=True,
        erank_center=False,
        erank_eps=1e-9,
        rank_tol=0.01,
        cond_eps=1e-9,
        sparsity_eps=0.01,
        sparsity_reference="sample_max",
        curvature_units="pi",
        curvature_clip=0.999,
        curvature_skip_zero_steps=False,
        cosine_eps=1e-8,
        cka_eps=1e-9,
        mean_shift_relative=False,
    ),
}
"""The named presets: ``"standard"`` (textbook) and ``"paper"`` (the authors' released code)."""

_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Conventions))


def resolve_conventions(conventions: str | Conventions = "standard", **overrides: Any) -> Conventions:
    """Turn a preset name or instance plus field overrides into a :class:`Conventions`.

    Args:
        conventions: A preset name (a key of :data:`CONVENTION_PRESETS`) or a :class:`Conventions` instance.
        **overrides: Field values that replace the preset's (via :func:`dataclasses.replace`); the
            ``name`` field is kept so results still record which preset they started from.

    Returns:
        The resolved, validated conventions.

    Raises:
        ValueError: Unknown preset name (the message lists the valid ones), unknown override key (the
            message lists the valid fields) or an invalid field value.
    """
    if isinstance(conventions, Conventions):
        base = conventions
    elif isinstance(conventions, str):
        if conventions not in CONVENTION_PRESETS:
            raise ValueError(
                f"unknown conventions preset {conventions!r}; valid presets: {sorted(CONVENTION_PRESETS)}"
            )
        base = CONVENTION_PRESETS[conventions]
    else:
        raise ValueError(
            f"conventions must be a preset name {sorted(CONVENTION_PRESETS)} or a Conventions instance, "
            f"got {type(conventions).__name__}"
        )
    if not overrides:
        return base
    unknown = sorted(set(overrides) - set(_FIELD_NAMES) | ({"name"} & set(overrides)))
    if unknown:
        valid = [f for f in _FIELD_NAMES if f != "name"]
        raise ValueError(f"unknown convention override(s) {unknown}; valid fields: {valid}")
    return replace(base, **overrides)
