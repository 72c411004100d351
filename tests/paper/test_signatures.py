"""Depth signatures across pairs: exact values on synthetic tables, and an exact trend test calibrated on null data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mbt.paper import signatures as sig

L = 10


def _tables(cka_last: float = 0.5, shift_late: float = 0.4, w_last: float = 0.3) -> dict[str, pd.DataFrame]:
    layers = np.arange(L + 1)
    depth = layers / L
    cka = np.where(layers == L, cka_last, 0.9)
    shift = np.where(depth > 0.8, shift_late, 0.1)
    pm = pd.concat([
        pd.DataFrame({"layer": layers, "depth": depth, "metric": "cka", "value": cka}),
        pd.DataFrame({"layer": layers, "depth": depth, "metric": "relative_mean_shift", "value": shift,
                      "ci_low": shift - 0.01, "ci_high": shift + 0.01}),
    ])
    blocks = np.arange(1, L + 1)
    weights = pd.DataFrame({"block": blocks, "depth": blocks / L, "eq1_abs": 1.0,
                            "eq1_relative": np.where(blocks == L, w_last, 0.1)})
    acc = np.clip((layers - 6) * 0.2, 0, None)  # 0 until layer 6, then 0.2, 0.4, 0.6, 0.8
    lens = pd.DataFrame({"model": "sft", "layer": layers, "depth": depth, "value": acc})
    erank = 10 - np.abs(layers - 4)  # peak at layer 4
    intrinsic = pd.DataFrame({"model": "sft", "layer": layers, "depth": depth, "metric": "effective_rank",
                              "value": erank})
    lora = pd.DataFrame({"mask": ["11111", "01100", "01000", "10000"], "answer_nll_mean": [1.4, 1.5, 1.3, 1.2]})
    return {"pair_metrics": pm, "weights": weights, "lens": lens, "intrinsic": intrinsic, "lora": lora}


def test_signatures_are_exact_on_known_curves():
    got = sig.signatures(_tables())
    assert got["cka_final_drop"] == pytest.approx(0.9 - 0.5)
    assert got["shift_late_ratio"] == pytest.approx(0.4 / 0.1)  # layers 9, 10 over the middle (0.2, 0.8]
    assert got["weight_late_ratio"] == pytest.approx(0.3 / 0.1)
    assert got["lens_emergence"] == pytest.approx(0.8)  # max 0.8 at layer 10; first >= 0.4 at layer 8
    assert got["erank_peak_depth"] == pytest.approx(0.4)
    assert got["lora_middle_gain"] == pytest.approx(1.4 - 1.3)  # 01000 is the best middle mask (10000 is an edge)
    flat = sig.signatures(_tables(cka_last=0.9, shift_late=0.1, w_last=0.1))
    assert flat["cka_final_drop"] == pytest.approx(0.0) and flat["shift_late_ratio"] == pytest.approx(1.0)
    missing = sig.signatures({})
    assert set(missing) == set(sig.SIGNATURES) and all(math.isnan(v) for v in missing.values())


def test_spearman_exact_p_values():
    rho, p = sig.spearman_exact([1, 2, 3, 4, 5], [10, 20, 30, 40, 50])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 120)
    rho, p = sig.spearman_exact([1, 2, 3, 4], [4, 3, 2, 1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(2 / 24)
    rho, p = sig.spearman_exact([1, 2, 3, 4, 5], [2, 1, 3, 4, 5])
    assert rho == pytest.approx(0.9) and p > 0.05
    with pytest.raises(ValueError, match="at least 3"):
        sig.spearman_exact([1, 2], [1, 2])


def test_ladder_trend_says_cannot_be_told_unless_the_order_is_exact():
    strength = [0.007, 0.02, 0.04, 0.1, 0.2]
    assert sig.ladder_trend([1, 2, 3, 4, 5], strength)["trend"] == "grows with SFT strength"
    assert sig.ladder_trend([5, 4, 3, 2, 1], strength)["trend"] == "shrinks with SFT strength"
    assert sig.ladder_trend([1, 3, 2, 4, 5], strength)["trend"] == "cannot be told"
    four = sig.ladder_trend([1, 2, 3, 4], strength[:4])
    assert four["trend"] == "cannot be told" and four["p"] == pytest.approx(2 / 24)
    nan = sig.ladder_trend([1, math.nan, 3, math.nan, 5], strength)
    assert nan["n"] == 3 and nan["trend"] == "cannot be told"


def test_ladder_trend_is_calibrated_on_null_data():
    rng = np.random.default_rng(0)
    strength = [0.007, 0.02, 0.04, 0.1, 0.2]
    calls = [sig.ladder_trend(rng.normal(size=5), strength)["trend"] for _ in range(2000)]
    false = sum(c != "cannot be told" for c in calls) / len(calls)
    assert false <= 0.05 + 0.015  # exact test: 2/120 = 1.7 % expected
    power = [sig.ladder_trend(np.arange(5) + rng.normal(scale=0.2, size=5), strength)["trend"] for _ in range(500)]
    assert sum(t == "grows with SFT strength" for t in power) / len(power) > 0.8


def test_summary_table_orders_pairs_by_strength_and_states_trends():
    metas = {f"r{i}": {"toy": {"sft_compute_ratio": r, "sft_steps": s}} for i, (r, s) in
             enumerate([(0.2, 300), (0.01, 10), (0.05, 60), (0.1, 150), (0.02, 25)])}
    drops = {"r1": 0.05, "r4": 0.1, "r2": 0.2, "r3": 0.3, "r0": 0.4}  # grows with strength
    tables = {name: _tables(cka_last=0.9 - drop) for name, drop in drops.items()}
    rungs = sig.rung_table(metas)
    assert rungs["pair"].tolist() == ["r1", "r4", "r2", "r3", "r0"]
    # one run per rung: the best exact p is 2/120, and Holm over the six signatures makes it 0.1
    one = sig.signature_summary(tables, metas)
    assert one.loc["cka_final_drop", "p"] == pytest.approx(2 / 120)
    assert one.loc["cka_final_drop", "p_holm"] == pytest.approx(6 * 2 / 120)
    assert one.loc["cka_final_drop", "trend"] == "cannot be told"
    # rungs of one replicate sharing a training path: one replicate can never tell
    assert (sig.signature_summary(tables, metas, paths="shared")["trend"] == "cannot be told").all()
    # two replicates per rung, every run its own (the replicate read from each store's pair spec):
    # the rung's replicates tie in SFT steps, and the exact test decides after Holm
    metas2 = {f"{k}{s}": {**v, "spec": {"toy_sft_seed": int(s == "b")},
                          "toy": {**v["toy"], "sft_compute_ratio": v["toy"]["sft_compute_ratio"] * (1.001 if s == "b"
                                                                                                    else 1.0)}}
              for k, v in metas.items() for s in "ab"}
    tables2 = {f"{k}{s}": _tables(cka_last=0.9 - drop - (0.01 if s == "b" else 0.0)) for k, drop in drops.items()
               for s in "ab"}
    summary = sig.signature_summary(tables2, metas2)
    assert "113400 distinct arrangements" in summary.loc["cka_final_drop", "rule"]  # 10! / 2!^5: ties exact
    assert sig.rung_table(metas2)["replicate"].tolist() == [0, 1] * 5
    row = summary.loc["cka_final_drop"]
    assert row["trend"] == "grows with SFT strength" and row["r0a"] == pytest.approx(0.4) and row["n"] == 10
    assert summary.loc["weight_late_ratio", "trend"] == "cannot be told"  # identical for every pair
    text = sig.trend_sentences(summary)
    assert "**cka_final_drop** grows with SFT strength" in text and "cannot be told" in text and "Holm" in text
    assert "p < 0.001" in text and "p = 0.000" not in text  # ten perfectly ordered runs: p = 2/113,400
    one = sig.ladder_trend(np.array([0.3]), np.array([10.0]), paths="independent", seeds=[0])
    assert one["trend"] == "cannot be told" and "only 1 point has this signature" in one["rule"]


def test_curves_and_claim_table():
    curves = sig.signature_curves({"a": _tables(), "b": _tables(cka_last=0.8)})
    assert set(curves["signature"]) == {"cka", "relative_mean_shift", "weight_change_rel", "lens_top1",
                                        "effective_rank"}
    assert (curves["depth"] > 0).all() and set(curves["pair"]) == {"a", "b"}
    records = {"a": {"cka_final": {"ours": "0.5", "verdict": "holds"}},
               "b": {"cka_final": {"ours": "0.9", "agrees": False}}}
    table = sig.claim_table(records, ["cka_final", "weight_j"], {"cka_final": "CKA final", "weight_j": "J"})
    assert table.loc["CKA final", "a"] == "holds: 0.5" and table.loc["CKA final", "b"] == "contradicted: 0.9"
    assert table.loc["J", "a"] == "not run"


def test_cross_pair_figures_draw_one_line_or_point_per_pair():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import mbt.plots as mp

    tables = {name: _tables(cka_last=0.9 - d) for name, d in (("a", 0.1), ("b", 0.2), ("c", 0.3))}
    fig = mp.across_figure(sig.signature_curves(tables), ["a", "b", "c"])
    cka_axis = next(ax for ax in fig.axes if ax.get_ylabel() == "CKA(Base, SFT)")
    assert len(cka_axis.get_lines()) == 3
    metas = {name: {"toy": {"sft_compute_ratio": r}} for name, r in (("a", 0.01), ("b", 0.05), ("c", 0.2))}
    summary = sig.signature_summary(tables, metas)
    fig = mp.ladder_figure(summary, {n: m["toy"]["sft_compute_ratio"] for n, m in metas.items()})
    drop_axis = next(ax for ax in fig.axes if ax.get_title().startswith("cka_final_drop"))
    line = drop_axis.get_lines()[0]
    assert list(line.get_xdata()) == [0.01, 0.05, 0.2] and drop_axis.get_xscale() == "log"
    assert list(line.get_ydata()) == pytest.approx([0.1, 0.2, 0.3])
    # replicates: one line per replicate, each through its own rungs
    fig = mp.ladder_figure(summary, {n: m["toy"]["sft_compute_ratio"] for n, m in metas.items()},
                           replicate={"a": 0, "b": 1, "c": 0})
    drop_axis = next(ax for ax in fig.axes if ax.get_title().startswith("cka_final_drop"))
    assert [list(line.get_xdata()) for line in drop_axis.get_lines()] == [[0.01, 0.2], [0.05]]


def test_the_verdict_sentence_is_read_from_the_records():
    records = {"a": {"verdict": "holds"}, "b": {"verdict": "contradicted"}, "c": {"verdict": "inconclusive"},
               "d": {"verdict": "holds"}, "e": {"verdict": None}}
    text = sig.verdict_sentence(records, ["a", "b", "c", "d", "e", "f"], pair="toy")
    assert text == ("On `toy`, of the 4 claims of chapters 1–4 with a verdict: 2 hold (`a`, `d`), "
                    "1 contradicted (`b`) and 1 inconclusive.")
    assert "no recorded verdicts" in sig.verdict_sentence({}, ["a"], pair="toy")
