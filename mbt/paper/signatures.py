r"""The paper's depth signatures, read from results stores, compared across pairs.

Each chapter keeps a small table in its pair's store (:func:`mbt.paper.store.save_table`): ``pair_metrics``
(chapter 1: CKA, cosine, mean shift and relative mean shift per layer), ``intrinsic`` (chapter 2),
``lens`` (chapter 3: logit-lens top-1 accuracy per layer), ``weights`` (chapter 4: the relative Eq. 1 change
per block) and ``lora`` (chapter 6: the sweep per mask). From them, per pair:

* ``cka_final_drop`` — ``mean_{middle} CKA − CKA_L``: how far CKA falls from the middle layers (relative depth
  in (0.2, 0.8]) to the last layer (the paper: a high plateau, then a sharp drop);
* ``shift_late_ratio`` — ``mean_{last 20 %} s / mean_{middle} s`` of the relative mean shift ``s`` (the paper:
  negligible early, spiking at the end; > 1 means late layers move more);
* ``weight_late_ratio`` — ``Δ_L / mean_{first half} Δ`` of the relative Eq. 1 weight change (J-shape: > 1);
* ``lens_emergence`` — the relative depth where the SFT model's logit-lens top-1 accuracy first reaches half
  its maximum (the paper: late);
* ``erank_peak_depth`` — the relative depth of the SFT model's largest effective rank (the paper: middle);
* ``lora_middle_gain`` — answer NLL of full-depth LoRA ``11111`` minus the best middle mask's (the paper's
  mid-block advantage; > 0 means a middle mask wins), where a sweep exists.

:func:`ladder_trend` asks whether a signature changes monotonically with SFT strength across pairs, by an
exact permutation test of Spearman's rank correlation (two-sided, 5 %): with ``n`` pairs all ``n!`` orders are
enumerated, so the level holds exactly; with five pairs only a perfectly monotone order reaches it, with
four none can (then the answer is "cannot be told" by design).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mbt.segments import MIDDLE

__all__ = [
    "SIGNATURES",
    "claim_table",
    "ladder_trend",
    "rung_table",
    "signature_curves",
    "signature_summary",
    "signatures",
    "spearman_exact",
    "strength_of",
    "trend_sentences",
]

SIGNATURES: dict[str, str] = {
    "cka_final_drop": "CKA: middle mean − last layer (the paper: a drop at the end, > 0)",
    "shift_late_ratio": "relative mean shift: last 20 % ÷ middle (the paper: a late spike, > 1)",
    "weight_late_ratio": "relative Eq. 1 change: last block ÷ first half (the paper: J-shape, > 1)",
    "lens_emergence": "depth where the SFT lens reaches half its best top-1 accuracy (the paper: late)",
    "erank_peak_depth": "depth of the SFT effective rank's peak (the paper: middle)",
    "lora_middle_gain": "answer NLL of 11111 − best middle mask (the paper: > 0, a middle mask wins)",
}
"""Every signature: its name and what the paper's pattern predicts."""


def _curve(table: pd.DataFrame | None, metric: str, model: str | None = None) -> pd.Series:
    """``value`` by relative depth for one metric (and model) of a stored per-layer table."""
    if table is None or table.empty or "metric" not in table.columns:
        return pd.Series(dtype=float)
    rows = table[table["metric"] == metric]
    if model is not None and "model" in rows.columns:
        rows = rows[rows["model"] == model]
    if "layer" in rows.columns:
        rows = rows[rows["layer"] > 0]
    return rows.set_index("depth")["value"].astype(float).sort_index()


def _middle(curve: pd.Series) -> pd.Series:
    return curve[(curve.index > MIDDLE[0]) & (curve.index <= MIDDLE[1])]


