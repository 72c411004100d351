"""The results store (mbt.paper.store)."""

from __future__ import annotations

import json

from mbt import paper


def test_collect_records_current_pair_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    root = paper.records_root()
    for slug, hid in (("toy", "cka_final"), ("olmo2-1b", "middle_stable"), ("toy-quick", "cka_plateau")):
        (root / slug / "records").mkdir(parents=True)
        (root / slug / "records" / "x.json").write_text(json.dumps({"findings": {hid: {"ours": "1", "agrees": None}}}))
    assert list(paper.collect_records("toy")) == ["toy", "olmo2-1b"]
    assert list(paper.collect_records("toy-quick")) == ["toy-quick", "olmo2-1b", "toy"]
