"""Ladder replicates with another SFT seed, and equal-step rungs: the same Base, another SFT, their own folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import mbt
from mbt import identity, pairs, toy
from mbt.toy import ladder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder-seeds-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MBT_CACHE", str(root))
        base_build = toy.build(size="tiny", progress=False)
        rungs = {(seed, update): ladder.build_rung(6, size="tiny", sft_seed=seed, update=update, progress=False)
                 for seed, update in ((0, "standard"), (1, "standard"), (0, "equal_step"))}
        yield base_build, rungs


def _weights(folder, which):
    return load_file(str(folder / which / "model.safetensors"))


def test_defaults_keep_their_hash_and_folder():
    tiny = toy.SIZES["tiny"]
    h = toy.settings_hash(seed=0, size=tiny)
    assert toy.settings_hash(seed=0, size=tiny, sft_seed=0, update="standard") == h
    assert len({h, toy.settings_hash(seed=0, size=tiny, sft_seed=1),
                toy.settings_hash(seed=0, size=tiny, update="equal_step")}) == 3
    cfg = ladder.rung_config(6, "tiny")
    assert ladder.rung_dir(6, size="tiny") == toy.default_dir(size=cfg)
    assert "sftseed1" in ladder.rung_dir(6, size="tiny", sft_seed=1).name
    assert "-equal-" in ladder.rung_dir(6, size="tiny", update="equal_step").name
    assert "sft12" in ladder.rung_dir(tiny.sft_steps, size="tiny", sft_seed=1).name  # not the Base build's folder
    with pytest.raises(ValueError, match="update rule"):
        ladder.build_rung(6, size="tiny", update="equal")
    with pytest.raises(ValueError, match="sft_seed"):
        ladder.build_rung(6, size="tiny", sft_seed=-1)


def test_another_sft_seed_keeps_the_base_and_the_data_and_changes_the_sft(cache):
    base_build, rungs = cache
    same_base = _weights(base_build, "base")
    for folder in rungs.values():
        assert toy.check_build(folder) is None
        assert all(torch.equal(same_base[k], v) for k, v in _weights(folder, "base").items())
    a, b, e = (_weights(rungs[key], "sft") for key in ((0, "standard"), (1, "standard"), (0, "equal_step")))
    assert any(not torch.equal(a[k], b[k]) for k in a) and any(not torch.equal(a[k], e[k]) for k in a)
    m = json.loads((rungs[(1, "standard")] / "manifest.json").read_text())
    assert m["ladder"]["sft_seed"] == 1 and m["sft_seed"] == 1 and m["ladder"]["update"] == "standard"
    assert (rungs[(1, "standard")] / "data" / "sft_math.jsonl").read_text() == (
        rungs[(0, "standard")] / "data" / "sft_math.jsonl").read_text()  # the same SFT data, another order
    m = json.loads((rungs[(0, "equal_step")] / "manifest.json").read_text())
    assert m["sft_update"] == "equal_step" and m["quality"]["toy_math"]["sft_0shot"] is None  # no generation
    assert m["quality"]["toy_math"]["sft_answer_nll"] > 0
    assert ladder.build_rung(6, size="tiny", sft_seed=1, progress=False) == rungs[(1, "standard")]  # reused


def test_the_replicates_are_registered_pairs(monkeypatch, tmp_path):
    names = ladder.replicate(1)
    assert names == ("toy-sft10-seed1", "toy-sft25-seed1", "toy-sft60-seed1", "toy-sft150-seed1", "toy-seed1")
    assert ladder.LADDER == ladder.replicate(0) + ladder.replicate(1) and ladder.LADDER[4] == "toy"
    assert all(mbt.PAIRS[n].toy_sft_seed == 1 for n in names)
    built = []
    monkeypatch.setattr(ladder, "build_rung", lambda steps, **kw: built.append((steps, kw.get("sft_seed")))
                        or tmp_path)
    full = toy.SIZES["default"].sft_steps
    for name in ("toy-sft25", "toy-sft25-seed1", "toy-seed1"):
        pairs.resolve_toy(mbt.PAIRS[name], progress=False)
    # every run of the ladder has its own SFT data order (the default pair keeps the Base build's)
    assert built == [(25, 25), (25, 1025), (full, 1000 + full)]
    orders = [ladder.data_order(k, r) for r in ladder.LADDER_SFT_SEEDS for k in (*ladder.LADDER_STEPS, None)]
    assert orders.count(None) == 1 and len(set(orders)) == len(orders)
    plain, seeded = identity.pair_source_key("toy-sft25"), identity.pair_source_key("toy-sft25-seed1")
    assert "toy_sft_seed" not in plain and plain["toy"] != seeded["toy"]
