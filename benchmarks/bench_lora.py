"""CPU speed of one segment-LoRA training run: the current loop vs the earlier one, same process set-up.

Trains full-depth LoRA (mask ``11111``) for ``--steps`` steps from the default toy pair's Base
(built if missing; ``--size tiny`` for a quick check) in fresh subprocesses, one per variant, and
prints seconds per step and ratios to the baseline:

* ``baseline``: logits for every position and ``OMP_WAIT_POLICY=PASSIVE`` (what the book's
  kernels and the toy build used before :mod:`mbt.cpu`), the whole batch in one forward pass;
* ``kept-logits``: the LM head only from the batch's first answer position (``logits_to_keep``),
  still PASSIVE;
* ``whole-batch``: kept logits and the OpenMP wait of :func:`mbt.cpu.omp_environment` (a bounded
  spin, ``GOMP_SPINCOUNT``); attention by ``sdpa`` (the saved model's own); the whole batch in one
  forward pass;
* ``current``: ``whole-batch`` with the default pieces (:func:`mbt.tune.lora.micro_batch`: on a CPU
  two forward passes over the batch's examples sorted by length, each padded to its own longest);
* ``eager``: ``whole-batch`` with ``train_lora(attn="eager")`` (an option);
* ``grouped``: ``whole-batch`` plus ``group_by_length=True`` (an option, off by default).

``11111`` adapts every block, so the frozen-prefix cache (``benchmarks/bench_prefix.py``) plays no part.

With ``--side-by-side 2 --threads 1`` each variant runs as two processes at once, as in the book's
sweep (the mean of their seconds per step is reported). Each variant runs ``--repeats`` times, the
variants interleaved; the median and each repeat's ratio to the first variant (``baseline`` unless
``--variants`` names others) are reported. Run it on an otherwise idle machine
(``benchmarks/bench_contention.py`` measures a busy one).
Usage: ``python benchmarks/bench_lora.py [--steps 30 --repeats 3 --size default --variants whole-batch,current]``.
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
                          group_by_length=args["grouped"], attn=args["attn"], seed=args["seed"],
                          micro_batch_size=args["micro"])
print("RESULT", json.dumps({"s_per_step": info["train_seconds"] / args["steps"], "loss": info["final_loss"]}))
"""

WHOLE = 32  # train_lora's batch size: one forward pass per step

VARIANTS = {  # name: (keep logits, wait policy, group by length, attention, examples per forward pass)
    "baseline": (False, "PASSIVE", False, "sdpa", WHOLE),
    "kept-logits": (True, "PASSIVE", False, "sdpa", WHOLE),
    "whole-batch": (True, "auto", False, "sdpa", WHOLE),
    "current": (True, "auto", False, "sdpa", None),
    "eager": (True, "auto", False, "eager", WHOLE),
    "grouped": (True, "auto", True, "sdpa", WHOLE),
}


def run(base: str, name: str, steps: int, threads: int, side_by_side: int = 1) -> dict:
    """One variant in fresh processes: ``side_by_side`` of them at once (seeds 0, 1, …), means reported."""
    keep, policy, grouped, attn, micro = VARIANTS[name]
    from mbt import cpu

    env = {k: v for k, v in os.environ.items() if k not in cpu.OMP_WAIT_VARIABLES}
    omp = cpu.omp_environment(threads) if policy == "auto" else {"OMP_WAIT_POLICY": policy}
    env.update({k: v for k, v in omp.items() if v is not None})
    policy = " ".join(f"{k}={v}" for k, v in omp.items() if v is not None)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(
        {"base": base, "keep": keep, "grouped": grouped, "steps": steps, "threads": threads, "attn": attn,
         "seed": seed, "micro": micro})], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for seed in range(side_by_side)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"variant {name} failed (exit {proc.returncode})")
        results.append(json.loads(next(x for x in out.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT ")))
    return {"s_per_step": statistics.mean(r["s_per_step"] for r in results), "loss": results[0]["loss"],
            "policy": policy or "default"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="default", choices=["default", "tiny"])
    parser.add_argument("--variants", default="", help="comma-separated subset; the first is the reference")
    parser.add_argument("--side-by-side", type=int, default=1,
                        help="processes of each variant at once (the book's sweep: 2 of 1 thread each)")
    args = parser.parse_args()

    from mbt import toy

    root = toy.build(size=args.size, progress=True)
    base = str(Path(root) / "base")
    print(f"toy pair ({args.size}) at {root}; {args.steps} steps of LoRA 11111, {args.threads} threads, "
          f"median of {args.repeats}")
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; valid: {', '.join(VARIANTS)}")
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(args.repeats):  # interleaved: the machine's speed drifts from minute to minute
        for name in names:
            runs[name].append(run(base, name, args.steps, args.threads, args.side_by_side))
    results = {name: statistics.median(r["s_per_step"] for r in runs[name]) for name in names}
    for name in names:
        print(f"{name:12s} {1000 * results[name]:7.1f} ms/step  (policy {runs[name][0]['policy']}, "
              f"final loss {runs[name][0]['loss']:.4f})")
    reference = names[0]
    for name in names[1:]:
        paired = [b["s_per_step"] / a["s_per_step"] for a, b in zip(runs[reference], runs[name], strict=True)]
        print(f"{name} / {reference} time: median {results[name] / results[reference]:.2f}, per repeat "
              + " ".join(f"{r:.2f}" for r in paired))


if __name__ == "__main__":
    main()
