"""The book: the chapter runtime every notebook calls, and the papermill + Jupyter Book build.

* :mod:`mbt.book.runtime` — set-up, the pair, one quick-mode rule, stored experiments keyed by the call,
  the LoRA sweep chapters 6 and 7 share, chapter 10's scores in three formats;
* :mod:`mbt.book.chapters` — the one list of the book's chapters (:data:`TOC`), reading a chapter;
* :mod:`mbt.book.jobs` — one ``(pair, chapter)`` job with papermill, and :func:`batch` (``mbt batch``);
* :mod:`mbt.book.builder` — :func:`build`, behind ``mbt book``.

The paper's claims, the verdicts and their tables live in :mod:`mbt.paper`.
"""

from __future__ import annotations

from mbt.book.builder import PROSE, TABLE_MARKER, BuildReport, build
from mbt.book.chapters import (
    ACROSS,
    BESIDE_THE_LADDER,
    CHAPTERS,
    LADDER_CHAPTERS,
    TITLES,
    TOC,
    Chapter,
    find_root,
    parameter_names,
)
from mbt.book.jobs import ChapterRun, batch, batch_summary
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
    knowledge_ladder,
    knowledge_pairs,
    knowledge_prompts,
    knowledge_scores,
    knowledge_swaps,
    lens_curve,
    logit_lens_table,
    lora_sweep,
    metric_table,
    open_pair,
    quick_size,
    setup_notebook,
    sizes,
    swap_table,
    sweep_path,
    weights_curve,
)

__all__ = [
    "ACROSS",
    "BESIDE_THE_LADDER",
    "CHAPTERS",
    "Chapter",
    "LADDER_CHAPTERS",
    "PROSE",
    "QUICK",
    "QUICK_SWEEP",
    "TABLE_MARKER",
    "TITLES",
    "TOC",
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
    "knowledge_ladder",
    "knowledge_pairs",
    "knowledge_prompts",
    "knowledge_scores",
    "knowledge_swaps",
    "lens_curve",
    "find_root",
    "logit_lens_table",
    "lora_sweep",
    "metric_table",
    "open_pair",
    "parameter_names",
    "quick_size",
    "setup_notebook",
    "sizes",
    "swap_table",
    "sweep_path",
    "weights_curve",
]
