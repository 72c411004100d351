from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS, make_model

from mbt import trace, weights
from mbt.pairs import ModelPair, PairSpec

N_LAYERS = 3


pytestmark = pytest.mark.usefixtures("one_thread")
# (0-based ModuleList index, tensor inside the block) -> perturbation scale
PERTURB = {
    (1, "mlp.down_proj.weight"): 0.01,
    (0, "self_attn.q_proj.weight"): 0.02,
    (0, "self_attn.o_proj.weight"): 0.03,
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Base, Base + known perturbations, and sharded copies of both."""
    root = tmp_path_factory.mktemp("weights")
    model = make_model("olmo2", n_layers=N_LAYERS)
    model.save_pretrained(root / "base")
    model.save_pretrained(root / "base_sharded", max_shard_size="20KB")
    expected = {}
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for (index, name), scale in PERTURB.items():
            param = model.get_parameter(f"model.layers.{index}.{name}")
            before = param.detach().clone()
            param.add_(scale * torch.randn(param.shape, generator=gen))
            # the norm of the change as stored (float32 rounding of W + P), and of P itself
            expected[(index + 1, name)] = float(torch.linalg.vector_norm(param.detach().double() - before.double()))
            expected[(index + 1, name, "base")] = float(torch.linalg.vector_norm(before.double()))
    model.save_pretrained(root / "perturbed")
    model.save_pretrained(root / "perturbed_sharded", max_shard_size="20KB")
    assert len(list((root / "perturbed_sharded").glob("*.safetensors"))) > 1
    return root, expected


def _tensor_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame.kind.isin(weights.AGGREGATE_KINDS)]


def test_a_checkpoint_against_itself_changes_nothing(checkpoints):
    root, _ = checkpoints
    frame = weights.weight_change((root / "base", root / "base"))
    assert list(frame.columns) == list(weights.COLUMNS)
    assert (frame.delta_fro == 0).all()
    assert (frame.relative.fillna(0) == 0).all()
    rows = _tensor_rows(frame)
    assert sorted(rows.block.unique()) == [1, 2, 3]
    # every block tensor of the OLMo2 block is there, once
    assert len(rows) == N_LAYERS * 11
    assert set(rows.kind) == {"q", "k", "v", "o", "gate", "up", "down", "norm"}
    np.testing.assert_allclose(frame.depth, frame.block.astype(float) / N_LAYERS)


def test_a_known_perturbation_is_found_in_its_block_and_module_only(checkpoints):
    root, expected = checkpoints
    frame = weights.weight_change((root / "base", root / "perturbed"))
    rows = _tensor_rows(frame)
    for _, row in rows.iterrows():
        key = (int(row.block), row.param)
        if key in expected:
            assert row.delta_fro == pytest.approx(expected[key], rel=1e-12)
            assert row.base_fro == pytest.approx(expected[(*key, "base")], rel=1e-12)
            assert row.relative == pytest.approx(expected[key] / expected[(*key, "base")], rel=1e-12)
        else:
            assert row.delta_fro == 0, key
    # the change is close to the perturbation's own norm (scale · sqrt(numel))
    down = rows[(rows.block == 2) & (rows.param == "mlp.down_proj.weight")].iloc[0]
    assert down.delta_fro == pytest.approx(0.01 * math.sqrt(down.numel), rel=0.1)
    assert down.kind == "down" and down.module == "mlp.down_proj"
    agg = frame[frame.kind.isin(weights.AGGREGATE_KINDS)].set_index(["block", "kind"])
    # Eq. 1 is the SUM of the q, k, v, o Frobenius norms (block 1: q and o changed)
    eq1 = expected[(1, "self_attn.q_proj.weight")] + expected[(1, "self_attn.o_proj.weight")]
    assert agg.loc[(1, "eq1"), "delta_fro"] == pytest.approx(eq1, rel=1e-12)
    assert agg.loc[(1, "eq1"), "module"] == "q+k+v+o"
    assert agg.loc[(2, "eq1"), "delta_fro"] == 0  # down_proj is not in Eq. 1
    assert agg.loc[(3, "eq1"), "delta_fro"] == 0
    # the whole-block norm is sqrt of the sum of squares
    whole = math.hypot(expected[(1, "self_attn.q_proj.weight")], expected[(1, "self_attn.o_proj.weight")])
    assert agg.loc[(1, "block"), "delta_fro"] == pytest.approx(whole, rel=1e-12)
    assert agg.loc[(2, "block_mean"), "delta_fro"] == pytest.approx(expected[(2, "mlp.down_proj.weight")] / 11)
    series = weights.block_series(frame)
    assert list(series.index) == [1, 2, 3] and series.index.name == "layer"
    assert series[1] == pytest.approx(eq1)


def test_sharded_checkpoints_and_small_chunks_give_the_same_table(checkpoints):
    root, _ = checkpoints
    plain = weights.weight_change((root / "base", root / "perturbed"))
    sharded = weights.weight_change((root / "base_sharded", root / "perturbed_sharded"))
    pd.testing.assert_frame_equal(plain, sharded)
    chunked = weights.weight_change((root / "base", root / "perturbed_sharded"), chunk_elements=100)
    pd.testing.assert_frame_equal(plain, chunked, check_exact=False, rtol=1e-12)


def test_model_pair_input_module_filter_and_other_tensors(checkpoints):
    root, expected = checkpoints
    spec = PairSpec(name="t", base=str(root / "base"), sft=str(root / "perturbed"), family="custom")
    pair = ModelPair(base=None, sft=None, tokenizer=None, spec=spec, n_layers=N_LAYERS, hidden_size=32)
    frame = weights.weight_change(pair, modules=["q", "k", "v", "o"], relative=False, include_other=True)
    assert "relative" not in frame.columns
    rows = _tensor_rows(frame)
    assert set(rows[rows.block.notna()].kind) == {"q", "k", "v", "o"}
    assert len(rows[rows.block.notna()]) == 4 * N_LAYERS
    mlp = weights.weight_change(pair, modules=["mlp"])
    assert set(_tensor_rows(mlp).module) == {"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}
    assert set(rows[rows.block.isna()].kind) == {"embed", "final_norm", "lm_head"}
    assert (rows[rows.block.isna()].delta_fro == 0).all()
    eq1 = frame[frame.kind == "eq1"].set_index("block").delta_fro
    assert eq1[1] == pytest.approx(expected[(1, "self_attn.q_proj.weight")] + expected[(1, "self_attn.o_proj.weight")])


def test_unknown_hub_id_is_not_downloaded():
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        weights.checkpoint_folder("no-such-org/no-such-model-mbt")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("self_attn.q_proj", "q"), ("self_attn.k_proj", "k"), ("self_attn.v_proj", "v"), ("self_attn.o_proj", "o"),
        ("mlp.gate_proj", "gate"), ("mlp.up_proj", "up"), ("mlp.down_proj", "down"),
        ("self_attn.q_norm", "norm"), ("post_feedforward_layernorm", "norm"), ("input_layernorm", "norm"),
        ("attention.query_key_value", "qkv"), ("attention.dense", "o"), ("mlp.dense_h_to_4h", "up"),
        ("mlp.dense_4h_to_h", "down"), ("attn.c_attn", "qkv"), ("attn.c_proj", "o"), ("mlp.c_proj", "down"),
        ("mlp.c_fc", "up"), ("ln_1", "norm"), ("rotary_emb", "other"),
    ],
)
def test_module_kinds(name, kind):
    assert weights.module_kind(name) == kind


# ---------------------------------------------------------------------------------------------- own fine-tune


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return trace.wrap(make_model("olmo2", n_layers=2), tokenizer)


def test_finetune_moves_fp32_master_weights_and_leaves_the_model_alone(tiny, tokenizer):
    module = trace.unwrap(tiny)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    frame = weights.finetune_weight_change(tiny, tokenizer, TEXTS, steps=3, lr=1e-3, batch_size=4, max_length=32,
                                           progress=False)
    assert list(frame.columns) == [*weights.COLUMNS, "grad_norm"]
    rows = _tensor_rows(frame)
    assert len(rows) == 2 * 11 and sorted(rows.block.unique()) == [1, 2]
    assert (rows.delta_fro > 0).all()
    assert (rows.grad_norm > 0).all()
    agg = frame[frame.kind.isin(weights.AGGREGATE_KINDS)]
    assert len(agg) == 2 * 3 and (agg.delta_fro > 0).all() and (agg.grad_norm > 0).all()
    assert len(frame.attrs["losses"]) == 3
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_finetune_of_a_bf16_model_is_not_lost_to_rounding(tokenizer):
    model = trace.wrap(make_model("olmo2", n_layers=2).to(torch.bfloat16), tokenizer)
    frame = weights.finetune_weight_change(model, tokenizer, TEXTS[:4], steps=1, lr=2e-5, batch_size=4,
                                           max_length=16, progress=False)
    rows = _tensor_rows(frame)
    # one AdamW step moves every element by ~lr: far below bf16 spacing, visible in fp32 masters
    assert (rows.delta_fro > 0).all()
    assert (rows.delta_fro / np.sqrt(rows.numel.astype(float)) < 3e-5).all()


def test_zero_steps_change_nothing(tiny, tokenizer):
    frame = weights.finetune_weight_change(tiny, tokenizer, TEXTS, steps=0, progress=False)
    assert (frame.delta_fro == 0).all()
    assert frame.grad_norm.isna().all()


def test_padding_does_not_contribute_to_the_loss(tiny, tokenizer):
    module = weights._fp32_copy(trace.unwrap(tiny))
    ids = trace.encode(tokenizer, TEXTS[:3], max_length=32)
    grads = []
    for extra in (0, 7):
        module.zero_grad()
        loss = weights._lm_loss(module, ids, tokenizer.pad_token_id, extra_padding=extra)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in module.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)
    # the oracle: loss over real tokens only, sample by sample without any padding
    with torch.no_grad():
        total, count = 0.0, 0
        for x in ids:
            logits = module(input_ids=torch.tensor([x])).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits, torch.tensor(x[1:]), reduction="sum"))
            count += len(x) - 1
        loss = weights._lm_loss(module, ids, tokenizer.pad_token_id, extra_padding=5)
    assert float(loss) == pytest.approx(total / count, rel=1e-5)
