"""evaluate_tuned also scores the arithmetic alone, so a sweep row can tell the format from the knowledge."""

from __future__ import annotations

import math

import pytest
from conftest import make_model

from mbt import knowledge, tune

pytestmark = pytest.mark.usefixtures("one_thread")

GSM = [{"question": f"Tom has {i} pens and buys {i + 2} more. How many?",
        "answer": f"He has {i}+{i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2} pens.\n#### {2 * i + 2}"}
       for i in range(6)]


def test_the_arithmetic_alone_is_scored_on_the_same_held_out_items(tokenizer):
    model = make_model("olmo2", n_layers=2, hidden=32)
    out = tune.evaluate_tuned(model, tokenizer, "toy-math", n_test=4, max_new_tokens=4, batch_size=4,
                              retention={}, n_boot=200, progress=False)
    items = knowledge.held_out_items("toy-math", 4)
    sets = knowledge.prompt_sets("toy-math", items)
    rows = knowledge.score_model(model, tokenizer, {"arithmetic": sets["arithmetic"]}, batch_size=4)
    assert out["arithmetic"] == pytest.approx(rows["correct"].mean())
    assert len(out["accuracy_items"]) == 4 and set(out["accuracy_items"]) <= {"0", "1"}
    assert out["accuracy"] == pytest.approx(out["accuracy_items"].count("1") / 4)
    assert out["arithmetic_ci_low"] <= out["arithmetic"] <= out["arithmetic_ci_high"]
    assert {"arithmetic", "arithmetic_ci_low", "arithmetic_ci_high"} <= set(tune.SWEEP_COLUMNS)


def test_a_real_task_asks_it_in_its_few_shot_format_and_a_choice_task_has_none(tokenizer, tmp_path):
    import json

    test = tmp_path / "test.jsonl"
    test.write_text("\n".join(json.dumps(r) for r in GSM))
    model = make_model("olmo2", n_layers=2, hidden=32)
    shots = [{"question": "1 + 1?", "answer": "1+1 = <<1+1=2>>2\n#### 2"}] * 3
    out = tune.evaluate_tuned(model, tokenizer, "gsm8k", n_test=6, max_new_tokens=4, batch_size=6, retention={},
                              n_boot=200, data_path=test, own_shot_items=shots, progress=False)
    items = knowledge.held_out_items("gsm8k", 6, path=test)
    arithmetic = knowledge.prompt_sets("gsm8k", items, shots=3, shot_items=shots)["arithmetic"]
    assert arithmetic.prompts[0].startswith("Question: 1 + 1?") and arithmetic.prompts[0].endswith("=")
    rows = knowledge.score_model(model, tokenizer, {"arithmetic": arithmetic}, batch_size=6)
    assert out["arithmetic"] == pytest.approx(rows["correct"].mean())
    mc = tune.evaluate_tuned(model, tokenizer, "toy-mc", n_test=4, batch_size=4, retention={}, n_boot=200,
                             progress=False)
    assert math.isnan(mc["arithmetic"]) and math.isnan(mc["arithmetic_ci_high"])
