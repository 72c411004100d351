"""A chapter's downloads: its tables as CSV, a provenance file, and the links its page shows."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pandas as pd
import pytest

from mbt import __version__, paper
from mbt.book import provenance as dl
from mbt.pairs import get_pair
from mbt.paper.verdicts import Verdict


def _findings():
    return [paper.Finding("middle_stable", "0.12", Verdict.HOLDS, effect=0.12, ci_low=0.05, ci_high=0.2, level=0.95,
                          rule="band contrast", mde=0.04, n=11, unit="layers"),
            paper.Finding("lora_13b_10000", "x", Verdict.CONTRADICTED, effect=0.1, ci_low=0.02, ci_high=0.3,
                          level=0.95, also=("lora_32b_10000",))]


def test_write_downloads_writes_each_table_and_a_provenance_that_describes_them(tmp_path):
    frame = pd.DataFrame({"layer": [0, 1, 2], "value": [1.0, 0.5, 0.25]})
    indexed = pd.DataFrame({"toy": [0.1, 0.2]}, index=pd.Index(["cka_drop", "j_shape"], name="signature"))
    info = {"format": "mbt-provenance", "chapter": "01_divergence"}
    files = dl.write_downloads({"metrics": frame, "findings": _findings(), "skipped": None, "signatures": indexed},
                               tmp_path / "downloads", prefix="01_divergence", info=info)
    assert [f.name for f in files] == ["01_divergence-metrics.csv", "01_divergence-findings.csv",
                                       "01_divergence-signatures.csv", "01_divergence-provenance.json"]
    pd.testing.assert_frame_equal(pd.read_csv(files[0]), frame)
    findings = pd.read_csv(files[1])
    assert findings["headline"].tolist() == ["middle_stable", "lora_13b_10000", "lora_32b_10000"]
    assert findings["verdict"].tolist() == ["holds", "contradicted", "contradicted"]
    assert findings["ci_low"].iloc[0] == 0.05 and findings["same_as"].fillna("").tolist() == ["", "", "lora_13b_10000"]
    assert pd.read_csv(files[2])["signature"].tolist() == ["cka_drop", "j_shape"]  # a named index is kept
    meta = json.loads(files[3].read_text())
    assert meta["chapter"] == "01_divergence" and set(meta["files"]) == {"metrics", "findings", "signatures"}
    assert meta["files"]["metrics"] == {"file": "01_divergence-metrics.csv", "rows": 3, "columns": ["layer", "value"],
                                        "sha256": hashlib.sha256(files[0].read_bytes()).hexdigest()}
    assert meta["files"]["findings"]["rows"] == 3


def test_write_downloads_refuses_bad_input_before_writing(tmp_path):
    with pytest.raises(ValueError, match="table name"):
        dl.write_downloads({"a b": pd.DataFrame()}, tmp_path, prefix="x", info={})
    with pytest.raises(ValueError, match="at least one table"):
        dl.write_downloads({"a": None}, tmp_path, prefix="x", info={})
    with pytest.raises(TypeError, match="DataFrame or a list of findings"):
        dl.write_downloads({"a": [1, 2]}, tmp_path, prefix="x", info={})
    assert not any(tmp_path.iterdir())


def test_downloads_markdown_links_each_file_with_the_download_role():
    files = ["/x/downloads/01_divergence-metrics.csv", "/x/downloads/01_divergence-provenance.json"]
    text = dl.downloads_markdown(files, rows={"01_divergence-metrics.csv": 42})
    assert text == ("**Download this chapter's numbers**: {download}`01_divergence-metrics.csv "
                    "<downloads/01_divergence-metrics.csv>` (42 rows) · {download}`provenance (JSON) "
                    "<downloads/01_divergence-provenance.json>`")


def test_source_commit_reads_a_checkout_and_says_when_it_is_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert dl.source_commit(tmp_path) is None or (tmp_path / ".git").exists() is False  # no checkout of its own
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert dl.source_commit(tmp_path) == {"commit": head.strip(), "dirty": False}
    (tmp_path / "a.txt").write_text("2")
    assert dl.source_commit(tmp_path / "a.txt") == {"commit": head.strip(), "dirty": True}


def test_downloads_in_a_build_uses_the_chapter_context_and_describes_the_pair(tmp_path, monkeypatch):
    context = {"chapter": "05_swapping", "parameters": {"pair": "toy", "n_samples": 64},
               "source": {"commit": "a" * 40, "dirty": False}}
    monkeypatch.setenv(dl.CONTEXT_ENV, json.dumps(context))
    monkeypatch.chdir(tmp_path)
    shown = dl.downloads({"swaps": pd.DataFrame({"segment": [0, 1], "diff": [0.0, 0.01]})}, pair=get_pair("olmo2-1b"))
    text = getattr(shown, "data", shown)
    assert "{download}`05_swapping-swaps.csv <downloads/05_swapping-swaps.csv>` (2 rows)" in text
    meta = json.loads((tmp_path / "downloads" / "05_swapping-provenance.json").read_text())
    assert meta["format"] == "mbt-provenance" and meta["chapter"] == "05_swapping"
    assert meta["mbt"] == {"version": __version__, "commit": "a" * 40, "dirty": False}
    assert meta["parameters"] == {"pair": "toy", "n_samples": 64}
    assert meta["pair"]["name"] == "olmo2-1b" and meta["pair"]["base"] == get_pair("olmo2-1b").base
    assert "base_revision" in meta["pair"] and meta["device"].startswith(("cpu", "cuda"))
    assert meta["software"]["python"] and "torch" in meta["software"]
    assert meta["created"].endswith("+00:00")
    monkeypatch.setenv(dl.CONTEXT_ENV, "{not json")
    with pytest.raises(ValueError, match="MBT_BOOK_CONTEXT"):
        dl.downloads({"x": pd.DataFrame({"a": [1]})})


def test_a_local_folder_is_named_without_the_machine_path(tmp_path, monkeypatch):
    import dataclasses

    build = tmp_path / "build"
    spec = dataclasses.replace(get_pair("toy"), base=str(build / "base"), sft=str(build / "sft"))
    info = dl.provenance(spec, chapter="01_divergence", parameters={}, source={"commit": None})
    assert info["pair"]["base"] == "build/base" and info["pair"]["sft"] == "build/sft"
    assert str(tmp_path) not in json.dumps(info)
