r"""What every chapter's findings share: the :class:`Finding` row, compound rules, table access, band contrasts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper import families, shapes
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
        threshold: What the effect is compared with (the claim's threshold, or an equivalence margin).
        p_verdict: p-value of the decision's own test, consistent with the verdict (below ``1 − level``
            exactly when the row is decided): what a chapter's family correction adjusts.
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
    threshold: float | None = None
    p_verdict: float | None = None

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
    """A :class:`Finding` carrying a decision's verdict, effect, interval, rule, MDE, threshold and p-value."""
    return Finding(hid, ours, d.verdict, note, float(d.effect) if value is None else value, float(d.effect),
                   float(d.ci_low), float(d.ci_high), float(d.level), d.rule, float(d.mde), int(d.n), d.unit,
                   tuple(also), float(d.threshold), float(d.p_verdict))


def as_decision(f: Finding) -> Decision:
    """The decision a judged :class:`Finding` carries (for the family checks of :mod:`mbt.paper.families`)."""
    nan = float("nan")
    return Decision(f.verdict or Verdict.INCONCLUSIVE, _nan(f.effect), _nan(f.ci_low), _nan(f.ci_high),
                    f.level or LEVEL, f.rule, _nan(f.mde), int(f.n or 0), f.unit, key=f.id, quantity=f.ours,
                    threshold=nan if f.threshold is None else f.threshold,
                    p_verdict=nan if f.p_verdict is None else f.p_verdict)


def undecidable(reason: str, unit: str = "layers", level: float = LEVEL) -> Decision:
    """An inconclusive decision with the reason as its rule (too few layers, seeds, no interval …)."""
    nan = float("nan")
    return Decision(Verdict.INCONCLUSIVE, nan, nan, nan, level, f"not decidable here: {reason}", nan, 0, unit)


def as_family(findings: Sequence[Finding], *, method: str = "holm") -> tuple[list[Finding], str]:
    """One chapter's table as one family: its judged rows corrected together, and the sentence that says so.

    The judged rows (those with a verdict) are corrected by :func:`mbt.paper.families.adjust` (Holm by
    default: the chance of any false verdict in the table stays at 5 % under no effect); a row no longer
    decided after the correction becomes *inconclusive*, its rule saying why. Scale rows pass unchanged.

    Returns:
        ``(findings, sentence)``: the corrected findings in their order, and
        :func:`mbt.paper.families.family_sentence` of the judged rows, followed by any problem
        :func:`mbt.paper.families.row_problems` finds (two rows that are one comparison, a decided row whose
        interval contains its threshold, a wrong count of units).
    """
    rows = list(findings)
    judged_at = [i for i, f in enumerate(rows) if f.verdict is not None]
    if not judged_at:
        return rows, ""
    decisions = [as_decision(rows[i]) for i in judged_at]
    adjusted = families.adjust(decisions, method=method, alpha=ALPHA)
    for i, d in zip(judged_at, adjusted, strict=True):
        rows[i] = replace(rows[i], verdict=d.verdict, p_verdict=d.p_verdict, rule=d.rule)
    sentence = families.family_sentence(adjusted, method=method, alpha=ALPHA)
    problems = families.row_problems(adjusted)
    if problems:  # shown, not hidden: a table that misreads says where
        sentence += " Table check: " + "; ".join(problems) + "."
    return rows, sentence


def all_index(parts: Sequence[Decision]) -> int:
    """Index of the part that decides a compound claim: the first contradicted, else inconclusive, else 0."""
    verdicts = [p.verdict for p in parts]
    for v in (Verdict.CONTRADICTED, Verdict.INCONCLUSIVE):
        if v in verdicts:
            return verdicts.index(v)
    return 0


def all_of(parts: Sequence[Decision], what: str) -> Decision:
    """Compound claim (:func:`mbt.paper.shapes.all_of`); inconclusive with the reason when no part could be computed."""
    if not parts:
        return undecidable(f"no part of {what} could be computed")
    return shapes.all_of(parts, what)


