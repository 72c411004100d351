from __future__ import annotations

import json

import pandas as pd
import pytest

from mbt.results import TEXT_COLUMNS, ResultCache, atomic_write, make_key, read_csv_table


def test_key_depends_on_settings_not_their_order():
    assert make_key({"a": 1, "b": [1, 2]}) == make_key({"b": [1, 2], "a": 1})
    assert make_key({"a": 1}) != make_key({"a": 2})


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "x.txt"

    def fail(tmp):
        tmp.write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []
    atomic_write(target, lambda tmp: tmp.write_text("done"))
    assert target.read_text() == "done" and len(list(tmp_path.iterdir())) == 1


def test_roundtrip_manifest_and_corruption_detection(tmp_path):
    cache = ResultCache(tmp_path, kind="t")
    frame = pd.DataFrame({"layer": [0, 1], "value": [0.5, 0.25]})
    settings = {"pair": "p", "seed": 0}
    key = make_key(settings)
    assert cache.load(key) is None
    cache.save(key, frame, settings, seconds=1.5)
    pd.testing.assert_frame_equal(cache.load(key), frame)
    meta = cache.manifest(key)
    assert meta["settings"] == settings and meta["rows"] == 2 and meta["seconds"] == 1.5
    assert "torch" in meta["provenance"]["packages"]
    table, manifest = cache.paths(key)
    table.write_bytes(table.read_bytes()[:20])  # truncated file
    with pytest.warns(UserWarning, match="partial or corrupt"):
        assert cache.load(key) is None
    assert not table.exists() and not manifest.exists()
    # a table without its manifest (interrupted before the manifest was written) is not trusted
    cache.save(key, frame, settings)
    manifest.unlink()
    with pytest.warns(UserWarning):
        assert cache.load(key) is None
    json.dumps(meta)


def test_cache_root_honours_mbt_cache_then_xdg(monkeypatch, tmp_path):
    from mbt.results import cache_root

    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("MBT_CACHE")
    assert cache_root() == tmp_path / "xdg" / "mbt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "mbt"


def test_text_fingerprint_is_unambiguous_and_typed():
    from mbt.results import text_fingerprint

    a = ["the cat\0sat on the mat", "a dog ran"]
    b = ["the cat", "sat on the mat\0a dog ran"]
    assert text_fingerprint(a) != text_fingerprint(b)
    assert text_fingerprint(["ab", "c"]) != text_fingerprint(["a", "bc"])
    assert text_fingerprint(["x", "y"]) != text_fingerprint(["y", "x"])
    with pytest.raises(TypeError):
        text_fingerprint("one string")
    with pytest.raises(TypeError, match="text 1"):
        text_fingerprint(["a", 3])


def test_weights_fingerprint_hashes_content_once(tmp_path, monkeypatch):
    import os

    from mbt import results

    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"A" * 64)
    (folder / "config.json").write_text("{}")
    (folder / "README.md").write_text("not part of the identity")
    first = results.weights_fingerprint(folder)
    assert len(first) == 64 and (results.cache_root() / "hashes.json").exists()
    calls = []
    original = results.file_sha256
    monkeypatch.setattr(results, "file_sha256", lambda p: calls.append(p) or original(p))
    assert results.weights_fingerprint(folder) == first and calls == []  # remembered, not rehashed
    (folder / "README.md").write_text("edited")
    assert results.weights_fingerprint(folder) == first
    # another file of the same size, even with the old modification time, is noticed
    stat = (folder / "model.safetensors").stat()
    replacement = tmp_path / "other.safetensors"
    replacement.write_bytes(b"B" * 64)
    os.replace(replacement, folder / "model.safetensors")
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = results.weights_fingerprint(folder)
    assert second != first and len(calls) == 1
    assert results.weights_fingerprint(folder / "model.safetensors") != second  # one file
    with pytest.raises(FileNotFoundError):
        results.weights_fingerprint(tmp_path / "missing")


def test_cached_computes_once_and_announces_hits(tmp_path, capsys):
    from mbt.results import cached

    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [1, 2]})

    first = cached("demo", {"a": 1}, compute, root=tmp_path)
    assert capsys.readouterr().err == ""
    again = cached("demo", {"a": 1}, compute, root=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    assert calls == [1]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mbt: cached demo result ") and "computed 20" in err[0]
    cached("demo", {"a": 1}, compute, root=tmp_path, announce=False)
    assert capsys.readouterr().err == ""
    cached("demo", {"a": 2}, compute, root=tmp_path)
    cached("demo", {"a": 1}, compute, root=tmp_path, cache=False)
    assert calls == [1, 1, 1]
    with pytest.raises(TypeError, match="DataFrame"):
        cached("demo", {"a": 3}, lambda: [1, 2], root=tmp_path)


def test_file_lock_is_exclusive_within_and_across_holders(tmp_path):
    import threading
    import time

    from mbt.results import file_lock

    target = tmp_path / "table.parquet"
    inside, overlaps = [], []

    def work():
        with file_lock(target):
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and (tmp_path / "table.parquet.lock").exists()


def test_csv_tables_keep_masks_and_per_problem_scores_as_text(tmp_path):
    path = tmp_path / "runs.csv"
    frame = pd.DataFrame({"mask": ["01100", "00000"], "accuracy_items": ["0010", "0000"], "device": ["0", "cpu"],
                          "accuracy": [0.25, 0.0]})
    frame.to_csv(path, index=False)
    assert pd.read_csv(path)["mask"].tolist() == [1100, 0]  # what a plain reader makes of them
    back = read_csv_table(path)
    assert back["mask"].tolist() == ["01100", "00000"] and back["accuracy_items"].tolist() == ["0010", "0000"]
    assert back["device"].tolist() == ["0", "cpu"] and back["accuracy"].dtype == float
    assert {"mask", "accuracy_items"} <= set(TEXT_COLUMNS)
