r"""A chapter's numbers to take away: its tables as CSV and a provenance file, linked at the end of its page.

A chapter's last cell calls :func:`downloads` with its result tables. Each goes to
``downloads/<chapter>-<name>.csv`` beside the executed notebook, with ``downloads/<chapter>-provenance.json``
(:func:`provenance`): ``mbt``'s version and the git commit it ran from, the pair (ids, revisions, and the
content fingerprints of its weights), the chapter's parameters, the device, the software versions, the date,
and every file with its rows, columns and SHA-256. The cell shows one line of Markdown links with the
``{download}`` role, so Jupyter Book copies the files into the built book and the page offers them.

Under ``mbt book``/``mbt batch`` the build passes the chapter's name, its parameters (the declared
defaults with the values given) and the commit to the kernel in :data:`CONTEXT_ENV`
(:func:`build_context`); run by hand (Colab), the chapter is named ``chapter`` unless given and the commit is
read from the checkout ``mbt`` runs from, if any.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mbt import __version__
from mbt.book.runtime import device_name
from mbt.identity import pair_identity
from mbt.pairs import pair_label
from mbt.paper.export import findings_frame
from mbt.paper.findings import Finding
from mbt.results import atomic_write

__all__ = [
    "CONTEXT_ENV",
    "FOLDER",
    "build_context",
    "downloads",
    "downloads_markdown",
    "provenance",
    "source_commit",
    "write_downloads",
]

CONTEXT_ENV = "MBT_BOOK_CONTEXT"
"""Environment variable with the JSON the build hands a chapter's kernel: chapter, parameters, commit."""

FOLDER = "downloads"
"""Folder, beside the executed notebook, that receives a chapter's downloadable files."""

_SOFTWARE = ("torch", "transformers", "nnsight", "peft", "numpy", "pandas")


def source_commit(path: str | Path) -> dict[str, Any] | None:
    """The git commit of the checkout holding ``path``, and whether tracked files differ from it.

    Returns:
        ``{"commit": <40 hex digits>, "dirty": bool}``, or ``None`` outside a git checkout (or without git).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=30, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())} if commit else None


def build_context(chapter: str, parameters: Mapping[str, Any], root: str | Path) -> dict[str, Any]:
    """What the build hands a chapter's kernel (:data:`CONTEXT_ENV`): name, parameters, commit of ``root``."""
    return {"chapter": chapter, "parameters": dict(parameters), "source": source_commit(root)}


def _context() -> dict[str, Any]:
    raw = os.environ.get(CONTEXT_ENV)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{CONTEXT_ENV} is not JSON ({exc}); it is set by mbt book / mbt batch") from exc
    return data if isinstance(data, dict) else {}


def _portable(location: str | None) -> str | None:
    """A model id as given, but a local folder only by its last two path parts (no machine's paths)."""
    if not location:
        return location
    path = Path(str(location))
    return "/".join(path.parts[-2:]) if path.is_absolute() or path.exists() else str(location)


def _pair_info(pair: Any) -> dict[str, Any] | None:
    if pair is None:
        return None
    spec = getattr(pair, "spec", pair)
    info: dict[str, Any] = {"label": pair_label(pair)}
    for key in ("name", "family", "source", "base", "base_revision", "sft", "sft_revision", "toy_variant",
                "toy_sft_steps"):
        value = getattr(spec, key, None)
        info[key] = _portable(value) if key in ("base", "sft") else value
    if hasattr(pair, "spec") and hasattr(pair, "tokenizer"):
        info["weights"] = pair_identity(pair)
    return info


