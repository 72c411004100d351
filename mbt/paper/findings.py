r"""Our counterpart of each headline: pure functions from the library's tables to :class:`Finding` rows.

Each ``*_findings`` function takes the table a chapter computed (an :func:`mbt.analyze` table, a logit-lens
table, weight-change series, a swap sweep, a LoRA sweep) and returns one :class:`Finding` per headline
(:data:`~mbt.paper.headlines.HEADLINES`) it can speak to, with our value and whether the paper's claim
holds on the pair.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mbt.metrics import INTRINSIC_METRICS
from mbt.paper.headlines import BY_ID, HEADLINES
from mbt.segments import MIDDLE

__all__ = [
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


@dataclass(frozen=True)
class Finding:
    """Our counterpart of one headline.

    Attributes:
        id: A :data:`HEADLINES` id.
        ours: Our value, formatted for a table.
        agrees: ``True``/``False`` whether the paper's claim holds on our pair, ``None`` where the
            comparison is not meaningful (the paper's number was lost, or it is a scale).
        note: One short clause explaining the verdict.
        value: The main number, when there is one (for machine use).
    """

    id: str
    ours: str
    agrees: bool | None = None
    note: str = ""
    value: float | None = None

    def __post_init__(self) -> None:
        if self.id not in BY_ID:
            raise ValueError(f"unknown headline id {self.id!r}")


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
# 1b. Findings: pure functions of library tables
# ==============================================================================================


def _series(frame: pd.DataFrame, metric: str, model: str) -> pd.Series:
    """``value`` per layer for one metric and model of a tidy :func:`mbt.analyze` table."""
    rows = frame[(frame["metric"] == metric) & (frame["model"] == model)]
    if rows.empty:
        return pd.Series(dtype=float)
    if rows["layer"].duplicated().any():
        raise ValueError(f"several rows per layer for {model}:{metric}; filter the table to one dataset first")
    return rows.set_index("layer")["value"].astype(float).sort_index()


def _n_layers(frame: pd.DataFrame) -> int:
    sel = frame[frame["depth"] > 0]
    if sel.empty:
        return int(frame["layer"].max())
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def _depth(layer: float, L: int) -> float:
    return float(layer) / L


def divergence_findings(frame: pd.DataFrame, *,
                        halves: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> list[Finding]:
    """Fig. 1 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Args:
        frame: Analyze table (one dataset) with the pair metrics ``cka``, ``cosine_similarity`` and
            ``mean_shift``.
        halves: The same pair metrics on two disjoint halves of the sample (:func:`analyze_halves`),
            for the robustness claim; omitted when ``None``.

    Returns:
        Findings for ``middle_stable``, ``cka_plateau``, ``cka_drop_start``, ``cka_final``,
        ``mean_shift_shallow``, ``mean_shift_final``, ``cosine_agrees`` and ``seed_robust``.
    """
    L = _n_layers(frame)
    cka = _series(frame, "cka", "pair")
    out: list[Finding] = []
    if cka.empty:
        raise ValueError("the table has no 'cka' rows (run analyze with the pair metrics)")
    dist = (1.0 - cka).drop(index=0, errors="ignore")
    worst = int(dist.idxmax())
    mid = dist[[_depth(l_, L) >= MIDDLE[0] and _depth(l_, L) <= MIDDLE[1] for l_ in dist.index]]
    out.append(Finding(
        "middle_stable", f"1 − CKA largest at layer {worst} (depth {_depth(worst, L):.2f}); middle mean "
        f"{_fmt(mid.mean())}, max {_fmt(dist.max())}",
        agrees=_depth(worst, L) > MIDDLE[1],
        note="the largest Base–SFT difference is in the last 20 % of layers" if _depth(worst, L) > MIDDLE[1]
        else f"the largest Base–SFT difference is at depth {_depth(worst, L):.2f}, not in the last 20 %",
        value=float(dist.max()),
    ))
    plateau = cka[[MIDDLE[0] <= _depth(l_, L) <= 0.875 and l_ < L for l_ in cka.index]]
    p_min, p_spread = float(plateau.min()), float(plateau.max() - plateau.min())
    drop = p_min - float(cka.loc[L])
    out.append(Finding(
        "cka_plateau", f"≥ {_fmt(p_min)} (spread {_fmt(p_spread)}) for depth 0.2–0.875",
        agrees=bool(p_spread < drop),
        note="flat band, then a larger final drop" if p_spread < drop
        else "the band varies more than the final drop",
        value=p_min,
    ))
    steps = (cka.shift(1) - cka).drop(index=[0, 1], errors="ignore")
    big = int(steps.idxmax())
    out.append(Finding(
        "cka_drop_start", f"largest step {big - 1} → {big} (depth {_depth(big, L):.2f}), −{_fmt(steps.max())}",
        agrees=_depth(big, L) > MIDDLE[1],
        note="the sharpest decrease is in the last 20 %" if _depth(big, L) > MIDDLE[1]
        else "the sharpest decrease is not in the last 20 %",
        value=_depth(big, L),
    ))
    out.append(Finding(
        "cka_final", f"{_fmt(cka.loc[L])} at layer {L} ({_fmt(cka.loc[L - 1])} at {L - 1})",
        agrees=None, note="the paper's value was lost in extraction", value=float(cka.loc[L]),
    ))
    shift = _series(frame, "mean_shift", "pair")
    if not shift.empty:
        first = shift[[_depth(l_, L) <= 0.5 for l_ in shift.index]].max()
        share = float(first / shift.max()) if shift.max() > 0 else float("nan")
        out.append(Finding(
            "mean_shift_shallow", f"max over depth ≤ 0.5: {_fmt(first)} ({share:.0%} of the maximum)",
            agrees=bool(share < 0.25), note="threshold: below 25 % of the largest shift", value=float(first),
        ))
        top = int(shift.idxmax())
        out.append(Finding(
            "mean_shift_final", f"max {_fmt(shift.max())} at layer {top} (depth {_depth(top, L):.2f})",
            agrees=_depth(top, L) > MIDDLE[1],
            note="peaks in the last 20 %" if _depth(top, L) > MIDDLE[1] else "does not peak in the last 20 %",
            value=float(shift.max()),
        ))
    cos = frame[(frame["metric"] == "cosine_similarity") & (frame["model"] == "pair")].set_index("layer").sort_index()
    if not cos.empty:
        low = int(cos["value"].drop(index=0, errors="ignore").idxmin())
        row = cos.loc[low]
        out.append(Finding(
            "cosine_agrees", f"min {_ci(row['value'], row['ci_low'], row['ci_high'])} at layer {low}",
            agrees=_depth(low, L) > MIDDLE[1],
            note="lowest in the last 20 %" if _depth(low, L) > MIDDLE[1] else "lowest before the last 20 %",
            value=float(row["value"]),
        ))
    if halves is not None:
        cka_a, cka_b = (_series(h, "cka", "pair") for h in halves)
        diff = float((cka_a - cka_b).abs().max())
        total = float(1.0 - cka.loc[L])
        out.append(Finding(
            "seed_robust", f"max |ΔCKA| between two disjoint halves {_fmt(diff)} vs 1 − CKA_L = {_fmt(total)}",
            agrees=bool(diff < total / 3),
            note="robust if the halves differ by less than a third of the final drop; independent texts, "
                 "not identical re-runs (the authors' check)",
            value=diff,
        ))
    return out




def _finite(s: pd.Series) -> pd.Series:
    return s[np.isfinite(s.to_numpy(float))]


def convergence_findings(frame: pd.DataFrame) -> list[Finding]:
    """Fig. 2 counterparts from a tidy :func:`mbt.analyze` table of one dataset.

    Returns:
        Findings for ``synchronised``, ``three_stages``, ``erank_peak``, ``cond_trough``,
        ``erank_collapse`` and ``spectral_norm_500``.
    """
    L = _n_layers(frame)
    metrics = [m for m in INTRINSIC_METRICS if not _series(frame, m, "base").empty]
    rs, first_step, final_gt = {}, 0, 0
    for m in metrics:
        b, s = _finite(_series(frame, m, "base")), _finite(_series(frame, m, "sft"))
        both = pd.concat([b, s], axis=1, join="inner").dropna()
        if m in ("condition_number", "spectral_norm"):
            both = np.log(both.clip(lower=1e-300))
        if len(both) >= 3 and both.iloc[:, 0].std() > 0 and both.iloc[:, 1].std() > 0:
            rs[m] = float(np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1])
        v = both.iloc[:, 0] if len(both) else b
        rng = float(v.max() - v.min())
        if rng <= 0 or len(v) < 4:
            continue
        step = (v.diff().abs() / rng).dropna()
        first_step += int(step.idxmax() == 1)
        mid = step[[MIDDLE[0] < _depth(l_, L) <= MIDDLE[1] for l_ in step.index]]
        fin = step[[_depth(l_, L) > MIDDLE[1] for l_ in step.index]]
        final_gt += int(len(fin) > 0 and len(mid) > 0 and fin.mean() > mid.mean())
    n = len(metrics)
    med = float(np.median(list(rs.values()))) if rs else float("nan")
    lowest = min(rs, key=rs.get) if rs else "—"
    out = [Finding(
        "synchronised", f"median r(Base, SFT) = {_fmt(med, 2)} over {len(rs)} metrics (lowest: {lowest}, "
        f"{_fmt(rs.get(lowest), 2)})", agrees=bool(med > 0.9) if rs else None,
        note="Pearson r over layers; log scale for σ_max and condition number", value=med,
    ), Finding(
        "three_stages", f"largest Base step at 0 → 1 for {first_step}/{n} metrics; final steps > middle steps "
        f"for {final_gt}/{n}", agrees=bool(first_step > n / 2 and final_gt > n / 2),
        note="both must hold for a majority of metrics", value=float(first_step) / max(n, 1),
    )]
    erank = _finite(_series(frame, "effective_rank", "sft").drop(index=0, errors="ignore"))
    if not erank.empty:
        peak = int(erank.idxmax())
        out.append(Finding(
            "erank_peak", f"peak {_fmt(erank.max())} at layer {peak} (depth {_depth(peak, L):.2f})",
            agrees=MIDDLE[0] <= _depth(peak, L) <= MIDDLE[1], note="layers ≥ 1; the middle is 20–80 % depth",
            value=float(erank.max()),
        ))
        share = float(erank.loc[L] / erank.max())
        out.append(Finding(
            "erank_collapse", f"{_fmt(erank.loc[L])} at layer {L} ({share:.0%} of the peak)",
            agrees=bool(share < 0.5 and peak != L), note="collapse = below half of the peak", value=float(erank.loc[L]),
        ))
    cond = _finite(_series(frame, "condition_number", "sft").drop(index=0, errors="ignore"))
    if not cond.empty:
        trough = int(cond.idxmin())
        out.append(Finding(
            "cond_trough", f"min {_fmt(cond.min())} at layer {trough} (depth {_depth(trough, L):.2f})",
            agrees=None, note="the paper's trough value was lost", value=float(cond.min()),
        ))
    sn = _finite(_series(frame, "spectral_norm", "sft"))
    if not sn.empty:
        top = int(sn.idxmax())
        n_rows = frame.loc[frame["metric"] == "spectral_norm", "n"]
        n_pooled = int(n_rows.max()) if len(n_rows) else 0
        late = _depth(top, L) > MIDDLE[1]
        out.append(Finding(
            "spectral_norm_500", f"max {_fmt(sn.max())} at layer {top} (N = {n_pooled})",
            agrees=bool(late),
            note=("largest in the last 20 %" if late else f"largest at depth {_depth(top, L):.2f}")
            + "; its scale grows with N and the model's width, so 500 is not comparable",
            value=float(sn.max()),
        ))
    return out


def probing_findings(lens: pd.DataFrame, *, model: str = "sft") -> list[Finding]:
    """Fig. 3 counterparts from concatenated :func:`mbt.probe.logit_lens` tables.

    Args:
        lens: Logit-lens tables with a ``model`` column and the library's ``paper`` column, metric
            ``top1_acc``; the token-weighted ``pooled`` value is the authors' number.
        model: Which model's curve to compare (the paper does not say; SFT by default).

    Returns:
        Findings for ``probe_early``, ``probe_rise`` and ``probe_final_dip``.
    """
    sel = lens[(lens["metric"] == "top1_acc") & (lens["model"] == model)]
    once = sel[~sel["paper"].astype(bool)].set_index("layer")["pooled"].sort_index()
    twice = sel[sel["paper"].astype(bool)].set_index("layer")["pooled"].sort_index()
    L = _n_layers(sel)
    early = once[[_depth(l_, L) <= 50 / 64 for l_ in once.index]]
    peak = float(once.max())
    half = next((int(l_) for l_, v in once.items() if v >= peak / 2), L)
    out = [
        Finding("probe_early", f"max {_fmt(early.max())} for depth ≤ 0.78 (peak {_fmt(peak)})",
                agrees=bool(early.max() < peak / 2), note="low = below half of the peak", value=float(early.max())),
        Finding("probe_rise", f"peak {_fmt(peak)}; half of it first reached at depth {_depth(half, L):.2f}",
                agrees=bool(_depth(half, L) >= 0.7), note="rise in the last 30 % of depth; a 0.60 level depends on "
                "the model and task", value=peak),
    ]
    if L - 1 in once.index and L in once.index:
        a, b = float(once.loc[L - 1]), float(once.loc[L])
        c = float(twice.loc[L]) if L in twice.index else float("nan")
        note = ("the dip appears only with the final norm applied twice" if c < a <= b
                else "a dip with the correct single norm too" if b < a
                else "no dip with either lens")
        out.append(Finding(
            "probe_final_dip", f"{_fmt(a)} → {_fmt(b)} (single norm); → {_fmt(c)} (norm twice)",
            agrees=bool(b < a), note=note, value=b - a,
        ))
    return out


def weights_findings(checkpoint: pd.Series, finetune: pd.Series | None = None) -> list[Finding]:
    """Fig. 4 counterparts.

    Args:
        checkpoint: Relative Eq. 1 change per block from the checkpoints
            (``block_series(weight_change(pair), kind="eq1", column="relative")``).
        finetune: The own-fine-tune mean ‖Δθ‖_F per block (``kind="block_mean"``), the authors' Fig. 4
            quantity; omitted when ``None``.

    Returns:
        Findings for ``weight_j`` and, with ``finetune``, ``weight_final``.
    """
    s = checkpoint.sort_index().astype(float)
    L = int(s.index.max())
    early = float(s[[_depth(b, L) <= 0.5 for b in s.index]].mean())
    last = float(s.loc[L])
    top = int(s.idxmax())
    out = [Finding(
        "weight_j", f"early mean {_fmt(early)}, last block {_fmt(last)} (×{last / early:.2f}); max at block {top}",
        agrees=bool(top == L and last > 1.2 * early),
        note="J = the last block changes most, clearly above the early blocks", value=last,
    )]
    if finetune is not None:
        f = finetune.sort_index().astype(float)
        out.append(Finding(
            "weight_final", f"{_fmt(f.loc[f.index.max()])} (max at block {int(f.idxmax())})",
            agrees=None, note="scale set by learning rate and steps, not comparable across set-ups",
            value=float(f.loc[f.index.max()]),
        ))
    return out


def correlation_findings(corr: pd.DataFrame, *, cosine: str = "cosine_similarity",
                         spectral: str = "spectral_norm") -> list[Finding]:
    """Fig. 5 counterparts from a :func:`mbt.correlate.layer_correlations` table (weight change as ``x``).

    Returns:
        Findings for ``corr_cosine`` and ``corr_spectral``; each states the raw Pearson r and the
        partial r given depth, and whether the sign survives the depth control.
    """
    out = []
    for hid, metric, sign in (("corr_cosine", cosine, -1), ("corr_spectral", spectral, 1)):
        rows = corr[corr["metric"] == metric].set_index("method")
        if rows.empty or "pearson" not in rows.index:
            continue
        r, p = float(rows.loc["pearson", "r"]), float(rows.loc["pearson", "p"])
        pr = float(rows.loc["partial_pearson", "r"]) if "partial_pearson" in rows.index else float("nan")
        pp = float(rows.loc["partial_pearson", "p"]) if "partial_pearson" in rows.index else float("nan")
        survives = bool(np.sign(pr) == sign and pp < 0.05)
        out.append(Finding(
            hid, f"r = {r:+.2f} (p = {_fmt(p, 3)}); partial r | depth = {pr:+.2f} (p = {_fmt(pp, 3)})",
            agrees=bool(sign * r > 0.5),
            note=("survives the depth control" if survives else "does not survive the depth control"),
            value=r,
        ))
    return out


def swap_findings(sweep: pd.DataFrame) -> list[Finding]:
    """Fig. 6 counterparts from a :func:`mbt.swap.swap_sweep` table (SFT → Base, receiver's head).

    Returns:
        Findings for ``swap_first``, ``swap_middle`` and ``swap_last``: agreement in sign with the
        paper, and whether our paired interval can resolve an effect of the paper's size.
    """
    rows = sweep[(sweep["kind"] == "swap") & (sweep["receiver"] == "base") & (sweep["head"] == "receiver")]
    rows = rows.set_index("segment").sort_index()
    if rows.empty:
        return []
    n = int(rows.index.max()) + 1
    out = []
    for hid, seg, paper in (("swap_first", 0, -0.001), ("swap_middle", n // 2, 0.003), ("swap_last", n - 1, -0.002)):
        r = rows.loc[seg]
        half = float(r["diff_ci_width"]) / 2
        if float(r["diff"]) == 0.0:
            note = "no text's score changed at all"
        else:
            note = ("same sign as the paper; " if np.sign(r["diff"]) == np.sign(paper) else "opposite sign; ") + (
                f"interval half-width {_fmt(half, 4)} "
                + ("resolves" if half < abs(paper) else "is wider than") + " an effect of the paper's size")
        out.append(Finding(
            hid, _ci(r["diff"], r["diff_ci_low"], r["diff_ci_high"], 4) + f" (n = {int(r['n'])})",
            agrees=bool(np.sign(r["diff"]) == np.sign(paper)), note=note, value=float(r["diff"]),
        ))
    return out


# ---- Mid-Block LoRA --------------------------------------------------------------------------------

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


def _mask_means(table: pd.DataFrame, column: str) -> pd.Series:
    return table.assign(mask=table["mask"].astype(str)).groupby("mask")[column].mean()


def lora_findings(table: pd.DataFrame) -> list[Finding]:
    """Fig. 7 and Appendix A/B counterparts from a LoRA sweep table (one row per mask and seed).

    Every paper mask that the sweep ran gets its score (mean over seeds, ± half the seed range); a
    middle mask "agrees" when it beats our ``11111``, an edge mask when it falls below it. Appendix A
    rows use the 3- and 10-segment single-segment masks, Appendix B the retention columns (first:
    the IFEval stand-in, second: the MT-Bench stand-in).

    Returns:
        Findings for every LoRA headline the table can answer.
    """
    cols = sweep_columns(table)
    score = cols["score"]
    if score is None:
        raise ValueError(f"the sweep table has no 'accuracy' column: {list(table.columns)}")
    t = table.assign(mask=table["mask"].astype(str))
    means = _mask_means(t, score)
    spread = t.groupby("mask")[score].agg(lambda v: (v.max() - v.min()) / 2 if len(v) > 1 else float("nan"))
    nseeds = t.groupby("mask")[score].size()
    full = means.get("11111")

    def text(m: str) -> str:
        extra = f" ± {_fmt(spread[m], 3)}" if np.isfinite(spread[m]) else ""
        return f"{_fmt(means[m], 3)}{extra} ({int(nseeds[m])} seed{'s' if nseeds[m] > 1 else ''})"

    out: list[Finding] = []
    for h in HEADLINES:
        if not h.id.startswith("lora_") or h.id in ("lora_gain", "lora_edge_gap", "lora_mistral"):
            continue
        m = h.id.rsplit("_", 1)[1]
        if m not in means.index:
            continue
        if m == "11111" or full is None:
            out.append(Finding(h.id, text(m), agrees=None, note="reference", value=float(means[m])))
            continue
        middle = m[0] == "0" and m[-1] == "0"
        ok = bool(means[m] > full) if middle else bool(means[m] < full)
        out.append(Finding(h.id, text(m), agrees=ok,
                           note=f"{'above' if means[m] > full else 'not above'} our 11111 ({_fmt(full, 3)})",
                           value=float(means[m])))
    five = [m for m in means.index if len(m) == 5 and m not in ("00000", "11111")]
    middles = [m for m in five if m[0] == "0" and m[-1] == "0"]
    edges = [m for m in ("10000", "00001") if m in means.index]
    if middles and full is not None:
        best = max(middles, key=lambda m: means[m])
        gain = float(means[best] - full)
        spreads = [v for v in (spread.get(best, np.nan), spread.get("11111", np.nan)) if np.isfinite(v)]
        if spreads:
            noise = max(spreads)
            text_ = f"{best}: {gain * 100:+.1f} points over 11111 (seed spread ±{noise * 100:.1f})"
            ok, note = gain > max(noise, 0.0), "must exceed the seed-to-seed spread"
        else:
            text_ = f"{best}: {gain * 100:+.1f} points over 11111"
            ok, note = gain > 0, "one seed per mask: the seed-to-seed spread is unknown"
        out.append(Finding("lora_gain", text_, agrees=bool(ok), note=note, value=gain))
        if edges:
            worst = min(edges, key=lambda m: means[m])
            share = float((means[best] - means[worst]) / means[best]) if means[best] > 0 else float("nan")
            out.append(Finding("lora_edge_gap", f"({best} − {worst}) / {best} = {share:.0%}",
                               agrees=bool(share > 0.2), note="relative to the best middle mask", value=share))
    for n_seg, key in ((3, "appA_3"), (10, "appA_10")):
        singles = ["".join("1" if j == i else "0" for j in range(n_seg)) for i in range(n_seg)]
        got = [m for m in singles if m in means.index]
        for i, m in enumerate(singles):
            if m in means.index:
                out.append(Finding(f"{key}_{i + 1}", text(m), agrees=None, note="different task and model",
                                   value=float(means[m])))
        if len(got) == n_seg:
            vals = [means[m] for m in singles]
            top, bottom = int(np.argmax(vals)) + 1, int(np.argmin(vals)) + 1
            if n_seg == 3:
                out.append(Finding(key + "_peak", f"best segment {top}", agrees=top == 2,
                                   note="inverted U" if top == 2 else "not an inverted U", value=float(top)))
            else:
                inner = 1 < top < n_seg
                out.append(Finding(key + "_peak", f"best segment {top}, worst {bottom}",
                                   agrees=bool(inner and bottom == n_seg),
                                   note="peak inside and worst at the output end" if inner and bottom == n_seg
                                   else "not the paper's shape", value=float(top)))
    ret = dict(RETENTION_COLUMNS)
    present = [c for c in cols["retention"]]
    for column in present:
        bench = ret[column]
        rmeans = _mask_means(t, column)
        for m in ("00000", "11111", "10000", "00001", "00110"):
            if m in rmeans.index:
                out.append(Finding(f"appB_{m}_{bench}", f"{_fmt(rmeans[m], 3)} ({column})", agrees=None,
                                   note="perplexity on a stand-in set, not comparable", value=float(rmeans[m])))
    if present:
        column = present[0]
        rmeans = _mask_means(t, column)
        tuned = [m for m in ("11111", "10000", "00001", "00110") if m in rmeans.index]
        if "00000" in rmeans.index and "00110" in tuned and len(tuned) > 1:
            closest = min(tuned, key=lambda m: abs(rmeans[m] - rmeans["00000"]))
            out.append(Finding("appB_middle_best", f"closest to Base: {closest}", agrees=closest == "00110",
                               note=f"|Δ| = {_fmt(abs(rmeans[closest] - rmeans['00000']), 3)} on {column}",
                               value=float(rmeans[closest])))
    return out
