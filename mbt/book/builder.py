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

from mbt import __version__, cpu, toy
from mbt.pairs import PAIRS, folder_label, get_pair, resolve_toy
from mbt.paper.headlines import CHAPTERS
from mbt.paper.records import RECORDS_ENV, slug
from mbt.paper.render import conventions_markdown, paper_vs_ours_markdown
from mbt.paper.store import collect_records, contributed_root, store_folder, update_meta
from mbt.results import atomic_write, file_lock

__all__ = [
    "MARKERS",
    "PROSE",
    "TABLE_MARKER",
    "ACROSS",
    "LADDER_CHAPTERS",
    "BatchJob",
    "BuildReport",
    "ChapterRun",
    "batch",
    "across_pairs",
    "batch_summary",
    "build",
    "check_parameters",
    "describe_pair",
    "fill_markers",
    "find_root",
    "parameter_names",
    "parameter_types",
    "read_notebook",
    "run_chapter",
    "stage_sources",
    "toy_summary",
    "write_paper_vs_ours",
]

PROSE: tuple[str, ...] = ("intro", "methods", "paper_vs_ours", "released_code", "running_at_scale")
"""Prose chapters (``book/<name>.md``)."""

ACROSS = "08_across_pairs"
"""The cross-pair chapter: it compares the pairs in its ``pairs`` parameter (default: the SFT ladder)."""

LADDER_CHAPTERS: tuple[str, ...] = ("01_divergence", "02_convergence", "03_probing", "04_weights")
"""The chapters run for the other pairs the cross-pair chapter compares (LoRA is too costly for every rung)."""

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
    """The book root: ``start`` if given, else the working directory, which must hold ``_config.yml``.

    There is no fallback to the folder ``mbt`` happens to be installed from: a build (and its staged
    notebooks and HTML) should land in the checkout the user is in, never silently in another one.

    Args:
        start: The folder given with ``--root`` (checked by :func:`build`), or ``None``.

    Raises:
        FileNotFoundError: ``start`` is ``None`` and the working directory has no ``_config.yml``.
    """
    if start is not None:
        return Path(start).resolve()
    cwd = Path.cwd()
    if not (cwd / "_config.yml").exists():
        raise FileNotFoundError(f"{cwd} is not the book's root (it has no _config.yml); run from the repository "
                                "root or pass --root")
    return cwd


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
        size = toy.ladder.rung_config(spec.toy_sft_steps) if spec.toy_sft_steps else "default"
        info["toy"] = toy.settings_hash(variant=spec.toy_variant or "toy", size=size)
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


def write_paper_vs_ours(stage: Path, current: str, *, roots: Sequence[Path] = ()) -> Path:
    """Replace :data:`TABLE_MARKER` in the staged ``book/paper_vs_ours.md`` with the generated table."""
    page = stage / "book" / "paper_vs_ours.md"
    text = page.read_text()
    table = paper_vs_ours_markdown(collect_records(current, roots=roots))
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
        timeout: Per-cell timeout in seconds (``None`` = none).
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
        log(f"toy pair: {Path(resolve_toy(spec).base).parent}")
    stage_sources(root, stage)
    (stage / "notebooks").mkdir(exist_ok=True)
    folder = store_folder(label, quick=quick)
    common = {"pair": str(pair or ""), "base": str(base or ""), "sft": str(sft or ""), "quick": bool(quick)}
    if execute and any(name in wanted for name in CHAPTERS):
        describe_pair(folder, label, spec, base=base, sft=sft, quick=quick)
    if execute and ACROSS in wanted:
        needed = across_pairs(label, extra.get("pairs") or [])
        others = [p for p in needed if p != label and p in PAIRS]
        if others:
            log(f"{ACROSS}: pairs it compares: {', '.join(needed)}; running their chapters first")
            batch(others, chapters=LADDER_CHAPTERS, quick=quick, root=root, stage=stage, kernel_name=kernel_name,
                  timeout=timeout, log=log)
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
        run = run_chapter(name, root=root, out=out, params={**common, **extra}, folder=folder, identity=identity,
                          digest=digest, force=force, kernel_name=kernel_name, timeout=timeout, log=log)
        report_.chapters.append(run)
        failed = run.status == "failed"
    write_paper_vs_ours(stage, slug(label) + ("-quick" if quick else ""), roots=[contributed_root(root)])
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


def across_pairs(label: str, pairs: Sequence[str]) -> list[str]:
    """The registered pairs whose chapters a build runs before the cross-pair chapter.

    The pairs asked for (``--param pairs=[...]``), or, when none are asked for and the book's own pair is a
    rung of the SFT-intensity ladder (the default ``toy`` pair is one), the whole ladder. Otherwise none:
    the chapter then compares every pair that already has results in a store.
    """
    if pairs:
        return list(pairs)
    return list(toy.LADDER) if label in toy.LADDER else []


