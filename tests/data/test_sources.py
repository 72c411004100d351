"""Reading records: local files, the Hub (never reached), generated toy data, revisions (mbt.data.sources)."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from data_fakes import GSM8K, MMLU, MT_BENCH, TOXIGEN, _gsm, write_jsonl  # noqa: F401

from mbt import data
from mbt.data import (
    DATASETS,
    DatasetSpec,
    format_record,
    load_records,
    load_sample,
    load_texts,
)


def write_json(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path

def write_parquet(path: Path, records: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)
    return path

def write_disk(path: Path, records: list[dict]) -> Path:
    import datasets

    datasets.Dataset.from_list(records).save_to_disk(str(path))
    return path

WRITERS = {
    "jsonl": lambda tmp, recs: write_jsonl(tmp / "d.jsonl", recs),
    "json": lambda tmp, recs: write_json(tmp / "d.json", recs),
    "parquet": lambda tmp, recs: write_parquet(tmp / "d.parquet", recs),
    "save_to_disk": lambda tmp, recs: write_disk(tmp / "saved", recs),
}

def _http_response(status: int) -> Any:
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", "http://localhost/api/datasets/x"))

def _hub_exceptions() -> dict[str, tuple[BaseException, type[Exception], tuple[str, ...]]]:
    """cause -> (what load_dataset raises, the error mbt must raise, phrases its message must hold)."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import errors as hub_errors

    return {
        "offline-datasets": (ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)"),
                             data.HubOfflineError, ("could not be reached", "path=", "go online")),
        "offline-hub": (hub_errors.OfflineModeIsEnabled("Cannot reach the Hub: offline mode is enabled."),
                        data.HubOfflineError, ("could not be reached", "path=")),
        "gated-datasets": (DatasetNotFoundError("Dataset 'openai/gsm8k' is a gated dataset on the Hub. You must be "
                                                "authenticated to access it."),
                           data.GatedDatasetError, ("gated", "accept the terms", "HF_TOKEN")),
        "gated-hub": (hub_errors.GatedRepoError("403 Client Error. Cannot access gated repo.",
                                                response=_http_response(403)),
                      data.GatedDatasetError, ("gated", "accept the terms", "hf auth login")),
        "missing-datasets": (DatasetNotFoundError("Dataset 'openai/gsm8k' doesn't exist on the Hub or cannot be "
                                                  "accessed."),
                             data.HubNotFoundError, ("no dataset 'openai/gsm8k'", "owner/name")),
        "missing-hub": (hub_errors.RepositoryNotFoundError("404 Client Error. Repository Not Found",
                                                           response=_http_response(404)),
                        data.HubNotFoundError, ("no dataset",)),
        "bad-id": (hub_errors.HFValidationError("Repo id must use alphanumeric chars"),
                   data.HubNotFoundError, ("no dataset", "owner/name")),
        "revision": (DatasetNotFoundError("Revision 'main' doesn't exist for dataset 'openai/gsm8k' on the Hub."),
                     data.HubNotFoundError, ("revision 'main' does not exist",)),
        "config": (ValueError("BuilderConfig 'main' not found. Available: ['main2', 'socratic']"),
                   data.HubConfigError, ("no config 'main'", "valid configs: main2, socratic")),
        "config-cache": (ValueError("Couldn't find cache for openai/gsm8k for config 'main'\n"
                                    "Available configs in the cache: ['socratic']"),
                         data.HubConfigError, ("no config 'main'", "valid configs: socratic")),
        "split": (ValueError('Unknown split "test". Should be one of [\'train\', \'validation\'].'),
                  data.HubSplitError, ("no split 'test'", "valid splits: train, validation")),
        "bad-split": (ValueError("Bad split: test. Available splits: ['train']"),
                      data.HubSplitError, ("no split 'test'", "valid splits: train")),
        "other": (OSError("No space left on device"), data.HubLoadError, ("No space left on device",)),
    }


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_local_files_round_trip(kind: str, tmp_path: Path, no_hub: None) -> None:
    path = WRITERS[kind](tmp_path, MMLU)
    records = load_records("mmlu", path=path)
    assert [format_record("mmlu", r) for r in records] == [format_record("mmlu", r) for r in MMLU]
    reference = write_jsonl(tmp_path / "ref.jsonl", MMLU)
    assert load_texts("mmlu", n=7, seed=3, path=path) == load_texts("mmlu", n=7, seed=3, path=reference)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_local_files_mt_bench_list_field(kind: str, tmp_path: Path, no_hub: None) -> None:
    path = WRITERS[kind](tmp_path, [MT_BENCH, MT_BENCH])
    texts = load_texts("mt_bench", n=2, path=path)
    assert len(texts) == 2
    assert all(MT_BENCH["prompt"][0] in t and MT_BENCH["prompt"][1] in t for t in texts)


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_local_file_missing_field(kind: str, tmp_path: Path, no_hub: None) -> None:
    path = WRITERS[kind](tmp_path, [{"question": "Q?", "choices": ["a", "b"]}])
    with pytest.raises(ValueError, match="no field 'answer'"):
        load_records("mmlu", path=path)
    with pytest.raises(ValueError, match="no field 'answer'"):
        load_texts("mmlu", n=1, path=path)


