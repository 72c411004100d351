r"""Datasets: registry, text formatting, seeded sampling and local-file override.

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

import importlib
import json
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbt import formats
from mbt.results import text_fingerprint

__all__ = [
    "DATASETS",
    "GRANULARITIES",
    "KINDS",
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
    "LOCAL_SUFFIXES",
    "TextSample",
    "check_distinct_sources",
    "source_of",
    "fingerprint",
    "format_record",
    "get_spec",
    "load_records",
    "load_sample",
    "load_texts",
    "required_fields",
    "sample_indices",
    "seeded_order",
    "training_split",
]

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


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------


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


def required_fields(dataset: str | DatasetSpec) -> tuple[str, ...]:
    """Return the record fields a dataset's format needs (``"a|b"`` means either field).

    Args:
        dataset: Name or spec.

    Returns:
        Field names, e.g. ``("question", "choices", "answer")`` for MMLU.
    """
    return _KIND_FIELDS[get_spec(dataset).kind]


# --------------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------------


def _unwrap(spec: DatasetSpec, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Unwrap a record nested in one struct field (old cais/mmlu ``auxiliary_train``: ``{"train": {..}}``)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"dataset {spec.name!r}: a record must be a mapping, got {type(record).__name__}")
    if len(record) == 1 and _missing_field(spec, record) is not None:
        (inner,) = record.values()
        if isinstance(inner, Mapping) and _missing_field(spec, inner) is None:
            return inner
    return record


def _missing_field(spec: DatasetSpec, record: Mapping[str, Any] | Sequence[str]) -> str | None:
    """Return the first required field absent from a record (or a column list), else ``None``."""
    for name in _KIND_FIELDS[spec.kind]:
        if not any(alt in record for alt in name.split("|")):
            return name
    return None


def _field_error(spec: DatasetSpec, name: str, keys: Any, where: str = "a record") -> ValueError:
    needed = ", ".join(repr(f) for f in _KIND_FIELDS[spec.kind])
    return ValueError(
        f"dataset {spec.name!r}: {where} has no field {name!r} (fields: {sorted(map(str, keys))}); "
        f"the {spec.kind!r} format needs {needed}"
    )


def _get(spec: DatasetSpec, record: Mapping[str, Any], name: str) -> Any:
    if name not in record:
        raise _field_error(spec, name, record.keys())
    return record[name]


def _get_str(spec: DatasetSpec, record: Mapping[str, Any], name: str) -> str:
    value = _get(spec, record, name)
    if not isinstance(value, str):
        raise ValueError(
            f"dataset {spec.name!r}: field {name!r} must be a string, got {type(value).__name__}"
        )
    return value


def _answer_letter(spec: DatasetSpec, answer: Any, n_choices: int) -> str:
    try:
        return formats.answer_letter(answer, n_choices)
    except ValueError as exc:
        raise ValueError(f"dataset {spec.name!r}: field 'answer': {exc}") from None


def _format_multiple_choice(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    question = _get_str(spec, record, "question")
    choices = _get(spec, record, "choices")
    if isinstance(choices, str) or not isinstance(choices, Sequence) or not 0 < len(choices) <= 26:
        raise ValueError(
            f"dataset {spec.name!r}: field 'choices' must be a list of 1-26 strings, got {choices!r}"
        )
    prompt = formats.mc_prompt(question, choices)
    if with_answer:
        return f"{prompt} {_answer_letter(spec, _get(spec, record, 'answer'), len(choices))}"
    return prompt


def _format_qa(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    question = _get_str(spec, record, "question")
    if not with_answer:
        return formats.qa_prompt(question)
    return formats.qa_text(question, _get_str(spec, record, "answer"))


def _format_text(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str | None:
    text = _get_str(spec, record, "text")
    if spec.drop_headings and _HEADING.fullmatch(text):
        return None
    return formats.plain_text(text)


def _format_instruction(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    return _get_str(spec, record, "prompt")


def _format_code(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    prompt = _get_str(spec, record, "prompt")
    if not with_answer:
        return prompt
    return formats.code_text(prompt, _get_str(spec, record, "canonical_solution"))


def _format_conversation(spec: DatasetSpec, record: Mapping[str, Any], with_answer: bool) -> str:
    name = "turns" if "turns" in record else "prompt"
    turns = _get(spec, record, name)
    if not isinstance(turns, str) and (
        not isinstance(turns, Sequence) or not all(isinstance(t, str) for t in turns)
    ):
        raise ValueError(f"dataset {spec.name!r}: field {name!r} must be a string or a list of strings")
    return formats.conversation_text(turns)


_FORMATTERS: dict[str, Callable[[DatasetSpec, Mapping[str, Any], bool], str | None]] = {
    "multiple_choice": _format_multiple_choice,
    "qa": _format_qa,
    "text": _format_text,
    "instruction": _format_instruction,
    "code": _format_code,
    "conversation": _format_conversation,
    "classification": _format_text,
}


def format_record(
    dataset: str | DatasetSpec, record: Mapping[str, Any], *, with_answer: bool = True
) -> str | None:
    r"""Turn one raw record into the text fed (identically) to Base and SFT.

    The formats themselves live in :mod:`mbt.formats` (shared with training and evaluation); this function
    adds the dataset rules: field and type checks naming the dataset, ``min_chars`` and WikiText headings.
    Formats (authors' ``data_utils.format_sample``, fixed where noted):

    * ``multiple_choice`` (MMLU): ``"Question: {question}\nA) c0 B) c1 C) c2 D) c3\nAnswer: {letter}"``.
    * ``qa`` (GSM8K): ``"Question: {question}\nAnswer: {answer}"`` with the full rationale
      (``<<...>>`` annotations and ``"#### N"``).
    * ``text`` (WikiText) and ``classification`` (ToxiGen): the ``text`` field, stripped; WikiText section
      headings are dropped when ``spec.drop_headings``. The ToxiGen label is not used.
    * ``instruction`` (IFEval): the ``prompt`` field.
    * ``code`` (HumanEval): ``prompt + "\n" + canonical_solution``.
    * ``conversation`` (MT-Bench): the turns (``turns`` field, else ``prompt``) joined with
      :data:`TURN_SEPARATOR` (the authors passed the list to the tokenizer as a text pair).

    Args:
        dataset: Name or spec.
        record: One record with the Hub dataset's fields.
        with_answer: Include the gold answer (the paper does). When ``False``, MMLU and GSM8K texts end
            in ``"Answer:"`` and HumanEval gives the prompt only; other kinds have no answer to omit.

    Returns:
        The text, or ``None`` when the record is dropped (shorter than ``spec.min_chars`` after stripping,
        whitespace only, or a dropped heading).

    Raises:
        ValueError: When a needed field is missing or has the wrong type (the message names the dataset
            and the field).
    """
    spec = get_spec(dataset)
    record = _unwrap(spec, record)
    formatter = _FORMATTERS.get(spec.kind)
    if formatter is None:  # unreachable for validated specs; kept for hand-built subclasses
        raise ValueError(f"dataset {spec.name!r}: no formatter for kind {spec.kind!r}")
    text = formatter(spec, record, with_answer)
    if text is None or len(text.strip()) < max(spec.min_chars, 1):
        return None
    return text


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _check_split(spec: DatasetSpec, split: str) -> None:
    if spec.splits and split not in spec.splits:
        extra = " It has no training split." if spec.train_split is None and split == "train" else ""
        raise ValueError(
            f"dataset {spec.name!r} has no split {split!r}; available: {', '.join(spec.splits)}.{extra}"
        )


def _resolve_generator(spec: DatasetSpec) -> Callable[[str, int], list[dict[str, Any]]]:
    assert spec.generator is not None
    module_name, func_name = spec.generator.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ImportError(
                f"dataset {spec.name!r} is generated by {spec.generator!r}, but module {module_name!r} "
                f"is not available ({exc}); it is part of mbt's offline toy tasks (mbt.toy.corpus)"
            ) from exc
        raise
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ImportError(
            f"dataset {spec.name!r}: module {module_name!r} has no function {func_name!r} "
            f"(generator {spec.generator!r})"
        )
    return func


# -- local files ----------------------------------------------------------------------------------


def _file_suffix(path: Path) -> str:
    """The recognised suffix of a local data file (``".jsonl.gz"`` counts as one), else ``""``."""
    name = path.name.lower()
    return next((s for s in sorted(LOCAL_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def _decode(spec: DatasetSpec, path: Path, raw: bytes) -> str:
    """Decode a file's bytes as UTF-8; an error names the file, the offending byte and a fix."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start: exc.start + 4]
        raise ValueError(
            f"dataset {spec.name!r}: {path} is not UTF-8 text: byte {exc.start} ({bad!r}) cannot be decoded "
            f"({exc.reason}). It may be Latin-1 or Windows-1252; re-encode it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > fixed{_file_suffix(path)}`."
        ) from exc


def _read_text(spec: DatasetSpec, path: Path) -> str:
    """Read a text file (gunzipped when its name ends in ``.gz``) as UTF-8."""
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        import gzip

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"dataset {spec.name!r}: {path} is not a readable gzip file ({exc})") from exc
    return _decode(spec, path, raw)


