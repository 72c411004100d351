"""The dataset registry (mbt.data.registry)."""

from __future__ import annotations

import dataclasses

import pytest

from mbt.data import (
    DATASETS,
    get_spec,
    load_texts,
    training_split,
)


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
