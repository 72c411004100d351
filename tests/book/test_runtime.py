"""The chapter runtime (mbt.book.runtime): sizes, datasets, tables, the shared LoRA sweep."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from paper_fakes import PAPER_LIKE_CKA, L, _frame  # noqa: F401

from mbt import book, segments, select
from mbt.book import chapters as book_chapters


def test_sizes_datasets_and_masks(tmp_path):
    assert book.sizes(1000, 100, False) == (1000, 100)
    assert book.sizes(1000, 100, True) == (32, 8)
    from mbt.pairs import PAIRS

    assert book.default_datasets(PAIRS["toy"]) == ["toy-math", "toy-mc", "toy-text"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "probing") == ["mmlu"]
    assert book.default_datasets(PAIRS["toy"], "swapping") == ["toy-math"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "finetune") == ["gsm8k"]
    assert book.default_datasets(PAIRS["toy"], "unrelated") == ["toy-text"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "unrelated") == ["wikitext"]
    with pytest.raises(ValueError, match="purpose"):
        book.default_datasets(PAIRS["toy"], "other")
    assert segments.single_segment_masks(3) == ("100", "010", "001")
    assert segments.PAPER_MASKS[0] == "00000" and len(segments.PAPER_MASKS) == 10


def test_metric_table_and_evidence_curves():
    frame = _frame(PAPER_LIKE_CKA, base={"effective_rank": [1.0] * (L + 1)}, sft={"effective_rank": [2.0] * (L + 1)})
    wide = book.metric_table(frame)
    assert set(wide.columns) == {"cka", "effective_rank"} and (wide["effective_rank"] == 2.0).all()
    evidence = pd.DataFrame({"block": range(L), "layer": range(1, L + 1), "cka": np.arange(L, dtype=float),
                             "score": np.ones(L), "selected": [False] * L})
    evidence.attrs["signals"] = ["cka"]
    tidy = select.evidence_curves(evidence)
    assert list(tidy.columns) == ["signal", "layer", "value"] and set(tidy["signal"]) == {"cka", "score"}


def test_chapters_6_and_7_share_one_sweep_object():
    """Both chapters build their sweep with book.lora_sweep from identically named and valued parameters."""
    shared = ("task", "masks", "seeds", "preset", "rank", "steps", "n_test", "threads", "quick")
    cells = {}
    for name in ("06_midblock_lora", "07_beyond"):
        nb = book_chapters.read_notebook(REPO / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        values = {}
        for node in ast.parse(cell.source).body:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            values[target.id] = ast.literal_eval(node.value)
        cells[name] = {k: values[k] for k in shared}
        source = "\n".join(c.source for c in nb.cells)
        assert "book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps" in source
    assert cells["06_midblock_lora"] == cells["07_beyond"]
    from mbt.pairs import PAIRS

    a = book.lora_sweep(PAIRS["toy"], **{k: v for k, v in cells["06_midblock_lora"].items()})
    b = book.lora_sweep(PAIRS["toy"], **{**cells["07_beyond"], "steps": 7})
    assert a.task == "toy-math" and a.masks == segments.PAPER_MASKS and a != b and b.settings.steps == 7
    quick = book.lora_sweep(PAIRS["toy"], quick=True)
    assert quick.masks == tuple(book.QUICK_SWEEP["masks"]) and len(quick.seeds) == 1 and quick.settings.steps == 2
    assert quick.options["n_test"] == book.QUICK_SWEEP["n_test"] and "steps" not in quick.options
