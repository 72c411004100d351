"""The cross-pair chapter's inputs: the stored results of the chapters before it, not of those after it."""

from __future__ import annotations

import json

from mbt.book import jobs
from mbt.book.chapters import ACROSS, CHAPTERS
from mbt.paper import manifests


def _store(root, chapters):
    folder = root / "toy"
    (folder / "jobs").mkdir(parents=True)
    (folder / "store.json").write_text(json.dumps({"pair": "toy", "quick": False, "version": 1}))
    for chapter in chapters:
        staging = manifests.staging_folder(folder, chapter)
        (staging / "records").mkdir(parents=True, exist_ok=True)
        (staging / "records" / f"{chapter}.json").write_text(json.dumps({"chapter": chapter}))
        manifests.publish(folder, chapter, staging, key=f"key-{chapter}", inputs={})
    return folder


def test_a_chapter_after_the_cross_pair_chapter_does_not_make_it_stale(tmp_path):
    before = CHAPTERS[: CHAPTERS.index(ACROSS)]
    after = CHAPTERS[CHAPTERS.index(ACROSS) + 1:]
    assert after, "the book has a chapter after the cross-pair chapter"
    root = tmp_path / "stores"
    folder = _store(root, before)
    digest = jobs._stores_digest([root])
    for chapter in after:  # a later chapter publishes into the same store: the digest does not move
        staging = manifests.staging_folder(folder, chapter)
        (staging / "records").mkdir(parents=True, exist_ok=True)
        (staging / "records" / f"{chapter}.json").write_text("{}")
        manifests.publish(folder, chapter, staging, key="later", inputs={})
    assert jobs._stores_digest([root]) == digest
    staging = manifests.staging_folder(folder, before[0])  # a chapter before it is re-run: the digest moves
    (staging / "records").mkdir(parents=True, exist_ok=True)
    (staging / "records" / f"{before[0]}.json").write_text(json.dumps({"again": True}))
    manifests.publish(folder, before[0], staging, key="new-key", inputs={})
    assert jobs._stores_digest([root]) != digest
