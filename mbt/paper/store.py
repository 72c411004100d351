r"""The results store: one small, versioned folder per pair that the book renders and others can contribute.

Every chapter run by ``mbt book`` or ``mbt batch`` writes into the store folder of its pair, through a job
(:mod:`mbt.paper.manifests`: written in a private folder, moved into place when it finished, vouched for by
a manifest)::

    <store>/<pair>/                    (<pair> is the pair's label made safe as a folder name; "-quick"
      store.json                        appended for smoke runs)
      records/<chapter>.json           the chapter's findings (:func:`mbt.paper.records.record`)
      tables/<name>.csv                small per-layer tables behind the cross-pair chapter (:func:`save_table`)
      jobs/<chapter>.json              the job's manifest: its inputs and the SHA-256 of each file it wrote

``store.json`` holds ``{"format": "mbt-results", "version": 2, "pair": …, "spec": {ids, revisions, family},
"mbt": <version>, "device": …, "quick": …, "toy": {SFT/pretraining compute and quality of a toy pair},
"chapters": {chapter: {"parameters": …, "finished": …}}}``. Tables are CSV with at most a few hundred rows,
so a store is a few hundred kilobytes and can be committed: a store made by ``mbt batch`` on a GPU machine
elsewhere, copied to ``results/<pair>/`` in the repository, is rendered by the book beside the pairs built
locally. Every store is checked before it is shown (:func:`load_store`, :func:`scan_stores`): its format
version, its manifests, the model ids it claims against its own manifests and the registry, and every value
and verdict; a store that fails is left out and listed once with the reason, on every page alike.

The local store lives in ``<cache root>/store`` (:func:`mbt.results.cache_root`); contributed stores in the
repository's ``results/`` folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbt.pairs import PAIRS
from mbt.paper.manifests import unclaimed_files, verified_jobs
from mbt.paper.records import RECORDS_ENV, check_finding, read_records_file, slug
from mbt.results import atomic_write, cache_root, file_lock, read_csv_table

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "StoreEntry",
    "StoreProblem",
    "StoreScan",
    "check_table",
    "collect_records",
    "contributed_root",
    "load_store",
    "pair_folder",
    "records_root",
    "save_table",
    "scan_stores",
    "store_folder",
    "store_problems",
    "store_root",
    "stores",
    "update_meta",
]

STORE_FORMAT = "mbt-results"
STORE_VERSION = 2
"""The store format this ``mbt`` writes and reads; a store of another version is refused. Version 2: every
chapter's outputs are vouched for by a job manifest (:mod:`mbt.paper.manifests`)."""

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
    """The store folder of a pair: ``<root>/<slug(label)>[-quick]``, always directly under the store root.

    Raises:
        ValueError: The label would name a folder outside the store root (cannot happen with :func:`slug`;
            checked all the same).
    """
    base = Path(root or store_root())
    folder = base / (slug(label) + ("-quick" if quick else ""))
    if folder.resolve().parent != base.resolve():
        raise ValueError(f"pair label {label!r} does not name a folder inside the results store {base}")
    return folder


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

    A ``store.json`` of another format version (a store made by an older ``mbt`` in the local cache) is
    started afresh: its files have no job manifests, so no reader takes them for results, and the next run of
    each chapter replaces them.

    Args:
        folder: The pair's store folder.
        **values: Fields to set (``pair``, ``spec``, ``device``, ``quick``, ``toy``, ``chapters={name: {...}}``).

    Returns:
        The metadata as written.
    """
    folder = Path(folder)
    path = folder / META
    with file_lock(path):
        try:
            meta = _read_meta(path) if path.exists() else {}
        except ValueError:
            meta = {}
        chapters = {**meta.get("chapters", {}), **values.pop("chapters", {})}
        meta.update({"format": STORE_FORMAT, "version": STORE_VERSION, **values, "chapters": chapters,
                     "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        blob = json.dumps(meta, indent=1, sort_keys=True, default=str)
        atomic_write(path, lambda tmp: tmp.write_text(blob))
    return meta


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable store description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not an mbt results store (format {found!r})")
    if meta.get("version") != STORE_VERSION:
        raise ValueError(f"{path.parent} is a results store of format version {meta.get('version')!r}; this mbt "
                         f"reads version {STORE_VERSION}. Re-create it with this version (`mbt batch`), or read it "
                         "with the mbt version that wrote it (its store.json names it).")
    if not isinstance(meta.get("pair", ""), str) or not isinstance(meta.get("spec", {}), dict):
        raise ValueError(f"{path} names its pair or spec wrongly (pair must be text, spec an object)")
    return meta


@dataclass
class StoreEntry:
    """One pair's store, as read back: only what finished jobs wrote and their manifests vouch for.

    Attributes:
        label: The pair's label (its ``store.json`` name, or ``"<name> (other models)"`` when the store claims
            a registered pair's name but was built from other models).
        folder: Its folder.
        meta: ``store.json`` (``chapters``: the chapters whose results hold).
        records: ``{headline id: finding dict}`` of every chapter.
        tables: ``{name: DataFrame}``.
        problems: What was left out of it, or why it is shown under another label, one line each.
    """

    label: str
    folder: Path
    meta: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame | None:
        """A table, or ``None`` when the chapter that writes it has not run for this pair."""
        return self.tables.get(name)


_NUMERIC_COLUMNS = ("layer", "block", "depth", "value", "ci_low", "ci_high", "eq1_abs", "eq1_relative",
                    "answer_nll_mean", "accuracy_mean")


def check_table(frame: pd.DataFrame) -> str | None:
    """What is wrong with a stored table, or ``None``: numbers must be finite or missing (an empty cell), never text."""
    for column in frame.columns:
        values = frame[column]
        if str(column) in _NUMERIC_COLUMNS and not pd.api.types.is_numeric_dtype(values):
            bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
            if len(bad):
                return f"column {column!r} holds text ({bad.iloc[0]!r}) where numbers belong"
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            if bool(np.isinf(values.to_numpy(dtype=float)).any()):
                return f"column {column!r} holds infinite values"
    return None


_SPEC_KEYS = ("base", "sft", "base_revision", "sft_revision")


def _other_models(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """The spec fields (ids and revisions) in which a store's ``spec`` differs from ``spec``."""
    mine = meta.get("spec") or {}
    return [k for k in _SPEC_KEYS if isinstance(spec.get(k), str | None) and k in spec and mine.get(k) != spec.get(k)]


