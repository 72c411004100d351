r"""Chapter 9: what SFT writes, where it settles, and whether the depth profile survives the equal-step control.

Each function below turns one table of :mod:`mbt.diffing` or :mod:`mbt.equal_step` into findings; the verdicts
come from the verdict engine (:mod:`mbt.paper.verdicts`), never from a sign:

* ``adl_depth`` — the relative size ``ρ_l`` of the activation difference: last 20 % ÷ middle − 1 with the
  percentile interval of the joint-bootstrap replicates (:func:`~mbt.paper.verdicts.band_contrast`,
  ``unit="replicates"``: the same resampled texts at every layer);
* ``adl_steering`` — at the middle layer (:func:`steering_layer`; the layer the activation difference lens
  reads), the per-text KL reduction by ``α·δ`` minus that by random directions of the same norm, paired
  bootstrap over texts (:func:`~mbt.paper.verdicts.bootstrap_interval`);
* ``settles_later`` — per text, the mean over the layers of depth ``(0.5, 1)`` (the last layer, where both are 0,
  left out) of ``KL_SFT − KL_Base`` to each model's own output, bootstrap over texts;
* ``graft_late_mlp``, ``graft_late_mlp_reverse``, ``graft_mlp_over_attn`` — per-text changes of the late KL
  under the grafts, paired bootstrap over texts;
* ``template_tokens`` — per text, mean per-token KL on template targets − on content targets, paired bootstrap;
* ``equal_step_<signature>`` and ``equal_step_<signature>_flatter`` — each run's **profile** (:func:`run_profiles`:
  last 20 % against the middle 20–80 % of depth, signed so that the paper's late-layer profile is positive),
  compared over SFT seeds: the mean over SFT lengths with a Student t interval whose variance is pooled
  within lengths (:func:`stratified_interval`: lengths are fixed conditions, seeds the replicates).

Every rule is calibrated on simulated null data at 10 and at 40 layers
(``tests/paper/findings/test_diffing.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mbt.paper import verdicts as V
from mbt.paper.findings.common import LEVEL, Finding, fmt, judged, undecidable
from mbt.paper.verdicts import Decision

CHAPTER = "09_what_sft_writes"
"""The chapter whose headlines this module decides."""

SIGNATURE_PROFILES: dict[str, tuple[str, int]] = {
    "eq1": ("ratio", +1),
    "cka": ("difference", -1),
    "shift": ("ratio", +1),
    "lens": ("difference", +1),
}
"""Per depth signature, how its profile is measured: ``"ratio"`` (last ÷ middle − 1) or ``"difference"`` (last −
middle), and the sign that makes the paper's late-layer profile positive (CKA *drops* in the last layers)."""

LATE_BAND: tuple[float, float] = (0.5, 1.0)
"""Depth band of the convergence gap's "late" layers (the last layer, where every lens KL is 0, excluded)."""


def steering_layer(n_layers: int) -> int:
    """The layer the steering claim is decided at: the middle, ``round(L / 2)`` (the ADL reads the middle layer)."""
    return max(1, round(n_layers / 2))


def _depth_of_table(frame: pd.DataFrame) -> int:
    sel = frame[frame["depth"] > 0]
    return int(round(float((sel["layer"] / sel["depth"]).median())))


def _texts_direction(values: np.ndarray, *, side: int, level: float, seed: int = 0) -> Decision:
    iv = V.bootstrap_interval(values, level=level, seed=seed)
    if not math.isfinite(iv.low):
        return undecidable(f"{iv.n} text(s) with a value: an interval needs at least 2", unit="texts", level=level)
    return V.direction(iv, side=side)


# ----------------------------------------------------------------------------------------------
# the activation difference lens


