r"""Our counterpart of each headline: pure functions from the library's tables to :class:`Finding` rows.

Each ``*_findings`` function takes the table a chapter computed (an :func:`mbt.analyze` table, a logit-lens
table, weight-change series, a swap sweep, a LoRA sweep) and returns one :class:`Finding` per distinct
comparison (:data:`~mbt.paper.headlines.HEADLINES` ids it stands for). Every verdict comes from the verdict
engine (:mod:`mbt.paper.verdicts`): an effect with its interval at a stated level, the decision rule in
words and the minimum detectable effect (MDE), and one of three verdicts — **holds** (the interval lies on
the claimed side), **contradicted** (on the other side) or **inconclusive**. Never a sign or a raw mean.

Families (95 % level unless a Bonferroni correction is stated):

* shape claims over depth — :func:`~mbt.paper.verdicts.band_contrast` of the last 20 % of depth against the
  middle 20–80 % on scale-free quantities (relative mean shift, relative Eq. 1 weight change, CKA, cosine,
  ratios for positive quantities). The interval uses per-layer bootstrap intervals (``layer_cis``, valid
  for any correlation between layers, conservative) where the table has them, otherwise the layer values
  with an autocorrelation-corrected Welch interval (``layers``);
* two curves over layers — :func:`~mbt.paper.verdicts.curve_correlation` (cubic spline in depth removed,
  phase-surrogate null);
* swapping — the sweep's paired bootstrap interval over texts;
* LoRA masks — paired Student t intervals over seeds (:func:`~mbt.paper.verdicts.seed_contrast`);
  claims of several paper models that map to the same comparison are one row
  (:func:`~mbt.paper.verdicts.collapse`); "some middle mask beats 11111" tests every middle mask with a
  Bonferroni correction instead of picking the best one.

Compound claims ("peaks in the middle" = above both neighbours) hold when every part holds and are
contradicted when any part is contradicted, each part at the Bonferroni level ``1 − 0.05/k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mbt.metrics import INTRINSIC_METRICS
from mbt.paper import verdicts as V
from mbt.paper.headlines import BY_ID, HEADLINES
from mbt.paper.verdicts import Decision, Verdict

__all__ = [
    "ALPHA",
    "RETENTION_COLUMNS",
    "Finding",
    "convergence_findings",
    "correlation_findings",
    "divergence_findings",
    "lora_findings",
    "probing_findings",
    "swap_findings",
    "sweep_columns",
    "weights_findings",
]

ALPHA = 0.05
"""Error rate of every verdict: under no true effect, "holds" and "contradicted" together at most 5 %."""

LEVEL = 1.0 - ALPHA


@dataclass(frozen=True)
class Finding:
    """Our counterpart of one headline (or of several that are the same comparison on our pair).

    Attributes:
        id: A :data:`HEADLINES` id (the first one this comparison stands for).
        ours: Our value, formatted for a table.
        verdict: :class:`~mbt.paper.verdicts.Verdict` (``holds`` / ``contradicted`` / ``inconclusive``),
            or ``None`` where no verdict is meaningful (the paper's number was lost, or it is a scale).
        note: One short clause explaining the verdict.
        value: The main number, when there is one (for machine use).
        effect: The effect the verdict is about (``None`` for scale rows).
        ci_low: Lower bound of its interval.
        ci_high: Upper bound.
        level: Confidence level of the interval.
        rule: The decision rule, in words.
        mde: Minimum detectable effect (80 % power at ``level``), in the effect's unit.
        n: Number of units of replication.
        unit: What ``n`` counts (texts, seeds, layers).
        also: Further headline ids that are the same comparison on our pair (counted once).
    """

    id: str
    ours: str
    verdict: Verdict | None = None
    note: str = ""
    value: float | None = None
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    level: float | None = None
    rule: str = ""
    mde: float | None = None
    n: int | None = None
    unit: str = ""
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for hid in (self.id, *self.also):
            if hid not in BY_ID:
                raise ValueError(f"unknown headline id {hid!r}")
        if self.verdict is not None and not isinstance(self.verdict, Verdict):
            object.__setattr__(self, "verdict", Verdict(self.verdict))
        object.__setattr__(self, "also", tuple(self.also))

    @property
    def agrees(self) -> bool | None:
        """Derived from :attr:`verdict`: ``True`` if it holds, ``False`` if contradicted, else ``None``."""
        return {Verdict.HOLDS: True, Verdict.CONTRADICTED: False}.get(self.verdict) if self.verdict else None

    @property
    def ids(self) -> tuple[str, ...]:
        """Every headline id this row stands for."""
        return (self.id, *self.also)

    def interval_text(self) -> str:
        """``"+0.012 [−0.003, +0.027] (95 %)"``, or ``"—"`` for a row without a verdict."""
        if self.effect is None:
            return "—"
        return interval_text(self.effect, self.ci_low, self.ci_high, self.level or LEVEL)


def interval_text(effect: float | None, low: float | None, high: float | None, level: float = LEVEL) -> str:
    """``"+0.012 [−0.003, +0.027] (95%)"`` with enough decimals for the interval's magnitude.

    Three decimals, more when the largest of ``|effect|``, ``|low|``, ``|high|`` is below 0.01
    (``max(3, 2 − ⌊log10 m⌋)``, at most 6), so that a swap effect of 0.001 is not shown as 0.000.
    """
    if effect is None:
        return "—"
    vals = [abs(float(x)) for x in (effect, low, high) if x is not None and math.isfinite(float(x)) and x != 0]
    digits = min(6, max(3, 2 - math.floor(math.log10(max(vals))))) if vals else 3
    return V.effect_text(V.Interval(float(effect), _nan(low), _nan(high), level, float("nan"), 0), digits)


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _judged(hid: str, ours: str, d: Decision, *, note: str = "", value: float | None = None,
            also: Sequence[str] = ()) -> Finding:
    """A :class:`Finding` carrying a decision's verdict, effect, interval, rule and MDE."""
    return Finding(hid, ours, d.verdict, note, float(d.effect) if value is None else value, float(d.effect),
                   float(d.ci_low), float(d.ci_high), float(d.level), d.rule, float(d.mde), int(d.n), d.unit,
                   tuple(also))


def _undecidable(reason: str, unit: str = "layers", level: float = LEVEL) -> Decision:
    """An inconclusive decision with the reason as its rule (too few layers, seeds, no interval …)."""
    nan = float("nan")
    return Decision(Verdict.INCONCLUSIVE, nan, nan, nan, level, f"not decidable here: {reason}", nan, 0, unit)


def _all_index(parts: Sequence[Decision]) -> int:
    """Index of the part that decides a compound claim: the first contradicted, else inconclusive, else 0."""
    verdicts = [p.verdict for p in parts]
    for v in (Verdict.CONTRADICTED, Verdict.INCONCLUSIVE):
        if v in verdicts:
            return verdicts.index(v)
    return 0


def _all_of(parts: Sequence[Decision], what: str) -> Decision:
    """Compound claim: **holds** if every part holds, **contradicted** if any part is, else inconclusive.

    The row shows the part that decides (a contradicted one, else an inconclusive one, else the first).
    Parts are computed at ``1 − α/k`` (Bonferroni), so under no effect the union "some part contradicted"
    has probability at most ``α``; "all hold" is an intersection-union test, at most ``α`` too.
    """
    if not parts:
        return _undecidable(f"no part of {what} could be computed")
    shown = parts[_all_index(parts)]
    verdict = shown.verdict
    k = len(parts)
    rule = (f"{what}: holds if all {k} parts hold, contradicted if any is contradicted"
            + (f" (each at {1 - ALPHA / k:.4g}, Bonferroni over {k})" if k > 1 else "") + "; part shown: " + shown.rule)
    return replace(shown, verdict=verdict, rule=rule)


def _any_of(parts: Sequence[Decision], what: str) -> Decision:
    """Union claim ("some middle mask beats 11111"): **holds** if any part holds, **contradicted** if all are.

    Parts must be computed at ``1 − α/k`` (Bonferroni), so that "some part holds" by chance has
    probability at most ``α``. The row shows a holding part, else the one with the largest effect.
    """
    if not parts:
        return _undecidable(f"no part of {what} could be computed", unit="seeds")
    verdicts = [p.verdict for p in parts]
    if Verdict.HOLDS in verdicts:
        verdict, shown = Verdict.HOLDS, max((p for p in parts if p.verdict == Verdict.HOLDS), key=lambda p: p.effect)
    else:
        verdict = Verdict.CONTRADICTED if all(v == Verdict.CONTRADICTED for v in verdicts) else Verdict.INCONCLUSIVE
        finite = [p for p in parts if math.isfinite(p.effect)]
        shown = max(finite, key=lambda p: p.effect) if finite else parts[0]
    k = len(parts)
    rule = (f"{what}: holds if any of {k} parts holds, contradicted if all are contradicted (each at "
            f"{1 - ALPHA / k:.4g}, Bonferroni over {k}); part shown: {shown.rule}")
    return replace(shown, verdict=verdict, rule=rule)


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
# Table access
# ==============================================================================================


def _rows(frame: pd.DataFrame, metric: str, model: str) -> pd.DataFrame:
    """Rows of one metric and model, one per layer, sorted by layer."""
    rows = frame[(frame["metric"] == metric) & (frame["model"] == model)]
    if rows["layer"].duplicated().any():
        raise ValueError(f"several rows per layer for {model}:{metric}; filter the table to one dataset first")
    return rows.set_index("layer").sort_index()


def _series(frame: pd.DataFrame, metric: str, model: str) -> pd.Series:
    """``value`` per layer for one metric and model of a tidy :func:`mbt.analyze` table."""
    rows = _rows(frame, metric, model)
    if rows.empty:
        return pd.Series(dtype=float)
    return rows["value"].astype(float)


def _n_layers(frame: pd.DataFrame) -> int:
    sel = frame[frame["depth"] > 0]
    if sel.empty:
        return int(frame["layer"].max())
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def _depth(layer: float, L: int) -> float:
    return float(layer) / L


def _shape(values: pd.Series, L: int, *, low: pd.Series | None = None, high: pd.Series | None = None,
           band: tuple[float, float] = V.BANDS["last"], reference: tuple[float, float] = V.BANDS["middle"],
           statistic: str = "difference", side: int = 1, threshold: float = 0.0, level: float = LEVEL) -> Decision:
    r"""A band contrast of a per-layer curve (:func:`~mbt.paper.verdicts.band_contrast`), never raising.

    With per-layer intervals ``low``/``high`` (finite for every layer) the interval is the bound from
    per-layer intervals (``unit="layer_cis"``: ``SE(B − R) ≤ mean_band(se_l) + mean_ref(se_l)``, valid
    for any correlation between layers); otherwise the layer values themselves are the units
    (``unit="layers"``, autocorrelation-corrected Welch). A band with too few layers gives an
    inconclusive decision with the reason.
    """
    v = values.astype(float)
    depth = np.array([_depth(i, L) for i in v.index])
    kw: dict[str, Any] = dict(band=band, reference=reference, statistic=statistic, side=side, threshold=threshold,
                              level=level)
    try:
        if low is not None and high is not None:
            lo, hi = low.reindex(v.index).astype(float), high.reindex(v.index).astype(float)
            if np.isfinite(lo.to_numpy()).all() and np.isfinite(hi.to_numpy()).all():
                return V.band_contrast(v.to_numpy(), depth, unit="layer_cis", ci_low=lo.to_numpy(),
                                       ci_high=hi.to_numpy(), **kw)
        return V.band_contrast(v.to_numpy(), depth, unit="layers", **kw)
    except ValueError as err:
        return _undecidable(str(err), level=level)


def _shape_of(frame: pd.DataFrame, metric: str, model: str, L: int, transform: Callable[[pd.Series], pd.Series]
              | None = None, **kw: Any) -> Decision:
    """:func:`_shape` of one metric of an analyze table (its per-layer intervals when it has them)."""
    rows = _rows(frame, metric, model)
    v, lo, hi = rows["value"].astype(float), rows.get("ci_low"), rows.get("ci_high")
    if transform is not None:
        v, lo, hi = transform(v), None if lo is None else transform(lo), None if hi is None else transform(hi)
        if lo is not None and hi is not None:
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return _shape(v, L, low=lo, high=hi, **kw)


def _ours(d: Decision, what: str) -> str:
    """What the effect of ``d`` is, in words (the effect and its interval are rendered from the finding's fields)."""
    return what.rstrip(": ")


def _band_name(band: tuple[float, float]) -> str:
    return f"depth {max(band[0], 0.0):g}–{band[1]:g}"


# ==============================================================================================
# Fig. 1: divergence
# ==============================================================================================


def divergence_findings(frame: pd.DataFrame, *,
                        halves: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[Finding]:
    r"""Fig. 1 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    * ``middle_stable``: ``mean_{last}(1 − CKA) − mean_{middle}(1 − CKA) > 0`` (last 20 % vs 20–80 % depth);
    * ``cka_plateau``: ``mean_{(0.875, 1]} CKA − mean_{(0.2, 0.875]} CKA < 0`` (the drop after the plateau);
    * ``cka_drop_start``: per-layer decrease ``s_l = CKA_{l−1} − CKA_l`` (``l ≥ 2``) larger in the last 20 %
      than in the middle;
    * ``mean_shift_shallow``: relative mean shift ``ρ_l = ‖μ_SFT − μ_Base‖/‖μ_Base‖`` over depth
      ``(0, 0.5]`` below a quarter of the last band: ``mean_{(0,0.5]} ρ / mean_{last} ρ − 1 < −0.75``;
    * ``mean_shift_final``: ``mean_{last} ρ / mean_{middle} ρ − 1 > 0``;
    * ``cosine_agrees``: cosine similarity lower in the last band than in the middle;
    * ``seed_robust``: the cosine (else 1 − CKA) contrast replicated on two disjoint halves of the texts —
      holds if it holds on both, contradicted if it is contradicted on either;
    * ``cka_final``: scale only (the paper's value was lost).

    The raw ``mean_shift`` grows with the residual-stream norm, so it gets no verdict; without a
    ``relative_mean_shift`` metric in the table the two mean-shift rows are shown for scale only.

    Args:
        frame: Analyze table (one dataset) with the pair metrics ``cka``, ``cosine_similarity``,
            ``mean_shift`` and ``relative_mean_shift``.
        halves: The same pair metrics on two disjoint halves of the sample (:func:`analyze_halves`),
            for the robustness claim; omitted when ``None``.

    Returns:
        Findings for ``middle_stable``, ``cka_plateau``, ``cka_drop_start``, ``cka_final``,
        ``mean_shift_shallow``, ``mean_shift_final``, ``cosine_agrees`` and ``seed_robust``.
    """
    L = _n_layers(frame)
    cka = _series(frame, "cka", "pair")
    if cka.empty:
        raise ValueError("the table has no 'cka' rows (run analyze with the pair metrics)")
    out: list[Finding] = []

    def dist(v: pd.Series) -> pd.Series:
        return 1.0 - v

    d = _shape_of(frame, "cka", "pair", L, transform=dist)
    worst = int(dist(cka).drop(index=0, errors="ignore").idxmax())
    out.append(_judged("middle_stable", _ours(d, "1 − CKA, last 20 % − middle:") +
                       f"; largest at layer {worst} (depth {_depth(worst, L):.2f})", d,
                       note="the final layers differ more than the middle" if d.verdict == Verdict.HOLDS
                       else "the final layers do not differ more than the middle" if d.verdict == Verdict.CONTRADICTED
                       else "this sample cannot tell whether the final layers differ more"))
    plateau = (0.2, 0.875)
    d = _shape_of(frame, "cka", "pair", L, band=(0.875, 1.0), reference=plateau, side=-1)
    band = cka[[plateau[0] < _depth(i, L) <= plateau[1] for i in cka.index]]
    out.append(_judged("cka_plateau", _ours(d, "CKA, depth > 0.875 − plateau:") +
                       f"; plateau {_fmt(band.min())}–{_fmt(band.max())}", d,
                       note="tests the drop after the plateau; the plateau level was lost", value=float(band.min())
                       if len(band) else None))
    steps = (cka.shift(1) - cka).drop(index=[0, 1], errors="ignore").dropna()
    rows = _rows(frame, "cka", "pair")
    lo_s = hi_s = None
    if {"ci_low", "ci_high"} <= set(rows.columns) and np.isfinite(rows[["ci_low", "ci_high"]].to_numpy()).all():
        z = V.normal_quantile(0.975)
        se = (rows["ci_high"] - rows["ci_low"]) / (2 * z)
        half = z * (se.shift(1) + se).reindex(steps.index)
        lo_s, hi_s = steps - half, steps + half
    d = _shape(steps, L, low=lo_s, high=hi_s)
    big = int(steps.idxmax()) if len(steps) else L
    out.append(_judged("cka_drop_start", _ours(d, "per-layer CKA decrease, last 20 % − middle:") +
                       f"; largest step {big - 1} → {big} (depth {_depth(big, L):.2f})", d,
                       note="the decrease concentrates in the last 20 %" if d.verdict == Verdict.HOLDS else
                       "the per-layer decrease is not larger in the last 20 %" if d.verdict == Verdict.CONTRADICTED
                       else "this sample cannot place the drop", value=_depth(big, L)))
    prev = f" ({_fmt(cka.loc[L - 1])} at {L - 1})" if L - 1 in cka.index else ""
    out.append(Finding("cka_final", f"{_fmt(cka.loc[L])} at layer {L}{prev}", None,
                       "the paper's value was lost in extraction; shown for scale", float(cka.loc[L])))
    rel = _series(frame, "relative_mean_shift", "pair")
    raw = _series(frame, "mean_shift", "pair")
    if not rel.empty:
        d = _shape_of(frame, "relative_mean_shift", "pair", L, band=(0.0, 0.5), reference=V.BANDS["last"],
                      statistic="ratio", side=-1, threshold=-0.75)
        out.append(_judged("mean_shift_shallow", _ours(d, "relative shift, depth ≤ 0.5 ÷ last 20 % − 1:"), d,
                           note="negligible = below a quarter of the last band's relative shift (threshold −0.75)",
                           value=float(rel[[0 < _depth(i, L) <= 0.5 for i in rel.index]].max())))
        d = _shape_of(frame, "relative_mean_shift", "pair", L, statistic="ratio")
        top = int(rel.idxmax())
        out.append(_judged("mean_shift_final", _ours(d, "relative shift, last 20 % ÷ middle − 1:") +
                           f"; max {_fmt(rel.max())} at layer {top}", d,
                           note="relative to the Base centroid norm, so a uniform rescaling is flat",
                           value=float(rel.max())))
    elif not raw.empty:
        for hid in ("mean_shift_shallow", "mean_shift_final"):
            out.append(Finding(hid, f"max {_fmt(raw.max())} at layer {int(raw.idxmax())} (unnormalised)", None,
                               "the raw shift grows with the residual-stream norm; a verdict needs "
                               "relative_mean_shift in the table", float(raw.max())))
    cos = _rows(frame, "cosine_similarity", "pair")
    if not cos.empty:
        d = _shape_of(frame, "cosine_similarity", "pair", L, side=-1)
        low = int(cos["value"].drop(index=0, errors="ignore").idxmin())
        out.append(_judged("cosine_agrees", _ours(d, "cosine, last 20 % − middle:") + f"; lowest at layer {low}", d,
                           note="per-layer bootstrap intervals over texts, bound for any correlation between layers",
                           value=float(cos.loc[low, "value"])))
    if halves is not None:
        parts = []
        for h in halves:
            if not _rows(h, "cosine_similarity", "pair").empty:
                parts.append(_shape_of(h, "cosine_similarity", "pair", L, side=-1, level=LEVEL))
            else:
                parts.append(_shape_of(h, "cka", "pair", L, transform=dist))
        a, b = parts
        se = math.hypot(*(((p.ci_high - p.ci_low) / (2 * V.normal_quantile(0.975))) for p in parts))
        diff = b.effect - a.effect
        z = V.normal_quantile(0.975)
        verdicts = [p.verdict for p in parts]
        verdict = (Verdict.HOLDS if all(v == Verdict.HOLDS for v in verdicts) else
                   Verdict.CONTRADICTED if Verdict.CONTRADICTED in verdicts else Verdict.INCONCLUSIVE)
        rule = ("replication on two disjoint halves of the texts: holds if the last-vs-middle contrast holds on "
                "both halves, contradicted if it is contradicted on either; effect = half 2 − half 1")
        d = Decision(verdict, diff, diff - z * se, diff + z * se, LEVEL, rule, V.mde(se), a.n + b.n, a.unit)
        out.append(_judged("seed_robust", f"half 1: {V.effect_text(a)} ({a.verdict}); half 2: {V.effect_text(b)} "
                           f"({b.verdict})", d, note="independent texts, not identical re-runs (the authors' check)"))
    return out


def _finite(s: pd.Series) -> pd.Series:
    return s[np.isfinite(s.to_numpy(float))]


_LOG_METRICS = ("condition_number", "spectral_norm")


# ==============================================================================================
# Fig. 2: convergence
# ==============================================================================================


def _single_vs_band(values: pd.Series, L: int, single: int, reference: tuple[float, float], *, side: int,
                    level: float) -> Decision:
    r"""Is one layer's value above (``side=+1``) the values of a reference band?

    Prediction-interval test: ``e = v_single − v̄_ref``,
    ``SE = s_ref·√(1 + 1/n_eff)`` with ``n_eff = n·(1 − ρ)/(1 + ρ)`` (``ρ`` the lag-1
    autocorrelation of the band, clipped to ``[0, 0.95]``), Student t with ``n_ref − 1`` df.
    """
    ref = _finite(values[[reference[0] < _depth(i, L) <= reference[1] for i in values.index]])
    if single not in values.index or len(ref) < 3 or not np.isfinite(values.loc[single]):
        return _undecidable(f"layer {single} or at least 3 layers of {_band_name(reference)} missing", level=level)
    r = ref.to_numpy(float)
    c = r - r.mean()
    rho = float(c[:-1] @ c[1:] / (c @ c)) if (c @ c) > 0 else 0.0
    rho = min(max(rho, 0.0), 0.95)
    n_eff = max(r.size * (1 - rho) / (1 + rho), 2.0)
    se = float(r.std(ddof=1)) * math.sqrt(1 + 1 / n_eff)
    est = float(values.loc[single]) - float(r.mean())
    df = float(r.size - 1)
    half = V.t_quantile((1 + level) / 2, df) * se
    iv = V.Interval(est, est - half, est + half, level, se, int(r.size), "layers",
                    f"layer {single} vs {_band_name(reference)}, prediction interval over layers", df)
    return V.direction(iv, side=side)


def convergence_findings(frame: pd.DataFrame, *, n_surrogates: int = 999) -> list[Finding]:
    r"""Fig. 2 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    * ``synchronised``: for every intrinsic metric, :func:`~mbt.paper.verdicts.curve_correlation` of the
      Base and SFT curves (log scale for σ_max and the condition number; a cubic spline in depth
      removed, phase surrogates), each at ``1 − 0.05/m``; holds if all ``m`` hold;
    * ``three_stages``: for every metric, normalised Base steps ``|Δv_l| / range(v)``: the 0 → 1 step above
      the middle steps (prediction interval) and the last-20 % steps above the middle ones (band
      contrast); holds if all ``2m`` parts hold (Bonferroni);
    * ``erank_peak``: SFT effective rank, middle band above both the early band ``(0, 0.2]`` and the last
      band (ratio contrasts, Bonferroni over 2);
    * ``erank_collapse``: SFT effective rank lower in the last band than in the middle (ratio);
    * ``cond_trough``, ``spectral_norm_500``: scale only (the trough was lost; σ_max grows with ``N``
      and the residual-stream norm, so 500 is not comparable).

    Args:
        frame: Analyze table of one dataset.
        n_surrogates: Surrogates per curve correlation.

    Returns:
        Findings for ``synchronised``, ``three_stages``, ``erank_peak``, ``cond_trough``,
        ``erank_collapse`` and ``spectral_norm_500``.
    """
    L = _n_layers(frame)
    metrics = [m for m in INTRINSIC_METRICS if not _series(frame, m, "base").empty]
    curves: dict[str, pd.DataFrame] = {}
    for m in metrics:
        both = pd.concat([_series(frame, m, "base"), _series(frame, m, "sft")], axis=1, join="inner")
        both = both[np.isfinite(both.to_numpy(float)).all(axis=1)]
        if m in _LOG_METRICS:
            both = np.log(both.clip(lower=1e-300))
        curves[m] = both
    usable = {m: c for m, c in curves.items() if len(c) >= 7 and c.std().min() > 0}
    k = max(len(usable), 1)
    rs = {}
    for m, c in usable.items():
        try:
            rs[m] = V.curve_correlation(c.iloc[:, 0].to_numpy(), c.iloc[:, 1].to_numpy(),
                                        np.array([_depth(i, L) for i in c.index]), side=1, level=1 - ALPHA / k,
                                        n_surrogates=n_surrogates)
        except ValueError:
            continue
    if rs:
        d = _all_of(list(rs.values()), "Base and SFT curves co-vary beyond depth for every metric")
        weakest = min(rs, key=lambda m: rs[m].effect if math.isfinite(rs[m].effect) else -2)
        shown = list(rs)[_all_index(list(rs.values()))]
        out = [_judged("synchronised", f"residual r(Base, SFT) {_fmt(min(v.effect for v in rs.values()), 2)}–"
                       f"{_fmt(max(v.effect for v in rs.values()), 2)} over {len(rs)} metrics; effect: {shown}", d,
                       note=f"weakest: {weakest}",
                       value=float(np.median([v.effect for v in rs.values()])))]
    else:
        out = [_judged("synchronised", "no metric has enough layers", _undecidable("fewer than 7 layers per curve"))]
    parts: list[Decision] = []
    m_parts = max(len(curves), 1)
    lvl = 1 - ALPHA / (2 * m_parts)
    for c in curves.values():
        v = c.iloc[:, 0]
        rng = float(v.max() - v.min())
        if rng <= 0 or len(v) < 4:
            continue
        step = (v.diff().abs() / rng).dropna()
        parts.append(_single_vs_band(step, L, 1, V.BANDS["middle"], side=1, level=lvl))
        parts.append(_shape(step, L, level=lvl))
    d = _all_of(parts, "the 0 → 1 step and the last-20 % steps exceed the middle steps, for every metric")
    out.append(_judged("three_stages", _ours(d, "part shown:"), d,
                       note=f"{sum(p.verdict == Verdict.HOLDS for p in parts)} of {len(parts)} parts hold"))
    erank = _finite(_series(frame, "effective_rank", "sft").drop(index=0, errors="ignore"))
    if not erank.empty:
        early = (0.0, 0.2)
        peak = int(erank.idxmax())
        sides = [_shape(erank, L, band=V.BANDS["middle"], reference=ref, statistic="ratio", level=1 - ALPHA / 2)
                 for ref in (early, V.BANDS["last"])]
        d = _all_of(sides, "middle band above the early and the last band")
        out.append(_judged("erank_peak", _ours(d, "middle ÷ neighbour − 1 (part shown):") +
                           f"; peak {_fmt(erank.max())} at layer {peak} (depth {_depth(peak, L):.2f})", d,
                           note="layers ≥ 1; ratio of band means", value=float(erank.max())))
        d = _shape(erank, L, statistic="ratio", side=-1)
        out.append(_judged("erank_collapse", _ours(d, "last 20 % ÷ middle − 1:") +
                           f"; {_fmt(erank.loc[erank.index.max()])} at layer {int(erank.index.max())}", d,
                           note="a decrease; the paper's collapse value was lost",
                           value=float(erank.loc[erank.index.max()])))
    cond = _finite(_series(frame, "condition_number", "sft").drop(index=0, errors="ignore"))
    if not cond.empty:
        trough = int(cond.idxmin())
        out.append(Finding("cond_trough", f"min {_fmt(cond.min())} at layer {trough} (depth {_depth(trough, L):.2f})",
                           None, "the paper's trough value was lost; shown for scale", float(cond.min())))
    sn = _finite(_series(frame, "spectral_norm", "sft"))
    if not sn.empty:
        top = int(sn.idxmax())
        n_rows = frame.loc[frame["metric"] == "spectral_norm", "n"]
        n_pooled = int(n_rows.max()) if len(n_rows) else 0
        out.append(Finding("spectral_norm_500", f"max {_fmt(sn.max())} at layer {top} (N = {n_pooled})", None,
                           "σ_max grows with N and the residual-stream norm, so 500 is not comparable; shown for scale",
                           float(sn.max())))
    return out


# ==============================================================================================
# Fig. 3: probing
# ==============================================================================================


def probing_findings(lens: pd.DataFrame, *, model: str = "sft") -> list[Finding]:
    r"""Fig. 3 counterparts from concatenated :func:`mbt.probe.logit_lens` tables.

    Uses the token-weighted ``pooled`` accuracy (the authors' number) with its cluster-bootstrap
    interval per layer when present (else the per-text mean ``value`` with ``ci_low/ci_high``); the
    contrasts bound their standard error by the per-layer intervals (any correlation between layers).

    * ``probe_early``: ``mean_{depth ≤ 50/64} acc ÷ mean_{depth > 50/64} acc − 1 < −0.5`` (low = below
      half of the late accuracy);
    * ``probe_rise``: ``mean_{depth > 50/64} acc − mean_{depth ≤ 50/64} acc > 0`` (the 0.60 level depends
      on the model and task and is not compared);
    * ``probe_final_dip``: ``acc_L − acc_{L−1} < 0`` with the correct single final norm; the value with
      the norm applied twice (the authors' code) is shown next to it.

    Args:
        lens: Logit-lens tables with a ``model`` column and the library's ``paper`` column, metric
            ``top1_acc``.
        model: Which model's curve to compare (the paper does not say; SFT by default).

    Returns:
        Findings for ``probe_early``, ``probe_rise`` and ``probe_final_dip``.
    """
    sel = lens[(lens["metric"] == "top1_acc") & (lens["model"] == model)]
    once_rows = sel[~sel["paper"].astype(bool)].set_index("layer").sort_index()
    twice_rows = sel[sel["paper"].astype(bool)].set_index("layer").sort_index()
    L = _n_layers(sel)
    col, lo_col, hi_col = "pooled", "pooled_ci_low", "pooled_ci_high"
    if not {lo_col, hi_col} <= set(once_rows.columns) or not np.isfinite(once_rows[[lo_col, hi_col]]
                                                                         .to_numpy(float)).all():
        col, lo_col, hi_col = ("value", "ci_low", "ci_high") if "value" in once_rows.columns else (col, lo_col, hi_col)
    once = once_rows[col].astype(float)
    lo, hi = once_rows.get(lo_col), once_rows.get(hi_col)
    split = 50 / 64
    early, late = (-1.0, split), (split, 1.0)
    d = _shape(once, L, low=lo, high=hi, band=early, reference=late, statistic="ratio", side=-1, threshold=-0.5)
    early_max = float(once[[_depth(i, L) <= split for i in once.index]].max())
    out = [_judged("probe_early", _ours(d, "depth ≤ 0.78 ÷ later − 1:") + f"; max {_fmt(early_max)} early", d,
                   note="low = below half of the later accuracy (threshold −0.5)", value=early_max)]
    d = _shape(once, L, low=lo, high=hi, band=late, reference=early)
    out.append(_judged("probe_rise", _ours(d, "later − depth ≤ 0.78:") + f"; peak {_fmt(once.max())}", d,
                       note="a rise in the last 22 % of depth; the 0.60 level depends on the model and task",
                       value=float(once.max())))
    if L - 1 in once.index and L in once.index:
        a, b = float(once.loc[L - 1]), float(once.loc[L])
        c = float(twice_rows.loc[L, col]) if L in twice_rows.index else float("nan")
        last, prev = (_depth(L - 1, L), 1.0), (_depth(L - 2, L), _depth(L - 1, L))
        pair = once.loc[[L - 1, L]]
        d = _shape(pair, L, low=None if lo is None else lo.loc[[L - 1, L]],
                   high=None if hi is None else hi.loc[[L - 1, L]], band=last, reference=prev, side=-1)
        if not (lo is not None and hi is not None and np.isfinite([lo.loc[L - 1], lo.loc[L], hi.loc[L - 1],
                                                                    hi.loc[L]]).all()):
            d = _undecidable("the lens table has no per-layer intervals for the last two layers")
        twice = (" the dip appears only with the final norm applied twice" if c < a and d.verdict != Verdict.HOLDS
                 else "")
        out.append(_judged("probe_final_dip", f"{_fmt(a)} → {_fmt(b)} (single norm); → {_fmt(c)} (norm twice); "
                           "effect: acc_L − acc_(L−1), single norm", d,
                           note="layer L − (L − 1), SE bounded by the two layers' intervals;"
                           + twice, value=b - a))
    return out


# ==============================================================================================
# Fig. 4–5: weights
# ==============================================================================================


def weights_findings(checkpoint: pd.Series, finetune: pd.Series | None = None) -> list[Finding]:
    r"""Fig. 4 counterparts.

    * ``weight_j``: relative Eq. 1 change per block, ``c_b = Σ‖ΔW‖_F / Σ‖W_Base‖_F``, last 20 % of the
      blocks against the middle 20–80 %: ``gmean_{last} c ÷ gmean_{middle} c − 1 > 0`` with the blocks as
      units (autocorrelation-corrected Welch interval on ``log c``);
    * ``weight_final``: scale only (set by learning rate and steps).

    Args:
        checkpoint: Relative Eq. 1 change per block from the checkpoints
            (``block_series(weight_change(pair), kind="eq1", column="relative")``), indexed ``1..L``.
        finetune: The own-fine-tune mean ‖Δθ‖_F per block (``kind="block_mean"``), the authors' Fig. 4
            quantity; omitted when ``None``.

    Returns:
        Findings for ``weight_j`` and, with ``finetune``, ``weight_final``.
    """
    s = checkpoint.sort_index().astype(float)
    L = int(s.index.max())
    d = _shape(s, L, statistic="ratio")
    early = float(s[[_depth(b, L) <= 0.5 for b in s.index]].mean())
    out = [_judged("weight_j", _ours(d, "last 20 % ÷ middle − 1:") + f"; early mean {_fmt(early)}, last block "
                   f"{_fmt(s.loc[L])}, max at block {int(s.idxmax())}", d,
                   note="relative Eq. 1 change (÷ ‖W_Base‖_F), ratio of geometric means", value=float(s.loc[L]))]
    if finetune is not None:
        f = finetune.sort_index().astype(float)
        out.append(Finding("weight_final", f"{_fmt(f.loc[f.index.max()])} (max at block {int(f.idxmax())})", None,
                           "scale set by learning rate and steps, not comparable across set-ups; shown for scale",
                           float(f.loc[f.index.max()])))
    return out


def correlation_findings(weights: pd.Series, metrics: pd.DataFrame, *, cosine: str = "cosine_similarity",
                         spectral: str = "spectral_norm", n_surrogates: int = 999) -> list[Finding]:
    r"""Fig. 5 counterparts: weight change against a metric over layers, beyond their shared depth trend.

    :func:`~mbt.paper.verdicts.curve_correlation` of the relative Eq. 1 change per block (block ``b``
    feeds layer ``b``) with the metric per layer: both residualised on a cubic regression spline in
    depth, ``r`` of the residuals, interval from phase-randomised surrogates (smooth-curve null, not
    independent layers). σ_max is compared on a log scale.

    * ``corr_cosine``: ``r < 0`` (side −1);
    * ``corr_spectral``: ``r > 0``.

    Args:
        weights: Relative Eq. 1 change per block, indexed by block ``1..L``.
        metrics: Per-layer metrics (:func:`mbt.book.metric_table`), indexed by layer.
        cosine: Column of the cosine similarity.
        spectral: Column of the spectral norm.
        n_surrogates: Surrogates of the null.

    Returns:
        Findings for ``corr_cosine`` and ``corr_spectral`` (those whose column exists).
    """
    out = []
    w = weights.sort_index().astype(float)
    L = int(max(w.index.max(), metrics.index.max()))
    for hid, column, side in (("corr_cosine", cosine, -1), ("corr_spectral", spectral, 1)):
        if column not in metrics.columns:
            continue
        y = metrics[column].astype(float)
        if column in _LOG_METRICS:
            y = np.log(y.clip(lower=1e-300))
        both = pd.concat([w, y], axis=1, join="inner")
        both = both[np.isfinite(both.to_numpy(float)).all(axis=1)]
        try:
            d = V.curve_correlation(both.iloc[:, 0].to_numpy(), both.iloc[:, 1].to_numpy(),
                                    np.array([_depth(i, L) for i in both.index]), side=side,
                                    n_surrogates=n_surrogates)
        except ValueError as err:
            d = _undecidable(str(err))
        raw = float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1]) if len(both) > 2 else float("nan")
        out.append(_judged(hid, f"raw r = {raw:+.2f}; effect: r given a depth spline (p = {_fmt(d.p, 3)})",
                           d, note=f"{len(both)} layers; the raw r includes the shared depth trend", value=raw))
    return out


