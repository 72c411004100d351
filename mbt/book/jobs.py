r"""Executing chapters with papermill, one ``(pair, chapter)`` job at a time, into the pair's results store.

:func:`run_chapter` executes one chapter for one pair unless its result is current; :func:`batch` runs chapters
for several pairs (``mbt batch``), each job independent; the book build (:mod:`mbt.book.builder`) runs its
chapters through :func:`run_chapter` too.

A job's result is current when its content says so (:mod:`mbt.paper.manifests`): the store holds the chapter's
manifest, made from the same inputs (:func:`job_inputs`: the pair's content, every parameter with its
default, the chapter's source, the ``mbt`` sources), and every file it lists still has the SHA-256 it
was written with; the executed notebook beside ``out`` is checked by its SHA-256 too. Anything missing,
altered or made from other inputs is run again, and only that. A job runs in a private folder and is
moved into the store only when it finished; one lock per job keeps two batches from running it at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbt import __version__, cpu, toy
from mbt.book.chapters import (
    ACROSS,
    CHAPTERS,
    check_parameters,
    find_root,
    parameter_defaults,
    parameter_types,
    read_notebook,
)
from mbt.book.provenance import CONTEXT_ENV, build_context
from mbt.identity import pair_source_key
from mbt.pairs import PairSpec, get_pair, resolve_toy
from mbt.paper.manifests import (
    clear_staging,
    is_current,
    job_lock,
    manifest_path,
    publish,
    read_manifest,
    retract,
    staging_folder,
)
from mbt.paper.records import RECORDS_ENV, slug
from mbt.paper.store import contributed_root, store_folder, store_root, update_meta
from mbt.results import atomic_write, file_lock, file_sha256, tree_sha256, weights_fingerprint
from mbt.workers import available_cpus, check_workers, side_by_side, slots

__all__ = [
    "PAIR_TIMEOUT",
    "TOY_TIMEOUT",
    "across_pairs",
    "batch",
    "batch_summary",
    "BatchJob",
    "cell_timeout",
    "ChapterRun",
    "describe_pair",
    "chapter_parameters",
    "fold_injected_parameters",
    "job_inputs",
    "job_pair_key",
    "pair_chapters",
    "pairs_side_by_side",
    "restamp",
    "run_chapter",
    "sources_digest",
    "strongest_first",
    "toy_summary",
]


TOY_TIMEOUT = 3600
"""Default per-cell limit (seconds) for a toy pair. The slowest cell of the book is chapter 6's LoRA sweep:
20–21 minutes on 2 CPU cores in ordinary hours and about 26 in the slowest measured (``benchmarks/RESULTS.md``),
so one hour leaves more than twice the slowest time, while a hung kernel stops the build within the hour."""

PAIR_TIMEOUT = 8 * 3600
"""Default per-cell limit (seconds) for any other pair: a real pair's LoRA sweep or a 32B analysis runs for hours
on a GPU, so the limit only catches a kernel that hangs, within a working day."""


def cell_timeout(timeout: int | None, spec: PairSpec | None = None) -> int | None:
    """The per-cell time limit a chapter runs under: the one given, or the default for its pair.

    Args:
        timeout: Seconds (``--timeout``); ``None``: the default for the pair (:data:`TOY_TIMEOUT` for a toy
            pair, :data:`PAIR_TIMEOUT` for any other, including one given as folders); ``0``: no limit.
        spec: The pair (``None``: a pair given as folders or Hub ids).

    Returns:
        Seconds, or ``None`` for no limit.

    Raises:
        ValueError: A negative or non-integer ``timeout``.
    """
    if timeout is None:
        return TOY_TIMEOUT if spec is not None and spec.source == "toy" else PAIR_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise ValueError(f"timeout must be a whole number of seconds >= 0 (0: no limit), got {timeout!r}")
    return timeout or None


@dataclass
class ChapterRun:
    """How one chapter went in a build."""

    name: str
    status: str  # "executed", "up to date", "failed", "skipped"
    seconds: float = 0.0
    path: Path | None = None
    error: str = ""


def sources_digest() -> str:
    """Hash of the ``mbt`` package's sources (every ``*.py``): part of each chapter's stamp."""
    return tree_sha256(Path(__file__).resolve().parent.parent, "*.py")


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


def across_pairs(label: str, pairs: Sequence[str]) -> list[str]:
    """The registered pairs whose chapters a build runs before the cross-pair chapter.

    The pairs asked for (``--param pairs=[...]``), or, when none are asked for and the book's own pair is a
    rung of the SFT-intensity ladder (the default ``toy`` pair is one), the whole ladder. Otherwise none:
    the chapter then compares every pair that already has results in a store.
    """
    if pairs:
        return list(pairs)
    return list(toy.LADDER) if label in toy.LADDER else []


def job_pair_key(pair: str | None, base: str | None = None, sft: str | None = None) -> dict[str, Any]:
    """What a job's pair is made of, by content (part of every job's key and of its store's ``store.json``).

    :func:`mbt.identity.pair_source_key` (two folders: their content), and for a toy pair its built weights'
    content too (:func:`mbt.results.weights_fingerprint`: same-size files copied over it with their dates
    kept are noticed). Builds a missing toy pair.
    """
    key = pair_source_key(pair, base, sft)
    if not (base or sft):
        spec = get_pair(str(pair))
        if spec.source == "toy":
            built = resolve_toy(spec, progress=False)
            key["weights"] = {role: _content(getattr(built, role)) for role in ("base", "sft")}
    return key


def _content(folder: str) -> str:
    try:
        return weights_fingerprint(folder)
    except FileNotFoundError:  # nothing to hash (yet): the chapter that loads it fails and says why
        return "missing"


def chapter_parameters(notebook: Any, name: str, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chapter's parameters: those of ``params`` it declares (converted, checked), and all of them with defaults.

    Returns:
        ``(given, effective)``: what papermill injects, and every parameter's value as the chapter will see it.
    """
    types, defaults = parameter_types(notebook), parameter_defaults(notebook)
    given = {k: v for k, v in params.items() if k in types}
    given = check_parameters(given, {name: types}, {name: defaults}) if given else {}
    return given, {**defaults, **given}


