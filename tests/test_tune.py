"""Segment masks, budget-matched LoRA configs, training determinism and resumable sweeps."""

from __future__ import annotations

import collections
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import SWEEP, make_model
from peft import get_peft_model
from transformers import MistralConfig, Olmo2Config

from mbt import segments, train, tune
from mbt.pairs import load_pair
from mbt.segments import PAPER_MASKS as DEFAULT_MASKS
from mbt.tune import budget, lora_config, segment_layers
from mbt.tune import sweeps as tune_sweeps
from mbt.workers import slots as workers_slots

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------


def test_segment_layers_examples():
    assert segment_layers("01100", 16) == [3, 4, 5, 6, 7, 8]
    assert segment_layers("10", 5) == [0, 1]
    assert segment_layers("01", 5) == [2, 3, 4]
    assert segment_layers("11111", 10) == list(range(10))
    assert segment_layers("00001", 16) == [12, 13, 14, 15]  # the last segment takes the remainder
    assert segment_layers("10000", 64) == list(range(12))
    assert segment_layers("00000", 16, allow_empty=True) == []


@pytest.mark.parametrize("n_layers", [10, 16, 40, 64])
@pytest.mark.parametrize("n_segments", [3, 5, 10])
def test_single_segment_family_partitions_the_layers(n_segments, n_layers):
    family = segments.single_segment_masks(n_segments)
    assert len(family) == n_segments and all(m.count("1") == 1 for m in family)
    seen = collections.Counter(b for m in family for b in segment_layers(m, n_layers))
    assert sorted(seen) == list(range(n_layers))
    assert set(seen.values()) == {1}
    sizes = [len(segment_layers(m, n_layers)) for m in family]
    assert max(sizes) - min(sizes) <= 1  # as equal as integers allow
    for m in family:  # each segment is contiguous
        layers = segment_layers(m, n_layers)
        assert layers == list(range(layers[0], layers[-1] + 1))
    named = segments.MASK_FAMILIES.get(f"segments{n_segments}")
    if named is not None:
        assert set(family) <= set(named) and named[0] == "0" * n_segments and named[1] == "1" * n_segments


@pytest.mark.parametrize(
    ("mask", "n_layers", "message"),
    [
        ("", 16, "empty"),
        ("01a00", 16, "only contain"),
        ("0 100", 16, "only contain"),
        ("00000", 16, "no segment"),
        ("1" * 11, 10, "do not fit"),
        (10100, 16, "string"),
    ],
)
def test_invalid_masks_raise(mask, n_layers, message):
    with pytest.raises(ValueError, match=message):
        segment_layers(mask, n_layers)
    with pytest.raises(ValueError, match=message):
        lora_config(mask, n_layers)


def test_resolve_masks():
    assert segments.resolve_masks("default") == list(DEFAULT_MASKS)
    assert segments.resolve_masks("01100, 00110,01100") == ["01100", "00110"]
    assert segments.resolve_masks("segments3") == ["000", "111", "100", "010", "001"]
    with pytest.raises(ValueError, match="families"):
        segments.resolve_masks("nonsense")


# ------------------------------------------------------------------------------------------------
# budgets and configs
# ------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------


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
    from mbt.pairs import load_pair

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


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def base_dir(sweep_base):
    """The shared 5-block Base folder (conftest.sweep_base)."""
    return sweep_base


