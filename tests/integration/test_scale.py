"""Sequential pair execution and the remote-execution pass-through (no network)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import TEXTS

import mbt
from mbt import pairs, trace


@pytest.fixture()
def folders(save_pair):
    return save_pair("olmo2")


def test_sequential_pair_loads_on_demand_and_holds_one_model_at_a_time(folders, monkeypatch):
    base_dir, sft_dir = folders
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", sequential=True)
    assert pair.sequential and not pair.is_loaded("base") and not pair.is_loaded("sft")
    seen = []
    original = trace.stream_layers

    def spy(model, *args, **kwargs):
        seen.append({role: pair.is_loaded(role) for role in ("base", "sft")})
        return original(model, *args, **kwargs)

    monkeypatch.setattr(trace, "stream_layers", spy)
    seq = mbt.analyze(pair, TEXTS, cache=False, progress=False, n_bootstrap=20)
    assert seen == [{"base": True, "sft": False}, {"base": False, "sft": True}]
    assert not pair.is_loaded("base") and not pair.is_loaded("sft")
    eager = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    ref = mbt.analyze(eager, TEXTS, cache=False, progress=False, n_bootstrap=20)
    pd.testing.assert_frame_equal(seq, ref, check_exact=True)
    assert eager.is_loaded("base") and eager.is_loaded("sft")


def test_sequential_and_eager_pairs_share_the_result_cache_key_only_with_same_weights(folders, tmp_path):
    base_dir, sft_dir = folders
    seq = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", sequential=True)
    first = mbt.analyze(seq, TEXTS[:4], metrics=["cka"], cache=tmp_path, progress=False)
    assert not seq.is_loaded("base")  # the cache key did not need the weights
    again = mbt.analyze(seq, TEXTS[:4], metrics=["cka"], cache=tmp_path, progress=False)
    assert not seq.is_loaded("base") and not seq.is_loaded("sft")  # served from the cache
    pd.testing.assert_frame_equal(first, again)


def test_released_model_of_an_eager_pair_stays(folders):
    base_dir, sft_dir = folders
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    pair.release("base")
    assert pair.is_loaded("base")
    with pytest.raises(ValueError, match="role must be"):
        pair.model("chat")


def test_remote_option_reaches_the_trace_call_and_reduces_locally(folders, monkeypatch):
    base_dir, sft_dir = folders
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    local = mbt.analyze(pair, TEXTS, metrics=["cka", "prompt_entropy"], cache=False, progress=False, n_bootstrap=10)
    calls = []
    cls = type(pair.base)
    original = cls.trace

    def fake_trace(self, *args, remote=False, **kwargs):
        calls.append(remote)
        return original(self, *args, **kwargs)  # run here instead of on NDIF

    monkeypatch.setattr(cls, "trace", fake_trace)
    remote = mbt.analyze(pair, TEXTS, metrics=["cka", "prompt_entropy"], cache=False, progress=False,
                         n_bootstrap=10, remote=True)
    assert calls and all(calls)
    pd.testing.assert_frame_equal(remote, local, check_exact=False, rtol=1e-6, atol=1e-9)


def test_remote_pair_loads_no_weights(folders, monkeypatch):
    base_dir, sft_dir = folders
    made = []
    monkeypatch.setattr(trace, "remote_model", lambda ident, **kw: made.append(ident) or object())

    import transformers

    def no_weights(*a, **k):
        raise AssertionError("weights loaded for a remote pair")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), remote=True)
    assert pair.remote and made == [str(base_dir), str(sft_dir)]


def test_model_pair_keeps_its_public_constructor():
    spec = pairs.PairSpec("x", "a", "b", "custom")
    pair = pairs.ModelPair("B", "S", None, spec, 2, 8)
    assert pair.base == "B" and pair.sft == "S" and pair.models() == {"base": "B", "sft": "S"}
    assert not pair.sequential and pair.dtype is None and torch is not None


@pytest.mark.parametrize("limit_fit", [1, 5, 8, 13, 64, 300])
def test_largest_fitting_batch_is_found_with_few_trials(limit_fit):
    calls = []

    def fits(n):
        calls.append(n)
        return n <= limit_fit

    assert trace.largest_fitting(fits, start=8, limit=256) == min(limit_fit, 256)
    assert len(calls) <= 20


def test_largest_fitting_refuses_when_nothing_fits():
    with pytest.raises(RuntimeError, match="not even one sample"):
        trace.largest_fitting(lambda n: False)


def test_auto_batch_size_on_cpu_uses_the_default(folders):
    base_dir, sft_dir = folders
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    assert trace.auto_batch_size(pair.base, 64, default=6) == 6
    frame = mbt.analyze(pair, TEXTS[:3], metrics=["cka"], batch_size="auto", cache=False, progress=False)
    assert len(frame) == pair.n_layers + 1
