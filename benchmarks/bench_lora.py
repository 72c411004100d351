"""CPU speed of one segment-LoRA training run: the current loop vs the earlier one, same process set-up.

Trains full-depth LoRA (mask ``11111``) for ``--steps`` steps from the default toy pair's Base
(built if missing; ``--size tiny`` for a quick check) in fresh subprocesses, one per variant, and
prints seconds per step and ratios to the baseline:

* ``baseline``: logits for every position and ``OMP_WAIT_POLICY=PASSIVE`` (what the book's
  kernels and the toy build used before :mod:`mbt.cpu`);
* ``kept-logits``: the LM head only from the batch's first answer position (``logits_to_keep``),
  still PASSIVE;
* ``current``: kept logits and the OpenMP wait of :func:`mbt.cpu.omp_environment` (a bounded
  spin, ``GOMP_SPINCOUNT``);
* ``grouped``: ``current`` plus ``group_by_length=True`` (an option, off by default).

Each variant runs ``--repeats`` times; the median is reported. Run it on an otherwise idle machine
(``benchmarks/bench_contention.py`` measures a busy one).
Usage: ``python benchmarks/bench_lora.py [--steps 30 --repeats 3 --size default]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402, F401  (offline environment defaults)

CHILD = r"""
import json, sys, time
args = json.loads(sys.argv[1])
from transformers import AutoModelForCausalLM, AutoTokenizer
from mbt import train, tune
if not args["keep"]:
    train._forward_takes_logits_to_keep = lambda cls: False
tok = AutoTokenizer.from_pretrained(args["base"])
model = AutoModelForCausalLM.from_pretrained(args["base"])
tune.train_lora(model, tok, "11111", steps=2, threads=args["threads"], progress=False)  # warm-up
_, info = tune.train_lora(model, tok, "11111", steps=args["steps"], threads=args["threads"], progress=False,
                          group_by_length=args["grouped"])
print("RESULT", json.dumps({"s_per_step": info["train_seconds"] / args["steps"], "loss": info["final_loss"]}))
"""

VARIANTS = {  # name: (keep logits, wait policy, group by length)
    "baseline": (False, "PASSIVE", False),
    "kept-logits": (True, "PASSIVE", False),
    "current": (True, "auto", False),
    "grouped": (True, "auto", True),
}


def run(base: str, name: str, steps: int, threads: int) -> dict:
    keep, policy, grouped = VARIANTS[name]
    from mbt import cpu

    env = {k: v for k, v in os.environ.items() if k not in cpu.OMP_WAIT_VARIABLES}
    omp = cpu.omp_environment(threads) if policy == "auto" else {"OMP_WAIT_POLICY": policy}
    env.update({k: v for k, v in omp.items() if v is not None})
    policy = " ".join(f"{k}={v}" for k, v in omp.items() if v is not None)
    payload = json.dumps({"base": base, "keep": keep, "grouped": grouped, "steps": steps, "threads": threads})
    out = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line.removeprefix("RESULT ")), "policy": policy or "default"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="default", choices=["default", "tiny"])
    args = parser.parse_args()

    from mbt import toy

    root = toy.build(size=args.size, progress=True)
    base = str(Path(root) / "base")
    print(f"toy pair ({args.size}) at {root}; {args.steps} steps of LoRA 11111, {args.threads} threads, "
          f"median of {args.repeats}")
    results: dict[str, float] = {}
    for name in VARIANTS:
        runs = [run(base, name, args.steps, args.threads) for _ in range(args.repeats)]
        results[name] = statistics.median(r["s_per_step"] for r in runs)
        print(f"{name:12s} {1000 * results[name]:7.1f} ms/step  (policy {runs[0]['policy']}, "
              f"final loss {runs[0]['loss']:.4f})")
    for name in VARIANTS:
        if name != "baseline":
            print(f"{name} / baseline time: {results[name] / results['baseline']:.2f}")


if __name__ == "__main__":
    main()
