"""mbt: where in the network does supervised fine-tuning act?

A layer-wise Base-vs-SFT analysis library (Zhao et al., *A Layer-wise Analysis of Supervised
Fine-Tuning*). Heavy submodules are imported lazily, so ``import mbt`` stays fast.

Layer index convention used everywhere: ``0`` is the embedding output (the input of block 1),
``l`` in ``1..L`` is the residual stream after block ``l`` *before* the final norm; relative
depth is ``l / L``.
"""

from __future__ import annotations

import importlib
from typing import Any

from mbt import cpu as _cpu

_cpu.configure()  # OpenMP's bounded spin, before anything loads torch (see mbt.cpu)

__version__ = "0.1.0"

_LAZY = {
    "PAIRS": ("mbt.pairs", "PAIRS"),
    "PairSpec": ("mbt.pairs", "PairSpec"),
    "ModelPair": ("mbt.pairs", "ModelPair"),
    "load_pair": ("mbt.pairs", "load_pair"),
    "load_texts": ("mbt.data", "load_texts"),
    "analyze": ("mbt.analysis", "analyze"),
}
_SUBMODULES = {
    "analysis", "book", "checks", "cli", "correlate", "data", "evaluate", "formats", "loading", "metrics",
    "pairs", "paper", "plots", "probe", "results", "segments", "select", "stats", "swap", "toy", "trace",
    "train", "tune", "weights",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import public names and submodules on first use."""
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"mbt.{name}")
    raise AttributeError(f"module 'mbt' has no attribute {name!r}")
