r"""The results store: one small, versioned folder per pair that the book renders and others can contribute.

Every chapter run by ``mbt book`` or ``mbt batch`` writes into the store folder of its pair::

    <store>/<pair>/                    (<pair> is the pair's label made safe as a folder name; "-quick"
      store.json                        appended for smoke runs)
      records/<chapter>.json           the chapter's findings (:func:`mbt.paper.records.record`)
      tables/<name>.csv                small per-layer tables behind the cross-pair chapter (:func:`save_table`)

``store.json`` holds ``{"format": "mbt-results", "version": 1, "pair": …, "spec": {ids, revisions, family},
"mbt": <version>, "device": …, "quick": …, "toy": {SFT/pretraining compute and quality of a toy pair},
"chapters": {chapter: {"parameters": …, "finished": …}}}``. Tables are CSV with at most a few hundred rows,
so a store is a few hundred kilobytes and can be committed: a store made by ``mbt batch`` on a GPU machine
elsewhere, copied to ``results/<pair>/`` in the repository, is rendered by the book beside the pairs built
locally. A store of another format version is refused with a message saying which version this ``mbt``
reads.

The local store lives in ``<cache root>/store`` (:func:`mbt.results.cache_root`); contributed stores in the
repository's ``results/`` folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mbt.paper.records import RECORDS_ENV, read_records, slug
from mbt.results import atomic_write, cache_root, file_lock

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "StoreEntry",
    "collect_records",
    "contributed_root",
    "load_store",
    "pair_folder",
    "records_root",
    "save_table",
    "store_folder",
    "store_root",
    "stores",
    "update_meta",
]

STORE_FORMAT = "mbt-results"
STORE_VERSION = 1
"""The store format this ``mbt`` writes and reads; a store of another version is refused."""

META = "store.json"


def store_root() -> Path:
    """The local store: ``<cache root>/store`` (``$MBT_CACHE/store`` or ``~/.cache/mbt/store``)."""
    return cache_root() / "store"


def records_root() -> Path:
    """Where the findings of every locally built pair are kept (the local store, :func:`store_root`)."""
    return store_root()


def contributed_root(repository: str | Path) -> Path:
    """The contributed stores of a checkout: ``<repository>/results``."""
    return Path(repository) / "results"


def store_folder(label: str, *, quick: bool = False, root: str | Path | None = None) -> Path:
    """The store folder of a pair: ``<root>/<slug(label)>[-quick]``."""
    return Path(root or store_root()) / (slug(label) + ("-quick" if quick else ""))


def pair_folder() -> Path | None:
    """The store folder the running chapter writes into (set by the book build), else ``None``."""
    records = os.environ.get(RECORDS_ENV)
    return Path(records).parent if records else None


def save_table(name: str, frame: pd.DataFrame) -> Path | None:
    """Keep a small table in the running chapter's store folder (``tables/<name>.csv``); a no-op outside a build.

    A ``replicates`` column (the bootstrap replicates of an :func:`mbt.analyze` table) is left out: the store
    keeps one number per cell.

    Args:
        name: Table name (letters, digits, ``_-``), e.g. ``"pair_metrics"``.
        frame: The table; keep it small (per-layer or per-mask rows).

    Returns:
        The file written, or ``None`` when no build is running.
    """
    if not name or slug(name) != name:
        raise ValueError(f"a table name takes letters, digits and '-_.' only, got {name!r}")
    folder = pair_folder()
    if folder is None:
        return None
    path = folder / "tables" / f"{name}.csv"
    flat = frame.drop(columns=["replicates"], errors="ignore")
    atomic_write(path, lambda tmp: flat.to_csv(tmp, index=False))
    return path


def update_meta(folder: str | Path, **values: Any) -> dict[str, Any]:
    """Create or update a store folder's ``store.json`` (under a file lock); ``chapters`` entries are merged.

    Args:
        folder: The pair's store folder.
        **values: Fields to set (``pair``, ``spec``, ``device``, ``quick``, ``toy``, ``chapters={name: {...}}``).

    Returns:
        The metadata as written.
    """
    folder = Path(folder)
    path = folder / META
    with file_lock(path):
        meta = _read_meta(path) if path.exists() else {}
        chapters = {**meta.get("chapters", {}), **values.pop("chapters", {})}
        meta.update({"format": STORE_FORMAT, "version": STORE_VERSION, **values, "chapters": chapters,
                     "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        blob = json.dumps(meta, indent=1, sort_keys=True, default=str)
        atomic_write(path, lambda tmp: tmp.write_text(blob))
    return meta


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable store description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not an mbt results store (format {found!r})")
    if meta.get("version") != STORE_VERSION:
        raise ValueError(f"{path.parent} is a results store of format version {meta.get('version')!r}; this mbt "
                         f"reads version {STORE_VERSION}. Re-create it with this version (`mbt batch`), or read it "
                         "with the mbt version that wrote it (its store.json names it).")
    return meta


@dataclass
class StoreEntry:
    """One pair's store, as read back.

    Attributes:
        label: The pair's label.
        folder: Its folder.
        meta: ``store.json``.
        records: ``{headline id: finding dict}`` of every chapter.
        tables: ``{name: DataFrame}``.
    """

    label: str
    folder: Path
    meta: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame | None:
        """A table, or ``None`` when the chapter that writes it has not run for this pair."""
        return self.tables.get(name)


def load_store(folder: str | Path) -> StoreEntry:
    """Read one pair's store folder.

    Raises:
        ValueError: The folder is not a store, or one of another format version.
        FileNotFoundError: The folder has no ``store.json``.
    """
    folder = Path(folder)
    path = folder / META
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no {META}: not an mbt results store")
    meta = _read_meta(path)
    tables = {p.stem: pd.read_csv(p) for p in sorted((folder / "tables").glob("*.csv"))}
    records = read_records(folder / "records") if (folder / "records").is_dir() else {}
    return StoreEntry(label=str(meta.get("pair", folder.name)), folder=folder, meta=meta, records=records,
                      tables=tables)


def stores(roots: Iterable[str | Path], *, quick: bool | None = False) -> dict[str, StoreEntry]:
    """Every pair store under the given roots, by label; earlier roots win for a label found twice.

    Args:
        roots: Folders holding store folders (e.g. :func:`store_root` and :func:`contributed_root`).
        quick: ``False``: only full runs; ``True``: only quick runs; ``None``: both.
    """
    out: dict[str, StoreEntry] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / META).is_file()):
            entry = load_store(folder)
            is_quick = bool(entry.meta.get("quick"))
            if quick is not None and is_quick != quick:
                continue
            out.setdefault(entry.label, entry)
    return out


def collect_records(current: str, *, roots: Iterable[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """Records of the current build's pair first, then every other pair built in full (not quick) mode.

    Args:
        current: The current pair's store folder name (``slug(label)``, ``-quick`` for smoke runs).
        roots: More store roots (contributed stores) after the local one.
    """
    out: dict[str, dict[str, Any]] = {}
    root = records_root()
    cur = root / slug(current)
    if (cur / "records").is_dir():
        out[current] = read_records(cur / "records")
    for base in (root, *roots):
        base = Path(base)
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            label = folder.name
            if folder == cur or label.endswith("-quick") or label in out or not (folder / "records").is_dir():
                continue
            found = read_records(folder / "records")
            if found:
                out[label] = found
    if not out:
        out[current] = {}
    return out

