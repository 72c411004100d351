"""The ``mbt`` command: thin wrappers over the library (every subcommand calls one function).

Errors have one surface: an expected failure (a bad argument, a missing file or model, an unknown
name, a pair that cannot be compared, non-finite model outputs, an unreachable Hub) prints one line
``mbt: error: <cause>`` to stderr and exits with status 2; ``mbt --debug ...`` (or ``MBT_DEBUG=1``)
shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _cmd_pairs(args: argparse.Namespace) -> int:
    from mbt.pairs import PAIRS

    for spec in PAIRS.values():
        print(f"{spec.name:12s} {spec.base}  ->  {spec.sft}   {spec.description}")
    return 0


def _cmd_toy_build(args: argparse.Namespace) -> int:
    from mbt import toy

    out = toy.build(args.out, seed=args.seed, size=args.size, variant=args.variant, progress=True)
    print(out)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from mbt.analysis import analyze, check_settings
    from mbt.data import load_sample
    from mbt.pairs import get_pair, load_pair
    from mbt.results import atomic_write

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out must end in .csv or .parquet, got {out.name!r}")
    if args.pair is None and not (args.base and args.sft):
        raise ValueError("give --pair NAME or both --base and --sft")
    if args.pair is not None and (args.base or args.sft):
        raise ValueError("give either --pair or --base/--sft, not both")
    if args.pair is not None:
        get_pair(args.pair)  # an unknown name is refused (with the valid ones) before any data is read
    for flag, value in (("--n-pooled", args.n_pooled), ("--batch-size", args.batch_size),
                        ("--max-length", args.max_length)):
        if value <= 0:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    n_token = min(100, args.n_pooled) if args.n_token is None else args.n_token
    if n_token < 0:
        raise ValueError(f"--n-token must be >= 0, got {n_token}")
    if n_token > args.n_pooled:
        raise ValueError(f"--n-token {n_token} is more than --n-pooled {args.n_pooled}: the token-level texts are the "
                         f"first --n-token of the pooled ones; give --n-token {args.n_pooled} or less")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics != "all" else "all"
    # everything that needs no data and no model is checked before either is loaded
    check_settings(metrics=metrics, batch_size=args.batch_size, max_length=args.max_length,
                   conventions=args.conventions)
    sample = load_sample(
        args.dataset, n_pooled=args.n_pooled, n_token=n_token, seed=args.seed, split=args.split, path=args.path,
        allow_fewer=args.allow_fewer,
    )
    if args.n_token is not None and sample.n_token != n_token:  # never a silent change of what was asked
        why = ("the dataset is pooled-only" if sample.granularity == "pooled"
               else f"the split has {len(sample.texts)} usable texts")
        print(f"mbt: using {sample.n_token} token-level texts, not the {n_token} asked: {why}", file=sys.stderr)
    check_settings(metrics=metrics, n_token=sample.n_token, n_texts=len(sample.texts))
    # sequential: configs and tokenizers are read and checked now, the weights only if the result is not cached
    if args.pair is not None:
        pair = load_pair(args.pair, device=args.device, dtype=args.dtype, sequential=True)
    else:
        pair = load_pair(base=args.base, sft=args.sft, device=args.device, dtype=args.dtype, sequential=True)
    frame = analyze(
        pair,
        sample.texts,
        metrics=metrics,
        batch_size=args.batch_size,
        max_length=args.max_length,
        conventions=args.conventions,
        n_token=sample.n_token,
        cache=not args.no_cache,
    )
    frame.insert(0, "dataset", sample.dataset)
    frame.insert(0, "pair", pair.spec.name)
    if out.suffix == ".csv":  # one number per cell: the bootstrap replicates stay in the Parquet form only
        atomic_write(out, lambda tmp: frame.drop(columns="replicates").to_csv(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    print(f"{len(frame)} rows -> {out}")
    return 0


def _read_strings(flag: str, path: str) -> list[str]:
    """A list of strings from a ``.json`` list or a JSON-lines file (one JSON string per line)."""
    import json

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{flag}: no such file: {path}")
    text = file.read_text(encoding="utf-8")
    try:
        values = json.loads(text) if file.suffix == ".json" else [json.loads(line) for line in text.splitlines()
                                                                  if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag}: {path} is not JSON lines of strings (or a .json list): {exc}") from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{flag}: {path} must hold strings only (one JSON string per line, or a .json list)")
    return values


def _cmd_complete(args: argparse.Namespace) -> int:
    from mbt.evaluate import check_completions, completion_exact_match
    from mbt.pairs import get_pair, load_pair
    from mbt.results import atomic_write
    from mbt.trace import unwrap

    # every argument that needs no model is checked before one is loaded; the targets' tokens before the weights
    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out must end in .csv or .parquet, got {out.name!r}")
    given = [name for name, value in (("--model", args.model), ("--pair", args.pair), ("--base/--sft",
                                                                                        args.base or args.sft))
             if value]
    if len(given) != 1:
        raise ValueError("give one of --model PATH, --pair NAME or --base PATH --sft PATH")
    if (args.base or args.sft) and not (args.base and args.sft):
        raise ValueError("give both --base and --sft")
    if args.pair is not None:
        get_pair(args.pair)
    _at_least("--batch-size", args.batch_size)
    if args.max_new_tokens is not None:
        _at_least("--max-new-tokens", args.max_new_tokens)
    prompts, targets = _read_strings("--prompts", args.prompts), _read_strings("--targets", args.targets)
    check_completions(prompts, targets, match=args.match)
    if args.model:
        from transformers import AutoTokenizer

        from mbt.loading import load_causal_lm

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        check_completions(prompts, targets, tokenizer, match=args.match)
        models = {"model": lambda: load_causal_lm(args.model, device=args.device, progress=False)}
    else:
        pair = (load_pair(args.pair, device=args.device, sequential=True) if args.pair else
                load_pair(base=args.base, sft=args.sft, device=args.device, sequential=True))
        tokenizer = pair.tokenizer
        check_completions(prompts, targets, tokenizer, match=args.match)
        models = {role: (lambda role=role: unwrap(pair.model(role))) for role in ("base", "sft")}
    frames = []
    for role, load in models.items():
        rows = completion_exact_match(load(), tokenizer, prompts, targets, match=args.match,
                                      max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
        frames.append(rows.assign(model=role))
        print(f"{role}: exact match {rows['correct'].mean():.4f} on {len(rows)} prompts")
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    if out.suffix == ".csv":
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    print(f"{len(frame)} rows -> {out}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from mbt import book

    params = _params(args.param)
    if args.pair is not None and (args.base or args.sft):
        raise ValueError("give either --pair or --base/--sft, not both")
    chapters = _chapters(args.only)
    report = book.build(
        None if (args.base or args.sft) else (args.pair or "toy"),
        base=args.base,
        sft=args.sft,
        quick=args.quick,
        root=args.root,
        chapters=chapters,
        parameters=params,
        execute=not args.no_execute,
        force=args.force,
        html=not args.no_html,
        strict=args.strict,
        timeout=args.timeout,
    )
    print(report.summary())
    return 0 if report.ok else 1


def _params(items: Sequence[str] | None) -> dict[str, object]:
    """``--param KEY=VALUE`` options as a dict of Python literals (or plain strings)."""
    params: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
        params[key.strip()] = _literal(value)
    return params


def _chapters(only: str | None) -> list[str] | None:
    """``--only 01,05_swapping`` as chapter names (a number stands for the chapter it starts)."""
    from mbt.book.chapters import CHAPTERS

    if not only:
        return None
    names = [c.strip() for c in only.split(",") if c.strip()]
    return [next((c for c in CHAPTERS if c == n or c.split("_", 1)[0] == n.zfill(2)), n) for n in names]


def _cmd_batch(args: argparse.Namespace) -> int:
    from mbt.book import jobs as book_jobs
    from mbt.workers import check_workers

    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    jobs = book_jobs.batch(pairs, chapters=_chapters(args.chapters), parameters=_params(args.param), quick=args.quick,
                         root=args.root, force=args.force, timeout=args.timeout,
                         workers=check_workers(args.workers, name="--workers"))
    print(book_jobs.batch_summary(jobs))
    return 0 if all(job.run.status != "failed" for job in jobs) else 1


def _literal(text: str) -> object:
    """A ``--param`` value: a Python literal (``3``, ``True``, ``['a', 'b']``) or else the plain string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _at_least(flag: str, value: int | None, low: int = 1) -> None:
    """Refuse a whole-number option below ``low`` (``None`` means "the default" and passes)."""
    if value is not None and value < low:
        raise ValueError(f"{flag} must be >= {low}, got {value}")


