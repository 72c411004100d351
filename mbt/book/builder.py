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

import ast
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbt import cpu, toy
from mbt.pairs import folder_label, get_pair
from mbt.paper.headlines import CHAPTERS
from mbt.paper.records import RECORDS_ENV, collect_records, records_root, slug
from mbt.paper.render import conventions_markdown, paper_vs_ours_markdown

__all__ = [
    "MARKERS",
    "PROSE",
    "TABLE_MARKER",
    "BuildReport",
    "ChapterRun",
    "build",
    "check_parameters",
    "fill_markers",
    "find_root",
    "parameter_names",
    "parameter_types",
    "read_notebook",
    "stage_sources",
    "write_paper_vs_ours",
]

PROSE: tuple[str, ...] = ("intro", "methods", "paper_vs_ours", "released_code", "running_at_scale")
"""Prose chapters (``book/<name>.md``)."""

TABLE_MARKER = "<!-- mbt:paper-vs-ours -->"
"""Line of ``book/paper_vs_ours.md`` replaced by the generated table in the staged book."""


@dataclass
class ChapterRun:
    """How one chapter went in a build."""

    name: str
    status: str  # "executed", "up to date", "failed", "skipped"
    seconds: float = 0.0
    path: Path | None = None
    error: str = ""


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


def find_root(start: str | Path | None = None) -> Path:
    """The book root: ``start`` (default: the working directory) or the checkout ``mbt`` runs from."""
    if start is not None:
        return Path(start).resolve()
    cwd = Path.cwd()
    if (cwd / "_config.yml").exists():
        return cwd
    here = Path(__file__).resolve().parents[2]  # the checkout holding the mbt package
    return here if (here / "_config.yml").exists() else cwd


def parameter_names(notebook: Any) -> list[str]:
    """Names assigned in a notebook's cell tagged ``parameters`` (empty if it has none)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                                       "list": (list, tuple), "dict": (dict,), "tuple": (list, tuple)}


def parameter_types(notebook: Any) -> dict[str, str]:
    """``{name: annotation}`` of a notebook's ``parameters`` cell (``pair: str = "toy"`` gives ``"str"``)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return {node.target.id: ast.unparse(node.annotation) for node in ast.parse(cell.source).body
                    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    return {}


def check_parameters(parameters: Mapping[str, Any], declared: Mapping[str, Mapping[str, str]]) -> None:
    """Refuse ``--param`` values that no chosen chapter declares, or whose type differs from the declaration.

    Args:
        parameters: The extra parameters, ``{name: value}``.
        declared: ``{chapter: {name: annotation}}`` (:func:`parameter_types` of each chosen chapter).

    Raises:
        ValueError: Naming the parameter, the chapters that declare it (or every valid name) and the type.
    """
    valid = sorted({name for types in declared.values() for name in types})
    for name, value in parameters.items():
        where = {chapter: types[name] for chapter, types in declared.items() if name in types}
        if not where:
            raise ValueError(f"no chosen chapter has a parameter {name!r}; valid names: {', '.join(valid)}")
        for chapter, annotation in where.items():
            allowed = _TYPES.get(annotation)
            is_bool_for_number = isinstance(value, bool) and allowed is not None and bool not in allowed
            if allowed is not None and (not isinstance(value, allowed) or is_bool_for_number):
                raise ValueError(f"parameter {name!r} must be {annotation} (chapter {chapter} declares "
                                 f"{name}: {annotation}), got {type(value).__name__} {value!r}")


def read_notebook(path: str | Path) -> Any:
    """Read a chapter from its jupytext source (``.py``), the source of truth, as an nbformat notebook."""
    import jupytext

    return jupytext.read(Path(path))


def _sources_digest() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent  # the whole mbt package
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _pair_identity(pair: str | None, base: str | None, sft: str | None) -> dict[str, Any]:
    """Identify the pair a build runs on without loading it (folder stats, toy settings, Hub ids)."""
    def folder(path: str) -> Any:
        p = Path(path)
        if not p.is_dir():
            return path
        return sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())

    if base or sft:
        return {"base": str(base), "sft": str(sft), "files": [folder(str(base)), folder(str(sft))]}
    spec = get_pair(str(pair))
    info: dict[str, Any] = dataclasses.asdict(spec)
    if spec.source == "toy":
        info["toy"] = toy.settings_hash(variant=spec.toy_variant or "toy")
    return info


