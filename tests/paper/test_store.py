"""The results store (mbt.paper.store)."""

from __future__ import annotations

from mbt import paper


def test_collect_records_current_pair_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    root = paper.records_root()
    from store_fakes import write_store

    for slug, hid in (("toy", "cka_final"), ("olmo2-1b", "middle_stable"), ("toy-quick", "cka_plateau")):
        write_store(root / slug, slug.removesuffix("-quick"), quick=slug.endswith("-quick"),
                    findings={hid: {"ours": "1", "agrees": None}})
    assert list(paper.collect_records("toy")) == ["toy", "olmo2-1b"]
    assert list(paper.collect_records("toy-quick")) == ["toy-quick", "olmo2-1b", "toy"]
