"""The LoRA knobs in one frozen object (mbt.tune.settings.LoraSettings), shared by config, training and sweeps."""

from __future__ import annotations

import dataclasses

import pytest

from mbt import tune
from mbt.tune.settings import DEFAULT_TARGETS, LORA_PRESETS, LoraSettings


def test_defaults_and_changes():
    s = LoraSettings()
    assert (s.preset, s.steps, s.batch_size, s.targets) == ("standard", 240, 32, DEFAULT_TARGETS)
    t = LoraSettings.of(s, steps=60, preset="paper", targets=["q_proj"])
    assert (t.steps, t.preset, t.targets) == (60, "paper", ("q_proj",)) and s.steps == 240  # s is unchanged
    assert LoraSettings.of(steps=5) == LoraSettings(steps=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.steps = 1  # type: ignore[misc]
    assert t.as_dict()["targets"] == ["q_proj"] and set(t.adapter()) == {"rank", "preset", "targets", "mlp",
                                                                          "alpha_over_r", "rslora", "dropout"}


@pytest.mark.parametrize(("change", "match"), [
    ({"preset": "fancy"}, "unknown LoRA preset 'fancy'; choices: standard, paper"),
    ({"steps": 0}, "steps must be a whole number >= 1"),
    ({"rank": 2.5}, "rank must be a whole number >= 1"),
    ({"batch_size": True}, "batch_size must be a whole number"),
    ({"micro_batch_size": 64}, r"micro_batch_size must be in 1\.\.32"),
    ({"loss_on": "prompt"}, "loss_on must be 'answer' or 'all'"),
    ({"schedule": "step"}, "schedule must be one of linear, cosine, constant"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"warmup": -1}, "warmup must be >= 0"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"targets": "q_proj"}, "targets must be a list"),
    ({"targets": ()}, "no target modules"),
])
def test_bad_values_are_refused_with_the_field_named(change, match):
    with pytest.raises(ValueError, match=match):
        LoraSettings.of(**change)


def test_unknown_fields_list_the_valid_ones_and_reach_every_user():
    with pytest.raises(ValueError, match=r"unknown LoRA setting\(s\) \['stepz'\]; valid: rank, preset"):
        LoraSettings.of(stepz=3)
    with pytest.raises(ValueError, match="unknown LoRA setting"):
        tune.lora_config("11111", 10, stepz=3)
    with pytest.raises(ValueError, match="unknown LoRA setting"):
        tune.train_lora("/no/such/folder", None, "11111", stepz=3)  # refused before anything loads
    with pytest.raises(TypeError, match="must be a LoraSettings"):
        LoraSettings.of({"steps": 3})  # type: ignore[arg-type]
    assert LORA_PRESETS == ("standard", "paper")


def test_the_config_reads_the_adapter_fields_of_the_settings():
    paper = tune.lora_config("01110", 10, settings=LoraSettings(preset="paper"))
    assert paper.lora_alpha == 128 and paper.lora_dropout == pytest.approx(0.05)
    same = tune.lora_config("01110", 10, preset="paper")  # keyword changes give the same config
    assert (same.r, same.lora_alpha, same.layers_to_transform) == (paper.r, paper.lora_alpha, paper.layers_to_transform)
    standard = tune.lora_config("01110", 10, rank=4, alpha_over_r=3.0)
    assert standard.lora_alpha == pytest.approx(3.0 * standard.r)
