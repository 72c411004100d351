"""Result cache and cache identity: Parquet tables with a JSON manifest, keyed by everything that produced them.

This is the foundation layer of every cache in ``mbt`` and imports no other ``mbt`` module:

* where caches live (:func:`cache_root`);
* what identifies inputs: :func:`text_fingerprint` (an ordered list of texts),
  :func:`weights_fingerprint` (a checkpoint's bytes, hashed once and remembered), :func:`make_key`;
* how several writers share a file: :func:`file_lock`, :func:`locked_update`, :func:`atomic_write`;
* the result cache itself: :class:`ResultCache` and :func:`cached` (the *results store* of the book, one
  folder of findings per pair, is :mod:`mbt.paper.store`).

A result is stored as ``<root>/<kind>/<key>.parquet`` plus ``<key>.json``. The key is a hash of
the *settings* (pair ids and revisions or weight fingerprints, dataset fingerprint, sample counts,
seed, max length, metrics, conventions, mbt version); the manifest also records provenance that
must not invalidate a result (package versions, git commit, timings). Both files are written
atomically (temporary file + rename), the manifest last, and the manifest stores the Parquet
file's SHA-256: a partial or corrupt entry is detected, reported and recomputed.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "TEXT_COLUMNS",
    "ResultCache",
    "atomic_write",
    "cache_root",
    "cached",
    "file_lock",
    "file_sha256",
    "locked_update",
    "read_csv_table",
    "make_key",
    "provenance",
    "text_fingerprint",
    "tree_sha256",
    "weights_fingerprint",
]

_PACKAGES = ("mbt", "torch", "transformers", "nnsight", "peft", "numpy", "pandas")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".tiktoken")
_HASH_STORE = "hashes.json"


def cache_root() -> Path:
    """The user cache folder: ``$MBT_CACHE``, else ``$XDG_CACHE_HOME/mbt``, else ``~/.cache/mbt``."""
    explicit = os.environ.get("MBT_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "mbt"
    return Path.home() / ".cache" / "mbt"


def make_key(settings: Mapping[str, Any]) -> str:
    """A stable 20-hex-digit key for JSON-serialisable settings (key order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def text_fingerprint(texts: Sequence[str]) -> str:
    """Return a SHA-256 hex digest identifying an ordered list of texts (for cache keys).

    The texts are hashed as a JSON list, so boundaries between texts matter (``["ab", "c"]`` and
    ``["a", "bc"]`` differ, and so does a NUL character inside a text) and so does order.

    Args:
        texts: The texts, a sequence of ``str``.

    Returns:
        64 hexadecimal characters.

    Raises:
        TypeError: For a single string or a non-string element.
    """
    if isinstance(texts, str | bytes):
        raise TypeError("text_fingerprint expects a sequence of texts, not one string")
    items = list(texts)
    bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"text_fingerprint expects strings; text {bad} is a {type(items[bad]).__name__}")
    payload = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(path: str | Path, pattern: str = "*") -> str:
    """SHA-256 over every file matching ``pattern`` below a folder: its path relative to the folder, then its bytes.

    Files are taken in sorted order, so the digest changes with any changed byte, added, removed or renamed
    file, and not with the folder's location. A single file is hashed as its bytes alone (no name).

    Args:
        path: A folder or one file.
        pattern: Glob pattern of the files to include (searched recursively), e.g. ``"*.py"``.

    Returns:
        64 hexadecimal characters.
    """
    root = Path(path)
    files = sorted(f for f in root.rglob(pattern) if f.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        if root.is_dir():
            digest.update(file.relative_to(root).as_posix().encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


_DISK_FULL = tuple(code for code in (getattr(errno, "ENOSPC", None), getattr(errno, "EDQUOT", None)) if code)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write a file atomically: ``write(tmp)`` fills a temporary file that is then renamed to ``path``.

    Nothing is left behind on failure. A full disk (or quota) is raised as an ``OSError`` that names ``path``
    (the error of a plain ``write`` names no file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL and exc.filename in (None, tmp):
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise


@contextlib.contextmanager
def file_lock(path: str | Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[Path]:
    """Hold an exclusive inter-process lock on ``path`` for the duration of a ``with`` block.

    The lock is an ``fcntl.flock`` on the companion file ``<path>.lock`` (created if needed and
    left in place), so it also works while ``path`` itself is replaced by :func:`atomic_write`.
    Other processes (and other ``file_lock`` calls of this process) wait until it is released; the
    system releases it when its holder dies, even by ``SIGKILL``. The lock is advisory: it protects
    against writers that also use it. POSIX only.

    Args:
        path: The file to protect (it need not exist).
        on_wait: Called once, before waiting, when another holder has the lock (e.g. to say so).

    Yields:
        The lock file's path.
    """
    import fcntl

    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


TEXT_COLUMNS: tuple[str, ...] = ("mask", "layers", "device", "accuracy_items")
"""Columns of stored CSV tables read back as text: LoRA masks (``"01100"``) and per-problem 0/1 strings
keep their leading zeros, device names stay names."""


def read_csv_table(path: str | Path) -> pd.DataFrame:
    """A CSV table with the :data:`TEXT_COLUMNS` it has read as text (never as numbers)."""
    return pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))


def locked_update(path: str | Path, update: Callable[[pd.DataFrame | None], pd.DataFrame]) -> pd.DataFrame:
    """Read-modify-write a Parquet table under :func:`file_lock`, for files with several writers.

    ``update`` receives the current table (``None`` if the file does not exist) and returns the new
    one, which is written atomically before the lock is released: concurrent callers (threads or
    processes) see each other's rows and never lose an update.

    Args:
        path: The Parquet file.
        update: Builds the new table from the current one; it must not write ``path`` itself.

    Returns:
        The table as written.

    Raises:
        ValueError: If the existing file is not a readable Parquet table (it is left untouched) or
            ``update`` does not return a DataFrame.
    """
    path = Path(path)
    with file_lock(path):
        current = None
        if path.exists():
            try:
                current = pd.read_parquet(path)
            except (OSError, ValueError) as exc:
                raise ValueError(
                    f"{path} is not a readable Parquet table ({exc}); move it away or delete it to start afresh"
                ) from exc
        new = update(current)
        if not isinstance(new, pd.DataFrame):
            raise ValueError(f"update must return a pandas DataFrame, got {type(new).__name__}")
        atomic_write(path, lambda tmp: new.to_parquet(tmp, index=False))
    return new


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a checkpoint folder nor a file")
    files = sorted(
        p for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(_WEIGHT_SUFFIXES)
    )
    if not files:
        raise FileNotFoundError(f"{path} holds no weight, config or tokenizer files")
    return files


def _stat_key(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _read_hash_store(store: Path) -> dict[str, Any]:
    try:
        data = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def weights_fingerprint(path: str | Path) -> str:
    """Content hash of a checkpoint folder (its weight, config and tokenizer files) or of one file.

    Every top-level file whose name ends in one of ``.safetensors .bin .pt .pth .gguf .json .model
    .txt .tiktoken`` is hashed (SHA-256 of its bytes); the fingerprint is the SHA-256 of the sorted
    ``name:hash`` lines, so any changed byte, added or removed file changes it, while the folder's
    location and a README do not. File hashes are remembered in ``cache_root()/hashes.json``, keyed
    by absolute path, size, modification and change time (ns): a rerun does not read the weights
    again, and a file replaced by another one of the same size is hashed again.

    Args:
        path: A checkpoint folder (e.g. written by ``save_pretrained``) or a single file.

    Returns:
        64 hexadecimal characters.

    Raises:
        FileNotFoundError: If ``path`` does not exist or the folder has no such files.
    """
    path = Path(path).expanduser().resolve()
    files = _weight_files(path)
    store = cache_root() / _HASH_STORE
    known = _read_hash_store(store)
    digests: dict[str, str] = {}
    fresh: dict[str, Any] = {}
    for file in files:
        stat = _stat_key(file)
        entry = known.get(str(file))
        if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stat.items()) and "sha256" in entry:
            digests[file.name] = str(entry["sha256"])
            continue
        digest = file_sha256(file)
        if _stat_key(file) != stat:  # changed while being read: do not remember a hash of mixed bytes
            raise OSError(f"{file} changed while it was being hashed; try again when it is complete")
        digests[file.name] = digest
        fresh[str(file)] = {**stat, "sha256": digest}
    if fresh:
        try:
            with file_lock(store):
                merged = _read_hash_store(store)
                merged.update(fresh)
                atomic_write(store, lambda tmp: tmp.write_text(json.dumps(merged, indent=1, sort_keys=True)))
        except OSError as exc:  # a read-only cache folder only costs a rehash next time
            warnings.warn(f"could not remember weight hashes in {store} ({exc})", stacklevel=2)
    lines = "\n".join(f"{name}:{digests[name]}" for name in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance() -> dict[str, Any]:
    """Package versions, git commit, Python version and torch thread count of this run."""
    import torch

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "packages": versions,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def _check_manifest(meta: Any) -> dict[str, Any]:
    """The manifest as a dict, or ``ValueError`` if it does not have the shape :meth:`ResultCache.save` writes."""
    if not isinstance(meta, dict):
        raise ValueError(f"manifest is a JSON {type(meta).__name__}, not an object")
    if not isinstance(meta.get("sha256"), str):
        raise ValueError("manifest has no 'sha256' string")
    rows = meta.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise ValueError("manifest has no valid 'rows' count")
    return meta


class ResultCache:
    """The result cache of one kind of result (e.g. ``"analyze"``): Parquet tables with JSON manifests.

    Args:
        root: Cache root (default :func:`cache_root`).
        kind: Sub-folder name.
    """

    def __init__(self, root: str | Path | None = None, kind: str = "analyze") -> None:
        self.dir = Path(root or cache_root()) / kind

    def paths(self, key: str) -> tuple[Path, Path]:
        """The ``(parquet, manifest)`` paths of a key."""
        return self.dir / f"{key}.parquet", self.dir / f"{key}.json"

    def load(self, key: str) -> pd.DataFrame | None:
        """Return the cached table, or ``None`` if absent.

        A partial or corrupt entry (missing or truncated table, manifest that is not JSON or not of
        the shape :meth:`save` writes, checksum or row-count mismatch) is reported with a warning,
        removed, and ``None`` is returned so that the caller recomputes it.
        """
        table, manifest = self.paths(key)
        if not manifest.exists() and not table.exists():
            return None
        try:
            meta = _check_manifest(json.loads(manifest.read_text()))
            if meta["sha256"] != file_sha256(table):
                raise ValueError("checksum mismatch")
            frame = pd.read_parquet(table)
            if len(frame) != meta["rows"]:
                raise ValueError("row count mismatch")
            return frame
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"cached result {key} in {self.dir} is partial or corrupt ({exc}); recomputing", stacklevel=2)
            table.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
            return None

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of a cached entry, or ``None`` (absent, unreadable or malformed)."""
        path = self.paths(key)[1]
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def save(self, key: str, frame: pd.DataFrame, settings: Mapping[str, Any], **extra: Any) -> Path:
        """Write ``frame`` and its manifest (settings, provenance, checksum, time) atomically; return the table path."""
        table, manifest = self.paths(key)
        atomic_write(table, lambda tmp: frame.to_parquet(tmp, index=False))
        meta = {
            "key": key,
            "settings": dict(settings),
            "provenance": provenance(),
            "rows": len(frame),
            "sha256": file_sha256(table),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **extra,
        }
        atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str)))
        return table

    def announce(self, key: str) -> str:
        """Print (to stderr) and return the one-line note that ``key`` was served from this cache."""
        meta = self.manifest(key) or {}
        when = meta.get("created")
        if not isinstance(when, str):
            table = self.paths(key)[0]
            stamp = table.stat().st_mtime if table.exists() else 0.0
            when = datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="seconds")
        line = f"mbt: cached {self.dir.name} result {key} (computed {when}; {self.dir})"
        print(line, file=sys.stderr)
        return line


def cached(
    kind: str,
    settings: Mapping[str, Any],
    compute: Callable[[], pd.DataFrame],
    *,
    root: str | Path | None = None,
    announce: bool = True,
    cache: bool = True,
) -> pd.DataFrame:
    """Return the stored table for ``settings`` or compute, store and return it.

    The cache is ``ResultCache(root, kind)`` (``<cache_root()>/<kind>/``), the key
    :func:`make_key` ``(settings)``: put everything that determines the result in ``settings``
    (model identities, e.g. :func:`weights_fingerprint`, :func:`text_fingerprint` of the inputs,
    sizes, seeds). A corrupt entry is warned about and recomputed. The compute time is recorded in
    the manifest with the settings and provenance.

    Args:
        kind: Result kind and sub-folder, e.g. ``"book-logit_lens"``.
        settings: JSON-serialisable settings that fully determine the result.
        compute: Builds the table when it is not stored.
        root: Cache root (default :func:`cache_root`).
        announce: Print one line to stderr on a hit (``mbt: cached <kind> result <key> (computed …)``).
        cache: ``False`` always recomputes and stores nothing.

    Returns:
        The table.

    Raises:
        TypeError: If ``compute`` does not return a DataFrame.
    """
    import time

    if not cache:
        return compute()
    results = ResultCache(root, kind=kind)
    key = make_key(settings)
    hit = results.load(key)
    if hit is not None:
        if announce:
            results.announce(key)
        return hit
    start = time.perf_counter()
    table = compute()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"compute() must return a pandas DataFrame, got {type(table).__name__}")
    results.save(key, table, settings, seconds=round(time.perf_counter() - start, 3))
    return table
