"""Bounded execution: a per-cell limit on by default; a chapter that runs too long fails naming its cell."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mbt.book import jobs
from mbt.pairs import get_pair

SLEEPY = '''# %% tags=["parameters"]
pair: str = "toy"
seconds: float = 60.0

# %%
# a cell that hangs
import time
time.sleep(seconds)
'''

QUICK = '''# %% tags=["parameters"]
pair: str = "toy"
n_pooled: int = 1000
note: str = "default"

# %%
import os
from pathlib import Path
Path("context.json").write_text(os.environ.get("MBT_BOOK_CONTEXT", "{}"))
'''


def test_cell_timeout_defaults_by_pair_and_refuses_bad_values():
    assert jobs.cell_timeout(None, get_pair("toy")) == jobs.TOY_TIMEOUT == 3600
    assert jobs.cell_timeout(None, get_pair("olmo2-1b")) == jobs.PAIR_TIMEOUT
    assert jobs.cell_timeout(None) == jobs.PAIR_TIMEOUT  # a pair given as folders
    assert jobs.cell_timeout(0, get_pair("toy")) is None
    assert jobs.cell_timeout(120, get_pair("olmo2-1b")) == 120
    for bad in (-1, 2.5, True, "60"):
        with pytest.raises(ValueError, match="timeout"):
            jobs.cell_timeout(bad)


@pytest.mark.slow
def test_a_chapter_that_runs_too_long_fails_with_its_cell_and_the_batch_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("title: t\n")
    (root / "notebooks" / "01_divergence.py").write_text(SLEEPY)
    (root / "notebooks" / "02_convergence.py").write_text(QUICK)
    build = tmp_path / "toybuild"
    for part in ("base", "sft"):
        (build / part).mkdir(parents=True)
    (build / "manifest.json").write_text(json.dumps({"config": {"sft_steps": 300}, "quality": {}}))
    monkeypatch.setattr(jobs, "resolve_toy", lambda spec, progress=True: dataclasses.replace(
        spec, base=str(build / "base"), sft=str(build / "sft")))
    monkeypatch.setattr(jobs, "pair_source_key", lambda pair, base=None, sft=None: {"pair": pair})
    messages: list[str] = []
    with pytest.raises(ValueError, match="timeout"):
        jobs.batch(["toy"], chapters=["01_divergence"], root=root, timeout=-5, progress=False, log=messages.append)

    done = jobs.batch(["toy"], chapters=["01_divergence", "02_convergence"], root=root, timeout=3,
                      parameters={"n_pooled": 7}, progress=False, log=messages.append)

    status = {job.chapter: job.run for job in done}
    assert status["01_divergence"].status == "failed"
    assert status["01_divergence"].seconds < 40
    assert status["01_divergence"].error == "TimeoutError: timed out after 3 s in code cell 2 of 2: `import time`"
    assert status["02_convergence"].status == "executed"  # the batch went on
    summary = jobs.batch_summary(done)
    assert "FAILED toy / 01_divergence: TimeoutError: timed out after 3 s in code cell 2 of 2" in summary
    assert any("01_divergence: FAILED" in m and "code cell 2" in m for m in messages)
    # the kernel got the chapter's name, its parameters (defaults and given values) and the commit
    out = root / "book" / "_executed" / "batch" / "toy"
    context = json.loads((out / "context.json").read_text())
    assert context["chapter"] == "02_convergence"
    assert context["parameters"] == {"pair": "toy", "n_pooled": 7, "note": "default"}
    assert "source" in context
