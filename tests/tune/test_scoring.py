"""Scoring tuned models: exact match, answer NLL, retention (mbt.tune.scoring)."""

from __future__ import annotations

import pytest
from conftest import make_model
from tune_fakes import _write_jsonl  # noqa: F401

from mbt import tune


def test_default_retention_is_the_papers_appendix_b_sets():
    assert tune.default_retention("gsm8k") == {"text": "mt_bench", "instruct": "ifeval"}
    assert tune.default_retention("toy-math") == {"text": "toy-text", "instruct": "toy-instruct"}


def test_evaluate_tuned_reads_local_test_and_retention_files(tokenizer, tmp_path, monkeypatch):
    from mbt import data

    test = _write_jsonl(tmp_path / "test.jsonl", data.load_records("toy-math", split="test")[:3])
    text = _write_jsonl(tmp_path / "text.jsonl", data.load_records("toy-text", split="test")[:4])
    model = make_model("olmo2", n_layers=2, hidden=32)
    out = tune.evaluate_tuned(model, tokenizer, "toy-math", n_test=3, max_new_tokens=4, batch_size=4,
                              n_retention=50, n_boot=50, data_path=test, retention_paths={"text": text},
                              progress=False)
    assert out["n_test"] == 3
    expected = tune.evaluate_tuned(model, tokenizer, "toy-math", n_test=3, max_new_tokens=4, batch_size=4,
                                   retention={"text": "toy-text"}, n_retention=50, n_boot=50, data_path=test,
                                   retention_paths={"text": text}, progress=False)
    assert out["ppl_text"] == expected["ppl_text"]
    from mbt import evaluate

    texts = data.load_texts("toy-text", n=50, path=text, allow_fewer=True)
    assert len(texts) <= 4  # fewer than n_retention: all of the file
    direct = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts, batch_size=4, progress=False))
    assert out["ppl_text"] == pytest.approx(direct)
