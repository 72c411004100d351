"""The training-free baselines of mbt.select: Spectrum's SNR and the data-oblivious CKA shift, graded by regret."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS, make_model

import mbt
from mbt import metrics as M
from mbt import select, trace

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_marchenko_pastur_fit_recovers_the_noise_scale_and_finds_a_spike():
    gen = torch.Generator().manual_seed(0)
    for m, n in ((400, 400), (600, 200)):
        noise = 0.3 * torch.randn(m, n, generator=gen, dtype=torch.float64)
        snr, sigma, edge, n_signal = select._snr(noise)
        assert sigma == pytest.approx(0.3, rel=0.03)
        assert edge == pytest.approx(0.3 * (math.sqrt(m) + math.sqrt(n)), rel=0.03)
        assert n_signal <= 3 and snr < 0.02  # pure noise: at most the edge's fluctuation above the bulk
        u = torch.randn(m, generator=gen, dtype=torch.float64)
        v = torch.randn(n, generator=gen, dtype=torch.float64)
        spiked = noise + 3.0 * edge * torch.outer(u / u.norm(), v / v.norm())  # one singular value far above it
        snr_s, _, edge_s, n_s = select._snr(spiked)
        sv = torch.linalg.svdvals(spiked).numpy()
        assert n_s >= 1 and sv[0] > 2 * edge_s
        assert snr_s == pytest.approx(sv[sv > edge_s].sum() / sv[sv <= edge_s].sum())
        assert snr_s > snr + 0.5 * 3.0 * edge / sv.sum()  # the spike adds its own share
    rng = np.random.default_rng(1)
    for beta in (1.0, 0.25):  # the median of the law against the median eigenvalue of a large random matrix
        w = rng.normal(size=(2000, int(2000 * beta)))
        assert select._mp_median(beta) == pytest.approx(np.median(np.linalg.eigvalsh(w.T @ w / 2000)), abs=0.005)


def test_spectrum_scores_every_block_matrix():
    model = make_model("olmo2", n_layers=4, hidden=32)
    table = select.spectrum_snr(model)
    assert set(table["block"]) == {1, 2, 3, 4}
    assert {"q", "k", "v", "o", "gate", "up", "down"} <= set(table["kind"])
    w = model.model.layers[2].self_attn.q_proj.weight
    row = table[(table["block"] == 3) & (table["kind"] == "q")].iloc[0]
    assert row["snr"] == pytest.approx(select._snr(w)[0])


def test_the_cka_shift_is_one_minus_the_cka_of_consecutive_base_layers(save_pair):
    base, sft = save_pair("olmo2", base_layers=4)
    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    frame = select.baseline_signals(pair, TEXTS)
    states = trace.collect_layers(pair.base, trace.encode(pair.tokenizer, TEXTS), progress=False)
    pooled = {layer: torch.stack([s.double().mean(0) for s in rows]) for layer, rows in states.items()}
    want = [1 - M.cka(pooled[b - 1], pooled[b]) for b in range(1, 5)]
    np.testing.assert_allclose(frame["cka_shift"], want, rtol=1e-6)
    assert frame["spectrum"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown baselines"):
        select.baseline_signals(pair, TEXTS, methods=["lisa"])


def test_a_baseline_picks_its_best_candidate_and_is_graded_like_the_selector(save_pair, monkeypatch):
    base, sft = save_pair("olmo2", base_layers=4)
    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    fixed = pd.DataFrame({"block": [1, 2, 3, 4], "layer": [1, 2, 3, 4], "depth": [0.25, 0.5, 0.75, 1.0],
                          "cka_shift": [0.1, 0.9, 0.2, 0.3]})
    monkeypatch.setattr(select, "baseline_signals", lambda *a, **k: fixed.copy())
    mask, evidence = select.suggest_baseline(pair, TEXTS, method="cka_shift", candidates=["10", "01"], n_segments=2)
    assert mask == "10" and evidence["selected"].tolist() == [True, True, False, False]
    sweep = pd.DataFrame({"mask": ["10", "10", "01", "01"], "seed": [0, 1, 0, 1], "accuracy": [0.2, 0.4, 0.5, 0.5],
                          "answer_nll": [1.0, 1.2, 0.8, 0.9]})
    table = select.regret_table({"cka_shift": (mask, evidence)}, sweep)
    assert table.set_index("metric").loc["accuracy", "regret"] == pytest.approx(0.2)
    assert table.set_index("metric").loc["answer_nll", "regret"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="method"):
        select.suggest_baseline(pair, TEXTS, method="ila", candidates=["10"], n_segments=2)
    with pytest.raises(ValueError, match="n_segments"):
        select.suggest_baseline(pair, TEXTS, method="spectrum", candidates=["100"], n_segments=2)
