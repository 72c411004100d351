"""Throughput of independent CPU jobs: one job on all threads, or one job per core side by side.

The book's expensive parts are many independent jobs on tiny models: the LoRA sweep's 27 trainings
and the SFT ladder's chapters. On 2 cores such a job can run with 2 threads, one after the other,
or two jobs can run at once with 1 thread each. The second wastes nothing on OpenMP's
synchronisation (a toy-sized matrix product is too small to split well) but each job is slower.
This script measures which finishes a fixed amount of work first.

Work: ``--steps`` LoRA steps (mask ``11111``) on the default toy pair's Base, per job, ``--jobs``
jobs. Layouts, each in fresh subprocesses:

* ``serial``: the jobs one after the other, each on ``--threads`` threads (today's sweep);
* ``side-by-side``: ``--threads`` jobs at a time, 1 thread each.

Printed: wall seconds of each layout and ``side-by-side ÷ serial`` (below 1: side by side is
faster). Run it on an otherwise idle machine. ``--size tiny`` uses the tiny toy pair (a quick check).
Usage: ``python benchmarks/bench_workers.py [--steps 40 --jobs 4 --threads 2 --repeats 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402, F401  (offline environment defaults)

CHILD = r"""
import json, sys
args = json.loads(sys.argv[1])
from transformers import AutoModelForCausalLM, AutoTokenizer
from mbt import tune
tok = AutoTokenizer.from_pretrained(args["base"])
model = AutoModelForCausalLM.from_pretrained(args["base"])
_, info = tune.train_lora(model, tok, "11111", steps=args["steps"], threads=args["threads"], seed=args["seed"],
                          progress=False)
print("RESULT", json.dumps({"train_seconds": info["train_seconds"], "loss": info["final_loss"]}))
"""


def _start(base: str, steps: int, threads: int, seed: int) -> subprocess.Popen:
    payload = json.dumps({"base": base, "steps": steps, "threads": threads, "seed": seed})
    return subprocess.Popen([sys.executable, "-c", CHILD, payload], stdout=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a job failed (exit {proc.returncode})")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def layout(base: str, *, jobs: int, steps: int, threads: int, at_once: int) -> tuple[float, list[dict]]:
    """Wall seconds for ``jobs`` jobs, ``at_once`` at a time on ``threads // at_once`` threads each."""
    per_job = max(1, threads // at_once)
    start = time.perf_counter()
    done: list[dict] = []
    for first in range(0, jobs, at_once):
        procs = [_start(base, steps, per_job, seed) for seed in range(first, min(jobs, first + at_once))]
        done += [_finish(p) for p in procs]
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", default="default", choices=["default", "tiny"])
    args = parser.parse_args()

    from mbt import toy

    base = str(Path(toy.build(size=args.size, progress=True)) / "base")
    print(f"{args.jobs} jobs of {args.steps} LoRA steps (11111, toy {args.size} Base), {args.threads} threads, "
          f"{os.cpu_count()} CPUs; loadavg before: {_common.loadavg()}", flush=True)
    walls: dict[str, list[float]] = {"serial": [], "side-by-side": []}
    for _ in range(args.repeats):  # interleaved: the machine's speed drifts over minutes
        for name, at_once in (("serial", 1), ("side-by-side", args.threads)):
            wall, done = layout(base, jobs=args.jobs, steps=args.steps, threads=args.threads, at_once=at_once)
            walls[name].append(wall)
            busy = sum(d["train_seconds"] for d in done) / (args.jobs * args.steps)
            losses = ", ".join(f"{d['loss']:.4f}" for d in done)
            print(f"  {name:12s} {wall:7.1f} s wall ({busy * 1000:.0f} ms per step inside a job; "
                  f"final losses {losses})", flush=True)
    print(f"loadavg after: {_common.loadavg()}")
    for name, values in walls.items():
        print(f"{name:12s} best {min(values):7.1f} s  runs {' '.join(f'{v:.1f}' for v in values)}")
    ratios = [b / a for a, b in zip(walls["serial"], walls["side-by-side"], strict=True)]
    print(f"side-by-side / serial wall time: best {min(walls['side-by-side']) / min(walls['serial']):.2f}, "
          f"per repeat {' '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
