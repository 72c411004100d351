"""Independent CPU jobs side by side: one process per job slot, each on a fixed number of threads.

A toy-sized model's matrix products are too small to split well over threads: on a 2-core machine
two LoRA trainings with 1 thread each, side by side, finish the same work in 0.67 of the time of
running them one after the other with 2 threads each (``benchmarks/bench_workers.py``; numbers in
``benchmarks/RESULTS.md``). :func:`side_by_side` runs the calls of one function that way, in
``spawn``-ed worker processes (safe inside a Jupyter kernel and with torch's threads), and hands each
result back to the caller as soon as it is ready, so the caller can store it at once: an interrupted
run keeps every finished job.

Each worker sets ``OMP_NUM_THREADS`` (inherited by any process it starts, e.g. a notebook kernel)
and pins torch to ``threads``; results of a job are the same as running it alone on that many
threads.

Nothing outlives the run that started it: each worker watches its parent (:func:`watch_parent`) and
ends within a second of it, however the parent ended (even ``SIGKILL``), and an interrupted
:func:`side_by_side` (Ctrl-C, ``SIGTERM``) ends its workers at once instead of letting them finish
their jobs. A notebook kernel a worker started watches the worker in turn (ipykernel does), so it
ends a second later.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, TypeVar

from mbt.cpu import pinned_threads

__all__ = ["available_cpus", "check_workers", "side_by_side", "slots", "watch_parent"]

T = TypeVar("T")


def check_workers(workers: int, *, name: str = "workers") -> int:
    """``workers`` as an int ≥ 0 (0 = choose automatically); anything else is a ``ValueError``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"{name} must be a whole number >= 0 (0: automatic), got {workers!r}")
    return workers


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def slots(threads: int, *, jobs: int, cpus: int | None = None) -> int:
    """How many jobs of ``threads`` threads fit side by side: ``min(jobs, max(1, cpus // threads))``.

    Args:
        threads: Threads per job (≥ 1).
        jobs: Number of jobs waiting.
        cpus: CPUs to fill (default: :func:`available_cpus`).
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(1, min(int(jobs), cpus // max(1, int(threads))))


def watch_parent(parent: int | None = None, *, interval: float = 0.5) -> threading.Thread:
    """End this process within ``interval`` seconds of its parent's end, however that came (even ``SIGKILL``).

    A daemon thread compares ``os.getppid()`` with ``parent`` (the parent's pid, best passed by the parent
    itself: one that died before this call would otherwise go unnoticed); when they differ the parent is
    gone (the process was handed to another) and this process exits at once (``os._exit``), so it never
    writes on after the command that started it. POSIX; on Windows it does nothing.

    Args:
        parent: The parent's pid (default: the current parent).
        interval: Seconds between checks.

    Returns:
        The watching thread (already started).
    """
    expected = os.getppid() if parent is None else int(parent)

    def watch() -> None:
        while os.name == "nt" or os.getppid() == expected:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="mbt-watch-parent", daemon=True)
    thread.start()
    return thread


def _start_worker(threads: int, parent: int | None = None) -> None:
    """Worker initialiser: this process and its children use ``threads`` threads; it ends with its parent."""
    if parent is not None:
        watch_parent(parent)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End a pool's worker processes now (their kernels, which watch them, follow within a second)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()


def side_by_side(
    fn: Callable[..., T],
    calls: Sequence[Mapping[str, Any]],
    *,
    workers: int,
    threads: int,
    on_result: Callable[[int, T], None] | None = None,
    progress: bool = False,
    desc: str = "jobs",
) -> list[T]:
    """Run ``fn(**calls[i])`` for every ``i`` in ``workers`` processes of ``threads`` threads each.

    ``fn`` must be importable by name (a module-level function) and its arguments and result
    picklable. With ``workers == 1`` the calls run here, one after the other, with torch pinned to
    ``threads``; no process is started.

    Args:
        fn: The job.
        calls: Keyword arguments of each job.
        workers: Processes side by side (≥ 1).
        threads: Torch (OpenMP) threads in each.
        on_result: Called in this process as ``on_result(i, result)`` as each job finishes.
        progress: A progress bar over jobs.
        desc: The progress bar's label.

    Returns:
        The results, in the order of ``calls``.

    Raises:
        Exception: The first error a job raised, as it was raised (with a note naming the job); jobs
            not yet started are cancelled, finished ones have already been handed to ``on_result``.
        KeyboardInterrupt: Interrupted; the worker processes are ended at once (running jobs are lost,
            finished ones were handed over).
    """
    from tqdm.auto import tqdm

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    results: dict[int, T] = {}
    bar = tqdm(total=len(calls), desc=desc, unit="job", disable=not progress)

    def done(i: int, value: T) -> None:
        results[i] = value
        if on_result is not None:
            on_result(i, value)
        bar.update(1)

    try:
        if workers == 1 or len(calls) <= 1:
            with pinned_threads(threads):
                for i, kwargs in enumerate(calls):
                    done(i, fn(**kwargs))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                     initializer=_start_worker, initargs=(threads, os.getpid())) as pool:
                pending: dict[Future, int] = {pool.submit(fn, **kwargs): i for i, kwargs in enumerate(calls)}
                try:
                    while pending:
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in sorted(finished, key=pending.__getitem__):
                            i = pending.pop(future)
                            exc = future.exception()
                            if exc is not None:
                                exc.add_note(f"(in job {i} of {len(calls)}, run in a worker process)")
                                raise exc
                            done(i, future.result())
                except BaseException as exc:
                    for future in pending:
                        future.cancel()
                    if not isinstance(exc, Exception):  # interrupted (Ctrl-C, SIGTERM): end the running jobs too
                        _terminate(pool)
                    raise
    finally:
        bar.close()
    return [results[i] for i in range(len(calls))]
