"""Training-free block selection: signals, the mask rule, and regret against a sweep."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS

from mbt import select
from mbt.pairs import load_pair

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(save_pair):
    base, sft = save_pair("olmo2", base_layers=5)
    return load_pair(base=str(base), sft=str(sft), progress=False)


def test_suggest_block_on_a_tiny_pair(pair):
    mask, evidence = select.suggest_block(pair, TEXTS, n_segments=5, batch_size=4, progress=False)
    assert len(mask) == 5 and set(mask) <= {"0", "1"}
    assert mask.count("1") == 2 and "11" in mask  # default width: 40% of 5 segments, contiguous
    assert len(evidence) == pair.n_layers == 5
    assert evidence["block"].tolist() == [1, 2, 3, 4, 5] and evidence["layer"].tolist() == [1, 2, 3, 4, 5]
    assert set(select.SIGNALS) <= set(evidence.columns)  # a pair adds the Base-vs-SFT CKA signal
    for name in select.SIGNALS:
        assert np.isfinite(evidence[name]).all()
        norm = evidence[f"{name}_norm"]
        assert norm.min() >= 0 and norm.max() <= 1
    assert (evidence["block_influence"] > 0).all() and (evidence["block_influence"] <= 2).all()
    assert evidence.loc[evidence["selected"], "block"].tolist() == [i + 1 for i, b in enumerate(mask) if b == "1"]
    scores = evidence.attrs["mask_scores"]
    assert evidence.attrs["mask"] == mask and scores[mask] == max(v for m, v in scores.items() if m.count("1") == 2)
    # Base only, from a plain model: no CKA
    base_mask, base_ev = select.suggest_block(pair.base, TEXTS, n_segments=5, width=1, use_sft=False, progress=False)
    assert base_mask.count("1") == 1 and "cka" not in base_ev.columns
    with pytest.raises(ValueError, match="prefer"):
        select.suggest_block(pair, TEXTS, prefer="middle", progress=False)
    with pytest.raises(ValueError, match="pair"):
        select.layer_signals(pair.base, TEXTS, signals=["cka"], progress=False)


def test_block_influence_matches_a_direct_computation(pair, tokenizer):
    from mbt import trace

    signals = select.layer_signals(pair.base, TEXTS, signals=["block_influence"], batch_size=3, progress=False)
    ids = trace.encode(tokenizer, TEXTS)
    states = trace.collect_layers(pair.base, ids, batch_size=1, progress=False)
    for b in range(pair.n_layers):
        cos = torch.cat([torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=-1)
                         for x, y in zip(states[b], states[b + 1], strict=True)])
        assert signals["block_influence"][b] == pytest.approx(1 - float(cos.mean()), abs=1e-5)


def test_the_rule_picks_the_stable_or_active_block(monkeypatch):
    bumpy = np.array([9, 1, 1, 0, 0, 1, 1, 5, 8, 9], dtype=float)  # edges move, the middle is calm

    def fake(*args, signals="auto", **kwargs):
        return pd.DataFrame({"block": range(10), "layer": range(1, 11), "depth": np.arange(1, 11) / 10,
                             "block_influence": bumpy, "erank": bumpy * 3})

    monkeypatch.setattr(select, "layer_signals", fake)
    for how in select.NORMALISATIONS:
        assert select.suggest_block(None, TEXTS, normalise=how)[0] == "01100"
    ev = select.suggest_block(None, TEXTS, normalise="minmax")[1]
    assert ev["block_influence_norm"].tolist() == pytest.approx((bumpy / 9).tolist())
    ev = select.suggest_block(None, TEXTS)[1]
    assert ev["block_influence_norm"].tolist() == pytest.approx([0.944, 0.389, 0.389, 0.056, 0.056, 0.389, 0.389,
                                                                 0.667, 0.778, 0.944], abs=1e-3)
    assert select.suggest_block(None, TEXTS)[0] == "01100"
    assert select.suggest_block(None, TEXTS, prefer="active")[0] == "00011"
    assert select.suggest_block(None, TEXTS, width=1)[0] == "01000"  # blocks 2-3 vs 4-5: tie -> shallower
    assert select.suggest_block(None, TEXTS, n_segments=10, width=2)[0] == "0001100000"
    pool = ["00000", "11111", "10000", "01100", "00001"]
    mask, evidence = select.suggest_block(None, TEXTS, candidates=pool)
    assert mask == "01100" and set(evidence.attrs["mask_scores"]) == set(pool[1:])
    assert select.suggest_block(None, TEXTS, candidates=pool, prefer="active")[0] == "00001"
    with pytest.raises(ValueError, match="n_segments"):
        select.suggest_block(None, TEXTS, candidates=["0110"])


def _sweep(scores: dict[str, list[float]], metric: str = "accuracy") -> pd.DataFrame:
    rows = [{"mask": m, "seed": s, metric: v} for m, vals in scores.items() for s, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_selector_regret():
    sweep = _sweep({"00000": [0.9, 0.9], "11111": [0.4, 0.5], "10000": [0.5, 0.6], "01100": [0.2, 0.2],
                    "00001": [0.0, 0.1]})
    best = select.selector_regret("10000", sweep)
    assert best["regret"] == 0 and best["suggested_rank"] == 1 and best["best_mask"] == "10000"
    assert best["n_masks"] == 4  # "no adapter" is not a choice
    worst = select.selector_regret("00001", sweep)
    assert worst["regret"] == pytest.approx(0.55 - 0.05) and worst["suggested_rank"] == 4
    perfect = {"11111": 3.0, "10000": 4.0, "01100": 2.0, "00001": 1.0}
    assert select.selector_regret("10000", sweep, selector_scores=perfect)["spearman"] == pytest.approx(1.0)
    reverse = {m: -v for m, v in perfect.items()}
    out = select.selector_regret("10000", sweep, selector_scores=reverse)
    assert out["spearman"] == pytest.approx(-1.0) and out["n_spearman"] == 4
    assert math.isnan(select.selector_regret("10000", sweep)["spearman"])
    nll = _sweep({"11111": [0.8], "10000": [0.7], "00001": [1.3]}, metric="answer_nll")
    low = select.selector_regret("00001", nll, metric="answer_nll")
    assert low["best_mask"] == "10000" and low["regret"] == pytest.approx(0.6)
    assert select.selector_regret("10000", nll, metric="answer_nll")["regret"] == 0
    with pytest.raises(ValueError, match="not in the sweep"):
        select.selector_regret("00110", sweep)
    # evidence frames are scored per mask
    evidence = pd.DataFrame({"block": range(5), "score": [4.0, 3.0, 2.0, 1.5, 1.0]})
    assert select.score_masks(evidence, ["10000", "01100", "00000"])["01100"] == pytest.approx(2.5)
    assert select.selector_regret("10000", sweep, selector_scores=evidence)["spearman"] == pytest.approx(0.8)
