"""Calibration of every ``*_findings`` function: false verdicts under no effect, power under the paper's effect.

For each claim family, simulated tables with NO true effect (or a true effect exactly at the claim's
threshold) are fed to the findings function many times with different seeds; "holds" and
"contradicted" together must occur in at most 5 % of the replicates plus Monte-Carlo slack
(three binomial standard deviations). With an effect of the paper's size at a realistic sample size the
claim must hold at least 80 % of the time where the design has that power; where it does not (three
seeds for a 0.03 accuracy gap, a few dozen texts for a 0.003 swap effect) the test asserts that it
reports *inconclusive*, not a wrong verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mbt import paper
from mbt.paper import verdicts as V

HOLDS, CONTRADICTED, INCONCLUSIVE = V.Verdict.HOLDS, V.Verdict.CONTRADICTED, V.Verdict.INCONCLUSIVE
ALPHA = 0.05


def _slack(reps: int, p: float = ALPHA) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / reps)


def _rates(verdicts: list) -> dict:
    n = len(verdicts)
    return {v: sum(x == v for x in verdicts) / n for v in (HOLDS, CONTRADICTED, INCONCLUSIVE)}


def _false(verdicts: list) -> float:
    r = _rates(verdicts)
    return r[HOLDS] + r[CONTRADICTED]


def _ar(rng: np.random.Generator, size: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) noise with marginal standard deviation ``sd``."""
    e = np.empty(size)
    e[0] = rng.normal()
    for i in range(1, size):
        e[i] = phi * e[i - 1] + math.sqrt(1 - phi**2) * rng.normal()
    return sd * e


# --------------------------------------------------------------------------------------------
# Fig. 1: divergence (band contrasts, per-layer intervals or layers as units)


def _pair_frame(curves: dict[str, np.ndarray], ses: dict[str, float | None]) -> pd.DataFrame:
    """Analyze-like table; metric ``m`` gets per-layer intervals ± 1.96·se unless its se is None."""
    n_layers = len(next(iter(curves.values()))) - 1
    rows = []
    for metric, values in curves.items():
        se = ses.get(metric)
        for layer, v in enumerate(values):
            half = np.nan if se is None else 1.959964 * se
            rows.append(dict(model="pair", layer=layer, depth=layer / n_layers, metric=metric, value=float(v),
                             ci_low=v - half, ci_high=v + half, n=200, aggregation="alignment"))
    return pd.DataFrame(rows)


def _divergence_null(rng: np.random.Generator, n_layers: int, *, shallow_at_threshold: bool = False) -> pd.DataFrame:
    d = np.arange(n_layers + 1) / n_layers
    # the same texts feed every layer: the estimation noise is correlated across layers (AR 0.8)
    cka = 0.9 + _ar(rng, d.size, 0.8, 0.01)
    cos = 0.95 + _ar(rng, d.size, 0.8, 0.005)
    if shallow_at_threshold:  # shallow relative shift exactly a quarter of the last band's
        rel = np.where(d <= 0.5, 0.01, 0.04)
    else:
        rel = np.full(d.size, 0.02)
    rel = rel * np.exp(_ar(rng, d.size, 0.8, 0.05))
    return _pair_frame({"cka": cka, "cosine_similarity": cos, "relative_mean_shift": rel},
                       {"cka": None, "cosine_similarity": 0.005, "relative_mean_shift": 0.05 * 0.02})


@pytest.mark.parametrize(("n_layers", "reps"), [(16, 100), (40, 150)])
def test_divergence_null_calibration(n_layers, reps):
    rng = np.random.default_rng(n_layers)
    by_id: dict[str, list] = {}
    for _ in range(reps):
        frame = _divergence_null(rng, n_layers)
        halves = (_divergence_null(rng, n_layers), _divergence_null(rng, n_layers))
        for f in paper.divergence_findings(frame, halves=halves):
            by_id.setdefault(f.id, []).append(f.verdict)
    for hid in ("middle_stable", "cka_plateau", "cka_drop_start", "mean_shift_final", "cosine_agrees", "seed_robust"):
        assert _false(by_id[hid]) <= _slack(reps), (hid, _rates(by_id[hid]))
    assert set(by_id["cka_final"]) == {None}
    shallow = [next(f.verdict for f in paper.divergence_findings(_divergence_null(rng, n_layers,
                                                                                 shallow_at_threshold=True))
                    if f.id == "mean_shift_shallow") for _ in range(reps)]
    assert _false(shallow) <= _slack(reps), _rates(shallow)


