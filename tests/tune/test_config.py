"""Budget-matched LoRA configurations (mbt.tune.config)."""

from __future__ import annotations

import math
import warnings

import pytest
from conftest import make_model
from peft import get_peft_model
from transformers import MistralConfig, Olmo2Config

from mbt import tune
from mbt.segments import PAPER_MASKS as DEFAULT_MASKS
from mbt.tune import budget, lora_config, segment_layers

GQA = MistralConfig(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8)

MHA = Olmo2Config(hidden_size=2048, intermediate_size=8192, num_attention_heads=16, num_key_value_heads=16)


@pytest.mark.parametrize("n_layers", [16, 10])
@pytest.mark.parametrize(("dims", "mlp"), [(None, False), (MHA, False), (GQA, False), (MHA, True), (GQA, True)],
                         ids=["units", "mha", "gqa", "mha-mlp", "gqa-mlp"])
def test_default_masks_match_the_baseline_budget(n_layers, dims, mlp):
    for mask in DEFAULT_MASKS[1:]:
        b = budget(mask, n_layers, 8, dims, mlp=mlp)
        assert abs(b["ratio"] - 1.0) <= 0.05, (mask, b)
        assert b["trainable"] == b["rank"] * b["n_layers_tuned"] * (b["baseline"] // (8 * n_layers))
    assert budget("11111", n_layers, 8, dims, mlp=mlp)["ratio"] == 1.0


def test_gqa_counts():
    b = budget("11111", 16, 8, GQA)
    # q: 4096+4096, k and v: 4096+1024 each, o: 4096+4096 -> 26,624 per block and rank
    assert b["baseline"] == 8 * 16 * 26_624
    assert tune.target_dims(GQA)["k_proj"] == (4096, 1024)


def test_alpha_over_r_is_constant_unless_paper():
    scales, alphas = set(), set()
    for mask in DEFAULT_MASKS[1:]:
        cfg = lora_config(mask, 16, rank=8)
        assert cfg.lora_alpha / cfg.r == pytest.approx(2.0)
        scales.add(round(tune.lora_scale(cfg), 12))
        rs = lora_config(mask, 16, rank=8, rslora=True)
        assert rs.use_rslora and rs.r == cfg.r
        alphas.add(rs.lora_alpha)
        assert tune.lora_scale(rs) == pytest.approx(rs.lora_alpha / math.sqrt(rs.r))
        assert cfg.rank_pattern == {} and cfg.alpha_pattern == {}
        assert sorted(cfg.target_modules) == ["k_proj", "o_proj", "q_proj", "v_proj"]
        assert cfg.layers_to_transform == segment_layers(mask, 16)
    assert scales == {2.0}
    assert len(alphas) == 1  # rsLoRA: one alpha for every mask
    assert lora_config("11111", 16, rank=8, rslora=True).lora_alpha / math.sqrt(8) == pytest.approx(2.0)
    # the authors' settings (reference/the released code): alpha fixed, scale varies
    paper = {m: lora_config(m, 16, preset="paper") for m in ("11111", "10000", "00001", "01100", "01110")}
    assert {m: c.r for m, c in paper.items()} == {"11111": 64, "10000": 341, "00001": 256, "01100": 170,
                                                   "01110": 113}
    assert {c.lora_alpha for c in paper.values()} == {128}
    assert {c.lora_dropout for c in paper.values()} == {0.05}
    assert len({round(tune.lora_scale(c), 6) for c in paper.values()}) == 5
    assert lora_config("00100", 32, preset="paper").r == 292  # 7B, 7 layers: int(2048 / 7)
    with pytest.raises(ValueError, match="standard, paper"):
        lora_config("01100", 16, preset="authors")
    with pytest.raises(ValueError, match="rsLoRA"):
        lora_config("01100", 16, preset="paper", rslora=True)


@pytest.mark.parametrize(("arch", "mask", "mlp"), [("olmo2", "00110", False), ("olmo2", "10000", True),
                                                   ("mistral", "01110", False)])
def test_peft_adapts_exactly_the_intended_modules(arch, mask, mlp):
    model = make_model(arch, n_layers=10, hidden=32)
    cfg = lora_config(mask, 10, rank=4, mlp=mlp, model_dims=model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(model, cfg)
    got = {n for n, _ in peft_model.named_modules() if n.endswith("lora_A")}
    kinds = [*tune.DEFAULT_TARGETS, *(tune.MLP_TARGETS if mlp else ())]
    want = {
        f"base_model.model.model.layers.{b}.{'mlp' if k in tune.MLP_TARGETS else 'self_attn'}.{k}.lora_A"
        for b in segment_layers(mask, 10) for k in kinds
    }
    assert got == want
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == budget(mask, 10, 4, model, mlp=mlp)["trainable"]  # GQA k/v shapes counted right
    assert all(("lora_" in n) == p.requires_grad for n, p in peft_model.named_parameters())
