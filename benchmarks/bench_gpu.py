"""The paper's analysis protocol at real model sizes on one GPU: analyze vs the bare forward floor.

For random-initialised OLMo 2 pairs with the published dimensions of OLMo-2-1B and OLMo-2-7B (and
32B if ``--with-32b`` and time allow), on the paper's protocol sizes — 1,000 pooled texts of 128
tokens, token-level metrics on the first 100 — prints per pair:

* the floor: bare backbone forward passes of Base then SFT over the same length-bucketed batches;
* full ``mbt.analyze`` (sequential pair: Base is freed before SFT is built), and the ratio
  analyze / floor (target ≤ 1.3);
* tokens per second, and peak GPU memory vs one model's size (target ≤ 1.3 × in sequential mode).

Needs no downloads. Sized to finish in under 8 minutes on one H200. Without a GPU, ``--smoke``
runs the same code on the CPU at reduced dimensions to prove it executes (its numbers say nothing
about GPU throughput). ``--write`` appends the table to ``benchmarks/RESULTS.md`` with the date,
device and commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

SMOKE_DIMS = dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=256, vocab=4096)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")


def floor_seconds(tok, config, texts, *, dtype, device: str, batch_size: int) -> float:
    """Bare backbone forwards of Base then SFT (each built, run and freed in turn); model building excluded."""
    import torch

    from mbt import trace

    ids = trace.encode(tok, texts, max_length=128)
    total = 0.0
    for seed in (0, 1):
        model = C.random_model(config, seed=seed, dtype=dtype, device=device)
        _sync(device)
        start = time.perf_counter()
        for batch in trace.length_batches([len(x) for x in ids], batch_size):
            input_ids, mask, pos = trace.collate([ids[i] for i in batch], tok.pad_token_id)
            with torch.no_grad():
                model.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                            position_ids=pos.to(device))
        _sync(device)
        total += time.perf_counter() - start
        del model
        _peak_reset(device)
    return total


def analyze_seconds(tok, config, texts, *, dtype, device: str, batch_size: int, n_token: int) -> tuple[float, float]:
    """``analyze`` on a sequential random pair; returns (seconds excluding model building, peak GiB)."""
    from mbt import analysis

    build = {"seconds": 0.0}
    pair = C.lazy_pair(tok, config, dtype=dtype, device=device, sequential=True)
    for role in ("base", "sft"):  # time model construction separately, like loading in real use
        loader = pair._loaders[role]

        def timed(loader=loader):
            start = time.perf_counter()
            model = loader()
            _sync(device)
            build["seconds"] += time.perf_counter() - start
            return model

        pair._loaders[role] = timed
    _peak_reset(device)
    start = time.perf_counter()
    analysis.analyze(pair, texts, batch_size=batch_size, max_length=128, n_token=n_token, cache=False,
                     progress=False, n_bootstrap=1000)
    _sync(device)
    return time.perf_counter() - start - build["seconds"], _peak_gb(device)


def run_one(name: str, dims: dict, *, device: str, n_pooled: int, n_token: int, batch_size: int) -> dict:
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tok = C.tokenizer(2048)
    config = C.olmo2_config(**dims)
    texts = C.texts(n_pooled, min_words=200, max_words=240)  # every text reaches the 128-token cap
    probe = C.random_model(config, seed=0, dtype=dtype, device="meta")
    size_gb = C.model_bytes(probe) / 2**30
    floor = floor_seconds(tok, config, texts, dtype=dtype, device=device, batch_size=batch_size)
    seconds, peak = analyze_seconds(tok, config, texts, dtype=dtype, device=device, batch_size=batch_size,
                                    n_token=n_token)
    tokens = 2 * n_pooled * 128
    return {"pair": name, "model_gb": size_gb, "floor_s": floor, "analyze_s": seconds, "ratio": seconds / floor,
            "tokens_per_s": tokens / seconds, "peak_gb": peak, "peak_over_model": peak / size_gb}


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parent)
    return out.stdout.strip() or "unknown"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, reduced dimensions and sizes")
    parser.add_argument("--with-32b", action="store_true", help="also OLMo-2-32B dimensions")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.smoke:
        device, n_pooled, n_token = "cpu", 40, 8
        runs = {"smoke (olmo2-1b dims / 16)": SMOKE_DIMS}
        torch.set_num_threads(2)
    else:
        if not torch.cuda.is_available():
            sys.exit("no CUDA device: run with --smoke to check the script on the CPU")
        device, n_pooled, n_token = "cuda", 1000, 100
        names = ["olmo2-1b", "olmo2-7b"] + (["olmo2-32b"] if args.with_32b else [])
        runs = {name: C.OLMO2_DIMS[name] for name in names}
    name_dev = torch.cuda.get_device_name() if device == "cuda" else "CPU (2 threads)"
    lines = [
        f"### {dt.date.today()} — {name_dev} — commit {_commit()}"
        + (" — CPU smoke run (not a GPU measurement)" if args.smoke else ""),
        "",
        f"{n_pooled} pooled texts × 128 tokens, token-level metrics on {n_token}, batch {args.batch_size}, "
        "random-init weights, sequential pair.",
        "",
        "| pair | model GiB | floor s | analyze s | analyze/floor | tokens/s | peak GiB | peak/model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, dims in runs.items():
        r = run_one(name, dims, device=device, n_pooled=n_pooled, n_token=n_token, batch_size=args.batch_size)
        line = (f"| {r['pair']} | {r['model_gb']:.2f} | {r['floor_s']:.2f} | {r['analyze_s']:.2f} | {r['ratio']:.2f} | "
                f"{r['tokens_per_s']:.0f} | {r['peak_gb']:.2f} | {r['peak_over_model']:.2f} |")
        lines.append(line)
        print(line, flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        results = Path(__file__).resolve().parent / "RESULTS.md"
        with results.open("a") as fh:
            fh.write("\n" + report)


if __name__ == "__main__":
    main()
