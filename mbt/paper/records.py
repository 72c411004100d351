r"""Records: each chapter's findings written to a folder per pair, so the book's tables are generated, not typed.

Under the book build (:func:`mbt.book.build`), :data:`RECORDS_ENV` names a folder; :func:`record` writes one
JSON file per chapter there (atomically). :func:`mbt.paper.store.collect_records` gathers them for every pair built.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mbt.paper.findings import Finding
from mbt.paper.headlines import chapter_of
from mbt.results import atomic_write

__all__ = ["RECORDS_ENV", "read_records", "record", "slug"]

RECORDS_ENV = "MBT_BOOK_RECORDS"
"""Environment variable naming the folder where :func:`record` writes findings (set by the book build)."""


def _records_dir() -> Path | None:
    path = os.environ.get(RECORDS_ENV)
    return Path(path) if path else None


def record(findings: Iterable[Finding], *, pair: str = "", settings: Mapping[str, Any] | None = None) -> None:
    """Write findings to the records folder named by :data:`RECORDS_ENV` (set by the book build); else do nothing.

    Args:
        findings: Findings of one chapter (or several). A finding that stands for several headlines
            (``also``) is stored under each of them, the extra ones with ``same_as`` naming the first.
        pair: Label of the pair they were computed on.
        settings: What produced them (sample sizes, datasets, conventions): stored with the records.
    """
    by_chapter: dict[str, list[Finding]] = {}
    for f in findings:
        by_chapter.setdefault(chapter_of(f.id), []).append(f)
    folder = _records_dir()
    if folder is None:
        return
    for chapter, found in by_chapter.items():
        path = folder / f"{chapter}.json"
        data = _read(path) if path.exists() else None
        if data is None:  # absent, or unreadable (warned): this chapter's records start afresh
            data = {"chapter": chapter, "findings": {}}
        data["pair"] = pair
        data["settings"] = dict(settings or {})
        for f in found:
            data["findings"][f.id] = dataclasses.asdict(f)
            for alias in f.also:  # the same comparison: one verdict, listed under every headline it stands for
                data["findings"][alias] = {**dataclasses.asdict(f), "id": alias, "same_as": f.id}
        blob = json.dumps(data, indent=1, default=str)
        atomic_write(path, lambda tmp, blob=blob: tmp.write_text(blob))


def _read(path: Path) -> dict[str, Any] | None:
    """A records file's content, or ``None`` with a warning naming the file when it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"records file {path} is unreadable ({exc}); its findings are left out", stacklevel=3)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("findings", {}), dict):
        warnings.warn(f"records file {path} does not hold a findings object; its findings are left out",
                      stacklevel=3)
        return None
    return data


def read_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """All findings stored in a records folder, ``{headline id: finding dict}``; unreadable files are warned about."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = _read(path)
        if data is not None:
            out.update(data.get("findings", {}))
    return out


def slug(text: str) -> str:
    """A label made safe as a folder name (letters, digits, ``-_.``; anything else becomes ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
