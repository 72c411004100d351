r"""Seeded samples of texts and where they came from.

The paper's sampling (a seeded permutation, unusable records skipped), :class:`TextSample` with its
provenance, :func:`source_of` (what a load would read) and :func:`check_distinct_sources`, which refuses
one source used for training and testing.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbt.data.records import format_record
from mbt.data.registry import DatasetSpec, get_spec
from mbt.data.sources import _check_split, _load_source, _local_target
from mbt.results import text_fingerprint


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
        """:func:`mbt.results.text_fingerprint` of the pooled texts."""
        return text_fingerprint(self.texts)


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
