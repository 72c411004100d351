"""Fault injection: corrupt caches, concurrent writers, NaN-poisoned weights, colliding keys.

Each test provokes one failure and checks that ``mbt`` either recovers (a corrupt cache entry is
warned about and recomputed) or stops with an error that names where the fault is, instead of
returning wrong numbers.
"""

from __future__ import annotations

import json
import multiprocessing

import pandas as pd
import pytest
from conftest import REPO, SWEEP

from mbt.results import ResultCache, cached, locked_update, make_key

# ----------------------------------------------------------------------------------------------
# cache files


def _stored(tmp_path):
    cache = ResultCache(tmp_path, kind="t")
    settings = {"pair": "p", "seed": 0}
    key = make_key(settings)
    frame = pd.DataFrame({"layer": [0, 1, 2], "value": [0.5, 0.25, 0.125]})
    cache.save(key, frame, settings)
    return cache, key, frame, settings


@pytest.mark.parametrize("damage", ["parquet_cut", "manifest_list", "manifest_no_fields", "manifest_garbage",
                                    "manifest_rows_text"])
def test_damaged_cache_entries_are_warned_about_and_recomputed(tmp_path, damage):
    cache, key, frame, settings = _stored(tmp_path)
    table, manifest = cache.paths(key)
    if damage == "parquet_cut":
        table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    elif damage == "manifest_list":
        manifest.write_text(json.dumps([1, 2, 3]))
    elif damage == "manifest_no_fields":
        manifest.write_text(json.dumps({"key": key}))
    elif damage == "manifest_garbage":
        manifest.write_bytes(b"\x00\xff{not json")
    else:
        meta = json.loads(manifest.read_text())
        meta["rows"] = "3"
        manifest.write_text(json.dumps(meta))
    calls = []
    with pytest.warns(UserWarning, match="partial or corrupt"):
        out = cached("t", settings, lambda: calls.append(1) or frame, root=tmp_path)
    assert calls == [1]
    pd.testing.assert_frame_equal(out, frame)
    pd.testing.assert_frame_equal(cache.load(key), frame)  # stored afresh, loads cleanly


def _append_rows(args: tuple[str, int]) -> None:
    path, writer = args
    for round_ in range(10):
        rows = pd.DataFrame({"writer": [writer] * 5, "round": [round_] * 5, "item": list(range(5))})
        locked_update(path, lambda old, rows=rows: rows if old is None else pd.concat([old, rows], ignore_index=True))


def test_two_processes_appending_with_locked_update_lose_no_rows(tmp_path):
    path = str(tmp_path / "sweep.parquet")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_rows, args=((path, w),)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    frame = pd.read_parquet(path)
    assert len(frame) == 2 * 10 * 5
    assert not frame.duplicated().any()
    assert frame.groupby("writer").size().to_dict() == {0: 50, 1: 50}


def test_locked_update_refuses_to_overwrite_an_unreadable_table(tmp_path):
    path = tmp_path / "sweep.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable Parquet table"):
        locked_update(path, lambda old: pd.DataFrame({"x": [1]}))
    assert path.read_bytes() == b"PAR1 not really"


def test_text_keys_do_not_collide():
    from mbt.results import text_fingerprint

    assert text_fingerprint(["the cat\0sat on the mat", "a dog ran"]) != text_fingerprint(
        ["the cat", "sat on the mat\0a dog ran"])


# ----------------------------------------------------------------------------------------------
# NaN-poisoned weights: one NaN in one weight of block 1 (0-based), whose output is layer 2

POISONED = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def poisoned(save_pair, tmp_path_factory, tokenizer):
    """``(base_dir, sft_dir, poisoned_dir)``: a copy of the Base checkpoint with one NaN weight."""
    import torch
    from transformers import AutoModelForCausalLM

    base_dir, sft_dir = save_pair("olmo2")
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        model.get_parameter(POISONED)[0, 0] = float("nan")
    out = tmp_path_factory.mktemp("poisoned") / "base"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return base_dir, sft_dir, out