def adl_findings(difference: pd.DataFrame | None = None, steering: pd.DataFrame | None = None, *,
                 level: float = LEVEL) -> list[Finding]:
    """``adl_depth`` and ``adl_steering`` (module docstring).

    Args:
        difference: :func:`mbt.diffing.activation_difference`.
        steering: :func:`mbt.diffing.steering_check`.
        level: Confidence level.
    """
    out = []
    if difference is not None and not difference.empty:
        est = difference[difference["replicate"] == -1].set_index("layer").sort_index()
        reps = difference[difference["replicate"] >= 0].pivot_table(index="replicate", columns="layer",
                                                                    values="relative").reindex(columns=est.index)
        try:
            if reps.empty:
                raise ValueError("no bootstrap replicates (n_bootstrap=0)")
            d = V.band_contrast(reps.to_numpy(float), est["depth"].to_numpy(float), unit="replicates",
                                estimate=est["relative"].to_numpy(float), statistic="ratio", side=1, level=level)
        except ValueError as err:
            d = undecidable(str(err), unit="texts", level=level)
        top = int(est["relative"].idxmax())
        out.append(judged("adl_depth", f"ρ last 20 % ÷ middle − 1; ρ peaks at {fmt(est['relative'].max())} "
                                       f"(layer {top}), k = {int(est['k'].iloc[0])} tokens of {int(est['n'].iloc[0])} "
                                       "texts", d,
                          note="ρ = ‖δ_l‖ with its noise floor removed ÷ the Base's mean residual norm"))
    if steering is not None and not steering.empty:
        L = _depth_of_table(steering)
        target = steering_layer(L)
        layers = sorted(steering["layer"].unique())
        layer = min(layers, key=lambda x: (abs(x - target), x))
        g = steering[steering["layer"] == layer]
        diff = (g["reduction"] - g["reduction_random"]).to_numpy(float)
        d = _texts_direction(diff, side=1, level=level)
        out.append(judged("adl_steering", f"layer {layer} of {L}: KL(p_SFT ‖ p_Base) falls by "
                                          f"{fmt(g['reduction'].mean())} nats with α·δ, by "
                                          f"{fmt(g['reduction_random'].mean())} with random directions "
                                          f"(α = {fmt(float(g['alpha'].iloc[0]), 2)})", d,
                          note=f"KL before steering {fmt(g['kl_base'].mean())} nats; effect = δ − random, per text"))
    return out


# ----------------------------------------------------------------------------------------------
# convergence gap and grafts


def late_layers(n_layers: int, band: tuple[float, float] = LATE_BAND) -> list[int]:
    """Layers of depth in ``band`` (``(lo, hi]``) below the last one."""
    lo, hi = band
    return [layer for layer in range(1, n_layers) if lo < layer / n_layers <= hi]


def gap_findings(gap: pd.DataFrame | None = None, grafts: pd.DataFrame | None = None, *,
                 level: float = LEVEL) -> list[Finding]:
    """``settles_later`` and the graft claims (module docstring).

    Args:
        gap: :func:`mbt.diffing.convergence_gap`.
        grafts: :func:`mbt.diffing.graft_sweep`.
        level: Confidence level.
    """
    out = []
    if gap is not None and not gap.empty:
        L = _depth_of_table(gap)
        late = late_layers(L)
        per = gap[gap["layer"].isin(late)].groupby(["text", "model"])["value"].mean().unstack("model")
        if late and {"base", "sft"} <= set(per.columns):
            d = _texts_direction((per["sft"] - per["base"]).to_numpy(float), side=1, level=level)
            ours = (f"late KL to own output (layers {late[0]}–{late[-1]} of {L}): SFT {fmt(per['sft'].mean())} vs "
                    f"Base {fmt(per['base'].mean())} nats")
        else:
            d, ours = undecidable(f"no layer of depth {LATE_BAND} below the last of {L}", unit="texts"), "—"
        out.append(judged("settles_later", ours, d, note="SFT − Base, per text, mean over the late layers"))
    if grafts is not None and not grafts.empty:
        def change(direction: str, part: str, kind: str = "graft") -> pd.Series | None:
            g = grafts[grafts["direction"] == direction]
            ref = g[g["kind"] == "receiver"].set_index("text")["score"]
            sel = g[(g["part"] == part) & (g["kind"] == kind)].set_index("text")["score"]
            return None if sel.empty or ref.empty else sel - ref.reindex(sel.index)

        mlp, rand = change("sft→base", "mlp"), change("sft→base", "mlp", "random")
        if mlp is not None:
            d = _texts_direction(mlp.to_numpy(float), side=1, level=level)
            note = ("matched random perturbation " + (fmt(float(rand.mean())) if rand is not None else "not run")
                    + " nats")
            out.append(judged("graft_late_mlp", f"Base's late KL with SFT's MLPs of blocks {_blocks(grafts)}: "
                                                f"{fmt(float(mlp.mean()))} nats", d, note=note))
        back = change("base→sft", "mlp")
        if back is not None:
            d = _texts_direction(back.to_numpy(float), side=-1, level=level)
            out.append(judged("graft_late_mlp_reverse", f"SFT's late KL with the Base's late MLPs: "
                                                        f"{fmt(float(back.mean()))} nats", d))
        attn = change("sft→base", "attn")
        if mlp is not None and attn is not None:
            diff = (mlp - attn.reindex(mlp.index)).to_numpy(float)
            d = _texts_direction(diff, side=1, level=level)
            out.append(judged("graft_mlp_over_attn", f"MLP graft {fmt(float(mlp.mean()))} vs attention graft "
                                                     f"{fmt(float(attn.mean()))} nats (SFT→Base)", d))
    return out


