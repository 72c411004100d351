from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TEXTS, make_model

import mbt
from mbt import swap, trace
from mbt.pairs import ModelPair, PairSpec

L = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(save_pair):
    base_dir, sft_dir = save_pair("olmo2", base_layers=L)
    return mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")


@pytest.fixture(scope="module")
def batch(tokenizer):
    ids = trace.encode(tokenizer, TEXTS, max_length=32)
    input_ids, mask, positions = trace.collate(ids, tokenizer.pad_token_id)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": positions}


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return trace.unwrap(model)(**batch).logits


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trace.unwrap(model).state_dict().items()}


def _assert_bit_identical(model, before) -> None:
    after = trace.unwrap(model).state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_swapping_everything_reproduces_the_donor_exactly(pair, batch):
    base, sft = _logits(pair.base, batch), _logits(pair.sft, batch)
    assert not torch.equal(base, sft)
    everything = range(1, L + 1)
    with swap.swapped(pair, everything, head="donor", embed="donor") as model:
        assert model is pair.base
        assert torch.equal(_logits(model, batch), sft)
    with swap.swapped(pair, everything, into="sft", head="donor", embed="donor") as model:
        assert model is pair.sft
        assert torch.equal(_logits(model, batch), base)
    # afterwards both models compute exactly what they computed before
    assert torch.equal(_logits(pair.base, batch), base)
    assert torch.equal(_logits(pair.sft, batch), sft)


def test_blocks_and_head_reproduce_an_sft_that_kept_the_base_embeddings(tokenizer, batch):
    base = make_model("olmo2", n_layers=L, seed=0)
    sft = make_model("olmo2", n_layers=L, seed=0)
    with torch.no_grad():
        for name, param in sft.named_parameters():
            if "embed_tokens" not in name:
                param.add_(0.05 * torch.randn_like(param))
    spec = PairSpec(name="t", base="b", sft="s", family="custom")
    p = ModelPair(trace.wrap(base, tokenizer), trace.wrap(sft, tokenizer), tokenizer, spec, L, 32)
    target = _logits(p.sft, batch)
    with swap.swapped(p, list(range(1, L + 1)), head="donor") as model:
        assert torch.equal(_logits(model, batch), target)
    with swap.swapped(p, list(range(1, L + 1)), head="receiver") as model:
        assert not torch.equal(_logits(model, batch), target)  # the head matters


def test_swapping_nothing_reproduces_the_receiver(pair, batch):
    base = _logits(pair.base, batch)
    with swap.swapped(pair, []) as model:
        assert torch.equal(_logits(model, batch), base)


def test_only_the_requested_blocks_change_and_everything_is_restored(pair, batch):
    before = _state(pair.base)
    sft = _state(pair.sft)
    with swap.swapped(pair, [2], head="donor") as model:
        now = trace.unwrap(model).state_dict()
        for key, value in now.items():
            donor_side = key.startswith("model.layers.1.") or key.startswith(("model.norm.", "lm_head."))
            assert torch.equal(value, sft[key] if donor_side else before[key]), key
    _assert_bit_identical(pair.base, before)


def test_restored_after_an_exception(pair, batch):
    before = _state(pair.base)
    with pytest.raises(RuntimeError, match="boom"):
        with swap.swapped(pair, [1, 3], head="donor", embed="donor") as model:
            assert not torch.equal(trace.unwrap(model).model.layers[0].mlp.up_proj.weight,
                                   before["model.layers.0.mlp.up_proj.weight"])
            raise RuntimeError("boom")
    _assert_bit_identical(pair.base, before)


def test_the_nnsight_wrapper_sees_the_swapped_weights(pair, tokenizer):
    ids = trace.encode(tokenizer, TEXTS[:3], max_length=32)
    sft_states = trace.collect_layers(pair.sft, ids, layers=[L], progress=False)[L]
    with swap.swapped(pair, range(1, L + 1), embed="donor") as model:
        swapped_states = trace.collect_layers(model, ids, layers=[L], progress=False)[L]
    base_states = trace.collect_layers(pair.base, ids, layers=[L], progress=False)[L]
    for got, want, orig in zip(swapped_states, sft_states, base_states, strict=True):
        assert torch.equal(got, want)
        assert not torch.allclose(got, orig)


def test_invalid_requests_name_the_valid_range(pair):
    for bad in ([0], [L + 1], 0):
        with pytest.raises(ValueError, match=rf"valid blocks are 1\.\.{L}"):
            with swap.swapped(pair, bad):
                pass
    with pytest.raises(ValueError, match="into"):
        with swap.swapped(pair, [1], into="both"):
            pass
    with pytest.raises(ValueError, match="head"):
        with swap.swapped(pair, [1], head="sft"):
            pass