def test_json_lines_under_json_name(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "gsm8k.json", [GSM8K, GSM8K])
    assert load_records("gsm8k", path=path) == [GSM8K, GSM8K]


def test_local_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "d.txt"
    bad.write_text("question,answer\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_records("gsm8k", path=bad)
    with pytest.raises(FileNotFoundError):
        load_records("gsm8k", path=tmp_path / "absent.jsonl")
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"question": "Q", "answer": "A"}))
    with pytest.raises(ValueError, match="JSON list"):
        load_records("gsm8k", path=obj)


def test_save_to_disk_dataset_dict_uses_split(tmp_path: Path, no_hub: None) -> None:
    import datasets

    dd = datasets.DatasetDict({
        "test": datasets.Dataset.from_list(TOXIGEN),
        "train": datasets.Dataset.from_list([{**TOXIGEN[0], "text": "a much longer training sentence"}]),
    })
    dd.save_to_disk(str(tmp_path / "toxigen"))
    assert load_texts("toxigen", n=1, path=tmp_path / "toxigen") == [TOXIGEN[0]["text"]]
    assert load_texts("toxigen", n=1, split="train", path=tmp_path / "toxigen") == [
        "a much longer training sentence"
    ]
    with pytest.raises(ValueError, match="no split 'validation'"):
        load_records("toxigen", split="validation", path=tmp_path / "toxigen")


def test_offline_hub_raises_runtime_error_with_path_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def offline(path: str, name: str | None = None, **kwargs: object) -> None:
        calls.append((path, name, kwargs.get("split")))
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="path=") as err:
        load_texts("gsm8k", n=3)
    assert calls == [("openai/gsm8k", "main", "test")]
    message = str(err.value)
    assert "'gsm8k'" in message and "could not be reached" in message and "local cache" in message
    assert isinstance(err.value.__cause__, ConnectionError)
    with pytest.raises(RuntimeError, match="gated"):
        load_records("toxigen")
    with pytest.raises(RuntimeError, match="path="):
        load_sample("mmlu", split="auxiliary_train")
    assert calls[-1] == ("cais/mmlu", "all", "auxiliary_train")


def test_hub_dataset_object_is_sampled_like_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(MMLU))
    sample = load_sample("mmlu", n_pooled=8, n_token=3, seed=5)
    assert sample.source == "hub:cais/mmlu/all@main:test"
    assert sample.revision == "main"  # a Dataset built in memory has no cache path naming a commit
    assert sample.provenance["revision"] == "main" and sample.provenance["hub_id"] == "cais/mmlu"
    assert sample.texts == load_texts("mmlu", n=8, seed=5, path=write_jsonl(tmp_path / "m.jsonl", MMLU))
    assert load_records("mmlu")[4] == MMLU[4]
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: datasets.Dataset.from_list([{"question": "Q"}]))
    with pytest.raises(ValueError, match="no field 'choices'"):
        load_texts("mmlu", n=1)


def test_unknown_split_is_rejected_before_the_hub(no_hub: None) -> None:
    with pytest.raises(ValueError, match="no split 'train'.*no training split"):
        load_texts("humaneval", n=3, split="train")
    with pytest.raises(ValueError, match="available: auxiliary_train, dev, validation, test"):
        load_records("mmlu", split="training")


