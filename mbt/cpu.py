"""CPU threads: pinning torch's thread count, and choosing OpenMP's wait policy for a child process.

torch's CPU kernels run on GNU OpenMP. Its default *active* wait makes each thread spin for a
while at the end of every parallel region. On an otherwise idle machine that is the fastest
setting (on the 2-core reference machine a toy LoRA step takes 0.69x the time it takes with
``OMP_WAIT_POLICY=PASSIVE``, ``benchmarks/bench_lora.py``); when another process competes for the
cores the spinning threads steal its time and each other's, and training slows down several-fold.
The policy is read once, when torch loads, so it can only be chosen for a new process: the
book's notebook kernels and the toy build's worker get :func:`wait_policy`'s choice, made from
how busy the CPUs are at that moment. A policy already set in the environment always wins.
The policy changes scheduling only, never results.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["busy_cpus", "pinned_threads", "wait_policy"]


@contextlib.contextmanager
def pinned_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)`` and restore the caller's count afterwards.

    Args:
        n: threads for the block; ``None`` leaves the current setting alone.
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """``(busy, total)`` jiffies summed over all CPUs from the first line of ``/proc/stat``."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user … steal; guest time is already inside user
    return total - idle, total


def busy_cpus(interval: float = 0.25, *, stat: str | os.PathLike = "/proc/stat") -> float | None:
    """How many CPUs other processes keep busy, averaged over ``interval`` seconds.

    ``busy = n_cpus · Δbusy_jiffies / Δtotal_jiffies`` between two reads of ``/proc/stat``.

    Args:
        interval: seconds between the two reads.
        stat: the file to read (a test can point it elsewhere).

    Returns:
        Busy CPUs (``0.0`` = idle), or ``None`` where ``/proc/stat`` does not exist (macOS, Windows).
    """
    path = Path(stat)
    first = _cpu_times(path)
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_times(path)
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def wait_policy(threads: int, *, busy: float | None = None) -> str | None:
    """The ``OMP_WAIT_POLICY`` to give a child process that will compute with ``threads`` threads.

    ``"PASSIVE"`` when the CPUs other processes keep busy leave fewer than ``threads`` free
    (``busy > n_cpus − threads + 0.5``), otherwise ``None`` (OpenMP's faster default). A policy set
    in this process's environment is returned unchanged.

    Args:
        threads: torch threads the child will use.
        busy: busy CPUs if already measured (default: :func:`busy_cpus` now).
    """
    if os.environ.get("OMP_WAIT_POLICY"):
        return os.environ["OMP_WAIT_POLICY"]
    if threads <= 1:
        return None
    busy = busy_cpus() if busy is None else busy
    if busy is None:
        return None
    return "PASSIVE" if busy > (os.cpu_count() or 1) - threads + 0.5 else None