def test_sweep_runs_resumes_and_survives_a_killed_run(base_dir, tmp_path, monkeypatch):
    out = tmp_path / "sweep.parquet"
    calls = []
    real_train = tune.train_lora

    def counting(*args, **kwargs):
        calls.append((args[2], kwargs["seed"]))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(tune_sweeps, "train_lora", counting)
    df = tune.sweep(str(base_dir), masks=["00000", "01100", "10000"], seeds=(0, 1), out=out, **SWEEP)
    assert sorted(calls) == [("01100", 0), ("01100", 1), ("10000", 0), ("10000", 1)]
    assert list(df.columns) == list(tune.SWEEP_COLUMNS)
    assert df["mask"].tolist() == ["00000", "00000", "01100", "01100", "10000", "10000"]
    assert df["seed"].tolist() == [0, 1, 0, 1, 0, 1]
    base = df[df["mask"] == "00000"]
    assert (base["trainable_params"] == 0).all() and (base["rank"] == 0).all()
    tuned = df[df["mask"] != "00000"]
    assert (tuned["ppl_text_before"] == base["ppl_text"].iloc[0]).all()  # Base is the "before"
    assert (tuned["ppl_text_change"] - (tuned["ppl_text"] - tuned["ppl_text_before"])).abs().max() < 1e-9
    assert (tuned["scale"] == 2.0).all() and (tuned["threads"] == 1).all()
    assert ((tuned["budget_ratio"] - 1).abs() <= 0.05).all()
    assert tuned["layers"].tolist()[:2] == ["1,2", "1,2"]
    assert ((df["accuracy_ci_low"] <= df["accuracy"]) & (df["accuracy"] <= df["accuracy_ci_high"])).all()
    stored = pd.read_parquet(out)
    assert len(stored) == 6

    # a second call runs nothing new and returns the same table
    calls.clear()
    again = tune.sweep(str(base_dir), masks=["00000", "01100", "10000"], seeds=(0, 1), out=out, **SWEEP)
    assert calls == []
    pd.testing.assert_frame_equal(again, df)

    # a new seed runs only the missing runs; other settings are kept apart in the same file
    tune.sweep(str(base_dir), masks=["01100"], seeds=(0, 2), out=out, **SWEEP)
    assert calls == [("01100", 2)]
    other = tune.sweep(str(base_dir), masks=["01100"], seeds=(0,), out=out, **{**SWEEP, "steps": 1})
    assert calls[-1] == ("01100", 0) and len(other) == 1
    assert len(pd.read_parquet(out)) == 8

    # a killed run: a stale temporary file and a truncated table
    stale = out.with_name(f".{out.name}.abc123.tmp")
    stale.write_bytes(b"partial")
    out.write_bytes(out.read_bytes()[:100])
    calls.clear()
    with pytest.warns(RuntimeWarning, match="unreadable"):
        df2 = tune.sweep(str(base_dir), masks=["00000", "10000"], seeds=(0,), out=out, **SWEEP)
    assert not stale.exists()
    assert calls == [("10000", 0)] and len(df2) == 2
    assert list(tmp_path.glob("sweep.parquet.corrupt-*"))  # set aside, not deleted


def test_sweep_csv_and_summary(base_dir, tmp_path):
    out = tmp_path / "sweep.csv"
    df = tune.sweep(str(base_dir), masks=["00000", "00011"], seeds=(0, 1), out=out, **SWEEP)
    again = tune.sweep(str(base_dir), masks=["00000", "00011"], seeds=(0, 1), out=out, **SWEEP)
    assert again["mask"].tolist() == df["mask"].tolist() == ["00000", "00000", "00011", "00011"]
    summary = tune.summarize_sweep(df)
    assert summary["mask"].tolist() == ["00000", "00011"] and (summary["n_seeds"] == 2).all()
    assert {"accuracy_mean", "accuracy_sd", "answer_nll_mean", "answer_nll_vs_best"} <= set(summary.columns)
    with pytest.raises(ValueError, match="parquet or .csv"):
        tune.sweep(str(base_dir), out=tmp_path / "x.txt", **SWEEP)


def test_cli_arguments():
    from mbt import cli

    parser = cli.build_parser()
    args = parser.parse_args(["tune", "sweep", "--out", "r.parquet", "--masks", "01100,00110", "--seeds", "0,1"])
    assert args.func is cli._cmd_tune_sweep and args.masks == "01100,00110" and args.threads == 2
    args = parser.parse_args(["tune", "suggest", "--n-segments", "10"])
    assert args.func is cli._cmd_tune_suggest and args.n_segments == 10


def _sweep_in_child(base: str, out: str, masks: list[str], seeds: list[int]) -> int:
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from mbt import tune as child_tune

    return len(child_tune.sweep(base, masks=masks, seeds=seeds, out=out, **SWEEP))


