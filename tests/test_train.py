"""The one training loop's pieces (mbt.train): batch schedules and the token loss."""

from __future__ import annotations

import collections

import pytest
import torch
from conftest import make_model

from mbt import train, tune


def test_batch_schedule_epochs_seeds_and_length_groups():
    rng = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 90, (train.LENGTH_GROUP * 4 * 3,), generator=rng).tolist()  # 3 groups of batch 4
    n, b = len(lengths), 4
    for grouped in (False, True):
        plan = train.batch_schedule(lengths, b, 2 * n // b, seed=0, group_by_length=grouped)
        assert len(plan) == 2 * n // b and all(len(x) == b for x in plan)
        counts = collections.Counter(i for x in plan for i in x)
        assert set(counts) == set(range(n)) and set(counts.values()) == {2}  # two whole epochs
        assert plan == train.batch_schedule(lengths, b, 2 * n // b, seed=0, group_by_length=grouped)
        assert plan != train.batch_schedule(lengths, b, 2 * n // b, seed=1, group_by_length=grouped)
    plain = train.batch_schedule(lengths, b, 3 * train.LENGTH_GROUP, seed=0, group_by_length=False)
    grouped = train.batch_schedule(lengths, b, 3 * train.LENGTH_GROUP, seed=0, group_by_length=True)

    def padding(plan):
        return sum(max(lengths[i] for i in x) * len(x) - sum(lengths[i] for i in x) for x in plan)

    assert padding(grouped) < 0.3 * padding(plain)
    # the ungrouped stream is plain reshuffled epochs, cut in order
    stream = [i for x in plain for i in x]
    assert sorted(stream[:n]) == list(range(n))
    with pytest.raises(ValueError, match="no examples"):
        train.batch_schedule([], 4, 1, seed=0)


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox"])
def test_token_loss_sum_with_kept_logits_equals_the_full_loss(arch, tokenizer):
    model = make_model(arch, n_layers=3, hidden=32)
    examples = tune.training_examples(tokenizer, "toy-math", n=6)
    ids, mask, labels = train.pad_batch(examples, tokenizer.pad_token_id)
    logits = model(input_ids=ids, attention_mask=mask).logits
    reference = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                  labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
    first = min(n_prompt for _, n_prompt in examples)
    assert first > 5  # the prompt is long: most positions need no logits
    kept = train.token_loss_sum(model, ids, mask, labels, first_target=first)
    full = train.token_loss_sum(model, ids, mask, labels)
    torch.testing.assert_close(kept, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full, reference, rtol=1e-5, atol=1e-5)
    # a first target past the real one would drop targets: the loss must then be smaller
    assert train.token_loss_sum(model, ids, mask, labels, first_target=first + 3) < reference