def _read_json_lines(spec: DatasetSpec, path: Path, content: str) -> list[Any]:
    """Parse JSON Lines; blank lines are skipped, a bad line is named by file and line number."""
    records = []
    for lineno, line in enumerate(content.splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"dataset {spec.name!r}: {path}:{lineno} is not valid JSON: {exc}") from exc
    return records


def _read_file(spec: DatasetSpec, path: Path) -> Sequence[Mapping[str, Any]]:
    """Read one local data file (any of :data:`LOCAL_SUFFIXES`) into records."""
    suffix = _file_suffix(path)
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"dataset {spec.name!r}: {path} is not a readable Parquet file ({exc})") from exc
    if suffix == ".csv":
        import csv
        import io

        return list(csv.DictReader(io.StringIO(_read_text(spec, path), newline="")))
    if suffix in (".jsonl", ".jsonl.gz", ".json"):
        content = _read_text(spec, path)
        if suffix == ".json":
            try:
                data = json.loads(content)
            except json.JSONDecodeError:
                data = None  # JSON Lines under a .json name (as `Dataset.to_json` writes)
            if data is not None:
                if not isinstance(data, list):
                    raise ValueError(
                        f"dataset {spec.name!r}: {path} must hold a JSON list of records, "
                        f"got {type(data).__name__}"
                    )
                return data
        return _read_json_lines(spec, path, content)
    raise ValueError(
        f"dataset {spec.name!r}: unsupported file type {path.name!r}; use {', '.join(LOCAL_SUFFIXES)}, "
        "a folder of split files (train.jsonl, test.jsonl, ...) or a folder written by datasets' save_to_disk"
    )