def test_two_sweeps_on_one_file_lose_no_row(base_dir, tmp_path):
    import concurrent.futures
    import multiprocessing

    out = tmp_path / "shared.parquet"
    jobs = [(["10000", "01000"], [0]), (["00100", "00010"], [0])]
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        counts = list(pool.map(_sweep_in_child, [str(base_dir)] * 2, [str(out)] * 2, *zip(*jobs, strict=True)))
    assert counts == [2, 2]
    table = tune_sweeps.read_table(out)
    assert sorted(table["mask"]) == ["00010", "00100", "01000", "10000"]  # nothing overwritten


def test_sweep_does_not_resume_from_other_weights_of_the_same_size(tokenizer, tmp_path, monkeypatch):
    base = tmp_path / "base"
    make_model("olmo2", n_layers=5, hidden=32).save_pretrained(base)
    tokenizer.save_pretrained(base)
    out = tmp_path / "s.parquet"
    tune.sweep(str(base), masks=["10000"], seeds=[0], out=out, **SWEEP)
    size = (base / "model.safetensors").stat().st_size
    make_model("olmo2", n_layers=5, hidden=32, seed=1).save_pretrained(base)  # other weights, same size
    assert (base / "model.safetensors").stat().st_size == size
    calls = []
    real = tune_sweeps.train_lora
    monkeypatch.setattr(tune_sweeps, "train_lora", lambda *a, **k: calls.append(1) or real(*a, **k))
    tune.sweep(str(base), masks=["10000"], seeds=[0], out=out, **SWEEP)
    assert calls == [1] and len(tune_sweeps.read_table(out)) == 2