def _copy_if_changed(src: Path, dst: Path) -> None:
    if dst.exists() and dst.read_bytes() == src.read_bytes():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def stage_sources(root: Path, stage: Path) -> None:
    """Mirror the book's sources into ``stage``: ``_config.yml``, ``_toc.yml`` and ``book/`` (not its build folders).

    Unchanged files are left alone (their modification times too), so Sphinx rebuilds only what changed.
    """
    for name in ("_config.yml", "_toc.yml"):
        _copy_if_changed(root / name, stage / name)
    book = root / "book"
    for src in sorted(book.rglob("*")):
        rel = src.relative_to(book)
        hidden = rel.parts[0].startswith(("_", ".")) and rel.parts[0] != "_static"  # _static: the book's CSS
        if not src.is_file() or hidden or stage.resolve() in src.resolve().parents:
            continue
        _copy_if_changed(src, stage / "book" / rel)


@contextlib.contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


MARKERS: dict[str, Callable[[], str]] = {
    "<!-- mbt:conventions -->": conventions_markdown,
}
"""Lines of the prose chapters replaced, in the staged copy, by tables generated from the code."""


def fill_markers(stage: Path) -> None:
    """Replace every :data:`MARKERS` line in the staged ``book/*.md`` with its generated table."""
    for page in sorted((stage / "book").glob("*.md")):
        text = page.read_text()
        new = text
        for marker, fn in MARKERS.items():
            if marker in new:
                new = new.replace(marker, fn())
        if new != text:
            page.write_text(new)


def write_paper_vs_ours(stage: Path, current: str) -> Path:
    """Replace :data:`TABLE_MARKER` in the staged ``book/paper_vs_ours.md`` with the generated table."""
    page = stage / "book" / "paper_vs_ours.md"
    text = page.read_text()
    table = paper_vs_ours_markdown(collect_records(current))
    if TABLE_MARKER not in text:
        raise ValueError(f"{page} has no line {TABLE_MARKER!r} to replace with the table")
    new = text.replace(TABLE_MARKER, table)
    if not page.exists() or page.read_text() != new:
        page.write_text(new)
    return page