def _split_files(folder: Path) -> dict[str, list[Path]]:
    """Split name -> data files of a folder of split files (``test.jsonl``, ``test-00000-of-00001.parquet``)."""
    found: dict[str, list[Path]] = {}
    for file in sorted(folder.iterdir()):
        suffix = _file_suffix(file)
        if not file.is_file() or not suffix:
            continue
        stem = file.name[: -len(suffix)]
        split = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
        found.setdefault(split, []).append(file)
    return found


def _local_target(spec: DatasetSpec, path: Path, split: str) -> tuple[str, list[Path], dict[str, Any]]:
    """Resolve which part of a local copy holds ``split``, without reading any data.

    Returns:
        ``(how, files, provenance)``: ``how`` is ``"file"`` (data files to read), ``"dataset_dict"`` or
        ``"dataset"`` (a ``save_to_disk`` folder to open); ``provenance`` has ``file`` and ``split_source``.
    """
    if not path.exists():
        raise FileNotFoundError(f"dataset {spec.name!r}: no such file or folder: {path}")
    if not path.is_dir():
        return "file", [path], {"file": str(path.resolve()), "split_source": f"single file, taken as split {split!r}"}
    if (path / "dataset_dict.json").exists():  # a saved DatasetDict: open only the requested split
        names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        if split not in names:
            raise ValueError(
                f"dataset {spec.name!r}: the saved DatasetDict at {path} has no split {split!r}; "
                f"available: {', '.join(names)}"
            )
        return "dataset_dict", [path / split], {"file": str((path / split).resolve()),
                                                "split_source": "DatasetDict split"}
    if (path / "state.json").exists():  # a saved Dataset: one split
        return "dataset", [path], {"file": str(path.resolve()),
                                   "split_source": f"saved Dataset, taken as split {split!r}"}
    files = _split_files(path)
    if split not in files:
        have = ", ".join(sorted(files)) or "none"
        raise ValueError(
            f"dataset {spec.name!r}: the folder {path} has no file for split {split!r} (expected "
            f"{split}.jsonl, {split}.parquet, ... or {split}-00000-of-00001.parquet); splits found: {have}"
        )
    return "file", files[split], {"file": ",".join(str(f.resolve()) for f in files[split]),
                                  "split_source": "split file"}


def _read_local(
    spec: DatasetSpec, path: Path, split: str
) -> tuple[Sequence[Mapping[str, Any]], dict[str, Any]]:
    """Read the requested split of a local copy; return the records and what was read (provenance)."""
    how, files, provenance = _local_target(spec, path, split)
    if how != "file":
        import datasets

        return datasets.load_from_disk(str(files[0])), provenance
    if len(files) == 1:
        return _read_file(spec, files[0]), provenance
    records: list[Mapping[str, Any]] = []
    for file in files:
        part = _read_file(spec, file)
        records.extend(part if isinstance(part, list) else part.to_list())  # type: ignore[attr-defined]
    return records, provenance


# -- the Hub --------------------------------------------------------------------------------------


class HubLoadError(RuntimeError):
    """A Hub dataset could not be loaded; subclasses name the cause. The original error is chained."""


class HubOfflineError(HubLoadError):
    """The Hub could not be reached (offline mode, no network) and the dataset is not in the local cache."""


class GatedDatasetError(HubLoadError):
    """The dataset is gated and this account has not been granted access (or no token was sent)."""


class HubNotFoundError(HubLoadError):
    """No dataset with this id (or no such revision) exists on the Hub, or it is private."""