def _blocks(grafts: pd.DataFrame) -> str:
    blocks = str(grafts["blocks"].iloc[0]).split(",")
    return f"{blocks[0]}–{blocks[-1]}" if len(blocks) > 1 else blocks[0]


# ----------------------------------------------------------------------------------------------
# per-token KL by kind


def token_findings(tokens: pd.DataFrame | None = None, *, level: float = LEVEL) -> list[Finding]:
    """``template_tokens`` from :func:`mbt.diffing.token_kl` (module docstring)."""
    if tokens is None or tokens.empty:
        return []
    content = tokens["kind"].isin(["prompt", "answer", "text"])
    per = pd.DataFrame({"template": tokens[tokens["kind"] == "template"].groupby("text")["kl"].mean(),
                        "content": tokens[content].groupby("text")["kl"].mean()}).dropna()
    if per.empty:
        d = undecidable("no text has both template and content tokens (plain text has no template)", unit="texts",
                        level=level)
        ours = "—"
    else:
        d = _texts_direction((per["template"] - per["content"]).to_numpy(float), side=1, level=level)
        ours = (f"per-token KL(p_SFT ‖ p_Base): template {fmt(per['template'].mean())} vs content "
                f"{fmt(per['content'].mean())} nats ({len(per)} texts)")
    return [judged("template_tokens", ours, d, note="the kind of the predicted token; each text weighs the same")]


# ----------------------------------------------------------------------------------------------
# the equal-step control


def profile(values: pd.Series, depth: pd.Series, signature: str) -> float:
    """One run's late-layer profile of a signature: last 20 % against the middle 20–80 % of depth.

    ``ratio``: ``mean_last / mean_middle − 1``; ``difference``: ``mean_last − mean_middle``; times the sign of
    :data:`SIGNATURE_PROFILES` (positive = the paper's late-layer profile). NaN when a band is empty.
    """
    how, sign = SIGNATURE_PROFILES[signature]
    v, dep = np.asarray(values, dtype=float), np.asarray(depth, dtype=float)
    last = v[(dep > V.BANDS["last"][0]) & (dep <= V.BANDS["last"][1])]
    mid = v[(dep > V.BANDS["middle"][0]) & (dep <= V.BANDS["middle"][1])]
    if last.size == 0 or mid.size == 0:
        return float("nan")
    value = last.mean() / mid.mean() - 1.0 if how == "ratio" else last.mean() - mid.mean()
    return float(sign * value)