def test_divergence_uniform_rescaling_is_not_a_final_spike():
    """SFT = 1.02 × Base + noise: the raw shift grows with the residual norm, the relative shift is flat."""
    reps = 100
    rng = np.random.default_rng(7)
    verdicts = []
    for _ in range(reps):
        frame = _divergence_null(rng, 40)
        norm = np.exp(np.linspace(0, 4, 41))  # residual-stream norm grows 50× with depth
        raw = frame[frame.metric == "relative_mean_shift"].assign(metric="mean_shift")
        raw["value"] = raw["value"].to_numpy() * norm
        found = {f.id: f for f in paper.divergence_findings(pd.concat([frame, raw]))}
        verdicts.append(found["mean_shift_final"].verdict)
    assert _rates(verdicts)[HOLDS] <= _slack(reps, 0.025)


def test_divergence_power_at_a_paper_like_drop():
    """40 layers, CKA falling from 0.9 to 0.6 over the last 20 %, cosine from 0.95 to 0.85.

    The claims on quantities with per-layer bootstrap intervals (cosine, relative mean shift) hold ≥ 80 %.
    CKA has no per-layer interval in an analyze table, so its band contrast uses the layers as units (a
    GLS interval for AR(0.9) layer noise): a drop of 0.3 against layer noise of 0.01 is resolved too.
    The per-layer decrease (constant along the ramp) is resolved.
    """
    reps = 100
    rng = np.random.default_rng(3)
    d = np.arange(41) / 40
    late = np.clip((d - 0.8) / 0.2, 0, None)
    hits: dict[str, list] = {}
    for _ in range(reps):
        frame = _pair_frame({"cka": 0.9 - 0.3 * late + _ar(rng, 41, 0.8, 0.01),
                             "cosine_similarity": 0.95 - 0.1 * late + _ar(rng, 41, 0.8, 0.005),
                             "relative_mean_shift": (0.02 + 0.2 * late) * np.exp(_ar(rng, 41, 0.8, 0.05))},
                            {"cka": None, "cosine_similarity": 0.005, "relative_mean_shift": 0.001})
        for f in paper.divergence_findings(frame):
            hits.setdefault(f.id, []).append(f.verdict)
    for hid in ("mean_shift_final", "cosine_agrees", "mean_shift_shallow", "cka_drop_start"):
        assert _rates(hits[hid])[HOLDS] >= 0.8, (hid, _rates(hits[hid]))
    for hid in ("middle_stable", "cka_plateau"):
        assert _rates(hits[hid])[CONTRADICTED] == 0 and _rates(hits[hid])[HOLDS] >= 0.8, (hid, _rates(hits[hid]))


# --------------------------------------------------------------------------------------------
# Fig. 2: convergence (curve correlations, step contrasts)


def _intrinsic_frame(base: dict[str, np.ndarray], sft: dict[str, np.ndarray]) -> pd.DataFrame:
    n_layers = len(next(iter(base.values()))) - 1
    rows = []
    for model, curves in (("base", base), ("sft", sft)):
        for metric, values in curves.items():
            for layer, v in enumerate(values):
                rows.append(dict(model=model, layer=layer, depth=layer / n_layers, metric=metric, value=float(v),
                                 ci_low=np.nan, ci_high=np.nan, n=200, aggregation="dataset"))
    return pd.DataFrame(rows)


def test_convergence_null_calibration():
    reps = 120
    rng = np.random.default_rng(11)
    n = 32
    metrics = ("effective_rank", "dataset_entropy", "curvature")
    by_id: dict[str, list] = {}
    for _ in range(reps):
        base = {m: 20 + _ar(rng, n + 1, 0.7, 1.0) for m in metrics}
        sft = {m: 20 + _ar(rng, n + 1, 0.7, 1.0) for m in metrics}  # independent of Base, flat in depth
        for f in paper.convergence_findings(_intrinsic_frame(base, sft), n_surrogates=199):
            by_id.setdefault(f.id, []).append(f.verdict)
    for hid in ("synchronised", "three_stages", "erank_peak", "erank_collapse"):
        assert _false(by_id[hid]) <= _slack(reps), (hid, _rates(by_id[hid]))


