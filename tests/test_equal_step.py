"""The equal-step control (mbt.equal_step): the fine-tune, the depth signatures and the runs, on tiny models."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import mbt
from mbt import equal_step

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = [f"Question: Tom has {a} apples and buys {b} more. How many apples?\nAnswer: {a} + {b} = {a + b}.\n#### {a + b}"
         for a, b in ((3, 4), (5, 2), (7, 1), (2, 9), (6, 6), (8, 3))]
RECIPE = equal_step.SftRecipe(lr=1e-3, batch_size=4, n_train=16, warmup=0.0)


@pytest.fixture(scope="module")
def folders(save_pair):
    return save_pair("olmo2", base_layers=4)


def _block_changes(base_dir, sft_dir, n_layers):
    a, b = load_file(str(base_dir / "model.safetensors")), load_file(str(sft_dir / "model.safetensors"))
    rel, deltas = [], []
    for layer in range(n_layers):
        keys = sorted(k for k in a if k.startswith(f"model.layers.{layer}."))
        delta = torch.cat([(b[k].double() - a[k].double()).reshape(-1) for k in keys])
        norm = torch.cat([a[k].double().reshape(-1) for k in keys]).norm()
        rel.append(float(delta.norm() / norm))
        deltas.append(delta)
    return np.array(rel), deltas


def test_one_equal_step_moves_every_block_by_the_same_relative_amount(folders, tmp_path):
    base, _ = folders
    std = equal_step.sft_checkpoint(str(base), "toy-math", tmp_path / "std", steps=1, recipe=RECIPE, device="cpu")
    eq = equal_step.sft_checkpoint(str(base), "toy-math", tmp_path / "eq", steps=1, update="equal_step",
                                   recipe=RECIPE, device="cpu")
    r_std, d_std = _block_changes(base, std, 4)
    r_eq, d_eq = _block_changes(base, eq, 4)
    assert (r_std.max() - r_std.min()) / r_std.mean() > 1e-3  # standard SFT moves blocks unequally
    assert (r_eq.max() - r_eq.min()) / r_eq.mean() < 1e-5  # equal-step: the same, up to float32 rounding
    assert r_eq.mean() == pytest.approx(r_std.mean(), rel=1e-4)  # the target is the optimiser's mean
    for a, b in zip(d_std, d_eq, strict=True):  # same batches, same direction: only the length changed
        assert float(a @ b / (a.norm() * b.norm())) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="exists"):
        equal_step.sft_checkpoint(str(base), "toy-math", tmp_path / "std", steps=1, recipe=RECIPE)
    with pytest.raises(ValueError, match="update rule"):
        equal_step.sft_checkpoint(str(base), "toy-math", tmp_path / "x", steps=1, update="equal")
    with pytest.raises(ValueError, match="invalid SFT recipe"):
        equal_step.SftRecipe(lr=0.0)


def test_depth_signatures_are_the_librarys_measurements(folders):
    base, sft = folders
    sig = equal_step.depth_signatures(base, sft, TEXTS, cache=False)
    assert set(sig["signature"]) == {"eq1", "cka", "shift", "lens"}
    eq1 = mbt.weights.block_series(mbt.weights.weight_change((base, sft)), kind="eq1", column="relative")
    np.testing.assert_allclose(sig[sig["signature"] == "eq1"].set_index("layer")["value"], eq1.to_numpy())
    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    frame = mbt.analyze(pair, TEXTS, metrics=["cka", "relative_mean_shift"], n_token=0, cache=False, progress=False)
    for name, metric in (("cka", "cka"), ("shift", "relative_mean_shift")):
        want = frame[(frame["model"] == "pair") & (frame["metric"] == metric)].set_index("layer")["value"]
        got = sig[sig["signature"] == name].set_index("layer")["value"]
        np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy(), rtol=1e-9)
    lens = mbt.probe.logit_lens(pair.sft, TEXTS, positions="answer", n_bootstrap=0, progress=False)
    acc = lens[lens["metric"] == "top1_acc"].set_index("layer")["value"]
    got = sig[sig["signature"] == "lens"].set_index("layer")["value"]
    np.testing.assert_allclose(got.to_numpy(), acc.reindex(got.index).to_numpy())


def test_runs_cover_every_rule_length_and_seed_and_are_stored(folders, monkeypatch):
    base, sft = folders
    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    runs = equal_step.equal_step_runs(pair, TEXTS, steps=[2], seeds=[0, 1], task="toy-math", recipe=RECIPE)
    assert set(map(tuple, runs[["rule", "steps", "seed"]].drop_duplicates().to_numpy().tolist())) == {
        ("standard", 2, 0), ("standard", 2, 1), ("equal_step", 2, 0), ("equal_step", 2, 1)}
    assert np.isfinite(runs["value"]).all()
    eq1 = runs[runs["signature"] == "eq1"].pivot_table(index=["rule", "seed"], columns="layer", values="value")
    assert not np.allclose(eq1.loc[("standard", 0)], eq1.loc[("standard", 1)])  # seeds order the data differently
    monkeypatch.setattr(equal_step, "sft_checkpoint", lambda *a, **k: pytest.fail("trained again"))
    again = equal_step.equal_step_runs(pair, TEXTS, steps=[2], seeds=[0, 1], task="toy-math", recipe=RECIPE)
    pd.testing.assert_frame_equal(runs, again)


def test_bad_runs_are_refused_before_anything_is_trained(folders, monkeypatch):
    base, sft = folders
    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    monkeypatch.setattr(equal_step, "sft_checkpoint", lambda *a, **k: pytest.fail("trained"))
    for kwargs, match in (({"steps": [0]}, "steps"), ({"seeds": [0, 0]}, "seeds"), ({"rules": ["adam"]}, "update rule"),
                          ({"steps": []}, "steps")):
        with pytest.raises(ValueError, match=match):
            equal_step.equal_step_runs(pair, TEXTS, **kwargs)
    with pytest.raises(ValueError, match="at least 4 texts"):
        equal_step.equal_step_runs(pair, TEXTS[:2])
    with pytest.raises(ValueError, match="ModelPair"):
        equal_step.equal_step_runs("toy", TEXTS)


def test_a_toy_pair_takes_its_runs_from_the_ladder(folders, monkeypatch, tmp_path):
    base, sft = folders
    build = tmp_path / "rung"
    shutil.copytree(base, build / "base")
    shutil.copytree(sft, build / "sft")
    calls = []

    def fake_rung(steps, sft_seed, *, update, variant, progress):
        calls.append((steps, sft_seed, update, variant))
        return build

    pair = mbt.load_pair(base=str(base), sft=str(sft), progress=False)
    monkeypatch.setattr(equal_step, "_is_toy", lambda p: True)
    monkeypatch.setattr(equal_step.toy, "ladder_rung", fake_rung)
    monkeypatch.setattr(equal_step, "sft_checkpoint", lambda *a, **k: pytest.fail("a toy pair is not trained here"))
    runs = equal_step.equal_step_runs(pair, TEXTS, steps=[25], seeds=[0, 1], cache=False)
    assert sorted(calls) == [(25, 0, "equal_step", "toy"), (25, 0, "standard", "toy"), (25, 1, "equal_step", "toy"),
                             (25, 1, "standard", "toy")]
    assert set(runs["rule"]) == {"standard", "equal_step"}
    with pytest.raises(ValueError, match="toy SFT steps"):
        equal_step.equal_step_runs(pair, TEXTS, steps=[301])
    assert math.isfinite(runs["value"].sum())
