"""Seeded samples, their sizes and one source per split (mbt.data.sampling)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from data_fakes import HUMANEVAL, MMLU, WIKITEXT, WIKITEXT_USABLE, _gsm, write_jsonl  # noqa: F401

from mbt import data
from mbt.data import (
    PAPER_SAMPLE_SIZES,
    TextSample,
    format_record,
    load_records,
    load_sample,
    load_texts,
    sample_indices,
    seeded_order,
)
from mbt.results import text_fingerprint


def test_sample_indices_matches_authors_random_sample() -> None:
    random.seed(42)
    authors = random.sample(range(1319), 200)
    assert sample_indices(1319, 200, 42) == authors
    assert sorted(sample_indices(5, 10, 0)) == [0, 1, 2, 3, 4]
    assert sample_indices(10, 0, 0) == []
    with pytest.raises(ValueError):
        sample_indices(10, -1, 0)


@pytest.mark.parametrize(("n_available", "n"), [(1319, 200), (30, 10), (8, 3), (5, 9)])
def test_seeded_order_is_a_permutation_with_the_authors_head(n_available: int, n: int) -> None:
    order = list(seeded_order(n_available, n, 42))
    assert sorted(order) == list(range(n_available))
    assert order[: min(n, n_available)] == sample_indices(n_available, n, 42)


def test_same_seed_same_texts_different_seed_different(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mmlu.jsonl", MMLU)
    a = load_texts("mmlu", n=10, seed=1, path=path)
    assert a == load_texts("mmlu", n=10, seed=1, path=path)
    assert len(a) == 10 and len(set(a)) == 10
    assert a != load_texts("mmlu", n=10, seed=2, path=path)
    expected = [format_record("mmlu", MMLU[i]) for i in sample_indices(len(MMLU), 10, 1)]
    assert a == expected


def test_n_larger_than_available_gives_all_usable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wiki.jsonl", WIKITEXT)
    texts = load_texts("wikitext", n=100, seed=0, path=path, allow_fewer=True)
    assert sorted(texts) == sorted(format_record("wikitext", WIKITEXT[i]) for i in WIKITEXT_USABLE)


def test_dropped_records_are_replaced_from_the_same_permutation(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "wiki.jsonl", WIKITEXT)
    for seed in range(20):
        sample = load_sample("wikitext", n_pooled=2, n_token=2, seed=seed, path=path)
        assert len(sample.texts) == 2
        usable_order = [i for i in seeded_order(len(WIKITEXT), 2, seed) if i in WIKITEXT_USABLE]
        assert sample.indices == usable_order[:2]
        assert sample.texts == [format_record("wikitext", WIKITEXT[i]) for i in sample.indices]


def test_load_sample_token_texts_are_prefix_of_pooled(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mmlu.jsonl", MMLU)
    sample = load_sample("mmlu", n_pooled=20, n_token=5, seed=42, path=path)
    assert isinstance(sample, TextSample)
    assert (sample.dataset, sample.split, sample.seed, sample.granularity) == ("mmlu", "test", 42, "token")
    assert len(sample.texts) == 20 and sample.n_token == 5
    assert sample.token_texts == sample.texts[:5]
    assert sample.indices == sample_indices(len(MMLU), 20, 42)
    assert sample.texts == load_texts("mmlu", n=20, seed=42, path=path)
    assert sample.source == f"file:{path}"
    assert sample.fingerprint == text_fingerprint(sample.texts)
    clamped = load_sample("mmlu", n_pooled=4, n_token=100, seed=42, path=path)
    assert clamped.n_token == 4 and clamped.token_texts == clamped.texts


def test_pooled_only_dataset_has_no_token_subset(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "he.jsonl", [HUMANEVAL] * 3)
    sample = load_sample("humaneval", n_pooled=10, n_token=50, path=path, allow_fewer=True)
    assert len(sample.texts) == 3 and sample.n_token == 0 and sample.token_texts == []
    assert sample.granularity == "pooled"


def test_paper_sample_sizes() -> None:
    assert PAPER_SAMPLE_SIZES == {"paper_text": (1000, 100), "authors_code": (200, 50)}
    assert data.PAPER_SEED == 42


def test_text_sample_validates() -> None:
    with pytest.raises(ValueError):
        TextSample("x", "test", 0, ["a"], 2, [0])
    with pytest.raises(ValueError):
        TextSample("x", "test", 0, ["a"], 1, [0, 1])


def test_check_distinct_sources(tmp_path: Path, no_hub: None, fake_toydata: list) -> None:
    import datasets

    single = write_jsonl(tmp_path / "all.jsonl", [_gsm(i) for i in range(4)])
    train = load_sample("gsm8k", n_pooled=2, split="train", path=single)
    test = load_sample("gsm8k", n_pooled=2, split="test", path=single)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(train, test)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(str(single), test)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(tmp_path / "." / "all.jsonl", single)

    folder = tmp_path / "split"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [_gsm(i) for i in range(4)])
    write_jsonl(folder / "test.jsonl", [_gsm(i) for i in range(10, 14)])
    data.check_distinct_sources(load_sample("gsm8k", n_pooled=2, split="train", path=folder),
                                load_sample("gsm8k", n_pooled=2, path=folder))

    datasets.DatasetDict({"train": datasets.Dataset.from_list([_gsm(1)]),
                          "test": datasets.Dataset.from_list([_gsm(2)])}).save_to_disk(str(tmp_path / "dd"))
    dd_train = load_sample("gsm8k", n_pooled=1, split="train", path=tmp_path / "dd")
    dd_test = load_sample("gsm8k", n_pooled=1, path=tmp_path / "dd")
    data.check_distinct_sources(dd_train, dd_test)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(dd_test, load_sample("gsm8k", n_pooled=1, path=tmp_path / "dd"))

    data.check_distinct_sources(load_sample("toy-math", n_pooled=2, split="train"), load_sample("toy-math", n_pooled=2))
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(load_sample("toy-math", n_pooled=2), load_sample("toy-math", n_pooled=3, seed=9))
    with pytest.raises(TypeError):
        data.check_distinct_sources(["a"], single)  # type: ignore[arg-type]


def test_check_distinct_sources_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([_gsm(1), _gsm(2)]))
    test = load_sample("gsm8k", n_pooled=2)
    data.check_distinct_sources(load_sample("gsm8k", n_pooled=2, split="train"), test)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(load_sample("gsm8k", n_pooled=1, seed=3), test)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_is_an_error_naming_it(content: str, tmp_path: Path, no_hub: None) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.jsonl holds no records"):
        load_texts("gsm8k", n=1, path=path)
    with pytest.raises(ValueError, match="holds no records"):
        load_records("gsm8k", path=path)


def test_more_texts_than_available_is_an_error_unless_allowed(tmp_path: Path, no_hub: None) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [_gsm(i) for i in range(500)])
    with pytest.raises(ValueError, match=r"only 500 usable texts.*n_pooled=100000.*allow_fewer=True"):
        load_sample("gsm8k", n_pooled=100_000, path=path)
    sample = load_sample("gsm8k", n_pooled=100_000, path=path, allow_fewer=True)
    assert len(sample.texts) == 500 and sample.provenance["n_requested"] == 100_000
    assert len(load_sample("gsm8k", n_pooled=500, path=path).texts) == 500  # exactly enough is fine
    wiki = write_jsonl(tmp_path / "w.jsonl", WIKITEXT)
    with pytest.raises(ValueError, match=r"only 3 usable texts \(8 records, 5 dropped"):
        load_texts("wikitext", n=4, path=wiki)


def test_undecodable_input_names_the_file_and_encoding(tmp_path: Path, no_hub: None) -> None:
    import gzip

    latin = json.dumps({"question": "Combien coûte un café ?", "answer": "#### 2"}, ensure_ascii=False) + "\n"
    for name, payload in (("latin.jsonl", latin.encode("latin-1")),
                          ("latin.jsonl.gz", gzip.compress(latin.encode("latin-1")))):
        path = tmp_path / name
        path.write_bytes(payload)
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')} is not UTF-8.*Latin-1"):
            load_texts("gsm8k", n=1, path=path)
    csv_path = tmp_path / "latin.csv"
    csv_path.write_bytes("question,answer\nCoûte ?,#### 2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin[.]csv is not UTF-8"):
        load_records("gsm8k", path=csv_path)
    bad_gz = tmp_path / "bad.jsonl.gz"
    bad_gz.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.jsonl.gz is not a readable gzip file"):
        load_records("gsm8k", path=bad_gz)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_pooled": 0}, ValueError, "n_pooled must be >= 1"),
        ({"n_pooled": -5}, ValueError, "n_pooled must be >= 1"),
        ({"n_pooled": 2.0}, TypeError, "n_pooled must be an int"),
        ({"n_pooled": True}, TypeError, "n_pooled must be an int"),
        ({"n_pooled": "10"}, TypeError, "n_pooled must be an int"),
        ({"n_token": -1}, ValueError, "n_token must be >= 0"),
        ({"n_token": 1.5}, TypeError, "n_token must be an int"),
    ],
)
def test_sizes_are_validated_before_loading(kwargs: dict, error: type, match: str, tmp_path: Path,
                                            no_hub: None) -> None:
    missing = tmp_path / "absent.jsonl"  # loading would raise FileNotFoundError
    with pytest.raises(error, match=match):
        load_sample("gsm8k", path=missing, **kwargs)


@pytest.mark.parametrize(("n", "error"), [(0, ValueError), (-1, ValueError), (3.0, TypeError), (None, TypeError)])
def test_load_texts_validates_n_before_loading(n: Any, error: type, tmp_path: Path, no_hub: None) -> None:
    with pytest.raises(error, match="n must be"):
        load_texts("gsm8k", n=n, path=tmp_path / "absent.jsonl")


def test_source_of_lets_a_run_check_its_splits_before_loading(tmp_path: Path, no_hub: None) -> None:
    single = write_jsonl(tmp_path / "all.jsonl", [_gsm(i) for i in range(4)])
    train, test = (data.source_of("gsm8k", split=s, path=single) for s in ("train", "test"))
    assert train["file"] == test["file"] == str(single.resolve())
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(train, test)

    folder = tmp_path / "split"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [_gsm(1)])
    write_jsonl(folder / "test.jsonl", [_gsm(2)])
    train, test = (data.source_of("gsm8k", split=s, path=folder) for s in ("train", "test"))
    assert test["file"] == str((folder / "test.jsonl").resolve()) and test["split_source"] == "split file"
    data.check_distinct_sources(train, test)
    loaded = load_sample("gsm8k", n_pooled=1, path=folder)
    assert {k: loaded.provenance[k] for k in test} == test  # source_of describes what loading reads
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(loaded, test)
    with pytest.raises(ValueError, match="no file for split 'dev'"):
        data.source_of("gsm8k", split="dev", path=folder)

    hub_train, hub_test = data.source_of("mmlu", split="auxiliary_train"), data.source_of("mmlu")
    assert hub_test == {"dataset": "mmlu", "split": "test", "kind": "hub", "hub_id": "cais/mmlu", "config": "all",
                        "revision": "main"}
    data.check_distinct_sources(hub_train, hub_test)
    with pytest.raises(ValueError, match="same source"):
        data.check_distinct_sources(hub_test, data.source_of("mmlu", split="test"))
    with pytest.raises(ValueError, match="no split 'train'"):
        data.source_of("humaneval", split="train")
