"""Measure every decision rule of the verdict engine: false decisions under its null, power at the paper's effect.

Prints a Markdown table (one row per rule) for the methods page: the rule, its unit, the null it was
simulated under, the false-decision rate (holds + contradicted) under that null at 10 and at 40 layers,
and the power (holds) at the stated effect at 10 and 40 layers, each with its Monte-Carlo standard error.
Rules that do not depend on depth (seeds, families) give one number in both columns. Each rule has a key;
a headline of the paper names the key of the rule that decides it (:attr:`mbt.paper.headlines.Headline.rule`),
and the methods page joins the two (:mod:`mbt.paper.calibration`).

``--out book/calibration.json`` also writes the numbers for the methods page (committed: rerun this script
when a rule changes; a test checks that every rule a headline names is in the file).

Run:  nice -n 10 .venv/bin/python scripts/calibrate_verdicts.py [--reps 1000] [--power-reps 300] [--seed 0]
      [--out book/calibration.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mbt.paper import curves as C
from mbt.paper import families as F
from mbt.paper import nulls as N
from mbt.paper import seeds as Sd
from mbt.paper import shapes as S
from mbt.paper import signatures as sig
from mbt.paper import verdicts as V
from mbt.paper.calibration import rules_markdown
from mbt.paper.verdicts import Verdict
from mbt.stats import bootstrap_mean_ci

DEPTHS = (10, 40)
Decide = Callable[[np.random.Generator, int, int], list]


def rate(decisions: list, which: str) -> float:
    """Share of decided (``"false"``: holds or contradicted) or holding (``"holds"``) decisions."""
    if which == "false":
        return float(np.mean([d.verdict != Verdict.INCONCLUSIVE for d in decisions]))
    return float(np.mean([d.verdict == Verdict.HOLDS for d in decisions]))


def by_rule(decisions: list) -> bool:
    """Whether every decision is inconclusive by its rule (e.g. too few layers for a depth spline)."""
    return bool(decisions) and all(getattr(d, "rule", "").startswith("not decidable here") for d in decisions)


def replicate_rows(rng: np.random.Generator, truth: np.ndarray, reps: int, n_boot: int, sd: float,
                   chunk: int = 200) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(estimate, replicates)`` per case, generated in chunks to bound memory."""
    out = []
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        est, boot = N.replicates(rng, np.broadcast_to(truth, (k, truth.size)).copy(), n_boot=n_boot, sd=sd)
        out += [(est[i], boot[i]) for i in range(k)]
    return out


def paired_rows(rng: np.random.Generator, base: np.ndarray, sft: np.ndarray, reps: int, n_boot: int, sd: float,
                chunk: int = 200) -> list[tuple[np.ndarray, ...]]:
    """``(base_est, sft_est, base_reps, sft_reps)`` per case (same resampled texts for both models)."""
    out = []
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        eb, es, rb, rs = N.paired_replicates(rng, np.broadcast_to(base, (k, base.size)).copy(),
                                             np.broadcast_to(sft, (k, sft.size)).copy(), n_boot=n_boot, sd=sd)
        out += [(eb[i], es[i], rb[i], rs[i]) for i in range(k)]
    return out


# ---- one function per rule: (null decisions, power decisions) at a depth ---------------------------------