def _jupyter_book() -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    return str(exe) if exe.exists() else "jupyter-book"


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
            the working directory, else the checkout ``mbt`` is installed from).
        stage: Staging folder (default ``<root>/book/_executed``, git-ignored).
        output: Folder that receives ``_build/html`` (default: ``root``).
        chapters: Subset of :data:`CHAPTERS` to execute (the others are left as they are).
        parameters: Extra notebook parameters (each passed only to chapters that declare it).
        execute: ``False`` skips execution (rebuild the HTML from the staged notebooks).
        force: Execute every chapter even if it is up to date.
        html: Run Jupyter Book after executing.
        strict: Treat Sphinx warnings as errors (``-W --keep-going``).
        kernel_name: Jupyter kernel for the chapters.
        timeout: Per-cell timeout in seconds (``None`` = none).
        log: Progress messages.

    Returns:
        A :class:`BuildReport` (``report.ok``; per-chapter status and seconds; the HTML folder).

    Raises:
        ValueError: Unknown pair or chapter, or only one of ``base``/``sft``.
        FileNotFoundError: ``root`` has no ``_config.yml``.
    """
    if bool(base) != bool(sft):
        raise ValueError("give both --base and --sft (or neither, to use --pair)")
    if not base:
        spec = get_pair(str(pair))  # refuse an unknown name before anything else
        label = spec.name
    else:
        spec = None
        label = folder_label(str(base), str(sft))
    root = find_root(root)
    if not (root / "_config.yml").exists():
        raise FileNotFoundError(f"{root} has no _config.yml (run from the repository root or pass --root)")
    wanted = list(CHAPTERS if chapters is None else chapters)
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; valid: {', '.join(CHAPTERS)}")
    extra = dict(parameters or {})
    if extra:
        check_parameters(extra, {name: parameter_types(read_notebook(root / "notebooks" / f"{name}.py"))
                                 for name in wanted})
    stage = Path(stage) if stage is not None else root / "book" / "_executed"
    output = Path(output) if output is not None else root
    stage.mkdir(parents=True, exist_ok=True)
    report_ = BuildReport(pair=label, stage=stage, html=output / "_build" / "html" if html else None)

    if execute and spec is not None and spec.source == "toy":
        log(f"toy pair: {toy.build(variant=spec.toy_variant or 'toy', progress=True)}")
    stage_sources(root, stage)
    (stage / "notebooks").mkdir(exist_ok=True)
    records = records_root() / (slug(label) + ("-quick" if quick else ""))
    stamps_path = stage / ".mbt-stamps.json"
    stamps = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
    common = {"pair": str(pair or ""), "base": str(base or ""), "sft": str(sft or ""), "quick": bool(quick)}
    identity = _pair_identity(None if base else pair, base, sft)
    digest = _sources_digest()

    failed = False
    for name in CHAPTERS:
        out = stage / "notebooks" / f"{name}.ipynb"
        if name not in wanted or not execute:
            report_.chapters.append(ChapterRun(name, "skipped", path=out if out.exists() else None))
            continue
        if failed:
            report_.chapters.append(ChapterRun(name, "skipped"))
            continue
        source = root / "notebooks" / f"{name}.py"
        nb = read_notebook(source)
        declared = set(parameter_names(nb))
        params = {k: v for k, v in {**common, **extra}.items() if k in declared}
        key = hashlib.sha256(json.dumps({"source": source.read_text(), "params": params, "mbt": digest,
                                         "pair": identity, "records": str(records)}, sort_keys=True,
                                        default=str).encode()).hexdigest()
        if not force and stamps.get(name) == key and out.exists():
            report_.chapters.append(ChapterRun(name, "up to date", path=out))
            log(f"{name}: up to date")
            continue
        nb.metadata.pop("jupytext", None)
        nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
        (records / f"{name}.json").unlink(missing_ok=True)
        log(f"{name}: executing ({', '.join(f'{k}={v!r}' for k, v in params.items())})")
        start = time.perf_counter()
        try:
            _execute(nb, out, params, kernel_name=kernel_name, cwd=stage / "notebooks", timeout=timeout,
                     records=records)
        except Exception as exc:  # papermill raises its own execution error types
            seconds = time.perf_counter() - start
            report_.chapters.append(ChapterRun(name, "failed", seconds, out, _short_error(exc)))
            log(f"{name}: FAILED after {seconds:.1f} s — see {out}")
            stamps.pop(name, None)
            failed = True
            continue
        seconds = time.perf_counter() - start
        stamps[name] = key
        stamps_path.write_text(json.dumps(stamps, indent=1))
        report_.chapters.append(ChapterRun(name, "executed", seconds, out))
        log(f"{name}: done in {seconds:.1f} s")
    stamps_path.write_text(json.dumps(stamps, indent=1))
    write_paper_vs_ours(stage, label if not quick else label + "-quick")
    fill_markers(stage)
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


def _short_error(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return f"{name}: {value[0] if value else ''}"[:300]


@functools.cache
def _kernel_manager() -> type | None:
    """A kernel manager that talks to the kernel over local IPC sockets where the OS has them.

    Nothing then listens on a TCP port, and ipykernel (≥ 7.3) no longer prints its warning about
    unencrypted TCP once per chapter. ``None`` (nbclient's default, TCP) on Windows.
    """
    if os.name == "nt":
        return None
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

    return IPCKernelManager


def _execute(nb: Any, out: Path, params: Mapping[str, Any], *, kernel_name: str, cwd: Path, timeout: int | None,
             records: Path) -> None:
    import papermill

    records.mkdir(parents=True, exist_ok=True)
    # the kernel inherits this environment: never Agg (figures would vanish), records folder for report(),
    # and the OpenMP wait policy that suits how busy the CPUs are now (mbt.cpu; scheduling only)
    omp = cpu.wait_policy(os.cpu_count() or 1)
    with _environment(MPLBACKEND=None, OMP_WAIT_POLICY=omp, **{RECORDS_ENV: str(records)}), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        papermill.execute_notebook(
            nb, str(out), parameters=dict(params), kernel_name=kernel_name, cwd=str(cwd), progress_bar=False,
            log_output=False, request_save_on_cell_execute=False, execution_timeout=timeout,
            **({"kernel_manager_class": manager} if (manager := _kernel_manager()) else {}),
        )
    fold_injected_parameters(out)


def fold_injected_parameters(path: Path) -> None:
    """Fold the cell papermill injected (tag ``injected-parameters``): on the page its input hides behind a toggle."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
            changed = True
    if changed:
        nbformat.write(nb, path)