def test_toy_datasets_call_the_generator_and_format(fake_toydata: list, no_hub: None) -> None:
    texts = load_texts("toy-math", n=4, seed=1, data_seed=7)
    assert fake_toydata == [("toy_math", "test", 7)]
    assert len(texts) == 4
    assert all(t.startswith("Question: What is ") and "\nAnswer: " in t and "#### " in t for t in texts)
    assert load_texts("toy-math", n=4, seed=1, data_seed=7) == texts
    assert load_texts("toy-math", n=4, seed=1, data_seed=8) != texts  # other data, same sampling seed
    load_texts("toy-math", n=2, split="train")
    assert fake_toydata[-1] == ("toy_math", "train", 0)

    mc = load_texts("toy-mc", n=6, seed=0, with_answer=False)
    assert sorted(mc) == [f"Question: Pick {i}\nA) w B) x C) y D) z\nAnswer:" for i in range(6)]
    assert load_records("toy-mc")[1]["answer"] == 1
    assert len(load_texts("toy-text", n=10, allow_fewer=True)) == 5  # whitespace-only texts are always dropped
    sample = load_sample("toy-instruct", n_pooled=3, n_token=3)
    assert sample.n_token == 0 and len(sample.texts) == 3
    assert sample.source.startswith("generator:mbt.toy.corpus:toy_instruct")


def test_toy_unknown_split(fake_toydata: list) -> None:
    with pytest.raises(ValueError, match="no split 'train'"):
        load_texts("toy-instruct", n=2, split="train")
    assert fake_toydata == []


def test_missing_generator_module_is_a_clear_error() -> None:
    spec = dataclasses.replace(DATASETS["toy-math"], generator="mbt._no_such_toydata:toy_math")
    with pytest.raises(ImportError, match="mbt._no_such_toydata.*not available"):
        load_texts(spec, n=2)


def test_missing_generator_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mbt.toy.corpus", types.ModuleType("mbt.toy.corpus"))
    with pytest.raises(ImportError, match="no function 'toy_math'"):
        load_texts("toy-math", n=2)


def test_custom_spec_is_accepted(tmp_path: Path) -> None:
    spec = DatasetSpec(name="my-qa", hub_id="me/my-qa", config=None, split="test", train_split=None,
                       granularity="token", kind="qa")
    path = write_jsonl(tmp_path / "q.jsonl", [GSM8K])
    assert load_texts(spec, n=1, path=path) == [format_record("gsm8k", GSM8K)]