def test_path_dtype_is_what_a_path_loads_in(base_dir):
    from mbt.loading import load_causal_lm, path_dtype

    assert path_dtype("cpu") is torch.float32
    assert path_dtype("cuda") is path_dtype("cuda:1") is path_dtype("auto") is torch.bfloat16
    assert path_dtype(None) is (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert load_causal_lm(str(base_dir), device="cpu", progress=False).dtype is path_dtype("cpu")


def test_sweep_resumes_whichever_way_the_same_base_is_given(base_dir, tokenizer, tmp_path, monkeypatch):
    import shutil

    from transformers import AutoModelForCausalLM

    out = tmp_path / "s.parquet"
    tune.sweep(str(base_dir), masks=["10000"], seeds=[0], out=out, **SWEEP)
    copy = tmp_path / "elsewhere" / "base"  # byte-identical, another path
    shutil.copytree(base_dir, copy)
    calls = []
    real = tune_sweeps.train_lora
    monkeypatch.setattr(tune_sweeps, "train_lora", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float32)
    pair = load_pair(base=str(copy), sft=str(base_dir), device="cpu")
    for given in (str(copy), model, pair):  # the copied folder, a model loaded from it, a pair with it as Base
        rows = tune.sweep(given, masks=["10000"], seeds=[0], out=out, tokenizer=tokenizer if given is model else None,
                          **SWEEP)
        assert len(rows) == 1
    assert calls == [] and len(tune_sweeps.read_table(out)) == 1  # nothing trained again
    tune.sweep(model.to(torch.bfloat16), masks=["10000"], seeds=[0], out=out, tokenizer=tokenizer, **SWEEP)
    assert calls == [1] and len(tune_sweeps.read_table(out)) == 2  # other dtype, other run


def test_sweep_validates_everything_before_training(base_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tune_sweeps, "load_causal_lm", lambda *a, **k: pytest.fail("loaded a model"))
    monkeypatch.setattr(tune_sweeps, "train_lora", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "v.parquet"
    with pytest.raises(ValueError, match="11 segments do not fit into 5 layers"):
        tune.sweep(str(base_dir), masks=["10000", "1" * 11], seeds=[0], out=out, **SWEEP)
    for bad in ({"steps": 0}, {"rank": 0}, {"n_test": 0}, {"eval_batch_size": 0}):
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            tune.sweep(str(base_dir), masks=["10000"], seeds=[0], out=out, **{**SWEEP, **bad})
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# local data: train/test files and retention sets
# ------------------------------------------------------------------------------------------------


def _write_jsonl(path, records):
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_default_retention_is_the_papers_appendix_b_sets():
    assert tune.default_retention("gsm8k") == {"text": "mt_bench", "instruct": "ifeval"}
    assert tune.default_retention("toy-math") == {"text": "toy-text", "instruct": "toy-instruct"}


def test_sweep_reads_local_train_test_and_retention_files(base_dir, tmp_path, monkeypatch):
    from mbt import data
    from mbt.data import sampling as data_sampling
    from mbt.data import sources as data_sources

    folder = tmp_path / "math"
    _write_jsonl(folder / "train.jsonl", data.load_records("toy-math", split="train")[:40])
    _write_jsonl(folder / "test.jsonl", data.load_records("toy-math", split="test")[:6])
    instruct = _write_jsonl(tmp_path / "instruct.jsonl", data.load_records("toy-instruct", split="test")[:5])
    reads = []
    real = data_sources._load_source  # what load_records and load_sample read through

    def spy(spec, split, path, data_seed):
        reads.append((spec.name, split, None if path is None else Path(path).name))
        return real(spec, split, path, data_seed)

    monkeypatch.setattr(data_sources, "_load_source", spy)
    monkeypatch.setattr(data_sampling, "_load_source", spy)
    out = tmp_path / "local.parquet"
    df = tune.sweep(str(base_dir), masks=["00000", "01100"], seeds=[0], out=out, data_path=folder,
                    retention_paths={"instruct": instruct}, **SWEEP)
    assert len(df) == 2
    assert ("toy-math", "train", "math") in reads and ("toy-math", "test", "math") in reads
    assert ("toy-instruct", "test", "instruct.jsonl") in reads
    assert not any(name == "toy-math" and path is None for name, _, path in reads)  # never the generator
    # the same sweep on the generator's data is another configuration in the same file
    hub = tune.sweep(str(base_dir), masks=["00000"], seeds=[0], out=out, **SWEEP)
    assert hub["settings_key"].iloc[0] != df["settings_key"].iloc[0]

    # a mapping names each split; only test local, train from the generator
    both = tune_sweeps.split_paths("toy-math", {"test": folder / "test.jsonl"})
    assert both == (None, folder / "test.jsonl")


def test_one_file_for_both_splits_is_refused_before_anything_loads(base_dir, tmp_path, monkeypatch):
    from mbt import data

    monkeypatch.setattr(tune_sweeps, "load_causal_lm", lambda *a, **k: pytest.fail("loaded a model"))
    monkeypatch.setattr(tune_sweeps, "train_lora", lambda *a, **k: pytest.fail("trained"))
    one = _write_jsonl(tmp_path / "all.jsonl", data.load_records("toy-math", split="test")[:8])
    out = tmp_path / "r.parquet"
    for data_path in (one, {"train": one, "test": one}):
        with pytest.raises(ValueError, match="same source"):
            tune.sweep(str(base_dir), masks=["01100"], seeds=[0], out=out, data_path=data_path, **SWEEP)
    with pytest.raises(ValueError, match="keys must be 'train' and 'test'"):
        tune.sweep(str(base_dir), masks=["01100"], seeds=[0], out=out, data_path={"validation": one}, **SWEEP)
    with pytest.raises(ValueError, match="valid names: text, instruct"):
        tune.sweep(str(base_dir), masks=["01100"], seeds=[0], out=out, retention_paths={"ifeval": one}, **SWEEP)
    with pytest.raises(FileNotFoundError):
        tune.sweep(str(base_dir), masks=["01100"], seeds=[0], out=out, retention_paths={"text": tmp_path / "no"},
                   **SWEEP)
    assert not out.exists()


def test_evaluate_tuned_reads_local_test_and_retention_files(tokenizer, tmp_path, monkeypatch):
    from mbt import data

    test = _write_jsonl(tmp_path / "test.jsonl", data.load_records("toy-math", split="test")[:3])
    text = _write_jsonl(tmp_path / "text.jsonl", data.load_records("toy-text", split="test")[:4])
    model = make_model("olmo2", n_layers=2, hidden=32)
    out = tune.evaluate_tuned(model, tokenizer, "toy-math", n_test=3, max_new_tokens=4, batch_size=4,
                              n_retention=50, n_boot=50, data_path=test, retention_paths={"text": text},
                              progress=False)
    assert out["n_test"] == 3
    expected = tune.evaluate_tuned(model, tokenizer, "toy-math", n_test=3, max_new_tokens=4, batch_size=4,
                                   retention={"text": "toy-text"}, n_retention=50, n_boot=50, data_path=test,
                                   retention_paths={"text": text}, progress=False)
    assert out["ppl_text"] == expected["ppl_text"]
    from mbt import evaluate

    texts = data.load_texts("toy-text", n=50, path=text, allow_fewer=True)
    assert len(texts) <= 4  # fewer than n_retention: all of the file
    direct = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts, batch_size=4, progress=False))
    assert out["ppl_text"] == pytest.approx(direct)


