"""Every registered Hub dataset loads offline through datasets' real Hub code path (no path=).

The ``offline_hub`` fixture comes from ``tests/hub_fixture.py`` (imported by conftest).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hub_fixture import COMMIT, HUB_REPOS

from mbt import data
from mbt.data import DATASETS

HUB_SPECS = sorted(name for name, spec in DATASETS.items() if not spec.is_generated)


def _repo(hub_id: str):  # noqa: ANN202 - test helper
    return next(r for r in HUB_REPOS if r.repo_id == hub_id)


def test_the_fixture_lays_out_the_hub_cache(offline_hub: tuple[Path, Path]) -> None:
    hub_cache, datasets_cache = offline_hub
    repo = hub_cache / "datasets--openai--gsm8k"
    assert (repo / "refs" / "main").read_text() == COMMIT
    snapshot = repo / "snapshots" / COMMIT
    assert sorted(p.name for p in (snapshot / "main").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet",
    ]
    assert "config_name: main" in (snapshot / "README.md").read_text()
    prepared = datasets_cache / "openai___gsm8k" / "main" / "0.0.0" / COMMIT
    assert json.loads((prepared / "dataset_info.json").read_text())["config_name"] == "main"
    assert (prepared / "gsm8k-test.arrow").exists()


def test_the_fixture_covers_the_registry() -> None:
    assert sorted(DATASETS[name].hub_id for name in HUB_SPECS) == sorted(r.repo_id for r in HUB_REPOS)


@pytest.mark.parametrize("name", HUB_SPECS)
def test_registered_dataset_loads_offline_from_the_cache(name: str, offline_hub: tuple[Path, Path]) -> None:
    spec = DATASETS[name]
    repo = _repo(spec.hub_id)
    configs = repo.splits if spec.config is None else {spec.config: repo.splits[spec.config]}
    assert spec.config is not None or len(repo.splits) == 1
    (rows_by_split,) = configs.values()
    for split in spec.splits:
        records = data.load_records(name, split=split)
        assert records == rows_by_split[split], (name, split)
    sample = data.load_sample(name, n_pooled=len(rows_by_split[spec.split]), n_token=1, allow_fewer=True)
    assert sample.texts and sample.provenance["kind"] == "hub"
    assert sample.revision == COMMIT  # the commit read from the datasets cache path
    assert sample.provenance["revision"] == spec.revision
    expected = [data.format_record(name, rows_by_split[spec.split][i]) for i in sample.indices]
    assert sample.texts == expected


def test_a_wrong_id_config_or_split_does_not_resolve(offline_hub: tuple[Path, Path]) -> None:
    gsm8k = DATASETS["gsm8k"]
    with pytest.raises(data.HubOfflineError, match="not in the local cache"):
        data.load_records(dataclasses.replace(gsm8k, hub_id="openai/gsm9k"))
    with pytest.raises(data.HubOfflineError):
        data.load_records(dataclasses.replace(DATASETS["humaneval"], hub_id="openai/humaneval"))
    with pytest.raises(data.HubConfigError, match="valid configs: main, socratic"):
        data.load_records(dataclasses.replace(gsm8k, config="mainn"))
    with pytest.raises(data.HubSplitError, match="no split 'validation'.*valid splits: train, test"):
        data.load_records(dataclasses.replace(gsm8k, splits=("train", "validation", "test")), split="validation")
    with pytest.raises(data.HubConfigError, match="wikitext-103-v1"):
        data.load_records(dataclasses.replace(DATASETS["wikitext"], config="wikitext-103-raw-v1"))


def test_a_pinned_commit_that_is_not_cached_is_refused(offline_hub: tuple[Path, Path]) -> None:
    gsm8k = DATASETS["gsm8k"]
    other = "f" * 40
    with pytest.raises(data.HubNotFoundError, match=f"pinned to commit {other}.*came from {COMMIT}"):
        data.load_records(dataclasses.replace(gsm8k, revision=other))
    pinned = data.load_sample(dataclasses.replace(gsm8k, revision=COMMIT), n_pooled=2)
    assert pinned.revision == COMMIT and pinned.source == f"hub:openai/gsm8k/main@{COMMIT}:test"