@pytest.mark.parametrize("cause", sorted(_hub_exceptions()))
def test_hub_errors_name_their_cause(cause: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    raised, expected, phrases = _hub_exceptions()[cause]

    def failing(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(expected) as err:
        load_texts("gsm8k", n=3)
    message = str(err.value)
    assert err.value.__cause__ is raised
    assert isinstance(err.value, RuntimeError)
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    if expected is not data.HubOfflineError:
        assert "could not be reached" not in message  # only an offline failure blames the network
    assert type(err.value) is expected  # the most specific class, not a sibling


def test_hub_config_and_split_errors_are_value_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def failing(*args: object, **kwargs: object) -> None:
        raise ValueError("BuilderConfig 'all' not found. Available: ['abstract_algebra', 'anatomy']")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    with pytest.raises(ValueError, match="valid configs: abstract_algebra, anatomy"):
        load_records("mmlu")


def test_offline_error_for_a_gated_dataset_still_says_how_to_get_access(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'toxigen/toxigen-data' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(data.HubOfflineError, match="also gated"):
        load_records("toxigen")


def test_hub_id_needs_a_namespace_and_hub_specs_get_a_revision() -> None:
    with pytest.raises(ValueError, match="owner/name"):
        DatasetSpec(name="he", hub_id="openai_humaneval", config=None, split="test", train_split=None,
                    granularity="pooled", kind="code")
    spec = DatasetSpec(name="x", hub_id="me/x", config=None, split="test", train_split=None,
                       granularity="token", kind="qa")
    assert spec.revision == "main"
    assert dataclasses.replace(spec, revision="abc123").revision == "abc123"
    with pytest.raises(ValueError, match="revision"):
        dataclasses.replace(spec, revision="")


def test_revision_is_passed_to_the_loader_and_the_resolved_commit_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import datasets

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "openai___gsm8k" / "main" / "0.0.0" / commit
    datasets.Dataset.from_list([GSM8K] * 3).save_to_disk(str(folder))
    calls = []

    def cached(path: str, name: str | None = None, **kwargs: Any) -> Any:
        calls.append((path, name, kwargs))
        return datasets.load_from_disk(str(folder))

    monkeypatch.setattr(datasets, "load_dataset", cached)
    spec = dataclasses.replace(DATASETS["gsm8k"], revision="v1.0")
    sample = load_sample(spec, n_pooled=3, n_token=1)
    assert calls == [("openai/gsm8k", "main", {"split": "test", "revision": "v1.0"})]
    assert sample.revision == commit
    assert sample.provenance["revision"] == "v1.0" and sample.provenance["resolved_revision"] == commit
    assert sample.provenance["kind"] == "hub" and sample.provenance["n_records"] == 3
    assert sample.source == "hub:openai/gsm8k/main@v1.0:test"


def test_file_and_generator_provenance(tmp_path: Path, fake_toydata: list) -> None:
    path = write_jsonl(tmp_path / "anything.jsonl", [GSM8K])
    sample = load_sample("gsm8k", n_pooled=1, split="train", path=path)
    assert sample.revision is None
    assert sample.provenance["kind"] == "file" and sample.provenance["split"] == "train"
    assert sample.provenance["file"] == str(path.resolve())
    assert sample.provenance["split_source"] == "single file, taken as split 'train'"
    toy = load_sample("toy-math", n_pooled=2, data_seed=3)
    assert toy.provenance["kind"] == "generator" and toy.provenance["data_seed"] == 3


def test_folder_of_split_files_reads_only_the_requested_split(tmp_path: Path, no_hub: None) -> None:
    folder = tmp_path / "gsm8k"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", [_gsm(i) for i in range(5)])
    write_jsonl(folder / "test.jsonl", [_gsm(i) for i in range(100, 103)])
    (folder / "validation.jsonl").write_text("{not json\n", encoding="utf-8")  # never read
    (folder / "README.md").write_text("not data", encoding="utf-8")
    assert load_records("gsm8k", path=folder) == [_gsm(i) for i in range(100, 103)]
    assert load_records("gsm8k", split="train", path=folder) == [_gsm(i) for i in range(5)]
    sample = load_sample("gsm8k", n_pooled=3, path=folder)
    assert sample.provenance["split_source"] == "split file"
    assert sample.provenance["file"] == str((folder / "test.jsonl").resolve())
    with pytest.raises(ValueError, match=r"no file for split 'dev'.*splits found: test, train, validation"):
        load_records("gsm8k", split="dev", path=folder)


def test_folder_of_hub_style_parquet_shards(tmp_path: Path, no_hub: None) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    write_parquet(folder / "test-00000-of-00002.parquet", [_gsm(0), _gsm(1)])
    write_parquet(folder / "test-00001-of-00002.parquet", [_gsm(2)])
    write_parquet(folder / "train-00000-of-00001.parquet", [_gsm(9)])
    assert load_records("gsm8k", path=folder) == [_gsm(0), _gsm(1), _gsm(2)]
    assert load_records("gsm8k", split="train", path=folder) == [_gsm(9)]


def test_dataset_dict_opens_only_the_requested_split(tmp_path: Path, no_hub: None) -> None:
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list([_gsm(1)]),
                               "test": datasets.Dataset.from_list([_gsm(2), _gsm(3)])})
    dd.save_to_disk(str(tmp_path / "dd"))
    for arrow in (tmp_path / "dd" / "train").glob("*.arrow"):
        arrow.write_bytes(b"corrupt")  # reading the train split would fail
    assert load_records("gsm8k", path=tmp_path / "dd") == [_gsm(2), _gsm(3)]
    sample = load_sample("gsm8k", n_pooled=2, path=tmp_path / "dd")
    assert sample.provenance["split_source"] == "DatasetDict split"


def test_jsonl_gz_and_csv_are_read(tmp_path: Path, no_hub: None) -> None:
    import csv
    import gzip

    records = [_gsm(i) for i in range(4)]
    gz = tmp_path / "test.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode("utf-8")))
    assert load_records("gsm8k", path=gz) == records
    path = tmp_path / "test.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows(records)
    assert load_records("gsm8k", path=path) == records
    assert load_texts("gsm8k", n=4, seed=1, path=path) == load_texts("gsm8k", n=4, seed=1, path=gz)
    folder = tmp_path / "folder"
    folder.mkdir()
    gz.rename(folder / "test.jsonl.gz")
    assert load_records("gsm8k", path=folder) == records