def any_of(parts: Sequence[Decision], what: str) -> Decision:
    """Union claim ("some middle mask beats 11111"): **holds** if any part holds, **contradicted** if all are.

    Parts must be computed at ``1 − α/k`` (Bonferroni), so that "some part holds" by chance has
    probability at most ``α``. The row shows a holding part, else the one with the largest effect. Its
    ``p_verdict`` is ``k·min p`` of the holding parts, ``k·max p`` when all are contradicted, else
    ``min(1, k·min p)`` (below ``α`` exactly when the union is decided).
    """
    if not parts:
        return undecidable(f"no part of {what} could be computed", unit="seeds")
    verdicts = [p.verdict for p in parts]
    k = len(parts)
    if Verdict.HOLDS in verdicts:
        verdict, shown = Verdict.HOLDS, max((p for p in parts if p.verdict == Verdict.HOLDS), key=lambda p: p.effect)
        p = min(x.p_verdict for x in parts if x.verdict == Verdict.HOLDS)
    else:
        verdict = Verdict.CONTRADICTED if all(v == Verdict.CONTRADICTED for v in verdicts) else Verdict.INCONCLUSIVE
        finite = [p for p in parts if math.isfinite(p.effect)]
        shown = max(finite, key=lambda p: p.effect) if finite else parts[0]
        p = max(x.p_verdict for x in parts) if verdict == Verdict.CONTRADICTED else min(x.p_verdict for x in parts)
    rule = (f"{what}: holds if any of {k} parts holds, contradicted if all are contradicted (each at "
            f"{1 - ALPHA / k:.4g}, Bonferroni over {k}); part shown: {shown.rule}")
    return replace(shown, verdict=verdict, rule=rule, p_verdict=min(1.0, k * p) if math.isfinite(p) else p)


@dataclass(frozen=True)
class Curve:
    """One metric of one model over the layers, with its joint bootstrap replicates.

    Attributes:
        layers: Layer indices ``(L,)`` in order.
        depth: Relative depth ``layer / L`` per layer.
        values: Point values ``(L,)``.
        replicates: ``(B, L)``: the same resampled texts in every column (and for every other curve of the
            table); ``None`` when the table has none.
        n_texts: Texts each replicate resamples.
    """

    layers: np.ndarray
    depth: np.ndarray
    values: np.ndarray
    replicates: np.ndarray | None
    n_texts: int

    def select(self, keep: np.ndarray) -> Curve:
        """The layers where ``keep`` is true."""
        reps = None if self.replicates is None else self.replicates[:, keep]
        return Curve(self.layers[keep], self.depth[keep], self.values[keep], reps, self.n_texts)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Curve:
        """The curve of ``fn`` of the metric (e.g. ``1 − CKA``), replicate by replicate."""
        return Curve(self.layers, self.depth, fn(self.values), None if self.replicates is None
                     else fn(self.replicates), self.n_texts)


def curve_of(frame: pd.DataFrame, metric: str, model: str, *, min_layer: int = 0) -> Curve | None:
    """A metric of one model from an :func:`mbt.analyze` table as a :class:`Curve`; ``None`` when absent.

    ``replicates`` is ``None`` when any layer lacks them (a table made without a bootstrap).
    """
    rows = rows_of(frame, metric, model)
    rows = rows[rows.index >= min_layer]
    if rows.empty:
        return None
    L = n_layers_of(frame)
    layers = rows.index.to_numpy(int)
    reps = None
    if "replicates" in rows.columns:
        arrays = [np.asarray(r, dtype=float) for r in rows["replicates"]]
        if arrays and all(a.ndim == 1 and a.size > 1 and a.size == arrays[0].size for a in arrays):
            reps = np.stack(arrays, axis=1)
    n = int(rows["n"].max()) if "n" in rows.columns else 0
    return Curve(layers, layers / L, rows["value"].to_numpy(float), reps, n)


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
