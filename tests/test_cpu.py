"""OpenMP wait settings and thread pinning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import mbt
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


@pytest.mark.parametrize("threads", [1, 2, 16])
def test_omp_environment_without_a_user_setting_is_the_bounded_spin(threads):
    env = cpu.omp_environment(threads, environ={"PATH": "/bin"})
    assert env == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": str(cpu.SPINCOUNT)}
    assert 0 < cpu.SPINCOUNT < 300_000  # bounded, and below libgomp's own default
    # an empty value is not a setting
    assert cpu.omp_environment(threads, environ={"OMP_WAIT_POLICY": ""}) == env


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"OMP_WAIT_POLICY": "active"}, {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": None}),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}),
        ({"GOMP_SPINCOUNT": "infinite"}, {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "infinite"}),
        ({"GOMP_SPINCOUNT": "5k", "OMP_WAIT_POLICY": "active"}, {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "5k"}),
    ],
)
def test_a_users_wait_setting_wins(user, expected):
    assert cpu.omp_environment(2, environ=user) == expected
    environ = dict(user)
    assert cpu.configure(environ) is False and environ == user  # nothing added


def test_configure_sets_the_bounded_spin_once():
    environ = {"PATH": "/bin"}
    assert cpu.configure(environ) is True
    assert environ == {"PATH": "/bin", "GOMP_SPINCOUNT": str(cpu.SPINCOUNT)}
    assert cpu.omp_environment(2, environ=environ)["GOMP_SPINCOUNT"] == str(cpu.SPINCOUNT)


def test_importing_mbt_puts_the_spin_into_a_fresh_process_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in cpu.OMP_WAIT_VARIABLES}
    root = os.path.dirname(os.path.dirname(mbt.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    code = "import os, sys, mbt; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(cpu.SPINCOUNT), "False"]
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # the user's choice: mbt adds nothing
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"]


@pytest.mark.parametrize(
    ("threads", "spin_set", "torch_first", "expected"),
    [
        (2, True, True, True),  # torch loaded with libgomp's default spin, the spin came later: a child gets it
        (2, True, False, False),  # the spin was in the environment before torch loaded: this process has it
        (2, False, True, False),  # the user's own wait: never a child for it
        (1, True, True, False),  # one thread never waits for another
    ],
)
def test_needs_child(threads, spin_set, torch_first, expected):
    assert cpu.needs_child(threads, spin_set=spin_set, torch_loaded_first=torch_first) is expected


def test_configure_records_what_it_found_once(monkeypatch):
    monkeypatch.setattr(cpu, "_configured", {})
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert cpu.configure() is True  # torch is loaded in this test process
    assert os.environ["GOMP_SPINCOUNT"] == str(cpu.SPINCOUNT)
    assert cpu.needs_child(2) is True
    assert cpu.configure() is False  # already there; the first record stays
    assert cpu.needs_child(2) is True