@pytest.mark.parametrize("role", ["base", "sft"])
def test_analyze_names_the_model_and_layer_of_nan_states(poisoned, role):
    from conftest import TEXTS

    import mbt
    from mbt.checks import NonFiniteError

    base_dir, sft_dir, bad = poisoned
    dirs = {"base": str(base_dir), "sft": str(sft_dir), role: str(bad)}
    pair = mbt.load_pair(base=dirs["base"], sft=dirs["sft"], device="cpu")
    with pytest.raises(NonFiniteError, match=rf"{role} model, layer 2: hidden states .* NaN"):
        mbt.analyze(pair, TEXTS, cache=False, progress=False, n_bootstrap=0)


def test_logit_lens_names_the_model_and_layer(poisoned, tokenizer):
    from conftest import TEXTS
    from transformers import AutoModelForCausalLM

    from mbt import probe, trace
    from mbt.checks import NonFiniteError

    model = trace.wrap(AutoModelForCausalLM.from_pretrained(poisoned[2]).eval(), tokenizer)
    with pytest.raises(NonFiniteError, match=r"logit lens of model '.*base', layer 2"):
        probe.logit_lens(model, TEXTS, progress=False, n_bootstrap=0)


def test_weight_change_names_the_tensor(poisoned):
    from mbt.checks import NonFiniteError
    from mbt.weights import weight_change

    base_dir, _, bad = poisoned
    with pytest.raises(NonFiniteError, match=rf"tensor '{POISONED}' of the SFT checkpoint"):
        weight_change((base_dir, bad))
    with pytest.raises(NonFiniteError, match=rf"tensor '{POISONED}' of the Base checkpoint"):
        weight_change((bad, base_dir))


def test_perplexity_and_answer_nll_refuse_nan_logits(poisoned, tokenizer):
    from conftest import TEXTS
    from transformers import AutoModelForCausalLM

    from mbt.checks import NonFiniteError
    from mbt.evaluate import answer_nll, perplexity

    model = AutoModelForCausalLM.from_pretrained(poisoned[2]).eval()
    with pytest.raises(NonFiniteError, match="perplexity: logits of texts"):
        perplexity(model, tokenizer, TEXTS, progress=False)
    items = [{"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3 + 4 = 7 #### 7"}]
    with pytest.raises(NonFiniteError, match="answer_nll: log-probabilities of item 0"):
        answer_nll(model, tokenizer, items)


def test_swap_scores_refuse_nan_logits_and_name_the_configuration(poisoned, tokenizer):
    from conftest import TEXTS

    import mbt
    from mbt.checks import NonFiniteError
    from mbt.swap import swap_sweep, token_accuracy

    base_dir, sft_dir, bad = poisoned
    pair = mbt.load_pair(base=str(bad), sft=str(sft_dir), device="cpu")
    score = token_accuracy(tokenizer, TEXTS[:4])
    with pytest.raises(NonFiniteError, match="token_accuracy: logits"):
        score(pair.base)
    with pytest.raises(NonFiniteError, match="swap sweep, sft→base receiver"):
        swap_sweep(pair, score, n_segments=3, progress=False, n_bootstrap=0)


def test_lens_divergence_names_the_model_and_layer(poisoned):
    from conftest import TEXTS

    import mbt
    from mbt.checks import NonFiniteError
    from mbt.probe import lens_divergence

    base_dir, sft_dir, bad = poisoned
    for role, dirs in (("base", (bad, sft_dir)), ("sft", (base_dir, bad))):
        pair = mbt.load_pair(base=str(dirs[0]), sft=str(dirs[1]), device="cpu")
        with pytest.raises(NonFiniteError, match=rf"lens divergence, {role} model, layer 2: hidden states"):
            lens_divergence(pair, TEXTS, progress=False, n_bootstrap=0)


def test_finetune_weight_change_names_a_poisoned_starting_tensor(poisoned, tokenizer, monkeypatch):
    from conftest import TEXTS
    from transformers import AutoModelForCausalLM

    from mbt import train
    from mbt.checks import NonFiniteError
    from mbt.weights import finetune_weight_change

    monkeypatch.setattr(train, "run_steps", lambda *a, **k: pytest.fail("trained from NaN weights"))
    model = AutoModelForCausalLM.from_pretrained(poisoned[2])
    with pytest.raises(NonFiniteError, match=rf"finetune_weight_change: the starting model, parameter '{POISONED}'"):
        finetune_weight_change(model, tokenizer, TEXTS, steps=2, progress=False)


