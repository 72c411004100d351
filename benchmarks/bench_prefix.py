"""What the frozen-prefix cache (``mbt.tune.prefix``) gives one worker of the book's LoRA sweep.

The book's sweep trains the paper's masks × 3 seeds in two worker processes, longest runs first; a
worker takes every other run. This script gives one such worker's share of the runs (the paper's
trained masks × ``--seeds``, in the sweep's order, every other one) to two processes started at the
same moment, 1 thread each, on the default toy pair's Base:

* ``plain``: ``train_lora(cache_prefix=False)``, every step runs every block (the earlier loop);
* ``cached``: ``train_lora()``, the blocks below the first adapted one computed once per example and
  kept between runs that share them (the fill is part of the time).

Running both at once puts them under the same load (the machine's speed drifts from minute to
minute). Printed: each process's wall time, ``cached ÷ plain``, and per run the final losses of both
(equal up to float rounding). ``--steps`` is lower than the sweep's 240 by default to keep the script
short; with fewer steps the one-off fill weighs more, so the ratio is conservative.
Usage: ``python benchmarks/bench_prefix.py [--steps 60 --seeds 3 --repeats 1]``.
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
import json, sys, time
args = json.loads(sys.argv[1])
from transformers import AutoModelForCausalLM, AutoTokenizer
from mbt import tune
tok = AutoTokenizer.from_pretrained(args["base"])
model = AutoModelForCausalLM.from_pretrained(args["base"])
start = time.perf_counter()
runs = []
for mask, seed in args["runs"]:
    _, info = tune.train_lora(model, tok, mask, seed=seed, steps=args["steps"], threads=1, progress=False,
                              cache_prefix=args["cached"])
    runs.append({"mask": mask, "seed": seed, "loss": info["final_loss"], "prefix": info["prefix_blocks"],
                 "seconds": info["train_seconds"]})
print("RESULT", json.dumps({"wall": time.perf_counter() - start, "runs": runs}))
"""


def _start(base: str, runs: list, steps: int, cached: bool) -> subprocess.Popen:
    payload = json.dumps({"base": base, "runs": runs, "steps": steps, "cached": cached})
    return subprocess.Popen([sys.executable, "-c", CHILD, payload], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def _finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a process failed (exit {proc.returncode})")
    return json.loads(next(x for x in out.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from mbt import toy
    from mbt.segments import PAPER_MASKS
    from mbt.tune.sweeps import _run_cost

    base = str(Path(toy.build(progress=True)) / "base")
    runs = [(m, s) for m in PAPER_MASKS if "1" in m for s in range(args.seeds)]
    runs.sort(key=lambda run: _run_cost(run[0]), reverse=True)  # the sweep's order with two workers
    share = runs[::2]
    print(f"one worker's share: {len(share)} of {len(runs)} runs, {args.steps} steps each, 1 thread; "
          f"loadavg before: {_common.loadavg()}", flush=True)
    ratios = []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        procs = {"plain": _start(base, share, args.steps, False), "cached": _start(base, share, args.steps, True)}
        got = {name: _finish(proc) for name, proc in procs.items()}
        ratio = got["cached"]["wall"] / got["plain"]["wall"]
        ratios.append(ratio)
        print(f"repeat {repeat}: plain {got['plain']['wall']:.1f} s, cached {got['cached']['wall']:.1f} s, "
              f"cached / plain {ratio:.3f} (both in {time.perf_counter() - start:.0f} s)", flush=True)
        for a, b in zip(got["plain"]["runs"], got["cached"]["runs"], strict=True):
            print(f"  {a['mask']} seed {a['seed']}: blocks cached {b['prefix']}, {a['seconds']:6.1f} s -> "
                  f"{b['seconds']:6.1f} s, final loss {a['loss']:.5f} / {b['loss']:.5f}")
    print(f"loadavg after: {_common.loadavg()}")
    print(f"cached / plain wall time per repeat: {' '.join(f'{r:.3f}' for r in ratios)}")


if __name__ == "__main__":
    main()
