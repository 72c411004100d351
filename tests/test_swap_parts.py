"""Sub-block grafts (part="mlp" / "attn") and the matched-size random control of mbt.swap."""

from __future__ import annotations

import pytest
import torch

import mbt
from mbt import swap, trace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pair(save_pair):
    base_dir, sft_dir = save_pair("olmo2", base_layers=3)
    return mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")


def _state(model):
    return {k: v.clone() for k, v in trace.unwrap(model).state_dict().items()}


@pytest.mark.parametrize(("part", "prefix"), [("mlp", ".mlp."), ("attn", ".self_attn.")])
def test_a_part_graft_copies_exactly_that_sub_module_of_the_chosen_blocks(pair, part, prefix):
    before, donor = _state(pair.base), _state(pair.sft)
    with swap.swapped(pair, [2, 3], part=part) as model:
        now = trace.unwrap(model).state_dict()
        for name, value in now.items():
            grafted = any(name.startswith(f"model.layers.{b - 1}{prefix}") for b in (2, 3))
            expected = donor[name] if grafted else before[name]
            assert torch.equal(value, expected), name
        assert any(not torch.equal(before[n], donor[n]) for n in now if prefix in n)  # something moved
    after = _state(pair.base)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_the_random_control_moves_each_tensor_as_far_as_the_graft_and_is_restored(pair):
    before, donor = _state(pair.base), _state(pair.sft)
    with swap.perturbed_like(pair.base, pair.sft, [3], part="mlp", seed=1) as model:
        now = trace.unwrap(model).state_dict()
        for name, value in now.items():
            if name.startswith("model.layers.2.mlp."):
                moved = float((value.double() - before[name].double()).norm())
                assert moved == pytest.approx(float((donor[name].double() - before[name].double()).norm()), rel=1e-5)
                assert not torch.allclose(value, donor[name])  # a random direction, not the donor's
            else:
                assert torch.equal(value, before[name]), name
    after = _state(pair.base)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_parts_are_checked(pair):
    with pytest.raises(ValueError, match="part must be one of"):
        with swap.swapped(pair, [1], part="norm"):
            pass
    with pytest.raises(ValueError, match="part must be one of"):
        with swap.perturbed_like(pair.base, pair.sft, [1], part="head"):
            pass
    block = trace.unwrap(pair.base).model.layers[0]
    with pytest.raises(ValueError, match="has no mlp module"):
        swap._part_of(torch.nn.Sequential(block.self_attn), "mlp", "block 1")
