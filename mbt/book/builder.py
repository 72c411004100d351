r"""The book build behind ``mbt book``: papermill for every chapter, then Jupyter Book.

:func:`build` executes every chapter notebook with papermill (a fresh kernel each, in order) into a
staging copy of the book, ``book/_executed/`` (git-ignored), then runs Jupyter Book 1 on it to
``_build/html``. The staging copy mirrors the repository layout (``_config.yml``, ``_toc.yml``,
``book/*.md``, ``notebooks/*.ipynb``), so a page's Colab button opens the committed, output-free notebook
of the same path. A chapter whose notebook source, parameters, ``mbt`` sources and pair are unchanged is
not executed again, so a rebuild after a prose edit only runs Sphinx; a re-executed chapter still reuses
every cached analysis. Findings recorded by the chapters (:mod:`mbt.paper.records`) become the "Paper vs
ours" table.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mbt.book.chapters import (
    ACROSS,
    BESIDE_THE_LADDER,
    CHAPTERS,
    LADDER_CHAPTERS,
    TITLES,
    check_parameters,
    find_root,
    parameter_defaults,
    parameter_types,
    read_notebook,
)
from mbt.book.jobs import (
    ChapterRun,
    across_pairs,
    cell_timeout,
    describe_pair,
    job_pair_key,
    pairs_side_by_side,
    restamp,
    run_chapter,
    sources_digest,
    strongest_first,
)
from mbt.book.provenance import FOLDER, downloads_markdown, provenance, source_commit, write_downloads
from mbt.pairs import PAIRS, folder_label, get_pair, resolve_toy
from mbt.paper.calibration import claims_markdown, load_calibration, rules_markdown
from mbt.paper.export import records_frame
from mbt.paper.records import slug
from mbt.paper.render import conventions_markdown, paper_vs_ours_markdown, premise_markdown, store_problems_markdown
from mbt.paper.store import collect_records, contributed_root, store_folder, store_problems, store_root
from mbt.results import atomic_write, file_sha256
from mbt.workers import slots

__all__ = [
    "CALIBRATION",
    "MARKERS",
    "PREMISE",
    "PROSE",
    "TABLE_MARKER",
    "BuildReport",
    "build",
    "fill_markers",
    "fill_premise",
    "stage_sources",
    "write_paper_vs_ours",
]


PROSE: tuple[str, ...] = ("intro", "methods", "paper_vs_ours", "released_code", "running_at_scale", "references")
"""Prose chapters (``book/<name>.md``)."""


TABLE_MARKER = "<!-- mbt:paper-vs-ours -->"
"""Line of ``book/paper_vs_ours.md`` replaced by the generated table in the staged book."""


@dataclass
class BuildReport:
    """The outcome of :func:`build`."""

    pair: str
    stage: Path
    html: Path | None
    chapters: list[ChapterRun] = field(default_factory=list)
    book_seconds: float = 0.0
    book_returncode: int | None = None

    @property
    def ok(self) -> bool:
        """No chapter failed and the book (if built) built."""
        return all(c.status != "failed" for c in self.chapters) and self.book_returncode in (None, 0)

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"{c.name:20s} {c.status:11s} {c.seconds:7.1f} s" + (f"  {c.error}" if c.error else "")
                 for c in self.chapters]
        if self.book_returncode is not None:
            state = "ok" if self.book_returncode == 0 else f"FAILED (exit {self.book_returncode})"
            lines.append(f"{'jupyter-book':20s} {state:11s} {self.book_seconds:7.1f} s")
        if self.html is not None and self.book_returncode == 0:
            lines.append(f"book: {self.html / 'index.html'}")
        return "\n".join(lines)


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


BOOK_FILES: tuple[str, ...] = ("_config.yml", "_toc.yml", "references.bib")
"""Files of the repository root the book is built from (the bibliography included)."""


def stage_sources(root: Path, stage: Path) -> None:
    """Mirror the book's sources into ``stage``: :data:`BOOK_FILES` and ``book/`` (not its build folders).

    Unchanged files are left alone (their modification times too), so Sphinx rebuilds only what changed.
    """
    for name in BOOK_FILES:
        if (root / name).is_file():  # a book without citations has no references.bib
            _copy_if_changed(root / name, stage / name)
    book = root / "book"
    for src in sorted(book.rglob("*")):
        rel = src.relative_to(book)
        hidden = rel.parts[0].startswith(("_", ".")) and rel.parts[0] != "_static"  # _static: the book's CSS
        if not src.is_file() or hidden or stage.resolve() in src.resolve().parents:
            continue
        _copy_if_changed(src, stage / "book" / rel)


CALIBRATION = Path("book") / "calibration.json"
"""The measured calibration of the decision rules (``scripts/calibrate_verdicts.py --out``), relative to the book."""

MARKERS: dict[str, Callable[[Path], str]] = {
    "<!-- mbt:conventions -->": lambda stage: conventions_markdown(),
    "<!-- mbt:calibration-rules -->": lambda stage: rules_markdown(load_calibration(stage / CALIBRATION)),
    "<!-- mbt:calibration-claims -->": lambda stage: claims_markdown(load_calibration(stage / CALIBRATION)),
}
"""Lines of the prose chapters replaced, in the staged copy, by tables generated from the code (or, for the
calibration, from the numbers the calibration script measured); each function gets the stage folder."""


def fill_markers(stage: Path) -> None:
    """Replace every :data:`MARKERS` line in the staged ``book/*.md`` with its generated table."""
    for page in sorted((stage / "book").glob("*.md")):
        text = page.read_text()
        new = text
        for marker, fn in MARKERS.items():
            if marker in new:
                new = new.replace(marker, fn(stage))
        if new != text:
            page.write_text(new)


PREMISE: tuple[str, str] = ("<!-- mbt:premise -->", "<!-- /mbt:premise -->")
"""The region of the introduction and of the cross-pair chapter that :func:`fill_premise` fills."""

_PREMISE_PAGES = ("book/intro.md", f"notebooks/{ACROSS}.ipynb")
_PREMISE_REGION = re.compile(re.escape(PREMISE[0]) + r".*?" + re.escape(PREMISE[1]), re.S)


def _with_premise(text: str, premise: str) -> str:
    return _PREMISE_REGION.sub(lambda _m: f"{PREMISE[0]}\n{premise}\n{PREMISE[1]}", text)


def fill_premise(stage: Path, folder: Path, label: str) -> list[Path]:
    """Fill the :data:`PREMISE` region of the staged introduction and cross-pair chapter from chapter 10's table.

    The text is :func:`mbt.paper.render.premise_markdown` of the ``knowledge`` table in the pair's store
    (``<folder>/tables/knowledge.csv``, written by chapter 10): what the pair's Base can and cannot do, in
    numbers measured by the book. Filled after every chapter has run, so the introduction and chapter 8,
    which comes before chapter 10, show this build's numbers; a rebuild fills them again.

    Args:
        stage: The staged book.
        folder: The pair's store folder.
        label: The pair's label (the rows of the table described).

    Returns:
        The staged pages that changed.
    """
    path = folder / "tables" / "knowledge.csv"
    table = pd.read_csv(path) if path.is_file() else None
    premise = premise_markdown(table, pair=label)
    changed = []
    for rel in _PREMISE_PAGES:
        page = stage / rel
        if not page.is_file():
            continue
        if page.suffix == ".md":
            text = page.read_text()
            new = _with_premise(text, premise)
            if new != text:
                page.write_text(new)
                changed.append(page)
            continue
        nb = json.loads(page.read_text())
        touched = False
        for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            if cell.get("cell_type") == "markdown" and PREMISE[0] in text:
                new = _with_premise(text, premise)
                touched = touched or new != text
                cell["source"] = new.splitlines(keepends=True) if isinstance(source, list) else new
        if touched:
            before = file_sha256(page)
            blob = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
            atomic_write(page, lambda tmp, blob=blob: tmp.write_text(blob))
            restamp(page, before)  # the executed chapter stays up to date with its premise filled in
            changed.append(page)
    return changed


def write_paper_vs_ours(stage: Path, current: str, *, roots: Sequence[Path] = (), root: Path | None = None) -> Path:
    """Replace :data:`TABLE_MARKER` in the staged ``book/paper_vs_ours.md`` with the generated table.

    The same records also go to ``book/downloads/paper_vs_ours-table.csv`` (one row per pair and headline,
    :func:`mbt.paper.export.records_frame`) with a provenance file (the pairs, ``mbt``'s version and the
    commit of ``root``), and the page links them.
    """
    page = stage / "book" / "paper_vs_ours.md"
    text = page.read_text()
    records = collect_records(current, roots=roots)
    table = paper_vs_ours_markdown(records, titles=TITLES)
    problems = store_problems_markdown(store_problems([store_root(), *roots]))  # the same list as chapter 8's
    table += ("\n" + problems) if problems else ""
    if TABLE_MARKER not in text:
        raise ValueError(f"{page} has no line {TABLE_MARKER!r} to replace with the table")
    info = provenance(chapter="paper_vs_ours", parameters={"pairs": list(records)},
                      source=source_commit(root) if root is not None else None)
    frame = records_frame(records)
    files = write_downloads({"table": frame}, stage / "book" / FOLDER, prefix="paper_vs_ours", info=info)
    rows = {files[0].name: len(frame)}
    links = downloads_markdown(files, FOLDER, rows=rows, heading="Download the whole table")
    new = text.replace(TABLE_MARKER, links + "\n\n" + table)
    if not page.exists() or page.read_text() != new:
        page.write_text(new)
    return page


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else "jupyter-book"


def _ladder_and_own(others: Sequence[str], own: Sequence[str], *, label: str, params: Mapping[str, Any], root: Path,
                    stage: Path, quick: bool, force: bool, kernel_name: str, timeout: int | None,
                    log: Callable[[str], None]) -> dict[str, ChapterRun]:
    """The ladder's chapters for ``others`` and the book pair's own chapters ``own``, side by side.

    One job per pair in a pool of one worker per CPU (:func:`~mbt.book.jobs.pairs_side_by_side`): the
    book's own chapters first (the longest job), then the rungs from the strongest SFT down. The own
    chapters are executed exactly as :func:`build` would (same output, parameters and stamps).

    Returns:
        The own chapters' runs by name (empty when ``own`` is).
    """
    common = {"root": root, "stage": stage, "quick": quick, "force": force, "kernel_name": kernel_name,
              "timeout": timeout}
    calls = [{"name": label, "chapters": list(own), "out_dir": stage / "notebooks", "params": dict(params),
              **common}] if own else []
    calls += [{"name": others[i], "chapters": list(LADDER_CHAPTERS), **common} for i in strongest_first(others)]
    per_call = pairs_side_by_side(calls, workers=slots(1, jobs=len(calls)), log=log)
    return {job.chapter: job.run for job in per_call[0]} if own else {}


def build(
    pair: str | None = "toy",
    *,
    base: str | None = None,
    sft: str | None = None,
    quick: bool = False,
    root: str | Path | None = None,
    stage: str | Path | None = None,
    output: str | Path | None = None,
    chapters: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    execute: bool = True,
    force: bool = False,
    html: bool = True,
    strict: bool = False,
    kernel_name: str = "python3",
    timeout: int | None = None,
    log: Callable[[str], None] = print,
) -> BuildReport:
    """Execute every chapter for a pair with papermill, then build the Jupyter Book.

    Steps: check the pair and the book root; build the toy pair if it is the chosen pair and
    missing (:func:`mbt.toy.build`); mirror the prose sources into ``stage``; execute each chapter's
    jupytext source with papermill in a **fresh kernel, in order**, into
    ``stage/notebooks/<chapter>.ipynb`` (skipping a chapter whose source, parameters, ``mbt`` code
    and pair are unchanged since its last successful run, unless ``force``); generate the "Paper vs
    ours" table from the recorded findings; run ``jupyter-book build stage --path-output output``.

    Args:
        pair: Registry name (``mbt pairs``); ignored when ``base`` and ``sft`` are given.
        base: Base model folder or Hub id (with ``sft``).
        sft: SFT model folder or Hub id.
        quick: Pass ``quick=True`` to every chapter (a smoke run: tiny samples, seconds each).
        root: Book root with ``_config.yml``, ``_toc.yml``, ``book/`` and ``notebooks/`` (default:
            the working directory, see :func:`find_root`).
        stage: Staging folder (default ``<root>/book/_executed``, git-ignored).
        output: Folder that receives ``_build/html`` (default: ``root``).
        chapters: Subset of :data:`CHAPTERS` to execute (the others are left as they are).
        parameters: Extra notebook parameters (each passed only to chapters that declare it).
        execute: ``False`` skips execution (rebuild the HTML from the staged notebooks).
        force: Execute every chapter even if it is up to date.
        html: Run Jupyter Book after executing.
        strict: Treat Sphinx warnings as errors (``-W --keep-going``).
        kernel_name: Jupyter kernel for the chapters.
        timeout: Per-cell limit in seconds: ``None`` is the pair's default (one hour for a toy pair, eight for
            any other, :func:`~mbt.book.jobs.cell_timeout`), ``0`` none. A chapter with a cell that runs
            longer fails with its name and the cell.
        log: Progress messages.

    Returns:
        A :class:`BuildReport` (``report.ok``; per-chapter status and seconds; the HTML folder).

    Raises:
        ValueError: Unknown pair or chapter, or only one of ``base``/``sft``.
        FileNotFoundError: ``root`` (or, without it, the working directory) has no ``_config.yml``.
    """
    if bool(base) != bool(sft):
        raise ValueError("give both --base and --sft (or neither, to use --pair)")
    if not base:
        spec = get_pair(str(pair))  # refuse an unknown name before anything else
        label = spec.name
    else:
        spec = None
        label = folder_label(str(base), str(sft))
    own_timeout = cell_timeout(timeout, spec)
    root = find_root(root)
    if not (root / "_config.yml").exists():
        raise FileNotFoundError(f"{root} has no _config.yml (run from the repository root or pass --root)")
    wanted = list(CHAPTERS if chapters is None else chapters)
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; valid: {', '.join(CHAPTERS)}")
    extra = dict(parameters or {})
    if extra:  # parsed once, with their types, before a toy pair is built or a chapter runs
        notebooks = {name: read_notebook(root / "notebooks" / f"{name}.py") for name in wanted}
        extra = check_parameters(extra, {name: parameter_types(nb) for name, nb in notebooks.items()},
                                 {name: parameter_defaults(nb) for name, nb in notebooks.items()})
    stage = Path(stage) if stage is not None else root / "book" / "_executed"
    output = Path(output) if output is not None else root
    stage.mkdir(parents=True, exist_ok=True)
    report_ = BuildReport(pair=label, stage=stage, html=output / "_build" / "html" if html else None)

    if execute and spec is not None and spec.source == "toy":
        log(f"toy pair: {Path(resolve_toy(spec).base).parent}")
    stage_sources(root, stage)
    (stage / "notebooks").mkdir(exist_ok=True)
    folder = store_folder(label, quick=quick)
    common = {"pair": str(pair or ""), "base": str(base or ""), "sft": str(sft or ""), "quick": bool(quick)}
    identity = job_pair_key(None if base else pair, base, sft) if execute else {}
    if execute and any(name in wanted for name in CHAPTERS):
        describe_pair(folder, label, spec, base=base, sft=sft, quick=quick, source=identity)
    done: dict[str, ChapterRun] = {}  # chapters of the book's own pair already run beside the ladder
    if execute and ACROSS in wanted:
        needed = across_pairs(label, extra.get("pairs") or [])
        others = [p for p in needed if p != label and p in PAIRS]
        if others:
            log(f"{ACROSS}: pairs it compares: {', '.join(needed)}; running their chapters first")
            own = [c for c in wanted if c in BESIDE_THE_LADDER] if spec is not None and spec.source == "toy" else []
            done = _ladder_and_own(others, own, label=label, params={**common, **extra}, root=root, stage=stage,
                                   quick=quick, force=force, kernel_name=kernel_name, timeout=timeout, log=log)
    digest = sources_digest()

    failed = False
    for name in CHAPTERS:
        out = stage / "notebooks" / f"{name}.ipynb"
        if name not in wanted or not execute:
            report_.chapters.append(ChapterRun(name, "skipped", path=out if out.exists() else None))
            continue
        if name in done:  # run beside the ladder (in order, like the rest)
            report_.chapters.append(done[name])
            failed = failed or done[name].status == "failed"
            continue
        if failed:
            report_.chapters.append(ChapterRun(name, "skipped"))
            continue
        run = run_chapter(name, root=root, out=out, params={**common, **extra}, folder=folder, identity=identity,
                          digest=digest, force=force, kernel_name=kernel_name, timeout=own_timeout, log=log)
        report_.chapters.append(run)
        failed = run.status == "failed"
    write_paper_vs_ours(stage, slug(label) + ("-quick" if quick else ""), roots=[contributed_root(root)], root=root)
    fill_markers(stage)
    fill_premise(stage, folder, label)
    if html and not failed:
        missing = [n for n in CHAPTERS if not (stage / "notebooks" / f"{n}.ipynb").exists()]
        if missing:
            raise FileNotFoundError(f"chapters never executed: {missing}; run without --only/--no-execute first")
        cmd = [_jupyter_book(), "build", str(stage), "--path-output", str(output)]
        if strict:
            cmd += ["-W", "-n", "--keep-going"]
        start = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        report_.book_returncode = subprocess.call(cmd, env=env)
        report_.book_seconds = time.perf_counter() - start
    return report_
