"""Training segment-restricted LoRA (mbt.tune.lora)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_model

from mbt import train, tune
from mbt.pairs import load_pair


def _adapters(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}

TRAIN = dict(task="toy-math", n_train=32, steps=3, batch_size=4, rank=4, lr=1e-2, threads=1, progress=False)


def test_training_changes_only_adapters_and_is_seeded(tokenizer):
    model = make_model("olmo2", n_layers=5, hidden=32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    a, info = tune.train_lora(model, tokenizer, "01100", seed=0, **TRAIN)
    b, _ = tune.train_lora(model, tokenizer, "01100", seed=0, **TRAIN)
    c, _ = tune.train_lora(model, tokenizer, "01100", seed=1, **TRAIN)
    # the caller's model is untouched (deep copy) and the wrapped base weights did not move
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    for n, p in a.named_parameters():
        if "lora_" not in n:
            key = n.removeprefix("base_model.model.").replace(".base_layer", "")
            assert torch.equal(p, before[key]), n
    ad_a, ad_b, ad_c = _adapters(a), _adapters(b), _adapters(c)
    assert ad_a.keys() == ad_b.keys() and len(ad_a) == 2 * 4 * 2  # A and B, 4 modules, 2 blocks
    assert all(torch.equal(ad_a[k], ad_b[k]) for k in ad_a)  # bit-identical: same seed, same threads
    assert any(not torch.equal(ad_a[k], ad_c[k]) for k in ad_a)  # another seed differs
    assert all(ad_a[k].abs().sum() > 0 for k in ad_a if "lora_B" in k)  # B started at 0 and moved
    assert info["layers"] == [1, 2] and info["threads"] == 1 and info["trainable_params"] == info["budget_params"]
    assert info["scale"] == 2.0 and info["alpha"] == 2.0 * info["rank"]
    assert len(info["loss_curve"]) == 2 and math.isfinite(info["final_loss"])
    assert not a.training


def test_training_from_a_loaded_pair_leaves_it_intact(save_pair):
    from mbt import trace

    base, sft = save_pair("olmo2", base_layers=5)
    pair = load_pair(base=str(base), sft=str(sft), progress=False)
    module = trace.unwrap(pair.base)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    tuned, info = tune.train_lora(pair.base, pair.tokenizer, "00011", seed=0, **TRAIN)
    assert info["layers"] == [3, 4] and type(trace.unwrap(pair.base)) is type(module)
    assert all(torch.equal(p, before[n]) for n, p in module.named_parameters())
    assert not any("lora" in n for n, _ in module.named_modules())
    ids = trace.encode(pair.tokenizer, ["the lazy dog", "fox"])
    assert len(trace.collect_layers(pair.base, ids, progress=False)) == 6  # the wrapper still traces


def test_micro_batches_do_not_change_the_update(tokenizer):
    model = make_model("olmo2", n_layers=5, hidden=32)
    kw = {**TRAIN, "steps": 1}
    full, info = tune.train_lora(model, tokenizer, "11111", seed=0, micro_batch_size=kw["batch_size"], **kw)
    assert info["micro_batch_size"] == kw["batch_size"]
    for micro in (1, None):  # one example per pass; the CPU default (two pieces)
        split, _ = tune.train_lora(model, tokenizer, "11111", seed=0, micro_batch_size=micro, **kw)
        for (n, p), (_, q) in zip(_adapters(full).items(), _adapters(split).items(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=f"{micro}: {n}")


def test_a_micro_batch_outside_the_batch_is_refused_before_loading(tokenizer, tmp_path):
    for bad in (0, TRAIN["batch_size"] + 1):  # the folder does not exist: the check comes first
        with pytest.raises(ValueError, match=r"micro_batch_size must be in 1\.\.4"):
            tune.train_lora(str(tmp_path / "missing"), tokenizer, "11111", micro_batch_size=bad, **TRAIN)


def test_a_cpu_batch_runs_as_length_sorted_pieces_padded_to_their_own_longest(tokenizer, monkeypatch):
    from mbt.tune.lora import CPU_PIECES, micro_batch, training_examples

    assert micro_batch(32, None, "cpu") == 32 // CPU_PIECES and micro_batch(5, None, torch.device("cpu")) == 3
    assert micro_batch(32, None, "cuda:0") == 32 and micro_batch(32, 8, "cpu") == 8
    kw = {**TRAIN, "steps": 2, "batch_size": 8}
    lengths = sorted(len(ids) for ids, _ in training_examples(tokenizer, "toy-math", n=kw["n_train"]))
    assert lengths[0] < lengths[-1]  # the pieces can only differ if the lengths do
    seen: list[list[int]] = []  # real lengths per forward pass
    real = train.token_loss_sum

    def spy(peft_model, ids, attention_mask, *args, **kwargs):
        row_lengths = attention_mask.sum(dim=1).tolist()
        assert ids.shape[1] == max(row_lengths)  # padded to the piece's own longest example
        seen.append(row_lengths)
        return real(peft_model, ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(train, "token_loss_sum", spy)
    _, info = tune.train_lora(make_model("olmo2", n_layers=5, hidden=32), tokenizer, "11111", seed=0,
                              cache_prefix=False, **kw)
    assert info["micro_batch_size"] == 4 and len(seen) == 2 * CPU_PIECES
    for first, second in zip(seen[::2], seen[1::2], strict=True):  # the two pieces of one step
        assert len(first) == len(second) == 4 and max(first) <= min(second)


def test_training_attention_is_chosen_for_training_only(tokenizer, monkeypatch):
    model = make_model("olmo2", n_layers=5, hidden=32)
    model.set_attn_implementation("sdpa")
    seen: list[str] = []
    real = train.token_loss_sum

    def spy(peft_model, *args, **kwargs):  # the attention each training forward pass uses
        seen.append(train._unwrap(peft_model).config._attn_implementation)
        return real(peft_model, *args, **kwargs)

    monkeypatch.setattr(train, "token_loss_sum", spy)
    own, info = tune.train_lora(model, tokenizer, "00110", seed=0, **TRAIN)
    assert info["attn"] == "sdpa" and set(seen) == {"sdpa"} and len(seen) >= TRAIN["steps"]  # + the prefix check
    seen.clear()
    eager, info_eager = tune.train_lora(model, tokenizer, "00110", seed=0, attn="eager", **TRAIN)
    assert info_eager["attn"] == "eager" and set(seen) == {"eager"}
    assert train._unwrap(eager).config._attn_implementation == "sdpa"  # evaluation keeps the model's own
    assert model.config._attn_implementation == "sdpa"
    for (n, p), (_, q) in zip(_adapters(own).items(), _adapters(eager).items(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=n)  # the same maths in other kernels
    loads: list = []
    monkeypatch.setattr(tune.lora, "load_causal_lm", lambda *a, **k: loads.append(a))
    with pytest.raises(ValueError, match="unknown attention implementation 'eagre'; valid: .*eager.*sdpa"):
        tune.train_lora(model, tokenizer, "00110", attn="eagre", **TRAIN)
    assert not loads  # refused before the model is copied


def test_loss_on_answer_masks_the_prompt(tokenizer):
    from mbt import data

    answer = tune.training_examples(tokenizer, "toy-math", n=4, loss_on="answer")
    full = tune.training_examples(tokenizer, "toy-math", n=4, loss_on="all")
    records = data.load_records("toy-math", split="train")
    first = records[data.sample_indices(len(records), 4, 0)[0]]
    prompt = data.format_record("toy-math", first, with_answer=False)
    n_prompt = len(tokenizer(prompt)["input_ids"])
    assert answer[0][1] == n_prompt and full[0][1] == 0
    assert answer[0][0] == full[0][0] and answer[0][0][-1] == tokenizer.eos_token_id
    ids, mask, labels = train.pad_batch(answer, tokenizer.pad_token_id)
    for r, (seq, n_p) in enumerate(answer):
        assert (labels[r, :n_p] == -100).all()
        assert labels[r, n_p: len(seq)].tolist() == seq[n_p:]
        assert (labels[r, len(seq):] == -100).all() and (mask[r, len(seq):] == 0).all()
    _, _, labels_all = train.pad_batch(full, tokenizer.pad_token_id)
    assert (labels_all[0, : len(full[0][0])] != -100).all()
    with pytest.raises(ValueError, match="loss_on='all'"):
        tune.training_examples(tokenizer, "toy-text", n=4)
    with pytest.raises(ValueError, match="loss_on"):
        tune.training_examples(tokenizer, "toy-math", n=4, loss_on="prompt")


def test_truncation_is_reported(tokenizer):
    model = make_model("olmo2", n_layers=5, hidden=32)
    _, info = tune.train_lora(model, tokenizer, "10000", seed=0, max_length=40, **{**TRAIN, "steps": 1})
    lengths = [len(ids) for ids, _ in tune.training_examples(tokenizer, "toy-math", n=32)]
    assert info["longest"] == max(lengths) and info["max_length"] == 40
    assert info["n_truncated"] == sum(x > 40 for x in lengths) > 0
    assert info["truncated_at"][128] == sum(x > 128 for x in lengths)
    _, auto = tune.train_lora(model, tokenizer, "10000", seed=0, **{**TRAIN, "steps": 1})
    assert auto["max_length"] == max(lengths) and auto["n_truncated"] == 0