def _int_list(flag: str, text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; anything else is refused naming the option."""
    try:
        values = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{flag} takes comma-separated whole numbers, e.g. 0,1,2; got {text!r}") from None
    if not values:
        raise ValueError(f"{flag} is empty; give comma-separated whole numbers, e.g. 0,1,2")
    return values


def _cmd_tune_sweep(args: argparse.Namespace) -> int:
    import math

    import pandas as pd

    from mbt.data import get_spec
    from mbt.pairs import get_pair
    from mbt.segments import resolve_masks
    from mbt.tune import LoraSettings, summarize_sweep, sweep
    from mbt.workers import check_workers

    # every argument that needs no model is checked before one is built, loaded or trained
    if args.pair is not None and args.base:
        raise ValueError("give either --pair or --base, not both")
    if args.pair is not None:
        get_pair(args.pair)
    if Path(args.out).suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {Path(args.out).name!r}")
    resolve_masks(args.masks)
    seeds = _int_list("--seeds", args.seeds)
    for flag, value in (("--steps", args.steps), ("--rank", args.rank), ("--batch-size", args.batch_size),
                        ("--micro-batch-size", args.micro_batch_size), ("--n-train", args.n_train),
                        ("--max-length", args.max_length), ("--n-test", args.n_test),
                        ("--n-retention", args.n_retention), ("--threads", args.threads)):
        _at_least(flag, value)
    check_workers(args.workers, name="--workers")
    for flag, number in (("--lr", args.lr), ("--alpha-over-r", args.alpha_over_r)):
        if not (math.isfinite(number) and number > 0):
            raise ValueError(f"{flag} must be a positive number, got {number}")
    get_spec(args.task)
    settings = LoraSettings(rank=args.rank, preset=args.preset, mlp=args.mlp, alpha_over_r=args.alpha_over_r,
                            rslora=args.rslora, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                            micro_batch_size=args.micro_batch_size, n_train=args.n_train, loss_on=args.loss_on,
                            max_length=args.max_length)
    base = args.base if args.base else (args.pair or "toy")
    frame = sweep(base, masks=args.masks, seeds=seeds, out=args.out, task=args.task, settings=settings,
                  n_test=args.n_test, n_retention=args.n_retention, threads=args.threads, workers=args.workers,
                  device=args.device, data_path=_data_path(args.data_path), progress=True)
    summary = summarize_sweep(frame)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"{len(frame)} runs -> {args.out}")
    return 0


def _data_path(text: str | None) -> str | dict[str, str] | None:
    """``--data-path``: one path for both splits, or ``train=PATH,test=PATH`` (either part may be left out)."""
    if not text:
        return None
    if "=" not in text:
        return text
    parts = dict(item.split("=", 1) for item in text.split(",") if item.strip())
    return {k.strip(): v.strip() for k, v in parts.items()}


def _cmd_tune_suggest(args: argparse.Namespace) -> int:
    from mbt import data, select
    from mbt.pairs import get_pair, load_pair
    from mbt.tune.sweeps import write_table

    # every argument that needs no model is checked before one is built or loaded
    if (args.base or args.sft) and not (args.base and args.sft):
        raise ValueError("give both --base and --sft (or --pair NAME)")
    if args.pair is not None and args.base:
        raise ValueError("give either --pair or --base/--sft, not both")
    if args.pair is not None:
        get_pair(args.pair)
    _at_least("--n", args.n, 2)  # two calibration texts at least
    _at_least("--n-segments", args.n_segments)
    if args.width is not None and not 1 <= args.width <= args.n_segments:
        raise ValueError(f"--width must be in 1..{args.n_segments} (--n-segments), got {args.width}")
    if args.out and Path(args.out).suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out must end in .parquet or .csv, got {Path(args.out).name!r}")
    data.get_spec(args.dataset)
    pair = load_pair(base=args.base, sft=args.sft) if args.base else load_pair(args.pair or "toy")
    texts = data.load_texts(args.dataset, n=args.n, seed=args.seed)
    mask, evidence = select.suggest_block(pair, texts, n_segments=args.n_segments, width=args.width,
                                          prefer=args.prefer, use_sft=not args.base_only)
    if args.out:
        write_table(Path(args.out), evidence)
    print(evidence.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(mask)
    return 0


def _add_tune(subparsers: Any) -> None:
    """``mbt tune sweep`` and ``mbt tune suggest``."""
    from mbt.segments import MASK_FAMILIES
    from mbt.tune import LORA_PRESETS, LoraSettings

    lora = LoraSettings()  # the flags' defaults are the settings' own

    tune = subparsers.add_parser("tune", help="segment-restricted LoRA (Mid-Block Efficient Tuning)")
    sub = tune.add_subparsers(dest="tune_command", required=True)

    p = sub.add_parser("sweep", help="train and evaluate LoRA for masks x seeds; resumable")
    p.add_argument("--pair", default=None, help="pair whose Base is tuned (default: toy, built if missing)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (instead of --pair)")
    p.add_argument("--masks", default="default",
                   help=f"family ({', '.join(MASK_FAMILIES)}) or comma-separated masks, e.g. 01100,00110")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--out", required=True, help="results table (.parquet or .csv); rerun to resume")
    p.add_argument("--task", default="toy-math", help="training/evaluation task (toy-math, gsm8k, ...)")
    p.add_argument("--rank", type=int, default=lora.rank, help="full-depth baseline rank (default 8; paper 64)")
    p.add_argument("--preset", default=lora.preset, choices=list(LORA_PRESETS), help="the LoRA preset")
    p.add_argument("--alpha-over-r", type=float, default=lora.alpha_over_r,
                   help="constant LoRA scale (standard preset)")
    p.add_argument("--rslora", action="store_true", help="rsLoRA scaling alpha/sqrt(r)")
    p.add_argument("--mlp", action="store_true", help="also adapt gate/up/down projections")
    p.add_argument("--steps", type=int, default=lora.steps)
    p.add_argument("--lr", type=float, default=lora.lr)
    p.add_argument("--batch-size", type=int, default=lora.batch_size)
    p.add_argument("--micro-batch-size", type=int, default=lora.micro_batch_size)
    p.add_argument("--n-train", type=int, default=lora.n_train)
    p.add_argument("--loss-on", default=lora.loss_on, choices=["answer", "all"])
    p.add_argument("--max-length", type=int, default=lora.max_length,
                   help="truncate training examples (default: never)")
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--n-retention", type=int, default=100)
    p.add_argument("--data-path", default=None,
                   help="local data instead of the Hub: a folder with train and test files, or "
                        "train=PATH,test=PATH (one file for both splits is refused)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per run, pinned and recorded")
    p.add_argument("--workers", type=int, default=1,
                   help="runs side by side, each in its own process on --threads threads (0: as many as the "
                        "CPUs fit, for a small model on the CPU); results do not depend on it")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (several GPUs)")
    p.set_defaults(func=_cmd_tune_sweep)

    p = sub.add_parser("suggest", help="training-free choice of the block to tune")
    p.add_argument("--pair", default=None, help="pair name (default: toy, built if missing)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (with --sft, instead of --pair)")
    p.add_argument("--sft", default=None, help="SFT model folder or Hub id (with --base)")
    p.add_argument("--dataset", default="toy-math")
    p.add_argument("--n", type=int, default=100, help="texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-segments", type=int, default=5)
    p.add_argument("--width", type=int, default=None, help="segments in the block (default 40%% of them)")
    p.add_argument("--prefer", default="stable", choices=["stable", "active"])
    p.add_argument("--base-only", action="store_true", help="use Base-only signals (no CKA)")
    p.add_argument("--out", default=None, help="write the evidence table (.csv or .parquet)")
    p.set_defaults(func=_cmd_tune_suggest)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mbt`` command."""
    parser = argparse.ArgumentParser(prog="mbt", description="Layer-wise analysis of supervised fine-tuning.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also MBT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pairs", help="list the registered Base/SFT pairs")
    p.set_defaults(func=_cmd_pairs)

    p = sub.add_parser("analyze", help="layer-wise metrics of a pair on a dataset, written to a table")
    p.add_argument("--pair", default=None, help="pair name (see `mbt pairs`)")
    p.add_argument("--base", default=None, help="Base model id or folder (instead of --pair)")
    p.add_argument("--sft", default=None, help="SFT model id or folder (instead of --pair)")
    p.add_argument("--dataset", required=True, help="dataset name, e.g. gsm8k, mmlu, toy-math")
    p.add_argument("--path", default=None,
                   help="local copy in the dataset's schema: a .jsonl(.gz)/.json/.parquet/.csv file (taken as the "
                        "split), a folder of split files (test.jsonl, ...) or a save_to_disk folder")
    p.add_argument("--split", default=None)
    p.add_argument("--n-pooled", type=int, default=1000, help="pooled samples (paper: 1,000)")
    p.add_argument("--n-token", type=int, default=None,
                   help="token-level samples, the first of the pooled ones (paper: 100; default: 100 or --n-pooled "
                        "if smaller)")
    p.add_argument("--allow-fewer", action="store_true",
                   help="take every usable text when the split has fewer than --n-pooled (e.g. MT-Bench: 80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--metrics", default="all", help="'all' or a comma-separated list")
    p.add_argument("--conventions", default="standard", choices=["standard", "paper"])
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--no-cache", action="store_true", help="recompute even if a cached result exists")
    p.add_argument("--out", required=True, help="output table (.csv or .parquet)")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser(
        "complete",
        help="exact match of greedy continuations against expected ones (prompts and targets from files)",
        description="Score prompts against expected continuations (mbt.evaluate.completion_exact_match) for one "
        "model or both models of a pair. Empty lists, lists of different lengths and targets that tokenize to "
        "nothing are refused before any model loads.",
    )
    p.add_argument("--model", default=None, help="one model: folder or Hub id")
    p.add_argument("--pair", default=None, help="both models of a registered pair (see `mbt pairs`)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (with --sft)")
    p.add_argument("--sft", default=None, help="SFT model folder or Hub id (with --base)")
    p.add_argument("--prompts", required=True, help="prompts: JSON lines, one JSON string each (or a .json list)")
    p.add_argument("--targets", required=True, help="expected continuations, one per prompt, in the same form")
    p.add_argument("--match", default="text", choices=["text", "numbers", "answer"],
                   help="compare the continuation itself, its numbers in order, or the final answer (GSM8K)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="generation budget (default: from the targets)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True, help="per-item rows (.csv or .parquet)")
    p.set_defaults(func=_cmd_complete)

    p = sub.add_parser(
        "book",
        help="execute every chapter notebook for a pair (papermill) and build the Jupyter Book",
        description="Execute notebooks/*.py in order, each in a fresh kernel, into book/_executed/ (git-ignored), "
        "then build the Jupyter Book into _build/html. Chapters whose source, parameters, mbt code and pair "
        "are unchanged are not executed again; analyses are cached in $MBT_CACHE (~/.cache/mbt).",
    )
    p.add_argument("--pair", default=None, help="pair name (see `mbt pairs`; default: toy, built if missing)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (with --sft, instead of --pair)")
    p.add_argument("--sft", default=None, help="SFT model folder or Hub id (with --base)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny samples in every chapter")
    p.add_argument("--only", default=None, help="execute only these chapters, e.g. '01,03' or '05_swapping'")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="extra notebook parameter (repeatable), e.g. --param n_pooled=200 --param seeds=[0,1]")
    p.add_argument("--force", action="store_true", help="execute every chapter even if it is up to date")
    p.add_argument("--no-execute", action="store_true", help="only rebuild the HTML from executed notebooks")
    p.add_argument("--no-html", action="store_true", help="execute the notebooks but do not run Jupyter Book")
    p.add_argument("--timeout", type=int, default=None,
                   help="per-cell time limit in seconds; a chapter whose cell runs longer fails, naming the cell "
                   "(default: 3600 for a toy pair, 28800 for any other; 0: no limit)")
    p.add_argument("--root", default=None, help="repository root, the book root (default: the working directory)")
    p.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser(
        "batch",
        help="execute chapters for several pairs into the results store (resumable; one job per pair and chapter)",
        description="Execute the chosen chapters for every pair with papermill. Findings and small tables go to each "
        "pair's folder of the results store ($MBT_CACHE/store/<pair>); a rerun executes only what is missing, altered "
        "or made from other inputs; one failed job never stops the others; two batches never run the same job at once; "
        "stopping it (Ctrl-C, kill) ends its workers and their kernels. On a cluster, run one "
        "`mbt batch --pairs <pair>` per job (e.g. a Slurm array) on a shared MBT_CACHE.",
    )
    p.add_argument("--pairs", required=True, help="comma-separated pair names, e.g. toy,toy-seen")
    p.add_argument("--chapters", default=None, help="chapters, e.g. '01,02' (default: every chapter but 08)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="extra notebook parameter (repeatable)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny samples")
    p.add_argument("--force", action="store_true", help="execute every job even if it is up to date")
    p.add_argument("--timeout", type=int, default=None,
                   help="per-cell time limit in seconds; a chapter whose cell runs longer fails, naming the cell "
                   "(default: 3600 for a toy pair, 28800 for any other; 0: no limit)")
    p.add_argument("--workers", type=int, default=1,
                   help="pairs side by side, each in its own process sharing the CPUs (0: one pair per CPU)")
    p.add_argument("--root", default=None, help="repository root (default: the working directory)")
    p.set_defaults(func=_cmd_batch)

    toy = sub.add_parser("toy", help="the offline toy pair").add_subparsers(dest="toy_command", required=True)
    p = toy.add_parser("build", help="build (or reuse) the toy Base/SFT pair")
    p.add_argument("--out", default=None, help="output folder (default: a user cache folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="default", choices=["default", "tiny"])
    p.add_argument("--variant", default="toy", choices=["toy", "seen"])
    p.set_defaults(func=_cmd_toy_build)

    _add_tune(sub)  # mbt tune sweep | suggest
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after any subcommand too (``mbt tune sweep ... --debug``).

    The subcommands' copies default to "not given" (``SUPPRESS``), so they never undo a ``--debug``
    given before the subcommand.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                if "--debug" not in sub._option_string_actions:
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                     help="show the full traceback of an error (also MBT_DEBUG=1)")
                _debug_everywhere(sub)


_EXPECTED: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                               FileExistsError, PermissionError, KeyError)


