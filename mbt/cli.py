"""The ``mbt`` command: thin wrappers over the library (every subcommand calls one function)."""

from __future__ import annotations

import argparse
import os
import subprocess
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


def _cmd_book(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    if not (root / "_config.yml").exists():
        print(f"error: {root} has no _config.yml (run from the repository root or pass --root)", file=sys.stderr)
        return 2
    from mbt.pairs import get_pair

    get_pair(args.pair)  # refuse an unknown pair name before doing anything
    env = {**os.environ, "MBT_PAIR": args.pair}
    env.pop("MPLBACKEND", None)  # with Agg, figures silently vanish from the book
    cmd = [sys.executable, "-m", "jupyter_book", "build", str(root), "--path-output", str(root)]
    if args.strict:
        cmd += ["-W", "-n", "--keep-going"]
    return subprocess.call(cmd, env=env)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mbt`` command."""
    parser = argparse.ArgumentParser(prog="mbt", description="Layer-wise analysis of supervised fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pairs", help="list the registered Base/SFT pairs")
    p.set_defaults(func=_cmd_pairs)

    p = sub.add_parser("book", help="execute the notebooks for a pair and build the Jupyter Book")
    p.add_argument("--pair", default="toy", help="pair name (see `mbt pairs`)")
    p.add_argument("--root", default=".", help="repository root (the book root)")
    p.add_argument("--strict", action="store_true", help="treat Sphinx warnings as errors")
    p.set_defaults(func=_cmd_book)

    toy = sub.add_parser("toy", help="the offline toy pair").add_subparsers(dest="toy_command", required=True)
    p = toy.add_parser("build", help="build (or reuse) the toy Base/SFT pair")
    p.add_argument("--out", default=None, help="output folder (default: a user cache folder)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="default", choices=["default", "tiny"])
    p.add_argument("--variant", default="toy", choices=["toy", "seen"])
    p.set_defaults(func=_cmd_toy_build)
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
