"""side_by_side: jobs in worker processes, results in order, handed over as they finish, errors as raised."""

from __future__ import annotations

import datetime
import os

import pytest
import torch

from mbt import workers


def test_serial_path_runs_here_with_pinned_threads() -> None:
    seen: list[tuple[int, object]] = []
    out = workers.side_by_side(torch.get_num_threads, [{}, {}], workers=1, threads=1,
                               on_result=lambda i, v: seen.append((i, v)))
    assert out == [1, 1] and seen == [(0, 1), (1, 1)]
    assert workers.side_by_side(dict, [{"a": 1}, {"b": 2}], workers=1, threads=1) == [{"a": 1}, {"b": 2}]


def test_workers_are_other_processes_with_their_thread_count() -> None:
    calls = [{"key": "OMP_NUM_THREADS"}] * 3
    got: list[int] = []
    env = workers.side_by_side(os.getenv, calls, workers=2, threads=1, on_result=lambda i, _: got.append(i))
    assert env == ["1", "1", "1"] and sorted(got) == [0, 1, 2]
    pids = workers.side_by_side(os.getpid, [{}] * 4, workers=2, threads=1)
    assert os.getpid() not in pids and 1 <= len(set(pids)) <= 2
    assert workers.side_by_side(torch.get_num_threads, [{}] * 2, workers=2, threads=1) == [1, 1]
    # results come back in the order of the calls, whatever order they finish in
    days = workers.side_by_side(datetime.date, [{"year": 2026, "month": m, "day": 1} for m in (3, 1, 2)],
                                workers=2, threads=1)
    assert [d.month for d in days] == [3, 1, 2]


def test_a_failing_job_raises_its_own_error_and_finished_jobs_are_kept() -> None:
    kept: list[int] = []
    calls = [{"year": 2026, "month": 1, "day": 1}, {"year": 2026, "month": 13, "day": 1}]
    with pytest.raises(ValueError, match="month") as info:
        workers.side_by_side(datetime.date, calls, workers=2, threads=1, on_result=lambda i, _: kept.append(i))
    assert any("job 1 of 2" in note for note in getattr(info.value, "__notes__", []))
    assert kept in ([], [0])  # job 0 may or may not have finished first; it is never lost once it has
    with pytest.raises(ValueError, match="month"):  # the same error without worker processes
        workers.side_by_side(datetime.date, calls, workers=1, threads=1)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="whole number"):
        workers.check_workers(bad)
    with pytest.raises(ValueError, match="whole number"):
        workers.side_by_side(dict, [{}], workers=bad, threads=1)


def test_slots_fill_the_cpus_and_never_exceed_the_jobs() -> None:
    assert workers.slots(1, jobs=10, cpus=2) == 2
    assert workers.slots(2, jobs=10, cpus=2) == 1
    assert workers.slots(1, jobs=1, cpus=8) == 1
    assert workers.slots(4, jobs=10, cpus=2) == 1  # never 0
    assert workers.slots(2, jobs=10, cpus=16) == 8
