r"""Shape claims over depth on scale-free quantities: band ratios of log values and the J shape's three parts.

* :func:`log_band_contrast` — ``mean_band(log v) − mean_ref(log v)`` (the log of the ratio of geometric
  means) from joint bootstrap replicates: for positive metrics that span orders of magnitude
  (condition number, spectral norm, effective rank), so that "explodes", "trough" and "peak" mean the
  same on every model and the interval cannot straddle a near-zero denominator;
* :func:`middle_extremum` — "peaks (or has a trough) in the middle": the middle band above (below) both
  the early and the last band on the log scale (``erank_peak``, ``cond_trough``);
* :func:`explosion` — "explodes in the last layers": the last band above the middle on the log scale
  (the spectral norm);
* :func:`weight_j` — the paper's J-shaped weight change in its three parts: small in the early layers
  (:func:`small_early`), a peak at the final block (:func:`final_peak`), and the last band above the
  middle (:func:`last_above_middle`), blocks as units;
* :func:`all_of` — a compound claim from its parts (Bonferroni over the parts).

Every function returns a :class:`~mbt.paper.verdicts.Decision` whose ``threshold`` and ``p_verdict`` are
set, so a table can be checked (:func:`mbt.paper.families.row_problems`) and corrected as a family
(:func:`mbt.paper.families.adjust`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from mbt.paper.intervals import Interval, check_level, t_quantile
from mbt.paper.verdicts import BANDS, Decision, Verdict, band_contrast, direction, pct

__all__ = [
    "EARLY",
    "all_of",
    "explosion",
    "final_peak",
    "last_above_middle",
    "log_band_contrast",
    "middle_extremum",
    "small_early",
    "weight_j",
]

EARLY: tuple[float, float] = (0.0, BANDS["middle"][0])
"""The early band without the embedding output: layers (blocks) with relative depth in ``(0, 0.2]``."""


def all_of(parts: Sequence[Decision], what: str) -> Decision:
    r"""A compound claim that holds when every part holds ("peaks in the middle" = above both neighbours).

    Rule: **holds** if all ``k`` parts hold, **contradicted** if any part is contradicted, else
    **inconclusive**. The parts must be decided at ``1 − α/k`` (Bonferroni): "some part contradicted"
    is a union over ``k`` tests, while "all hold" is an intersection–union test and needs no
    correction. The row shows the deciding part (the first contradicted one, else the first
    inconclusive one, else the first), so a holding row never shows an interval containing its
    threshold. ``p_verdict`` is ``k·max p`` of the parts when all hold, ``k·min p`` of the contradicted
    parts when one is, else ``min(1, k·max p)``: below ``α`` exactly when the compound is decided.
    The level shown is the part's (the interval's own level).

    Args:
        parts: The parts' decisions, each at level ``1 − α/k``.
        what: The compound claim in words (for the rule).

    Returns:
        The compound :class:`Decision`.
    """
    if not parts:
        raise ValueError("all_of needs at least one part")
    k = len(parts)
    verdicts = [p.verdict for p in parts]
    if Verdict.CONTRADICTED in verdicts:
        shown = parts[verdicts.index(Verdict.CONTRADICTED)]
        verdict = Verdict.CONTRADICTED
        p = min(x.p_verdict for x in parts if x.verdict == Verdict.CONTRADICTED)
    elif Verdict.INCONCLUSIVE in verdicts:
        shown, verdict = parts[verdicts.index(Verdict.INCONCLUSIVE)], Verdict.INCONCLUSIVE
        p = max(x.p_verdict for x in parts)
    else:
        shown, verdict = parts[0], Verdict.HOLDS
        p = max(x.p_verdict for x in parts)
    p_verdict = min(1.0, k * p) if math.isfinite(p) else float("nan")
    rule = (f"{what}: holds if all {k} parts hold, contradicted if any is contradicted"
            + (f" (each at {pct(shown.level)}, Bonferroni over {k})" if k > 1 else "") + "; part shown: " + shown.rule)
    return replace(shown, verdict=verdict, rule=rule, p_verdict=p_verdict)


def log_band_contrast(
    replicates: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    estimate: Sequence[float] | np.ndarray,
    band: tuple[float, float],
    reference: tuple[float, float],
    side: int = 1,
    threshold: float = 0.0,
    level: float = 0.95,
    n_texts: int | None = None,
) -> Decision:
    r"""``mean_band(log v) − mean_ref(log v)`` of a positive metric, from joint bootstrap replicates.

    The log of the ratio of the two bands' geometric means (``+0.69`` = twice the reference, ``−0.69`` =
    half), with the percentile interval of the same contrast over the ``(B, L)`` replicates
    (:func:`mbt.paper.verdicts.band_contrast`, ``unit="replicates"``, ``statistic="log_ratio"``).
    Rule: :func:`mbt.paper.verdicts.direction` against ``threshold`` (on the log scale).

    Args:
        replicates: ``(B, L)`` replicates (the same resampled texts at every layer), positive.
        depth: Relative depth per column ``(L,)``.
        estimate: Point values ``(L,)``, positive.
        band: The band the claim is about, ``(lo, hi]``.
        reference: The band it is compared with.
        side: ``+1`` (band above) or ``−1`` (below).
        threshold: Threshold on the log-ratio scale.
        level: Confidence level.
        n_texts: Texts per replicate (reported as ``n``).

    Returns:
        The :class:`Decision`.
    """
    return band_contrast(replicates, depth, band=band, reference=reference, unit="replicates", statistic="log_ratio",
                         estimate=estimate, side=side, threshold=threshold, level=level, n_texts=n_texts)


def middle_extremum(
    replicates: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    estimate: Sequence[float] | np.ndarray,
    kind: str = "peak",
    early: tuple[float, float] = EARLY,
    level: float = 0.95,
    n_texts: int | None = None,
) -> Decision:
    r"""The middle band is a peak (``kind="peak"``, ``erank_peak``) or a trough (``"trough"``, ``cond_trough``).

    Two parts on the log scale (:func:`log_band_contrast`), each at ``1 − (1 − level)/2``: the middle
    band ``(0.2, 0.8]`` against ``early`` (default ``(0, 0.2]``, the embedding output excluded) and
    against the last band ``(0.8, 1]``, both above 0 for a peak, both below for a trough
    (:func:`all_of`). The interval shown is the deciding part's log ratio.

    Args:
        replicates: ``(B, L)`` joint bootstrap replicates of the (positive) metric.
        depth: Relative depth ``(L,)``.
        estimate: Point values ``(L,)``.
        kind: ``"peak"`` or ``"trough"``.
        early: The early band.
        level: Level of the compound claim.
        n_texts: Texts per replicate.

    Returns:
        The compound :class:`Decision`.
    """
    if kind not in ("peak", "trough"):
        raise ValueError(f"kind must be 'peak' or 'trough', got {kind!r}")
    check_level(level)
    side = 1 if kind == "peak" else -1
    part_level = 1.0 - (1.0 - level) / 2.0
    parts = [log_band_contrast(replicates, depth, estimate=estimate, band=BANDS["middle"], reference=ref, side=side,
                               level=part_level, n_texts=n_texts) for ref in (early, BANDS["last"])]
    word = "above" if kind == "peak" else "below"
    return all_of(parts, f"middle band {word} the early and the last band (log ratios of geometric means)")


def explosion(
    replicates: Sequence[Sequence[float]] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    estimate: Sequence[float] | np.ndarray,
    threshold: float = 0.0,
    level: float = 0.95,
    n_texts: int | None = None,
) -> Decision:
    r"""The metric "explodes" in the last layers: ``mean_last(log v) − mean_middle(log v) > threshold``.

    For the spectral norm: scale-free, unlike the paper's "over 500" (σ_max grows with the number of
    pooled vectors and the residual-stream norm). ``threshold = log 2`` asks for at least a doubling.
    """
    return log_band_contrast(replicates, depth, estimate=estimate, band=BANDS["last"], reference=BANDS["middle"],
                             side=1, threshold=threshold, level=level, n_texts=n_texts)


# ---- the J shape of the weight change (blocks as units) --------------------------------------------


def small_early(
    values: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    ratio: float = 0.5,
    level: float = 0.95,
    rho: float | None = None,
) -> Decision:
    r"""Weight change "small in the early layers": the first half's geometric mean below ``ratio`` × the last band's.

    ``mean_{d ≤ 0.5} log c − mean_{d > 0.8} log c < log(ratio)`` with the blocks as units
    (:func:`mbt.paper.verdicts.band_contrast`, ``unit="layers"``: a GLS interval for AR(1) layer noise).

    Args:
        values: Relative weight change per block ``(L,)``, positive.
        depth: Relative depth ``b / L`` per block.
        ratio: What "small" means, as a fraction of the last band.
        level: Confidence level.
        rho: Assumed lag-1 autocorrelation of the block-to-block noise (default the worst case 0.9).

    Returns:
        The :class:`Decision` (effect on the log scale, threshold ``log(ratio)``).
    """
    if not 0.0 < ratio:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    return band_contrast(values, depth, band=(-1.0, 0.5), reference=BANDS["last"], unit="layers",
                         statistic="log_ratio", side=-1, threshold=math.log(ratio), level=level, rho=rho)


def last_above_middle(
    values: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    rho: float | None = None,
) -> Decision:
    r"""Weight change higher in the last band than the middle: ``mean_last log c − mean_middle log c > 0``.

    Blocks as units (:func:`mbt.paper.verdicts.band_contrast`, ``unit="layers"``, GLS for AR(1) noise).
    """
    return band_contrast(values, depth, band=BANDS["last"], reference=BANDS["middle"], unit="layers",
                         statistic="log_ratio", side=1, threshold=0.0, level=level, rho=rho)


def final_peak(
    values: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
) -> Decision:
    r"""Weight change "peaks at the final layer": the last step ``log c_L − log c_{L−1}`` is up, ``c_L`` the largest.

    The noise of a step is bounded from the curve's second differences
    ``Δ²_l = log c_{l+1} − 2 log c_l + log c_{l−1}`` (``l = 2 … L−2``, the final one left out):
    for AR(1) noise with any ``ρ ∈ [0, 1)``, ``Var(Δ²) = 2σ²(1 − ρ)(3 − ρ) ≥ 2·Var(Δ)``, so
    ``SE = √(mean(Δ²)²/2)`` bounds the SD of a step from above (a smooth trend's curvature only
    enlarges it). Student t interval ``step ± t_{(1+level)/2, ν}·SE`` with ``ν = (L − 3)/3`` (the second
    differences overlap; calibrated by simulation at 10–40 blocks). Rule: **holds** if the interval
    lies above 0 *and* the final block has the largest value, **contradicted** if it lies below 0,
    else **inconclusive**.

    Args:
        values: Weight change per block ``(L,)``, positive.
        depth: Relative depth per block.
        level: Confidence level.

    Returns:
        The :class:`Decision` (effect on the log scale, ``unit="layers"``).
    """
    check_level(level)
    v = np.asarray(values, dtype=float).reshape(-1)
    d = np.asarray(depth, dtype=float).reshape(-1)
    if v.size != d.size:
        raise ValueError(f"values and depth must have the same length, got {v.size} and {d.size}")
    if not np.isfinite(v).all() or v.min() <= 0:
        raise ValueError("values must be finite and positive (the weight change per block)")
    if v.size < 6:
        raise ValueError(f"need at least 6 blocks, got {v.size}")
    lv = np.log(v[np.argsort(d, kind="stable")])
    step = float(lv[-1] - lv[-2])
    d2 = (lv[2:] - 2.0 * lv[1:-1] + lv[:-2])[:-1]
    se = math.sqrt(float(np.mean(d2**2)) / 2.0)
    df = max(1.0, (lv.size - 3) / 3.0)
    half = t_quantile((1.0 + level) / 2.0, df) * se
    iv = Interval(step, step - half, step + half, level, se, int(lv.size), "layers",
                  f"final step of log weight change; SE bounded by second differences over {d2.size} blocks, t with "
                  f"{df:.3g} df", df)
    out = direction(iv, side=1, threshold=0.0)
    top = int(np.argmax(lv)) == lv.size - 1
    rule = ("peaks at the final block: holds if the " + pct(level) + " interval of log c_L − log c_(L−1) (SE bounded "
            "from second differences, any AR(1) noise) lies above 0 and c_L is the largest block, contradicted if it "
            "lies below 0")
    if out.verdict == Verdict.HOLDS and not top:
        return replace(out, verdict=Verdict.INCONCLUSIVE, rule=rule + f" (the step is up, but block "
                       f"{int(np.argmax(lv)) + 1} is larger)", p_verdict=1.0)
    return replace(out, rule=rule)


def weight_j(
    values: Sequence[float] | np.ndarray,
    depth: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    ratio: float = 0.5,
    rho: float | None = None,
) -> dict[str, Decision]:
    r"""The J shape of the weight change in its three parts, and the whole.

    ``"small_early"`` (:func:`small_early`), ``"final_peak"`` (:func:`final_peak`) and
    ``"last_above_middle"`` (:func:`last_above_middle`), each at ``1 − (1 − level)/3``; ``"all"`` is
    their :func:`all_of` at ``level``.

    Returns:
        ``{"small_early", "final_peak", "last_above_middle", "all"}`` → :class:`Decision`.
    """
    check_level(level)
    part = 1.0 - (1.0 - level) / 3.0
    out = {"small_early": small_early(values, depth, ratio=ratio, level=part, rho=rho),
           "final_peak": final_peak(values, depth, level=part),
           "last_above_middle": last_above_middle(values, depth, level=part, rho=rho)}
    out["all"] = all_of(list(out.values()), "J shape: small early, peak at the final block, last band above the middle")
    return out