def band_replicates(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """1 − CKA, last 20 % − middle, from joint replicates (SE 0.02 per layer, AR(0.9) over layers)."""
    d = N.depth_grid(n)
    null = [V.band_contrast(b, d, unit="replicates", estimate=e, n_texts=100)
            for e, b in replicate_rows(rng, 0.1 + 0 * d, reps, 500, 0.02)]
    drop = 0.1 + 0.158 * (d > 0.8)
    power = [V.band_contrast(b, d, unit="replicates", estimate=e, n_texts=100)
             for e, b in replicate_rows(rng, drop, power_reps, 500, 0.02)]
    return null, power


def band_layers(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Weight change, last band ÷ middle on the log scale, blocks as units."""
    d = N.depth_grid(n)
    w = 0.01 * np.exp(0.2 * N.ar1(rng, (reps, n), 0.9))
    null = [V.band_contrast(w[i], d, unit="layers", statistic="log_ratio") for i in range(reps)]
    j = (0.01 + 0.1 * N.shape("j", d)) * np.exp(0.05 * N.ar1(rng, (power_reps, n), 0.5))
    power = [V.band_contrast(j[i], d, unit="layers", statistic="log_ratio") for i in range(power_reps)]
    return null, power


def spline_correlation(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Depth-controlled r (ours): null two J shapes of different steepness; power a shared AR(0.5) wiggle."""
    d = N.depth_grid(n)
    x = np.exp(4 * d) + 0.5 * rng.normal(size=(reps, n))
    y = np.exp(6 * d) + 5.0 * rng.normal(size=(reps, n))
    null = [V.curve_correlation(x[i], y[i], d, n_surrogates=199, seed=i) for i in range(reps)]
    s = N.ar1(rng, (power_reps, n), 0.5)
    xp = np.exp(4 * d) + s + 0.7 * rng.normal(size=(power_reps, n))
    yp = 1 - d**2 - s + 0.7 * rng.normal(size=(power_reps, n))
    power = [V.curve_correlation(xp[i], yp[i], d, side=-1, n_surrogates=199, seed=i) for i in range(power_reps)]
    return null, power


def raw_correlation(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Fig. 5 raw r: null a J against an unrelated trending AR(0.9) curve; power J vs 1 − 0.3·J."""
    d = N.depth_grid(n)
    x = N.shape("j", d) + 0.05 * N.ar1(rng, (reps, n), 0.5)
    y = N.random_smooth_curves(rng, reps, n, kinds=("ar",), phis=(0.9,), noise=(0.05, 0.2), trend_sd=2.0)
    null = [C.raw_correlation(x[i], y[i], d, n_surrogates=199, seed=i) for i in range(reps)]
    xp = N.shape("j", d) + 0.05 * rng.normal(size=(power_reps, n))
    yp = 1.0 - 0.3 * N.shape("j", d) + 0.02 * rng.normal(size=(power_reps, n))
    power = [C.raw_correlation(xp[i], yp[i], d, side=-1, n_surrogates=199, seed=i) for i in range(power_reps)]
    return null, power


def closeness(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Synchronised: null SFT = Base + the margin (10 % of the range); power SFT = 1.02 × Base."""
    d = N.depth_grid(n)
    base = 1.0 + N.shape("j", d)
    null = [C.closeness(rb, rs, d, base_estimate=eb, sft_estimate=es)
            for eb, es, rb, rs in paired_rows(rng, base, base + 0.1, reps, 300, 0.02)]
    power = [C.closeness(rb, rs, d, base_estimate=eb, sft_estimate=es)
             for eb, es, rb, rs in paired_rows(rng, base, 1.02 * base, power_reps, 300, 0.01)]
    return null, power


def depth_trend(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Progressive decline: null flat then a late drop (hinge); power a decline of 0.05 over depth (SE 0.005)."""
    d = N.depth_grid(n)
    null = [C.depth_trend(b, d, estimate=e) for e, b in
            replicate_rows(rng, 0.9 - 0.3 * N.shape("hinge", d), reps, 500, 0.01)]
    power = [C.depth_trend(b, d, estimate=e) for e, b in
             replicate_rows(rng, 0.95 - 0.05 * d - 0.3 * N.shape("hinge", d), power_reps, 500, 0.005)]
    return null, power


def trough(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Condition-number trough / effective-rank peak on the log scale: null flat; power a 3× trough (SE 0.1)."""
    d = N.depth_grid(n)
    null = [S.middle_extremum(np.exp(b), d, estimate=np.exp(e), kind="trough")
            for e, b in replicate_rows(rng, 0 * d, reps, 500, 0.05)]
    log_truth = math.log(3.0) * ((d <= 0.2) | (d > 0.8)).astype(float)
    power = [S.middle_extremum(np.exp(b), d, estimate=np.exp(e), kind="trough")
             for e, b in replicate_rows(rng, log_truth, power_reps, 500, 0.1)]
    return null, power


def explosion(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Spectral-norm explosion, last ÷ middle on the log scale: null flat; power a doubling (SE 0.1)."""
    d = N.depth_grid(n)
    null = [S.explosion(np.exp(b), d, estimate=np.exp(e)) for e, b in replicate_rows(rng, 0 * d, reps, 500, 0.05)]
    power = [S.explosion(np.exp(b), d, estimate=np.exp(e))
             for e, b in replicate_rows(rng, math.log(2.0) * (d > 0.8), power_reps, 500, 0.1)]
    return null, power


def _j(rng: np.random.Generator, n: int, reps: int) -> np.ndarray:
    d = N.depth_grid(n)
    return (0.01 + 0.1 * N.shape("j", d)) * np.exp(0.05 * N.ar1(rng, (reps, n), 0.9))


def small_early(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Weight change small early: null the first half exactly half the last band; power the J."""
    d = N.depth_grid(n)
    w = 0.01 * np.exp(0.2 * N.ar1(rng, (reps, n), 0.9)) * np.exp(math.log(0.5) * (d <= 0.5))
    null = [S.small_early(w[i], d) for i in range(reps)]
    j = _j(rng, n, power_reps)
    return null, [S.small_early(j[i], d) for i in range(power_reps)]


def final_peak(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Weight change peaks at the final block: null flat (AR(0.9)); power the J."""
    d = N.depth_grid(n)
    w = 0.01 * np.exp(0.2 * N.ar1(rng, (reps, n), 0.9))
    j = _j(rng, n, power_reps)
    return [S.final_peak(w[i], d) for i in range(reps)], [S.final_peak(j[i], d) for i in range(power_reps)]


def weight_j(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """The whole J (three parts, Bonferroni): null flat (holds counted); power the J."""
    d = N.depth_grid(n)
    w = 0.01 * np.exp(0.2 * N.ar1(rng, (reps, n), 0.9))
    null = [S.weight_j(w[i], d)["all"] for i in range(reps)]
    null = [x if x.verdict == Verdict.HOLDS else V.Decision(Verdict.INCONCLUSIVE, 0, 0, 0, 0.95, "", 0, 0)
            for x in null]  # a flat curve rightly contradicts "small early": only "holds" is false here
    j = _j(rng, n, power_reps)
    return null, [S.weight_j(j[i], d)["all"] for i in range(power_reps)]


def lora(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """LoRA mask a − b over 3 seeds × 200 problems: null with a mask × problem interaction; power +0.095."""
    a, b = N.lora_scores(rng, reps, n_seeds=3, n_problems=200, interaction_sd=1.0)
    null = [Sd.crossed_contrast(a[i], b[i]) for i in range(reps)]
    a, b = N.lora_scores(rng, power_reps, n_seeds=3, n_problems=200, effect=0.095, base_rate=0.28)
    return null, [Sd.crossed_contrast(a[i], b[i]) for i in range(power_reps)]


def lora_skew(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """LoRA with skewed seed noise (SD 0.1, one mask): null only (power as above)."""
    a, b = N.lora_scores(rng, reps, n_seeds=3, n_problems=200, seed_sd=0.1, skew="a")
    return [Sd.crossed_contrast(a[i], b[i]) for i in range(reps)], []


def seed_t(rng: np.random.Generator, n: int, reps: int, power_reps: int, *, interaction: float = 0.0
           ) -> tuple[list, list]:
    """Paired t over 3 seed means: null normal seed noise (or with a mask × problem interaction); power +0.095."""
    a, b = N.lora_scores(rng, reps, n_seeds=3, n_problems=200, interaction_sd=interaction)
    null = [V.seed_contrast(a[i].mean(1), b[i].mean(1)) for i in range(reps)]
    a, b = N.lora_scores(rng, power_reps, n_seeds=3, n_problems=200, effect=0.095, base_rate=0.28)
    return null, [V.seed_contrast(a[i].mean(1), b[i].mean(1)) for i in range(power_reps)]


def layer_cis(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Logit-lens rise after depth 50/64 from per-layer intervals: null flat 0.3 (SE 0.02, AR(0.9)); power +0.3."""
    d = N.depth_grid(n)
    late, early = (50 / 64, 1.0), (-1.0, 50 / 64)
    q = V.normal_quantile(0.975)

    def decide(truth: np.ndarray, k: int) -> list:
        est = truth + 0.02 * N.ar1(rng, (k, n), 0.9)
        return [V.band_contrast(e, d, unit="layer_cis", ci_low=e - q * 0.02, ci_high=e + q * 0.02, band=late,
                                reference=early) for e in est]

    return decide(0.3 + 0 * d, reps), decide(0.3 + 0.3 * (d > 50 / 64), power_reps)


def paired_bootstrap(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Swap effect, expanded percentile bootstrap over 64 texts: null skewed zero-mean changes; power 0.5 SD."""

    def decide(shift: float, k: int) -> list:
        out = []
        for i in range(k):
            x = rng.exponential(0.05, size=64) - 0.05 + shift
            mean, lo, hi = bootstrap_mean_ci(x, n_boot=1000, seed=i)
            out.append(V.direction(V.interval_from_summary(mean, lo, hi, n=64, method="bootstrap"), side=-1))
        return out

    return decide(0.0, reps), decide(-0.025, power_reps)


def lora_any(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Some of 6 middle masks beats 11111 (each at 1 − 0.05/6): null all masks equal; power one mask +0.095."""
    from mbt.paper.findings.common import any_of

    def decide(effect: float, k: int) -> list:
        out = []
        for _ in range(k):
            parts = []
            for m in range(6):
                a, b = N.lora_scores(rng, 1, n_seeds=3, n_problems=200, interaction_sd=1.0,
                                     effect=effect if m == 0 else 0.0, base_rate=0.28)
                parts.append(Sd.crossed_contrast(a[0], b[0], level=1 - 0.05 / 6))
            out.append(any_of(parts, "some middle mask beats 11111"))
        return out

    return decide(0.0, reps), decide(0.095, power_reps)


def stratified_t(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """Equal-step profile, 3 SFT lengths × 2 seeds pooled within lengths: null 0; power 2 seed SDs."""
    from mbt.paper.findings.diffing import stratified_interval

    def decide(effect: float, k: int) -> list:
        out = []
        for _ in range(k):  # the lengths' own means differ (−1, +0.5, +0.5: mean 0 under the null)
            groups = {length: effect + offset + rng.normal(size=2)
                      for length, offset in ((25, -1.0), (60, 0.5), (300, 0.5))}
            out.append(V.direction(stratified_interval(groups), side=1))
        return out

    return decide(0.0, reps), decide(2.0, power_reps)


class _Trend:
    """A ladder_trend answer as a decision-like object (verdict only)."""

    def __init__(self, answer: str) -> None:
        self.verdict = Verdict.INCONCLUSIVE if answer == "cannot be told" else Verdict.HOLDS


def ladder(rng: np.random.Generator, n: int, reps: int, power_reps: int, *, shared: bool) -> tuple[list, list]:
    """Ladder trend over 5 rungs: shared paths with 6 seeds, or independent runs with 2 seeds per rung."""
    seeds = 6 if shared else 2
    x = np.repeat([0.007, 0.02, 0.04, 0.1, 0.2], seeds)
    labels = np.tile(np.arange(seeds), 5)
    paths = "shared" if shared else "independent"
    v = N.ladder_values(rng, reps, n_rungs=5, n_seeds=seeds, shared_path=shared, drift_sd=0.5, noise_sd=0.3)
    null = [_Trend(sig.ladder_trend(r.reshape(-1), x, paths=paths, seeds=labels)["trend"]) for r in v]
    v = N.ladder_values(rng, power_reps, n_rungs=5, n_seeds=seeds, shared_path=shared, trend=3.0, drift_sd=0.3,
                        noise_sd=0.3)
    power = [_Trend(sig.ladder_trend(r.reshape(-1), x, paths=paths, seeds=labels)["trend"]) for r in v]
    return null, power


def family(rng: np.random.Generator, n: int, reps: int, power_reps: int) -> tuple[list, list]:
    """12 rows with no effect (z equicorrelated 0.5), Holm: a table with any decided row counts as false."""
    q = V.normal_quantile(0.975)
    z = math.sqrt(0.5) * rng.normal(size=(reps, 1)) + math.sqrt(0.5) * rng.normal(size=(reps, 12))
    out = []
    for row in z:
        rows = F.adjust([V.direction(V.Interval(x, x - q, x + q, 0.95, 1.0, 100)) for x in row])
        out.append(_Trend("decided" if any(r.verdict != Verdict.INCONCLUSIVE for r in rows) else "cannot be told"))
    return out, []


@dataclass(frozen=True)
class Rule:
    """One decision rule: its key (named by :attr:`mbt.paper.headlines.Headline.rule`), words and simulation."""

    key: str
    name: str
    unit: str
    null: str
    effect: str
    run: Callable[..., tuple[list, list]]
    by_depth: bool = True
    level: str = "95 %"


RULES: tuple[Rule, ...] = (
    Rule("band_replicates", "band contrast, joint replicates (`band_contrast`, unit replicates)", "texts",
         "flat curve, SE 0.02/layer, AR(0.9) errors", "1 − CKA +0.158 in the last 20 %", band_replicates),
    Rule("log_band", "last band ÷ middle on the log scale, joint replicates (`shapes.explosion`)", "texts",
         "flat, SE 0.05 (log)", "2× in the last 20 %, SE 0.1 (log)", explosion),
    Rule("band_layers", "band contrast, blocks as units (`band_contrast`, unit layers, log ratio)", "layers",
         "flat, 20 % multiplicative AR(0.9) noise", "0.01 + 0.1·J(d), 5 % AR(0.5) noise", band_layers),
    Rule("layer_cis", "band contrast from per-layer intervals (`band_contrast`, unit layer_cis)", "texts",
         "flat accuracy, SE 0.02/layer, AR(0.9) errors", "+0.3 after depth 50/64", layer_cis),
    Rule("raw_correlation", "Fig. 5 raw r (`curves.raw_correlation`)", "layers",
         "J vs unrelated trending AR(0.9) curve", "J vs 1 − 0.3·J (r ≈ −0.99)", raw_correlation),
    Rule("spline_correlation", "r beyond a depth spline, ours (`curve_correlation`)", "layers",
         "two J shapes of different steepness", "shared AR(0.5) wiggle, partial r ≈ −0.7", spline_correlation),
    Rule("closeness", "synchronised: closeness (`curves.closeness`, margin 10 % of range)", "texts",
         "SFT = Base + margin, SE 0.02", "SFT = 1.02 × Base, SE 0.01", closeness),
    Rule("depth_trend", "progressive decline (`curves.depth_trend`)", "texts", "late hinge only, SE 0.01",
         "−0.05 over depth + hinge, SE 0.005", depth_trend),
    Rule("middle_extremum", "trough / peak in the middle, log scale (`shapes.middle_extremum`)", "texts",
         "flat, SE 0.05 (log)", "3× trough, SE 0.1 (log)", trough, level="97.5 % per part (2 parts)"),
    Rule("small_early", "weight change small early (`shapes.small_early`)", "layers",
         "early half = ½ last band, AR(0.9)", "0.01 + 0.1·J(d), 5 % AR(0.9)", small_early),
    Rule("final_peak", "weight change peaks at the final block (`shapes.final_peak`)", "layers", "flat, AR(0.9)",
         "0.01 + 0.1·J(d), 5 % AR(0.9)", final_peak),
    Rule("weight_j", "J shape, all three parts (`shapes.weight_j`)", "layers", "flat, AR(0.9) (holds counted)",
         "0.01 + 0.1·J(d), 5 % AR(0.9)", weight_j, level="98.3 % per part (3 parts)"),
    Rule("paired_bootstrap", "paired change, expanded percentile bootstrap over texts (`stats.bootstrap_mean_ci`)",
         "texts",
         "skewed (exponential) zero-mean changes, 64 texts", "a shift of 0.5 SD", paired_bootstrap, by_depth=False),
    Rule("lora", "LoRA mask contrast (`seeds.crossed_contrast`)", "seeds × problems",
         "mask × problem interaction (SD 1 logit)", "+0.095 (0.375 vs 0.28), 3 seeds × 200 problems", lora,
         by_depth=False),
    Rule("lora_skew", "LoRA mask contrast, skewed seed noise", "seeds × problems",
         "skewed seed noise (SD 0.1) in one mask", "—", lora_skew, by_depth=False),
    Rule("lora_any", "some of 6 middle masks beats 11111 (`any_of`; not used: the paper names one mask per model)",
         "seeds × problems",
         "all masks equal, interaction SD 1 logit", "one mask +0.095, 3 seeds × 200 problems", lora_any,
         by_depth=False, level="99.2 % per mask (6 masks)"),
    Rule("seed_t", "paired t over 3 seeds (`seed_contrast`)", "seeds", "normal seed noise (SD 0.02)",
         "+0.095, 3 seeds × 200 problems", seed_t, by_depth=False),
    Rule("stratified_t", "t over SFT seeds pooled within SFT lengths (`findings.diffing.stratified_interval`)",
         "seeds", "no effect, normal seed noise, 3 lengths × 2 seeds", "2 seed SDs", stratified_t, by_depth=False),
    Rule("seed_t_interaction", "the same t where problems cross masks (not used: why `lora` is crossed)", "seeds",
         "mask × problem interaction (SD 1 logit)", "+0.095, 3 seeds × 200 problems",
         lambda *a: seed_t(*a, interaction=1.0), by_depth=False),
    Rule("ladder_shared", "ladder trend, shared paths (`ladder_trend`, 6 seeds)", "seeds",
         "directionless random-walk drift", "trend of 3 drift SDs over the ladder",
         lambda *a: ladder(*a, shared=True), by_depth=False),
    Rule("ladder_independent", "ladder trend, independent runs (`ladder_trend`, 2 seeds/rung)", "(rung, seed) runs",
         "drift with spread growing by rung", "trend of 3 over the ladder", lambda *a: ladder(*a, shared=False),
         by_depth=False),
    Rule("holm", "a table of 12 rows, Holm (`families.adjust`)", "rows", "no effect in any row (z correlated 0.5)",
         "—", family, by_depth=False, level="95 % family-wise"),
)


def measure(rule: Rule, seed: int, reps: int, power_reps: int) -> dict:
    """One rule's simulation: ``false`` and ``power`` per depth (a rate, ``"n/a"`` or ``"inconclusive by rule"``)."""
    rng = np.random.default_rng(seed)
    false: list = []
    power: list = []
    for n in DEPTHS if rule.by_depth else DEPTHS[:1]:
        null, pw = rule.run(rng, n, reps, power_reps)
        false.append("inconclusive by rule" if by_rule(null) else rate(null, "false"))
        power.append("inconclusive by rule" if by_rule(pw) else rate(pw, "holds") if pw else "n/a")
    if not rule.by_depth:
        false, power = false * len(DEPTHS), power * len(DEPTHS)
    return {"key": rule.key, "name": rule.name, "unit": rule.unit, "null": rule.null, "effect": rule.effect,
            "level": rule.level, "by_depth": rule.by_depth, "false": false, "power": power}


def main() -> None:
    """Run every rule's simulation, print the Markdown table and (``--out``) write the numbers as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="null cases per rule and depth")
    parser.add_argument("--power-reps", type=int, default=300, help="cases per power estimate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated rule keys (default: all)")
    parser.add_argument("--out", type=Path, help="write the numbers here as JSON (e.g. book/calibration.json)")
    args = parser.parse_args()
    keys = [k for k in args.only.split(",") if k]
    unknown = sorted(set(keys) - {r.key for r in RULES})
    if unknown:
        parser.error(f"unknown rule keys {unknown}; choose from {[r.key for r in RULES]}")
    started = time.time()
    rules = [measure(r, args.seed + 1000 * k, args.reps, args.power_reps)
             for k, r in enumerate(RULES) if not keys or r.key in keys]
    data = {"depths": list(DEPTHS), "reps": args.reps, "power_reps": args.power_reps, "seed": args.seed,
            "seconds": round(time.time() - started), "rules": rules}
    print(rules_markdown(data))
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