def test_a_nan_loss_names_the_stage_and_step():
    import torch

    from mbt import train
    from mbt.checks import NonFiniteError, NonFiniteLossError

    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    schedule = train.scheduler(optimizer, 5, 0, "constant")

    def step_loss(step: int) -> float:
        loss = (weight.sum() * (float("nan") if step == 2 else 1.0))
        loss.backward()
        return float(loss.detach())

    with pytest.raises(NonFiniteLossError, match="^fine-tune: the loss is nan at step 2") as info:
        train.run_steps(step_loss, optimizer, schedule, steps=5, stage="fine-tune", progress=False)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, NonFiniteError)


def test_train_lora_and_evaluate_tuned_name_a_poisoned_tensor_before_any_step(poisoned, tokenizer, monkeypatch):
    from transformers import AutoModelForCausalLM

    from mbt import evaluate, train, tune
    from mbt.checks import NonFiniteError

    monkeypatch.setattr(train, "run_steps", lambda *a, **k: pytest.fail("trained from NaN weights"))
    monkeypatch.setattr(evaluate, "gsm8k_exact_match", lambda *a, **k: pytest.fail("generated from NaN weights"))
    with pytest.raises(NonFiniteError, match=rf"train_lora 010: the model to tune, parameter '{POISONED}'"):
        tune.train_lora(str(poisoned[2]), mask="010", steps=2, batch_size=2, n_train=4, rank=2, progress=False)
    model = AutoModelForCausalLM.from_pretrained(poisoned[2])
    with pytest.raises(NonFiniteError, match=rf"evaluate_tuned: the model to score, parameter '{POISONED}'"):
        tune.evaluate_tuned(model, tokenizer, n_test=2, n_retention=2, progress=False)


