"""The book: the chapter runtime every notebook calls, and the papermill + Jupyter Book build.

* :mod:`mbt.book.runtime` — set-up, the pair, one quick-mode rule, stored experiments keyed by the call,
  the LoRA sweep chapters 6 and 7 share;
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

from mbt.book.builder import (  # noqa: E402 - after the filter above
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
from mbt.book.provenance import downloads  # noqa: E402
from mbt.book.runtime import (  # noqa: E402
    QUICK,
    QUICK_SWEEP,
    LoraSweep,
    analyze_datasets,
    analyze_halves,
    cached_call,
    comparison_stores,
    default_comparison,
    default_datasets,
    device_name,
    lens_curve,
    logit_lens_table,
    lora_sweep,
    metric_table,
    open_pair,
    pair_fingerprint,
    quick_size,
    run_sweep,
    setup_notebook,
    sizes,
    swap_table,
    sweep_path,
    weights_curve,
)
from mbt.pairs import pair_label  # noqa: E402
from mbt.paper.headlines import CHAPTERS  # noqa: E402

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
    "cached_call",
    "comparison_stores",
    "default_comparison",
    "default_datasets",
    "device_name",
    "downloads",
    "lens_curve",
    "find_root",
    "logit_lens_table",
    "lora_sweep",
    "metric_table",
    "open_pair",
    "pair_fingerprint",
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


_MOVED = {
    **{name: ("mbt.paper", name) for name in (
        "HEADLINES", "Finding", "Headline", "RECORDS_ENV", "chapter_of", "collect_records", "compare_conventions",
        "conventions_markdown", "conventions_sentence", "convergence_findings", "correlation_findings",
        "divergence_findings", "lora_findings", "paper_vs_ours_markdown", "probing_findings", "read_records",
        "record", "records_root", "report", "swap_findings", "sweep_columns", "weights_findings")},
    "PAPER_MASKS": ("mbt.segments", "PAPER_MASKS"),
    "single_segment_masks": ("mbt.segments", "single_segment_masks"),
    "folder_label": ("mbt.pairs", "folder_label"),
    "evidence_curves": ("mbt.select", "evidence_curves"),
    "CONVERGENCE_METRICS": ("mbt.metrics", "INTRINSIC_METRICS"),
}
"""Names that lived in the one-module ``mbt.book`` before the reproduction layer moved to :mod:`mbt.paper`."""


def __getattr__(name: str) -> object:
    """Old names keep working for one release, with a ``DeprecationWarning`` naming their new home."""
    if name in _MOVED:
        import importlib
        import warnings

        module, attr = _MOVED[name]
        warnings.warn(f"mbt.book.{name} moved to {module}.{attr}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mbt.book' has no attribute {name!r}")
