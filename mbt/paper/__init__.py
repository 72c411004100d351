"""The paper's claims as data, the verdict model and its rendering (pandas only, no models).

* :mod:`mbt.paper.headlines` — every headline number of the paper and the chapter that checks it;
* :mod:`mbt.paper.findings` — our counterpart of each headline, computed from the library's tables;
* :mod:`mbt.paper.records` — findings written per chapter and pair, collected for the book;
* :mod:`mbt.paper.render` — Markdown tables and sentences;
* :mod:`mbt.paper.store` — the results store: one versioned folder per pair, local or contributed, checked
  before it is shown;
* :mod:`mbt.paper.manifests` — job manifests: which store files are results, written only by finished jobs;
* :mod:`mbt.paper.verdicts` — the three-valued verdict engine every finding is decided by.
"""

from __future__ import annotations

from mbt.paper.findings import (
    RETENTION_COLUMNS,
    Finding,
    convergence_findings,
    correlation_findings,
    diffing_findings,
    divergence_findings,
    knowledge_findings,
    lora_findings,
    mask_contrasts,
    probing_findings,
    run_profiles,
    swap_findings,
    sweep_columns,
    weights_findings,
)
from mbt.paper.headlines import BY_ID, HEADLINES, Headline, chapter_of
from mbt.paper.records import RECORDS_ENV, check_finding, read_records, record
from mbt.paper.render import (
    compare_conventions,
    conventions_markdown,
    conventions_sentence,
    knowledge_sentences,
    mask_knowledge_sentence,
    paper_vs_ours_markdown,
    premise_markdown,
    report,
    store_problems_markdown,
    swap_knowledge_sentences,
)
from mbt.paper.store import (
    STORE_VERSION,
    StoreEntry,
    StoreProblem,
    collect_records,
    load_store,
    records_root,
    save_table,
    scan_stores,
    store_folder,
    store_problems,
    store_root,
    stores,
)
from mbt.paper.verdicts import Verdict

__all__ = [
    "BY_ID",
    "HEADLINES",
    "RECORDS_ENV",
    "RETENTION_COLUMNS",
    "STORE_VERSION",
    "Verdict",
    "Finding",
    "Headline",
    "StoreEntry",
    "StoreProblem",
    "chapter_of",
    "check_finding",
    "collect_records",
    "compare_conventions",
    "conventions_markdown",
    "conventions_sentence",
    "convergence_findings",
    "correlation_findings",
    "diffing_findings",
    "divergence_findings",
    "knowledge_findings",
    "knowledge_sentences",
    "load_store",
    "lora_findings",
    "mask_contrasts",
    "mask_knowledge_sentence",
    "paper_vs_ours_markdown",
    "premise_markdown",
    "probing_findings",
    "read_records",
    "record",
    "records_root",
    "run_profiles",
    "report",
    "save_table",
    "scan_stores",
    "store_folder",
    "store_problems",
    "store_problems_markdown",
    "store_root",
    "stores",
    "swap_findings",
    "swap_knowledge_sentences",
    "sweep_columns",
    "weights_findings",
]