def test_cli_data_path(monkeypatch, tmp_path, capsys):
    from mbt import cli

    seen = {}

    def fake_sweep(base, **kwargs):
        seen.update(kwargs, base=base)
        return pd.DataFrame(columns=list(tune.SWEEP_COLUMNS))

    monkeypatch.setattr(tune, "sweep", fake_sweep)
    cli.main(["tune", "sweep", "--pair", "olmo2-1b", "--task", "gsm8k", "--out", str(tmp_path / "s.parquet"),
              "--data-path", "train=a/train.jsonl,test=b/test.jsonl"])
    assert seen["data_path"] == {"train": "a/train.jsonl", "test": "b/test.jsonl"} and seen["base"] == "olmo2-1b"
    cli.main(["tune", "sweep", "--out", str(tmp_path / "s.parquet"), "--data-path", "gsm8k-local"])
    assert seen["data_path"] == "gsm8k-local"
    cli.main(["tune", "sweep", "--out", str(tmp_path / "s.parquet")])
    assert seen["data_path"] is None


def test_sweep_side_by_side_gives_the_same_rows_as_one_at_a_time(base_dir, tmp_path, monkeypatch):
    runs = dict(masks=["00000", "01100", "10000"], seeds=(0, 1))
    serial = tune.sweep(str(base_dir), out=tmp_path / "serial.parquet", **runs, **SWEEP)
    parallel = tune.sweep(str(base_dir), out=tmp_path / "parallel.parquet", workers=2, **runs, **SWEEP)
    timing = {"seconds", "train_seconds", "finished_at"}
    same = [c for c in tune.SWEEP_COLUMNS if c not in timing]
    pd.testing.assert_frame_equal(serial[same], parallel[same])  # bit for bit: same runs, same threads
    assert serial["final_loss"].notna().sum() == 4
    # the workers' rows resume like any others: nothing is trained again, with or without workers
    monkeypatch.setattr(tune_sweeps, "train_lora", lambda *a, **k: pytest.fail("trained again"))
    again = tune.sweep(str(base_dir), out=tmp_path / "parallel.parquet", **runs, **SWEEP)
    pd.testing.assert_frame_equal(again[same], serial[same])


def test_sweep_workers_need_something_a_worker_can_load(base_dir, tokenizer, tmp_path, save_pair):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with pytest.raises(ValueError, match="workers > 1 needs"):
        tune.sweep(model, ["01100"], [0], out=tmp_path / "s.parquet", tokenizer=tokenizer, workers=2,
                   **{k: v for k, v in SWEEP.items()})
    assert not (tmp_path / "s.parquet").exists()
    with pytest.raises(ValueError, match="whole number >= 0"):
        tune.sweep(str(base_dir), ["01100"], [0], out=tmp_path / "s.parquet", workers=-1, **SWEEP)
    base, sft = save_pair()
    pair = load_pair(base=str(base), sft=str(sft))
    assert tune_sweeps._folder_of(pair) == str(base)  # a pair loaded from folders: workers load the Base
    assert tune_sweeps._folder_of(model) is None
    assert tune_sweeps._auto_workers(str(base), 1, "cpu", jobs=5) == workers_slots(1, jobs=5)
    assert tune_sweeps._auto_workers(str(base), 1, "cuda", jobs=5) == 1
    assert tune_sweeps._auto_workers(None, 1, "cpu", jobs=5) == 1


def test_side_by_side_runs_start_with_the_deepest_backward_pass():
    masks = ["00001", "01100", "11111", "00110", "10000", "01110"]
    ranked = sorted(masks, key=tune_sweeps._run_cost, reverse=True)
    assert ranked == ["11111", "10000", "01110", "01100", "00110", "00001"]