class HubConfigError(HubLoadError, ValueError):
    """The dataset has no configuration of this name."""


class HubSplitError(HubLoadError, ValueError):
    """The configuration has no split of this name."""


_AVAILABLE = re.compile(
    r"(?:Available(?: splits| configs in the cache)?|available configs|Should be one of)\s*:?\s*(\[[^\]]*\])"
)


def _listed(message: str) -> str:
    """The ``[...]`` list of valid names in a ``datasets`` error message, as ``"a, b"``, or ``""``."""
    match = _AVAILABLE.search(message)
    if not match:
        return ""
    return ", ".join(re.findall(r"'([^']*)'", match.group(1)))


def _hub_cause(exc: BaseException) -> str:
    """Classify a ``load_dataset`` failure: offline, gated, revision, not_found, config, split or other."""
    from huggingface_hub import errors as hub_errors

    message = str(exc)
    if isinstance(exc, hub_errors.GatedRepoError) or re.search(r"\bgated\b", message, re.IGNORECASE):
        return "gated"
    if isinstance(exc, hub_errors.RevisionNotFoundError) or (
        type(exc).__name__ == "DatasetNotFoundError" and message.startswith("Revision ")
    ):
        return "revision"
    if isinstance(exc, (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError)) or (
        type(exc).__name__ == "DatasetNotFoundError"
    ):
        return "not_found"
    if isinstance(exc, (ConnectionError, TimeoutError, hub_errors.OfflineModeIsEnabled,
                        hub_errors.LocalEntryNotFoundError)):
        return "offline"
    if isinstance(exc, ValueError) and (
        "BuilderConfig" in message or "Config name is missing" in message  # building from the Hub
        or ("Couldn't find cache for" in message and "for config" in message)  # offline, from the cache
        or "configurations in the cache" in message
    ):
        return "config"
    if isinstance(exc, ValueError) and ("Unknown split" in message or "Bad split" in message):
        return "split"
    return "other"


def _hub_error(spec: DatasetSpec, split: str, exc: BaseException) -> HubLoadError:
    """The :class:`HubLoadError` subclass and message (with its remedy) for a ``load_dataset`` failure."""
    cause = _hub_cause(exc)
    config = f", config {spec.config!r}" if spec.config else ""
    what = f"could not load dataset {spec.name!r} ({spec.hub_id}{config}, split {split!r}, revision {spec.revision!r})"
    original = f"Original error: {type(exc).__name__}: {exc}"
    local = (
        f"pass path= to a local copy with the same fields ({', '.join(_KIND_FIELDS[spec.kind])}): a "
        f"{', '.join(LOCAL_SUFFIXES)} file, a folder of split files or a folder written by datasets' save_to_disk"
    )
    gated = (
        f" {spec.hub_id} is also gated: once online, accept its terms on the dataset page and log in "
        "(`hf auth login` or HF_TOKEN) before downloading."
        if spec.gated else ""
    )
    if cause == "offline":
        return HubOfflineError(
            f"{what}: the Hugging Face Hub could not be reached (offline? HF_HUB_OFFLINE=1?) and the dataset is "
            f"not in the local cache.{gated} Remedy: go online once to download it into the cache, or {local}. "
            f"{original}"
        )
    if cause == "gated":
        return GatedDatasetError(
            f"{what}: {spec.hub_id} is a gated dataset. To get access, open its page on the Hub, accept the "
            "terms of use (while logged in), then send a token of that account: `hf auth login` or the HF_TOKEN "
            f"environment variable. Or {local}. {original}"
        )
    if cause == "revision":
        return HubNotFoundError(
            f"{what}: revision {spec.revision!r} does not exist for {spec.hub_id}; pin an existing branch, tag "
            f"or commit in the spec's revision field. {original}"
        )
    if cause == "not_found":
        return HubNotFoundError(
            f"{what}: no dataset {spec.hub_id!r} on the Hub (or it is private): check the id, which must be "
            f"'owner/name'. {original}"
        )
    if cause == "config":
        valid = _listed(str(exc))
        listed = f"; valid configs: {valid}" if valid else ""
        return HubConfigError(f"{what}: {spec.hub_id} has no config {spec.config!r}{listed}. {original}")
    if cause == "split":
        valid = _listed(str(exc))
        listed = f"; valid splits: {valid}" if valid else ""
        return HubSplitError(f"{what}: the config has no split {split!r}{listed}. {original}")
    return HubLoadError(f"{what}. {original}")


_COMMIT = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")


def _resolved_revision(records: Any, requested: str | None) -> str | None:
    """The commit a loaded Hub dataset came from (from its cache paths or download URLs), else ``requested``."""
    places: list[str] = []
    for cache_file in getattr(records, "cache_files", None) or []:
        places.append(str(cache_file.get("filename", "")))
    info = getattr(records, "info", None)
    places.extend(str(url) for url in (getattr(info, "download_checksums", None) or {}))
    for place in places:
        match = _COMMIT.search(place)
        if match:
            return match.group(0)
    return requested


