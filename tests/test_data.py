"""Tests for mbt.data: registry, formats, local files, seeded sampling, offline errors, toy generators."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from mbt import data
from mbt.data import (
    DATASETS,
    PAPER_SAMPLE_SIZES,
    DatasetSpec,
    TextSample,
    format_record,
    get_spec,
    load_records,
    load_sample,
    load_texts,
    sample_indices,
    seeded_order,
    training_split,
)
from mbt.results import text_fingerprint

# ------------------------------------------------------------------------------------------------
# Small records in the Hub schemas
# ------------------------------------------------------------------------------------------------

MMLU = [
    {"question": f"What is {i} + 1?", "subject": "elementary_mathematics",
     "choices": [str(i), str(i + 1), str(i + 2), str(i + 3)], "answer": 1}
    for i in range(30)
]
GSM8K = {
    "question": "Tom buys 3 packs of 4 pencils. How many pencils does he have?",
    "answer": "Each pack has 4 pencils, so he has 3*4=<<3*4=12>>12 pencils.\n#### 12",
}
WIKITEXT = [
    {"text": ""},
    {"text": " = Valkyria Chronicles III = \n"},
    {"text": " Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game . \n"},
    {"text": " short \n"},
    {"text": " = = Gameplay = = \n"},
    {"text": " The game began development in 2010 , carrying over a large portion of the work . \n"},
    {"text": " \n"},
    {"text": " It met with positive sales in Japan , and was praised by both Japanese and western critics . \n"},
]
WIKITEXT_USABLE = {2, 5, 7}
HUMANEVAL = {
    "task_id": "HumanEval/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "entry_point": "add",
}
IFEVAL = {
    "key": 1000,
    "prompt": "Write a 300+ word summary of the wikipedia page. Do not use any commas.",
    "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
}
MT_BENCH = {
    "prompt": ["Compose an engaging travel blog post about a recent trip to Hawaii.",
               "Rewrite your previous response. Start every sentence with the letter A."],
    "category": "writing",
    "prompt_id": 81,
}
TOXIGEN = [
    {"text": "asians are trying to take over the world with their karate skills", "target_group": "asian",
     "toxicity_human": 4.0},
    {"text": "ok", "target_group": "asian", "toxicity_human": 1.0},
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


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


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything reaches datasets.load_dataset."""
    import datasets

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"load_dataset must not be called here: {args}")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


def test_registry_holds_the_papers_hub_datasets() -> None:
    hub = {name: (s.hub_id, s.config, s.split, s.train_split, s.granularity, s.kind)
           for name, s in DATASETS.items() if not s.is_generated}
    assert hub == {
        "mmlu": ("cais/mmlu", "all", "test", "auxiliary_train", "token", "multiple_choice"),
        "gsm8k": ("openai/gsm8k", "main", "test", "train", "token", "qa"),
        "wikitext": ("Salesforce/wikitext", "wikitext-103-v1", "test", "train", "token", "text"),
        "ifeval": ("google/IFEval", None, "train", None, "token", "instruction"),
        "humaneval": ("openai/openai_humaneval", None, "test", None, "pooled", "code"),
        "mt_bench": ("HuggingFaceH4/mt_bench_prompts", None, "train", None, "pooled", "conversation"),
        "toxigen": ("toxigen/toxigen-data", "annotated", "test", "train", "pooled", "classification"),
    }
    assert DATASETS["wikitext"].min_chars == 10 and DATASETS["toxigen"].min_chars == 10
    assert [n for n, s in DATASETS.items() if s.gated] == ["toxigen"]
    assert {s.revision for s in DATASETS.values() if not s.is_generated} == {"main"}
    assert {s.revision for s in DATASETS.values() if s.is_generated} == {None}


