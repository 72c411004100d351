"""Identity of inputs, models and calls (mbt.identity): cached_call keys."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from mbt import identity


def _table(n: int, texts: list[str], progress: bool = True) -> pd.DataFrame:
    _CALLS.append((n, tuple(texts)))
    return pd.DataFrame({"n": [n], "chars": [sum(map(len, texts))]})

_CALLS: list = []

def _first_weight(model, tokenizer, texts: list[str], progress: bool = True) -> pd.DataFrame:
    _CALLS.append(("model", tokenizer.name_or_path))
    return pd.DataFrame({"w": [float(next(model.parameters()).detach().double().sum())]})


def test_cached_call_keys_on_the_call_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    _CALLS.clear()
    texts = [f"text {i}" for i in range(12)]
    first = identity.cached_call(_table, 1, texts)
    again = identity.cached_call(_table, 1, texts, progress=False)  # progress is not part of the key
    assert len(_CALLS) == 1 and first.equals(again) and "mbt: cached" in capsys.readouterr().err
    identity.cached_call(_table, 2, texts)  # another argument: computed again
    identity.cached_call(_table, 1, texts[:-1] + ["text 11 changed"])  # other texts: computed again
    identity.cached_call(_table, 1, ["text 0\0text 1", *texts[2:]])  # text boundaries matter
    assert len(_CALLS) == 4
    identity.cached_call(_table, 1, texts, cache=False)
    assert len(_CALLS) == 5
    with pytest.raises(TypeError, match="cannot key"):
        identity.cached_call(_table, object(), texts)
    monkeypatch.setattr(identity, "CALL_VERSION", identity.CALL_VERSION + 1)  # the computations changed
    identity.cached_call(_table, 1, texts)
    assert len(_CALLS) == 6


def test_cached_call_keys_a_local_checkpoint_by_its_content_not_its_folder(tmp_path, monkeypatch, save_pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("MBT_CACHE", str(tmp_path / "cache"))
    _CALLS.clear()
    base, sft = save_pair("olmo2")
    copy = tmp_path / "copy-of-base"
    shutil.copytree(base, copy)
    texts = [f"text {i}" for i in range(12)]

    def call(folder):
        model = AutoModelForCausalLM.from_pretrained(str(folder))
        return identity.cached_call(_first_weight, model, AutoTokenizer.from_pretrained(str(folder)), texts)

    first = call(base)
    assert call(copy).equals(first) and len(_CALLS) == 1  # the same bytes elsewhere: reused
    call(sft)  # other weights: computed again
    assert len(_CALLS) == 2
