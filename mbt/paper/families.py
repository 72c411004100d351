r"""A chapter's table as one family of claims: multiplicity corrections and checks that each row is one claim.

**Which correction.** A reader reads every row of a chapter's table as a claim of its own ("the final
layers differ more", "the effective rank peaks in the middle", …), so a false row is an error whatever
the other rows say. The book therefore controls the **family-wise error rate** of each chapter's table
with **Holm**'s step-down procedure (:func:`adjust`, ``method="holm"``): under no effect anywhere, the
chance that *any* row is decided (holds or contradicted) is at most ``α`` = 5 %, whatever the
dependence between the rows (they share texts and layers), and Holm is uniformly more powerful than
Bonferroni. **Benjamini–Hochberg** (``method="bh"``) controls the false-discovery rate instead — the
expected share of false verdicts among decided rows — which suits an exploratory table (e.g. every
signature of every pair) where a few false rows among many true ones are acceptable; it is valid for
independent or positively dependent p-values. Chapter 8's six signatures are one family.

Each decision carries ``p_verdict`` (:attr:`mbt.paper.verdicts.Decision.p_verdict`), the p-value of its
own test, below ``α`` exactly when it is decided; a correction turns the decisions whose adjusted p
exceeds ``α`` into *inconclusive* and says so in their rule. :func:`expected_false` states how many
false verdicts the table would show under no effect, with and without the correction.

:func:`row_problems` checks a table for rows that misread: two judged rows that are the same comparison
(same effect and interval, possibly with the sign flipped), a holding row whose interval contains its
threshold, and an ``n`` that counts bootstrap replicates rather than units of replication.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mbt.paper.verdicts import Decision, Verdict

__all__ = [
    "METHODS",
    "adjust",
    "adjusted_pvalues",
    "expected_false",
    "family_sentence",
    "p_text",
    "row_problems",
]

def p_text(p: float) -> str:
    """A p-value as the book prints it after ``p``: ``= 0.0234`` (3 significant digits) or ``< 0.001``.

    A resampled or enumerated p of 0 is only below the resampling's reach, so it is never printed as 0.
    """
    return "< 0.001" if p < 0.001 else f"= {p:.3g}"


METHODS: dict[str, str] = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini–Hochberg (false-discovery rate)"}
"""Multiplicity corrections of :func:`adjust`."""


def adjusted_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    r"""Adjusted p-values of a family (NaN counts as 1: a row that could not be tested still counts in ``m``).

    * Holm: with ``p_(1) ≤ … ≤ p_(m)``, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j))``;
    * Benjamini–Hochberg: ``p̃_(i) = min_{j ≥ i} min(1, m·p_(j)/j)``.

    A row is decided at family level ``α`` when ``p̃ ≤ α``.

    Args:
        pvalues: Raw p-values ``(m,)``.
        method: ``"holm"`` or ``"bh"``.

    Returns:
        Adjusted p-values in the input order.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    p = np.asarray(pvalues, dtype=float).reshape(-1)
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 1.0)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adj = np.minimum.accumulate((np.minimum(1.0, m * ranked / np.arange(1, m + 1)))[::-1])[::-1]
    out = np.empty(m)
    out[order] = adj
    return out


