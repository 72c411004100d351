from __future__ import annotations

import json

import pandas as pd
import pytest

from mbt import cli


def test_pairs_lists_the_registry(capsys):
    assert cli.main(["pairs"]) == 0
    out = capsys.readouterr().out
    assert "allenai/OLMo-2-1124-13B-SFT" in out and "mistral-7b" in out


def test_analyze_writes_a_tidy_table(tmp_path, save_pair, capsys):
    base_dir, sft_dir = save_pair("olmo2")
    data = tmp_path / "gsm8k.jsonl"
    rows = [{"question": f"Tom has {i} apples and buys {i + 1} more. How many?",
             "answer": f"{i} + {i + 1} = <<{i}+{i + 1}={2 * i + 1}>>{2 * i + 1} #### {2 * i + 1}"} for i in range(12)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "res.csv"
    code = cli.main(["analyze", "--base", str(base_dir), "--sft", str(sft_dir), "--dataset", "gsm8k",
                     "--path", str(data), "--n-pooled", "10", "--n-token", "4", "--metrics", "cka,prompt_entropy",
                     "--out", str(out), "--device", "cpu", "--no-cache"])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(out)
    assert set(frame.metric) == {"cka", "prompt_entropy", "delta_prompt_entropy"}
    assert (frame.dataset == "gsm8k").all()
    assert frame[frame.metric == "cka"].n.eq(10).all()
    assert frame[frame.metric == "prompt_entropy"].n.eq(4).all()


def test_analyze_refuses_fewer_texts_than_asked_unless_allowed(capsys, tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"Q{i}?", "answer": f"#### {i}"}) for i in range(12)))
    args = ["analyze", "--pair", "nope", "--dataset", "gsm8k", "--path", str(data), "--n-pooled", "20",
            "--out", str(tmp_path / "o.csv")]
    assert cli.main(args) == 2
    assert "only 12 usable texts" in capsys.readouterr().err
    assert cli.main([*args, "--allow-fewer"]) == 2  # the data loads; the unknown pair fails next
    assert "valid names" in capsys.readouterr().err


def test_errors_are_reported_without_a_traceback(capsys, tmp_path):
    assert cli.main(["analyze", "--pair", "nope", "--dataset", "gsm8k", "--path", str(tmp_path / "x.jsonl"),
                     "--out", str(tmp_path / "o.txt")]) == 2
    assert "must end in .csv or .parquet" in capsys.readouterr().err
    assert cli.main(["book", "--pair", "olmo9"]) == 2
    assert "valid names" in capsys.readouterr().err
    assert cli.main(["book", "--pair", "toy", "--root", str(tmp_path)]) == 2
    assert "has no _config.yml" in capsys.readouterr().err


def test_unknown_subcommand_exits():
    with pytest.raises(SystemExit):
        cli.main(["frobnicate"])


def test_tune_subcommands_are_wired(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["tune", "sweep", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--masks" in out and "--seeds" in out and "resume" in out
