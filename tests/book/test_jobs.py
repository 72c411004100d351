"""Batch re-execution over pairs into the results store: independent jobs, resume, versioned stores."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from conftest import REPO

from mbt import cli, paper
from mbt.book import builder, chapters
from mbt.book import jobs as book_jobs
from mbt.paper import store

CHAPTERS = ["01_divergence", "02_convergence"]


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A batch whose 'kernels' write a record and a table, with toy pairs resolved to a fake build."""
    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    build = tmp_path / "toybuild"
    (build / "base").mkdir(parents=True)
    (build / "sft").mkdir()
    (build / "manifest.json").write_text(json.dumps({
        "config": {"sft_steps": 300},
        "data": {"sft_compute": {"ratio": 0.2, "sft_tokens": 2.0, "pretrain_tokens": 10.0}},
        "quality": {"toy_math": {"base_0shot": 0.0, "base_3shot": 0.01, "sft_0shot": 0.4},
                    "weight_change": [{"attn_rel": 0.1}, {"attn_rel": 0.3}]}}))
    monkeypatch.setattr(book_jobs, "resolve_toy", lambda spec, progress=True: dataclasses.replace(
        spec, base=str(build / "base"), sft=str(build / "sft")))
    monkeypatch.setattr(book_jobs, "pair_source_key", lambda pair, base=None, sft=None: {"pair": pair})
    calls: list[tuple[str, str]] = []
    fail: set[tuple[str, str]] = set()

    def execute(nb, out, params, *, kernel_name, cwd, timeout, records):
        chapter = out.stem
        calls.append((params["pair"], chapter))
        if (params["pair"], chapter) in fail:
            raise RuntimeError(f"kernel died in {chapter}")
        records.mkdir(parents=True, exist_ok=True)
        (records / f"{chapter}.json").write_text(json.dumps(
            {"chapter": chapter, "findings": {f"{chapter}-claim": {"ours": params["pair"]}}}))
        tables = records.parent / "tables"
        tables.mkdir(exist_ok=True)
        pd.DataFrame({"layer": [1], "value": [1.0]}).to_csv(tables / f"{chapter}.csv", index=False)
        out.write_text("{}")

    monkeypatch.setattr(book_jobs, "_execute", execute)
    return calls, fail


def _status(jobs):
    return {(j.pair, j.chapter): j.run.status for j in jobs}


def test_batch_runs_every_job_isolates_failures_and_resumes(fake_run, tmp_path):
    calls, fail = fake_run
    fail.add(("toy-seen", "01_divergence"))
    stage = tmp_path / "stage"
    jobs = book_jobs.batch(["toy", "toy-seen"], chapters=CHAPTERS, root=REPO, stage=stage, progress=False,
                         log=lambda _: None)
    assert _status(jobs) == {("toy", "01_divergence"): "executed", ("toy", "02_convergence"): "executed",
                             ("toy-seen", "01_divergence"): "failed", ("toy-seen", "02_convergence"): "executed"}
    summary = book_jobs.batch_summary(jobs)
    assert "3 executed" in summary and "1 failed" in summary and "FAILED toy-seen / 01_divergence" in summary
    fail.clear()
    calls.clear()
    again = book_jobs.batch(["toy", "toy-seen"], chapters=CHAPTERS, root=REPO, stage=stage, progress=False,
                          log=lambda _: None)
    assert calls == [("toy-seen", "01_divergence")]  # no finished job repeated
    assert set(_status(again).values()) == {"up to date", "executed"}
    entry = store.load_store(store.store_folder("toy-seen"))
    assert set(entry.records) == {"01_divergence-claim", "02_convergence-claim"}  # no record lost
    assert set(entry.tables) == {"01_divergence", "02_convergence"}
    assert entry.meta["version"] == store.STORE_VERSION and set(entry.meta["chapters"]) == set(CHAPTERS)
    assert entry.meta["toy"]["sft_compute_ratio"] == 0.2 and entry.meta["toy"]["weight_change_rel"] == 0.2
    assert entry.meta["spec"]["name"] == "toy-seen" and entry.meta["device"]