def test_cli_sweep_of_a_poisoned_base_stops_in_one_line_and_writes_no_row(poisoned, tmp_path, capsys):
    from mbt import cli

    out = tmp_path / "sweep.parquet"
    code = cli.main(["tune", "sweep", "--base", str(poisoned[2]), "--masks", "000", "--seeds", "0", "--out", str(out),
                     "--n-test", "2", "--n-retention", "2", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and list(tmp_path.iterdir()) == []  # no table, no lock file, no temporary file
    assert err[-1].startswith(f"mbt: error: evaluate_tuned: the model to score, parameter '{POISONED}': 1 NaN")
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("signals", ["block_influence", "erank", "lens"])
def test_layer_signals_name_the_signal_and_block_of_nan_states(poisoned, tokenizer, signals):
    from conftest import TEXTS
    from transformers import AutoModelForCausalLM

    from mbt import select
    from mbt.checks import NonFiniteError

    model = AutoModelForCausalLM.from_pretrained(poisoned[2]).eval()
    where = (r"layer signal 'lens' \(block l writes layer l\): logit lens of .*, layer 2" if signals == "lens"
             else rf"layer signals \({signals}\), base model, block 2 output \(layer 2\): hidden states")
    with pytest.raises(NonFiniteError, match=where):
        select.layer_signals(model, TEXTS, signals=signals, tokenizer=tokenizer, progress=False)


def test_a_non_finite_signal_names_its_blocks():
    import numpy as np

    from mbt.checks import NonFiniteError
    from mbt.select import _require_finite_signal

    _require_finite_signal("erank", np.array([0.1, 0.2]))
    with pytest.raises(NonFiniteError, match=r"layer signal 'cka' is NaN or infinite at block\(s\) \[2, 4\] of 4"):
        _require_finite_signal("cka", np.array([0.1, np.nan, 0.3, np.inf]))


# ----------------------------------------------------------------------------------------------
# interrupted work resumes: nothing lost, nothing duplicated, nothing redone


def test_a_sweep_interrupted_mid_way_resumes_without_losing_or_duplicating_rows(sweep_base, tmp_path, monkeypatch,
                                                                                 capsys):
    from mbt import tune
    from mbt.tune import sweeps

    out = tmp_path / "sweep.parquet"
    masks = ["00000", "10000", "01000", "00100"]
    real = sweeps.train_lora
    calls: list[str] = []

    def interrupted(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third training run
        return real(*args, **kwargs)

    monkeypatch.setattr(sweeps, "train_lora", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune.sweep(str(sweep_base), masks=masks, seeds=[0], out=out, **SWEEP)
    kept = sweeps.read_table(out)
    assert kept["mask"].tolist() == ["00000", "10000", "01000"]  # every finished run was written
    assert not list(tmp_path.glob(".sweep.parquet.*.tmp"))
    capsys.readouterr()

    calls.clear()
    monkeypatch.setattr(sweeps, "train_lora", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    frame = tune.sweep(str(sweep_base), masks=masks, seeds=[0], out=out, **SWEEP)
    assert calls == ["00100"]  # only the interrupted run is redone
    assert f"mbt: sweep: 3 of 4 runs already in {out}, resuming" in capsys.readouterr().err
    assert frame["mask"].tolist() == masks and not frame.duplicated(["mask", "seed", "settings_key"]).any()
    table = sweeps.read_table(out)
    assert len(table) == 4
    pd.testing.assert_frame_equal(table.iloc[:3].reset_index(drop=True), kept)  # finished rows untouched

    tune.sweep(str(sweep_base), masks=masks, seeds=[0], out=out, **SWEEP)
    assert calls == ["00100"] and "4 of 4 runs already in" in capsys.readouterr().err


@pytest.mark.parametrize("suffix, damage", [
    (".csv", b"\x00\xff\xfe garbage \x00"), (".csv", b"a,b\n1,2\n"), (".csv", b""),
    (".parquet", b"PAR1 cut"), (".parquet", b""),
])
def test_a_damaged_sweep_table_is_moved_aside_with_a_warning(tmp_path, suffix, damage):
    from mbt.tune import sweeps

    out = tmp_path / f"sweep{suffix}"
    out.write_bytes(damage)
    with pytest.warns(RuntimeWarning, match="unreadable.*moved to sweep.*corrupt-"):
        table = sweeps.read_table(out)
    assert table.empty and list(table.columns) == list(sweeps.SWEEP_COLUMNS)
    aside = list(tmp_path.glob(f"sweep{suffix}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage and not out.exists()


def test_the_sweep_refuses_a_negative_max_length_and_zero_threads_before_loading(sweep_base, tmp_path, monkeypatch):
    from mbt import tune
    from mbt.tune import sweeps

    monkeypatch.setattr(sweeps, "load_causal_lm", lambda *a, **k: pytest.fail("loaded a model"))
    for bad in ({"max_length": -5}, {"threads": 0}):
        with pytest.raises(ValueError, match="must be a whole number >= 1"):
            tune.sweep(str(sweep_base), masks=["10000"], seeds=[0], out=tmp_path / "v.parquet", **{**SWEEP, **bad})


def test_a_book_build_interrupted_at_chapter_3_resumes_there(tmp_path, monkeypatch):
    import nbformat

    from mbt import book
    from mbt.book import jobs

    ran: list[str] = []
    fail_at = {book.CHAPTERS[2]}

    def fake_execute(nb, out, params, **kwargs):
        ran.append(out.stem)
        if out.stem in fail_at:
            raise RuntimeError("kernel died")
        nbformat.write(nb, out)

    monkeypatch.setattr(jobs, "_execute", fake_execute)
    root = REPO
    args = dict(base="b", sft="s", quick=True, root=root, stage=tmp_path / "stage", output=tmp_path / "out",
                html=False, log=lambda _: None)
    first = book.build(**args)
    assert not first.ok and ran == list(book.CHAPTERS[:3])
    assert [c.status for c in first.chapters[:3]] == ["executed", "executed", "failed"]
    assert {c.status for c in first.chapters[3:]} == {"skipped"}

    ran.clear()
    fail_at.clear()
    again = book.build(**args)
    assert again.ok and ran == list(book.CHAPTERS[2:])  # chapters 1-2 are not executed again
    assert [c.status for c in again.chapters] == ["up to date"] * 2 + ["executed"] * (len(book.CHAPTERS) - 2)


# ----------------------------------------------------------------------------------------------
# toy build manifests of every kind of damage are detected (never a crash) and rebuilt


@pytest.mark.parametrize("damage", ["cut", "garbage", "list", "files_list", "files_entry_text", "hash_number"])
def test_a_damaged_toy_manifest_is_detected_and_rebuilt(tmp_path, monkeypatch, damage):
    from mbt.toy import builder
    from mbt.toy.recipe import settings_hash

    expected = settings_hash(seed=0, size="tiny", variant="toy")

    def fake_build(root, *, settings_hash, **kwargs):  # a complete build in miniature: files + manifest
        for rel in builder._REQUIRED:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(f"{rel} of a fresh build")
        manifest = {"settings_hash": settings_hash, "files": builder._file_hashes(root)}
        (root / builder.MANIFEST).write_text(json.dumps(manifest))

    monkeypatch.setattr(builder, "_run_build", fake_build)
    target = builder.build(tmp_path / "toy", size="tiny", progress=False)
    assert builder.check_build(target, expected_hash=expected) is None
    manifest = target / builder.MANIFEST
    good = json.loads(manifest.read_text())
    if damage == "cut":
        manifest.write_text(manifest.read_text()[:40])
    elif damage == "garbage":
        manifest.write_bytes(b"\xff\xfe\x00 not json")
    elif damage == "list":
        manifest.write_text(json.dumps([good]))
    elif damage == "files_list":
        manifest.write_text(json.dumps({**good, "files": list(good["files"])}))
    elif damage == "files_entry_text":
        manifest.write_text(json.dumps({**good, "files": {k: "sha" for k in good["files"]}}))
    else:
        manifest.write_text(json.dumps({**good, "settings_hash": 12}))
    problem = builder.check_build(target, expected_hash=expected)
    assert problem is not None and "manifest.json" in problem
    with pytest.warns(RuntimeWarning, match="is invalid.*rebuilding"):
        assert builder.build(target, size="tiny", progress=False) == target
    assert builder.check_build(target, expected_hash=expected) is None


@pytest.mark.parametrize("bad", [{"n_test": 0}, {"n_retention": 0}, {"batch_size": 0}])
def test_evaluate_tuned_refuses_empty_counts_before_scoring(poisoned, tokenizer, bad):
    from transformers import AutoModelForCausalLM

    from mbt import tune

    model = AutoModelForCausalLM.from_pretrained(poisoned[0])
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a whole number >= 1, got 0"):
        tune.evaluate_tuned(model, tokenizer, **{"n_test": 2, "n_retention": 2, "progress": False, **bad})


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_leaves_a_readable_table_that_resumes(sweep_base, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from mbt import tune
    from mbt.tune import sweeps

    out = tmp_path / "killed.parquet"
    masks = ["00000", "10000", "01000", "00100"]
    script = ("import sys; from mbt import tune; "
              f"tune.sweep(sys.argv[1], masks={masks!r}, seeds=[0], out=sys.argv[2], **{SWEEP!r})")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", script, str(sweep_base), str(out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and child.poll() is None:
            if out.exists() and len(sweeps.read_table(out)) >= 2:
                break
            time.sleep(0.2)
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    kept = sweeps.read_table(out)
    assert 2 <= len(kept) < len(masks)
    frame = tune.sweep(str(sweep_base), masks=masks, seeds=[0], out=out, **SWEEP)
    assert frame["mask"].tolist() == masks and not frame.duplicated(["mask", "seed"]).any()
    table = sweeps.read_table(out)
    assert len(table) == len(masks)
    pd.testing.assert_frame_equal(table.iloc[: len(kept)].reset_index(drop=True), kept)


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe\x00", b'{"findings": [1]}'])
def test_a_damaged_records_file_is_warned_about_and_replaced(tmp_path, monkeypatch, content):
    from mbt import paper

    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "01_divergence.json").write_bytes(content)
    (folder / "02_convergence.json").write_text(json.dumps({"findings": {"synchronised": {"ours": "1"}}}))
    with pytest.warns(UserWarning, match="01_divergence.json"):
        assert set(paper.read_records(folder)) == {"synchronised"}
    monkeypatch.setenv(paper.RECORDS_ENV, str(folder))
    with pytest.warns(UserWarning, match="01_divergence.json"):
        paper.record([paper.Finding("cka_final", "0.5")], pair="p")
    assert set(paper.read_records(folder)) == {"cka_final", "synchronised"}
