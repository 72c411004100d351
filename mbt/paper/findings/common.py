r"""What every chapter's findings share: the :class:`Finding` row, compound rules, table access, band contrasts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.headlines import BY_ID
from mbt.paper.verdicts import Decision, Verdict

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


def judged(hid: str, ours: str, d: Decision, *, note: str = "", value: float | None = None,
            also: Sequence[str] = ()) -> Finding:
    """A :class:`Finding` carrying a decision's verdict, effect, interval, rule and MDE."""
    return Finding(hid, ours, d.verdict, note, float(d.effect) if value is None else value, float(d.effect),
                   float(d.ci_low), float(d.ci_high), float(d.level), d.rule, float(d.mde), int(d.n), d.unit,
                   tuple(also))


def undecidable(reason: str, unit: str = "layers", level: float = LEVEL) -> Decision:
    """An inconclusive decision with the reason as its rule (too few layers, seeds, no interval …)."""
    nan = float("nan")
    return Decision(Verdict.INCONCLUSIVE, nan, nan, nan, level, f"not decidable here: {reason}", nan, 0, unit)


def all_index(parts: Sequence[Decision]) -> int:
    """Index of the part that decides a compound claim: the first contradicted, else inconclusive, else 0."""
    verdicts = [p.verdict for p in parts]
    for v in (Verdict.CONTRADICTED, Verdict.INCONCLUSIVE):
        if v in verdicts:
            return verdicts.index(v)
    return 0


def all_of(parts: Sequence[Decision], what: str) -> Decision:
    """Compound claim: **holds** if every part holds, **contradicted** if any part is, else inconclusive.

    The row shows the part that decides (a contradicted one, else an inconclusive one, else the first).
    Parts are computed at ``1 − α/k`` (Bonferroni), so under no effect the union "some part contradicted"
    has probability at most ``α``; "all hold" is an intersection-union test, at most ``α`` too.
    """
    if not parts:
        return undecidable(f"no part of {what} could be computed")
    shown = parts[all_index(parts)]
    verdict = shown.verdict
    k = len(parts)
    rule = (f"{what}: holds if all {k} parts hold, contradicted if any is contradicted"
            + (f" (each at {1 - ALPHA / k:.4g}, Bonferroni over {k})" if k > 1 else "") + "; part shown: " + shown.rule)
    return replace(shown, verdict=verdict, rule=rule)


def any_of(parts: Sequence[Decision], what: str) -> Decision:
    """Union claim ("some middle mask beats 11111"): **holds** if any part holds, **contradicted** if all are.

    Parts must be computed at ``1 − α/k`` (Bonferroni), so that "some part holds" by chance has
    probability at most ``α``. The row shows a holding part, else the one with the largest effect.
    """
    if not parts:
        return undecidable(f"no part of {what} could be computed", unit="seeds")
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


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table cell: ``—`` for none, ``n/a``/``∞`` for non-finite, scientific when tiny or huge."""
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



# ==============================================================================================
# Table access
# ==============================================================================================


def rows_of(frame: pd.DataFrame, metric: str, model: str) -> pd.DataFrame:
    """Rows of one metric and model, one per layer, sorted by layer."""
    rows = frame[(frame["metric"] == metric) & (frame["model"] == model)]
    if rows["layer"].duplicated().any():
        raise ValueError(f"several rows per layer for {model}:{metric}; filter the table to one dataset first")
    return rows.set_index("layer").sort_index()


def series(frame: pd.DataFrame, metric: str, model: str) -> pd.Series:
    """``value`` per layer for one metric and model of a tidy :func:`mbt.analyze` table."""
    rows = rows_of(frame, metric, model)
    if rows.empty:
        return pd.Series(dtype=float)
    return rows["value"].astype(float)


def n_layers_of(frame: pd.DataFrame) -> int:
    """The depth ``L`` of the pair a layer table was computed on (from its ``layer`` and ``depth`` columns)."""
    sel = frame[frame["depth"] > 0]
    if sel.empty:
        return int(frame["layer"].max())
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def depth_of(layer: float, L: int) -> float:
    """Relative depth ``l / L``."""
    return float(layer) / L


def shape(values: pd.Series, L: int, *, low: pd.Series | None = None, high: pd.Series | None = None,
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
    depth = np.array([depth_of(i, L) for i in v.index])
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
        return undecidable(str(err), level=level)


def shape_of(frame: pd.DataFrame, metric: str, model: str, L: int, transform: Callable[[pd.Series], pd.Series]
              | None = None, **kw: Any) -> Decision:
    """:func:`shape` of one metric of an analyze table (its per-layer intervals when it has them)."""
    rows = rows_of(frame, metric, model)
    v, lo, hi = rows["value"].astype(float), rows.get("ci_low"), rows.get("ci_high")
    if transform is not None:
        v, lo, hi = transform(v), None if lo is None else transform(lo), None if hi is None else transform(hi)
        if lo is not None and hi is not None:
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    return shape(v, L, low=lo, high=hi, **kw)



def band_name(band: tuple[float, float]) -> str:
    """``"depth 0.2–0.8"`` for a band ``(lo, hi]`` (a negative ``lo`` shows as 0)."""
    return f"depth {max(band[0], 0.0):g}–{band[1]:g}"


def finite(s: pd.Series) -> pd.Series:
    """The finite entries of a series."""
    return s[np.isfinite(s.to_numpy(float))]


def single_vs_band(values: pd.Series, L: int, single: int, reference: tuple[float, float], *, side: int,
                    level: float) -> Decision:
    r"""Is one layer's value above (``side=+1``) the values of a reference band?

    Prediction-interval test: ``e = v_single − v̄_ref``,
    ``SE = s_ref·√(1 + 1/n_eff)`` with ``n_eff = n·(1 − ρ)/(1 + ρ)`` (``ρ`` the lag-1
    autocorrelation of the band, clipped to ``[0, 0.95]``), Student t with ``n_ref − 1`` df.
    """
    ref = finite(values[[reference[0] < depth_of(i, L) <= reference[1] for i in values.index]])
    if single not in values.index or len(ref) < 3 or not np.isfinite(values.loc[single]):
        return undecidable(f"layer {single} or at least 3 layers of {band_name(reference)} missing", level=level)
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
                    f"layer {single} vs {band_name(reference)}, prediction interval over layers", df)
    return V.direction(iv, side=side)

