"""CPU training speed idle and next to a competing busy process, for OpenMP wait settings.

Times ``--steps`` AdamW training steps of a random OLMo2 model with the default toy pair's shape
(10 layers, hidden 128, vocabulary 2,048, 32 sequences of 128 tokens, eager attention) on
``--threads`` torch threads. Every measurement runs in a fresh subprocess, so the OpenMP
environment (read once, when torch loads GNU libgomp) takes effect. Each setting is measured

* idle: nothing else started by this script;
* contended: next to a single-threaded pure-Python busy loop that this script starts before the
  child and stops after it (it runs for the whole measurement).

Settings: ``old`` = libgomp's default (no ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``: spin up to
300,000 iterations before sleeping: mbt's behaviour before the bounded spin), ``new`` = the
environment :func:`mbt.cpu.omp_environment` gives a child process, and with ``--sweep`` also
``OMP_WAIT_POLICY=PASSIVE`` and a range of ``GOMP_SPINCOUNT`` values. Runs are interleaved
(every setting idle and contended, then the next repeat). A run's time is the median of its
steps and a cell's the best of its runs: other jobs on a shared machine only ever add time, so
the best run is the one closest to the intended set-up. Printed: the ratios contended ÷ idle for
each setting and idle ÷ ``old`` idle, and per run the CPUs that processes outside this script
kept busy meanwhile. Each child also prints a checksum of the trained weights: settings with the
same thread count must agree bit for bit.

``/proc/loadavg`` is printed before and after: other jobs on the machine shift every number.
Usage: ``python benchmarks/bench_contention.py [--steps 6 --repeats 3 --threads 2 --sweep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402, F401  (offline environment defaults)

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, sys, time
args = json.loads(sys.argv[1])
import torch
from transformers import AutoModelForCausalLM, Olmo2Config
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
config = Olmo2Config(vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=10,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
config._attn_implementation = "eager"
model = AutoModelForCausalLM.from_config(config).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
gen = torch.Generator().manual_seed(1)
batches = [torch.randint(3, 2048, (args["batch"], 128), generator=gen) for _ in range(args["steps"] + 2)]

def step(ids):
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)

for ids in batches[:2]:  # warm-up: first-call allocations and kernel selection
    step(ids)
seconds = []
for ids in batches[2:]:
    start = time.perf_counter()
    step(ids)
    seconds.append(time.perf_counter() - start)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
print("RESULT", json.dumps({"steps": seconds, "digest": digest}))
"""

# a single-threaded busy loop that ends by itself once its parent (this script) is gone
SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6):\n        pass\n"
OMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def settings(threads: int, sweep: bool, spincounts: list[int]) -> dict[str, dict[str, str]]:
    """Name → the OpenMP variables of that setting (anything not named is removed)."""
    from mbt import cpu

    out: dict[str, dict[str, str]] = {"old": {}}
    new = cpu.omp_environment(threads, environ={})
    out["new"] = {k: v for k, v in new.items() if v is not None}
    if sweep:
        out["passive"] = {"OMP_WAIT_POLICY": "PASSIVE"}
        for n in spincounts:
            out[f"spin={n}"] = {"GOMP_SPINCOUNT": str(n)}
    return out


