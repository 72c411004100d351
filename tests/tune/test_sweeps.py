"""Sweeps over masks × seeds: resumable, keyed by content, side by side (mbt.tune.sweeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SWEEP, make_model
from tune_fakes import _write_jsonl  # noqa: F401

from mbt import tune
from mbt.pairs import load_pair
from mbt.tune import sweeps as tune_sweeps
from mbt.workers import slots as workers_slots


def _sweep_in_child(base: str, out: str, masks: list[str], seeds: list[int]) -> int:
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from mbt import tune as child_tune

    return len(child_tune.sweep(base, masks=masks, seeds=seeds, out=out, **SWEEP))


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
    digits = df["accuracy_items"].map(lambda t: [int(c) for c in t])  # per problem, one 0/1 digit each
    assert (digits.map(len) == df["n_test"]).all() and (digits.map(np.mean) == df["accuracy"]).all()
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
