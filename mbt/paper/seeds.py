r"""LoRA comparisons over training seeds *and* test problems (a crossed random-effects interval).

Every mask of a LoRA sweep is trained with a few seeds and scored on the same test problems. The
difference of two masks, per seed ``s`` and problem ``p``, is ``d_{sp} = a_{sp} − b_{sp}`` (paired: the same
seed and the same problem). Its mean has three sources of noise:

* seeds — a seed's training outcome (``σ_s²``): a mask can train well or badly with a given seed;
* problems — the mask × problem interaction (``σ_p²``): the masks are scored on the *same* problems, so
  a mask that happens to suit these particular problems keeps that advantage on every seed;
* residual — per (seed, problem) noise (``σ_r²``), e.g. the coin flip of a 0/1 score.

``Var(d̄) = σ_s²/S + σ_p²/P + σ_r²/(SP)``. A t interval over the seed means ignores ``σ_p²`` (7.5 % false
verdicts with a strong mask × problem interaction) and a bootstrap over problems ignores ``σ_s²``;
:func:`crossed_interval` estimates the parts from the two-way table by the method of moments and widens
each by its own t quantile, and its MDE comes from the noncentral t at the matching degrees of
freedom (:func:`mbt.paper.intervals.mde`). Numpy and the standard library only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from mbt.paper.intervals import Interval, check_level, t_quantile
from mbt.paper.verdicts import Decision, Verdict, direction

__all__ = ["crossed_contrast", "crossed_interval", "variance_components"]


def _table(name: str, x: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a (seeds, problems) table, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        s, p = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has a non-finite score at seed row {s}, problem column {p}")
    return arr


def variance_components(d: Sequence[Sequence[float]] | np.ndarray) -> dict[str, float]:
    r"""Mean squares of a two-way (seeds × problems) table without replication, and what they estimate.

    With seed means ``d̄_s``, problem means ``d̄_p`` and grand mean ``d̄``:
    ``MS_s = P·Σ_s (d̄_s − d̄)²/(S − 1)``, ``MS_p = S·Σ_p (d̄_p − d̄)²/(P − 1)``,
    ``MS_r = Σ_{sp} (d_{sp} − d̄_s − d̄_p + d̄)² / ((S − 1)(P − 1))``; ``E[MS_s] = σ_r² + Pσ_s²``,
    ``E[MS_p] = σ_r² + Sσ_p²``, ``E[MS_r] = σ_r²``.

    Args:
        d: Table ``(S, P)``, ``S ≥ 2`` seeds and ``P ≥ 2`` problems.

    Returns:
        ``{"ms_seed", "ms_problem", "ms_resid", "sigma2_seed", "sigma2_problem", "sigma2_resid"}`` (the σ²
        estimates clipped at 0).
    """
    x = _table("d", d)
    s, p = x.shape
    if s < 2 or p < 2:
        raise ValueError(f"need at least 2 seeds and 2 problems, got {s} and {p}")
    grand = float(x.mean())
    rows, cols = x.mean(axis=1), x.mean(axis=0)
    ms_s = p * float(np.sum((rows - grand) ** 2)) / (s - 1)
    ms_p = s * float(np.sum((cols - grand) ** 2)) / (p - 1)
    resid = x - rows[:, None] - cols[None, :] + grand
    ms_r = float(np.sum(resid**2)) / ((s - 1) * (p - 1))
    return {"ms_seed": ms_s, "ms_problem": ms_p, "ms_resid": ms_r, "sigma2_seed": max((ms_s - ms_r) / p, 0.0),
            "sigma2_problem": max((ms_p - ms_r) / s, 0.0), "sigma2_resid": ms_r}


@functools.lru_cache(maxsize=256)
def _quantile_grid(q: float, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """``(log ν, t_{q, ν})`` on 65 log-spaced ``ν`` from ``lo`` to ``hi`` (cached: the same for every table shape)."""
    log_nu = np.linspace(math.log(lo), math.log(hi), 65)
    t = np.array([t_quantile(q, float(math.exp(x))) for x in log_nu])
    return log_nu, t


def _df_for_quantile(q: float, target: float, lo: float, hi: float) -> float:
    """The degrees of freedom ``ν ∈ [lo, hi]`` with ``t_{q, ν} = target`` (interpolated in ``log ν``; ends clipped)."""
    if hi <= lo:
        return lo
    log_nu, t = _quantile_grid(q, lo, hi)
    return float(math.exp(np.interp(-target, -t, log_nu)))  # t falls as ν grows


def crossed_interval(
    a: Sequence[Sequence[float]] | np.ndarray,
    b: Sequence[Sequence[float]] | np.ndarray | None = None,
    *,
    level: float = 0.95,
) -> Interval:
    r"""Mean paired difference over seeds × problems with a crossed random-effects interval.

    ``d_{sp} = a_{sp} − b_{sp}`` (or ``a`` itself), estimate ``d̄``. With the mean squares of
    :func:`variance_components`, ``Var(d̄) = σ_s²/S + σ_p²/P + σ_r²/(SP)`` is the sum of two parts with their
    own degrees of freedom: ``MS_s/(SP)`` (``= Var(seed means)/S``, ``S − 1`` df) and the problem excess
    ``max(MS_p − MS_r, 0)/(SP)`` (``P − 1`` df). Each part is widened by its own Student t quantile
    (a modified-large-sample interval):

    ``half² = (t²_{q, S−1}·MS_s + t²_{q, P−1}·max(MS_p − MS_r, 0)) / (SP)``, ``q = (1 + level)/2``.

    With no mask × problem interaction it is the t interval over the seed means (exact for normal
    seed noise); with no seed noise it is the t interval over problems. Satterthwaite's pooled degrees
    of freedom, tried first, decided 6–7 % of null cases with three seeds and skewed seed noise; this
    one stays at or below 5 % (``tests/paper/test_seeds.py``). ``SE = √((MS_s + max(MS_p − MS_r, 0))/(SP))``
    and ``df`` is the ``ν`` with ``t_{q, ν}·SE = half`` (between ``S − 1`` and ``P − 1``), so the MDE is the
    noncentral-t one at that ``ν``.

    Args:
        a: Scores of condition a, ``(S, P)`` (e.g. 0/1 correctness of mask a with seed ``s`` on problem ``p``).
        b: Scores of condition b on the same seeds and problems, ``(S, P)``, or ``None``.
        level: Confidence level.

    Returns:
        The :class:`Interval` (``n`` = seeds, ``unit="seeds × problems"``, ``df`` set). Bounds NaN with a
        single seed or problem.
    """
    check_level(level)
    x = _table("a", a)
    if b is not None:
        y = _table("b", b)
        if y.shape != x.shape:
            raise ValueError(f"a and b must be the same (seeds, problems) table, got {x.shape} and {y.shape}")
        x = x - y
    s, p = x.shape
    unit = "seeds × problems"
    method = f"crossed seeds × problems interval ({s} seeds, {p} problems; each variance part with its own t)"
    est = float(x.mean()) if x.size else float("nan")
    if s < 2 or p < 2:
        nan = float("nan")
        return Interval(est, nan, nan, level, nan, s, unit, method + f"; {s} seed(s): no seed-to-seed spread")
    vc = variance_components(x)
    seed_part = vc["ms_seed"] / (s * p)
    problem_part = max(vc["ms_problem"] - vc["ms_resid"], 0.0) / (s * p)
    q = (1.0 + level) / 2.0
    t_s, t_p = t_quantile(q, float(s - 1)), t_quantile(q, float(p - 1))
    se = math.sqrt(seed_part + problem_part)
    if se == 0.0:
        return Interval(est, est, est, level, 0.0, s, unit, method, float(s - 1))
    half = math.sqrt(t_s**2 * seed_part + t_p**2 * problem_part)
    df = _df_for_quantile(q, half / se, float(s - 1), float(p - 1))
    return Interval(est, est - half, est + half, level, se, s, unit, method, df)


def crossed_contrast(
    a: Sequence[Sequence[float]] | np.ndarray,
    b: Sequence[Sequence[float]] | np.ndarray,
    *,
    side: int = 1,
    threshold: float = 0.0,
    level: float = 0.95,
) -> Decision:
    r"""Decide "mask a beats mask b" from per-problem scores over seeds (:func:`crossed_interval`).

    Rule: :func:`mbt.paper.verdicts.direction` on the crossed interval; *inconclusive* with the reason
    when fewer than 2 seeds are shared. Calibration (``tests/paper/test_seeds.py``, 3 seeds × 200
    problems, 0/1 scores): at most 5 % false verdicts with normal seed noise and with a mask × problem
    interaction, at most 7 % with skewed seed noise (a seed that now and then trains badly).

    Args:
        a: Scores of mask a, ``(S, P)``.
        b: Scores of mask b on the same seeds (rows) and problems (columns).
        side: ``+1`` (a above b by more than ``threshold``) or ``−1``.
        threshold: On the score's scale (e.g. accuracy points).
        level: Confidence level.

    Returns:
        The :class:`Decision` (``unit="seeds × problems"``, ``n`` = seeds).
    """
    iv = crossed_interval(a, b, level=level)
    if not math.isfinite(iv.low):
        nan = float("nan")
        return Decision(Verdict.INCONCLUSIVE, iv.estimate, nan, nan, level,
                        f"not decidable here: {iv.n} seed(s); a seed-to-seed spread needs at least 2", nan, iv.n,
                        iv.unit, threshold=float(threshold))
    return direction(iv, side=side, threshold=threshold)
