"""The ``mbt`` command: thin wrappers over the library (every subcommand calls one function)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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
    from mbt.analysis import analyze
    from mbt.data import load_sample
    from mbt.pairs import load_pair
    from mbt.results import atomic_write

    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out must end in .csv or .parquet, got {out.name!r}")
    sample = load_sample(
        args.dataset, n_pooled=args.n_pooled, n_token=args.n_token, seed=args.seed, split=args.split, path=args.path,
        allow_fewer=args.allow_fewer,
    )
    if args.pair is not None:
        pair = load_pair(args.pair, device=args.device, dtype=args.dtype)
    elif args.base and args.sft:
        pair = load_pair(base=args.base, sft=args.sft, device=args.device, dtype=args.dtype)
    else:
        raise ValueError("give --pair NAME or both --base and --sft")
    frame = analyze(
        pair,
        sample.texts,
        metrics=args.metrics.split(",") if args.metrics != "all" else "all",
        batch_size=args.batch_size,
        max_length=args.max_length,
        conventions=args.conventions,
        n_token=sample.n_token,
        cache=not args.no_cache,
    )
    frame.insert(0, "dataset", sample.dataset)
    frame.insert(0, "pair", pair.spec.name)
    if out.suffix == ".csv":
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    print(f"{len(frame)} rows -> {out}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from mbt import book

    params: dict[str, object] = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
        params[key.strip()] = _literal(value)
    chapters = None
    if args.only:
        names = [c.strip() for c in args.only.split(",") if c.strip()]
        chapters = [next((c for c in book.CHAPTERS if c == n or c.split("_", 1)[0] == n.zfill(2)), n) for n in names]
    report = book.build(
        None if (args.base or args.sft) else args.pair,
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


def _literal(text: str) -> object:
    """A ``--param`` value: a Python literal (``3``, ``True``, ``['a', 'b']``) or else the plain string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mbt`` command."""
    parser = argparse.ArgumentParser(prog="mbt", description="Layer-wise analysis of supervised fine-tuning.")
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
    p.add_argument("--n-token", type=int, default=100, help="token-level samples (paper: 100)")
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
        "book",
        help="execute every chapter notebook for a pair (papermill) and build the Jupyter Book",
        description="Execute notebooks/*.py in order, each in a fresh kernel, into book/_executed/ (git-ignored), "
        "then build the Jupyter Book into _build/html. Chapters whose source, parameters, mbt code and pair "
        "are unchanged are not executed again; analyses are cached in $MBT_CACHE (~/.cache/mbt).",
    )
    p.add_argument("--pair", default="toy", help="pair name (see `mbt pairs`; the toy pair is built if missing)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (with --sft, instead of --pair)")
    p.add_argument("--sft", default=None, help="SFT model folder or Hub id (with --base)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny samples in every chapter")
    p.add_argument("--only", default=None, help="execute only these chapters, e.g. '01,03' or '05_swapping'")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="extra notebook parameter (repeatable), e.g. --param n_pooled=200 --param seeds=[0,1]")
    p.add_argument("--force", action="store_true", help="execute every chapter even if it is up to date")
    p.add_argument("--no-execute", action="store_true", help="only rebuild the HTML from executed notebooks")
    p.add_argument("--no-html", action="store_true", help="execute the notebooks but do not run Jupyter Book")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.add_argument("--root", default=None, help="repository root, the book root (default: the working directory)")
    p.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    p.set_defaults(func=_cmd_book)

    toy = sub.add_parser("toy", help="the offline toy pair").add_subparsers(dest="toy_command", required=True)
    p = toy.add_parser("build", help="build (or reuse) the toy Base/SFT pair")
    p.add_argument("--out", default=None, help="output folder (default: a user cache folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="default", choices=["default", "tiny"])
    p.add_argument("--variant", default="toy", choices=["toy", "seen"])
    p.set_defaults(func=_cmd_toy_build)

    from mbt import tune

    tune.add_cli(sub)  # mbt tune sweep | suggest
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mbt`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
