"""The book: the chapter runtime every notebook calls, and the papermill + Jupyter Book build.

* :mod:`mbt.book.runtime` — set-up, the pair, one quick-mode rule, stored experiments keyed by the call,
  the LoRA sweep chapters 6 and 7 share;
* :mod:`mbt.book.builder` — :func:`build`, behind ``mbt book``.

The paper's claims, the verdicts and their tables live in :mod:`mbt.paper`.
"""

from __future__ import annotations

from mbt.book.builder import (
    ACROSS,
    LADDER_CHAPTERS,
    PROSE,
    TABLE_MARKER,
    BuildReport,
    ChapterRun,
    batch,
    batch_summary,
    build,
    find_root,
    parameter_names,
)
from mbt.book.runtime import (
    QUICK,
    QUICK_SWEEP,
    LoraSweep,
    analyze_datasets,
    analyze_halves,
    comparison_stores,
    default_comparison,
    default_datasets,
    device_name,
    lens_curve,
    logit_lens_table,
    lora_sweep,
    metric_table,
    open_pair,
    quick_size,
    run_sweep,
    setup_notebook,
    sizes,
    swap_table,
    sweep_path,
    weights_curve,
)
from mbt.pairs import pair_label
from mbt.paper.headlines import CHAPTERS

__all__ = [
    "ACROSS",
    "CHAPTERS",
    "LADDER_CHAPTERS",
    "PROSE",
    "QUICK",
    "QUICK_SWEEP",
    "TABLE_MARKER",
    "BuildReport",
    "ChapterRun",
    "LoraSweep",
    "analyze_datasets",
    "analyze_halves",
    "batch",
    "batch_summary",
    "build",
    "comparison_stores",
    "default_comparison",
    "default_datasets",
    "device_name",
    "lens_curve",
    "find_root",
    "logit_lens_table",
    "lora_sweep",
    "metric_table",
    "open_pair",
    "pair_label",
    "parameter_names",
    "quick_size",
    "run_sweep",
    "setup_notebook",
    "sizes",
    "swap_table",
    "sweep_path",
    "weights_curve",
]
