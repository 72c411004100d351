"""The book: the chapter runtime every notebook calls, and the papermill + Jupyter Book build.

* :mod:`mbt.book.runtime` — set-up, the pair, one quick-mode rule, stored experiments keyed by the call,
  the LoRA sweep chapters 6 and 7 share, chapter 10's scores in three formats;
* :mod:`mbt.book.chapters` — the one list of the book's chapters (:data:`TOC`), reading a chapter;
* :mod:`mbt.book.parameters` — every chapter parameter's type and range, checked before any work;
* :mod:`mbt.book.jobs` — one ``(pair, chapter)`` job with papermill, and :func:`batch` (``mbt batch``);
* :mod:`mbt.book.provenance` — a chapter's tables and their provenance, offered for download at its end;
* :mod:`mbt.book.figures` — figures with alt text, from the kernel to the rendered page;
* :mod:`mbt.book.builder` — :func:`build`, behind ``mbt book``;
* :mod:`mbt.book.check` — the built book checked in a real browser (``make check-book``).

The paper's claims, the verdicts and their tables live in :mod:`mbt.paper`.
"""

from __future__ import annotations

import warnings

# tqdm warns at import time, from inside its own package, that notebook widgets are missing; a chapter's
# first cell imports this package, and that warning (with the build machine's file path) would be its output
warnings.filterwarnings("ignore", message="IProgress not found")

from mbt.book.builder import PROSE, TABLE_MARKER, BuildReport, build  # noqa: E402 - after the filter above
from mbt.book.chapters import (  # noqa: E402
    ACROSS,
    BESIDE_THE_LADDER,
    CHAPTERS,
    LADDER_CHAPTERS,
    TITLES,
    TOC,
    Chapter,
    find_root,
)
from mbt.book.jobs import ChapterRun, batch, batch_summary  # noqa: E402
from mbt.book.parameters import check_notebook_parameters  # noqa: E402
from mbt.book.provenance import downloads  # noqa: E402
from mbt.book.runtime import (  # noqa: E402
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
    store_problems_note,
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
    "check_notebook_parameters",
    "comparison_stores",
    "default_comparison",
    "default_datasets",
    "device_name",
    "downloads",
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
    "quick_size",
    "setup_notebook",
    "sizes",
    "store_problems_note",
    "swap_table",
    "sweep_path",
    "weights_curve",
]