# ==============================================================================================
# Fig. 6: swapping
# ==============================================================================================


def swap_findings(sweep: pd.DataFrame) -> list[Finding]:
    r"""Fig. 6 counterparts from a :func:`mbt.swap.swap_sweep` table (SFT → Base, receiver's head).

    The effect is the sweep's mean paired change in token accuracy over texts (swapped − unswapped)
    with its paired bootstrap interval (``diff_ci_low``/``diff_ci_high``); the claimed side is the sign
    of the paper's value (first −, middle +, last −). The note says whether our MDE can resolve an
    effect of the paper's size.

    Returns:
        Findings for ``swap_first``, ``swap_middle`` and ``swap_last``.
    """
    rows = sweep[(sweep["kind"] == "swap") & (sweep["receiver"] == "base") & (sweep["head"] == "receiver")]
    rows = rows.set_index("segment").sort_index()
    if rows.empty:
        return []
    n = int(rows.index.max()) + 1
    out = []
    for hid, seg, paper in (("swap_first", 0, -0.001), ("swap_middle", n // 2, 0.003), ("swap_last", n - 1, -0.002)):
        r = rows.loc[seg]
        iv = V.interval_from_summary(float(r["diff"]), float(r["diff_ci_low"]), float(r["diff_ci_high"]),
                                     n=int(r["n"]), method="the sweep's paired bootstrap over texts")
        d = V.direction(iv, side=1 if paper > 0 else -1)
        if float(r["diff"]) == 0.0 and float(r["diff_ci_low"]) == float(r["diff_ci_high"]) == 0.0:
            note = "no text's score changed at all"
        else:
            note = (f"MDE {_fmt(d.mde, 4)} " + ("resolves" if d.mde <= abs(paper) else "is larger than")
                    + f" an effect of the paper's size ({paper:+g})")
        out.append(_judged(hid, f"token accuracy, swapped − unswapped, {int(r['n'])} texts", d, note=note))
    return out


# ==============================================================================================
# Fig. 7, Appendix A/B: Mid-Block LoRA
# ==============================================================================================

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


def _by_seed(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as a seeds × masks table (mean over duplicate rows of a mask and seed)."""
    t = table.assign(mask=table["mask"].astype(str))
    if "seed" not in t.columns:
        t = t.assign(seed=0)
    return t.pivot_table(index="seed", columns="mask", values=column, aggfunc="mean")


def _paired(piv: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores of masks ``a`` and ``b`` on the seeds both ran (paired by seed)."""
    x, y = piv[a].to_numpy(float), piv[b].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _mask_text(piv: pd.DataFrame, m: str) -> str:
    v = piv[m].dropna()
    sd = f" ± {_fmt(v.std(ddof=1), 3)} sd" if len(v) > 1 else ""
    return f"{_fmt(v.mean(), 3)}{sd} ({len(v)} seed{'s' if len(v) != 1 else ''})"


def _contrast(piv: pd.DataFrame, a: str, b: str, *, side: int, level: float = LEVEL,
              threshold: float = 0.0) -> Decision:
    """Paired seed contrast ``a − b`` (:func:`~mbt.paper.verdicts.seed_contrast`), inconclusive with < 2 seeds."""
    x, y = _paired(piv, a, b)
    if x.size < 2:
        return _undecidable(f"{a} and {b} share {x.size} seed(s); a seed-to-seed spread needs at least 2",
                            unit="seeds", level=level)
    return V.seed_contrast(x, y, side=side, threshold=threshold, level=level)


def lora_findings(table: pd.DataFrame) -> list[Finding]:
    r"""Fig. 7 and Appendix A/B counterparts from a LoRA sweep table (one row per mask and seed).

    Masks trained with the same seeds are paired by seed; every comparison is a Student t interval
    over seeds (:func:`~mbt.paper.verdicts.seed_contrast`), exact for normal seed noise even with 3
    seeds, and inconclusive with fewer than 2 shared seeds.

    * per-mask claims: ``mask − 11111 > 0`` for a middle mask, ``< 0`` for an edge mask. Claims of
      different paper models that are the same comparison here (``10000`` for 13B and 32B) are one row
      (:func:`~mbt.paper.verdicts.collapse`); the four ``11111`` numbers are one scale row;
    * ``lora_gain``: every middle mask (first and last segment off) against ``11111`` at the Bonferroni
      level ``1 − 0.05/k``; holds if any holds, contradicted if all are contradicted. No best-of-k
      selection: picking the best mask and testing it at 95 % would be right by chance far too often;
    * ``lora_edge_gap``: per seed ``g = (middle − edge) / middle`` for every (middle, edge) pair, one-sample
      t interval against 0.20, Bonferroni over the pairs; holds if any pair holds;
    * ``appA_3_peak``: ``010 − 100 > 0`` and ``010 − 001 > 0``; ``appA_10_peak``: segment 5 above
      segments 1 and 10, and 10 below 1 (Bonferroni, all must hold);
    * ``appB_middle_best``: per seed ``|r_m − r_00000| − |r_00110 − r_00000| > 0`` for every other tuned
      mask ``m`` on the first retention column (Bonferroni, all must hold);
    * single-segment scores and retention values: scale only.

    Returns:
        One finding per distinct comparison the table can answer.
    """
    cols = sweep_columns(table)
    score = cols["score"]
    if score is None:
        raise ValueError(f"the sweep table has no 'accuracy' column: {list(table.columns)}")
    piv = _by_seed(table, score)
    masks = set(piv.columns)
    out: list[Finding] = []
    full = "11111"
    refs = [h.id for h in HEADLINES if h.id.startswith("lora_") and h.id.endswith("_" + full)]
    if full in masks:
        out.append(Finding(refs[0], _mask_text(piv, full), None, "reference; the paper's values differ by model "
                           "size", float(piv[full].mean()), also=tuple(refs[1:])))
    decisions: list[Decision] = []
    for h in HEADLINES:
        if not h.id.startswith("lora_") or h.id in ("lora_gain", "lora_edge_gap", "lora_mistral") or h.id in refs:
            continue
        m = h.id.rsplit("_", 1)[1]
        if m not in masks or full not in masks:
            continue
        middle = m[0] == "0" and m[-1] == "0"
        d = _contrast(piv, m, full, side=1 if middle else -1)
        decisions.append(replace(d, key=f"{m} vs {full}", sources=(h.id,), paper=(f"{h.paper} ({h.model})",)))
    for d in V.collapse(decisions):
        m = d.key.split(" ")[0]
        out.append(_judged(d.sources[0], f"{m} {_mask_text(piv, m)}; effect: {m} − {full}, paired by seed", d,
                           note=f"{'above' if m[0] == '0' and m[-1] == '0' else 'below'} 11111 claimed; paired by seed",
                           value=float(piv[m].mean()), also=d.sources[1:]))
    five = sorted(m for m in masks if len(m) == 5 and m not in ("00000", full))
    middles = [m for m in five if m[0] == "0" and m[-1] == "0"]
    edges = [m for m in ("10000", "00001") if m in masks]
    if middles and full in masks:
        k = len(middles)
        parts = [replace(_contrast(piv, m, full, side=1, level=1 - ALPHA / k), key=m) for m in middles]
        d = _any_of(parts, f"some middle mask ({', '.join(middles)}) beats 11111")
        out.append(_judged("lora_gain", f"effect: {d.key} − 11111 ({d.effect * 100:+.1f} points)"
                           if math.isfinite(d.effect) else "no shared seeds", d,
                           note=f"all {k} middle masks tested, Bonferroni; no best-of-{k} selection"))
        if edges:
            pairs = [(m, e) for m in middles for e in edges]
            gparts = []
            for m, e in pairs:
                x, y = _paired(piv, m, e)
                with np.errstate(divide="ignore", invalid="ignore"):
                    g = (x - y) / x
                if g.size < 2 or not np.isfinite(g).all():
                    why = _undecidable(f"{m}, {e}: fewer than 2 seeds", "seeds", 1 - ALPHA / len(pairs))
                    gparts.append(replace(why, key=f"{m}/{e}"))
                    continue
                iv = V.t_interval(g, level=1 - ALPHA / len(pairs), unit="seeds")
                gparts.append(replace(V.direction(iv, side=1, threshold=0.2), key=f"{m}/{e}"))
            d = _any_of(gparts, "some (middle − edge) / middle exceeds 20 %")
            m, e = d.key.split("/") if "/" in d.key else (d.key, "")
            out.append(_judged("lora_edge_gap", f"effect: ({m} − {e}) / {m} per seed", d,
                               note=f"{len(pairs)} (middle, edge) pairs, Bonferroni; relative to the middle mask"))
    for n_seg, key in ((3, "appA_3"), (10, "appA_10")):
        singles = ["".join("1" if j == i else "0" for j in range(n_seg)) for i in range(n_seg)]
        for i, m in enumerate(singles):
            if m in masks:
                out.append(Finding(f"{key}_{i + 1}", _mask_text(piv, m), None,
                                   "different task and model; shown for scale", float(piv[m].mean())))
        if all(m in masks for m in singles):
            if n_seg == 3:
                specs = [("010", "100", 1), ("010", "001", 1)]
                what = "segment 2 above segments 1 and 3"
            else:
                s1, s5, s10 = singles[0], singles[4], singles[9]
                specs = [(s5, s1, 1), (s5, s10, 1), (s10, s1, -1)]
                what = "segment 5 above 1 and 10, segment 10 below 1"
            parts = [_contrast(piv, a, b, side=side, level=1 - ALPHA / len(specs)) for a, b, side in specs]
            d = _all_of(parts, what)
            means = piv[singles].mean()
            out.append(_judged(key + "_peak", f"best segment {int(np.argmax(means.to_numpy())) + 1}, worst "
                               f"{int(np.argmin(means.to_numpy())) + 1}; effect: the deciding contrast", d,
                               note="paired over seeds; the appendix families often run one seed",
                               value=float(np.argmax(means.to_numpy()) + 1)))
    ret = dict(RETENTION_COLUMNS)
    present = list(cols["retention"])
    for column in present:
        bench = ret[column]
        rpiv = _by_seed(table, column)
        for m in ("00000", "11111", "10000", "00001", "00110"):
            if m in rpiv.columns:
                out.append(Finding(f"appB_{m}_{bench}", f"{_fmt(rpiv[m].mean(), 3)} ({column})", None,
                                   "perplexity on a stand-in set, not comparable; shown for scale",
                                   float(rpiv[m].mean())))
    if present:
        column = present[0]
        rpiv = _by_seed(table, column)
        others = [m for m in ("11111", "10000", "00001") if m in rpiv.columns]
        if "00000" in rpiv.columns and "00110" in rpiv.columns and others:
            base = rpiv["00000"].fillna(rpiv["00000"].mean())
            dist = (rpiv.drop(columns="00000").sub(base, axis=0)).abs()
            parts = [_contrast(dist, m, "00110", side=1, level=1 - ALPHA / len(others)) for m in others]
            d = _all_of(parts, "every other tuned mask farther from Base than 00110")
            closest = str(dist[["00110", *others]].mean().idxmin())
            out.append(_judged("appB_middle_best", f"closest to Base: {closest}; effect: the deciding contrast", d,
                               note=f"|Δ| to 00000 on {column}, paired over seeds"))
    return out
