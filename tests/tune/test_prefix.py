"""The frozen-prefix cache of segment LoRA: the same training, the prefix run once, refused where it would differ."""

from __future__ import annotations

import pytest
import torch
from conftest import ARCHS, make_model

from mbt import train, tune
from mbt.tune import prefix

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = dict(task="toy-math", n_train=32, steps=4, batch_size=4, rank=4, lr=1e-2, threads=1, progress=False)


def _adapters(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(prefix, "_LAST", None)


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "gpt_neox"])  # LoRA targets q,k,v,o_proj
def test_training_from_the_cached_prefix_matches_the_ordinary_forward_pass(arch, tokenizer):
    model = make_model(arch, n_layers=5, hidden=32)
    plain, info_plain = tune.train_lora(model, tokenizer, "00011", seed=0, cache_prefix=False, **TRAIN)
    cached, info = tune.train_lora(model, tokenizer, "00011", seed=0, **TRAIN)
    assert info_plain["prefix_blocks"] == 0 and info["prefix_blocks"] == 3  # blocks 0-2 are below the adapters
    for (n, p), (_, q) in zip(_adapters(plain).items(), _adapters(cached).items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)
    layers = prefix._layers(cached)  # the skipped blocks are back in place after training
    assert not any(isinstance(block, prefix._PassThrough) for block in layers) and len(layers) == 5
    assert info["final_loss"] == pytest.approx(info_plain["final_loss"], rel=1e-5)


def test_full_depth_masks_have_nothing_to_cache(tokenizer):
    _, info = tune.train_lora(make_model("olmo2", n_layers=5), tokenizer, "11111", seed=0, **TRAIN)
    assert info["prefix_blocks"] == 0


def test_the_cache_is_filled_once_for_runs_that_share_it_and_again_when_anything_changes(tokenizer, monkeypatch):
    fills: list[int] = []
    real = prefix._fill

    def counting(model, examples, depth, *args, **kwargs):
        fills.append(depth)
        return real(model, examples, depth, *args, **kwargs)

    monkeypatch.setattr(prefix, "_fill", counting)
    model = make_model("olmo2", n_layers=5)
    a, _ = tune.train_lora(model, tokenizer, "00011", seed=0, **TRAIN)
    b, _ = tune.train_lora(model, tokenizer, "00011", seed=1, **TRAIN)  # another seed: same prefix rows
    c, _ = tune.train_lora(model, tokenizer, "00010", seed=0, **TRAIN)  # same first block, another mask
    assert fills == [3]
    tune.train_lora(model, tokenizer, "00100", seed=0, **TRAIN)  # another first block
    tune.train_lora(model, tokenizer, "00011", seed=0, n_train=16, **{k: v for k, v in TRAIN.items()
                                                                        if k != "n_train"})  # other examples
    other = make_model("olmo2", n_layers=5, seed=1)
    tune.train_lora(other, tokenizer, "00011", seed=0, **TRAIN)  # other weights
    assert fills == [3, 2, 3, 3]
    again, _ = tune.train_lora(model, tokenizer, "00011", seed=0, **TRAIN)
    assert all(torch.equal(p, q) for p, q in zip(_adapters(a).values(), _adapters(again).values(), strict=True))


def test_dropout_in_the_prefix_trains_the_ordinary_way(tokenizer):
    model = make_model("olmo2", n_layers=5)
    for block in model.model.layers[:2]:
        block.self_attn.attention_dropout = 0.5  # random in training mode: the rows would not be fixed
    _, info = tune.train_lora(model, tokenizer, "00011", seed=0, attn="eager", **TRAIN)
    assert info["prefix_blocks"] == 0


def test_a_model_that_changes_its_inputs_embeds_is_caught_by_the_check(tokenizer, monkeypatch):
    model = make_model("olmo2", n_layers=5)
    inner = model.model
    real = type(inner).forward

    def scaled(self, *args, inputs_embeds=None, **kwargs):  # e.g. Gemma multiplies the embeddings by √d
        if inputs_embeds is not None:
            inputs_embeds = inputs_embeds * 2.0
        return real(self, *args, inputs_embeds=inputs_embeds, **kwargs)

    monkeypatch.setattr(type(inner), "forward", scaled)
    _, info = tune.train_lora(model, tokenizer, "00011", seed=0, **TRAIN)
    assert info["prefix_blocks"] == 0


def test_token_loss_sum_from_inputs_embeds_equals_the_loss_from_ids(tokenizer):
    model = make_model("olmo2", n_layers=3)
    examples = tune.training_examples(tokenizer, n=6)
    ids, attn, labels = train.pad_batch(examples, 0)
    from_ids = train.token_loss_sum(model, ids, attn, labels, first_target=3)
    embeds = model.get_input_embeddings()(ids)
    from_embeds = train.token_loss_sum(model, None, attn, labels, first_target=3, inputs_embeds=embeds)
    torch.testing.assert_close(from_embeds, from_ids)
