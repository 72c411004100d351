from __future__ import annotations

import json

import pandas as pd
import pytest

from mbt.results import ResultCache, atomic_write, make_key


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
