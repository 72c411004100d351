"""mbt.knowledge: the three prompt sets, their scores, SFT − Base gains, and swaps scored by format and knowledge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mbt
from mbt import data, evaluate, knowledge
from mbt.toy import corpus

pytestmark = pytest.mark.usefixtures("one_thread")

GSM = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "A pen costs $3. How much do 2 pens cost?", "answer": "They cost $6.\n#### 6"},  # no "="
]
SHOTS = [{"question": "Tom has 1 pen and finds 1 more. How many pens?", "answer": "1 + 1 = 2\n#### 2"},
         {"question": "Mia has 6 eggs and eats 1. How many eggs?", "answer": "6 - 1 = 5\n#### 5"}]


def test_toy_prompt_sets_are_the_corpus_form_and_the_qa_form():
    items = corpus.toy_math("test", 0)[:5]
    sets = knowledge.prompt_sets("toy-math", items)
    assert list(sets) == list(knowledge.FORMATS)
    assert [sets[f].match for f in knowledge.FORMATS] == ["numbers", "numbers", "answer"]
    forms = [corpus.own_format(it) for it in items]
    assert list(sets["own"].prompts) == [f["own_prompt"] for f in forms]
    assert list(sets["arithmetic"].targets) == [f["arithmetic_target"] for f in forms]
    assert sets["qa"].prompts[0] == f"Question: {items[0]['question']}\nAnswer:"
    assert sets["qa"].targets[0] == " " + items[0]["answer"]
    assert all(s.items == (0, 1, 2, 3, 4) for s in sets.values())
    head = sets["own"].head(2)
    assert head.items == (0, 1) and head.prompts == sets["own"].prompts[:2] and head.match == "numbers"


def test_a_real_tasks_own_format_is_few_shot_and_its_arithmetic_the_last_step():
    sets = knowledge.prompt_sets("gsm8k", GSM, shots=2, shot_items=SHOTS)
    shots = "".join(f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in SHOTS)
    own = sets["own"]
    assert own.prompts[0] == shots + f"Question: {GSM[0]['question']}\nAnswer:" and own.match == "answer"
    arithmetic = sets["arithmetic"]
    assert arithmetic.items == (0,)  # the second answer has no "=": no arithmetic to ask
    solved = " In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24="  # up to the last "="
    assert arithmetic.prompts[0] == own.prompts[0] + solved
    assert arithmetic.targets[0] == " 72" and arithmetic.match == "numbers"
    assert sets["qa"].prompts[1] == f"Question: {GSM[1]['question']}\nAnswer:"  # 0-shot
    with pytest.raises(ValueError, match="shots=3 needs at least 3 shot_items"):
        knowledge.prompt_sets("gsm8k", GSM, shots=3, shot_items=SHOTS)
    with pytest.raises(ValueError, match="items is empty"):
        knowledge.prompt_sets("toy-math", [])


@pytest.mark.parametrize(("settings", "message"), [
    ({"n_items": 0}, "n_items must be a whole number >= 1"),
    ({"shots": 0}, "shots must be"),
    ({"n_items": 10, "n_swap": 20}, r"n_swap \(20\) must not exceed n_items \(10\)"),
    ({"n_segments": True}, "n_segments must be"),
    ({"batch_size": 1.5}, "batch_size must be"),
    ({"task": "toy-mc"}, "must be a question/answer task"),
    ({"task": "nope"}, "unknown dataset"),
    ({"heads": ["receiver", "head"]}, "heads must be a non-empty list"),
    ({"heads": "receiver"}, "heads must be a non-empty list"),
])
def test_bad_settings_are_refused_by_name(settings, message):
    with pytest.raises(ValueError, match=message):
        knowledge.check_settings(**settings)


def test_held_out_items_and_shots_come_from_different_splits():
    items = knowledge.held_out_items("toy-math", 20)
    records = data.load_records("toy-math", split="test")
    assert items == [records[i] for i in data.sample_indices(len(records), 20, 0)]
    shots = knowledge.shot_examples("toy-math", 3)
    test_questions = {r["question"] for r in records}
    assert len(shots) == 3 and not {s["question"] for s in shots} & test_questions


def _per_item(rng: np.random.Generator, n: int = 60) -> pd.DataFrame:
    rows = []
    for fmt, (pb, ps) in {"own": (0.4, 0.1), "arithmetic": (0.5, 0.6), "qa": (0.0, 0.7)}.items():
        for model, p in (("base", pb), ("sft", ps)):
            for i, c in enumerate(rng.random(n) < p):
                rows.append({"pair": "toy", "sft_steps": 300.0, "model": model, "format": fmt, "item": i,
                             "correct": float(c), "generation": "" if fmt == "qa" and model == "base" else "x"})
    return pd.DataFrame(rows)


def test_summaries_and_paired_gains_are_the_item_means():
    per_item = _per_item(np.random.default_rng(0))
    summary = knowledge.summarize_scores(per_item, n_boot=500)
    assert len(summary) == 6 and set(summary["n"]) == {60}
    for row in summary.itertuples():
        part = per_item[(per_item["model"] == row.model) & (per_item["format"] == row.format)]
        assert row.score == pytest.approx(part["correct"].mean())
        assert row.ci_low <= row.score <= row.ci_high
        assert row.empty == (1.0 if (row.format, row.model) == ("qa", "base") else 0.0)
    gains = knowledge.paired_gains(per_item, n_boot=500)
    for row in gains.itertuples():
        wide = per_item[per_item["format"] == row.format].pivot(index="item", columns="model", values="correct")
        assert row.gain == pytest.approx((wide["sft"] - wide["base"]).mean())
        assert row.ci_low <= row.gain <= row.ci_high and row.pair == "toy" and row.n == 60


@pytest.fixture(scope="module")
def pair(save_pair):
    base_dir, sft_dir = save_pair("olmo2", base_layers=4)
    return mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")


def test_score_model_is_completion_exact_match_per_format(pair):
    sets = knowledge.prompt_sets("toy-math", corpus.toy_math("test", 0)[:4])
    rows = pd.concat([knowledge.score_model(m, pair.tokenizer, sets, batch_size=3).assign(model=role)
                      for role, m in pair.models().items()], ignore_index=True)
    assert len(rows) == 2 * 3 * 4 and rows.groupby(["model", "format"]).size().eq(4).all()
    own = sets["arithmetic"]
    direct = evaluate.completion_exact_match(mbt.trace.unwrap(pair.base), pair.tokenizer, list(own.prompts),
                                             list(own.targets), match=own.match, progress=False)
    mine = rows[(rows["model"] == "base") & (rows["format"] == "arithmetic")]
    assert mine["correct"].tolist() == direct["correct"].astype(float).tolist()
    assert mine["generation"].tolist() == direct["generation"].tolist()


def test_swaps_keep_each_rows_per_item_scores(pair, monkeypatch):
    sets = knowledge.prompt_sets("toy-math", corpus.toy_math("test", 0)[:3])
    swaps = knowledge.swap_sweeps(pair, sets, n_segments=2, heads=("receiver",), n_bootstrap=200, batch_size=3)
    assert set(swaps["score_name"]) == {"format", "knowledge"}
    assert set(swaps["format"]) == {"qa", "arithmetic"}
    for row in swaps.itertuples():  # each row's kept scores are the ones its mean was made of
        assert len(row.scores) == 3 and np.mean(row.scores) == pytest.approx(row.score)
    per_direction = swaps[(swaps["score_name"] == "format")].groupby("direction").size()
    assert per_direction.tolist() == [2 + 2, 2 + 2]  # receiver, donor, two segments
    real = knowledge.swap_sweep

    def extra_row(*args, **kwargs):
        table = real(*args, **kwargs)
        return pd.concat([table, table.iloc[:1]], ignore_index=True)

    monkeypatch.setattr(knowledge, "swap_sweep", extra_row)
    with pytest.raises(RuntimeError, match="cannot be matched to the rows"):
        knowledge.swap_sweeps(pair, sets, n_segments=2, heads=("receiver",), n_bootstrap=200)