def load_store(folder: str | Path) -> StoreEntry:
    """Read one pair's store folder, checking it before anything is shown.

    Only the outputs of finished jobs whose manifests hold are read (:func:`mbt.paper.manifests.verified_jobs`):
    a chapter with an output missing or altered since, one whose manifest names other models than
    ``store.json``, and files no manifest lists are left out (each named in :attr:`StoreEntry.problems`). A
    store that claims a registered pair's name but names other model ids or revisions is labelled
    ``"<name> (other models)"``, never as the registered pair.

    Raises:
        FileNotFoundError: The folder has no ``store.json``.
        ValueError: The folder is not a store, one of another format version, or a finding or table in it
            that cannot be shown (a verdict that is none of the three, a number that is text or infinite, a
            decided verdict without its interval), naming the file.
    """
    folder = Path(folder)
    path = folder / META
    if not path.exists():
        raise FileNotFoundError(f"{folder} holds no {META}: not an mbt results store")
    meta = _read_meta(path)
    jobs, problems = verified_jobs(folder)
    for chapter, manifest in list(jobs.items()):
        made_from = (manifest.get("inputs") or {}).get("pair")
        differs = _other_models(meta, made_from) if isinstance(made_from, Mapping) else []
        if meta.get("source") is not None and made_from != meta["source"]:
            differs = differs or ["the models' content"]
        if differs:
            del jobs[chapter]
            problems.append(f"chapter {chapter} left out: its job was run on other models than {META} names "
                            f"({', '.join(differs)} differ)")
    loose = unclaimed_files(folder, jobs)
    if loose:
        problems.append(f"left out, as no finished job wrote them: {', '.join(loose)}")
    records: dict[str, dict[str, Any]] = {}
    tables: dict[str, pd.DataFrame] = {}
    for rel in sorted(rel for m in jobs.values() for rel in m["outputs"]):
        file = folder / rel
        if rel.startswith("records/"):
            data = read_records_file(file)
            for hid, finding in data.items():
                wrong = check_finding(finding)
                if wrong:
                    raise ValueError(f"{file}: finding {hid!r}: {wrong}")
            records.update(data)
        else:
            try:
                frame = read_csv_table(file)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{file} is not a readable table ({exc})") from exc
            wrong = check_table(frame)
            if wrong:
                raise ValueError(f"{file}: {wrong}")
            tables[Path(rel).stem] = frame
    label = str(meta.get("pair") or folder.name)
    registered = PAIRS.get(label)
    if registered is not None:
        spec = meta.get("spec") or {}
        differs = _other_models(meta, dataclasses.asdict(registered))
        if not spec:
            shown = f"{label} (unverified)"
            problems.append(f"claims to be the registered pair {label!r} but names no models ({META} has no spec); "
                            f"shown as {shown!r}")
            label = shown
        elif differs:
            shown = f"{label} (other models)"
            problems.append(f"claims to be the registered pair {label!r} but names base {spec.get('base')!r}, sft "
                            f"{spec.get('sft')!r} ({', '.join(differs)} differ from the registry's); shown as "
                            f"{shown!r}")
            label = shown
    meta = {**meta, "chapters": {c: {"parameters": (m.get("inputs") or {}).get("parameters"),
                                     "seconds": m.get("seconds"), "finished": m.get("finished")}
                                 for c, m in jobs.items()}}
    return StoreEntry(label=label, folder=folder, meta=meta, records=records, tables=tables, problems=problems)