def test_registry_toy_entries_point_at_lazy_generators() -> None:
    toy = {name: (s.generator, s.granularity, s.kind) for name, s in DATASETS.items() if s.is_generated}
    assert toy == {
        "toy-math": ("mbt.toy.corpus:toy_math", "token", "qa"),
        "toy-mc": ("mbt.toy.corpus:toy_mc", "token", "multiple_choice"),
        "toy-text": ("mbt.toy.corpus:toy_text", "token", "text"),
        "toy-instruct": ("mbt.toy.corpus:toy_instruct", "pooled", "instruction"),
    }
    assert all(DATASETS[n].split == "test" and DATASETS[n].hub_id is None for n in toy)


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'squad'") as err:
        get_spec("squad")
    for name in DATASETS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="valid names"):
        load_texts("squad", n=3)
    assert get_spec("MT-Bench") is DATASETS["mt_bench"]
    assert get_spec("toy_math") is DATASETS["toy-math"]


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        dataclasses.replace(DATASETS["gsm8k"], kind="essay")
    with pytest.raises(ValueError, match="granularity"):
        dataclasses.replace(DATASETS["gsm8k"], granularity="sentence")
    with pytest.raises(ValueError, match="module:function"):
        dataclasses.replace(DATASETS["toy-math"], generator="mbt.toy.corpus.toy_math")


def test_training_split() -> None:
    assert training_split("mmlu") == "auxiliary_train"
    assert training_split("gsm8k") == "train"
    for name in ("humaneval", "ifeval", "mt_bench", "toy-instruct"):
        with pytest.raises(ValueError, match="no training split"):
            training_split(name)


# ------------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------------


def test_format_mmlu() -> None:
    rec = {"question": "Which planet is largest?", "subject": "astronomy",
           "choices": ["Mars", "Jupiter", "Venus", "Earth"], "answer": 1}
    assert format_record("mmlu", rec) == (
        "Question: Which planet is largest?\nA) Mars B) Jupiter C) Venus D) Earth\nAnswer: B"
    )
    assert format_record("mmlu", rec, with_answer=False) == (
        "Question: Which planet is largest?\nA) Mars B) Jupiter C) Venus D) Earth\nAnswer:"
    )
    assert format_record("mmlu", {**rec, "answer": "D"}).endswith("Answer: D")
    with pytest.raises(ValueError, match="out of range"):
        format_record("mmlu", {**rec, "answer": 4})


def test_format_mmlu_unwraps_old_auxiliary_train_nesting() -> None:
    rec = {"question": "Q?", "choices": ["a", "b", "c", "d"], "answer": 0}
    assert format_record("mmlu", {"train": rec}) == format_record("mmlu", rec)


def test_format_gsm8k() -> None:
    assert format_record("gsm8k", GSM8K) == (
        "Question: Tom buys 3 packs of 4 pencils. How many pencils does he have?\n"
        "Answer: Each pack has 4 pencils, so he has 3*4=<<3*4=12>>12 pencils.\n#### 12"
    )
    assert format_record("gsm8k", GSM8K, with_answer=False) == (
        "Question: Tom buys 3 packs of 4 pencils. How many pencils does he have?\nAnswer:"
    )


def test_format_wikitext_drops_short_lines_and_headings() -> None:
    out = [format_record("wikitext", r) for r in WIKITEXT]
    assert out[2] == "Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game ."
    assert {i for i, t in enumerate(out) if t is not None} == WIKITEXT_USABLE
    assert format_record("wikitext", WIKITEXT[2], with_answer=False) == out[2]
    authors = dataclasses.replace(DATASETS["wikitext"], drop_headings=False)
    assert format_record(authors, WIKITEXT[1]) == "= Valkyria Chronicles III ="
    assert format_record(authors, WIKITEXT[4]) == "= = Gameplay = ="
    assert format_record(authors, WIKITEXT[3]) is None


def test_format_wikitext_min_chars_boundary() -> None:
    assert format_record("wikitext", {"text": "  123456789  "}) is None
    assert format_record("wikitext", {"text": "  1234567890  "}) == "1234567890"


