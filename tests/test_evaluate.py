"""GSM8K answer extraction, exact match by generation, and teacher-forced answer NLL."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_tokenizer
from transformers import Olmo2Config, Olmo2ForCausalLM

from mbt import evaluate
from mbt.evaluate import answer_nll, extract_gsm8k_answer, gsm8k_exact_match

# ---------------------------------------------------------------------------------------------
# extract_gsm8k_answer
# ---------------------------------------------------------------------------------------------

NATALIA = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NATALIA, 72.0),
        ("He pays 5*2 = <<5*2=10>>10 dollars.\n#### 1,234", 1234.0),
        ("The temperature drops 12-17 = <<12-17=-5>>-5 degrees.\n#### -5", -5.0),
        ("Each costs 7/2 = <<7/2=3.5>>3.5 dollars.\n#### 3.5", 3.5),
        ("She earns $12 per hour.\n#### $12", 12.0),
        ("#### 42.", 42.0),
        ("#### 1,000,000", 1_000_000.0),
        ("#### -$5", -5.0),
        ("The answer is 7 #### 8 and later #### 9", 8.0),  # the first ####
        ("So she has 3 + 4 = 7 apples.", 7.0),  # no ####: last number
        ("It costs $1,234.50.", 1234.5),
        ("First 5 apples, then 2, finally 10.", 10.0),
        ("Read pages 3-4 today.", 4.0),  # a hyphen between numbers is no sign
        ("The change was -3.", -3.0),
        ("She spent 20 - 5", 5.0),  # a spaced minus between numbers is binary, not a sign
        ("She had 20 -5", 5.0),  # a minus after a number is binary even when it touches the next one
        ("It is (3) -2", 2.0),  # ... and after a closing bracket
        ("-5", -5.0),
        ("x = -3", -3.0),
        ("so x=-3", -3.0),
        ("The result is (-4)", -4.0),
        ("She owes - 5 dollars", 5.0),  # a minus that does not touch the number is no sign
        ("#### $-7", -7.0),
        ("#### \nno number after the marks, but 6 before", 6.0),
        ("no numbers at all", None),
        ("", None),
    ],
)
def test_extract_gsm8k_answer(text, expected):
    got = extract_gsm8k_answer(text)
    if expected is None:
        assert got is None
    else:
        assert isinstance(got, float)
        assert got == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# a tiny tokenizer and model
# ---------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = [
    "Tom has 3 apples. He gets 4 more apples. Tom has 3 + 4 = 7 apples.",
    "Ava has 10 pens and gives 2 to Ben, so she has 8 pens left.",
    "Question: How many? Answer: 12 #### 12", "The quick brown fox jumps over the lazy dog.",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(320, corpus=CORPUS, specials=("<|pad|>", "<|bos|>", "<|eos|>"), prepend_bos=True)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    cfg = Olmo2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    m = Olmo2ForCausalLM(cfg).eval()
    m.generation_config.pad_token_id, m.generation_config.eos_token_id = 0, 2
    return m


ITEMS = [
    {"question": "Tom has 3 apples. He gets 4 more apples. How many apples does Tom have now?",
     "answer": "Tom has 3 + 4 = 7 apples.\n#### 7"},
    {"question": "Ava has 10 pens. She gives 2 pens to Ben. How many pens does Ava have left?",
     "answer": "Ava has 10 - 2 = 8 pens left.\n#### 8"},
    {"question": "How many?", "answer": "It is 1,234.\n#### 1,234"},
    {"question": "Sam buys 2 bags of 5 cards. How many cards?", "answer": "2 * 5 = 10\n#### 10"},
]
SHOTS = [{"question": "Ben has 1 pen and finds 1 more. How many pens?", "answer": "1 + 1 = 2\n#### 2"},
         {"question": "Mia has 6 eggs and eats 1. How many eggs?", "answer": "6 - 1 = 5\n#### 5"}]

# What the rigged model "generates" after each question (the text after "Answer:").
SCRIPT = {
    ITEMS[0]["question"]: " Tom has 3 + 4 = 7 apples.\n#### 7\n\nQuestion: Ben has 9 pens.\nAnswer: #### 9",
    ITEMS[1]["question"]: " Ava has 10 - 2 = 9 pens left.\n#### 9<|eos|> junk 8",
    ITEMS[2]["question"]: " 1,234Question: What? #### 5",
    ITEMS[3]["question"]: " I do not know.",
}


def _rig_generate(monkeypatch, model, tokenizer, calls):
    """Replace ``model.generate`` by a scripted one that checks it receives left-padded prompts."""

    def fake_generate(input_ids, attention_mask, max_new_tokens, **kwargs):
        calls.append({"input_ids": input_ids.clone(), "attention_mask": attention_mask.clone(),
                      "padding_side": tokenizer.padding_side, **kwargs})
        assert kwargs["do_sample"] is False
        rows = []
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            n_pad = int((mask == 0).sum())
            assert bool((mask[:n_pad] == 0).all()) and bool((mask[n_pad:] == 1).all()), "not left padded"
            assert bool((ids[:n_pad] == tokenizer.pad_token_id).all())
            prompt = tokenizer.decode(ids[n_pad:], skip_special_tokens=True)
            question = prompt.rsplit("Question: ", 1)[1].rsplit("\nAnswer:", 1)[0]
            new = tokenizer(SCRIPT[question], add_special_tokens=False)["input_ids"][:max_new_tokens]
            rows.append(torch.cat([ids, torch.tensor(new, dtype=ids.dtype)]))
        width = max(len(r) for r in rows)
        return torch.stack([torch.cat([r, r.new_full((width - len(r),), tokenizer.pad_token_id)]) for r in rows])

    monkeypatch.setattr(model, "generate", fake_generate)


def test_exact_match_stop_strings_padding_and_scoring(monkeypatch, model, tokenizer):
    calls: list[dict] = []
    _rig_generate(monkeypatch, model, tokenizer, calls)
    tokenizer.padding_side = "right"
    df = gsm8k_exact_match(model, tokenizer, ITEMS, batch_size=3, progress=False)
    assert tokenizer.padding_side == "right"  # restored
    assert all(c["padding_side"] == "left" for c in calls)
    assert [len(c["input_ids"]) for c in calls] == [3, 1]
    assert list(df.columns) == ["item", "prompt", "generation", "predicted", "gold", "correct"]
    assert df["item"].tolist() == [0, 1, 2, 3]
    assert df["prompt"][0] == f"Question: {ITEMS[0]['question']}\nAnswer:"
    # cut at the first stop string; only new tokens; special tokens skipped
    assert df["generation"][0] == "Tom has 3 + 4 = 7 apples.\n#### 7"
    assert df["generation"][1] == "Ava has 10 - 2 = 9 pens left.\n#### 9 junk 8"
    assert df["generation"][2] == "1,234"
    assert df["generation"][3] == "I do not know."
    assert df["gold"].tolist() == [7.0, 8.0, 1234.0, 10.0]
    assert df["predicted"][0] == 7.0 and df["predicted"][1] == 9.0 and df["predicted"][2] == 1234.0
    assert math.isnan(df["predicted"][3])
    assert df["correct"].tolist() == [True, False, True, False]


def test_exact_match_k_shot_prompt(monkeypatch, model, tokenizer):
    calls: list[dict] = []
    _rig_generate(monkeypatch, model, tokenizer, calls)
    df = gsm8k_exact_match(model, tokenizer, ITEMS[:2], shots=2, shot_items=SHOTS, progress=False)
    expected = (f"Question: {SHOTS[0]['question']}\nAnswer: {SHOTS[0]['answer']}\n\n"
                f"Question: {SHOTS[1]['question']}\nAnswer: {SHOTS[1]['answer']}\n\n"
                f"Question: {ITEMS[0]['question']}\nAnswer:")
    assert df["prompt"][0] == expected
    assert df["correct"].tolist() == [True, False]
    with pytest.raises(ValueError, match="shot_items"):
        gsm8k_exact_match(model, tokenizer, ITEMS, shots=3, shot_items=SHOTS, progress=False)
    with pytest.raises(ValueError, match="shot_items"):
        gsm8k_exact_match(model, tokenizer, ITEMS, shots=1, progress=False)


def test_stop_criterion_is_per_row(tokenizer):
    prompt = tokenizer(["Question: a\nAnswer:", "Question: a\nAnswer:"], return_tensors="pt")["input_ids"]
    new = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" 7\n\nQuestion:", " 7 apples")]
    width = max(map(len, new))
    new_ids = torch.tensor([n + [0] * (width - len(n)) for n in new])
    ids = torch.cat([prompt, new_ids], dim=1)
    crit = evaluate._StopOnStrings(tokenizer, prompt.shape[1], evaluate.DEFAULT_STOP)
    assert crit(ids, None).tolist() == [True, False]


def _greedy_unpadded(model, tokenizer, prompt: str, n: int) -> str:
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    out = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt == tokenizer.eos_token_id:
                break
            out.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tokenizer.decode(out, skip_special_tokens=True)


def test_real_generation_matches_unpadded_greedy_decoding(model, tokenizer):
    """With real ``generate``: left padding in a batch gives each row its unpadded greedy text."""
    n = 12
    batched = gsm8k_exact_match(model, tokenizer, ITEMS, max_new_tokens=n, batch_size=4, stop=(),
                                progress=False)
    single = gsm8k_exact_match(model, tokenizer, ITEMS, max_new_tokens=n, batch_size=1, stop=(),
                               progress=False)
    assert batched["generation"].tolist() == single["generation"].tolist()
    for i, item in enumerate(ITEMS):
        reference = _greedy_unpadded(model, tokenizer, evaluate.gsm8k_prompt(item["question"]), n)
        assert batched["generation"][i] == reference.strip()
    assert tokenizer.padding_side == "right"
    assert not model.training


# ---------------------------------------------------------------------------------------------
# answer_nll
# ---------------------------------------------------------------------------------------------


def test_answer_nll_excludes_padding_and_prompt(model, tokenizer):
    alone = answer_nll(model, tokenizer, ITEMS, batch_size=1)
    batched = answer_nll(model, tokenizer, ITEMS, batch_size=4)
    assert list(alone.columns) == ["item", "nll", "nll_sum", "n_tokens"]
    torch.testing.assert_close(torch.tensor(batched["nll"].values), torch.tensor(alone["nll"].values),
                               rtol=0, atol=1e-5)
    assert batched["n_tokens"].tolist() == alone["n_tokens"].tolist()
    # oracle: score the answer tokens of one item by hand
    item = ITEMS[1]
    prompt_ids = tokenizer(evaluate.gsm8k_prompt(item["question"]))["input_ids"]
    answer_ids = tokenizer(" " + item["answer"], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    want = -sum(float(logp[len(prompt_ids) + j - 1, t]) for j, t in enumerate(answer_ids)) / len(answer_ids)
    assert batched["n_tokens"][1] == len(answer_ids)
    assert batched["nll"][1] == pytest.approx(want, abs=1e-5)
    # EOS adds one scored token; shots change the context, not the tokens scored
    with_eos = answer_nll(model, tokenizer, ITEMS, include_eos=True)
    assert (with_eos["n_tokens"] == alone["n_tokens"] + 1).all()
    shot = answer_nll(model, tokenizer, ITEMS, shots=1, shot_items=SHOTS)
    assert (shot["n_tokens"] == alone["n_tokens"]).all()
    assert not torch.allclose(torch.tensor(shot["nll"].values), torch.tensor(alone["nll"].values))
