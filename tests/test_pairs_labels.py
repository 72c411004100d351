"""Pair labels derived from --base/--sft are names, never paths; a store folder always lies in the store root.

Issue 27, defect 8 (``mbt book --base D/x/../base --sft D/x/../sft`` got the label ``..`` and wrote its store into
the cache root); the test failed on the code before the fix.
"""

from __future__ import annotations

import pytest
from conftest import REPO

from mbt import pairs
from mbt.book import builder
from mbt.book import jobs as book_jobs
from mbt.paper import store
from mbt.paper.records import slug
from mbt.results import cache_root


def test_8_a_book_on_dot_dot_paths_gets_a_name_and_a_store_inside_the_store_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    folders = tmp_path / "D"
    for name in ("x", "base", "sft"):
        (folders / name).mkdir(parents=True)
        (folders / name / "config.json").write_text("{}")
    base, sft = str(folders / "x" / ".." / "base"), str(folders / "x" / ".." / "sft")
    assert pairs.folder_label(base, sft) == "D"
    monkeypatch.setattr(book_jobs, "_execute", lambda nb, out, params, **k: out.write_text("{}"))
    report = builder.build(base=base, sft=sft, chapters=["01_divergence"], root=REPO, stage=tmp_path / "stage",
                           html=False, log=lambda _: None)
    assert report.ok and report.pair == "D"
    assert (store.store_root() / "D" / "store.json").is_file()
    assert not (cache_root() / "store.json").exists() and not (tmp_path / "store.json").exists()


def test_8_labels_are_never_empty_dot_or_a_registered_pairs_name(tmp_path):
    for name in ("toy", "olmo2-1b", "toy-quick"):
        for role in ("base", "sft"):
            (tmp_path / name / role).mkdir(parents=True)
        label = pairs.folder_label(str(tmp_path / name / "base"), str(tmp_path / name / "sft"))
        assert label == f"{name} (folders)" and label not in pairs.PAIRS
    assert pairs.folder_label("..", "../..").strip(". ")
    assert pairs.folder_label("/", "/") == "base vs sft"
    assert pairs.folder_label("org/m", "org/m-sft") == "m vs m-sft"


@pytest.mark.parametrize("label", ["", ".", "..", "../x", ".hidden", "a/b", "/abs"])
def test_8_a_store_folder_never_leaves_the_store_root(tmp_path, label):
    folder = store.store_folder(label, root=tmp_path)
    assert folder.parent == tmp_path and folder.name not in ("", ".", "..") and not folder.name.startswith(".")
    assert slug(label) == folder.name