def test_convergence_power_when_sft_follows_base():
    reps = 50
    rng = np.random.default_rng(12)
    n = 32
    verdicts = []
    for _ in range(reps):
        base = {m: 20 + _ar(rng, n + 1, 0.7, 1.0) for m in ("effective_rank", "dataset_entropy")}
        sft = {m: 1.02 * v + rng.normal(0, 0.2, n + 1) for m, v in base.items()}
        found = {f.id: f for f in paper.convergence_findings(_intrinsic_frame(base, sft), n_surrogates=199)}
        verdicts.append(found["synchronised"].verdict)
    assert _rates(verdicts)[HOLDS] >= 0.8, _rates(verdicts)


# --------------------------------------------------------------------------------------------
# Fig. 3: probing


def _lens_frame(acc: np.ndarray, se: float, final_twice: float | None = None) -> pd.DataFrame:
    n_layers = len(acc)
    rows = []
    for paper_, values in ((False, acc), (True, acc if final_twice is None else np.r_[acc[:-1], final_twice])):
        for layer, v in enumerate(values, start=1):
            rows.append(dict(model="sft", paper=paper_, layer=layer, depth=layer / n_layers, metric="top1_acc",
                             value=v, pooled=v, pooled_ci_low=v - 1.96 * se, pooled_ci_high=v + 1.96 * se))
    return pd.DataFrame(rows)


def test_probing_null_calibration():
    reps = 200
    rng = np.random.default_rng(21)
    n = 32
    d = np.arange(1, n + 1) / n
    se = 0.01
    flat, half = [], {"probe_early": []}
    for _ in range(reps):
        acc = 0.3 + _ar(rng, n, 0.6, se)
        found = {f.id: f for f in paper.probing_findings(_lens_frame(acc, se))}
        flat.append((found["probe_rise"].verdict, found["probe_final_dip"].verdict))
        # early accuracy exactly half of the later one: the "low early" threshold
        acc = np.where(d <= 50 / 64, 0.2, 0.4) + _ar(rng, n, 0.6, se)
        half["probe_early"].append(next(f.verdict for f in paper.probing_findings(_lens_frame(acc, se))
                                        if f.id == "probe_early"))
    assert _false([v for v, _ in flat]) <= _slack(reps)
    assert _false([v for _, v in flat]) <= _slack(reps)
    assert _false(half["probe_early"]) <= _slack(reps)


def test_probing_final_dip_power_and_resolution():
    """The paper's dip (0.60 → 0.52) with ±0.01 per-layer SE holds; a 0.01 dip is inconclusive, not a dip."""
    rng = np.random.default_rng(22)
    n = 32
    d = np.arange(1, n + 1) / n
    se = 0.01
    big, small = [], []
    for _ in range(100):
        curve = np.where(d <= 50 / 64, 0.02, 0.6) + rng.normal(0, se, n)
        curve[-1] = 0.52 + rng.normal(0, se)
        big.append(next(f.verdict for f in paper.probing_findings(_lens_frame(curve, se)) if f.id == "probe_final_dip"))
        curve[-1] = curve[-2] - 0.01
        small.append(next(f.verdict for f in paper.probing_findings(_lens_frame(curve, se))
                          if f.id == "probe_final_dip"))
    assert _rates(big)[HOLDS] >= 0.8
    assert _rates(small)[INCONCLUSIVE] >= 0.8 and _rates(small)[CONTRADICTED] == 0


# --------------------------------------------------------------------------------------------
# Fig. 4–5: weights


@pytest.mark.parametrize("n_blocks", [16, 40])
def test_weights_null_calibration(n_blocks):
    reps = 200
    rng = np.random.default_rng(31 + n_blocks)
    verdicts = []
    for _ in range(reps):
        rel = pd.Series(0.01 * np.exp(_ar(rng, n_blocks, 0.8, 0.2)), index=range(1, n_blocks + 1))
        verdicts.append(paper.weights_findings(rel)[0].verdict)
    assert _false(verdicts) <= _slack(reps), _rates(verdicts)


def test_weights_power_for_a_j_shape():
    """40 blocks, the last 20 % changing twice as much as the middle (relative Eq. 1): holds ≥ 80 %."""
    rng = np.random.default_rng(33)
    d = np.arange(1, 41) / 40
    verdicts = []
    for _ in range(100):
        rel = pd.Series(0.01 * np.where(d > 0.8, 2.0, 1.0) * np.exp(_ar(rng, 40, 0.5, 0.1)), index=range(1, 41))
        verdicts.append(paper.weights_findings(rel)[0].verdict)
    assert _rates(verdicts)[HOLDS] >= 0.8, _rates(verdicts)