def _load_hub(spec: DatasetSpec, split: str) -> Sequence[Mapping[str, Any]]:
    """Load one split from the Hub (or the ``datasets`` cache) at ``spec.revision``.

    Only ``split`` is returned, but ``datasets`` still downloads and prepares every split of the config
    into its cache the first time (``load_dataset`` builds the whole config; e.g. MMLU ``all`` includes
    the 99,842-question ``auxiliary_train``).
    """
    import datasets

    try:
        return datasets.load_dataset(spec.hub_id, spec.config, split=split, revision=spec.revision)
    except Exception as exc:  # classified by _hub_error; the original is chained
        raise _hub_error(spec, split, exc) from exc


def _validate(spec: DatasetSpec, records: Sequence[Mapping[str, Any]], source: str) -> None:
    """Check that records carry the fields of the schema (Arrow datasets: the first row stands for all)."""
    if len(records) == 0:
        raise ValueError(f"dataset {spec.name!r}: {source} holds no records (empty file or split)")
    rows = records if isinstance(records, list) else [records[0]]
    for i, record in enumerate(rows):
        if not isinstance(record, Mapping):
            raise ValueError(
                f"dataset {spec.name!r}: record {i} of {source} is a {type(record).__name__}, not a mapping"
            )
        missing = _missing_field(spec, _unwrap(spec, record))
        if missing is not None:
            raise _field_error(spec, missing, record.keys(), where=f"record {i} of {source}")


def _load_source(
    spec: DatasetSpec, split: str, path: str | Path | None, data_seed: int
) -> tuple[Sequence[Mapping[str, Any]], str, dict[str, Any]]:
    """Load records (a list or an Arrow dataset, random access), a provenance string and record."""
    provenance: dict[str, Any] = {"dataset": spec.name, "split": split}
    if path is not None:
        path = Path(path)
        records, read = _read_local(spec, path, split)
        source = f"file:{path}"
        provenance.update(kind="file", path=str(path), **read)
    elif spec.is_generated:
        _check_split(spec, split)
        records = _resolve_generator(spec)(split, data_seed)
        if not isinstance(records, list):
            records = list(records)
        source = f"generator:{spec.generator}(split={split!r}, seed={data_seed})"
        provenance.update(kind="generator", generator=spec.generator, data_seed=data_seed)
    else:
        _check_split(spec, split)
        records = _load_hub(spec, split)
        config = f"/{spec.config}" if spec.config else ""
        source = f"hub:{spec.hub_id}{config}@{spec.revision}:{split}"
        resolved = _resolved_revision(records, spec.revision)
        provenance.update(kind="hub", hub_id=spec.hub_id, config=spec.config, revision=spec.revision,
                          resolved_revision=resolved)
        if spec.revision and _COMMIT.fullmatch(spec.revision) and resolved != spec.revision:
            # offline, datasets loads the latest cached commit whatever revision was asked
            raise HubNotFoundError(
                f"dataset {spec.name!r} ({spec.hub_id}) is pinned to commit {spec.revision} but the data loaded "
                f"came from {resolved} (offline, datasets reuses the latest cached commit); download the pinned "
                "revision or pass path= to a copy of it"
            )
    _validate(spec, records, source)
    provenance["n_records"] = len(records)
    return records, source, provenance


def load_records(
    dataset: str | DatasetSpec,
    *,
    split: str | None = None,
    path: str | Path | None = None,
    data_seed: int = 0,
) -> list[dict[str, Any]]:
    """Load the raw records of one split.

    Sources, in order:

    * ``path``: a local copy in the Hub dataset's schema. A file (``.jsonl``, ``.jsonl.gz``, ``.json`` list,
      ``.parquet``, ``.csv``; UTF-8) is taken as the requested split. A folder is either written by
      ``datasets``' ``save_to_disk`` (a ``DatasetDict`` gives the requested split, a ``Dataset`` is taken as
      it) or holds one file per split (``train.jsonl``, ``test.parquet``, or shards
      ``test-00000-of-00001.parquet`` as on the Hub); only the requested split is read.
    * For generated datasets, the generator ``fn(split, data_seed)``.
    * Otherwise ``datasets.load_dataset(hub_id, config, split=split, revision=spec.revision)``; see
      :func:`_load_hub` for what ``datasets`` prepares besides the split.

    Args:
        dataset: Name or spec.
        split: Split name; defaults to ``spec.split`` (the analysis split). See :func:`training_split`.
        path: Local copy to read instead of the Hub or the generator.
        data_seed: Seed passed to a generator (ignored otherwise). It fixes the data, not the sample.

    Returns:
        The records as plain dicts, in source order.

    Raises:
        ValueError: Unknown dataset, unknown split, unsupported or undecodable file, no records, or records
            missing a field of the schema (the message names the file and the field).
        HubLoadError: The Hub dataset could not be loaded; the subclass names the cause
            (:class:`HubOfflineError`, :class:`GatedDatasetError`, :class:`HubNotFoundError`,
            :class:`HubConfigError`, :class:`HubSplitError`), the original error is chained.
        ImportError: The generator module of a generated dataset is missing.
    """
    spec = get_spec(dataset)
    records, _, _ = _load_source(spec, split or spec.split, path, data_seed)
    if isinstance(records, list):
        return [dict(r) for r in records]
    return records.to_list()  # type: ignore[attr-defined]