def _device() -> str:
    import torch

    if device_name() == "cuda":
        return "cuda: " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return f"cpu ({torch.get_num_threads()} threads)"


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in _SOFTWARE:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def provenance(pair: Any = None, *, chapter: str = "", parameters: Mapping[str, Any] | None = None,
               source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Where a chapter's numbers come from, as a JSON-able dict (see the module docstring).

    Args:
        pair: The loaded pair (or its spec); ``None`` for numbers not tied to one pair.
        chapter: The chapter's name.
        parameters: Its parameters.
        source: ``{"commit", "dirty"}`` (default: the checkout ``mbt`` runs from, :func:`source_commit`).
    """
    if source is None:
        source = source_commit(Path(__file__).resolve().parent)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return {"format": "mbt-provenance", "version": 1, "chapter": chapter, "created": now.isoformat(),
            "mbt": {"version": __version__, **(dict(source) if source else {"commit": None})},
            "pair": _pair_info(pair), "parameters": dict(parameters or {}), "device": _device(),
            "software": _versions()}


def _frame(name: str, value: Any) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, Finding) for v in value):
        return findings_frame(list(value))
    raise TypeError(f"table {name!r} must be a DataFrame or a list of findings, got {type(value).__name__}")


def write_downloads(tables: Mapping[str, Any], folder: str | Path, *, prefix: str,
                    info: Mapping[str, Any]) -> list[Path]:
    """Write each table as ``<folder>/<prefix>-<name>.csv`` and ``<prefix>-provenance.json`` (atomically).

    Args:
        tables: ``{name: DataFrame or list of findings}``; ``None`` values are skipped (a part that did not run).
        folder: Target folder (created).
        prefix: File name prefix (the chapter's name).
        info: The provenance (:func:`provenance`); a ``"files"`` entry describing each CSV is added.

    Returns:
        The CSV files, then the provenance file.

    Raises:
        ValueError: A name that is not letters, digits, ``-``, ``_`` or ``.``, or no table at all.
        TypeError: A value that is neither a DataFrame nor a list of findings.
    """
    folder = Path(folder)
    frames = {}
    for name, value in tables.items():
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"a table name takes letters, digits and '-_.' only, got {name!r}")
        if value is not None:
            frames[name] = _frame(name, value)
    if not frames:
        raise ValueError("give at least one table to offer for download")
    written, files = [], {}
    for name, frame in frames.items():
        path = folder / f"{prefix}-{name}.csv"
        if not isinstance(frame.index, pd.RangeIndex):  # a meaningful index (e.g. one row per signature) is kept
            frame = frame.reset_index()
        blob = frame.to_csv(index=False).encode()
        atomic_write(path, lambda tmp, blob=blob: tmp.write_bytes(blob))
        files[name] = {"file": path.name, "rows": int(len(frame)), "columns": [str(c) for c in frame.columns],
                       "sha256": hashlib.sha256(blob).hexdigest()}
        written.append(path)
    meta = {**info, "files": files}
    text = json.dumps(meta, indent=1, default=str, sort_keys=False)
    path = folder / f"{prefix}-provenance.json"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return [*written, path]


def downloads_markdown(files: Sequence[str | Path], base: str | Path = FOLDER, *, rows: Mapping[str, int] | None = None,
                       heading: str = "Download this chapter's numbers") -> str:
    """One line of ``{download}`` links, e.g. ``**Download …**: [per_layer.csv] (120 rows) · [provenance]``.

    Args:
        files: The files, as written (only their names are used).
        base: Their folder relative to the page.
        rows: ``{file name: rows}`` to show next to a CSV.
        heading: The bold lead-in.
    """
    links = []
    for file in files:
        name = Path(file).name
        target = f"{Path(base).as_posix()}/{name}" if str(base) not in ("", ".") else name
        label = "provenance (JSON)" if name.endswith("-provenance.json") else name
        count = (rows or {}).get(name)
        links.append(f"{{download}}`{label} <{target}>`" + (f" ({count} rows)" if count is not None else ""))
    return f"**{heading}**: " + " · ".join(links)


def downloads(tables: Mapping[str, Any], *, pair: Any = None, parameters: Mapping[str, Any] | None = None,
              chapter: str | None = None, folder: str | Path | None = None) -> Any:
    """The chapter's last call: write its tables and provenance beside the notebook, show the download links.

    Args:
        tables: ``{name: DataFrame or list of findings}`` (``None`` values are skipped).
        pair: The chapter's pair (its ids, revisions and weight fingerprints go into the provenance).
        parameters: The chapter's parameters (default: those the build handed over, see :data:`CONTEXT_ENV`).
        chapter: The chapter's name (default: the build's, else ``"chapter"``).
        folder: Where the files go (default: ``downloads/`` in the working directory, i.e. beside the notebook).

    Returns:
        An ``IPython.display.Markdown`` with the links (the Markdown string without IPython).
    """
    context = _context()
    name = chapter or context.get("chapter") or "chapter"
    params = dict(parameters) if parameters is not None else dict(context.get("parameters") or {})
    info = provenance(pair, chapter=name, parameters=params, source=context.get("source") if context else None)
    target = Path(folder) if folder is not None else Path.cwd() / FOLDER
    files = write_downloads(tables, target, prefix=name, info=info)
    described = json.loads(files[-1].read_text())["files"].values()
    rows = {d["file"]: d["rows"] for d in described}
    text = downloads_markdown(files, FOLDER if folder is None else Path(folder), rows=rows)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)
