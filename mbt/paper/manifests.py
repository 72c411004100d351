r"""Job manifests: what makes a file in a results store a result, and the only way a job's outputs get there.

A job (one chapter for one pair, :func:`mbt.book.jobs.run_chapter`) never writes into its pair's store folder
directly. Its kernel writes into a job-private folder (:func:`staging_folder`, ``<pair>/.jobs/<chapter>.<pid>.<n>/``);
only a job that finished moves its outputs into place (:func:`publish`) and then, last, writes its manifest::

    <pair>/jobs/<chapter>.json   {"format": "mbt-job", "version": 1, "chapter": …, "key": <SHA-256 of the inputs>,
                                  "inputs": {"pair": …, "parameters": …, "chapter": …, "mbt": …},
                                  "outputs": {"records/<chapter>.json": <SHA-256>, "tables/<name>.csv": <SHA-256>},
                                  "seconds": …, "finished": …}

Before a job runs, the chapter's manifest is removed with its outputs (:func:`retract`), so a job that fails or
is killed leaves nothing behind that looks like a result. A reader takes a store file for a result only when a
manifest lists it with the same SHA-256 (:func:`verified_jobs`): a file deleted, altered, or copied in by hand is
noticed by content (never by size or date) and left out, naming the file; a rerun of ``mbt batch`` rebuilds
exactly the chapters whose manifest no longer holds (:func:`is_current`). :func:`job_lock` keeps one runner per
job (a second waits, saying so).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mbt.results import atomic_write, file_lock, file_sha256

__all__ = [
    "JOBS",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "STAGING",
    "check_outputs",
    "clear_staging",
    "is_current",
    "job_lock",
    "manifest_path",
    "publish",
    "read_manifest",
    "retract",
    "staging_folder",
    "unclaimed_files",
    "verified_jobs",
]

MANIFEST_FORMAT = "mbt-job"
MANIFEST_VERSION = 1
JOBS = "jobs"
"""Sub-folder of a pair's store folder holding one manifest per chapter."""
STAGING = ".jobs"
"""Sub-folder of a pair's store folder holding the job-private folders of running (or killed) jobs."""
OUTPUT_FOLDERS: tuple[str, ...] = ("records", "tables")
"""The sub-folders a job's outputs go to (findings, small tables)."""