def source_of(
    dataset: str | DatasetSpec,
    *,
    split: str | None = None,
    path: str | Path | None = None,
    data_seed: int = 0,
) -> dict[str, Any]:
    """Describe the data :func:`load_records` would read for a split, without reading it.

    Use it with :func:`check_distinct_sources` before a run loads anything, e.g. a fine-tuning sweep that
    takes one ``path`` for both its training and its test split.

    Args:
        dataset: Name or spec.
        split: Split; defaults to the analysis split.
        path: Local copy (see :func:`load_records`).
        data_seed: Generator seed for generated datasets.

    Returns:
        A provenance mapping like :attr:`TextSample.provenance` (without counts): ``kind``, ``dataset``,
        ``split`` and, for files, ``file`` and ``split_source``; for the Hub, ``hub_id``, ``config`` and
        ``revision``; for generators, ``generator`` and ``data_seed``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Unknown dataset or split (a folder without a file for the split, say).
    """
    spec = get_spec(dataset)
    split = split or spec.split
    out: dict[str, Any] = {"dataset": spec.name, "split": split}
    if path is not None:
        _, _, read = _local_target(spec, Path(path), split)
        out.update(kind="file", path=str(path), **read)
    elif spec.is_generated:
        _check_split(spec, split)
        out.update(kind="generator", generator=spec.generator, data_seed=data_seed)
    else:
        _check_split(spec, split)
        out.update(kind="hub", hub_id=spec.hub_id, config=spec.config, revision=spec.revision)
    return out


def check_distinct_sources(
    train: TextSample | Mapping[str, Any] | str | Path, test: TextSample | Mapping[str, Any] | str | Path
) -> None:
    """Refuse one data source used as both the training and the test split of a run.

    Two sources are the same when they read the same file (a single local file is taken as whatever split is
    asked, so ``path=`` with one file for both splits is caught), the same split of the same saved
    ``DatasetDict`` or Hub dataset (at the same requested revision), or the same generator split and seed.
    Different split files of one folder are distinct.

    Args:
        train: The training data: a :class:`TextSample`, a :func:`source_of` mapping or a local file path.
        test: The test data, in any of the same forms.

    Raises:
        ValueError: When both name the same data; the message says what is shared.
        TypeError: For another kind of argument.
    """

    def identity(item: TextSample | Mapping[str, Any] | str | Path) -> tuple[str, ...]:
        if isinstance(item, (str, Path)):
            return ("file", str(Path(item).resolve()))
        if isinstance(item, TextSample):
            prov: Mapping[str, Any] = {**item.provenance, "split": item.split}
            if not item.provenance:
                return ("source", item.source, item.split)
        elif isinstance(item, Mapping):
            prov = item
        else:
            raise TypeError(f"expected a TextSample, a source_of mapping or a path, got {type(item).__name__}")
        kind = prov.get("kind")
        if kind == "file":
            return ("file", str(prov["file"]))
        if kind == "hub":
            return ("hub", str(prov["hub_id"]), str(prov.get("config")), str(prov.get("revision")),
                    str(prov["split"]))
        if kind == "generator":
            return ("generator", str(prov["generator"]), str(prov.get("data_seed")), str(prov["split"]))
        raise ValueError(f"cannot tell what data {dict(prov)!r} describes (no known 'kind')")

    a, b = identity(train), identity(test)
    if a == b:
        raise ValueError(
            f"the training and the test data are the same source ({':'.join(a)}); a model fine-tuned on its "
            "test split is not evaluated on held-out data. Give separate split files (train.jsonl, test.jsonl), "
            "a DatasetDict with both splits, or different splits of the registered dataset."
        )


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_indices(n_available: int, n: int, seed: int) -> list[int]:
    """Return the authors' seeded sample of record indices.

    Equal to ``random.Random(seed).sample(range(n_available), min(n, n_available))``, which is what the
    released code computes after ``random.seed(seed)`` (seed 42), in the same (random) order.

    Args:
        n_available: Number of records in the split.
        n: Number of indices wanted.
        seed: Seed.

    Returns:
        ``min(n, n_available)`` distinct indices.
    """
    if n_available < 0 or n < 0:
        raise ValueError(f"n_available and n must be >= 0, got {n_available} and {n}")
    return random.Random(seed).sample(range(n_available), min(n, n_available))


