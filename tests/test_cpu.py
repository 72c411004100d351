"""OpenMP wait policy choice and thread pinning."""

from __future__ import annotations

import os

import pytest
import torch

from mbt import cpu


def test_pinned_threads_restores_the_callers_count():
    old = torch.get_num_threads()
    target = 1 if old != 1 else 2
    with cpu.pinned_threads(target):
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == old
    with pytest.raises(RuntimeError), cpu.pinned_threads(target):
        raise RuntimeError
    assert torch.get_num_threads() == old
    with cpu.pinned_threads(None):
        assert torch.get_num_threads() == old


def _stat(user: int, idle: int, iowait: int = 0) -> str:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    return f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


@pytest.mark.parametrize(("busy_share", "iowait"), [(0.0, 0), (0.5, 0), (1.0, 0), (0.25, 100)])
def test_busy_cpus_reads_the_change_in_proc_stat(tmp_path, monkeypatch, busy_share, iowait):
    stat = tmp_path / "stat"
    stat.write_text(_stat(1000, 5000))
    delta = 400
    busy = round(delta * busy_share)

    def tick(_seconds):  # the machine runs for a while: `busy` of `delta` jiffies were spent working
        stat.write_text(_stat(1000 + busy, 5000 + delta - busy - iowait, iowait))

    monkeypatch.setattr(cpu.time, "sleep", tick)
    expected = (os.cpu_count() or 1) * busy / delta
    assert cpu.busy_cpus(stat=stat) == pytest.approx(expected)


def test_busy_cpus_without_proc_stat(tmp_path):
    assert cpu.busy_cpus(interval=0, stat=tmp_path / "missing") is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert cpu.busy_cpus(interval=0, stat=tmp_path / "odd") is None


def test_wait_policy(monkeypatch):
    n = os.cpu_count() or 1
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert cpu.wait_policy(2, busy=0.0) is None  # idle: OpenMP's faster default
    assert cpu.wait_policy(2, busy=float(n)) == "PASSIVE"  # every CPU taken by others
    assert cpu.wait_policy(n, busy=0.4) is None and cpu.wait_policy(n, busy=0.6) == "PASSIVE"
    assert cpu.wait_policy(1, busy=float(n)) is None  # one thread never spins
    monkeypatch.setattr(cpu, "busy_cpus", lambda *a, **k: None)
    assert cpu.wait_policy(2) is None  # unknown (no /proc/stat): the default
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert cpu.wait_policy(2, busy=float(n)) == "active"  # the user's choice wins
