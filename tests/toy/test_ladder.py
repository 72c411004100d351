"""The SFT-intensity ladder: rungs reuse the Base bit for bit, differ only in SFT strength, and are pairs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

import mbt
from mbt import pairs, toy
from mbt.toy import ladder
from mbt.toy import quality as toy_quality

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MBT_CACHE", str(root))
        base_build = toy.build(size="tiny", progress=False)
        rung = ladder.build_rung(6, size="tiny", progress=False)
        yield root, base_build, rung


def _weights(folder, which):
    return load_file(str(folder / which / "model.safetensors"))


def test_rung_config_scales_only_the_sft():
    tiny = toy.SIZES["tiny"]
    cfg = ladder.rung_config(6, "tiny")
    assert cfg.sft_steps == 6 and cfg.sft_warmup == max(1, round(tiny.sft_warmup * 6 / tiny.sft_steps))
    changed = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(tiny, f.name)}
    assert changed <= {"name", "sft_steps", "sft_warmup"}
    assert ladder.rung_config(tiny.sft_steps, "tiny") is tiny
    for bad in (0, tiny.sft_steps + 1):
        with pytest.raises(ValueError, match="SFT steps must be in"):
            ladder.rung_config(bad, "tiny")
    assert toy.settings_hash(size=cfg) != toy.settings_hash(size="tiny")


def test_a_rung_keeps_the_base_and_weakens_the_sft(cache):
    _, base_build, rung = cache
    assert toy.check_build(rung) is None and rung != base_build
    same_base, base_sft, rung_sft = (_weights(base_build, "base"), _weights(base_build, "sft"),
                                     _weights(rung, "sft"))
    rung_base = _weights(rung, "base")
    assert all(torch.equal(same_base[k], rung_base[k]) for k in same_base)
    moved_rung = sum(float((rung_sft[k] - same_base[k]).norm()) for k in same_base)
    moved_full = sum(float((base_sft[k] - same_base[k]).norm()) for k in same_base)
    assert 0 < moved_rung < moved_full  # fewer steps move the weights less
    manifest = json.loads((rung / "manifest.json").read_text())
    lad = manifest["ladder"]
    assert lad["sft_steps"] == 6 and lad["base_settings_hash"] == json.loads(
        (base_build / "manifest.json").read_text())["settings_hash"]
    tiny = toy.SIZES["tiny"]
    assert lad["pretrain_tokens"] == tiny.pt_steps * tiny.pt_batch * tiny.seq_len
    assert lad["ratio"] == pytest.approx(lad["sft_tokens"] / lad["pretrain_tokens"])
    full = json.loads((base_build / "manifest.json").read_text())["data"]["sft_compute"]
    assert 0 < lad["ratio"] < full["ratio"]
    assert ladder.build_rung(6, size="tiny", progress=False) == rung  # reused, not rebuilt


def test_a_full_length_rung_reproduces_the_default_sft_bit_for_bit(cache, tmp_path, monkeypatch):
    _, base_build, _ = cache
    tiny = toy.SIZES["tiny"]
    measured = []  # Base quality measurements during the rung build
    real = toy_quality.base_quality
    monkeypatch.setattr(toy_quality, "base_quality", lambda *a, **k: measured.append(1) or real(*a, **k))
    out = tmp_path / "full"
    ladder._build_rung_into(out, base_build, cfg=tiny, seed=0, variant="toy", progress=False,
                            settings_hash=toy.settings_hash(size="tiny"))
    expected, got = _weights(base_build, "sft"), _weights(out, "sft")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    # the Base's quality is taken over from its build, and a rung that measures everything itself agrees
    assert measured == []
    stored = json.loads((base_build / "manifest.json").read_text())["quality"]
    assert json.loads((out / "manifest.json").read_text())["quality"] == stored
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with mbt.cpu.pinned_threads(tiny.threads):  # measured afresh on the rung's Base: the same numbers
        base = AutoModelForCausalLM.from_pretrained(out / "base", dtype=torch.float32).eval()
        fresh = real(base, AutoTokenizer.from_pretrained(out / "base"), tiny, 0, False)
    assert fresh == toy_quality.base_part(stored, tiny)
    manifest = json.loads((base_build / "manifest.json").read_text())
    assert ladder._known_base_quality(manifest, tiny, 0) == fresh
    for cfg, seed in ((dataclasses.replace(tiny, eval_batch=tiny.eval_batch + 1), 0),
                      (dataclasses.replace(tiny, threads=tiny.threads + 1), 0), (tiny, 1)):
        assert ladder._known_base_quality(manifest, cfg, seed) is None  # measured again


def test_the_ladder_is_registered_as_pairs(monkeypatch, tmp_path):
    assert "toy" in ladder.LADDER and all(name in mbt.PAIRS for name in ladder.LADDER)
    spec = mbt.PAIRS["toy-sft25"]
    assert spec.source == "toy" and spec.toy_sft_steps == 25
    built = []
    monkeypatch.setattr(pairs.toy, "ladder_rung",
                        lambda steps, sft_seed=0, **kw: built.append((steps, sft_seed)) or tmp_path)
    resolved = pairs.resolve_toy(spec, progress=False)
    assert built == [(25, 0)] and resolved.base == str(tmp_path / "base") and resolved.sft == str(tmp_path / "sft")
