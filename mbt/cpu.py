"""CPU threads: pinning torch's thread count, and a bounded OpenMP spin that stays fast on a busy machine.

torch's CPU kernels run on GNU OpenMP (libgomp). At the end of every parallel region a thread
that has nothing left to do waits for the others, first by spinning, then by sleeping in the
kernel. libgomp's default spins up to 300,000 iterations (~3 ms) before it sleeps; the toy
models' matrices are small, so a training step is thousands of short regions and the wait
happens thousands of times per step. On idle cores spinning is the fastest wait. Next to another
CPU-bound process it is the slowest: a thread that spins holds a core its partner (or the other
process) needs, and a region only ends when the descheduled partner gets a core back.

The mechanism: a bounded spin, ``GOMP_SPINCOUNT=`` :data:`SPINCOUNT` (libgomp's default is
300,000, ~3 ms by libgomp's own estimate of 100,000 spins per millisecond; 3,000 is ~30 µs). A
waiting thread spins that long and then sleeps: long enough to cover the usual imbalance between
threads at the end of a region when the cores are free, short against the scheduler's
few-millisecond time slices when another process holds a core. Nothing is guessed at start-up
about how busy the machine is or will become. The value comes from sweeps of spin counts on
toy-shaped training, idle and next to a single-threaded busy loop
(``benchmarks/bench_contention.py --sweep``, 2 threads, 2-core machine, otherwise idle; all
numbers in ``benchmarks/RESULTS.md``). The machine's own speed drifted by up to 50 % between
minutes, so settings are compared within each repeat (interleaved runs). Over 8 repeats, 3,000
kept libgomp's idle speed (idle ÷ default: median 1.00) and slowed down 2.1× next to the busy
loop (median of contended ÷ idle; the default 3.5×, 10,000 2.8×). Sleeping at once
(``OMP_WAIT_POLICY=PASSIVE``) slowed down least (1.7×) but cost 11 % when idle (up to 47 % in
single repeats), 1,000 and 0 between the two. Trained weights were bit-identical across
settings, with one exception in one of those sweeps: one of its 40 runs (not recorded which)
ended with other weights; a rerun printing each run's checksum found every run identical.

libgomp reads the variable once, when it is loaded (when torch is imported), so it must be in the
environment before that: importing :mod:`mbt` puts it into ``os.environ`` (:func:`configure`),
which every child process inherits — the toy build's worker, the book's notebook kernels and so
the in-kernel LoRA training. :func:`omp_environment` names the variables for a child process
explicitly. A user's own ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` always wins: then nothing is
set. The wait changes scheduling only: results are bit-identical for the same thread count.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path

__all__ = ["SPINCOUNT", "configure", "needs_child", "omp_environment", "pinned_threads"]

#: Spin iterations before a waiting OpenMP thread sleeps (libgomp's default: 300,000).
SPINCOUNT = 3_000

#: The OpenMP variables that decide how threads wait; a user who sets either keeps full control.
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

#: What :func:`configure` found on ``os.environ``: whether it set the spin, and whether torch was loaded before.
_configured: dict[str, bool] = {}


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


def _user_setting(environ: Mapping[str, str]) -> dict[str, str | None] | None:
    """The user's own wait variables (unset ones as ``None``), or ``None`` when they set neither."""
    if not any(environ.get(k) for k in OMP_WAIT_VARIABLES):
        return None
    return {k: environ.get(k) or None for k in OMP_WAIT_VARIABLES}


def omp_environment(threads: int, *, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The OpenMP wait variables for a child process that will compute with ``threads`` threads.

    ``None`` means "remove from the child's environment". Without a user setting:
    ``GOMP_SPINCOUNT`` = :data:`SPINCOUNT` and no ``OMP_WAIT_POLICY`` (for one thread too: it
    costs nothing there, and the child may raise its thread count later). With a user's
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in ``environ``: both variables exactly as the user
    left them.

    Args:
        threads: torch threads the child will use (the choice does not depend on it today; kept
            so callers state it and a later rule can use it).
        environ: the parent's environment (default ``os.environ``).

    Returns:
        ``{"OMP_WAIT_POLICY": ..., "GOMP_SPINCOUNT": ...}``, to merge into the child's environment.
    """
    del threads  # one bounded spin suits every thread count measured (benchmarks/bench_contention.py)
    environ = os.environ if environ is None else environ
    user = _user_setting(environ)
    if user is not None:
        return user
    return {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": str(SPINCOUNT)}


def configure(environ: MutableMapping[str, str] | None = None) -> bool:
    """Put the bounded spin into ``environ`` (default ``os.environ``) unless the user set a wait.

    Called when :mod:`mbt` is imported, so that torch (libgomp) loaded afterwards in this process
    and every child process started from it wait with a bounded spin.

    Args:
        environ: the environment to update.

    Returns:
        Whether anything was set.
    """
    if environ is None:
        environ = os.environ
        _configured.setdefault("torch_first", "torch" in sys.modules)
        _configured.setdefault("set", _user_setting(environ) is None)
    if _user_setting(environ) is not None:
        return False
    environ["GOMP_SPINCOUNT"] = str(SPINCOUNT)
    return True


def needs_child(threads: int, *, spin_set: bool | None = None, torch_loaded_first: bool | None = None) -> bool:
    """Whether work on ``threads`` threads needs a child process to wait with the bounded spin.

    True only when :func:`configure` put the spin into this process's environment (the user set
    no wait of their own), torch (and with it libgomp, which reads the variables once) had been
    imported before that, and more than one thread will run: then this process waits with
    libgomp's default spin, and a child started with :func:`omp_environment` would not.

    Args:
        threads: torch threads the work will use.
        spin_set: whether :func:`configure` set the spin here (default: as recorded when
            :mod:`mbt` was imported).
        torch_loaded_first: whether torch was loaded before that (default: as recorded).
    """
    spin_set = _configured.get("set", False) if spin_set is None else spin_set
    first = _configured.get("torch_first", True) if torch_loaded_first is None else torch_loaded_first
    return threads > 1 and spin_set and first
