"""Chapter 10's claims: constructed cases, their opposites, and calibration under no effect at 10 and 40 layers.

Family: the chapter's three claims, each at the 95 % level ("format_late" as a compound of 2(k − 1)
segment comparisons, Bonferroni). Under no effect each rule must decide ("holds" or "contradicted") at most
5 % of the time, plus three binomial standard deviations of Monte-Carlo slack; the simulated problems
have different difficulties, shared by every condition, so the paired comparisons are realistically
correlated. The swap tables are those of pairs with 10 and with 40 layers (5 segments, and 10 for 40).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mbt import paper
from mbt.paper import verdicts as V
from mbt.paper.findings.knowledge import CHAPTER, knowledge_findings, mask_contrasts
from mbt.segments import segment_blocks

HOLDS, CONTRADICTED, INCONCLUSIVE = V.Verdict.HOLDS, V.Verdict.CONTRADICTED, V.Verdict.INCONCLUSIVE


def _bern(rng: np.random.Generator, logit_item: np.ndarray, shift: float) -> np.ndarray:
    """0/1 per problem: problem difficulty (a logit per problem) plus a condition's shift on the logit scale."""
    return (rng.random(logit_item.size) < 1 / (1 + np.exp(-(logit_item + shift)))).astype(float)


def _per_item(rng: np.random.Generator, n: int, shifts: dict[tuple[str, str], float]) -> pd.DataFrame:
    """``shifts[(model, format)]`` on the logit scale; each format has its own problem difficulties."""
    parts = []
    for fmt in ("own", "arithmetic", "qa"):
        hard = rng.normal(0, 1, n)
        for model in ("base", "sft"):
            parts.append(pd.DataFrame({"model": model, "format": fmt, "item": np.arange(n),
                                       "correct": _bern(rng, hard, shifts[(model, fmt)])}))
    return pd.concat(parts, ignore_index=True)


def _swaps(rng: np.random.Generator, n_layers: int, n_segments: int, n: int,
           effects: dict[str, list[float]]) -> pd.DataFrame:
    """Swap rows scored by format: per receiver, the segments' shifts (logit scale) of the receiver's score."""
    blocks = segment_blocks(n_layers, n_segments)
    rows = []
    for receiver, base_shift in (("base", -1.0), ("sft", 1.0)):
        hard = rng.normal(0, 1, n)
        unswapped = _bern(rng, hard, base_shift)
        for j, shift in enumerate(effects[receiver]):
            scores = _bern(rng, hard, base_shift + shift)
            rows.append({"score_name": "format", "receiver": receiver, "kind": "swap", "head": "receiver",
                         "segment": j, "blocks": tuple(blocks[j]), "diff": float((scores - unswapped).mean()),
                         "scores": tuple(scores)})
    knowledge = [dict(r, score_name="knowledge") for r in rows]  # ignored by the rule
    return pd.DataFrame(rows + knowledge)


NULL_SHIFTS = {("base", "own"): 0.0, ("sft", "own"): 0.0, ("base", "arithmetic"): 0.0, ("sft", "arithmetic"): 1.0,
               ("base", "qa"): -1.0, ("sft", "qa"): 0.0}
"""No effect on "forgotten": SFT's own format as the Base's. SFT gains on the arithmetic; the Q/A rows are
replaced by :func:`_equal_gains` so that the format gain has the knowledge gain's distribution."""


def _slack(reps: int, p: float = 0.05) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / reps)


@pytest.mark.slow
@pytest.mark.parametrize(("n_layers", "n_segments"), [(10, 5), (40, 5), (40, 10)])
def test_null_calibration(n_layers, n_segments):
    reps, n = 200, 100
    rng = np.random.default_rng(n_layers * 100 + n_segments)
    decided: dict[str, int] = {}
    for rep in range(reps):
        per_item = _equal_gains(rng, _per_item(rng, n, NULL_SHIFTS), n)
        swaps = _swaps(rng, n_layers, n_segments, n, {"base": [0.0] * n_segments, "sft": [0.0] * n_segments})
        for f in knowledge_findings(per_item, swaps, seed=rep, n_boot=400):
            decided[f.id] = decided.get(f.id, 0) + (f.verdict in (HOLDS, CONTRADICTED))
    assert set(decided) == {"sft_format_not_knowledge", "format_late", "own_format_forgotten"}
    for hid, count in decided.items():
        assert count / reps <= _slack(reps), (hid, count / reps)


