"""Result cache: Parquet tables with a JSON manifest, keyed by everything that produced them.

A result is stored as ``<root>/<kind>/<key>.parquet`` plus ``<key>.json``. The key is a hash of
the *settings* (pair ids and revisions or weight fingerprints, dataset fingerprint, sample counts,
seed, max length, metrics, conventions, mbt version); the manifest also records provenance that
must not invalidate a result (package versions, git commit, timings). Both files are written
atomically (temporary file + rename), the manifest last, and the manifest stores the Parquet
file's SHA-256: a partial or corrupt entry is detected, reported and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ResultCache", "atomic_write", "cache_root", "file_sha256", "make_key", "provenance"]

_PACKAGES = ("mbt", "torch", "transformers", "nnsight", "peft", "numpy", "pandas")


def cache_root() -> Path:
    """The user cache folder: ``$MBT_CACHE`` or ``~/.cache/mbt``."""
    return Path(os.environ.get("MBT_CACHE") or Path.home() / ".cache" / "mbt")


def make_key(settings: Mapping[str, Any]) -> str:
    """A stable 20-hex-digit key for JSON-serialisable settings (key order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write a file atomically: ``write(tmp)`` fills a temporary file that is then renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class ResultCache:
    """Parquet + JSON-manifest store for one kind of result (e.g. ``"analyze"``).

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
        """Return the cached table, or ``None`` if absent; a corrupt entry is reported and removed."""
        table, manifest = self.paths(key)
        if not manifest.exists() and not table.exists():
            return None
        try:
            meta = json.loads(manifest.read_text())
            if meta.get("sha256") != file_sha256(table):
                raise ValueError("checksum mismatch")
            frame = pd.read_parquet(table)
            if len(frame) != meta.get("rows"):
                raise ValueError("row count mismatch")
            return frame
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"cached result {key} in {self.dir} is partial or corrupt ({exc}); recomputing", stacklevel=2)
            table.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
            return None

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of a cached entry, or ``None``."""
        path = self.paths(key)[1]
        return json.loads(path.read_text()) if path.exists() else None

    def save(self, key: str, frame: pd.DataFrame, settings: Mapping[str, Any], **extra: Any) -> Path:
        """Write ``frame`` and its manifest (settings, provenance, checksum) atomically; return the table path."""
        table, manifest = self.paths(key)
        atomic_write(table, lambda tmp: frame.to_parquet(tmp, index=False))
        meta = {
            "key": key,
            "settings": dict(settings),
            "provenance": provenance(),
            "rows": len(frame),
            "sha256": file_sha256(table),
            **extra,
        }
        atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str)))
        return table