def test_segment_blocks():
    # the authors' OLMo2-13B default: 5 segments, last 2 layers each (their 0-based {6,7} is our {7,8})
    assert swap.segment_blocks(40, 5, depth=2) == [[7, 8], [15, 16], [23, 24], [31, 32], [39, 40]]
    assert swap.segment_blocks(7, 3) == [[1, 2], [3, 4], [5, 6, 7]]
    segs = swap.segment_blocks(16, 5)
    assert sum(segs, []) == list(range(1, 17))
    assert swap.segment_blocks(7, 3, depth=5) == [[1, 2], [3, 4], [5, 6, 7]]
    with pytest.raises(ValueError, match="n_segments"):
        swap.segment_blocks(3, 4)
    with pytest.raises(ValueError, match="depth"):
        swap.segment_blocks(8, 2, depth=0)


def test_token_accuracy_is_per_text_teacher_forced_accuracy(pair, tokenizer):
    score = swap.token_accuracy(tokenizer, TEXTS, batch_size=3, max_length=32)(pair.base)
    ids = trace.encode(tokenizer, TEXTS, max_length=32)
    module = trace.unwrap(pair.base)
    for i, x in enumerate(ids):
        with torch.no_grad():
            logits = module(input_ids=torch.tensor([x])).logits[0]
        expected = float((logits[:-1].argmax(-1) == torch.tensor(x[1:])).double().mean()) if len(x) > 1 else np.nan
        np.testing.assert_allclose(score[i], expected)
    other = swap.token_accuracy(tokenizer, TEXTS, batch_size=10, max_length=32)(pair.base)
    np.testing.assert_array_equal(score, other)


def test_sweep_rows_placebo_and_paired_differences(pair, tokenizer):
    score_fn = swap.token_accuracy(tokenizer, TEXTS, batch_size=10, max_length=32)
    frame = swap.swap_sweep(pair, score_fn, n_segments=3, n_bootstrap=200, progress=False)
    assert list(frame.columns) == list(swap.COLUMNS)
    for direction, recv, donor in (("sft→base", pair.base, pair.sft), ("base→sft", pair.sft, pair.base)):
        part = frame[frame.direction == direction]
        kinds = part.kind.value_counts().to_dict()
        assert kinds == {"receiver": 1, "donor": 1, "head_only": 1, "swap": 6, "placebo": 3}
        receiver_row = part[part.kind == "receiver"].iloc[0]
        assert receiver_row.score == pytest.approx(np.nanmean(score_fn(recv)))
        assert receiver_row["diff"] == 0
        donor_row = part[part.kind == "donor"].iloc[0]
        assert donor_row.score == pytest.approx(np.nanmean(score_fn(donor)))
        assert donor_row["diff"] == pytest.approx(np.nanmean(score_fn(donor) - score_fn(recv)))
        placebo = part[part.kind == "placebo"]
        assert (placebo["diff"] == 0).all() and (placebo.diff_ci_width == 0).all() and not placebo.significant.any()
        assert (placebo.score == receiver_row.score).all()
        # a swap row equals scoring under `swapped` by hand
        row = part[(part.kind == "swap") & (part["head"] == "donor") & (part.segment == 1)].iloc[0]
        assert row.blocks == (2,)
        with swap.swapped(pair, [2], into="base" if recv is pair.base else "sft", head="donor") as model:
            assert row.score == pytest.approx(np.nanmean(score_fn(model)))
        swaps = part[part.kind == "swap"]
        assert (swaps.diff_ci_low <= swaps["diff"] + 1e-12).all()
        assert (swaps["diff"] <= swaps.diff_ci_high + 1e-12).all()
        assert (swaps.diff_ci_width >= 0).all()


def test_sweep_last_k_blocks_and_score_length_check(pair):
    sizes = iter([4, 3, 3])

    def score_fn(model):
        return np.zeros(next(sizes))

    with pytest.raises(ValueError, match="expected 4"):
        swap.swap_sweep(pair, score_fn, n_segments=1, depth=1, directions=("base",), heads=("receiver",),
                        placebo=False, n_bootstrap=0, progress=False)
    frame = swap.swap_sweep(pair, lambda m: np.ones(5), n_segments=1, depth=1, directions=("sft",),
                            heads=("receiver",), placebo=False, n_bootstrap=0, progress=False)
    assert frame[frame.kind == "swap"].blocks.tolist() == [(3,)]
    assert frame.direction.unique().tolist() == ["base→sft"]