def run_profiles(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's profile per signature (:func:`profile`): ``rule, steps, seed, signature, profile``.

    Args:
        runs: :func:`mbt.equal_step.equal_step_runs`.
    """
    rows = [{"rule": rule, "steps": int(steps), "seed": int(seed), "signature": sig,
             "profile": profile(g["value"], g["depth"], sig)}
            for (rule, steps, seed, sig), g in runs.groupby(["rule", "steps", "seed", "signature"], sort=True)
            if sig in SIGNATURE_PROFILES]
    return pd.DataFrame(rows, columns=["rule", "steps", "seed", "signature", "profile"])


def stratified_interval(groups: Mapping[Any, Sequence[float]], *, level: float = LEVEL,
                        unit: str = "seeds") -> V.Interval:
    r"""Mean over strata of per-stratum means, with a Student t interval pooled within strata.

    For strata ``r`` (SFT lengths: fixed conditions) with replicates ``y_{r,s}`` (SFT seeds), the estimate is
    ``θ̂ = (1/R) Σ_r ȳ_r``; the within-stratum variance ``s² = Σ_r Σ_s (y_{r,s} − ȳ_r)² / ν`` with
    ``ν = Σ_r (n_r − 1)`` degrees of freedom; ``SE = √(s² Σ_r 1/n_r) / R``; the interval
    ``θ̂ ± t_{(1+level)/2, ν}·SE``. Exact when the seed noise is normal with one variance in every stratum,
    whatever the strata's own means. NaN bounds with ``ν < 1`` (one seed per length).
    """
    clean = [np.asarray([x for x in g if math.isfinite(float(x))], dtype=float) for g in groups.values()]
    clean = [g for g in clean if g.size]
    n = int(sum(g.size for g in clean))
    method = f"mean over {len(clean)} SFT lengths; Student t over seeds, variance pooled within lengths"
    if not clean:
        return V.Interval(float("nan"), float("nan"), float("nan"), level, float("nan"), 0, unit, method)
    est = float(np.mean([g.mean() for g in clean]))
    df = float(sum(g.size - 1 for g in clean))
    if df < 1:
        return V.Interval(est, float("nan"), float("nan"), level, float("nan"), n, unit, method)
    s2 = float(sum(((g - g.mean()) ** 2).sum() for g in clean)) / df
    se = math.sqrt(s2 * sum(1.0 / g.size for g in clean)) / len(clean)
    half = V.t_quantile((1.0 + level) / 2.0, df) * se
    return V.Interval(est, est - half, est + half, level, se, n, unit, method, df)


def equal_step_findings(runs: pd.DataFrame | None = None, *, level: float = LEVEL) -> list[Finding]:
    """``equal_step_<signature>`` and ``equal_step_<signature>_flatter`` from :func:`mbt.equal_step.equal_step_runs`."""
    if runs is None or runs.empty:
        return []
    prof = run_profiles(runs)
    out = []
    for sig in SIGNATURE_PROFILES:
        p = prof[prof["signature"] == sig]
        eq = p[p["rule"] == "equal_step"]
        std = p[p["rule"] == "standard"]
        if eq.empty:
            continue
        iv = stratified_interval({k: g["profile"].tolist() for k, g in eq.groupby("steps")}, level=level)
        d = V.direction(iv, side=1) if math.isfinite(iv.low) else undecidable(
            "one SFT seed per length: no interval over seeds", unit="seeds", level=level)
        std_mean = float(std["profile"].mean()) if not std.empty else float("nan")
        out.append(judged(f"equal_step_{sig}", f"equal-step profile {fmt(iv.estimate)} (standard {fmt(std_mean)}); "
                                               f"{eq['steps'].nunique()} lengths × {eq['seed'].nunique()} seeds", d,
                          note=f"profile = last 20 % vs middle ({SIGNATURE_PROFILES[sig][0]}), positive = late-layer"))
        if std.empty:
            continue
        both = eq.merge(std, on=["steps", "seed"], suffixes=("_eq", "_std"))
        diffs = {k: (g["profile_eq"] - g["profile_std"]).tolist() for k, g in both.groupby("steps")}
        iv = stratified_interval(diffs, level=level)
        d = V.direction(iv, side=-1) if math.isfinite(iv.low) else undecidable(
            "one SFT seed per length: no interval over seeds", unit="seeds", level=level)
        out.append(judged(f"equal_step_{sig}_flatter", f"equal-step − standard profile {fmt(iv.estimate)}", d,
                          note="paired by SFT length and seed (the same data order under both rules)"))
    return out


def diffing_findings(*, difference: pd.DataFrame | None = None, steering: pd.DataFrame | None = None,
                     gap: pd.DataFrame | None = None, grafts: pd.DataFrame | None = None,
                     tokens: pd.DataFrame | None = None, runs: pd.DataFrame | None = None,
                     level: float = LEVEL) -> list[Finding]:
    """Every finding of chapter 9 from the tables it computed (any may be left out).

    Args:
        difference: :func:`mbt.diffing.activation_difference`.
        steering: :func:`mbt.diffing.steering_check`.
        gap: :func:`mbt.diffing.convergence_gap`.
        grafts: :func:`mbt.diffing.graft_sweep`.
        tokens: :func:`mbt.diffing.token_kl`.
        runs: :func:`mbt.equal_step.equal_step_runs`.
        level: Confidence level of every interval.

    Returns:
        The findings, in the headlines' order.
    """
    return [*adl_findings(difference, steering, level=level), *gap_findings(gap, grafts, level=level),
            *token_findings(tokens, level=level), *equal_step_findings(runs, level=level)]
