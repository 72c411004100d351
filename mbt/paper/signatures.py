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

:func:`ladder_trend` asks whether a signature changes monotonically with SFT strength across the rungs,
with the SFT seeds (data orders) as replicates. What the null is depends on how the rungs were trained:

* ``paths="independent"`` — every (rung, seed) is its own SFT run from the Base (its own data order):
  under no trend the values are exchangeable, and Spearman's ρ between strength and signature over all
  points is tested exactly against every distinct rearrangement (:func:`spearman_exact`; mid-ranks for
  ties in the signature *and* in the strength — the seeds of a rung share its strength);
* ``paths="shared"`` — the rungs of one seed are checkpoints of one training path (the same data order,
  the first ``k`` batches of it): a signature that merely drifts along that path (a random walk in the
  steps) is correlated across the rungs, and a test over rungs calls such drift a trend 13 % of the time
  at 5 %. The unit is then the *seed*: ``ρ_s`` within each seed's path, and an exact sign-flip test of
  ``Σ_s ρ_s`` over seeds (a drift without direction is as likely mirrored). Its smallest p is ``2/2^S``, so
  fewer than 6 seeds can never reach 5 % — the answer is then "cannot be told", by design.

The six signatures are one family: :func:`signature_summary` decides each trend on its Holm-adjusted
p-value (:func:`mbt.paper.families.adjusted_pvalues`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper.families import adjusted_pvalues, p_text
from mbt.paper.intervals import sign_flip_pvalue
from mbt.segments import MIDDLE

__all__ = [
    "SIGNATURES",
    "claim_table",
    "ladder_trend",
    "replicate_of",
    "rung_table",
    "signature_curves",
    "signature_summary",
    "signatures",
    "spearman_exact",
    "strength_of",
    "trend_sentences",
    "verdict_sentence",
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


MAX_ARRANGEMENTS = 2_000_000
"""Most distinct rearrangements :func:`spearman_exact` enumerates (5 rungs × 2 seeds: 113 400)."""


def _midranks(v: np.ndarray) -> np.ndarray:
    return pd.Series(v).rank(method="average").to_numpy(dtype=float)


@functools.lru_cache(maxsize=64)
def _arrangements(sizes: tuple[int, ...]) -> np.ndarray:
    """Every distinct arrangement of group labels ``0..g−1`` with the given group sizes, ``(n_arr, n)`` int8."""
    n = sum(sizes)
    rows: list[np.ndarray] = []

    def place(group: int, free: tuple[int, ...], current: np.ndarray) -> None:
        if group == len(sizes) - 1:
            row = current.copy()
            row[list(free)] = group
            rows.append(row)
            return
        for chosen in itertools.combinations(free, sizes[group]):
            row = current.copy()
            row[list(chosen)] = group
            rest = tuple(i for i in free if i not in chosen)
            place(group + 1, rest, row)

    place(0, tuple(range(n)), np.zeros(n, dtype=np.int8))
    out = np.stack(rows)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _centred_ranks(sizes: tuple[int, ...]) -> np.ndarray:
    """The mid-ranks of ``x`` in every distinct arrangement of its tie groups, centred, ``(n_arr, n)`` (cached).

    Group ``g`` (the ``g``-th smallest value, ``k_g`` copies) has mid-rank ``k_0 + … + k_{g−1} + (k_g + 1)/2``.
    """
    k = np.asarray(sizes, dtype=float)
    group_rank = np.cumsum(k) - k + (k + 1.0) / 2.0
    arr = group_rank[_arrangements(sizes)]
    out = arr - arr.mean(axis=1, keepdims=True)
    out.setflags(write=False)
    return out


def _n_arrangements(sizes: Sequence[int]) -> int:
    total = math.factorial(sum(sizes))
    for k in sizes:
        total //= math.factorial(k)
    return total


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 0 else 0.0


def spearman_exact(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    r"""Spearman's rank correlation and its exact two-sided permutation p-value, ties handled exactly.

    ``ρ = corr(rank(x), rank(y))`` with mid-ranks for ties. Under exchangeability every one of the ``n!``
    pairings of ``x`` with ``y`` is equally likely; pairings that differ only inside a group of tied ``x``
    give the same ``ρ``, so the distinct arrangements of ``x``'s tie groups (``n! / Π k_g!``, each standing
    for ``Π k_g!`` pairings) are enumerated: ``p = #{arrangements a : |ρ_a| ≥ |ρ|} / #arrangements`` (a small
    tolerance counts ties of ``|ρ|``). Ties in ``y`` enter through its mid-ranks. Exact: with five distinct
    strengths the smallest p is ``2/120``; with two tied signature values it is ``8/120 = 0.067``.

    Args:
        x: First variable (e.g. SFT strength, repeated for the seeds of a rung), ``(n,)``.
        y: Second variable (the signature), ``(n,)``.

    Returns:
        ``(ρ, p)``.

    Raises:
        ValueError: Fewer than 3 pairs, lengths that differ, or more than :data:`MAX_ARRANGEMENTS` distinct
            arrangements (use :func:`ladder_trend`, which then samples).
    """
    xa, ya = np.asarray(x, dtype=float).reshape(-1), np.asarray(y, dtype=float).reshape(-1)
    if xa.shape != ya.shape or xa.size < 3:
        raise ValueError(f"need at least 3 paired values of equal length, got {xa.size} and {ya.size}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise ValueError("x and y must be finite (drop missing pairs first)")
    values, labels = np.unique(xa, return_inverse=True)
    sizes = tuple(int(c) for c in np.bincount(labels))
    count = _n_arrangements(sizes)
    if count > MAX_ARRANGEMENTS:
        raise ValueError(f"{count} distinct arrangements exceed {MAX_ARRANGEMENTS}; use a sampled test")
    rx, ry = _midranks(xa), _midranks(ya)
    observed = _rho(rx, ry)
    null = _null_abs_rho(sizes, tuple(np.sort(ry).tolist()))
    p = float(null.size - np.searchsorted(null, abs(observed) - 1e-12, side="left")) / null.size
    return observed, p


@functools.lru_cache(maxsize=256)
def _null_abs_rho(sizes: tuple[int, ...], ranks: tuple[float, ...]) -> np.ndarray:
    """Sorted ``|ρ|`` over every distinct arrangement of ``x``'s tie groups against the mid-ranks ``ranks`` of ``y``.

    The distribution depends on ``y`` only through the multiset of its mid-ranks (rearranging ``y`` maps the
    set of arrangements onto itself), so it is cached by ``(sizes, sorted ranks)``.
    """
    a = _centred_ranks(sizes)
    b = np.asarray(ranks) - float(np.mean(ranks))
    denom = math.sqrt(float(np.sum(a[0] ** 2)) * float(b @ b))
    rhos = np.abs(a @ b) / denom if denom > 0 else np.zeros(a.shape[0])
    rhos.sort()
    rhos.setflags(write=False)
    return rhos


def _spearman_sampled(x: np.ndarray, y: np.ndarray, n_perm: int, seed: int) -> tuple[float, float]:
    """Spearman's ρ with a Monte-Carlo permutation p ``(1 + #{|ρ_π| ≥ |ρ|}) / (1 + n_perm)`` (seeded)."""
    rx, ry = _midranks(x), _midranks(y)
    observed = _rho(rx, ry)
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, x.size)), axis=1)
    a = rx[perms] - rx.mean()
    b = ry - ry.mean()
    rhos = (a @ b) / math.sqrt(float(np.sum((rx - rx.mean()) ** 2)) * float(b @ b))
    return observed, float((1 + np.sum(np.abs(rhos) >= abs(observed) - 1e-12)) / (1 + n_perm))


def ladder_trend(values: Sequence[float], strength: Sequence[float], *, level: float = 0.95,
                 paths: str = "independent", seeds: Sequence[Any] | None = None, n_perm: int = 20000,
                 seed: int = 0) -> dict[str, Any]:
    r"""Does a signature change monotonically with SFT strength? Three answers, seeds as replicates.

    Args:
        values: The signature of each point (one per rung and seed; NaN points are dropped).
        strength: Each point's SFT strength (the seeds of a rung share it).
        level: The test is two-sided at ``1 − level``.
        paths: ``"independent"`` (every point its own SFT run: exact permutation test of Spearman's ρ over
            all points, :func:`spearman_exact`, sampled with ``n_perm`` permutations beyond
            :data:`MAX_ARRANGEMENTS`) or ``"shared"`` (the rungs of a seed are checkpoints of one training
            path: ``ρ_s`` per seed over its rungs, exact sign-flip test of their sum over seeds).
        seeds: Seed label of each point (needed for ``"shared"``; default: one seed).
        n_perm: Permutations of a sampled test.
        seed: Its seed.

    Returns:
        ``{"trend": "grows with SFT strength" | "shrinks with SFT strength" | "cannot be told", "rho", "p",
        "n", "seeds", "rule"}``; ``rho`` is Spearman's ρ over all points (``"independent"``) or the mean of
        the per-seed ``ρ_s`` (``"shared"``); ``n`` counts points, ``seeds`` distinct seeds.
    """
    if paths not in ("independent", "shared"):
        raise ValueError(f"paths must be 'independent' or 'shared', got {paths!r}")
    v, s = np.asarray(values, dtype=float).reshape(-1), np.asarray(strength, dtype=float).reshape(-1)
    lab = np.zeros(v.size, dtype=object) if seeds is None else np.asarray(list(seeds), dtype=object)
    if not v.size == s.size == lab.size:
        raise ValueError(f"values, strength and seeds must have the same length, got {v.size}, {s.size}, {lab.size}")
    keep = np.isfinite(v) & np.isfinite(s)
    v, s, lab = v[keep], s[keep], lab[keep]
    n_seeds = len(set(lab.tolist()))
    alpha = 1.0 - level
    out: dict[str, Any] = {"trend": "cannot be told", "rho": math.nan, "p": math.nan, "n": int(v.size),
                           "seeds": n_seeds}
    if paths == "independent":
        rule = (f"permutation test of Spearman's ρ over all {v.size} (rung, seed) points, two-sided at {alpha:.0%}, "
                "each point its own SFT run; mid-ranks for ties")
        if v.size < 3:
            have = "1 point has" if v.size == 1 else f"{v.size} points have"
            out["rule"] = (f"a permutation test of Spearman's ρ needs at least 3 (rung, seed) points, each its own "
                           f"SFT run; only {have} this signature")
            return out
        sizes = np.bincount(np.unique(s, return_inverse=True)[1])
        if _n_arrangements(sizes.tolist()) <= MAX_ARRANGEMENTS:
            rho, p = spearman_exact(s, v)
            rule += f"; exact over {_n_arrangements(sizes.tolist())} distinct arrangements"
        else:
            rho, p = _spearman_sampled(s, v, n_perm, seed)
            rule += f"; p from {n_perm} random permutations (seed {seed})"
    else:
        rule = (f"seeds as the unit (the rungs of a seed share one training path): Spearman's ρ_s over each seed's "
                f"rungs, exact sign-flip test of Σ ρ_s over {n_seeds} seed(s), two-sided at {alpha:.0%}; "
                f"the smallest possible p is 2/2^S = {2.0 / 2**n_seeds:.3g}")
        rhos = []
        for label in dict.fromkeys(lab.tolist()):
            member = lab == label
            if np.unique(s[member]).size >= 3:
                rhos.append(_rho(_midranks(s[member]), _midranks(v[member])))
        if not rhos:
            out["rule"] = rule + " (no seed has this signature on 3 rungs)"
            return out
        rho = float(np.mean(rhos))
        p = sign_flip_pvalue(np.array(rhos))
        out["seeds"] = len(rhos)
    out.update(rho=rho, p=p, rule=rule)
    if p <= alpha:
        out["trend"] = "grows with SFT strength" if rho > 0 else "shrinks with SFT strength"
    return out


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


def verdict_sentence(records: Mapping[str, Mapping[str, Any]], claims: Sequence[str], *, pair: str) -> str:
    """One sentence, read from a pair's records, on how its verdicts on ``claims`` fall.

    Args:
        records: ``{headline id: finding dict}`` of one pair (as stored by the chapters).
        claims: The headline ids to count, in order.
        pair: The pair's name, for the sentence.

    Returns:
        E.g. ``"On `toy`, of the 20 claims of chapters 1–4 with a verdict: 7 hold (…), 2 are contradicted (…) and
        11 are inconclusive."``; says so when the pair has no records yet.
    """
    groups: dict[str, list[str]] = {"holds": [], "contradicted": [], "inconclusive": []}
    for hid in claims:
        verdict = (records.get(hid) or {}).get("verdict")
        if verdict in groups:
            groups[verdict].append(hid)
    n = sum(len(v) for v in groups.values())
    if n == 0:
        return f"`{pair}` has no recorded verdicts on these claims yet (run its chapters 1–4 first)."

    def part(word: str, ids: list[str]) -> str:
        return f"{len(ids)} {word}" + (f" ({', '.join(f'`{i}`' for i in ids)})" if ids else "")

    return (f"On `{pair}`, of the {n} claims of chapters 1–4 with a verdict: "
            f"{part('hold' if len(groups['holds']) != 1 else 'holds', groups['holds'])}, "
            f"{part('contradicted', groups['contradicted'])} and "
            f"{len(groups['inconclusive'])} inconclusive.")


def strength_of(meta: Mapping[str, Any]) -> float:
    """A store's SFT strength: its SFT ÷ pretraining token ratio where known (toy pairs), else NaN."""
    ratio = (meta.get("toy") or {}).get("sft_compute_ratio")
    return float(ratio) if ratio is not None else math.nan


def replicate_of(meta: Mapping[str, Any]) -> int:
    """A store's replicate on the ladder: its pair's ``toy_sft_seed`` (0 for the ladder's first replicate)."""
    return int((meta.get("spec") or {}).get("toy_sft_seed") or 0)


def _rank_strength(metas: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> list[float]:
    """What the trend test ranks: SFT steps where every pair has them, else the SFT ÷ pretraining ratio.

    The replicates of a rung differ in their token counts by a fraction of a percent (their data orders
    differ) but not in their steps, so ranked by steps they tie exactly.
    """
    steps = [(metas[p].get("toy") or {}).get("sft_steps") for p in order]
    if all(isinstance(k, int | float) for k in steps):
        return [float(k) for k in steps]
    return [strength_of(metas[p]) for p in order]


def rung_table(metas: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """What each compared pair is: SFT run, examples seen and epochs, SFT ÷ pretraining tokens, scores, weight change.

    Args:
        metas: ``{pair: store.json}``.

    Returns:
        One row per pair (ordered by SFT strength where known, then replicate) with ``replicate``,
        ``sft_steps``, ``sft_examples_seen`` (steps × batch), ``sft_epochs`` (examples seen ÷ SFT examples),
        ``sft_compute_ratio``, ``base_exact_match``, ``sft_exact_match``, ``base_answer_nll``,
        ``sft_answer_nll``, ``weight_change_rel`` (NaN where unknown, e.g. for pairs that are not toy
        builds) and ``device``.
    """
    cols = ("sft_steps", "sft_examples_seen", "sft_epochs", "sft_compute_ratio", "base_exact_match",
            "sft_exact_match", "base_answer_nll", "sft_answer_nll", "weight_change_rel")
    rows = []
    for pair, meta in metas.items():
        toy_info = meta.get("toy") or {}
        rows.append({"pair": pair, "replicate": replicate_of(meta),
                     **{c: toy_info.get(c, math.nan) for c in cols}, "device": meta.get("device", "")})
    frame = pd.DataFrame(rows, columns=["pair", "replicate", *cols, "device"]).astype({c: float for c in cols})
    return frame.sort_values(["sft_compute_ratio", "replicate"], kind="stable").reset_index(drop=True)


def signature_summary(tables: Mapping[str, Mapping[str, pd.DataFrame]],
                      metas: Mapping[str, Mapping[str, Any]], *, paths: str = "independent",
                      level: float = 0.95) -> pd.DataFrame:
    """Every signature of every pair, and whether it grows or shrinks with SFT strength (:func:`ladder_trend`).

    Each pair is one SFT run; its replicate comes from its store (:func:`replicate_of`) and its strength
    from its SFT steps (ties between replicates exact) or, for pairs without them, its SFT ÷ pretraining
    ratio. The six signatures are one family: each trend is decided on its Holm-adjusted p-value
    (``p_holm ≤ 1 − level``), so that under no trend in any of them a "grows/shrinks" sentence appears at most
    5 % of the time.

    Args:
        tables: ``{pair: {table name: table}}``.
        metas: ``{pair: store.json}``.
        paths: How the runs relate (see :func:`ladder_trend`): ``"independent"`` (the ladder: every rung and
            replicate its own data order, :func:`mbt.toy.data_order`) or ``"shared"`` (the rungs of a
            replicate are checkpoints of one training path).
        level: Family level.

    Returns:
        One row per signature: the paper's expectation, one column per pair (ordered by SFT strength), and
        ``trend``, ``rho``, ``p``, ``p_holm``, ``n``, ``seeds``, ``rule``.
    """
    order = rung_table(metas)["pair"].tolist()
    values = {pair: signatures(tables[pair]) for pair in order}
    strength = _rank_strength(metas, order)
    labels = [replicate_of(metas[pair]) for pair in order]
    rows = []
    for name, expectation in SIGNATURES.items():
        series = [values[pair][name] for pair in order]
        trend = ladder_trend(series, strength, level=level, paths=paths, seeds=labels)
        rows.append({"signature": name, "the paper": expectation, **dict(zip(order, series, strict=True)),
                     "trend": trend["trend"], "rho": trend["rho"], "p": trend["p"], "n": trend["n"],
                     "seeds": trend["seeds"], "rule": trend["rule"]})
    frame = pd.DataFrame(rows).set_index("signature")
    frame.insert(frame.columns.get_loc("p") + 1, "p_holm", adjusted_pvalues(frame["p"].to_numpy(float), "holm"))
    undecided = ~(frame["p_holm"] <= 1.0 - level)
    frame.loc[undecided, "trend"] = "cannot be told"
    return frame


def trend_sentences(summary: pd.DataFrame) -> str:
    """One sentence per signature on a :func:`signature_summary` table: grows, shrinks or cannot be told."""
    lines = []
    family = f"Holm over the {len(summary)} signatures" if "p_holm" in summary.columns else "no family correction"
    for name, row in summary.iterrows():
        p_holm = row.get("p_holm", row["p"])
        seeds = int(row["seeds"]) if "seeds" in summary.columns else None
        stats = (f"ρ = {row['rho']:+.2f}, p {p_text(row['p'])}, {family}: {p_text(p_holm)}, "
                 f"n = {int(row['n'])} points" + (f", {seeds} seed{'s' if seeds != 1 else ''}" if seeds else ""))
        if not np.isfinite(row["p"]):
            lines.append(f"- **{name}**: cannot be told — {row.get('rule', 'too few pairs have it')}.")
        elif row["trend"] == "cannot be told":
            lines.append(f"- **{name}**: cannot be told — no monotone change with SFT strength at the 5 % level "
                         f"({stats}).")
        else:
            lines.append(f"- **{name}** {row['trend']} ({stats}).")
    return "\n".join(lines)
