"""`mbt complete`: prompts and targets from files, refused when bad before any model loads."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mbt import cli


def _lines(path, values):
    path.write_text("\n".join(json.dumps(v) for v in values) + "\n")
    return str(path)


@pytest.fixture
def files(tmp_path):
    prompts = _lines(tmp_path / "prompts.jsonl", ["Tom has 3 apples. So", "Question: 2 + 2?\nAnswer:"])
    targets = _lines(tmp_path / "targets.jsonl", [" Tom has 3 + 4 = 7 apples.", " 4"])
    return prompts, targets


def test_scores_both_models_of_a_pair(save_pair, files, tmp_path, capsys):
    base_dir, sft_dir = save_pair("olmo2")
    out = tmp_path / "rows.csv"
    code = cli.main(["complete", "--base", str(base_dir), "--sft", str(sft_dir), "--prompts", files[0],
                     "--targets", files[1], "--match", "numbers", "--max-new-tokens", "4", "--out", str(out),
                     "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv(out)
    assert rows["model"].tolist() == ["base", "base", "sft", "sft"] and rows["item"].tolist() == [0, 1, 0, 1]
    assert "base: exact match" in capsys.readouterr().out


@pytest.mark.parametrize(("prompts", "targets", "message"), [
    ([], [], "prompts is empty"),
    (["a", "b"], [" 1"], "prompts has 2 entries but targets has 1"),
    (["a"], [" "], r"targets\[0\] is empty"),
])
def test_bad_lists_are_refused_before_any_model_loads(tmp_path, capsys, monkeypatch, prompts, targets, message):
    import transformers

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda *a, **k: pytest.fail("loaded a tokenizer before refusing the lists"))
    p, t = _lines(tmp_path / "p.jsonl", prompts), _lines(tmp_path / "t.jsonl", targets)
    code = cli.main(["complete", "--model", str(tmp_path / "nowhere"), "--prompts", p, "--targets", t,
                     "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    import re

    assert re.search(message, err), err


def test_a_target_that_tokenizes_to_nothing_is_refused_before_the_weights_load(save_pair, tmp_path, capsys,
                                                                                monkeypatch):
    from mbt import loading

    monkeypatch.setattr(loading, "load_causal_lm", lambda *a, **k: pytest.fail("loaded weights"))
    base_dir, _ = save_pair("olmo2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    real = type(tok).__call__

    def dropping(self, text, *args, **kwargs):  # a tokenizer that knows no snowman
        out = real(self, text, *args, **kwargs)
        if isinstance(text, str) and text.strip() == "\u2603":
            out["input_ids"] = []
        return out

    monkeypatch.setattr(type(tok), "__call__", dropping)
    p = _lines(tmp_path / "p.jsonl", ["a", "b"])
    t = _lines(tmp_path / "t.jsonl", [" 1", " \u2603"])
    code = cli.main(["complete", "--model", str(base_dir), "--prompts", p, "--targets", t,
                     "--out", str(tmp_path / "o.csv")])
    assert code == 2 and "targets[1] (' \u2603') tokenizes to nothing" in capsys.readouterr().err


def test_other_arguments_are_refused_by_name(tmp_path, files, capsys):
    base = ["complete", "--prompts", files[0], "--targets", files[1]]
    assert cli.main([*base, "--model", "m", "--out", str(tmp_path / "o.txt")]) == 2
    assert "--out must end in .csv or .parquet" in capsys.readouterr().err
    assert cli.main([*base, "--model", "m", "--pair", "toy", "--out", str(tmp_path / "o.csv")]) == 2
    assert "give one of --model" in capsys.readouterr().err
    assert cli.main([*base, "--pair", "olmo9", "--out", str(tmp_path / "o.csv")]) == 2
    assert "valid names" in capsys.readouterr().err
    assert cli.main(["complete", "--model", "m", "--prompts", str(tmp_path / "none.jsonl"), "--targets", files[1],
                     "--out", str(tmp_path / "o.csv")]) == 2
    assert "--prompts: no such file" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"prompt": 1}\n')
    assert cli.main(["complete", "--model", "m", "--prompts", str(tmp_path / "bad.jsonl"), "--targets", files[1],
                     "--out", str(tmp_path / "o.csv")]) == 2
    assert "must hold strings only" in capsys.readouterr().err
