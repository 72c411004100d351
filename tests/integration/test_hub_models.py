"""The paper's OLMo 2 1B pair loads offline from a Hugging Face Hub cache, through the code a GPU user runs.

The ``offline_models`` fixture (``tests/hub_fixture.py``) lays out the Hub cache with tiny random OLMo 2
models under the real repository ids, next to the seven datasets; nothing here passes a folder: the pair
is loaded by its registry name, the data by theirs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from conftest import REPO
from hub_fixture import COMMIT, MODEL_REPOS, MODEL_SHAPE

import mbt
from mbt import book, data
from mbt.pairs import PAIRS


def test_the_registry_names_the_fixture_repositories() -> None:
    spec = PAIRS["olmo2-1b"]
    assert (spec.base, spec.sft) == MODEL_REPOS
    assert spec.base_revision is None and spec.sft_revision is None  # refs/main of the cache


def test_the_fixture_lays_out_a_model_snapshot(offline_models: tuple[Path, Path]) -> None:
    repo = offline_models[0] / "models--allenai--OLMo-2-0425-1B"
    assert (repo / "refs" / "main").read_text() == COMMIT
    files = {p.name for p in (repo / "snapshots" / COMMIT).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files


def test_load_pair_by_name_offline_and_analyze(offline_models: tuple[Path, Path]) -> None:
    pair = mbt.load_pair("olmo2-1b", progress=False)
    assert pair.spec.name == "olmo2-1b" and pair.spec.base == MODEL_REPOS[0]
    assert (pair.n_layers, pair.hidden_size) == (MODEL_SHAPE["num_hidden_layers"], MODEL_SHAPE["hidden_size"])
    base, sft = (mbt.trace.unwrap(m) for m in (pair.base, pair.sft))
    assert base.config.model_type == "olmo2"
    assert base.config._name_or_path == MODEL_REPOS[0]
    from safetensors.torch import load_file

    snapshot = offline_models[0] / "models--allenai--OLMo-2-0425-1B" / "snapshots" / COMMIT
    stored = load_file(snapshot / "model.safetensors")  # the weights came from the snapshot refs/main names
    assert (stored["model.embed_tokens.weight"] == base.model.embed_tokens.weight.cpu()).all()
    assert any((a - b).abs().max() > 0 for a, b in zip(base.parameters(), sft.parameters(), strict=True))
    sample = data.load_sample("gsm8k", n_pooled=8, n_token=4)
    assert sample.provenance["kind"] == "hub"
    table = mbt.analyze(pair, sample.texts, n_token=sample.n_token, metrics=["cka"], cache=False, progress=False)
    cka = table.query("model == 'pair' and metric == 'cka'")
    assert sorted(cka["layer"].unique()) == list(range(pair.n_layers + 1))


def test_a_model_id_that_is_not_in_the_cache_is_refused(offline_models: tuple[Path, Path]) -> None:
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE=1"):
        mbt.load_pair(base="allenai/OLMo-2-0425-1b", sft=MODEL_REPOS[1], progress=False)
    with pytest.raises(RuntimeError, match="not in the local cache"):
        mbt.load_pair(base=MODEL_REPOS[0], sft="allenai/OLMo-2-0425-1B-Instruct", progress=False)


@pytest.mark.slow
def test_every_chapter_runs_on_the_real_pair_in_quick_mode(offline_models: tuple[Path, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``mbt book --pair olmo2-1b --quick``: every chapter, with the pair's default datasets from the Hub cache."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # kernels share two cores with the test runner
    monkeypatch.delenv("MPLBACKEND", raising=False)
    stage = tmp_path / "stage"
    start = time.perf_counter()
    report = book.build("olmo2-1b", quick=True, root=REPO, stage=stage, output=tmp_path / "out", html=False,
                        parameters={"threads": 1}, log=lambda _: None)
    print("\n" + report.summary() + f"\n{time.perf_counter() - start:.1f} s")
    assert report.ok, report.summary()
    assert [c.status for c in report.chapters] == ["executed"] * len(book.CHAPTERS)
    for name in book.CHAPTERS:
        executed = nbformat.read(stage / "notebooks" / f"{name}.ipynb", as_version=4)
        text = "\n".join(str(o.get("text", "")) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
        assert "Traceback" not in text
        injected = [c for c in executed.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
        assert injected and 'pair = "olmo2-1b"' in injected[0].source
    sweep = book.sweep_path(PAIRS["olmo2-1b"])
    import pandas as pd

    table = pd.read_parquet(sweep)
    assert set(table["task"]) == {"gsm8k"}  # chapter 6's default task for a real pair
    assert {"ppl_text", "ppl_instruct"} <= set(table.columns) and table["ppl_instruct"].notna().all()
