"""mbt.book: the headline registry, the findings (pure functions of library tables), records and the build's parts."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mbt import book, cli, pairs, paper, segments, select
from mbt.book import builder as book_build
from mbt.book import jobs

ROOT = Path(__file__).resolve().parents[1]
L = 10


def _frame(cka, shift=None, cos=None, *, base=None, sft=None, ci=0.01) -> pd.DataFrame:
    """A tidy analyze-like table of one dataset from per-layer lists (``shift`` is the relative mean shift).

    Pair metrics get per-layer intervals ``± ci`` (``ci=None``: none), like bootstrap intervals over texts.
    """
    n_layers = len(cka) - 1
    rows = []
    half = np.nan if ci is None else ci
    for layer in range(n_layers + 1):
        d = layer / n_layers
        for metric, values, h in (("cka", cka, half), ("relative_mean_shift", shift, half / 2),
                                  ("mean_shift", None if shift is None else [100 * v for v in shift], np.nan),
                                  ("cosine_similarity", cos, half)):
            if values is not None:
                rows.append(dict(model="pair", layer=layer, depth=d, metric=metric, value=values[layer],
                                 ci_low=values[layer] - h, ci_high=values[layer] + h, n=100,
                                 aggregation="alignment"))
        for model, curves in (("base", base or {}), ("sft", sft or {})):
            for metric, values in curves.items():
                rows.append(dict(model=model, layer=layer, depth=d, metric=metric, value=values[layer],
                                 ci_low=np.nan, ci_high=np.nan, n=100, aggregation="dataset"))
    return pd.DataFrame(rows)


PAPER_LIKE_CKA = [1.0, 0.97, 0.96, 0.96, 0.955, 0.96, 0.955, 0.95, 0.95, 0.85, 0.6]
EARLY_DROP_CKA = [1.0, 0.7, 0.6, 0.62, 0.63, 0.64, 0.66, 0.68, 0.7, 0.72, 0.75]
HOLDS, CONTRADICTED, INCONCLUSIVE = paper.Verdict.HOLDS, paper.Verdict.CONTRADICTED, paper.Verdict.INCONCLUSIVE


def _by_id(findings):
    return {f.id: f for f in findings}


# --------------------------------------------------------------------------------------------
# registry


def test_headlines_cover_every_number_of_section_11():
    ids = [h.id for h in paper.HEADLINES]
    assert len(ids) == len(set(ids))
    assert all(h.chapter in book.CHAPTERS for h in paper.HEADLINES)
    papers = " ".join(h.paper for h in paper.HEADLINES)
    # representation analysis, probing, weights, swapping
    for number in ("> 500", "0.60 → 0.52", "> 0.10", "−0.001", "+0.003", "−0.002", "> 0.60"):
        assert number in papers, number
    # Fig. 7, abstract/intro, Appendix A (3 and 10 segments) and Appendix B (5 configs x 2 benchmarks)
    for number in ("0.19", "0.135", "0.375", "0.28", "0.30", "0.27", "0.22", "0.32", "0.29", "0.25",
                   "+10.2 %", "0.4650", "0.4721", "0.4550", "0.4503", "0.4589", "0.4693", "0.4761", "0.4771",
                   "0.4754", "0.4502", "0.4215", "0.3966", "0.3821", "14.53", "13.58", "14.70", "13.76", "14.61",
                   "13.63", "14.65", "13.72", "14.54", "13.60"):
        assert re.search(rf"(^|[^\d]){re.escape(number)}($|[^\d])", papers), number
    assert paper.chapter_of("cka_final") == "01_divergence"
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("no_such_claim", "1")


# --------------------------------------------------------------------------------------------
# findings


def test_divergence_findings_hold_on_a_paper_like_curve():
    shift = [0.0, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.03, 0.1, 0.5]
    cos = [1.0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.98, 0.97, 0.9, 0.7]
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, shift, cos),
                                            halves=(_frame(PAPER_LIKE_CKA), _frame(PAPER_LIKE_CKA))))
    for hid in ("middle_stable", "cka_plateau", "cka_drop_start", "mean_shift_shallow", "mean_shift_final",
                "cosine_agrees", "seed_robust"):
        f = found[hid]
        assert f.verdict == HOLDS, (hid, f)
        assert f.agrees is True and f.rule and f.level == 0.95 and f.mde > 0 and f.ci_low <= f.effect <= f.ci_high
    assert found["cka_final"].verdict is None and found["cka_final"].agrees is None
    assert found["cka_final"].value == pytest.approx(0.6)
    assert "layer 10" in found["cka_final"].ours and "0.850 at 9" in found["cka_final"].ours
    # the shift is relative to the Base centroid: last band (0.1 + 0.5)/2 vs middle (layers 3–8) 0.015
    assert found["mean_shift_final"].effect == pytest.approx(0.3 / 0.015 - 1)
    assert found["mean_shift_shallow"].effect == pytest.approx(0.01 / 0.3 - 1)


def test_divergence_findings_contradicted_when_the_change_is_early():
    shift = [0.0, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3]
    cos = [1.0, 0.5, 0.6, 0.7, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9]
    noisy = [c + 0.2 for c in EARLY_DROP_CKA]
    found = _by_id(paper.divergence_findings(_frame(EARLY_DROP_CKA, shift, cos),
                                            halves=(_frame(EARLY_DROP_CKA), _frame(noisy))))
    for hid in ("middle_stable", "cka_plateau", "mean_shift_shallow", "mean_shift_final", "cosine_agrees",
                "seed_robust"):
        assert found[hid].verdict == CONTRADICTED, (hid, found[hid])
        assert found[hid].agrees is False
    assert "depth 0.20" in found["middle_stable"].ours


def test_divergence_findings_scale_free_and_honest_without_intervals():
    # SFT = 1.02 × Base: the raw shift grows with the residual norm, the relative one is flat
    flat = [0.02] * 11
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, flat)))
    assert found["mean_shift_final"].verdict != HOLDS
    assert found["mean_shift_shallow"].verdict == CONTRADICTED  # not negligible relative to the end
    # a table with only the raw shift gets no verdict on it
    raw_only = _frame(PAPER_LIKE_CKA, flat)
    raw_only = raw_only[raw_only["metric"] != "relative_mean_shift"]
    found = _by_id(paper.divergence_findings(raw_only))
    assert found["mean_shift_final"].verdict is None and "relative_mean_shift" in found["mean_shift_final"].note
    # without per-layer intervals the layers are the units (AR(0.9) layer noise, its level from the residuals
    # about a line per band): a drop of 0.23 against layer-to-layer wiggles of 0.005 is settled
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, ci=None)))
    assert found["middle_stable"].verdict == HOLDS and found["middle_stable"].unit == "layers"


def _curves(n_layers: int, fn, seed: int = 0, noise: float = 0.0) -> list[float]:
    rng = np.random.default_rng(seed)
    d = np.arange(n_layers + 1) / n_layers
    return list(fn(d) + rng.normal(0, noise, d.size))


def test_convergence_findings():
    n = 40

    def stages(start, plateau, end):  # a jump 0 → 1, a plateau, a ramp over the last 20 %
        return lambda d: np.where(d == 0, start, np.where(d > 0.8, plateau + (end - plateau) * (d - 0.8) / 0.2,
                                                          plateau))

    base = {"effective_rank": _curves(n, stages(60, 25, 8), 0, 0.2),
            "condition_number": list(np.exp(_curves(n, stages(9.0, 3.5, 7.0), 1, 0.02))),  # log scale
            "spectral_norm": list(np.exp(_curves(n, stages(5.0, 1.5, 6.0), 2, 0.02)))}
    rng = np.random.default_rng(3)
    sft = {k: [v * (1.01 + 1e-4 * rng.normal()) for v in vals] for k, vals in base.items()}
    cka = [1.0] + [0.95] * 32 + [0.9] * 8
    found = _by_id(paper.convergence_findings(_frame(cka, base=base, sft=sft), n_surrogates=199))
    assert found["synchronised"].verdict == HOLDS and found["synchronised"].value > 0.9
    assert found["three_stages"].verdict == HOLDS, found["three_stages"]
    assert found["erank_collapse"].verdict != CONTRADICTED and found["erank_collapse"].effect < -0.3
    assert found["erank_peak"].verdict != HOLDS  # a plateau is no peak
    assert found["cond_trough"].verdict is None and "layer" in found["cond_trough"].ours
    assert found["spectral_norm_500"].verdict is None and "N = 100" in found["spectral_norm_500"].ours
    # a peak in the middle band
    hump = {"effective_rank": _curves(n, lambda d: np.where(d == 0, 60, np.where(d <= 0.2, 15, np.where(
        d <= 0.8, 30, 8))), 4, 0.3)}
    found = _by_id(paper.convergence_findings(_frame(cka, base=hump, sft=hump), n_surrogates=199))
    assert found["erank_peak"].verdict == HOLDS and found["erank_peak"].unit == "layers"
    assert found["erank_collapse"].verdict == HOLDS and found["erank_collapse"].effect == pytest.approx(8 / 30 - 1,
                                                                                                      abs=0.02)
    # independent curves are not "synchronised", and flat ones neither peak nor collapse
    other = {k: _curves(n, lambda d: np.full(d.size, 5.0), 10 + i, 1.0) for i, k in enumerate(base)}
    found = _by_id(paper.convergence_findings(_frame(cka, base=base, sft=other), n_surrogates=199))
    assert found["synchronised"].verdict != HOLDS
    assert found["erank_peak"].verdict != HOLDS and found["erank_collapse"].verdict != HOLDS


def _lens(final_once: float, final_twice: float, penultimate: float = 0.6, ci: float = 0.005) -> pd.DataFrame:
    rows = []
    for paper_ in (False, True):
        for layer in range(1, L + 1):
            acc = 0.0 if layer < 8 else {8: 0.3, 9: penultimate, 10: final_twice if paper_ else final_once}[layer]
            rows.append(dict(model="sft", paper=paper_, layer=layer, depth=layer / L, metric="top1_acc", value=acc,
                             pooled=acc, pooled_ci_low=acc - ci, pooled_ci_high=acc + ci))
    return pd.DataFrame(rows)


def test_probing_findings_separate_the_double_norm_dip():
    found = _by_id(paper.probing_findings(_lens(final_once=0.65, final_twice=0.52)))
    assert found["probe_early"].verdict == HOLDS and found["probe_rise"].verdict == HOLDS
    dip = found["probe_final_dip"]
    assert dip.verdict == CONTRADICTED and "only with the final norm applied twice" in dip.note
    assert "0.600 → 0.650" in dip.ours and "0.520" in dip.ours
    assert dip.effect == pytest.approx(0.05) and dip.mde == pytest.approx(2.8016 * 0.01 / 1.95996, rel=1e-3)
    found = _by_id(paper.probing_findings(_lens(final_once=0.5, final_twice=0.4)))
    assert found["probe_final_dip"].verdict == HOLDS
    # a dip smaller than the layers' intervals is not a dip
    found = _by_id(paper.probing_findings(_lens(final_once=0.595, final_twice=0.4)))
    assert found["probe_final_dip"].verdict == INCONCLUSIVE


def test_weights_and_correlation_findings():
    n = 40
    blocks = range(1, n + 1)
    rng = np.random.default_rng(0)
    d = np.arange(1, n + 1) / n
    j = pd.Series(np.where(d > 0.8, 0.05, 0.01) + rng.normal(0, 0.0005, n), index=blocks)
    found = _by_id(paper.weights_findings(j, j / 100))
    assert found["weight_j"].verdict == HOLDS and found["weight_final"].verdict is None
    assert found["weight_j"].unit == "layers"
    flat = pd.Series(0.01 + rng.normal(0, 0.0005, n), index=blocks)
    assert _by_id(paper.weights_findings(flat))["weight_j"].verdict != HOLDS

    wiggle = rng.normal(0, 1.0, n)
    x = pd.Series(d ** 4 + 0.05 * wiggle, index=blocks)
    linked = pd.DataFrame({"cosine_similarity": 1 - d ** 4 - 0.05 * wiggle + rng.normal(0, 0.01, n),
                           "spectral_norm": np.exp(3 * d ** 4 + 0.1 * wiggle)}, index=blocks)
    found = _by_id(paper.correlation_findings(x, linked, n_surrogates=199))
    assert found["corr_cosine"].verdict == HOLDS and found["corr_spectral"].verdict == HOLDS
    # curves that share only the depth trend: the raw r is strong, the verdict is not "holds"
    trend = pd.DataFrame({"cosine_similarity": 1 - d ** 4 + rng.normal(0, 0.05, n),
                          "spectral_norm": np.exp(3 * d ** 4 + rng.normal(0, 0.05, n))}, index=blocks)
    found = _by_id(paper.correlation_findings(x, trend, n_surrogates=199))
    assert found["corr_cosine"].value < -0.9 and found["corr_cosine"].verdict != HOLDS
    assert found["corr_spectral"].verdict != HOLDS


def _swap(diffs, width=0.004):
    rows = [dict(kind="swap", receiver="base", head="receiver", segment=i, diff=d, diff_ci_low=d - width / 2,
                 diff_ci_high=d + width / 2, diff_ci_width=width, n=50) for i, d in enumerate(diffs)]
    rows.append(dict(kind="swap", receiver="base", head="donor", segment=0, diff=1.0, diff_ci_low=0.9,
                     diff_ci_high=1.1, diff_ci_width=0.2, n=50))
    return pd.DataFrame(rows)


def test_swap_findings_use_the_paired_interval():
    found = _by_id(paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03], width=0.001)))
    assert [found[h].verdict for h in ("swap_first", "swap_middle", "swap_last")] == [HOLDS] * 3
    assert "resolves" in found["swap_first"].note and found["swap_first"].effect == -0.01
    # the same signs inside a wide interval are not a verdict
    found = _by_id(paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03], width=0.1)))
    assert [found[h].verdict for h in ("swap_first", "swap_middle", "swap_last")] == [INCONCLUSIVE] * 3
    assert "is larger than" in found["swap_first"].note
    found = _by_id(paper.swap_findings(_swap([0.01, 0.0, 0.0, 0.0, 0.0], width=0.001)))
    assert found["swap_first"].verdict == CONTRADICTED
    assert found["swap_first"].interval_text() == "+0.0100 [+0.0095, +0.0105] (95%)"
    found = _by_id(paper.swap_findings(_swap([0.0] * 5, width=0.0)))
    assert found["swap_middle"].note == "no text's score changed at all"
    assert found["swap_middle"].verdict == INCONCLUSIVE


def _sweep_table(scores: dict[str, float], seeds=(0, 1, 2), retention=True, noise=0.005) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for mask, score in scores.items():
        for s in seeds:
            acc = score + rng.normal(0, noise)
            row = dict(mask=mask, seed=s, accuracy=acc, accuracy_ci_low=acc - 0.05, accuracy_ci_high=acc + 0.05,
                       answer_nll=1 - acc)
            if retention:
                row.update(ppl_instruct=10 + abs(score - 0.3) * (mask != "00000") + rng.normal(0, 0.001),
                           ppl_text=20 + score * (mask != "00000"))
            rows.append(row)
    return pd.DataFrame(rows)


def test_lora_findings_middle_beats_full_depth():
    scores = {"00000": 0.0, "11111": 0.28, "10000": 0.2, "01000": 0.37, "00100": 0.3, "00010": 0.29,
              "00001": 0.1, "01100": 0.33, "00110": 0.3, "01110": 0.31,
              "100": 0.4, "010": 0.5, "001": 0.3,
              **{m: v for m, v in zip(segments.single_segment_masks(10),
                                      (0.45, 0.46, 0.47, 0.48, 0.49, 0.48, 0.45, 0.42, 0.4, 0.38), strict=True)}}
    findings = paper.lora_findings(_sweep_table(scores))
    found = _by_id(findings)
    # one claim, one row: the four 11111 numbers and the 13B/32B edge claims are one row each
    ids = [h for f in findings for h in f.ids]
    assert len(ids) == len(set(ids))
    full = found["lora_1b_11111"]
    assert full.verdict is None and "3 seeds" in full.ours
    assert set(full.also) == {"lora_7b_11111", "lora_13b_11111", "lora_32b_11111"}
    assert found["lora_13b_10000"].also == ("lora_32b_10000",) and "lora_32b_10000" not in found
    for hid in ("lora_7b_01000", "lora_13b_01110", "lora_32b_01100", "lora_13b_10000", "lora_1b_00001",
                "lora_gain", "lora_edge_gap", "appA_3_peak", "appA_10_peak", "appB_middle_best"):
        f = found[hid]
        assert f.verdict == HOLDS, (hid, f)
        assert f.unit == "seeds" and f.n == 3 and f.mde > 0 and f.rule
    assert found["lora_gain"].effect == pytest.approx(0.09, abs=0.015)
    assert "Bonferroni" in found["lora_gain"].rule and "01000" in found["lora_gain"].ours
    assert found["appA_3_2"].value == pytest.approx(0.5, abs=0.01) and found["appA_3_2"].verdict is None
    assert {f"appB_{m}_{b}" for m in ("00000", "11111", "10000", "00001", "00110")
            for b in ("ifeval", "mtbench")} <= set(found)
    # a sweep without the optional families still works
    small = _by_id(paper.lora_findings(_sweep_table({"00000": 0.0, "11111": 0.3, "01100": 0.2}, retention=False)))
    assert small["lora_32b_01100"].verdict == CONTRADICTED and "appA_3_peak" not in small
    # one seed: no seed-to-seed spread, so no verdict either way
    one = _by_id(paper.lora_findings(_sweep_table(scores, seeds=(0,))))
    assert one["lora_7b_01000"].verdict == INCONCLUSIVE and "at least 2" in one["lora_7b_01000"].rule


def test_compare_conventions_and_sentence():
    standard = _frame(PAPER_LIKE_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    authors = _frame(EARLY_DROP_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    table = paper.compare_conventions({"standard": standard, "paper": authors})
    assert {"claim", "standard: ours", "paper: verdict", "same verdict"} <= set(table.columns)
    row = table[table["claim"] == paper.BY_ID["middle_stable"].claim].iloc[0]
    assert (row["standard: verdict"], row["paper: verdict"], row["same verdict"]) == ("holds", "contradicted", "NO")
    sentence = paper.conventions_sentence(table)
    assert "change with the conventions" in sentence and paper.BY_ID["middle_stable"].claim in sentence
    same = paper.compare_conventions({"standard": standard, "paper": standard})
    assert "do not change any conclusion" in paper.conventions_sentence(same)


# --------------------------------------------------------------------------------------------
# records and rendering


def test_report_records_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    findings = [paper.Finding("cka_final", "0.5", None, "lost"),
                paper.Finding("middle_stable", "x", HOLDS, "ok", effect=0.2, ci_low=0.1, ci_high=0.3, level=0.95,
                              rule="holds if above 0", mde=0.14, n=10, unit="layers"),
                paper.Finding("swap_first", "y", "contradicted", "opposite sign", effect=0.01, ci_low=0.005,
                              ci_high=0.015, level=0.95, rule="r", mde=0.007, n=50),
                paper.Finding("swap_last", "z", INCONCLUSIVE, "", effect=0.0, ci_low=-0.01, ci_high=0.01, level=0.95)]
    out = paper.report(findings, pair="toy", settings={"n": 3})
    text = getattr(out, "data", out)
    assert text.startswith("| claim | paper (model) | ours | effect [95 % interval] | MDE | verdict |")
    assert "**holds**" in text and "**contradicted**" in text and "**inconclusive**" in text
    assert "✓" not in text and "✗" not in text
    assert "+0.200 [+0.100, +0.300] (95%)" in text
    assert "1 hold, 1 contradicted, 1 inconclusive (of 3 distinct comparisons) on `toy`" in text
    assert "Contradicted: " + paper.BY_ID["swap_first"].claim + " — opposite sign" in text
    assert "1 more number is shown for scale only" in text
    stored = json.loads((tmp_path / "rec" / "01_divergence.json").read_text())
    assert set(stored["findings"]) == {"cka_final", "middle_stable"} and stored["pair"] == "toy"
    assert stored["findings"]["middle_stable"]["verdict"] == "holds"
    assert stored["findings"]["middle_stable"]["ci_low"] == 0.1
    assert set(paper.read_records(tmp_path / "rec")) == {"cka_final", "middle_stable", "swap_first", "swap_last"}


def test_one_comparison_standing_for_two_claims_is_recorded_and_counted_once(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    f = paper.Finding("lora_13b_10000", "x", HOLDS, effect=-0.05, ci_low=-0.08, ci_high=-0.02, level=0.95,
                      also=("lora_32b_10000",))
    text = getattr(paper.report([f], pair="toy"), "data", None) or paper.report([f], pair="toy")
    assert "(of 1 distinct comparison)" in text and "0.22 (OLMo2-13B); 0.25 (OLMo2-32B)" in text
    records = paper.read_records(tmp_path / "rec")
    assert records["lora_32b_10000"]["same_as"] == "lora_13b_10000"
    md = paper.paper_vs_ours_markdown({"toy": records})
    number = 1 + [h.id for h in paper.HEADLINES].index("lora_13b_10000")
    row = next(line for line in md.splitlines() if paper.BY_ID["lora_32b_10000"].claim in line
               and "OLMo2-32B" in line)
    assert f"same comparison as #{number}" in row
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("lora_13b_10000", "x", also=("nope",))


def test_paper_vs_ours_table_lists_every_headline():
    md = paper.paper_vs_ours_markdown({"toy": {"cka_final": {"ours": "0.5", "verdict": None},
                                              "middle_stable": {"ours": "x", "verdict": "holds", "effect": 0.2,
                                                                "ci_low": 0.1, "ci_high": 0.3, "level": 0.95},
                                              "cka_plateau": {"ours": "y", "verdict": "inconclusive", "effect": 0.0,
                                                              "ci_low": -0.1, "ci_high": 0.1, "level": 0.95}},
                                      "olmo2-1b": {}})
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(paper.HEADLINES)
    assert "ours: `toy`" in lines[0] and "ours: `olmo2-1b`" in lines[0]
    stable = next(line for line in lines if paper.BY_ID["middle_stable"].claim in line)
    assert "x — +0.200 [+0.100, +0.300] (95%) → **holds**" in stable and "not run" in stable
    plateau = next(line for line in lines if paper.BY_ID["cka_plateau"].claim in line)
    assert "**inconclusive**" in plateau
    assert "(../notebooks/01_divergence.ipynb)" in stable
    assert "✓" not in md and "✗" not in md and "**contradicted**" in md  # the legend names all three


def test_collect_records_current_pair_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    root = paper.records_root()
    for slug, hid in (("toy", "cka_final"), ("olmo2-1b", "middle_stable"), ("toy-quick", "cka_plateau")):
        (root / slug / "records").mkdir(parents=True)
        (root / slug / "records" / "x.json").write_text(json.dumps({"findings": {hid: {"ours": "1", "agrees": None}}}))
    assert list(paper.collect_records("toy")) == ["toy", "olmo2-1b"]
    assert list(paper.collect_records("toy-quick")) == ["toy-quick", "olmo2-1b", "toy"]


def test_conventions_markdown_lists_every_field():
    from dataclasses import fields

    from mbt.metrics.conventions import Conventions

    md = paper.conventions_markdown()
    for f in fields(Conventions):
        if f.name != "name":
            assert f"| `{f.name}` |" in md
    assert "| `erank_power` | `1` | `2` **≠** |" in md
    assert ":func:" not in md and "``" not in md


# --------------------------------------------------------------------------------------------
# helpers and build plumbing


def test_sizes_datasets_and_masks(tmp_path):
    assert book.sizes(1000, 100, False) == (1000, 100)
    assert book.sizes(1000, 100, True) == (32, 8)
    from mbt.pairs import PAIRS

    assert book.default_datasets(PAIRS["toy"]) == ["toy-math", "toy-mc", "toy-text"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "probing") == ["mmlu"]
    assert book.default_datasets(PAIRS["toy"], "swapping") == ["toy-math"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "finetune") == ["gsm8k"]
    with pytest.raises(ValueError, match="purpose"):
        book.default_datasets(PAIRS["toy"], "other")
    assert segments.single_segment_masks(3) == ("100", "010", "001")
    assert segments.PAPER_MASKS[0] == "00000" and len(segments.PAPER_MASKS) == 10
    import mbt.tune

    assert tuple(segments.PAPER_MASKS) == tuple(mbt.tune.DEFAULT_MASKS)


def test_folder_label(tmp_path):
    (tmp_path / "toy-tiny-seed0-abc" / "base").mkdir(parents=True)
    (tmp_path / "toy-tiny-seed0-abc" / "sft").mkdir()
    build = tmp_path / "toy-tiny-seed0-abc"
    assert pairs.folder_label(str(build / "base"), str(build / "sft")) == "toy-tiny-seed0-abc"
    assert pairs.folder_label("/a/base-model", "/b/sft-model") == "base-model vs sft-model"
    hub = pairs.folder_label("allenai/OLMo-2-0425-1B", "allenai/OLMo-2-0425-1B-SFT")
    assert hub == "OLMo-2-0425-1B vs OLMo-2-0425-1B-SFT"


def test_metric_table_and_evidence_curves():
    frame = _frame(PAPER_LIKE_CKA, base={"effective_rank": [1.0] * (L + 1)}, sft={"effective_rank": [2.0] * (L + 1)})
    wide = book.metric_table(frame)
    assert set(wide.columns) == {"cka", "effective_rank"} and (wide["effective_rank"] == 2.0).all()
    evidence = pd.DataFrame({"block": range(L), "layer": range(1, L + 1), "cka": np.arange(L, dtype=float),
                             "score": np.ones(L), "selected": [False] * L})
    evidence.attrs["signals"] = ["cka"]
    tidy = select.evidence_curves(evidence)
    assert list(tidy.columns) == ["signal", "layer", "value"] and set(tidy["signal"]) == {"cka", "score"}


def _table(n: int, texts: list[str], progress: bool = True) -> pd.DataFrame:
    _CALLS.append((n, tuple(texts)))
    return pd.DataFrame({"n": [n], "chars": [sum(map(len, texts))]})


_CALLS: list = []


def test_cached_call_keys_on_the_call_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    _CALLS.clear()
    texts = [f"text {i}" for i in range(12)]
    first = book.cached_call(_table, 1, texts)
    again = book.cached_call(_table, 1, texts, progress=False)  # progress is not part of the key
    assert len(_CALLS) == 1 and first.equals(again) and "mbt: cached" in capsys.readouterr().err
    book.cached_call(_table, 2, texts)  # another argument: computed again
    book.cached_call(_table, 1, texts[:-1] + ["text 11 changed"])  # other texts: computed again
    book.cached_call(_table, 1, ["text 0\0text 1", *texts[2:]])  # text boundaries matter
    assert len(_CALLS) == 4
    book.cached_call(_table, 1, texts, cache=False)
    assert len(_CALLS) == 5
    with pytest.raises(TypeError, match="cannot key"):
        book.cached_call(_table, object(), texts)


def _first_weight(model, tokenizer, texts: list[str], progress: bool = True) -> pd.DataFrame:
    _CALLS.append(("model", tokenizer.name_or_path))
    return pd.DataFrame({"w": [float(next(model.parameters()).detach().double().sum())]})


def test_cached_call_keys_a_local_checkpoint_by_its_content_not_its_folder(tmp_path, monkeypatch, save_pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    _CALLS.clear()
    base, sft = save_pair("olmo2")
    copy = tmp_path / "copy-of-base"
    shutil.copytree(base, copy)
    texts = [f"text {i}" for i in range(12)]

    def call(folder):
        model = AutoModelForCausalLM.from_pretrained(str(folder))
        return book.cached_call(_first_weight, model, AutoTokenizer.from_pretrained(str(folder)), texts)

    first = call(base)
    assert call(copy).equals(first) and len(_CALLS) == 1  # the same bytes elsewhere: reused
    call(sft)  # other weights: computed again
    assert len(_CALLS) == 2


def test_chapters_6_and_7_share_one_sweep_object():
    """Both chapters build their sweep with book.lora_sweep from identically named and valued parameters."""
    shared = ("task", "masks", "seeds", "preset", "rank", "steps", "n_test", "threads", "quick")
    cells = {}
    for name in ("06_midblock_lora", "07_beyond"):
        nb = book_build.read_notebook(ROOT / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        values = {}
        for node in ast.parse(cell.source).body:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            values[target.id] = ast.literal_eval(node.value)
        cells[name] = {k: values[k] for k in shared}
        source = "\n".join(c.source for c in nb.cells)
        assert "book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps" in source
    assert cells["06_midblock_lora"] == cells["07_beyond"]
    from mbt.pairs import PAIRS

    a = book.lora_sweep(PAIRS["toy"], **{k: v for k, v in cells["06_midblock_lora"].items()})
    b = book.lora_sweep(PAIRS["toy"], **{**cells["07_beyond"], "steps": 7})
    assert a.task == "toy-math" and a.masks == segments.PAPER_MASKS and a != b and b.options["steps"] == 7
    quick = book.lora_sweep(PAIRS["toy"], quick=True)
    assert quick.masks == tuple(book.QUICK_SWEEP["masks"]) and len(quick.seeds) == 1 and quick.options["steps"] == 2


def test_parameter_names_and_staging(tmp_path):
    nb = book_build.read_notebook(ROOT / "notebooks" / "01_divergence.py")
    names = book.parameter_names(nb)
    for name in ("pair", "base", "sft", "quick", "datasets", "n_pooled", "n_token", "seed", "conventions"):
        assert name in names
    root = tmp_path / "root"
    (root / "book" / "_executed").mkdir(parents=True)
    (root / "book" / "_executed" / "stale.md").write_text("x")
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text("root: book/intro\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    stage = root / "book" / "_executed"
    book_build.stage_sources(root, stage)
    assert (stage / "_config.yml").exists() and (stage / "book" / "intro.md").read_text() == "# Intro\n"
    assert not (stage / "book" / "_executed").exists(), "the stage is never copied into itself"
    mtime = (stage / "book" / "intro.md").stat().st_mtime_ns
    book_build.stage_sources(root, stage)
    assert (stage / "book" / "intro.md").stat().st_mtime_ns == mtime, "unchanged files are left alone"


def test_build_refuses_bad_arguments_before_doing_anything(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        book.build("olmo9", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="has no _config.yml"):
        book.build("toy", root=tmp_path)
    with pytest.raises(ValueError, match="both --base and --sft"):
        book.build(base="x", root=tmp_path)
    (tmp_path / "_config.yml").write_text("title: t\n")
    with pytest.raises(ValueError, match="unknown chapters"):
        book.build("olmo2-1b", root=tmp_path, chapters=["99_nothing"], execute=False)


def test_cli_book_passes_flags_to_build(monkeypatch, capsys):
    seen = {}

    def fake_build(pair, **kwargs):
        seen.update(pair=pair, **kwargs)
        return book.BuildReport(pair=str(pair), stage=ROOT, html=None)

    monkeypatch.setattr(book, "build", fake_build)
    code = cli.main(["book", "--pair", "olmo2-1b", "--quick", "--only", "1,05_swapping", "--param", "n_pooled=200",
                     "--param", "seeds=[0, 1]", "--param", "task=toy-math", "--force", "--strict"])
    assert code == 0
    assert seen["pair"] == "olmo2-1b" and seen["quick"] and seen["force"] and seen["strict"]
    assert seen["chapters"] == ["01_divergence", "05_swapping"]
    assert seen["parameters"] == {"n_pooled": 200, "seeds": [0, 1], "task": "toy-math"}
    code = cli.main(["book", "--base", "b", "--sft", "s", "--no-execute", "--no-html"])
    assert code == 0 and seen["pair"] is None and seen["base"] == "b" and not seen["execute"] and not seen["html"]
    assert cli.main(["book", "--param", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_papermill_reads_every_parameter_with_its_type(recwarn):
    """papermill's own parser (``--help-notebook``) must see every parameter, typed; '=' in a comment broke it."""
    from papermill.translators import PythonTranslator

    for name in book.CHAPTERS:
        nb = book_build.read_notebook(ROOT / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        seen = {p.name: p.inferred_type_name for p in PythonTranslator.inspect(cell)}
        assert set(seen) == set(book.parameter_names(nb)), name
        assert all(t != "None" for t in seen.values()), (name, seen)
        assert seen == book_build.parameter_types(nb)


def test_check_parameters_refuses_unknown_names_and_wrong_types():
    declared = {"01_divergence": {"n_pooled": "int", "datasets": "list", "quick": "bool"},
                "03_probing": {"n_samples": "int"}}
    book_build.check_parameters({"n_pooled": 200, "datasets": ["toy-math"], "n_samples": 3}, declared)
    with pytest.raises(ValueError, match="no chosen chapter has a parameter 'nonexistent'.*n_pooled"):
        book_build.check_parameters({"nonexistent": 1}, declared)
    with pytest.raises(ValueError, match="'n_pooled' must be int.*got str 'abc'"):
        book_build.check_parameters({"n_pooled": "abc"}, declared)
    with pytest.raises(ValueError, match="must be int"):
        book_build.check_parameters({"n_pooled": True}, declared)
    with pytest.raises(ValueError, match="must be bool"):
        book_build.check_parameters({"quick": 1}, declared)


def test_build_refuses_bad_parameters_before_executing(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(jobs, "_execute", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(jobs.toy, "build", lambda *a, **k: ran.append("toy"))
    with pytest.raises(ValueError, match="valid names"):
        book.build("toy", parameters={"nonexistent": 1}, html=False)
    with pytest.raises(ValueError, match="must be int"):
        book.build("toy", parameters={"n_pooled": "abc"}, html=False)
    assert ran == []


def test_find_root_is_the_working_directory_or_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert book.find_root() == ROOT
    assert book.find_root(tmp_path) == tmp_path.resolve()  # --root is taken as given; build() checks it
    monkeypatch.chdir(tmp_path)  # no _config.yml here: never fall back to the checkout mbt was imported from
    with pytest.raises(FileNotFoundError, match="run from the repository root or pass --root"):
        book.find_root()
    (tmp_path / "_config.yml").write_text("title: t\n")
    assert book.find_root() == tmp_path


def test_cli_book_outside_a_checkout_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(jobs, "_execute", lambda *a, **k: pytest.fail("executed a chapter"))
    monkeypatch.setattr(jobs.toy, "build", lambda *a, **k: pytest.fail("built the toy pair"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["book", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ") and "pass --root" in err
    assert list(tmp_path.iterdir()) == []


def test_old_names_keep_working_with_a_deprecation_warning():
    import importlib
    import sys

    from mbt import tune

    with pytest.warns(DeprecationWarning, match="moved to mbt.paper.divergence_findings"):
        assert book.divergence_findings is paper.divergence_findings
    with pytest.warns(DeprecationWarning, match="mbt.segments.PAPER_MASKS"):
        assert book.PAPER_MASKS == segments.PAPER_MASKS
    with pytest.raises(AttributeError):
        book.no_such_name  # noqa: B018
    with pytest.warns(DeprecationWarning, match="counts blocks from 0"):
        assert tune.segment_bounds(5, 16) == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 16)]
    sys.modules.pop("mbt.toydata", None)
    with pytest.warns(DeprecationWarning, match="mbt.toy.corpus"):
        toydata = importlib.import_module("mbt.toydata")
    from mbt.toy import corpus

    assert toydata.toy_math is corpus.toy_math
