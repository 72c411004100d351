from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import REPO

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
    args = ["analyze", "--base", str(tmp_path / "no-base"), "--sft", str(tmp_path / "no-sft"), "--dataset", "gsm8k",
            "--path", str(data), "--n-pooled", "20", "--out", str(tmp_path / "o.csv")]
    assert cli.main(args) == 2
    assert "only 12 usable texts" in capsys.readouterr().err
    assert cli.main([*args, "--allow-fewer"]) == 2  # the data loads; the missing model folders fail next
    err = capsys.readouterr().err
    assert "only 12 usable texts" not in err and "no-base" in err and err.count("\n") == 1


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


def _gsm8k_file(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    rows = [{"question": f"Tom has {i} apples and buys {i + 1} more. How many?",
             "answer": f"{i} + {i + 1} = <<{i}+{i + 1}={2 * i + 1}>>{2 * i + 1} #### {2 * i + 1}"} for i in range(12)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    return data


def _no_weights(monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)


@pytest.mark.parametrize("flags, match", [
    (["--metrics", "cka,ckaa"], "valid: 'all' or any of"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--n-pooled", "-3"], "--n-pooled must be a positive integer"),
    (["--max-length", "-5"], "--max-length must be a positive integer"),
    (["--n-token", "-1"], "--n-token must be >= 0"),
])
def test_analyze_checks_its_arguments_before_loading_anything(tmp_path, save_pair, monkeypatch, capsys, flags, match):
    import mbt.pairs

    base_dir, sft_dir = save_pair("olmo2")
    monkeypatch.setattr(mbt.pairs, "load_pair", lambda *a, **k: pytest.fail("the pair was loaded"))
    code = cli.main(["analyze", "--base", str(base_dir), "--sft", str(sft_dir), "--dataset", "gsm8k",
                     "--path", str(_gsm8k_file(tmp_path)), "--out", str(tmp_path / "o.csv"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and match in err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ")


def test_analyze_cache_hit_loads_no_weights(tmp_path, save_pair, monkeypatch, capsys):
    base_dir, sft_dir = save_pair("olmo2")
    args = ["analyze", "--base", str(base_dir), "--sft", str(sft_dir), "--dataset", "gsm8k", "--path",
            str(_gsm8k_file(tmp_path)), "--n-pooled", "8", "--n-token", "3", "--metrics", "cka,sparsity",
            "--device", "cpu", "--out", str(tmp_path / "a.csv")]
    assert cli.main(args) == 0
    first = pd.read_csv(tmp_path / "a.csv")
    capsys.readouterr()
    _no_weights(monkeypatch)
    assert cli.main([*args[:-1], str(tmp_path / "b.csv")]) == 0
    assert "mbt: cached analyze result" in capsys.readouterr().err
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "b.csv"))
    with pytest.raises(AssertionError, match="weights were loaded"):  # a miss does load them
        cli.main([*args[:-1], str(tmp_path / "c.csv"), "--no-cache"])


def test_analyze_of_a_pooled_only_dataset_skips_token_metrics(tmp_path, save_pair, capsys):
    base_dir, sft_dir = save_pair("olmo2")
    data = tmp_path / "humaneval.jsonl"
    data.write_text("\n".join(json.dumps({"task_id": f"t/{i}", "prompt": f"def f{i}(x):\n    return x + {i}\n",
                                          "canonical_solution": f"    return x + {i}\n"}) for i in range(6)))
    out = tmp_path / "h.csv"
    code = cli.main(["analyze", "--base", str(base_dir), "--sft", str(sft_dir), "--dataset", "humaneval", "--path",
                     str(data), "--n-pooled", "6", "--device", "cpu", "--no-cache", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    frame = pd.read_csv(out)
    assert "cka" in set(frame.metric) and "prompt_entropy" not in set(frame.metric)


def test_one_line_errors_and_debug_tracebacks(tmp_path, capsys):
    args = ["analyze", "--pair", "olmo9", "--dataset", "gsm8k", "--path", str(_gsm8k_file(tmp_path)),
            "--out", str(tmp_path / "o.csv")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbt: error: unknown pair 'olmo9'") and err.count("\n") == 1
    assert cli.main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("mbt: error: unknown pair")


def test_bugs_keep_their_traceback(monkeypatch):
    def buggy(args):
        raise TypeError("a real bug")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["pairs"].set_defaults(func=buggy)
    with pytest.raises(TypeError, match="a real bug"):
        cli.main(["pairs"])


def test_subprocess_error_is_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mbt.cli", "analyze", "--base", str(tmp_path / "nowhere"),
                           "--sft", str(tmp_path / "nowhere"), "--dataset", "gsm8k", "--path",
                           str(_gsm8k_file(tmp_path)), "--out", str(tmp_path / "o.csv")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("mbt: error: ") and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------
# every subcommand checks what needs no model before building, loading or training one


def _nothing_loads(monkeypatch):
    import mbt.pairs
    import mbt.tune.sweeps
    from mbt import data, toy
    from mbt.book import jobs

    monkeypatch.setattr(mbt.pairs, "load_pair", lambda *a, **k: pytest.fail("a pair was loaded"))
    monkeypatch.setattr(mbt.pairs, "resolve_toy", lambda *a, **k: pytest.fail("the toy pair was built"))
    monkeypatch.setattr(mbt.tune.sweeps, "_resolve_base", lambda *a, **k: pytest.fail("the Base was resolved"))
    monkeypatch.setattr(data, "load_texts", lambda *a, **k: pytest.fail("texts were read"))
    monkeypatch.setattr(toy, "build", lambda *a, **k: pytest.fail("the toy pair was built"))
    monkeypatch.setattr(jobs, "_execute", lambda *a, **k: pytest.fail("a chapter was executed"))


@pytest.mark.parametrize("flags, match", [
    (["--masks", "0110x"], "unknown mask family"),
    (["--masks", "012"], "unknown mask family"),
    (["--masks", ","], "no masks given"),
    (["--seeds", "0,a"], "--seeds takes comma-separated whole numbers"),
    (["--seeds", ""], "--seeds is empty"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--rank", "0"], "--rank must be >= 1, got 0"),
    (["--n-test", "0"], "--n-test must be >= 1, got 0"),
    (["--max-length", "-5"], "--max-length must be >= 1, got -5"),
    (["--n-retention", "0"], "--n-retention must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--task", "no-such-task"], "no-such-task"),
    (["--pair", "olmo9"], "unknown pair 'olmo9'"),
    (["--pair", "toy", "--base", "b"], "either --pair or --base"),
])
def test_tune_sweep_refuses_bad_arguments_in_one_line_before_loading(tmp_path, monkeypatch, capsys, flags, match):
    _nothing_loads(monkeypatch)
    out = tmp_path / "s.parquet"
    code = cli.main(["tune", "sweep", "--out", str(out), *flags])
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, match", [
    (["--base", "b"], "give both --base and --sft"),
    (["--sft", "s"], "give both --base and --sft"),
    (["--pair", "toy", "--base", "b", "--sft", "s"], "either --pair or --base/--sft"),
    (["--pair", "olmo9"], "unknown pair 'olmo9'"),
    (["--n", "1"], "--n must be >= 2, got 1"),
    (["--n-segments", "0"], "--n-segments must be >= 1, got 0"),
    (["--width", "6"], "--width must be in 1..5"),
    (["--n-segments", "3", "--width", "0"], "--width must be in 1..3"),
    (["--dataset", "no-such-data"], "no-such-data"),
    (["--out", "e.txt"], "--out must end in .parquet or .csv"),
])
def test_tune_suggest_refuses_bad_arguments_in_one_line_before_loading(monkeypatch, capsys, flags, match):
    _nothing_loads(monkeypatch)
    code = cli.main(["tune", "suggest", *flags])
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ")


def test_book_refuses_a_pair_with_base_and_sft(monkeypatch, capsys):
    _nothing_loads(monkeypatch)
    assert cli.main(["book", "--pair", "toy", "--base", "b", "--sft", "s"]) == 2
    assert "either --pair or --base/--sft" in capsys.readouterr().err


def test_toy_build_into_a_foreign_folder_is_one_line_and_leaves_nothing(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["toy", "build", "--out", str(foreign), "--size", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ") and "not a toy build" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no lock file, no temporary folder
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert cli.main(["toy", "build", "--out", str(a_file)]) == 2
    assert "is a file that is not a toy build" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "file.txt"])


def test_debug_works_after_the_subcommand_too(capsys):
    assert cli.main(["tune", "suggest", "--n", "1", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("mbt: error: --n must be >= 2")
    assert cli.main(["--debug", "tune", "suggest", "--n", "1"]) == 2  # a later default does not undo it
    assert "Traceback" in capsys.readouterr().err
    assert cli.main(["tune", "suggest", "--n", "1"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "/ro/out.csv"),
                                   IsADirectoryError(21, "Is a directory", "out.csv"),
                                   FileExistsError(17, "File exists", "x")])
def test_file_system_refusals_are_one_line(monkeypatch, capsys, error):
    def refused(args):
        raise error

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["pairs"].set_defaults(func=refused)
    assert cli.main(["pairs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mbt: error: [Errno") and "Traceback" not in err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_pairs", interrupted)
    assert cli.main(["pairs"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("mbt: interrupted") and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_command_that_swallows_the_interrupt_still_exits_after_the_grace_period(tmp_path, how):
    """Ctrl-C or SIGTERM ends a command even when something inside it catches the KeyboardInterrupt."""
    ready = tmp_path / "ready"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from mbt import cli\n"
        "cli.INTERRUPT_GRACE_S = 1.0\n"
        "with cli._terminate_as_interrupt():\n"
        f"    Path({str(ready)!r}).write_text('x')\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(0.05)\n"
        "        except KeyboardInterrupt:\n"
        "            pass  # a library that swallows it\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < end:
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(how)
        assert proc.wait(timeout=20) == 128 + how
        assert time.monotonic() - sent < 10
        assert "exiting now" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_previous_signal_handlers_come_back_after_a_command():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with cli._terminate_as_interrupt():
        assert signal.getsignal(signal.SIGINT) is not before[0]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
