"""Batch jobs and the results store: nothing stale (content, not size and date), nothing left by a failed job,
one runner per job. Issue 27, defects 1, 6, 7 and 9; each test failed on the code before the fix."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time

import pandas as pd
import pytest
from conftest import REPO

from mbt.book import jobs as book_jobs
from mbt.paper import manifests, store

CHAPTERS = ["01_divergence", "02_convergence"]


@pytest.fixture
def toy_batch(tmp_path, monkeypatch):
    """Batches over toy pairs whose build is a folder of small real files and whose 'kernels' write a record and a
    table (the name of each chapter), unless told to fail or to be interrupted."""
    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    build = tmp_path / "toybuild"
    for role in ("base", "sft"):
        (build / role).mkdir(parents=True)
        (build / role / "config.json").write_text(json.dumps({"role": role}))
        (build / role / "model.safetensors").write_bytes(os.urandom(4096))
    (build / "manifest.json").write_text(json.dumps({"config": {"sft_steps": 300}}))
    monkeypatch.setattr(book_jobs, "resolve_toy", lambda spec, progress=True: dataclasses.replace(
        spec, base=str(build / "base"), sft=str(build / "sft")))
    state = {"calls": [], "fail": set(), "interrupt": set(), "sleep": 0.0, "running": {}, "overlap": 0}
    lock = threading.Lock()

    def execute(nb, out, params, *, kernel_name, cwd, timeout, records):
        job = (params["pair"], out.stem)
        with lock:
            state["calls"].append(job)
            state["running"][job] = state["running"].get(job, 0) + 1
            state["overlap"] = max(state["overlap"], state["running"][job])
        try:
            (records.parent / "tables").mkdir(parents=True, exist_ok=True)
            records.mkdir(parents=True, exist_ok=True)
            (records.parent / "tables" / f"{out.stem}.csv").write_text("layer,value\n1,1.0\n")
            if state["sleep"]:
                time.sleep(state["sleep"])
            if job in state["interrupt"]:
                raise KeyboardInterrupt
            if job in state["fail"]:
                raise RuntimeError(f"kernel died in {out.stem}")
            (records / f"{out.stem}.json").write_text(json.dumps(
                {"chapter": out.stem, "findings": {f"{out.stem}-claim": {"ours": params["pair"]}}}))
            out.write_text("{}")
        finally:
            with lock:
                state["running"][job] -= 1

    monkeypatch.setattr(book_jobs, "_execute", execute)

    def run(pairs=("toy",), **kwargs):
        state["calls"].clear()
        jobs = book_jobs.batch(list(pairs), chapters=CHAPTERS, root=REPO, stage=tmp_path / "stage", progress=False,
                               log=kwargs.pop("log", lambda _: None), **kwargs)
        return {(j.pair, j.chapter): j.run.status for j in jobs}

    state["run"] = run
    state["build"] = build
    return state


def _executed(state) -> list[str]:
    return sorted(chapter for _, chapter in state["calls"])


def test_1_deleting_or_altering_any_store_file_reruns_exactly_the_job_that_made_it(toy_batch):
    run = toy_batch["run"]
    assert set(run().values()) == {"executed"}
    folder = store.store_folder("toy")
    assert set(run().values()) == {"up to date"}

    (folder / "records" / "01_divergence.json").unlink()  # a deleted record
    run()
    assert _executed(toy_batch) == ["01_divergence"]

    table = folder / "tables" / "02_convergence.csv"  # a table altered, same size and date
    stat = table.stat()
    table.write_text(table.read_text().replace("1.0", "9.0"))
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert table.stat().st_size == stat.st_size
    run()
    assert _executed(toy_batch) == ["02_convergence"]

    (folder / "jobs" / "01_divergence.json").unlink()  # a deleted manifest
    run()
    assert _executed(toy_batch) == ["01_divergence"]

    (folder / "store.json").unlink()  # the description is rewritten; every result still holds
    assert set(run().values()) == {"up to date"}
    assert json.loads((folder / "store.json").read_text())["pair"] == "toy"

    shutil.rmtree(folder)  # a whole store folder
    run()
    assert _executed(toy_batch) == CHAPTERS
    entry = store.load_store(folder)
    assert set(entry.records) == {"01_divergence-claim", "02_convergence-claim"} and not entry.problems
    assert set(entry.meta["chapters"]) == set(CHAPTERS)


def test_1_a_reader_leaves_out_what_no_longer_matches_its_manifest_and_says_so(toy_batch):
    toy_batch["run"]()
    folder = store.store_folder("toy")
    (folder / "tables" / "01_divergence.csv").write_text("layer,value\n1,5.0\n")
    (folder / "tables" / "stray.csv").write_text("layer,value\n1,1.0\n")  # copied in by hand
    entry = store.load_store(folder)
    assert set(entry.tables) == {"02_convergence"}
    assert any("01_divergence" in p and "altered" in p for p in entry.problems)
    assert any("tables/stray.csv" in p for p in entry.problems)


def test_6_a_failed_or_interrupted_job_leaves_nothing_a_reader_takes_for_a_result(toy_batch):
    from mbt import book

    toy_batch["fail"].add(("toy", "01_divergence"))
    status = toy_batch["run"]()
    assert status[("toy", "01_divergence")] == "failed"
    folder = store.store_folder("toy")
    entry = store.load_store(folder)
    assert set(entry.tables) == {"02_convergence"}  # the failed job's table never reached the store
    assert not (folder / "tables" / "01_divergence.csv").exists()
    entries, _ = book.comparison_stores(["toy"])
    assert "01_divergence" not in entries["toy"].tables

    toy_batch["fail"].clear()
    toy_batch["interrupt"].add(("toy", "02_convergence"))  # killed mid-run: the old result is withdrawn first
    with pytest.raises(KeyboardInterrupt):
        toy_batch["run"](force=True)
    entry = store.load_store(folder)
    assert "02_convergence" not in entry.tables and "02_convergence" not in entry.meta["chapters"]
    assert list((folder / manifests.STAGING).glob("02_convergence.*"))  # its private folder, unread
    toy_batch["interrupt"].clear()
    toy_batch["run"]()
    assert _executed(toy_batch) == ["02_convergence"] and not list((folder / manifests.STAGING).glob("*"))
    assert set(store.load_store(folder).tables) == {"01_divergence", "02_convergence"}


def test_7_two_batches_at_once_never_run_the_same_job_twice(toy_batch):
    toy_batch["run"](pairs=("toy",))  # the toy pair is prepared once
    toy_batch["sleep"] = 0.4
    messages: list[str] = []
    results: list[dict] = []
    calls: list[tuple[str, str]] = []

    def one() -> None:
        jobs = book_jobs.batch(["toy", "toy-seen"], chapters=CHAPTERS, root=REPO,
                               stage=toy_batch["build"].parent / "stage", progress=False, log=messages.append)
        results.append({(j.pair, j.chapter): j.run.status for j in jobs})

    toy_batch["calls"].clear()
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    calls = list(toy_batch["calls"])
    assert sorted(calls) == sorted((p, c) for p in ("toy-seen",) for c in CHAPTERS)  # each job ran once
    assert toy_batch["overlap"] == 1
    assert any("running elsewhere" in m and "waiting" in m for m in messages)
    assert all(set(r.values()) <= {"executed", "up to date"} for r in results) and len(results) == 2


def test_9_same_size_weights_copied_with_their_dates_kept_rerun_the_chapters(toy_batch):
    run = toy_batch["run"]
    run()
    weights = toy_batch["build"] / "sft" / "model.safetensors"
    other = weights.with_name("other.bin.tmp")
    other.write_bytes(os.urandom(weights.stat().st_size))
    os.utime(other, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns))
    shutil.copy2(other, weights)  # cp -p: same size, same modification time
    other.unlink()
    assert set(run().values()) == {"executed"}
    assert set(run().values()) == {"up to date"}


def test_9_a_book_on_two_folders_notices_same_size_weights_copied_over(tmp_path, monkeypatch):
    from mbt.book import builder

    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    for role in ("base", "sft"):
        (tmp_path / "pair" / role).mkdir(parents=True)
        (tmp_path / "pair" / role / "model.safetensors").write_bytes(os.urandom(2048))
    ran: list[str] = []

    def execute(nb, out, params, **kwargs):
        ran.append(out.stem)
        out.write_text("{}")

    monkeypatch.setattr(book_jobs, "_execute", execute)
    args = dict(base=str(tmp_path / "pair" / "base"), sft=str(tmp_path / "pair" / "sft"), chapters=["01_divergence"],
                root=REPO, stage=tmp_path / "stage", html=False, log=lambda _: None)
    builder.build(**args)
    assert builder.build(**args).chapters[0].status == "up to date"
    weights = tmp_path / "pair" / "base" / "model.safetensors"
    stat = weights.stat()
    weights.write_bytes(os.urandom(stat.st_size))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert builder.build(**args).chapters[0].status == "executed"


def test_a_store_made_by_an_older_mbt_is_rebuilt_not_read(toy_batch):
    folder = store.store_folder("toy")
    folder.mkdir(parents=True)
    (folder / "store.json").write_text(json.dumps({"format": store.STORE_FORMAT, "version": 1, "pair": "toy"}))
    (folder / "tables").mkdir()
    pd.DataFrame({"layer": [1], "value": [7.0]}).to_csv(folder / "tables" / "01_divergence.csv", index=False)
    assert set(toy_batch["run"]().values()) == {"executed"}
    assert store.load_store(folder).tables["01_divergence"]["value"].tolist() == [1.0]