def run_chapter(name: str, *, root: Path, out: Path, params: Mapping[str, Any], folder: Path,
                identity: Mapping[str, Any], digest: str, force: bool = False, kernel_name: str = "python3",
                timeout: int | None = None, log: Callable[[str], None] = print) -> ChapterRun:
    """Execute one chapter for one pair into ``out``, unless it is up to date; record it in the pair's store.

    A chapter is up to date when ``out`` exists and the stamp kept beside it (``.mbt-stamps.json``, under a
    file lock, so two processes can share a folder) matches the hash of the chapter's source, the
    parameters it declares, the ``mbt`` sources, the pair's identity and its store folder.

    Args:
        name: Chapter (:data:`~mbt.paper.headlines.CHAPTERS`).
        root: Book root (``notebooks/<name>.py`` is read from it).
        out: Executed notebook to write.
        params: Parameters; each is passed only if the chapter declares it.
        folder: The pair's store folder (findings go to ``records/``, tables to ``tables/``).
        identity: What identifies the pair (part of the stamp).
        digest: Hash of the ``mbt`` sources (part of the stamp).
        force: Execute even when up to date.
        kernel_name: Jupyter kernel.
        timeout: Per-cell timeout in seconds.
        log: Progress messages.
    """
    source = root / "notebooks" / f"{name}.py"
    nb = read_notebook(source)
    declared = set(parameter_names(nb))
    params = {k: v for k, v in params.items() if k in declared}
    records = folder / "records"
    stamps_path = out.parent / ".mbt-stamps.json"
    key = hashlib.sha256(json.dumps({"source": source.read_text(), "params": params, "mbt": digest,
                                     "pair": identity, "records": str(records)}, sort_keys=True,
                                    default=str).encode()).hexdigest()
    if not force and _stamps(stamps_path).get(name) == key and out.exists():
        log(f"{name}: up to date")
        return ChapterRun(name, "up to date", path=out)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
    (records / f"{name}.json").unlink(missing_ok=True)
    log(f"{name}: executing ({', '.join(f'{k}={v!r}' for k, v in params.items())})")
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        _execute(nb, out, params, kernel_name=kernel_name, cwd=out.parent, timeout=timeout, records=records)
    except Exception as exc:  # papermill raises its own execution error types
        seconds = time.perf_counter() - start
        log(f"{name}: FAILED after {seconds:.1f} s — see {out}")
        _set_stamp(stamps_path, name, None)
        return ChapterRun(name, "failed", seconds, out, _short_error(exc))
    seconds = time.perf_counter() - start
    _set_stamp(stamps_path, name, key)
    update_meta(folder, chapters={name: {"parameters": params, "seconds": round(seconds, 1),
                                         "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}})
    log(f"{name}: done in {seconds:.1f} s")
    return ChapterRun(name, "executed", seconds, out)


def _stamps(path: Path) -> dict[str, str]:
    with file_lock(path):
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            data = {}
    return data if isinstance(data, dict) else {}


def _set_stamp(path: Path, name: str, key: str | None) -> None:
    with file_lock(path):
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        if key is None:
            data.pop(name, None)
        else:
            data[name] = key
        blob = json.dumps(data, indent=1, sort_keys=True)
        atomic_write(path, lambda tmp: tmp.write_text(blob))


def describe_pair(folder: Path, label: str, spec: Any, *, base: str | None = None, sft: str | None = None,
                  quick: bool = False) -> dict[str, Any]:
    """Write what a store folder is about into its ``store.json``: the pair, ``mbt``'s version, the device.

    For a toy pair (built by then) it also records the toy build's SFT/pretraining compute ratio and its
    quality checks (:mod:`mbt.toy`), so the cross-pair chapter can say what each rung is.
    """
    import torch

    info: dict[str, Any] = {"pair": label, "quick": bool(quick), "mbt": __version__,
                            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    if spec is None:
        info["spec"] = {"base": str(base), "sft": str(sft), "family": "custom"}
    else:
        info["spec"] = {k: v for k, v in dataclasses.asdict(spec).items() if k != "extras"}
        if spec.source == "toy":
            info["toy"] = toy_summary(Path(resolve_toy(spec, progress=False).base).parent)
    return update_meta(folder, **info)


def toy_summary(build_dir: Path) -> dict[str, Any]:
    """What a toy build is, from its manifest: SFT steps, SFT ÷ pretraining tokens, task scores, weight change.

    ``weight_change_rel`` is the mean over blocks of ``‖ΔW‖_F / ‖W_Base‖_F`` of the attention projections.
    """
    manifest = json.loads((build_dir / "manifest.json").read_text())
    quality = manifest.get("quality", {})
    math_q = quality.get("toy_math", {})
    compute = manifest.get("ladder") or manifest.get("data", {}).get("sft_compute") or {}
    rel = [row.get("attn_rel") for row in quality.get("weight_change", []) if row.get("attn_rel") is not None]
    return {"sft_steps": manifest.get("config", {}).get("sft_steps"), "sft_tokens": compute.get("sft_tokens"),
            "pretrain_tokens": compute.get("pretrain_tokens"), "sft_compute_ratio": compute.get("ratio"),
            "base_exact_match": max((v for k, v in math_q.items() if k.startswith("base_") and "shot" in k),
                                    default=None),
            "sft_exact_match": math_q.get("sft_0shot"), "base_answer_nll": math_q.get("base_answer_nll"),
            "sft_answer_nll": math_q.get("sft_answer_nll"),
            "weight_change_rel": sum(rel) / len(rel) if rel else None}


def batch(
    pairs: Sequence[str],
    *,
    chapters: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    quick: bool = False,
    root: str | Path | None = None,
    stage: str | Path | None = None,
    force: bool = False,
    kernel_name: str = "python3",
    timeout: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[BatchJob]:
    """Execute chapters for several pairs with papermill, each result into its pair's store folder.

    Every ``(pair, chapter)`` is an independent job: a failure is recorded and the other jobs go on; a
    rerun executes only what is not up to date (:func:`run_chapter`), so an interrupted batch resumes and
    two batches over the same pairs share the work safely. Executed notebooks go to
    ``<stage>/batch/<pair>/``; findings and tables to the store (:mod:`mbt.paper.store`). To spread the jobs
    over a cluster, run one ``mbt batch --pairs <pair>`` per node (e.g. a Slurm job array) on a shared
    cache folder (``MBT_CACHE``).

    Args:
        pairs: Registered pair names.
        chapters: Chapters to execute (default: all but the cross-pair chapter).
        parameters: Extra parameters, each passed to the chapters that declare it (checked first).
        quick: Smoke-test sizes.
        root: Book root (default :func:`find_root`).
        stage: Folder for executed notebooks (default ``<root>/book/_executed``).
        force: Execute every job even when up to date.
        kernel_name: Jupyter kernel.
        timeout: Per-cell timeout in seconds.
        progress: A progress bar over jobs.
        log: Progress messages.

    Returns:
        One :class:`BatchJob` per job, in order.

    Raises:
        ValueError: Unknown pairs, chapters or parameters (before anything runs).
    """
    from tqdm.auto import tqdm

    names = [str(p) for p in pairs]
    if not names:
        raise ValueError("give at least one pair")
    for name in names:
        get_pair(name)  # an unknown name is refused (with the valid ones) before anything runs
    root = find_root(root)
    wanted = [c for c in CHAPTERS if c != ACROSS] if chapters is None else list(chapters)
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; valid: {', '.join(CHAPTERS)}")
    extra = dict(parameters or {})
    if extra:
        check_parameters(extra, {c: parameter_types(read_notebook(root / "notebooks" / f"{c}.py")) for c in wanted})
    stage = Path(stage) if stage is not None else root / "book" / "_executed"
    digest = _sources_digest()
    jobs: list[BatchJob] = []
    bar = tqdm(total=len(names) * len(wanted), desc="mbt batch", unit="job", disable=not progress)
    for name in names:
        spec = get_pair(name)
        folder = store_folder(spec.name, quick=quick)
        try:
            describe_pair(folder, spec.name, spec, quick=quick)
            identity = _pair_identity(name, None, None)
        except Exception as exc:  # a pair that cannot be prepared fails its jobs, not the batch
            for chapter in wanted:
                jobs.append(BatchJob(name, chapter, ChapterRun(chapter, "failed", error=_short_error(exc))))
                bar.update(1)
            log(f"{name}: could not be prepared: {_short_error(exc)}")
            continue
        for chapter in wanted:
            out = stage / "batch" / slug(spec.name + ("-quick" if quick else "")) / f"{chapter}.ipynb"
            run = run_chapter(chapter, root=root, out=out, params={"pair": name, "quick": bool(quick), **extra},
                              folder=folder, identity=identity, digest=digest, force=force, kernel_name=kernel_name,
                              timeout=timeout, log=lambda text, name=name: log(f"{name}: {text}"))
            jobs.append(BatchJob(name, chapter, run))
            bar.update(1)
    bar.close()
    return jobs


@dataclass
class BatchJob:
    """One ``(pair, chapter)`` job of :func:`batch` and how it went."""

    pair: str
    chapter: str
    run: ChapterRun


def batch_summary(jobs: Sequence[BatchJob]) -> str:
    """A few lines: counts by status, then every failed job with its error."""
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.run.status] = counts.get(job.run.status, 0) + 1
    lines = [", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + f" ({len(jobs)} jobs)"]
    lines += [f"FAILED {job.pair} / {job.chapter}: {job.run.error}" for job in jobs if job.run.status == "failed"]
    return "\n".join(lines)


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
    # and OpenMP's bounded spin, fast on idle and busy CPUs alike (mbt.cpu; scheduling only)
    omp = cpu.omp_environment(os.cpu_count() or 1)
    with _environment(MPLBACKEND=None, **omp, **{RECORDS_ENV: str(records)}), \
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