def signatures(tables: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """The signatures of one pair from its stored tables (NaN where the chapter behind one did not run).

    Args:
        tables: ``{name: table}`` of one store (:attr:`mbt.paper.store.StoreEntry.tables`).

    Returns:
        ``{signature: value}`` for every key of :data:`SIGNATURES`.
    """
    out = dict.fromkeys(SIGNATURES, math.nan)
    pair_metrics = tables.get("pair_metrics")
    cka = _curve(pair_metrics, "cka")
    if len(cka) >= 3 and len(_middle(cka)):
        out["cka_final_drop"] = float(_middle(cka).mean() - cka.iloc[-1])
    shift = _curve(pair_metrics, "relative_mean_shift")
    late = shift[shift.index > MIDDLE[1]]
    if len(late) and len(_middle(shift)) and _middle(shift).mean() > 0:
        out["shift_late_ratio"] = float(late.mean() / _middle(shift).mean())
    weights = tables.get("weights")
    if weights is not None and not weights.empty:
        w = weights.sort_values("depth")
        first = w[w["depth"] <= 0.5]["eq1_relative"]
        if len(first) and first.mean() > 0:
            out["weight_late_ratio"] = float(w["eq1_relative"].iloc[-1] / first.mean())
    lens = tables.get("lens")
    if lens is not None and not lens.empty:
        acc = lens[lens["model"] == "sft"].sort_values("depth")
        if len(acc) and acc["value"].max() > 0:
            reached = acc[acc["value"] >= 0.5 * acc["value"].max()]
            out["lens_emergence"] = float(reached["depth"].iloc[0])
    erank = _curve(tables.get("intrinsic"), "effective_rank", "sft")
    if len(erank):
        out["erank_peak_depth"] = float(erank.idxmax())
    lora = tables.get("lora")
    if lora is not None and not lora.empty and "answer_nll_mean" in lora.columns:
        by_mask = lora.assign(mask=lora["mask"].astype(str).str.zfill(5)).set_index("mask")["answer_nll_mean"]
        middle = [m for m in by_mask.index if len(m) == 5 and m[0] == "0" and m[-1] == "0" and "1" in m]
        if "11111" in by_mask.index and middle:
            out["lora_middle_gain"] = float(by_mask["11111"] - by_mask[middle].min())
    return out


def signature_curves(entries: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """Tidy per-depth curves of every pair for the cross-pair figure.

    Args:
        entries: ``{pair: {table name: table}}``.

    Returns:
        Columns ``pair, signature, depth, value, ci_low, ci_high`` for ``cka``, ``relative_mean_shift``,
        ``weight_change_rel``, ``lens_top1`` and ``effective_rank`` (SFT).
    """
    rows: list[pd.DataFrame] = []

    def add(pair: str, name: str, frame: pd.DataFrame) -> None:
        if frame is not None and len(frame):
            cols = {c: frame[c] if c in frame.columns else np.nan for c in ("depth", "value", "ci_low", "ci_high")}
            rows.append(pd.DataFrame({"pair": pair, "signature": name, **cols}))

    for pair, tables in entries.items():
        pm = tables.get("pair_metrics")
        for metric in ("cka", "relative_mean_shift"):
            if pm is not None and "metric" in pm.columns:
                add(pair, metric, pm[(pm["metric"] == metric) & (pm["layer"] > 0)])
        w = tables.get("weights")
        if w is not None:
            add(pair, "weight_change_rel", w.rename(columns={"eq1_relative": "value"}))
        lens = tables.get("lens")
        if lens is not None:
            add(pair, "lens_top1", lens[(lens["model"] == "sft") & (lens["layer"] > 0)])
        intrinsic = tables.get("intrinsic")
        if intrinsic is not None:
            add(pair, "effective_rank", intrinsic[(intrinsic["metric"] == "effective_rank")
                                                  & (intrinsic["model"] == "sft") & (intrinsic["layer"] > 0)])
    if not rows:
        return pd.DataFrame(columns=["pair", "signature", "depth", "value", "ci_low", "ci_high"])
    return pd.concat(rows, ignore_index=True)


def spearman_exact(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rank correlation and its exact two-sided permutation p-value (all orders of ``y``).

    ``ρ = corr(rank(x), rank(y))``; ``p = #{π : |ρ(x, π(y))| ≥ |ρ|} / n!`` (a small tolerance counts ties of
    ``|ρ|``). Exact for ``n ≤ 8``; larger ``n`` is refused (use a sampled test).

    Raises:
        ValueError: Fewer than 3 or more than 8 points, or lengths that differ.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or not 3 <= x.size <= 8:
        raise ValueError(f"need 3..8 paired values, got {x.size} and {y.size}")
    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        denom = math.sqrt(float(a @ a) * float(b @ b))
        return float(a @ b / denom) if denom > 0 else 0.0

    observed = rho(rx, ry)
    perms = [rho(rx, ry[list(p)]) for p in itertools.permutations(range(x.size))]
    p = sum(abs(r) >= abs(observed) - 1e-12 for r in perms) / len(perms)
    return observed, float(p)


def ladder_trend(values: Sequence[float], strength: Sequence[float], *, level: float = 0.95) -> dict[str, Any]:
    """Does a signature change monotonically with SFT strength? An exact rank test, three answers.

    Args:
        values: The signature of each pair (NaN pairs are dropped).
        strength: Each pair's SFT strength (e.g. SFT ÷ pretraining tokens), same order.
        level: Confidence level; the test is two-sided at ``1 − level``.

    Returns:
        ``{"trend": "grows with SFT strength" | "shrinks with SFT strength" | "cannot be told", "rho", "p",
        "n", "rule"}``.
    """
    v, s = np.asarray(values, dtype=float), np.asarray(strength, dtype=float)
    keep = np.isfinite(v) & np.isfinite(s)
    v, s = v[keep], s[keep]
    rule = (f"exact permutation test of Spearman's ρ across pairs, two-sided at {1 - level:.0%}; "
            "with n pairs the smallest p is 2/n!")
    if v.size < 3:
        return {"trend": "cannot be told", "rho": math.nan, "p": math.nan, "n": int(v.size),
                "rule": rule + f" (only {v.size} pairs have this signature)"}
    rho, p = spearman_exact(s, v)
    trend = "cannot be told"
    if p <= 1 - level:
        trend = "grows with SFT strength" if rho > 0 else "shrinks with SFT strength"
    return {"trend": trend, "rho": rho, "p": p, "n": int(v.size), "rule": rule}


def claim_table(records: Mapping[str, Mapping[str, Mapping[str, Any]]], claims: Sequence[str],
                claim_names: Mapping[str, str]) -> pd.DataFrame:
    """One row per claim, one column per pair: each pair's verdict on it (and its effect ± interval).

    Args:
        records: ``{pair: {headline id: finding dict}}``.
        claims: Headline ids to show, in order.
        claim_names: ``{headline id: claim text}``.

    Returns:
        A DataFrame indexed by claim text; cells read ``"<verdict>: <ours>"`` or ``"not run"``.
    """
    table: dict[str, dict[str, str]] = {}
    for pair, found in records.items():
        column = {}
        for hid in claims:
            f = found.get(hid)
            if f is None:
                column[claim_names[hid]] = "not run"
                continue
            verdict = f.get("verdict") or {True: "holds", False: "contradicted"}.get(f.get("agrees"), "scale only")
            column[claim_names[hid]] = f"{verdict}: {f.get('ours', '')}"
        table[pair] = column
    return pd.DataFrame(table).reindex([claim_names[h] for h in claims])


def strength_of(meta: Mapping[str, Any]) -> float:
    """A store's SFT strength: its SFT ÷ pretraining token ratio where known (toy pairs), else NaN."""
    ratio = (meta.get("toy") or {}).get("sft_compute_ratio")
    return float(ratio) if ratio is not None else math.nan


def rung_table(metas: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """What each compared pair is: SFT steps, SFT ÷ pretraining tokens, task scores, weight change.

    Args:
        metas: ``{pair: store.json}``.

    Returns:
        One row per pair (ordered by SFT strength where known) with ``sft_steps``, ``sft_compute_ratio``,
        ``base_exact_match``, ``sft_exact_match``, ``base_answer_nll``, ``sft_answer_nll``,
        ``weight_change_rel`` (NaN where unknown, e.g. for pairs that are not toy builds) and ``device``.
    """
    cols = ("sft_steps", "sft_compute_ratio", "base_exact_match", "sft_exact_match", "base_answer_nll",
            "sft_answer_nll", "weight_change_rel")
    rows = []
    for pair, meta in metas.items():
        toy_info = meta.get("toy") or {}
        rows.append({"pair": pair, **{c: toy_info.get(c, math.nan) for c in cols}, "device": meta.get("device", "")})
    frame = pd.DataFrame(rows, columns=["pair", *cols, "device"]).astype({c: float for c in cols})
    return frame.sort_values("sft_compute_ratio", kind="stable").reset_index(drop=True)


def signature_summary(tables: Mapping[str, Mapping[str, pd.DataFrame]],
                      metas: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Every signature of every pair, and whether it grows or shrinks with SFT strength (:func:`ladder_trend`).

    Returns:
        One row per signature: the paper's expectation, one column per pair (ordered by SFT strength), and
        ``trend``, ``rho``, ``p``, ``n``.
    """
    order = rung_table(metas)["pair"].tolist()
    values = {pair: signatures(tables[pair]) for pair in order}
    strength = [strength_of(metas[pair]) for pair in order]
    rows = []
    for name, expectation in SIGNATURES.items():
        series = [values[pair][name] for pair in order]
        trend = ladder_trend(series, strength)
        rows.append({"signature": name, "the paper": expectation, **dict(zip(order, series, strict=True)),
                     "trend": trend["trend"], "rho": trend["rho"], "p": trend["p"], "n": trend["n"]})
    return pd.DataFrame(rows).set_index("signature")


def trend_sentences(summary: pd.DataFrame) -> str:
    """One sentence per signature on a :func:`signature_summary` table: grows, shrinks or cannot be told."""
    lines = []
    for name, row in summary.iterrows():
        if row["n"] < 3:
            lines.append(f"- **{name}**: cannot be told — only {int(row['n'])} pairs have it.")
        elif row["trend"] == "cannot be told":
            lines.append(f"- **{name}**: cannot be told — no monotone change with SFT strength at the 5 % level "
                         f"(ρ = {row['rho']:+.2f}, exact p = {row['p']:.3f}, n = {int(row['n'])}).")
        else:
            lines.append(f"- **{name}** {row['trend']} (ρ = {row['rho']:+.2f}, exact p = {row['p']:.3f}, "
                         f"n = {int(row['n'])}).")
    return "\n".join(lines)
