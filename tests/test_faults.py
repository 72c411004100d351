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