def seeded_order(n_available: int, n: int, seed: int) -> Iterator[int]:
    """Yield a seeded permutation of ``range(n_available)`` whose first entries are the authors' sample.

    The first ``min(n, n_available)`` indices equal :func:`sample_indices` ``(n_available, n, seed)``; the
    remaining indices follow in an order shuffled by the same generator. :func:`load_texts` walks this order
    and skips dropped records, so unusable records are replaced rather than leaving gaps. Because Python's
    ``random.sample`` switches algorithm with the sample size, the permutation depends on ``n``: the
    selection for ``n=50`` need not be a prefix of the selection for ``n=200`` (true of the authors' code
    too; :class:`TextSample` takes its token-level subset as a prefix of the pooled sample instead).

    Args:
        n_available: Number of records.
        n: Size of the head that must match :func:`sample_indices`.
        seed: Seed.

    Yields:
        Record indices, each once.
    """
    if n_available < 0 or n < 0:
        raise ValueError(f"n_available and n must be >= 0, got {n_available} and {n}")
    rng = random.Random(seed)
    head = rng.sample(range(n_available), min(n, n_available))
    yield from head
    if len(head) < n_available:
        chosen = set(head)
        rest = [i for i in range(n_available) if i not in chosen]
        rng.shuffle(rest)
        yield from rest


