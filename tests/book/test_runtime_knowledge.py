"""Chapter 10's runtime: its prompts, per-model stored scores (rungs share their Base), stored swaps."""

from __future__ import annotations

import pytest

import mbt
from mbt import book, knowledge
from mbt.book import runtime
from mbt.toy import LADDER

pytestmark = pytest.mark.usefixtures("one_thread")


class _Spec:
    def __init__(self, name, family="toy"):
        self.name, self.family = name, family


class _Pair:
    def __init__(self, name, family="toy"):
        self.spec = _Spec(name, family)


def test_the_pairs_compared_are_the_ladder_for_a_rung_else_the_pair():
    assert book.knowledge_pairs(_Pair("toy-sft60")) == list(LADDER)
    assert book.knowledge_pairs(_Pair("olmo2-1b", "olmo2")) == ["olmo2-1b"]


def test_prompts_are_the_held_out_items_in_three_formats_and_bad_sizes_are_refused():
    sets = book.knowledge_prompts("toy-math", 5)
    want = knowledge.prompt_sets("toy-math", knowledge.held_out_items("toy-math", 5))
    assert sets == want
    with pytest.raises(ValueError, match="n_items must be a whole number >= 1"):
        book.knowledge_prompts("toy-math", 0)
    assert book.quick_size("n_items", 200, True) == book.QUICK["n_items"]
    assert book.quick_size("n_swap", 100, True) == book.QUICK["n_swap"]


def test_scores_are_stored_per_model_so_a_shared_base_is_scored_once(save_pair, monkeypatch):
    base_dir, sft_dir = save_pair("olmo2", base_layers=4)
    calls = []
    real = knowledge.score_model

    def counted(model, *args, **kwargs):
        calls.append(mbt.trace.unwrap(model).config._name_or_path)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(knowledge, "score_model", counted)
    sets = {name: ps.head(3) for name, ps in book.knowledge_prompts("toy-math", 3).items()}
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    first = book.knowledge_scores(pair, sets, batch_size=3)
    assert len(calls) == 2 and set(first["model"]) == {"base", "sft"}
    twin = mbt.load_pair(base=str(base_dir), sft=str(base_dir), device="cpu")  # the same Base, twice
    again = book.knowledge_scores(twin, sets, batch_size=3)
    assert len(calls) == 2, "a Base already scored with these prompts is read back, whatever the pair"
    base_rows = first[first["model"] == "base"].drop(columns="model").reset_index(drop=True)
    for role in ("base", "sft"):
        assert again[again["model"] == role].drop(columns="model").reset_index(drop=True).equals(base_rows)
    ladder = book.knowledge_ladder(pair, [runtime.pair_label(pair)], sets, batch_size=3)
    assert set(ladder["pair"]) == {runtime.pair_label(pair)} and ladder["sft_steps"].isna().all()

    swaps_calls = []
    real_swaps = knowledge.swap_sweeps
    monkeypatch.setattr(knowledge, "swap_sweeps", lambda *a, **k: swaps_calls.append(1) or real_swaps(*a, **k))
    one = book.knowledge_swaps(pair, sets, n_swap=2, n_segments=2, batch_size=3)
    two = book.knowledge_swaps(pair, sets, n_swap=2, n_segments=2, batch_size=3)
    assert len(swaps_calls) == 1 and len(one) == len(two)
    assert all(len(s) == 2 for s in two["scores"])  # the first n_swap problems only