def test_correlation_null_calibration_with_a_shared_depth_trend():
    """Weight change and metrics share a J shape with depth and nothing else: r is strong, the verdict is not."""
    reps = 120
    rng = np.random.default_rng(41)
    n = 40
    d = np.arange(1, n + 1) / n
    j = d**6
    by_id: dict[str, list] = {}
    raw = []
    for _ in range(reps):
        w = pd.Series(0.01 + 0.05 * j + _ar(rng, n, 0.7, 0.002), index=range(1, n + 1))
        metrics = pd.DataFrame({"cosine_similarity": 0.99 - 0.2 * j + _ar(rng, n, 0.7, 0.01),
                                "spectral_norm": np.exp(2 + 3 * j + _ar(rng, n, 0.7, 0.05))}, index=range(1, n + 1))
        for f in paper.correlation_findings(w, metrics, n_surrogates=199):
            by_id.setdefault(f.id, []).append(f.verdict)
            raw.append(abs(f.value))
    assert np.median(raw) > 0.8  # a raw-r rule (r > 0.5) would say "holds" almost always
    for hid in ("corr_cosine", "corr_spectral"):
        assert _false(by_id[hid]) <= _slack(reps, 0.07), (hid, _rates(by_id[hid]))  # engine: 6–7 % on AR curves


def test_correlation_power_when_the_curves_are_linked():
    rng = np.random.default_rng(42)
    n = 40
    d = np.arange(1, n + 1) / n
    verdicts = []
    for _ in range(50):
        shared = _ar(rng, n, 0.3, 1.0)
        w = pd.Series(0.01 + 0.05 * d**6 + 0.002 * shared + rng.normal(0, 0.0005, n), index=range(1, n + 1))
        metrics = pd.DataFrame({"cosine_similarity": 0.99 - 0.2 * d**6 - 0.01 * shared + rng.normal(0, 0.003, n)},
                               index=range(1, n + 1))
        verdicts.append(paper.correlation_findings(w, metrics, n_surrogates=199)[0].verdict)
    assert _rates(verdicts)[HOLDS] >= 0.8, _rates(verdicts)


# --------------------------------------------------------------------------------------------
# Fig. 6: swapping


def _swap_sweep(rng: np.random.Generator, effects: tuple[float, ...], n_texts: int, sd: float) -> pd.DataFrame:
    rows = []
    for seg, effect in enumerate(effects):
        per_text = effect + rng.normal(0, sd, n_texts)
        iv = V.bootstrap_interval(per_text, n_boot=400, seed=seg)
        rows.append(dict(kind="swap", receiver="base", head="receiver", segment=seg, diff=iv.estimate,
                         diff_ci_low=iv.low, diff_ci_high=iv.high, diff_ci_width=iv.high - iv.low, n=n_texts))
    return pd.DataFrame(rows)


def test_swap_null_calibration():
    reps = 200
    rng = np.random.default_rng(51)
    by_id: dict[str, list] = {}
    for _ in range(reps):
        for f in paper.swap_findings(_swap_sweep(rng, (0.0,) * 5, 200, 0.02)):
            by_id.setdefault(f.id, []).append(f.verdict)
    for hid, verdicts in by_id.items():
        assert _false(verdicts) <= _slack(reps), (hid, _rates(verdicts))


def test_swap_power_at_the_papers_effect():
    """The paper's +0.003 middle effect: found with 1,000 texts (per-text SD 0.02), inconclusive with 64."""
    rng = np.random.default_rng(52)
    paper_effects = (-0.001, 0.0, 0.003, 0.0, -0.002)
    big = [next(f for f in paper.swap_findings(_swap_sweep(rng, paper_effects, 1000, 0.02)) if f.id == "swap_middle")
           for _ in range(60)]
    assert _rates([f.verdict for f in big])[HOLDS] >= 0.8
    small = [next(f for f in paper.swap_findings(_swap_sweep(rng, paper_effects, 64, 0.02)) if f.id == "swap_middle")
             for _ in range(60)]
    assert _rates([f.verdict for f in small])[INCONCLUSIVE] >= 0.6
    assert all(f.mde > 0.003 for f in small) and "is larger than" in small[0].note


# --------------------------------------------------------------------------------------------
# Fig. 7, Appendix A/B: Mid-Block LoRA over seeds


FIVE = ("11111", "10000", "01000", "00100", "00010", "00001", "01100", "00110", "01110")


