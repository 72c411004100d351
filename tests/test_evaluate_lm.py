"""Log-likelihood scorers: MMLU letters, ToxiGen Yes/No, and perplexity with padding excluded."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tokenizer
from transformers import GPT2Config, GPT2LMHeadModel, Olmo2Config, Olmo2ForCausalLM

from mbt import evaluate
from mbt.evaluate import mmlu_accuracy, perplexity, pooled_perplexity, toxigen_accuracy, toxigen_label

pytestmark = pytest.mark.usefixtures("one_thread")


CORPUS = [
    "Question: Which colour is the sky?\nA) red B) blue C) green D) black\nAnswer: B",
    "Question: What is 2 + 2?\nA) 3 B) 4 C) 5 D) 6\nAnswer: B",
    "Is the following statement toxic? Answer Yes or No.\nStatement: I like cats.\nAnswer: No",
    "Is it? Answer: Yes. Is it not? Answer: No. A C D A C D",
    "The quick brown fox jumps over the lazy dog near the river bank.",
] * 20


@pytest.fixture(scope="module")
def tok():
    """BPE in which " A" … " D", " Yes" and " No" are single tokens; BOS prepended."""
    fast = make_tokenizer(400, corpus=CORPUS, specials=("<|pad|>", "<|bos|>", "<|eos|>"), prepend_bos=True)
    for word in (" A", " B", " C", " D", " Yes", " No"):
        assert len(fast(word, add_special_tokens=False)["input_ids"]) == 1, word
    return fast


def _model(vocab: int, seed: int = 0, arch: str = "olmo2"):
    torch.manual_seed(seed)
    if arch == "gpt2":  # absolute position embeddings: wrong position ids under left padding would show
        return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                          pad_token_id=0, bos_token_id=1, eos_token_id=2)).eval()
    cfg = Olmo2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return Olmo2ForCausalLM(cfg).eval()


def _rig(model: Olmo2ForCausalLM, token_id: int, bias: float = 50.0) -> Olmo2ForCausalLM:
    """Give the LM head a bias that makes ``token_id`` far more likely everywhere."""
    old = model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        head.bias[token_id] = bias
    model.lm_head = head
    return model


MC = [
    {"question": "Which colour is the sky?", "choices": ["red", "blue", "green", "black"], "answer": 1},
    {"question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": "C"},
    {"question": "Pick one.", "choices": ["x", "y", "z", "w"], "answer": 2},
]


@pytest.mark.parametrize("letter", ["A", "C", "D"])
def test_mmlu_picks_the_rigged_letter(tok, letter):
    token = tok(f" {letter}", add_special_tokens=False)["input_ids"][0]
    model = _rig(_model(len(tok)), token)
    df = mmlu_accuracy(model, tok, MC, batch_size=2, progress=False)
    assert list(df.columns) == ["item", "prompt", "logprobs", "predicted", "gold", "correct"]
    assert df["predicted"].tolist() == [letter] * 3
    assert df["gold"].tolist() == ["B", "C", "C"]
    assert df["correct"].tolist() == [g == letter for g in ("B", "C", "C")]
    assert all(max(lp) > -1e-3 for lp in df["logprobs"])  # the rigged letter is nearly certain


def test_mmlu_scores_are_letter_loglikelihoods(tok):
    model = _model(len(tok), seed=3)
    df = mmlu_accuracy(model, tok, MC, batch_size=3, progress=False)
    for i, item in enumerate(MC):
        ids = torch.tensor([tok(evaluate.mmlu_prompt(item))["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].double(), -1)
        want = [float(logp[tok(f" {c}", add_special_tokens=False)["input_ids"][0]]) for c in "ABCD"]
        assert df["logprobs"][i] == pytest.approx(want, abs=1e-5)
        assert df["predicted"][i] == "ABCD"[max(range(4), key=want.__getitem__)]
    # the multi-token path (one sequence per option) agrees with the one-pass path
    prompts = [evaluate.mmlu_prompt(it) for it in MC]
    fast = evaluate._continuation_logprobs(model, tok, prompts, [[" A", " B", " C", " D"]] * 3, batch_size=2,
                                           progress=False, desc="")
    slow = evaluate._continuation_logprobs(model, tok, prompts, [[" A", " B", " C", " D", " Dog"]] * 3,
                                           batch_size=2, progress=False, desc="")
    for f, s in zip(fast, slow, strict=True):
        assert s[:4] == pytest.approx(f, abs=1e-5)


def test_mmlu_k_shot_prompt_and_errors(tok):
    prompt = evaluate.mmlu_prompt(MC[2], MC[:2])
    assert prompt == (
        "Question: Which colour is the sky?\nA) red B) blue C) green D) black\nAnswer: B\n\n"
        "Question: What is 2 + 2?\nA) 3 B) 4 C) 5 D) 6\nAnswer: C\n\n"
        "Question: Pick one.\nA) x B) y C) z D) w\nAnswer:"
    )
    model = _model(len(tok))
    df = mmlu_accuracy(model, tok, MC[2:], shots=2, shot_items=MC, progress=False)
    assert df["prompt"][0] == prompt
    with pytest.raises(ValueError, match="shot_items"):
        mmlu_accuracy(model, tok, MC, shots=1, progress=False)
    with pytest.raises(ValueError, match="choice index or letter"):
        mmlu_accuracy(model, tok, [{"question": "q", "choices": ["a", "b"], "answer": 3}], progress=False)


def test_toxigen_labels_and_rigged_prediction(tok):
    assert toxigen_label({"text": "t", "toxicity_ai": 3.0, "toxicity_human": 3.0}) == 1  # 6 > 5.5
    assert toxigen_label({"text": "t", "toxicity_ai": 2.5, "toxicity_human": 3.0}) == 0  # 5.5 is not toxic
    assert toxigen_label({"text": "t", "label": True}) == 1
    assert toxigen_label({"text": "t", "label": "benign"}) == 0
    assert toxigen_label({"text": "t", "prompt_label": 1}) == 1
    with pytest.raises(ValueError, match="needs"):
        toxigen_label({"text": "t"})
    items = [{"text": "I like cats.", "label": 0}, {"text": "Bad words here.", "label": 1}]
    yes = tok(" Yes", add_special_tokens=False)["input_ids"][0]
    df = toxigen_accuracy(_rig(_model(len(tok)), yes), tok, items, progress=False)
    assert df["predicted"].tolist() == [1, 1]
    assert df["correct"].tolist() == [False, True]
    assert (df["logprob_yes"] > df["logprob_no"]).all()
    no = tok(" No", add_special_tokens=False)["input_ids"][0]
    df = toxigen_accuracy(_rig(_model(len(tok)), no), tok, items, shots=1, shot_items=items[1:], progress=False)
    assert df["predicted"].tolist() == [0, 0]
    assert df["correct"].tolist() == [True, False]


TEXTS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Is it?",
    "Question: What is 2 + 2?\nA) 3 B) 4 C) 5 D) 6\nAnswer: B",
    "A",
]


def _by_hand(model, tok, text: str) -> tuple[float, int]:
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].double()
    ce = torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")
    return float(ce.mean()), ce.numel()


@pytest.mark.parametrize("arch", ["olmo2", "gpt2"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_perplexity_excludes_padding(tok, side, arch):
    model = _model(len(tok), seed=1, arch=arch)
    alone = [perplexity(model, tok, [t], batch_size=1, padding_side=side, progress=False) for t in TEXTS]
    batched = perplexity(model, tok, TEXTS, batch_size=4, padding_side=side, progress=False)
    assert list(batched.columns) == ["item", "nll", "nll_sum", "n_tokens", "perplexity"]
    for i, text in enumerate(TEXTS):
        nll, n = _by_hand(model, tok, text)
        assert batched["n_tokens"][i] == n == alone[i]["n_tokens"][0]
        assert batched["nll"][i] == pytest.approx(nll, abs=1e-5)
        assert alone[i]["nll"][0] == pytest.approx(nll, abs=1e-5)
        assert batched["perplexity"][i] == pytest.approx(math.exp(nll), rel=1e-5)
    pooled = pooled_perplexity(batched)
    total = sum(_by_hand(model, tok, t)[0] * _by_hand(model, tok, t)[1] for t in TEXTS)
    assert pooled == pytest.approx(math.exp(total / sum(_by_hand(model, tok, t)[1] for t in TEXTS)), rel=1e-5)


def test_perplexity_truncation_and_single_token(tok):
    model = _model(len(tok), seed=1)
    df = perplexity(model, tok, [TEXTS[0], ""], max_length=5, progress=False)
    assert df["n_tokens"].tolist() == [4, 0]  # 5 tokens -> 4 targets; BOS alone -> none
    assert math.isnan(df["nll"][1])
    assert pooled_perplexity(df) == pytest.approx(df["perplexity"][0])
    with pytest.raises(TypeError):
        perplexity(model, tok, "one string", progress=False)