@dataclass(frozen=True)
class StoreProblem:
    """A store left out (``left_out``), or shown only in part or under another label, and why."""

    folder: Path
    reason: str
    left_out: bool = True

    def line(self) -> str:
        """``<folder>: <reason>``."""
        return f"{self.folder}: {self.reason}"


@dataclass
class StoreScan:
    """Every store under some roots: the ones that can be shown, and the problems, once each.

    Attributes:
        entries: The stores of the mode asked for (full or quick runs), by label.
        shown: Every store that can be shown, full and quick runs alike, in the order found.
        problems: What was left out, shown in part or relabelled, and why.
    """

    entries: dict[str, StoreEntry] = field(default_factory=dict)
    shown: list[StoreEntry] = field(default_factory=list)
    problems: list[StoreProblem] = field(default_factory=list)


def scan_stores(roots: Iterable[str | Path], *, quick: bool | None = False) -> StoreScan:
    """Read and check every store folder under the given roots (the one reader of the collected table and chapter 8).

    A folder without ``store.json``, of another format version, or holding a finding or table that cannot be
    shown is left out and listed once with the reason, whatever ``quick`` is, so every page lists the same
    problems. For a label found twice, the first root wins and the other is listed.

    Args:
        roots: Folders holding store folders (e.g. :func:`store_root` and :func:`contributed_root`).
        quick: ``False``: only full runs; ``True``: only quick runs; ``None``: both.
    """
    scan = StoreScan()
    seen: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir() or root.resolve() in seen:
            continue
        seen.add(root.resolve())
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            if not (folder / META).is_file():
                scan.problems.append(StoreProblem(folder, f"no {META}: not an mbt results store; left out"))
                continue
            try:
                entry = load_store(folder)
            except (OSError, ValueError) as exc:
                scan.problems.append(StoreProblem(folder, f"{' '.join(str(exc).split())}; left out"))
                continue
            scan.problems += [StoreProblem(folder, reason, left_out=False) for reason in entry.problems]
            mode = bool(entry.meta.get("quick"))
            first = next((e.folder for e in scan.shown if e.label == entry.label and bool(e.meta.get("quick")) == mode),
                         None)
            if first is not None:
                scan.problems.append(StoreProblem(folder, f"a second store of {entry.label!r} (the one in {first} is "
                                                          "shown); left out"))
                continue
            scan.shown.append(entry)
            if quick is None or mode == quick:
                scan.entries.setdefault(entry.label, entry)
    return scan


def stores(roots: Iterable[str | Path], *, quick: bool | None = False) -> dict[str, StoreEntry]:
    """Every pair store under the given roots that can be shown, by label (:func:`scan_stores`)."""
    return scan_stores(roots, quick=quick).entries


def collect_records(current: str, *, roots: Iterable[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """Records of the current build's pair first, then every other pair built in full (not quick) mode.

    Read through :func:`scan_stores`: only checked stores and finished jobs' findings.

    Args:
        current: The current pair's store folder name (``slug(label)``, ``-quick`` for smoke runs).
        roots: More store roots (contributed stores) after the local one.
    """
    scan = scan_stores([records_root(), *roots], quick=None)
    cur = records_root() / slug(current)
    out: dict[str, dict[str, Any]] = {}
    for entry in scan.shown:
        if entry.folder == cur:
            out[current] = entry.records
    for entry in scan.shown:
        if entry.folder == cur or entry.meta.get("quick") or entry.label in out or not entry.records:
            continue
        out[entry.label] = entry.records
    if not out:
        out[current] = {}
    return out


def store_problems(roots: Iterable[str | Path]) -> list[StoreProblem]:
    """The problems of every store under the given roots, full and quick alike (what both pages list)."""
    return scan_stores(roots, quick=None).problems