def test_format_humaneval_ifeval_toxigen() -> None:
    assert format_record("humaneval", HUMANEVAL) == (
        'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n\n    return a + b\n'
    )
    assert format_record("humaneval", HUMANEVAL, with_answer=False) == HUMANEVAL["prompt"]
    for with_answer in (True, False):
        assert format_record("ifeval", IFEVAL, with_answer=with_answer) == IFEVAL["prompt"]
        assert format_record("toxigen", TOXIGEN[0], with_answer=with_answer) == TOXIGEN[0]["text"]
        assert format_record("toxigen", TOXIGEN[1], with_answer=with_answer) is None


def test_format_mt_bench_joins_both_turns() -> None:
    expected = MT_BENCH["prompt"][0] + "\n\n" + MT_BENCH["prompt"][1]
    for with_answer in (True, False):
        assert format_record("mt_bench", MT_BENCH, with_answer=with_answer) == expected
    assert format_record("mt_bench", {"turns": MT_BENCH["prompt"]}) == expected
    assert format_record("mt_bench", {"prompt": "one turn only"}) == "one turn only"
    with pytest.raises(ValueError, match="list of strings"):
        format_record("mt_bench", {"prompt": [1, 2]})


@pytest.mark.parametrize(
    ("name", "record", "missing"),
    [
        ("mmlu", {"question": "Q?", "answer": 0}, "choices"),
        ("gsm8k", {"question": "Q?"}, "answer"),
        ("wikitext", {"page": "x"}, "text"),
        ("humaneval", {"prompt": "def f():\n"}, "canonical_solution"),
        ("ifeval", {"key": 1}, "prompt"),
        ("mt_bench", {"category": "writing"}, "turns|prompt"),
    ],
)
def test_missing_field_names_dataset_and_field(name: str, record: dict, missing: str) -> None:
    with pytest.raises(ValueError, match=rf"dataset '{name}'.*no field '{missing}'"):
        format_record(name, record)


def test_wrong_field_type() -> None:
    with pytest.raises(ValueError, match="'question' must be a string"):
        format_record("gsm8k", {"question": None, "answer": "#### 1"})


# ------------------------------------------------------------------------------------------------
# Local files
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Seeded sampling
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Hub loading (never reaches the network)
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Generated toy datasets
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_toydata(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    calls: list[tuple[str, str, int]] = []
    module = types.ModuleType("mbt.toy.corpus")

    def toy_math(split: str, seed: int) -> list[dict]:
        calls.append(("toy_math", split, seed))
        rng = random.Random(f"{split}-{seed}")
        out = []
        for _ in range(12):
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            out.append({"question": f"What is {a} times {b}?", "answer": f"{a}*{b}=<<{a}*{b}={a * b}>>{a * b}\n"
                                                                         f"#### {a * b}"})
        return out

    def toy_mc(split: str, seed: int) -> list[dict]:
        calls.append(("toy_mc", split, seed))
        return [{"question": f"Pick {i}", "subject": "toy", "choices": ["w", "x", "y", "z"], "answer": i % 4}
                for i in range(6)]

    def toy_text(split: str, seed: int) -> list[dict]:
        calls.append(("toy_text", split, seed))
        return [{"text": f"toy sentence number {i} of split {split}"} for i in range(5)] + [{"text": "   "}]

    def toy_instruct(split: str, seed: int) -> list[dict]:
        calls.append(("toy_instruct", split, seed))
        return [{"prompt": f"Write {i} words about cats."} for i in range(4)]

    for fn in (toy_math, toy_mc, toy_text, toy_instruct):
        setattr(module, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, "mbt.toy.corpus", module)
    return calls


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


# ------------------------------------------------------------------------------------------------
# Hub errors that name their cause (exception classes of the installed datasets / huggingface_hub)
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Revisions and provenance
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# path= honours split
# ------------------------------------------------------------------------------------------------


def _gsm(i: int) -> dict[str, str]:
    return {"question": f"What is {i} + {i}?", "answer": f"{i}+{i}=<<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}"}


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


# ------------------------------------------------------------------------------------------------
# One source for training and test
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Inputs that used to pass silently (issue 17)
# ------------------------------------------------------------------------------------------------


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
