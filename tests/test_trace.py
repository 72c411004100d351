from __future__ import annotations

import pytest
import torch
from conftest import ARCHS, TEXTS, make_model

from mbt import trace


@pytest.fixture(scope="module")
def token_ids(tokenizer):
    return trace.encode(tokenizer, TEXTS, max_length=64)


def _reference_states(model, ids: list[int]) -> list[torch.Tensor]:
    """Plain HF forward of one unpadded sample: hidden_states plus the raw last-block output."""
    module = trace.unwrap(model)
    layout = trace.resolve_layout(module)
    blocks = trace._get(module, layout.layers)
    captured = {}
    handle = blocks[-1].register_forward_hook(lambda m, i, o: captured.setdefault("last", trace._as_tensor(o)))
    try:
        with torch.no_grad():
            out = module(input_ids=torch.tensor([ids]), output_hidden_states=True)
    finally:
        handle.remove()
    return [h[0] for h in out.hidden_states], captured["last"][0]


@pytest.mark.parametrize("arch", ARCHS)
def test_traced_states_equal_hugging_face(arch, tokenizer, token_ids):
    model = trace.wrap(make_model(arch, n_layers=3), tokenizer)
    layout = trace.resolve_layout(model)
    final_norm = trace._get(trace.unwrap(model), layout.final_norm)
    got = trace.collect_layers(model, token_ids, batch_size=4, progress=False)
    assert sorted(got) == [0, 1, 2, 3]
    for i, ids in enumerate(token_ids):
        hf, last_block = _reference_states(model, ids)
        for layer in range(3):
            torch.testing.assert_close(got[layer][i], hf[layer], rtol=1e-4, atol=1e-5)
        # layer L is the raw residual stream (pre final norm) ...
        torch.testing.assert_close(got[3][i], last_block, rtol=1e-4, atol=1e-5)
        # ... and HF's last hidden state is that stream after the final norm
        torch.testing.assert_close(final_norm(got[3][i]), hf[3], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(got[3][i], hf[3], atol=1e-3)


def _pooled_reducer(store):
    def reduce(batch: trace.LayerBatch) -> None:
        m = batch.mask.unsqueeze(-1).to(batch.states.dtype)
        mean = (batch.states * m).sum(1) / m.sum(1)
        sq = ((batch.states**2) * m).sum((1, 2))
        for row, sample in enumerate(batch.index.tolist()):
            store[(batch.layer, sample)] = (mean[row].clone(), sq[row].clone())

    return reduce


@pytest.mark.parametrize("arch", ["olmo2", "gpt_neox"])
def test_reductions_do_not_depend_on_batch_size_or_padding_side(arch, tokenizer, token_ids):
    model = trace.wrap(make_model(arch, n_layers=2), tokenizer)
    results = []
    for batch_size, side in ((1, "right"), (8, "right"), (8, "left"), (3, "left")):
        store: dict = {}
        trace.stream_layers(
            model, token_ids, _pooled_reducer(store), batch_size=batch_size, padding_side=side, progress=False
        )
        results.append(store)
    assert len(results[0]) == 3 * len(token_ids)
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key, (mean, sq) in results[0].items():
            torch.testing.assert_close(other[key][0], mean, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(other[key][1], sq, rtol=1e-4, atol=1e-4)


def test_forward_stops_before_the_lm_head_and_after_the_last_requested_layer(tokenizer, token_ids):
    model = trace.wrap(make_model("olmo2", n_layers=4), tokenizer)
    module = trace.unwrap(model)
    calls = {"head": 0, "block3": 0}
    h1 = module.lm_head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    h2 = module.model.layers[3].register_forward_hook(lambda *a: calls.__setitem__("block3", calls["block3"] + 1))
    seen = []
    try:
        trace.stream_layers(model, token_ids, lambda b: seen.append(b.layer), layers=[1, 2], progress=False)
    finally:
        h1.remove()
        h2.remove()
    assert calls == {"head": 0, "block3": 0}
    n_batches = len(trace.length_batches([len(t) for t in token_ids], 8))
    assert seen == [1, 2] * n_batches


def test_bf16_states_keep_the_model_dtype(tokenizer, token_ids):
    model = trace.wrap(make_model("olmo2", n_layers=2).to(torch.bfloat16), tokenizer)
    dtypes = set()
    trace.stream_layers(model, token_ids[:3], lambda b: dtypes.add(b.states.dtype), progress=False)
    assert dtypes == {torch.bfloat16}


def test_streaming_collects_trace_garbage_and_leaves_the_collector_as_it_was(tokenizer, token_ids, monkeypatch):
    import gc

    model = trace.wrap(make_model("olmo2", n_layers=2), tokenizer)
    monkeypatch.setattr(trace, "_GC_EVERY", 1)
    collected = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: collected.append(gc.get_freeze_count()) or real(*a))
    trace.stream_layers(model, token_ids, lambda b: None, batch_size=2, progress=False)
    n_batches = len(trace.length_batches([len(t) for t in token_ids], 2))
    assert len(collected) == n_batches - 1 and all(n > 0 for n in collected)  # old objects set aside
    assert gc.get_freeze_count() == 0

    def fail(batch):
        raise RuntimeError("reducer failed")

    with pytest.raises(RuntimeError, match="reducer failed"):
        trace.stream_layers(model, token_ids, fail, progress=False)
    assert gc.get_freeze_count() == 0


def test_invalid_requests_are_refused(tokenizer, token_ids):
    model = trace.wrap(make_model("olmo2", n_layers=2), tokenizer)
    with pytest.raises(ValueError, match=r"valid layers are 0\.\.2"):
        trace.stream_layers(model, token_ids, lambda b: None, layers=[3], progress=False)
    with pytest.raises(ValueError, match="no samples"):
        trace.stream_layers(model, [], lambda b: None, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        trace.length_batches([3, 4], 0)
    with pytest.raises(TypeError):
        trace.encode(tokenizer, "one string", max_length=8)


def test_collate_pads_both_sides_with_real_token_positions():
    ids, mask, pos = trace.collate([[5, 6, 7], [8]], pad_id=0, padding_side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask, pos = trace.collate([[5, 6, 7], [8]], pad_id=9, padding_side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 9, 9]]
    assert pos.tolist() == [[0, 1, 2], [0, 0, 0]]


def test_length_batches_group_similar_lengths_and_cover_every_sample():
    batches = trace.length_batches([5, 1, 9, 3, 7], 2)
    assert batches == [[2, 4], [0, 3], [1]]
    assert sorted(i for b in batches for i in b) == list(range(5))


def test_structural_layout_fallback_for_an_unknown_architecture():
    model = make_model("llama", n_layers=2)
    model.config.model_type = "some_new_arch"
    layout = trace.resolve_layout(model)
    assert layout == trace.ModuleLayout("model.embed_tokens", "model.layers", "model.norm", "lm_head")


def test_layout_failure_is_a_clear_error():
    class Weird(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"model_type": "weird", "num_hidden_layers": 2})()
            self.blocks = torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match="cannot find the decoder blocks"):
        trace.resolve_layout(Weird())
