r"""The dataset registry: one frozen :class:`DatasetSpec` per dataset of the paper and per toy task.

Ids, configs, splits, revisions, field names, the format kind and the granularity (token-level or pooled) of
every dataset, and the paper's sample sizes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mbt import formats

KINDS: tuple[str, ...] = formats.FORMAT_KINDS
"""How a record becomes text (see :func:`format_record` and :mod:`mbt.formats`)."""

GRANULARITIES: tuple[str, ...] = ("token", "pooled")
"""``"token"``: token-level and pooled metrics; ``"pooled"``: pooled (mean over tokens) metrics only."""

TURN_SEPARATOR = formats.TURN_SEPARATOR
"""Joins the turns of a multi-turn prompt (MT-Bench) into one text (:data:`mbt.formats.TURN_SEPARATOR`)."""

PAPER_SEED = 42
"""The sampling seed of the released code."""

PAPER_SAMPLE_SIZES: dict[str, tuple[int, int]] = {
    "paper_text": (1000, 100),
    "authors_code": (200, 50),
}
"""``(n_pooled, n_token)``: the paper says 1,000 pooled / 100 token-level samples; the released code
(``config.py`` ``N_POOLED``/``N_TOKEN`` since commit ``786bfdf``) used 200 / 50."""

# Fields each kind reads. For "conversation" either field is enough ("turns" is LMSYS' name, "prompt" H4's).
_KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "multiple_choice": ("question", "choices", "answer"),
    "qa": ("question", "answer"),
    "text": ("text",),
    "instruction": ("prompt",),
    "code": ("prompt", "canonical_solution"),
    "conversation": ("turns|prompt",),
    "classification": ("text",),
}

_HEADING = re.compile(r"\s*(?:=\s+)+\S.*?(?:\s+=)+\s*")
LOCAL_SUFFIXES: tuple[str, ...] = (".jsonl", ".jsonl.gz", ".json", ".parquet", ".csv")
"""Local data files :func:`load_records` reads with ``path=`` (UTF-8 text; ``.csv`` values are strings)."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the analysis: where it lives and how its records become text.

    Attributes:
        name: Registry key (``"gsm8k"``, ``"toy-math"``, ...).
        hub_id: Hugging Face Hub dataset id, or ``None`` for a generated dataset.
        config: Hub configuration name, or ``None``.
        split: The split analysed (the authors' ``split_test``).
        train_split: The split to fine-tune on, or ``None`` when the dataset has no separate training data.
        granularity: ``"token"`` (token-level and pooled metrics) or ``"pooled"`` (pooled only).
        kind: Record format, one of :data:`KINDS`.
        min_chars: Formatted texts shorter than this after ``strip()`` are dropped (authors: 10 for
            WikiText and ToxiGen). Whitespace-only texts are always dropped.
        splits: The splits that exist (checked before loading from the Hub or a generator).
        gated: Whether the Hub dataset needs accepted terms and a login.
        generator: ``"module:function"`` building the records as ``fn(split, seed) -> list[dict]``
            (generated datasets only); imported on first use.
        revision: Hub revision (branch, tag or commit) passed to the loader and recorded in every sample's
            provenance. Hub datasets default to ``"main"`` (``None`` is replaced by it): the registry pins
            ``"main"`` because the commit ids of the Hub datasets could not be looked up when it was written
            (no network); the commit actually loaded is recorded as ``TextSample.revision``. Pin a commit
            with ``dataclasses.replace(spec, revision="<sha>")`` to freeze the data. ``None`` for generated
            datasets.
        drop_headings: Drop WikiText section headings (lines like ``" = = Title = = "``).
        notes: Free-text remarks (sizes, quirks).
    """

    name: str
    hub_id: str | None
    config: str | None
    split: str
    train_split: str | None
    granularity: str
    kind: str
    min_chars: int = 0
    splits: tuple[str, ...] = ()
    gated: bool = False
    generator: str | None = None
    revision: str | None = None
    drop_headings: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"dataset {self.name!r}: unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"dataset {self.name!r}: granularity must be one of {GRANULARITIES}, got {self.granularity!r}"
            )
        if (self.hub_id is None) == (self.generator is None):
            raise ValueError(f"dataset {self.name!r}: give exactly one of hub_id and generator")
        if self.generator is not None and self.generator.count(":") != 1:
            raise ValueError(
                f"dataset {self.name!r}: generator must be 'module:function', got {self.generator!r}"
            )
        if self.min_chars < 0:
            raise ValueError(f"dataset {self.name!r}: min_chars must be >= 0, got {self.min_chars}")
        if self.hub_id is not None:
            if self.hub_id.count("/") != 1 or not all(self.hub_id.split("/")):
                raise ValueError(
                    f"dataset {self.name!r}: hub_id must be 'owner/name' (the Hub client refuses ids without "
                    f"a namespace), got {self.hub_id!r}"
                )
            if self.revision is None:
                object.__setattr__(self, "revision", "main")
            elif not isinstance(self.revision, str) or not self.revision:
                raise ValueError(f"dataset {self.name!r}: revision must be a non-empty string, got {self.revision!r}")

    @property
    def is_generated(self) -> bool:
        """Whether the records come from a generator function rather than the Hub."""
        return self.generator is not None

    @property
    def token_level(self) -> bool:
        """Whether token-level metrics are computed on this dataset (``granularity == "token"``)."""
        return self.granularity == "token"


def _hub(name: str, hub_id: str, config: str | None, split: str, train_split: str | None,
         granularity: str, kind: str, splits: tuple[str, ...], revision: str = "main",
         **kwargs: Any) -> DatasetSpec:
    """A Hub entry, pinned to ``revision`` ("main": commit ids could not be looked up offline)."""
    return DatasetSpec(name=name, hub_id=hub_id, config=config, split=split, train_split=train_split,
                       granularity=granularity, kind=kind, splits=splits, revision=revision, **kwargs)


def _toy(name: str, generator: str, train_split: str | None, granularity: str, kind: str,
         splits: tuple[str, ...], notes: str) -> DatasetSpec:
    return DatasetSpec(name=name, hub_id=None, config=None, split="test", train_split=train_split,
                       granularity=granularity, kind=kind, splits=splits, generator=generator, notes=notes)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _hub("mmlu", "cais/mmlu", "all", "test", "auxiliary_train", "token", "multiple_choice",
             ("auxiliary_train", "dev", "validation", "test"),
             notes="test: 14,042 questions over 57 subjects; answer is an index into choices."),
        _hub("gsm8k", "openai/gsm8k", "main", "test", "train", "token", "qa", ("train", "test"),
             notes="test 1,319 / train 7,473; answer is a rationale with <<...>> annotations ending in "
                   "'#### N'."),
        _hub("wikitext", "Salesforce/wikitext", "wikitext-103-v1", "test", "train", "token", "text",
             ("train", "validation", "test"), min_chars=10, drop_headings=True,
             notes="test: 4,358 lines, many empty; lines under 10 characters and section headings dropped."),
        _hub("ifeval", "google/IFEval", None, "train", None, "token", "instruction", ("train",),
             notes="541 prompts; 'train' is the only split (the analysis split), so there is no separate "
                   "training split (the authors' config named 'train' for both)."),
        _hub("humaneval", "openai/openai_humaneval", None, "test", None, "pooled", "code", ("test",),
             notes="164 problems, 'test' only (the authors' config named a 'train' split that does "
                   "not exist). Columns task_id, prompt, canonical_solution, test, entry_point."),
        _hub("mt_bench", "HuggingFaceH4/mt_bench_prompts", None, "train", None, "pooled", "conversation",
             ("train",),
             notes="80 two-turn prompts; field 'prompt' is a list of turns, joined with TURN_SEPARATOR. "
                   "'train' is the only split (the analysis split)."),
        _hub("toxigen", "toxigen/toxigen-data", "annotated", "test", "train", "pooled", "classification",
             ("train", "test"), min_chars=10, gated=True,
             notes="gated: accept the terms on the Hub and log in. annotated test 940 / train 8,960; "
                   "the label is not used."),
        _toy("toy-math", "mbt.toy.corpus:toy_math", "train", "token", "qa", ("train", "test"),
             "Generated arithmetic word problems in the GSM8K schema (answer ends in '#### N')."),
        _toy("toy-mc", "mbt.toy.corpus:toy_mc", "train", "token", "multiple_choice", ("test", "train"),
             "Generated four-way multiple choice in the MMLU schema."),
        _toy("toy-text", "mbt.toy.corpus:toy_text", "train", "token", "text", ("test", "train"),
             "Generated plain text lines in the WikiText schema."),
        _toy("toy-instruct", "mbt.toy.corpus:toy_instruct", None, "pooled", "instruction", ("test",),
             "Generated instructions in the IFEval schema."),
    )
}
"""The paper's seven datasets plus the offline toy tasks, keyed by name."""


def get_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    """Return the spec of a dataset given by name or spec.

    Names are matched exactly, then case-insensitively with ``-`` and ``_`` treated alike
    (``"MT-Bench"`` finds ``mt_bench``).

    Args:
        dataset: A registry name or a :class:`DatasetSpec` (returned unchanged).

    Returns:
        The spec.

    Raises:
        ValueError: For an unknown name; the message lists all valid names.
    """
    if isinstance(dataset, DatasetSpec):
        return dataset
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a name or a DatasetSpec, got {type(dataset).__name__}")
    if dataset in DATASETS:
        return DATASETS[dataset]

    def norm(s: str) -> str:
        return s.lower().replace("-", "_")

    for key, spec in DATASETS.items():
        if norm(key) == norm(dataset):
            return spec
    raise ValueError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")


def training_split(dataset: str | DatasetSpec) -> str:
    """Return the split to fine-tune on.

    Args:
        dataset: Name or spec.

    Returns:
        ``spec.train_split`` (``"auxiliary_train"`` for MMLU).

    Raises:
        ValueError: When the dataset has no separate training split (HumanEval, IFEval, MT-Bench,
            toy-instruct).
    """
    spec = get_spec(dataset)
    if spec.train_split is None:
        raise ValueError(
            f"dataset {spec.name!r} has no training split (splits: {', '.join(spec.splits) or 'unknown'}). "
            f"{spec.notes}".strip()
        )
    return spec.train_split