def _busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used (``/proc/stat``), or ``None``."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(omp: dict[str, str], *, steps: int, batch: int, threads: int, contended: bool) -> dict:
    """One fresh child process under ``omp``; with ``contended``, next to a busy loop.

    Also returns ``foreign``: the CPUs that processes other than this script's own kept busy on
    average during the measurement (machine busy time minus this script's children's, ÷ wall time).
    """
    env = {k: v for k, v in os.environ.items() if k not in OMP_KEYS}
    env.update(omp)
    payload = json.dumps({"steps": steps, "batch": batch, "threads": threads})
    busy0, own0, wall0 = _busy_seconds(), _children_seconds(), time.perf_counter()
    rival = subprocess.Popen([sys.executable, "-c", SPIN]) if contended else None
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, capture_output=True, text=True,
                             check=True, cwd=ROOT)
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()
    busy1, own1, wall1 = _busy_seconds(), _children_seconds(), time.perf_counter()
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["s_per_step"] = statistics.median(result.pop("steps"))
    foreign = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)
    return {**result, "foreign": foreign}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="also PASSIVE and several GOMP_SPINCOUNT values")
    parser.add_argument("--spincounts", default="0,1000,10000,30000,100000",
                        help="comma-separated GOMP_SPINCOUNT values for --sweep")
    parser.add_argument("--only", default="", help="comma-separated setting names to measure (default: all)")
    args = parser.parse_args()

    cells = settings(args.threads, args.sweep, [int(x) for x in args.spincounts.split(",") if x])
    if args.only:
        cells = {k: v for k, v in cells.items() if k in args.only.split(",")}
    print(f"{args.steps} training steps, batch {args.batch}x128, toy-default OLMo2 shape, {args.threads} threads, "
          f"{os.cpu_count()} CPUs; best of {args.repeats} runs (each the median of its steps); "
          "rival: one pure-Python busy loop")
    print(f"loadavg before: {_common.loadavg()}", flush=True)
    times: dict[tuple[str, bool], list[float]] = {(k, c): [] for k in cells for c in (False, True)}
    digests: dict[str, set[str]] = {k: set() for k in cells}
    foreign: dict[tuple[str, bool], list[float]] = {key: [] for key in times}
    for _ in range(args.repeats):
        for name, omp in cells.items():
            for contended in (False, True):
                r = measure(omp, steps=args.steps, batch=args.batch, threads=args.threads, contended=contended)
                other = r["foreign"] if r["foreign"] is not None else float("nan")
                print(f"  run: {name:12s} {'contended' if contended else 'idle':9s} {r['s_per_step']:.3f} s/step, "
                      f"foreign busy CPUs {other:.2f}, weights {r['digest']}, loadavg {_common.loadavg()}", flush=True)
                times[name, contended].append(r["s_per_step"])
                digests[name].add(r["digest"])
                foreign[name, contended].append(r["foreign"] if r["foreign"] is not None else float("nan"))
    print(f"loadavg after:  {_common.loadavg()}")
    med = {key: min(v) for key, v in times.items()}
    old_idle = med.get(("old", False))
    print(f"{'setting':14s} {'env':36s} {'idle s/step':>11s} {'contended':>10s} {'cont/idle':>9s} "
          f"{'idle/old':>8s}  runs idle | contended: s/step (foreign busy CPUs)")
    for name, omp in cells.items():
        idle, busy = med[name, False], med[name, True]
        env = " ".join(f"{k}={v}" for k, v in omp.items()) or "(libgomp default)"
        rel = f"{idle / old_idle:8.2f}" if old_idle else "     n/a"
        runs = " | ".join(" ".join(f"{x:.2f} ({f:.1f})" for x, f in zip(times[name, c], foreign[name, c], strict=True))
                          for c in (False, True))
        print(f"{name:14s} {env:36s} {idle:11.3f} {busy:10.3f} {busy / idle:9.2f} {rel}  {runs}")
    if old_idle and args.repeats > 1:  # the machine's speed drifts over minutes: compare within each repeat
        print("paired within each repeat (medians over repeats): contended ÷ idle of the same setting, "
              "idle ÷ old idle of the same repeat")
        for name in cells:
            within = [b / a for a, b in zip(times[name, False], times[name, True], strict=True)]
            vs_old = [a / o for a, o in zip(times[name, False], times["old", False], strict=True)]
            print(f"  {name:14s} contended/idle {statistics.median(within):5.2f} "
                  f"(runs {' '.join(f'{x:.2f}' for x in within)})   idle/old {statistics.median(vs_old):5.2f} "
                  f"(runs {' '.join(f'{x:.2f}' for x in vs_old)})")
    same = len(set().union(*digests.values())) == 1
    every = [f for v in foreign.values() for f in v if f == f]
    if every:
        print(f"foreign busy CPUs (kept busy by processes outside this benchmark, per run in brackets): median "
              f"{statistics.median(every):.2f}, max {max(every):.2f} (0 = the machine was otherwise idle)")
    print(f"trained weights identical across all settings and runs: {same}")
    if not same:
        for name, found in digests.items():
            print(f"  {name}: {' '.join(sorted(found))}")


if __name__ == "__main__":
    main()