def job_inputs(name: str, *, root: Path, params: Mapping[str, Any], identity: Mapping[str, Any],
               digest: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The key of one job and what it is made from.

    ``key = SHA-256`` of ``{"pair": identity, "parameters": every parameter with its default, "chapter": SHA-256 of
    the chapter's source, "mbt": digest}`` and, for the cross-pair chapter, ``"stores"``: a digest of the other
    chapters' manifests in every store it reads (their results are its inputs).

    Returns:
        ``(key, inputs, given)``: ``given`` are the parameters papermill injects.
    """
    source = root / "notebooks" / f"{name}.py"
    given, effective = chapter_parameters(read_notebook(source), name, params)
    inputs: dict[str, Any] = {"pair": dict(identity), "parameters": effective, "chapter": file_sha256(source),
                              "mbt": digest}
    if name == ACROSS:
        extra = [Path(folder) for folder in effective.get("stores") or []]
        inputs["stores"] = _stores_digest([store_root(), contributed_root(root), *extra])
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return key, inputs, given


_NOT_READ_ACROSS: frozenset[str] = frozenset({ACROSS, *CHAPTERS[CHAPTERS.index(ACROSS) + 1:]})
"""Chapters whose results the cross-pair chapter never reads: itself, and those after it in the book (a build runs
them after it, so their results can be no input of it; counting them would make it stale after every build)."""


def _stores_digest(roots: Sequence[Path]) -> str:
    """SHA-256 over every store's label and its chapters' keys and outputs (the cross-pair chapter's inputs).

    The manifests of :data:`_NOT_READ_ACROSS` are left out.
    """
    digest = hashlib.sha256()
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir() or root.resolve() in seen:
            continue
        seen.add(root.resolve())
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                meta = json.loads((folder / "store.json").read_text())
            except (OSError, ValueError):
                meta = None
            about = {k: meta.get(k) for k in ("pair", "quick", "version", "spec", "toy", "source")} \
                if isinstance(meta, dict) else None
            digest.update(json.dumps([str(folder), about], sort_keys=True, default=str).encode())
            for path in sorted((folder / "jobs").glob("*.json")):
                manifest = read_manifest(folder, path.stem) if path.stem not in _NOT_READ_ACROSS else None
                if manifest is not None:
                    part = [path.stem, manifest["key"], manifest["outputs"]]
                    digest.update(json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()


def run_chapter(name: str, *, root: Path, out: Path, params: Mapping[str, Any], folder: Path,
                identity: Mapping[str, Any], digest: str, force: bool = False, kernel_name: str = "python3",
                timeout: int | None = None, log: Callable[[str], None] = print) -> ChapterRun:
    """Execute one chapter for one pair into ``out``, unless its result is current; record it in the pair's store.

    Under the job's lock (:func:`mbt.paper.manifests.job_lock`; a second runner says it waits, then finds the
    job done): a chapter is up to date when its store manifest holds for the inputs of :func:`job_inputs` and
    the executed notebook ``out`` is the one its stamp (``.mbt-stamps.json`` beside it) names by SHA-256.
    Otherwise the chapter's old result is withdrawn first (so a failure leaves none), papermill runs it in a
    job-private folder, and only when it finished are its findings and tables moved into the store with
    their manifest, and the notebook to ``out``. A failed run leaves its notebook at ``out`` to read, and
    nothing in the store.

    Args:
        name: Chapter (:data:`~mbt.book.chapters.CHAPTERS`).
        root: Book root (``notebooks/<name>.py`` is read from it).
        out: Executed notebook to write.
        params: Parameters; each is passed only if the chapter declares it (converted by its type).
        folder: The pair's store folder (findings go to ``records/``, tables to ``tables/``).
        identity: What the pair is made of (:func:`job_pair_key`).
        digest: Hash of the ``mbt`` sources.
        force: Execute even when up to date.
        kernel_name: Jupyter kernel.
        timeout: Per-cell limit in seconds (``None``: none; :func:`cell_timeout` gives the defaults). A cell
            that runs longer fails the chapter with a message naming the chapter, the cell and its first line.
        log: Progress messages.
    """
    source = root / "notebooks" / f"{name}.py"
    nb = read_notebook(source)
    key, inputs, given = job_inputs(name, root=root, params=params, identity=identity, digest=digest)
    stamps_path = out.parent / ".mbt-stamps.json"
    waited: list[bool] = []

    def waiting() -> None:
        waited.append(True)
        log(f"{name}: running elsewhere (another mbt holds {manifest_path(folder, name)}.lock); waiting for it")

    with job_lock(folder, name, on_wait=waiting):
        if not force and is_current(folder, name, key) and _notebook_current(stamps_path, name, key, out):
            log(f"{name}: up to date" + (" (the other run finished it)" if waited else ""))
            return ChapterRun(name, "up to date", path=out)
        retract(folder, name)
        clear_staging(folder, name)
        _set_stamp(stamps_path, name, None)
        staging = staging_folder(folder, name)
        executed = staging / f"{name}.ipynb"
        nb.metadata.pop("jupytext", None)
        nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "Python 3", "language": "python"}
        log(f"{name}: executing ({', '.join(f'{k}={v!r}' for k, v in given.items())})")
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        try:
            _execute(nb, executed, given, kernel_name=kernel_name, cwd=out.parent, timeout=timeout,
                     records=staging / "records")
            if not executed.is_file():
                raise RuntimeError(f"the executed notebook {executed} was not written")
        except Exception as exc:  # papermill raises its own execution error types
            seconds = time.perf_counter() - start
            if executed.is_file():
                _copy(executed, out)
            shutil.rmtree(staging, ignore_errors=True)
            timed_out = isinstance(exc, TimeoutError)
            error = _timeout_error(exc, nb, timeout) if timed_out else _short_error(exc)
            log(f"{name}: FAILED after {seconds:.1f} s — " + (error if timed_out else f"see {out}"))
            return ChapterRun(name, "failed", seconds, out, error)
        seconds = time.perf_counter() - start
        manifest = publish(folder, name, staging, key=key, inputs=inputs, seconds=seconds)
        _copy(executed, out)
        _set_stamp(stamps_path, name, {"key": key, "sha256": file_sha256(out)})
        shutil.rmtree(staging, ignore_errors=True)
    update_meta(folder, chapters={name: {"parameters": given, "seconds": round(seconds, 1),
                                         "finished": manifest["finished"]}})
    log(f"{name}: done in {seconds:.1f} s")
    return ChapterRun(name, "executed", seconds, out)


def _copy(src: Path, dst: Path) -> None:
    """Copy a file atomically (the store and the book's stage may lie on different file systems)."""
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _notebook_current(stamps_path: Path, name: str, key: str, out: Path) -> bool:
    stamp = _stamps(stamps_path).get(name)
    return (isinstance(stamp, dict) and stamp.get("key") == key and out.is_file()
            and stamp.get("sha256") == file_sha256(out))


def restamp(out: Path, previous_sha256: str) -> bool:
    """Keep an executed notebook current after a build step rewrote it in place (the premise filled in).

    The stamp that named the notebook's previous content (``previous_sha256``) now names its new content, so
    the next build finds the chapter up to date; a notebook that was not current before stays as it was.

    Returns:
        Whether a stamp was moved.
    """
    stamps_path = out.parent / ".mbt-stamps.json"
    name = out.stem
    stamp = _stamps(stamps_path).get(name)
    if not isinstance(stamp, dict) or stamp.get("sha256") != previous_sha256:
        return False
    _set_stamp(stamps_path, name, {**stamp, "sha256": file_sha256(out)})
    return True


def _stamps(path: Path) -> dict[str, Any]:
    with file_lock(path):
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            data = {}
    return data if isinstance(data, dict) else {}


def _set_stamp(path: Path, name: str, stamp: Mapping[str, str] | None) -> None:
    with file_lock(path):
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        if stamp is None:
            data.pop(name, None)
        else:
            data[name] = dict(stamp)
        blob = json.dumps(data, indent=1, sort_keys=True)
        atomic_write(path, lambda tmp: tmp.write_text(blob))


def describe_pair(folder: Path, label: str, spec: Any, *, base: str | None = None, sft: str | None = None,
                  quick: bool = False, source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write what a store folder is about into its ``store.json``: the pair, ``mbt``'s version, the device.

    For a toy pair (built by then) it also records the toy build's SFT/pretraining compute ratio and its
    quality checks (:mod:`mbt.toy`), so the cross-pair chapter can say what each rung is. ``source`` (the
    pair's content, :func:`job_pair_key`) is what every chapter's job manifest must name for a reader to
    show it under this label: after another pair took the label, the old pair's chapters are left out
    until they are run again.
    """
    import torch

    info: dict[str, Any] = {"pair": label, "quick": bool(quick), "mbt": __version__,
                            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    if source is not None:
        info["source"] = dict(source)
    if spec is None:
        info["spec"] = {"base": str(base), "sft": str(sft), "family": "custom"}
    else:
        info["spec"] = {k: v for k, v in dataclasses.asdict(spec).items() if k != "extras"}
        if spec.source == "toy":
            info["toy"] = toy_summary(Path(resolve_toy(spec, progress=False).base).parent)
    return update_meta(folder, **info)


def toy_summary(build_dir: Path) -> dict[str, Any]:
    """What a toy build is, from its manifest: SFT steps, examples, epochs, tokens, task scores, weight change.

    ``sft_examples_seen`` is SFT steps × batch size, ``sft_epochs`` that ÷ the SFT examples;
    ``weight_change_rel`` is the mean over blocks of ``‖ΔW‖_F / ‖W_Base‖_F`` of the attention projections.
    """
    manifest = json.loads((build_dir / "manifest.json").read_text())
    config = manifest.get("config", {})
    seen = (config["sft_steps"] * config["sft_batch"]) if {"sft_steps", "sft_batch"} <= set(config) else None
    records = manifest.get("data", {}).get("sft_records")
    quality = manifest.get("quality", {})
    math_q = quality.get("toy_math", {})
    compute = manifest.get("ladder") or manifest.get("data", {}).get("sft_compute") or {}
    rel = [row.get("attn_rel") for row in quality.get("weight_change", []) if row.get("attn_rel") is not None]
    return {"sft_steps": config.get("sft_steps"), "sft_examples_seen": seen,
            "sft_epochs": seen / records if seen is not None and records else None,
            "sft_tokens": compute.get("sft_tokens"),
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
    workers: int = 1,
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
        timeout: Per-cell limit in seconds (``None``: the pair's default, :func:`cell_timeout`; ``0``: none).
            A chapter whose cell runs longer is recorded as failed, naming the cell; the other jobs go on.
        workers: Pairs side by side, each in its own process (:func:`mbt.workers.side_by_side`) whose
            kernels share ``cpus // workers`` threads; ``0``: one pair per CPU. A pair's chapters always
            run in order (a later chapter may read an earlier one's results). Messages then come from
            the workers, prefixed with their pair.
        progress: A progress bar over jobs (over pairs with ``workers > 1``).
        log: Progress messages.

    Returns:
        One :class:`BatchJob` per job, in order.

    Raises:
        ValueError: Unknown pairs, chapters or parameters (before anything runs).
    """
    names = [str(p) for p in pairs]
    if not names:
        raise ValueError("give at least one pair")
    cell_timeout(timeout)  # a bad --timeout is refused before anything runs
    for name in names:
        get_pair(name)  # an unknown name is refused (with the valid ones) before anything runs
    root = find_root(root)
    wanted = [c for c in CHAPTERS if c != ACROSS] if chapters is None else list(chapters)
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"unknown chapters {unknown}; valid: {', '.join(CHAPTERS)}")
    extra = dict(parameters or {})
    if extra:  # parsed once, with their types, before anything runs
        notebooks = {c: read_notebook(root / "notebooks" / f"{c}.py") for c in wanted}
        extra = check_parameters(extra, {c: parameter_types(nb) for c, nb in notebooks.items()},
                                 {c: parameter_defaults(nb) for c, nb in notebooks.items()})
    stage = Path(stage) if stage is not None else root / "book" / "_executed"
    common = {"chapters": wanted, "root": root, "stage": stage, "quick": quick, "parameters": extra, "force": force,
              "kernel_name": kernel_name, "timeout": timeout}
    n_workers = check_workers(workers) or slots(1, jobs=len(names))
    if n_workers > 1 and len(names) > 1:
        order = strongest_first(names)
        per_pair = pairs_side_by_side([{"name": names[i], **common} for i in order], workers=n_workers,
                                      progress=progress, log=log)
        by_index = dict(zip(order, per_pair, strict=True))
        return [job for i in range(len(names)) for job in by_index[i]]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names) * len(wanted), desc="mbt batch", unit="job", disable=not progress)
    jobs: list[BatchJob] = []
    for name in names:
        jobs += pair_chapters(name, **common, log=log, on_job=lambda _job: bar.update(1))
    bar.close()
    return jobs


def strongest_first(names: Sequence[str]) -> list[int]:
    """Indices of registered pairs, the ladder's strongest SFT first (others keep their order, after the rungs).

    The strongest rungs take longest; starting them first leaves no worker alone with a long job at the end.
    """
    return sorted(range(len(names)), key=lambda i: -_sft_steps(get_pair(names[i])))


def _sft_steps(spec: PairSpec) -> int:
    """A toy pair's SFT steps (a ladder rung's own, else the default build's); 0 for other pairs."""
    if spec.source != "toy":
        return 0
    return spec.toy_sft_steps or toy.SIZES["default"].sft_steps


def pair_chapters(
    name: str,
    *,
    chapters: Sequence[str],
    root: Path,
    stage: Path,
    quick: bool = False,
    parameters: Mapping[str, Any] | None = None,
    force: bool = False,
    kernel_name: str = "python3",
    timeout: int | None = None,
    out_dir: Path | None = None,
    params: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
    on_job: Callable[[BatchJob], None] | None = None,
) -> list[BatchJob]:
    """One pair's chapters, in order, each through :func:`run_chapter`: one job of :func:`batch`.

    Module-level (and with picklable arguments) so that :func:`pairs_side_by_side` can run it in a
    worker process. A pair that cannot be prepared (e.g. its toy build fails) fails its jobs, not the
    caller.

    Args:
        name: Registered pair.
        chapters: Chapters to execute, in order.
        root: Book root.
        stage: Staging folder; executed notebooks go to ``<stage>/batch/<pair>/`` unless ``out_dir``.
        quick: Smoke-test sizes.
        parameters: Extra parameters for every chapter (each chapter takes those it declares).
        force: Execute even when up to date.
        kernel_name: Jupyter kernel.
        timeout: Per-cell limit in seconds (``None``: the pair's default, :func:`cell_timeout`; ``0``: none).
        out_dir: Folder for the executed notebooks instead (the book's own ``<stage>/notebooks``).
        params: Parameters instead of ``{"pair": name, "quick": quick, **parameters}`` (the book's own).
        log: Progress messages (prefixed with the pair's name).
        on_job: Called with each finished job.
    """
    spec = get_pair(name)
    folder = store_folder(spec.name, quick=quick)
    timeout = cell_timeout(timeout, spec)
    say = functools.partial(_prefixed, log, name)
    out_dir = out_dir if out_dir is not None else stage / "batch" / slug(spec.name + ("-quick" if quick else ""))
    params = dict(params) if params is not None else {"pair": name, "quick": bool(quick), **(parameters or {})}
    jobs: list[BatchJob] = []
    try:
        identity = job_pair_key(name)
        describe_pair(folder, spec.name, spec, quick=quick, source=identity)
    except Exception as exc:  # a pair that cannot be prepared fails its jobs, not the batch
        say(f"could not be prepared: {_short_error(exc)}")
        jobs = [BatchJob(name, c, ChapterRun(c, "failed", error=_short_error(exc))) for c in chapters]
        for job in jobs:
            if on_job is not None:
                on_job(job)
        return jobs
    digest = sources_digest()
    for chapter in chapters:
        run = run_chapter(chapter, root=root, out=out_dir / f"{chapter}.ipynb", params=params, folder=folder,
                          identity=identity, digest=digest, force=force, kernel_name=kernel_name, timeout=timeout,
                          log=say)
        jobs.append(BatchJob(name, chapter, run))
        if on_job is not None:
            on_job(jobs[-1])
    return jobs


def _prefixed(log: Callable[[str], None], name: str, text: str) -> None:
    log(f"{name}: {text}")


def pairs_side_by_side(calls: Sequence[Mapping[str, Any]], *, workers: int, progress: bool = True,
                       log: Callable[[str], None] = print) -> list[list[BatchJob]]:
    """:func:`pair_chapters` for every call, ``workers`` pairs side by side; one list of jobs per call.

    Each worker's notebook kernels share ``cpus // workers`` threads. Should the workers stop (e.g. one
    killed for memory), the calls go on here one after the other: finished jobs are up to date by then,
    so none is repeated.
    """
    if workers > 1 and len(calls) > 1:
        workers = min(workers, len(calls))
        try:
            return side_by_side(pair_chapters, calls, workers=workers, threads=max(1, available_cpus() // workers),
                                progress=progress, desc=f"mbt batch ({workers} pairs side by side)")
        except Exception as exc:  # finished jobs are kept, the rest go on here
            log(f"mbt batch: side by side stopped ({_short_error(exc)}); going on one pair at a time")
    return [pair_chapters(**call, log=log) for call in calls]


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


def _timeout_error(exc: BaseException, nb: Any, timeout: int | None) -> str:
    """``"timed out after 3600 s in code cell 7 of 12: `S = book.lora_sweep(…)`"`` from nbclient's timeout error.

    nbclient's message previews the cell's source; the cell is found by that preview among the chapter's
    code cells (numbered from 1, the parameters cell included, papermill's injected cell not).
    """
    text = str(exc)
    preview = text.split("-------------------")[1].strip() if text.count("-------------------") >= 2 else ""
    code = [c for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    where = "a cell"
    for i, cell in enumerate(code, start=1):
        if preview and (cell.source.strip().startswith(preview[:200]) or preview[:200] in cell.source):
            where = f"code cell {i} of {len(code)}"
            break
    first = next((ln.strip() for ln in preview.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
    limit = f"{timeout} s" if timeout else "its time limit"
    return f"TimeoutError: timed out after {limit} in {where}" + (f": `{first[:120]}`" if first else "")


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
    # and OpenMP's bounded spin, fast on idle and busy CPUs alike (mbt.cpu; scheduling only); the chapter's
    # name, parameters and commit for its downloads' provenance (mbt.book.provenance)
    omp = cpu.omp_environment(os.cpu_count() or 1)
    context = json.dumps(build_context(out.stem, {**parameter_defaults(nb), **params}, cwd), default=str)
    with _environment(MPLBACKEND=None, **omp, **{RECORDS_ENV: str(records), CONTEXT_ENV: context}), \
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