def _lora_table(rng: np.random.Generator, means: dict[str, float], seeds: int, sd: float,
                seed_sd: float = 0.01) -> pd.DataFrame:
    """One row per mask and seed; a shared per-seed component makes masks trained with one seed paired."""
    shared = rng.normal(0, seed_sd, seeds)
    rows = []
    for mask, mean in means.items():
        for s in range(seeds):
            rows.append(dict(mask=mask, seed=s, accuracy=mean + shared[s] + rng.normal(0, sd)))
    return pd.DataFrame(rows)


def test_lora_null_calibration():
    reps = 200
    rng = np.random.default_rng(61)
    singles3 = ("100", "010", "001")
    singles10 = tuple("".join("1" if j == i else "0" for j in range(10)) for i in range(10))
    by_id: dict[str, list] = {}
    for _ in range(reps):
        means = {m: 0.3 for m in (*FIVE, *singles3, *singles10)}
        table = _lora_table(rng, means, 3, 0.015)
        for f in paper.lora_findings(table):
            by_id.setdefault(f.id, []).append(f.verdict)
    judged = [hid for hid, v in by_id.items() if any(x is not None for x in v)]
    assert {"lora_7b_01000", "lora_13b_10000", "lora_gain", "appA_3_peak", "appA_10_peak"} <= set(judged)
    for hid in judged:
        if hid == "lora_edge_gap":
            continue
        assert _false(by_id[hid]) <= _slack(reps), (hid, _rates(by_id[hid]))
    # the old rule (best of six middle masks above 11111 by more than the seed spread) on the same data
    old = []
    for _ in range(reps):
        piv = _lora_table(rng, {m: 0.3 for m in FIVE}, 3, 0.015).pivot(index="seed", columns="mask",
                                                                        values="accuracy")
        best = max((m for m in FIVE if m[0] == "0" and m[-1] == "0"), key=lambda m: piv[m].mean())
        spread = max((piv[m].max() - piv[m].min()) / 2 for m in (best, "11111"))
        old.append(piv[best].mean() - piv["11111"].mean() > spread)
    assert np.mean(old) > 0.1 > _rates(by_id["lora_gain"])[HOLDS]


def test_lora_edge_gap_null_at_the_20_percent_threshold():
    reps = 200
    rng = np.random.default_rng(62)
    verdicts = []
    for _ in range(reps):
        means = {"11111": 0.3, "01000": 0.3, "00100": 0.3, "10000": 0.24, "00001": 0.24}  # gap exactly 20 %
        f = next(f for f in paper.lora_findings(_lora_table(rng, means, 3, 0.01)) if f.id == "lora_edge_gap")
        verdicts.append(f.verdict)
    assert _false(verdicts) <= _slack(reps), _rates(verdicts)


def test_lora_power_at_the_papers_sizes_with_three_seeds():
    """OLMo2-7B's 0.375 vs 0.28 is found with 3 seeds; OLMo2-13B's 0.30 vs 0.27 is not — it stays inconclusive.

    Seed noise: a shared per-seed SD of 0.01 plus 0.015 per mask and seed (GSM8K exact match on ~1,300
    questions has a binomial SD of about 0.013). The paired difference then has SD ≈ 0.021, its 3-seed
    t interval a half-width ≈ 4.30 × 0.021 / √3 ≈ 0.053: 0.095 is resolved, 0.03 is not.
    """
    rng = np.random.default_rng(63)
    big, small = [], []
    for _ in range(100):
        table = _lora_table(rng, {"11111": 0.28, "01000": 0.375}, 3, 0.015)
        big.append(next(f for f in paper.lora_findings(table) if f.id == "lora_7b_01000").verdict)
        table = _lora_table(rng, {"11111": 0.27, "01110": 0.30}, 3, 0.015)
        f = next(f for f in paper.lora_findings(table) if f.id == "lora_13b_01110")
        small.append(f.verdict)
    assert _rates(big)[HOLDS] >= 0.8, _rates(big)
    assert _rates(small)[INCONCLUSIVE] >= 0.6 and _rates(small)[CONTRADICTED] <= 0.025, _rates(small)
    assert f.mde > 0.03  # the MDE says so in the row


# --------------------------------------------------------------------------------------------
# the helpers behind compound claims


def test_level_as_a_percentage():
    assert V.pct(0.95) == "95%" and V.pct(1 - 0.05 / 6) == "99.17%" and V.pct(1 - 0.05 / 12) == "99.58%"
    d = V.direction(V.Interval(0.1, 0.05, 0.15, 1 - 0.05 / 12, 0.02, 3, "seeds"), side=1)
    assert "99.58% interval" in d.rule and "(99.58%)" in V.effect_text(d)
