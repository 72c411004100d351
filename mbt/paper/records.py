r"""Records: each chapter's findings written to a folder per pair, so the book's tables are generated, not typed.

Under the book build (:func:`mbt.book.build`), :data:`RECORDS_ENV` names a folder; :func:`record` writes one
JSON file per chapter there (atomically). :func:`mbt.paper.store.collect_records` gathers them for every pair built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mbt.paper.findings import Finding
from mbt.paper.headlines import chapter_of
from mbt.results import atomic_write

__all__ = ["RECORDS_ENV", "VERDICTS", "check_finding", "read_records", "read_records_file", "record", "slug"]

RECORDS_ENV = "MBT_BOOK_RECORDS"
"""Environment variable naming the folder where :func:`record` writes findings (set by the book build)."""


VERDICTS: tuple[str, ...] = ("holds", "contradicted", "inconclusive")
"""The three verdicts a stored finding may carry (or none, for a row shown for scale)."""

_NUMBERS = ("value", "effect", "ci_low", "ci_high", "level", "mde")
_TEXTS = ("id", "ours", "note", "rule", "unit", "same_as")


def check_finding(finding: Any) -> str | None:
    """What is wrong with a stored finding, in words, or ``None`` when it can be shown.

    A finding can be shown when its verdict is one of :data:`VERDICTS` (or absent), every number
    (``value``, ``effect``, ``ci_low``, ``ci_high``, ``level``, ``mde``) is a finite number or explicitly
    missing (``null``, or NaN where no verdict rests on it), its texts are texts, and a decided verdict
    (holds, contradicted) has a finite effect and interval.
    """
    if not isinstance(finding, Mapping):
        return f"is a {type(finding).__name__}, not an object"
    verdict = finding.get("verdict")
    if verdict is not None and verdict not in VERDICTS:
        return f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}"
    for key in _NUMBERS:
        x = finding.get(key)
        if x is None:
            continue
        if isinstance(x, bool) or not isinstance(x, int | float):
            return f"{key} is {type(x).__name__} {x!r}, not a number"
        if math.isinf(x):
            return f"{key} is infinite"
    for key in _TEXTS:
        x = finding.get(key)
        if x is not None and not isinstance(x, str):
            return f"{key} is {type(x).__name__} {x!r}, not text"
    if verdict in ("holds", "contradicted"):
        for key in ("effect", "ci_low", "ci_high"):
            x = finding.get(key)
            if x is None or math.isnan(x):
                return f"verdict {verdict!r} rests on no {key} (a decided verdict needs its effect and interval)"
    return None


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


def read_records_file(path: str | Path) -> dict[str, Any]:
    """The findings of one records file, ``{headline id: finding}``.

    Raises:
        ValueError: The file is unreadable or holds no findings object (naming it).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"records file {path} is unreadable ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("findings", {}), dict):
        raise ValueError(f"records file {path} does not hold a findings object")
    return dict(data.get("findings", {}))


def read_records(folder: str | Path) -> dict[str, dict[str, Any]]:
    """All findings stored in a records folder, ``{headline id: finding dict}``; unreadable files are warned about."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder).glob("*.json")):
        data = _read(path)
        if data is not None:
            out.update(data.get("findings", {}))
    return out


def slug(text: str) -> str:
    """A label made safe as a folder name (letters, digits, ``-_.``; anything else becomes ``_``).

    Never empty, never ``.`` or ``..`` and never hidden: leading dots become ``_`` (``".."`` gives ``"__"``).
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
    stripped = safe.lstrip(".")
    return "_" * (len(safe) - len(stripped)) + stripped if safe else "_"
