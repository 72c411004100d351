"""The equal-step update rule (mbt.train.EqualStep) and the loop's step hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_model

from mbt import train
from mbt.checks import NonFiniteError


def _blocks(model):
    return model.model.layers


def _relative_updates(before, model):
    out = []
    for old, block in zip(before, _blocks(model), strict=True):
        new = [p.detach() for p in block.parameters()]
        delta = math.sqrt(sum(float((p.double() - o.double()).pow(2).sum()) for p, o in zip(new, old, strict=True)))
        norm = math.sqrt(sum(float(o.double().pow(2).sum()) for o in old))
        out.append(delta / norm)
    return np.array(out)


def _train(model, tokenizer, *, rule: train.EqualStep | None, steps: int = 4, lr: float = 1e-2):
    ids = tokenizer(["the quick brown fox jumps over the lazy dog", "Question: Tom has 3 apples. Answer: 3"],
                    return_tensors="pt", padding=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = train.scheduler(optimizer, steps, 0, "constant")
    seen = []

    def step_loss(step):
        out = model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"], labels=ids["input_ids"])
        out.loss.backward()
        return float(out.loss.detach())

    def before(step):
        seen.append([[p.detach().clone() for p in b.parameters()] for b in _blocks(model)])
        if rule is not None:
            rule.snapshot(step)

    per_step = []

    def after(step):
        if rule is not None:
            rule.rescale(step)
        per_step.append(_relative_updates(seen[-1], model))

    model.train()
    train.run_steps(step_loss, optimizer, schedule, steps=steps, before_step=before, after_step=after, progress=False)
    return per_step


def test_equal_step_makes_every_blocks_relative_update_equal_to_1e6(tokenizer):
    model = make_model("olmo2", n_layers=4, hidden=32, seed=3)
    rule = train.EqualStep.of_blocks(_blocks(model))
    measured = _train(model, tokenizer, rule=rule)
    for step, (ratios, recorded) in enumerate(zip(measured, rule.history, strict=True)):
        assert ratios.min() > 1e-4, "the test needs real updates"
        spread = (ratios.max() - ratios.min()) / ratios.mean()
        assert spread < 1e-6, (step, ratios)
        np.testing.assert_allclose(ratios, recorded, rtol=1e-9)


def test_the_target_is_the_mean_relative_update_and_directions_are_kept(tokenizer):
    """The rescaled update of every block is the optimiser's own, times r̄ / r_l (same direction)."""
    torch.manual_seed(0)
    blocks = [torch.nn.Linear(6, 6), torch.nn.Linear(6, 6), torch.nn.Linear(6, 6)]
    rule = train.EqualStep.of_blocks(blocks)
    rule.snapshot()
    old = [[p.detach().clone() for p in b.parameters()] for b in blocks]
    deltas = []
    with torch.no_grad():
        for i, b in enumerate(blocks):  # updates of very different sizes: 1e-3, 1e-2, 1e-1 of the weights
            d = [(10.0 ** (i - 3)) * p.detach().clone() for p in b.parameters()]
            for p, x in zip(b.parameters(), d, strict=True):
                p.add_(x)
            deltas.append(d)
    raw = [10.0 ** (i - 3) for i in range(3)]
    after = rule.rescale()
    target = sum(raw) / 3
    np.testing.assert_allclose(after, [target] * 3, rtol=1e-6)
    for b, o, d, r in zip(blocks, old, deltas, raw, strict=True):
        for p, p0, dd in zip(b.parameters(), o, d, strict=True):
            torch.testing.assert_close(p.detach() - p0, dd * (target / r), rtol=1e-4, atol=1e-7)


def test_standard_training_is_untouched_and_uneven(tokenizer):
    """Without the rule the blocks' relative updates differ (so the rule has something to do)."""
    model = make_model("olmo2", n_layers=4, hidden=32, seed=3)
    ratios = _train(model, tokenizer, rule=None)
    assert all((r.max() - r.min()) / r.mean() > 1e-3 for r in ratios)


def test_a_block_without_update_is_left_alone_and_misuse_is_refused():
    blocks = [torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)]
    rule = train.EqualStep.of_blocks(blocks)
    with pytest.raises(RuntimeError, match="snapshot"):
        rule.rescale()
    rule.snapshot()
    with torch.no_grad():
        blocks[0].weight.add_(0.1)
    after = rule.rescale()
    assert after[1] == 0.0 and after[0] > 0
    with pytest.raises(ValueError, match="at least two blocks"):
        train.EqualStep.of_blocks(blocks[:1])
    rule.snapshot()
    with torch.no_grad():
        blocks[1].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="block 2"):
        rule.rescale(step=7)
    with pytest.raises(ValueError, match="update rule must be one of"):
        train.check_update_rule("equal")