def _equal_gains(rng: np.random.Generator, per_item: pd.DataFrame, n: int) -> pd.DataFrame:
    """Replace the Q/A rows by draws whose per-problem gain has the arithmetic's distribution (no effect)."""
    order = rng.permutation(n)  # the same joint distribution of (base, sft), on other problems
    qa = []
    for model in ("base", "sft"):
        ar = per_item[(per_item["format"] == "arithmetic") & (per_item["model"] == model)].sort_values("item")
        qa.append(pd.DataFrame({"model": model, "format": "qa", "item": np.arange(n),
                                "correct": ar["correct"].to_numpy()[order]}))
    return pd.concat([per_item[per_item["format"] != "qa"], *qa], ignore_index=True)


def _verdicts(per_item: pd.DataFrame, swaps: pd.DataFrame) -> dict[str, V.Verdict]:
    return {f.id: f.verdict for f in knowledge_findings(per_item, swaps)}


def test_each_claim_holds_on_its_case_and_is_contradicted_on_the_opposite():
    rng = np.random.default_rng(7)
    n = 200
    like_the_toy = {("base", "own"): 0.0, ("sft", "own"): -2.0, ("base", "arithmetic"): 0.0,
                    ("sft", "arithmetic"): 0.3, ("base", "qa"): -6.0, ("sft", "qa"): 1.0}
    late = _swaps(rng, 10, 5, n, {"base": [0, 0, 0, 0, 3.0], "sft": [0, 0, 0, 0, -3.0]})
    got = _verdicts(_per_item(rng, n, like_the_toy), late)
    assert got == {"sft_format_not_knowledge": HOLDS, "format_late": HOLDS, "own_format_forgotten": HOLDS}

    opposite = {("base", "own"): -2.0, ("sft", "own"): 0.0, ("base", "arithmetic"): -3.0,
                ("sft", "arithmetic"): 1.5, ("base", "qa"): 0.0, ("sft", "qa"): 0.0}
    early = _swaps(rng, 40, 5, n, {"base": [3.0, 0, 0, 0, 0], "sft": [-3.0, 0, 0, 0, 0]})
    got = _verdicts(_per_item(rng, n, opposite), early)
    assert got == {"sft_format_not_knowledge": CONTRADICTED, "format_late": CONTRADICTED,
                   "own_format_forgotten": CONTRADICTED}


def test_rows_without_data_are_inconclusive_with_the_reason():
    per_item = pd.DataFrame({"model": ["base"], "format": ["qa"], "item": [0], "correct": [0.0]})
    found = {f.id: f for f in knowledge_findings(per_item, None)}
    assert all(f.verdict == INCONCLUSIVE for f in found.values())
    assert "no swap table" in found["format_late"].rule
    assert "fewer than 2 problems" in found["own_format_forgotten"].rule
    assert all(paper.chapter_of(hid) == CHAPTER for hid in found)


def test_the_swap_rule_is_bonferroni_over_both_directions():
    rng = np.random.default_rng(3)
    swaps = _swaps(rng, 10, 5, 100, {"base": [0, 0, 0, 0, 3.0], "sft": [0, 0, 0, 0, -3.0]})
    f = next(f for f in knowledge_findings(_per_item(rng, 100, NULL_SHIFTS), swaps) if f.id == "format_late")
    assert f.level == pytest.approx(1 - 0.05 / 8) and "Bonferroni over 8" in f.rule
    assert "SFT→Base last +" in f.ours and "Base→SFT last −" in f.ours.replace("-", "−")


def test_mask_contrasts_are_paired_by_seed():
    rows = []
    acc = {"00000": [0.0] * 3, "11111": [0.60, 0.62, 0.58], "01100": [0.70, 0.69, 0.74]}
    ari = {"00000": [0.50] * 3, "11111": [0.52, 0.55, 0.50], "01100": [0.51, 0.56, 0.49]}
    for mask in acc:
        for s in range(3):
            rows.append({"mask": mask, "seed": s, "accuracy": acc[mask][s], "arithmetic": ari[mask][s]})
    out = mask_contrasts(pd.DataFrame(rows))
    assert set(out["mask"]) == {"01100"} and list(dict.fromkeys(out["against"])) == ["11111", "00000"]
    row = out[(out["against"] == "11111") & (out["score"] == "accuracy")].iloc[0]
    iv = V.t_interval(acc["01100"], acc["11111"], paired=True)
    assert (row["diff"], row["ci_low"], row["ci_high"], row["n"]) == pytest.approx((iv.estimate, iv.low, iv.high, 3))
    untuned = out[(out["against"] == "00000") & (out["score"] == "arithmetic")].iloc[0]
    assert untuned["diff"] == pytest.approx(np.mean(ari["01100"]) - 0.50)
    assert mask_contrasts(pd.DataFrame(rows).drop(columns="arithmetic")).empty