_OUTPUT = re.compile(r"^(records|tables)/[A-Za-z0-9][A-Za-z0-9_.-]*\.(json|csv)$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_serial = itertools.count()


def manifest_path(folder: str | Path, chapter: str) -> Path:
    """A chapter's manifest in a store folder: ``<folder>/jobs/<chapter>.json``."""
    return Path(folder) / JOBS / f"{chapter}.json"


def read_manifest(folder: str | Path, chapter: str) -> dict[str, Any] | None:
    """A chapter's manifest, or ``None`` when absent, unreadable or not of this format."""
    return _parse(manifest_path(folder, chapter))


def _parse(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        return None
    outputs = data.get("outputs")
    if not isinstance(data.get("key"), str) or not isinstance(outputs, dict):
        return None
    if not all(isinstance(k, str) and _OUTPUT.match(k) and isinstance(v, str) and _SHA.match(v)
               for k, v in outputs.items()):
        return None
    return data


def check_outputs(folder: str | Path, manifest: Mapping[str, Any]) -> list[str]:
    """What no longer holds of a manifest's outputs (``"tables/lens.csv is missing"``); empty when all hold."""
    folder = Path(folder)
    problems = []
    for rel, digest in sorted(manifest.get("outputs", {}).items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
        elif file_sha256(path) != digest:
            problems.append(f"{rel} was altered after its job finished (its content is not what the job wrote)")
    return problems


def is_current(folder: str | Path, chapter: str, key: str) -> bool:
    """Whether a chapter's store entry is current: its manifest was made from inputs ``key`` and every output holds."""
    manifest = read_manifest(folder, chapter)
    return manifest is not None and manifest["key"] == key and not check_outputs(folder, manifest)


def verified_jobs(folder: str | Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every chapter of a store folder whose manifest holds, and what is wrong with the others.

    Returns:
        ``({chapter: manifest}, problems)``; each problem names the chapter and the file.
    """
    folder = Path(folder)
    good: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for path in sorted((folder / JOBS).glob("*.json")):
        manifest = _parse(path)
        if manifest is None:
            problems.append(f"{JOBS}/{path.name} is not a readable job manifest; that chapter is left out")
            continue
        wrong = check_outputs(folder, manifest)
        if wrong:
            problems.append(f"chapter {path.stem} left out: {'; '.join(wrong)}")
            continue
        good[path.stem] = manifest
    return good, problems


def unclaimed_files(folder: str | Path, manifests: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Files in ``records/`` and ``tables/`` that no manifest lists (never results: a reader leaves them out)."""
    folder = Path(folder)
    claimed = {rel for m in manifests.values() for rel in m.get("outputs", {})}
    found = [f"{sub}/{p.name}" for sub in OUTPUT_FOLDERS for p in sorted((folder / sub).glob("*"))
             if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".lock")]
    return [rel for rel in found if rel not in claimed]


@contextlib.contextmanager
def job_lock(folder: str | Path, chapter: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One runner per job: an inter-process lock on the chapter's manifest (:func:`mbt.results.file_lock`).

    Another process that holds it (a second ``mbt batch`` on the same cache) is waited for, after
    ``on_wait()`` says so; the lock dies with its holder, even a killed one.
    """
    with file_lock(manifest_path(folder, chapter), on_wait=on_wait):
        yield


def staging_folder(folder: str | Path, chapter: str) -> Path:
    """A new, empty job-private folder for one run of a chapter: ``<folder>/.jobs/<chapter>.<pid>.<n>/``."""
    path = Path(folder) / STAGING / f"{chapter}.{os.getpid()}.{next(_serial)}"
    shutil.rmtree(path, ignore_errors=True)
    for sub in OUTPUT_FOLDERS:
        (path / sub).mkdir(parents=True)
    return path


def clear_staging(folder: str | Path, chapter: str) -> None:
    """Remove the job-private folders that runs of a chapter left (killed ones); call it holding :func:`job_lock`."""
    for path in (Path(folder) / STAGING).glob(f"{chapter}.*"):
        shutil.rmtree(path, ignore_errors=True)


def retract(folder: str | Path, chapter: str) -> None:
    """Remove a chapter's manifest, then the outputs it listed: from now on the chapter has no result here.

    Files that another chapter's manifest also lists are kept.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, chapter)
    manifest_path(folder, chapter).unlink(missing_ok=True)
    if manifest is None:
        return
    others, _ = verified_jobs(folder)
    kept = {rel for name, m in others.items() if name != chapter for rel in m.get("outputs", {})}
    for rel in manifest["outputs"]:
        if rel not in kept:
            (folder / rel).unlink(missing_ok=True)


def publish(folder: str | Path, chapter: str, staging: str | Path, *, key: str, inputs: Mapping[str, Any],
            seconds: float = 0.0) -> dict[str, Any]:
    """Move a finished job's outputs from its private folder into the store folder, then write its manifest.

    Every file under ``<staging>/records`` and ``<staging>/tables`` is moved (a rename within the store folder)
    and hashed; the manifest is written last, atomically, so a reader sees either the whole job or none of it.

    Args:
        folder: The pair's store folder.
        chapter: The chapter.
        staging: The job's private folder (:func:`staging_folder`).
        key: SHA-256 of the job's inputs (what :func:`is_current` compares).
        inputs: What the key was made from (pair, parameters, chapter source, ``mbt`` sources), kept to read.
        seconds: How long the job took.

    Returns:
        The manifest written.
    """
    folder, staging = Path(folder), Path(staging)
    outputs: dict[str, str] = {}
    for sub in OUTPUT_FOLDERS:
        for src in sorted((staging / sub).glob("*")):
            if not src.is_file() or src.name.startswith("."):
                continue
            rel = f"{sub}/{src.name}"
            if not _OUTPUT.match(rel):
                raise ValueError(f"chapter {chapter} wrote {rel}, which is not a store file name (records/*.json, "
                                 "tables/*.csv)")
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            outputs[rel] = file_sha256(dst)
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "chapter": chapter, "key": key,
                "inputs": dict(inputs), "outputs": outputs, "seconds": round(float(seconds), 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    blob = json.dumps(manifest, indent=1, sort_keys=True, default=str)
    atomic_write(manifest_path(folder, chapter), lambda tmp: tmp.write_text(blob))
    return manifest