def test_batch_side_by_side_splits_by_pair_and_falls_back_when_a_worker_dies(fake_run, tmp_path, monkeypatch):
    calls, fail = fake_run
    fail.add(("toy-seen", "01_divergence"))
    dispatched: list[dict] = []

    def here(fn, calls_, *, workers, threads, **_):  # the worker processes, run in this process
        assert fn is book_jobs.pair_chapters and workers == 2 and threads >= 1
        dispatched.extend(calls_)
        return [fn(**kwargs) for kwargs in calls_]

    monkeypatch.setattr(book_jobs, "side_by_side", here)
    stage = tmp_path / "stage"
    got = book_jobs.batch(["toy", "toy-seen"], chapters=CHAPTERS, root=REPO, stage=stage, progress=False, workers=2,
                        log=lambda _: None)
    assert [c["name"] for c in dispatched] == ["toy", "toy-seen"]  # one pair per worker, chapters in order
    assert all(c["chapters"] == CHAPTERS and c["stage"] == stage and "log" not in c for c in dispatched)
    assert [(j.pair, j.chapter) for j in got] == [(p, c) for p in ("toy", "toy-seen") for c in CHAPTERS]
    assert _status(got)[("toy-seen", "01_divergence")] == "failed"

    def dies(*_a, **_k):
        raise RuntimeError("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(book_jobs, "side_by_side", dies)
    fail.clear()
    calls.clear()
    messages: list[str] = []
    monkeypatch.setattr(book_jobs, "slots", lambda threads, *, jobs: 2)  # workers=0: as many as fit (here 2)
    again = book_jobs.batch(["toy", "toy-seen"], chapters=CHAPTERS, root=REPO, stage=stage, progress=False, workers=0,
                          log=messages.append)
    assert any("one pair at a time" in m for m in messages)
    assert calls == [("toy-seen", "01_divergence")]  # the fallback repeats no finished job
    assert set(_status(again).values()) == {"up to date", "executed"}
    with pytest.raises(ValueError, match="whole number"):
        book_jobs.batch(["toy"], chapters=CHAPTERS, root=REPO, stage=stage, progress=False, workers=-1)


def test_batch_refuses_bad_input_before_running(fake_run, tmp_path):
    calls, _ = fake_run
    with pytest.raises(ValueError, match="unknown pair"):
        book_jobs.batch(["toy", "olmo9"], chapters=CHAPTERS, root=REPO, stage=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown chapters"):
        book_jobs.batch(["toy"], chapters=["99_x"], root=REPO, stage=tmp_path, progress=False)
    with pytest.raises(ValueError, match="valid names"):
        book_jobs.batch(["toy"], chapters=CHAPTERS, parameters={"nope": 1}, root=REPO, stage=tmp_path,
                      progress=False)
    assert calls == []


def test_cli_batch_exit_status(fake_run, capsys):
    calls, fail = fake_run
    fail.add(("toy", "02_convergence"))
    code = cli.main(["batch", "--pairs", "toy", "--chapters", "01,02", "--root", str(REPO)])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED toy / 02_convergence" in out and calls[0] == ("toy", "01_divergence")


def test_store_versions_and_contributed_stores(tmp_path, monkeypatch):
    from store_fakes import write_store

    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    write_store(store.store_folder("toy"), "toy", findings={"cka_final": {"ours": "0.5"}})
    contributed = tmp_path / "results"
    write_store(contributed / "olmo2-1b", "olmo2-1b", findings={"cka_final": {"ours": "0.7"}}, device="NVIDIA H200")
    found = store.stores([store.store_root(), contributed])
    assert set(found) == {"toy", "olmo2-1b"} and found["olmo2-1b"].meta["device"] == "NVIDIA H200"
    records = paper.collect_records("toy", roots=[contributed])
    assert list(records) == ["toy", "olmo2-1b"] and records["olmo2-1b"]["cka_final"]["ours"] == "0.7"
    old = tmp_path / "old"
    store.update_meta(old, pair="x")
    meta = json.loads((old / "store.json").read_text())
    (old / "store.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match=f"format version 99; this mbt reads version {store.STORE_VERSION}"):
        store.load_store(old)
    (old / "store.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not an mbt results store"):
        store.load_store(old)


def test_save_table_writes_only_inside_a_build(tmp_path, monkeypatch):
    monkeypatch.delenv(paper.RECORDS_ENV, raising=False)
    assert paper.save_table("pair_metrics", pd.DataFrame({"a": [1]})) is None
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "toy" / "records"))
    path = paper.save_table("pair_metrics", pd.DataFrame({"a": [1]}))
    assert path == tmp_path / "toy" / "tables" / "pair_metrics.csv" and pd.read_csv(path)["a"].tolist() == [1]
    with pytest.raises(ValueError, match="table name"):
        paper.save_table("../escape", pd.DataFrame())


def test_the_cross_pair_chapter_runs_the_ladder_only_for_a_toy_book():
    from mbt import toy

    assert book_jobs.across_pairs("toy", []) == list(toy.LADDER)
    assert book_jobs.across_pairs("olmo2-1b", []) == []  # compares whatever already has results
    assert book_jobs.across_pairs("b vs s", ["olmo2-1b", "toy"]) == ["olmo2-1b", "toy"]


def test_default_comparison_lists_stored_pairs_with_the_books_pair_first(tmp_path, monkeypatch):
    from mbt import book, toy

    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    from store_fakes import registry_spec

    for label in ("a", "olmo2-1b"):
        store.update_meta(store.store_folder(label), pair=label, quick=False, spec=registry_spec(label))
    assert book.default_comparison("toy") == list(toy.LADDER)
    assert book.default_comparison("olmo2-1b")[:2] == ["olmo2-1b", "a"]
    assert book.default_comparison("other") == ["a", "olmo2-1b"]


def test_batch_side_by_side_starts_the_strongest_ladder_rungs_first(fake_run, tmp_path, monkeypatch):
    order: list[list[str]] = []

    def here(fn, calls_, **_):
        order.extend(c["name"] for c in calls_)
        return [fn(**kwargs) for kwargs in calls_]

    monkeypatch.setattr(book_jobs, "side_by_side", here)
    pairs = ["toy-sft10", "toy", "toy-sft150", "toy-seen"]
    got = book_jobs.batch(pairs, chapters=CHAPTERS[:1], root=REPO, stage=tmp_path / "stage", progress=False,
                        workers=2, log=lambda _: None)
    assert order == ["toy", "toy-seen", "toy-sft150", "toy-sft10"]  # longest SFT first (the default 300), stable
    assert [j.pair for j in got] == pairs  # the jobs come back in the order asked for


def test_a_toy_book_runs_its_own_chapters_beside_the_ladder_once(fake_run, tmp_path, monkeypatch):
    from mbt import toy

    calls, fail = fake_run
    dispatched: list[dict] = []

    def here(fn, calls_, *, workers, threads, **_):  # the worker processes, run in this process
        assert fn is book_jobs.pair_chapters and workers == 2
        dispatched.extend(calls_)
        return [fn(**kwargs) for kwargs in calls_]

    monkeypatch.setattr(book_jobs, "side_by_side", here)
    monkeypatch.setattr(builder, "slots", lambda threads, *, jobs: min(2, jobs))
    monkeypatch.setattr(builder, "resolve_toy", book_jobs.resolve_toy)  # the fake build, not a real one
    stage = tmp_path / "stage"
    wanted = ["01_divergence", "05_swapping", "07_beyond", chapters.ACROSS]
    args = dict(pair="toy", chapters=wanted, root=REPO, stage=stage, output=tmp_path / "out", html=False,
                log=lambda _: None)
    fail.add(("toy", "05_swapping"))
    report = builder.build(**args)
    own = dispatched[0]
    assert own["name"] == "toy" and own["chapters"] == ["01_divergence", "05_swapping"]  # not the LoRA chapters
    assert own["out_dir"] == stage / "notebooks" and own["params"]["pair"] == "toy"
    rungs = [c["name"] for c in dispatched[1:]]
    assert sorted(rungs) == sorted(p for p in toy.LADDER if p != "toy")
    steps = [builder.get_pair(p).toy_sft_steps or 300 for p in rungs]
    assert steps == sorted(steps, reverse=True) and steps[0] == 300  # strongest rung first (toy-seed1)
    assert calls.count(("toy", "01_divergence")) == 1  # executed once, in the pool, not again by the build
    status = {c.name: c.status for c in report.chapters}
    assert status["01_divergence"] == "executed" and status["05_swapping"] == "failed"
    assert status["07_beyond"] == "skipped" and status[chapters.ACROSS] == "skipped"  # nothing after a failure
    assert (stage / "notebooks" / "01_divergence.ipynb").exists()

    fail.clear()
    calls.clear()
    again = builder.build(**args)
    own_runs = [c for c in calls if c[0] == "toy"]
    assert own_runs == [("toy", "05_swapping"), ("toy", "07_beyond"), ("toy", chapters.ACROSS)]  # the rest resumes
    assert again.ok and {c.name: c.status for c in again.chapters}["01_divergence"] == "up to date"