def adjust(decisions: Sequence[Decision], *, method: str = "holm", alpha: float = 0.05) -> list[Decision]:
    r"""Apply a multiplicity correction to a family of decisions (one chapter's table).

    Each decision's ``p_verdict`` is adjusted (:func:`adjusted_pvalues`); a decided row (holds or
    contradicted) stays decided only when its adjusted p is at most ``alpha``, else it becomes
    *inconclusive*. The adjusted p replaces ``p_verdict`` and the rule states the correction. Rows
    already inconclusive stay so (their adjusted p is reported). Under no effect in any row, Holm keeps
    the chance of any decided row at most ``alpha`` under any dependence; BH keeps the expected share
    of false rows among decided rows at most ``alpha`` (for independent or positively dependent rows).

    Args:
        decisions: The family, every row a claim (scale-only rows excluded).
        method: ``"holm"`` (default, the book's tables) or ``"bh"`` (exploratory tables).
        alpha: Family level.

    Returns:
        The decisions after correction, in the input order.

    Raises:
        ValueError: A decided row has no ``p_verdict`` (it cannot be corrected).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    for i, d in enumerate(decisions):
        if d.verdict != Verdict.INCONCLUSIVE and not math.isfinite(d.p_verdict):
            raise ValueError(f"row {i} ({d.key or d.quantity or d.rule[:40]!r}) is decided but has no p_verdict")
    adj = adjusted_pvalues([d.p_verdict for d in decisions], method)
    m = len(decisions)
    out = []
    for d, p in zip(decisions, adj, strict=True):
        keep = d.verdict != Verdict.INCONCLUSIVE and p <= alpha
        verdict = d.verdict if keep else Verdict.INCONCLUSIVE
        note = (f"; {METHODS[method].split(' (')[0]} over the {m} rows of this table at {alpha:g}: adjusted p "
                f"{p_text(p)}" + ("" if keep or d.verdict == Verdict.INCONCLUSIVE else ", so not decided"))
        out.append(replace(d, verdict=verdict, p_verdict=float(p), rule=d.rule + note))
    return out


def expected_false(m: int, *, method: str | None = "holm", alpha: float = 0.05, n_sim: int = 20000,
                   seed: int = 0) -> float:
    r"""Expected number of decided rows in a family of ``m`` rows when no row has an effect.

    Without correction (``method=None``) it is exactly ``m·α`` (0.6 for 12 rows at 5 %). With Holm or BH
    it is computed by simulation (``n_sim`` families of independent uniform p-values, seeded): about
    ``α`` for both (0.05 for Holm, 0.05–0.06 for BH at 6–20 rows), since under no effect a false verdict
    rarely comes alone.

    Args:
        m: Rows in the family.
        method: ``"holm"``, ``"bh"`` or ``None``.
        alpha: Family level.
        n_sim: Simulated families.
        seed: Seed.

    Returns:
        The expected number of false verdicts.
    """
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    if m == 0:
        return 0.0
    if method is None:
        return m * alpha
    p = np.random.default_rng(seed).random((n_sim, m))
    adj = np.apply_along_axis(adjusted_pvalues, 1, p, method)
    return float(np.mean(np.sum(adj <= alpha, axis=1)))


def family_sentence(decisions: Sequence[Decision], *, method: str = "holm", alpha: float = 0.05) -> str:
    """One sentence stating a corrected table's family, its error rate and its expected false verdicts.

    Args:
        decisions: The rows *after* :func:`adjust` (counts are read from them).
        method: The correction that was applied.
        alpha: Its level.

    Returns:
        E.g. ``"3 of 9 rows decided. The 9 rows are one family: Holm keeps the chance of any false verdict at
        5 % under no effect (expected false verdicts 0.05; 0.45 without a correction)."``
    """
    m = len(decisions)
    k = sum(d.verdict != Verdict.INCONCLUSIVE for d in decisions)
    rate = "the chance of any false verdict" if method == "holm" else "the expected share of false verdicts"
    corrected, plain = expected_false(m, method=method, alpha=alpha), expected_false(m, method=None, alpha=alpha)
    return (f"{k} of {m} rows decided. The {m} rows are one family: {METHODS[method].split(' (')[0]} keeps {rate} "
            f"at {100 * alpha:g} % under no effect (expected false verdicts {corrected:.2f}; {plain:.2f} without a "
            "correction).")


def _same(a: float, b: float, tol: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def row_problems(decisions: Sequence[Decision], *, require_threshold: bool = True, tol: float = 1e-12) -> list[str]:
    r"""What misreads in a table: each problem as a sentence (empty when the table is sound).

    * **one comparison, one row** — two judged rows (holds or contradicted) with the same effect and
      interval, or the same with the sign flipped (``middle_stable`` vs ``cka_plateau`` at 10 layers);
    * a **holding or contradicted row whose interval contains its threshold** (``seed_robust`` showing
      "half 2 − half 1" next to *holds*);
    * a judged row without a threshold (``require_threshold``: it cannot be checked), or whose ``n``
      is not a positive count of units, or whose unit is "bootstrap replicates" (the resamples, not the
      texts they resample).

    Args:
        decisions: The rows of one table.
        require_threshold: Report judged rows whose ``threshold`` is NaN.
        tol: Relative tolerance for "the same number".

    Returns:
        The problems found.
    """
    problems = []
    judged = [(i, d) for i, d in enumerate(decisions) if d.verdict != Verdict.INCONCLUSIVE]

    def name(i: int, d: Decision) -> str:
        return f"row {i} ({d.key or d.quantity or 'unnamed'})"

    for x, (i, a) in enumerate(judged):
        for j, b in judged[x + 1:]:
            same = all(_same(u, v, tol) for u, v in ((a.effect, b.effect), (a.ci_low, b.ci_low),
                                                        (a.ci_high, b.ci_high)))
            flipped = all(_same(u, v, tol) for u, v in ((a.effect, -b.effect), (a.ci_low, -b.ci_high),
                                                           (a.ci_high, -b.ci_low)))
            if same or flipped:
                problems.append(f"{name(i, a)} and {name(j, b)} are one comparison (same effect and interval"
                                f"{' with the sign flipped' if flipped and not same else ''}): show it once")
    for i, d in judged:
        if math.isnan(d.threshold):
            if require_threshold:
                problems.append(f"{name(i, d)} is {d.verdict.value} but has no threshold to check its interval against")
        elif math.isfinite(d.ci_low) and math.isfinite(d.ci_high) and d.ci_low <= d.threshold <= d.ci_high:
            problems.append(f"{name(i, d)} is {d.verdict.value} but its interval [{d.ci_low:.4g}, {d.ci_high:.4g}] "
                            f"contains its threshold {d.threshold:g}")
        if d.n <= 0:
            problems.append(f"{name(i, d)} is {d.verdict.value} with n = {d.n} {d.unit}")
        if d.unit.strip() in ("", "bootstrap replicates", "replicates"):
            problems.append(f"{name(i, d)}: n = {d.n} counts {d.unit or 'nothing named'}, not units of replication")
    return problems
