r"""Datasets: registry, text formatting, loading (Hub or local files) and seeded sampling.

One module per job: :mod:`~mbt.data.registry` (the specs), :mod:`~mbt.data.records` (record → text),
:mod:`~mbt.data.sources` (reading a split), :mod:`~mbt.data.sampling` (seeded samples, provenance).

The paper (Zhao et al., §3.1 and authors' ``config.py`` / ``data_utils.py``) analyses seven datasets.
Each is described by a frozen :class:`DatasetSpec` in :data:`DATASETS`, together with four generated toy
datasets (``toy-*``) whose generators live in :mod:`mbt.toy.corpus` and are imported only when used.

Text formats follow the released code (``data_utils.format_sample``; no chat template, the SFT model
gets exactly the Base model's text), with the authors' bugs fixed:

* MT-Bench: the H4 dataset stores its two turns as a *list* in ``prompt``; the authors passed that list
  to the tokenizer, which encodes it as a text pair. We join the turns with :data:`TURN_SEPARATOR`.
* Sampling: the authors dropped unusable records (short WikiText lines) after sampling, leaving gaps and
  fewer samples. We skip them and continue along the same seeded permutation, so ``n`` usable texts come
  back whenever the split has them (see :func:`seeded_order`).
* WikiText section headings (``" = = Gameplay = = "``) are markup, not prose; the authors kept those with
  at least 10 characters. We drop them (``DatasetSpec.drop_headings``); use
  ``dataclasses.replace(DATASETS["wikitext"], drop_headings=False)`` for the authors' behaviour.
* Text lines (WikiText, ToxiGen) are stripped of surrounding whitespace; the authors fed the raw line
  (WikiText lines start with a space and end with ``"\n"``).

Without network access, every loader takes ``path=``: a local ``.jsonl``, ``.jsonl.gz``, ``.json`` (a list of
records), ``.parquet`` or ``.csv`` file (taken as the requested split), a folder of split files
(``train.jsonl``, ``test.jsonl``, ...) or a ``datasets`` ``save_to_disk`` folder, with the same fields as the
Hub dataset. Hub datasets are loaded at the spec's ``revision`` and every :class:`TextSample` records where
its texts came from (``provenance``; the loaded commit in ``revision``). Hub failures raise a
:class:`HubLoadError` subclass naming the cause (offline, gated, not found, unknown config or split).
:func:`check_distinct_sources` refuses one source used as both training and test data.

Typical use::

    texts = mbt.load_texts("gsm8k", n=1000, seed=42)
    sample = load_sample("mmlu", n_pooled=200, n_token=50, seed=42)   # the released code's sizes
    sample.token_texts                                                 # first 50 of sample.texts
"""


from __future__ import annotations

from mbt.data.records import format_record
from mbt.data.registry import (
    DATASETS,
    GRANULARITIES,
    KINDS,
    LOCAL_SUFFIXES,
    PAPER_SAMPLE_SIZES,
    PAPER_SEED,
    TURN_SEPARATOR,
    DatasetSpec,
    get_spec,
    training_split,
)
from mbt.data.sampling import (
    TextSample,
    check_distinct_sources,
    load_sample,
    load_texts,
    sample_indices,
    seeded_order,
    source_of,
)
from mbt.data.sources import (
    GatedDatasetError,
    HubConfigError,
    HubLoadError,
    HubNotFoundError,
    HubOfflineError,
    HubSplitError,
    load_records,
)

__all__ = [
    "DATASETS",
    "GRANULARITIES",
    "KINDS",
    "LOCAL_SUFFIXES",
    "PAPER_SAMPLE_SIZES",
    "PAPER_SEED",
    "TURN_SEPARATOR",
    "DatasetSpec",
    "GatedDatasetError",
    "HubConfigError",
    "HubLoadError",
    "HubNotFoundError",
    "HubOfflineError",
    "HubSplitError",
    "TextSample",
    "check_distinct_sources",
    "format_record",
    "get_spec",
    "load_records",
    "load_sample",
    "load_texts",
    "sample_indices",
    "seeded_order",
    "source_of",
    "training_split",
]
