"""Killing ``mbt batch`` ends everything it started: its worker processes and their notebook kernels.

Issue 27, defect 2 (after ``SIGKILL`` of ``mbt batch --workers 2`` its workers ran on for 45 s and kept writing the
store). Real processes: a book root whose chapter is a notebook that records its process ids and then writes a
heartbeat file forever; ``mbt batch`` runs it for two pairs side by side (two workers, two papermill kernels),
is killed, and every one of those processes must be gone within a few seconds, the heartbeat still.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

CHAPTER = '''# %% tags=["parameters"]
pair: str = "toy"
quick: bool = False

# %%
import os
import time
from pathlib import Path

folder = Path(os.environ["MBT_TEST_PIDS"])
(folder / f"{pair}.pids").write_text(f"{os.getpid()} {os.getppid()}")
beat = folder / f"{pair}.beat"
while True:
    with open(beat, "a") as fh:
        fh.write(".")
    time.sleep(0.1)
'''

LIMIT = 8.0
"""Seconds a process of the batch may outlive it ("a few seconds": the workers poll every 0.5 s, kernels every 1 s)."""


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="process ids and signals as on Linux")
@pytest.mark.parametrize("how, workers", [(signal.SIGKILL, 2), (signal.SIGTERM, 2), (signal.SIGINT, 1)])
def test_2_killing_mbt_batch_ends_its_workers_and_kernels_within_seconds(tmp_path, how, workers):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("title: t\n")
    (root / "notebooks" / "01_divergence.py").write_text(CHAPTER)
    pids = tmp_path / "pids"
    pids.mkdir()
    pairs = ["olmo2-1b", "mistral-7b"][:workers]  # registered pairs that need no build and load nothing here
    env = {**os.environ, "MBT_CACHE": str(tmp_path / "cache"), "MBT_TEST_PIDS": str(pids), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "mbt.cli", "batch", "--pairs", ",".join(pairs), "--chapters", "01",
           "--workers", str(workers), "--root", str(root)]
    batch = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        started = _wait_for(lambda: all((pids / f"{p}.pids").exists() for p in pairs), 180)
        assert started, f"the kernels never started: {batch.stderr.read().decode()[-2000:] if batch.poll() else ''}"
        kernels, parents = zip(*((int(x) for x in (pids / f"{p}.pids").read_text().split()) for p in pairs),
                               strict=True)
        spawned = set(kernels) | set(parents)
        assert (set(parents) == {batch.pid}) == (workers == 1)  # side by side: the kernels' parents are workers
        batch.send_signal(how)
        batch.wait(timeout=30)
        killed = time.monotonic()
        gone = _wait_for(lambda: not any(_alive(pid) for pid in spawned), LIMIT)
        left = [pid for pid in spawned if _alive(pid)]
        assert gone, f"{len(left)} processes of the batch outlived it by {LIMIT:.0f} s (signal {how.name})"
        assert time.monotonic() - killed <= LIMIT
        print(f"{how.name}, {workers} worker(s): {len(spawned)} processes gone {time.monotonic() - killed:.1f} s after")
        sizes = [(pids / f"{p}.beat").stat().st_size for p in pairs]
        time.sleep(1.0)
        assert sizes == [(pids / f"{p}.beat").stat().st_size for p in pairs], "something still writes"
    finally:
        if batch.poll() is None:
            os.killpg(batch.pid, signal.SIGKILL)
        for pid_file in pids.glob("*.pids"):
            for pid in (int(x) for x in pid_file.read_text().split()):
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
