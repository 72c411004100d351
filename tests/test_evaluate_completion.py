"""completion_exact_match: any prompt against an expected continuation, with GSM8K's batching and stopping.

The oracle is a tiny OLMo 2 model forced to known continuations: one-hot embeddings, blocks that add
nothing, and an LM head that maps every token to its successor in a chain, so greedy decoding after a
prompt spells out a chosen text exactly.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tokenizer
from transformers import Olmo2Config, Olmo2ForCausalLM

from mbt import evaluate
from mbt.evaluate import check_completions, completion_exact_match

pytestmark = pytest.mark.usefixtures("one_thread")

P1, T1 = "Tom has 3 apples. He gets 4 more apples. So", " Tom has 3 + 4 = 7 apples."
P2, T2 = "The quick brown fox", " jumps over the lazy dog"
CORPUS = [P1 + T1, P2 + T2, "Ben has 10 pens and 12 cards; Ava said no.", "Mia 7 8 9 pears 63"] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(400, corpus=CORPUS, specials=("<|pad|>", "<|bos|>", "<|eos|>"), prepend_bos=True)


def _forced(tokenizer, chains: dict[str, str]) -> Olmo2ForCausalLM:
    """A model whose greedy continuation of each prompt is its chain's text, then EOS."""
    vocab = len(tokenizer)
    successor: dict[int, int] = {}
    for prompt, text in chains.items():
        ids = [tokenizer(prompt)["input_ids"][-1], *tokenizer(text, add_special_tokens=False)["input_ids"],
               tokenizer.eos_token_id]
        for a, b in zip(ids, ids[1:], strict=False):
            assert successor.setdefault(a, b) == b, "the chains must not share a token with two successors"
    cfg = Olmo2Config(vocab_size=vocab, hidden_size=vocab, intermediate_size=8, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Olmo2ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(vocab))
        for layer in model.model.layers:  # every block adds zero to the residual stream
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        head = torch.zeros(vocab, vocab)
        for token in range(vocab):
            head[successor.get(token, tokenizer.eos_token_id), token] = 1.0
        model.lm_head.weight.copy_(head)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = 0, 2
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return _forced(tokenizer, {P1: T1, P2: T2})


def test_the_forced_model_spells_out_its_chains(model, tokenizer):
    tokenizer.padding_side = "right"
    rows = completion_exact_match(model, tokenizer, [P1, P2], [T1, T2], batch_size=2, progress=False)
    assert list(rows.columns) == ["item", "prompt", "target", "generation", "predicted", "correct"]
    assert rows["generation"].tolist() == [T1.strip(), T2.strip()]
    assert rows["correct"].tolist() == [True, True]
    assert tokenizer.padding_side == "right" and not model.training
    one = completion_exact_match(model, tokenizer, [P1, P2], [T1, T2], batch_size=1, progress=False)
    assert one["generation"].tolist() == rows["generation"].tolist()


def test_text_match_is_exact_at_a_word_boundary(model, tokenizer):
    prompts = [P1, P1, P1, P2, P2]
    targets = [" Tom has 3 + 4 = 8 apples.",  # a wrong number
               " Tom has 3 + 4 = 7 apple",  # stops inside a word: "apples" goes on with a letter
               " Tom has 3 + 4 = 7",  # a prefix that ends where a word ends
               " jumps over",  # the model goes on after the target: still its continuation
               " Jumps over the lazy dog"]  # case counts
    rows = completion_exact_match(model, tokenizer, prompts, targets, progress=False)
    assert rows["correct"].tolist() == [False, False, True, True, False]
    assert rows["generation"][0] == rows["predicted"][0] == "Tom has 3 + 4 = 7"  # stopped where it diverged


def test_a_row_stops_as_soon_as_its_text_decides_the_item(model, tokenizer):
    rows = completion_exact_match(model, tokenizer, [P1, P2], [" Ben has", " jumps over"], progress=False)
    assert rows["generation"][0] == "Tom"  # diverged at the first token: no more is generated
    assert rows["generation"][1].startswith("jumps over") and len(rows["generation"][1]) < len(T2.strip())
    assert rows["correct"].tolist() == [False, True]


def test_numbers_and_answer_matches(model, tokenizer):
    numbers = completion_exact_match(model, tokenizer, [P1, P1, P1], [" Ben has 3 + 4 = 7 pears.", " 3 + 4 = 8",
                                                                     " 3 4"], match="numbers", progress=False)
    assert numbers["correct"].tolist() == [True, False, True]  # words do not count, numbers in order do
    assert numbers["predicted"][0] == "3 4 7" and numbers["predicted"][2] == "3 4"
    answer = completion_exact_match(model, tokenizer, [P1, P1], [" so 7.\n#### 7", "#### 8"], match="answer",
                                    progress=False)
    assert answer["correct"].tolist() == [True, False]  # the last number of the continuation, GSM8K's rule
    assert answer["predicted"].tolist() == ["7", "7"]


def test_settled_numbers_wait_for_a_number_that_may_grow():
    assert evaluate._settled_numbers("Tom has 3 + 4") == [3.0]
    assert evaluate._settled_numbers("Tom has 3 + 4 ") == [3.0, 4.0]
    assert evaluate._settled_numbers("it is 3.") == []  # "3." may become "3.5"
    assert evaluate.extract_numbers("Ben has 18 - 12 = 6 beads, $1,200 and -3.") == [18, 12, 6, 1200, -3]
    decided = evaluate._until(" 3 + 4 = 7", "numbers")
    assert not decided("3 + 4 =") and decided("3 + 4 = 7 ") and decided("3 + 5 ")
    text = evaluate._until(" jumps over", "text")
    assert not text(" jumps ov") and text(" jumps over ") and text(" runs") and not text(" jumps\ufffd")


def _refused(monkeypatch, model, tokenizer, prompts, targets, match, message):
    monkeypatch.setattr(model, "generate", lambda *a, **k: pytest.fail("generated before refusing bad input"))
    with pytest.raises(ValueError, match=message):
        completion_exact_match(model, tokenizer, prompts, targets, match=match, progress=False)


@pytest.mark.parametrize(("prompts", "targets", "match", "message"), [
    ([], [], "text", "prompts is empty"),
    ([P1, P2], [T1], "text", "prompts has 2 entries but targets has 1"),
    ([P1], [" "], "text", r"targets\[0\] is empty"),
    ([""], [T1], "text", r"prompts\[0\] is empty"),
    ([P1, P2], [T1, " no number"], "numbers", r"targets\[1\] .* holds no number"),
    ([P1], [T1], "exact", "match must be one of"),
])
def test_bad_input_is_refused_before_anything_is_generated(monkeypatch, model, tokenizer, prompts, targets, match,
                                                           message):
    _refused(monkeypatch, model, tokenizer, prompts, targets, match, message)


def test_a_target_that_tokenizes_to_nothing_is_refused(monkeypatch, model, tokenizer):
    class Dropping:
        """A tokenizer that drops the character it does not know."""

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [] if text.strip() == "\u2603" else [5]}

    with pytest.raises(ValueError, match=r"targets\[1\] \(' \u2603'\) tokenizes to nothing"):
        check_completions([P1, P2], [T1, " \u2603"], Dropping())
    with pytest.raises(TypeError, match="not one string"):
        check_completions(P1, [T1])
    with pytest.raises(TypeError, match=r"targets\[0\] must be a string"):
        check_completions([P1], [7])