def _oom_error(torch: Any) -> type[BaseException]:
    return getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


def _disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure a user can act on (one line) rather than a bug (traceback)."""
    if isinstance(exc, _EXPECTED) or _disk_full(exc):
        return True
    if type(exc).__module__.split(".")[0] == "mbt":  # the project's own error classes
        return True
    if isinstance(exc, RuntimeError):
        import torch

        if isinstance(exc, _oom_error(torch)):
            return True
        # models or files that cannot be reached (pairs.load_pair, the Hugging Face Hub client)
        text = str(exc)
        return text.startswith("could not load") or "HF_HUB_OFFLINE" in text
    return False


def _remedy(exc: BaseException) -> str:
    import torch

    if isinstance(exc, _oom_error(torch)):
        return " (remedy: lower --batch-size or --max-length, or use a smaller dtype)"
    if _disk_full(exc):
        return " (remedy: free some space, or set MBT_CACHE to a folder on a disk with room; finished work is kept)"
    return ""


def _cause(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


INTERRUPT_GRACE_S: float = 10.0
"""Seconds a command may take to wind down after Ctrl-C or ``SIGTERM`` before it exits regardless."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Ctrl-C and ``SIGTERM`` (``kill``, a cluster's time limit) end a command: workers and kernels stop.

    The first signal raises :class:`KeyboardInterrupt` (the command's own clean-up runs: kernels are shut
    down, finished results are already on disk) and arms a watchdog: if the process is still alive
    :data:`INTERRUPT_GRACE_S` seconds later — a library swallowed the interrupt, a shutdown hangs — it exits
    at once with ``128 + signal``. Its workers and kernels watch their parent and end within a second.
    Only in the main thread (the only one that may set signal handlers); the previous handlers are restored.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def watchdog(signum: int) -> None:
        time.sleep(INTERRUPT_GRACE_S)
        sys.stderr.write(f"mbt: still running {INTERRUPT_GRACE_S:g} s after signal {signum}; exiting now\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    armed: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        if not armed:
            armed.append(signum)
            threading.Thread(target=watchdog, args=(signum,), daemon=True, name="mbt-interrupt-watchdog").start()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mbt`` command line; returns the exit status.

    Expected failures print ``mbt: error: <cause>`` on one line and return 2; Ctrl-C prints one line and
    returns 130; with ``--debug`` (or ``MBT_DEBUG=1``) the traceback is printed as well. Other exceptions
    propagate (bugs).
    """
    args = build_parser().parse_args(argv)
    debug = bool(args.debug) or os.environ.get("MBT_DEBUG", "") not in ("", "0")
    try:
        with _terminate_as_interrupt():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("mbt: interrupted; finished work is kept (results are written atomically): rerun to resume",
              file=sys.stderr)
        return 130
    except Exception as exc:
        if not _is_expected(exc):
            raise
        if debug:
            traceback.print_exc()
        print(f"mbt: error: {_cause(exc)}{_remedy(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