def _check_count(name: str, value: Any, minimum: int) -> None:
    """Raise unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _select(
    spec: DatasetSpec, records: Sequence[Mapping[str, Any]], n: int, seed: int, with_answer: bool
) -> tuple[list[str], list[int]]:
    texts: list[str] = []
    indices: list[int] = []
    if n <= 0:
        return texts, indices
    for index in seeded_order(len(records), n, seed):
        text = format_record(spec, records[index], with_answer=with_answer)
        if text is not None:
            texts.append(text)
            indices.append(index)
            if len(texts) == n:
                break
    return texts, indices


def load_texts(
    dataset: str | DatasetSpec,
    *,
    n: int,
    seed: int = 0,
    split: str | None = None,
    path: str | Path | None = None,
    with_answer: bool = True,
    data_seed: int = 0,
    allow_fewer: bool = False,
) -> list[str]:
    """Load ``n`` formatted texts of a seeded random sample.

    Records are visited in :func:`seeded_order` (its head is the authors' ``random.sample`` selection);
    dropped records (see :func:`format_record`) are skipped and replaced by the next records of the same
    permutation. The authors instead dropped them after sampling and analysed fewer texts. Use
    ``seed=PAPER_SEED`` for the paper's selection.

    Args:
        dataset: Name or spec (see :data:`DATASETS`).
        n: Number of texts wanted (an int >= 1).
        seed: Sampling seed.
        split: Split; defaults to the analysis split ``spec.split``.
        path: Local copy to read instead of the Hub (see :func:`load_records`).
        with_answer: Include gold answers (MMLU, GSM8K, HumanEval); the paper does.
        data_seed: Generator seed for generated (``toy-*``) datasets.
        allow_fewer: Return every usable text when the split has fewer than ``n`` (the paper's
            "up to n": MT-Bench has 80 prompts). Without it, that is an error.

    Returns:
        The texts, in sampling order.

    Raises:
        ValueError: When the split has fewer than ``n`` usable texts and ``allow_fewer`` is false (the
            message gives the available count), or for a bad ``n`` (see also :func:`load_records`).
    """
    _check_count("n", n, 1)
    return list(load_sample(
        dataset, n_pooled=n, n_token=0, seed=seed, split=split, path=path, with_answer=with_answer,
        data_seed=data_seed, allow_fewer=allow_fewer,
    ).texts)


@dataclass(frozen=True)
class TextSample:
    """A seeded sample of one dataset split: pooled texts and their token-level prefix.

    Attributes:
        dataset: Dataset name.
        split: Split the records came from.
        seed: Sampling seed.
        texts: The pooled sample (all texts, in sampling order).
        n_token: Size of the token-level subset, the first ``n_token`` texts (token-level ⊂ pooled, as in
            the authors' code). ``0`` for pooled-only datasets.
        indices: Record index in the source split of each text.
        granularity: The dataset's granularity (``"token"`` or ``"pooled"``).
        source: Provenance in one string (``"hub:openai/gsm8k/main@main:test"``, ``"file:..."``,
            ``"generator:..."``).
        revision: For Hub data, the commit actually loaded when it could be read from the ``datasets``
            cache, else the requested revision; ``None`` for files and generators.
        provenance: What was read: ``kind`` (``"hub"``, ``"file"``, ``"generator"``), ``dataset``,
            ``split``, ``n_records``, ``n_requested``; Hub: ``hub_id``, ``config``, ``revision``
            (requested), ``resolved_revision``; files: ``path``, ``file`` (what was read) and
            ``split_source`` (how the split was found, e.g. ``"single file, taken as split 'test'"``);
            generators: ``generator``, ``data_seed``.
    """

    dataset: str
    split: str
    seed: int
    texts: list[str]
    n_token: int
    indices: list[int]
    granularity: str = "token"
    source: str = ""
    revision: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.texts):
            raise ValueError(f"{len(self.indices)} indices for {len(self.texts)} texts")
        if not 0 <= self.n_token <= len(self.texts):
            raise ValueError(f"n_token must be in [0, {len(self.texts)}], got {self.n_token}")

    @property
    def token_texts(self) -> list[str]:
        """The token-level subset: the first ``n_token`` texts of the pooled sample."""
        return list(self.texts[: self.n_token])

    @property
    def fingerprint(self) -> str:
        """:func:`fingerprint` of the pooled texts."""
        return fingerprint(self.texts)


def load_sample(
    dataset: str | DatasetSpec,
    *,
    n_pooled: int = 1000,
    n_token: int = 100,
    seed: int = 0,
    split: str | None = None,
    path: str | Path | None = None,
    with_answer: bool = True,
    data_seed: int = 0,
    allow_fewer: bool = False,
) -> TextSample:
    """Load the pooled sample of a dataset and mark its token-level subset.

    The pooled sample is ``n_pooled`` texts (see :func:`load_texts`); the token-level subset is its first
    ``min(n_token, len(texts))`` texts, as the authors did (``sample_id < N_TOKEN``). For pooled-only
    datasets (``granularity == "pooled"``: HumanEval, MT-Bench, ToxiGen) ``n_token`` is set to 0 whatever
    was asked, so the same sizes can be used for every dataset (the authors stored no token-level states
    for them either). Defaults are the paper text's sizes; see :data:`PAPER_SAMPLE_SIZES`. The sizes are
    checked before anything is loaded.

    Args:
        dataset: Name or spec.
        n_pooled: Size of the pooled sample (an int >= 1).
        n_token: Size of the token-level subset (an int >= 0; clamped to the pooled size; 0 for pooled-only
            datasets).
        seed: Sampling seed.
        split: Split; defaults to the analysis split.
        path: Local copy instead of the Hub (see :func:`load_records`).
        with_answer: Include gold answers (see :func:`format_record`).
        data_seed: Generator seed for generated datasets.
        allow_fewer: Accept a split with fewer than ``n_pooled`` usable texts and return them all (the
            paper's sizes on HumanEval, IFEval, MT-Bench). Without it, that is an error.

    Returns:
        The sample, with its provenance.

    Raises:
        TypeError: When a size is not an int.
        ValueError: For ``n_pooled < 1`` or ``n_token < 0``, or when the split has fewer than ``n_pooled``
            usable texts and ``allow_fewer`` is false (the message gives the available count).
    """
    _check_count("n_pooled", n_pooled, 1)
    _check_count("n_token", n_token, 0)
    spec = get_spec(dataset)
    split = split or spec.split
    records, source, provenance = _load_source(spec, split, path, data_seed)
    texts, indices = _select(spec, records, n_pooled, seed, with_answer)
    if len(texts) < n_pooled and not allow_fewer:
        dropped = len(records) - len(texts)
        raise ValueError(
            f"dataset {spec.name!r} split {split!r} ({source}) has only {len(texts)} usable texts "
            f"({len(records)} records, {dropped} dropped by the format rules), fewer than the "
            f"n_pooled={n_pooled} asked; ask for at most {len(texts)} or pass allow_fewer=True to take all of them"
        )
    provenance["n_requested"] = n_pooled
    n_tok = min(n_token, len(texts)) if spec.token_level else 0
    return TextSample(
        dataset=spec.name, split=split, seed=seed, texts=texts, n_token=n_tok, indices=indices,
        granularity=spec.granularity, source=source,
        revision=provenance.get("resolved_revision") if provenance.get("kind") == "hub" else None,
        provenance=provenance,
    )


def fingerprint(texts: Sequence[str]) -> str:
    """Return a SHA-256 hex digest identifying an ordered list of texts (for result-cache keys).

    The same as :func:`mbt.results.text_fingerprint`: the texts are hashed as a JSON list, so
    boundaries between texts matter (``["ab", "c"]`` and ``["a", "bc"]`` differ) and so does order.

    Args:
        texts: The texts.

    Returns:
        64 hexadecimal characters.

    Raises:
        TypeError: For a single string or a non-string element.
    """
    return text_fingerprint(texts)

