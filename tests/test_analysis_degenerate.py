"""Degenerate inputs of ``analyze``: texts of one or two tokens, and more token-level texts than pooled ones.

Issue 27, defects 12 (texts such as ``a`` or ``<bos><bos>`` passed ``analyze`` and returned dozens of NaN values and
zero-width intervals with exit 0 and no warning) and 13 (``--n-token 10 --n-pooled 5`` quietly used 5); each test
failed on the code before the fix.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import mbt
from mbt import cli

SHORT = ["a", "b", "<bos><bos>", "cd"]  # one or two tokens each with the test tokenizer


@pytest.fixture(scope="module")
def folders(save_pair):
    return tuple(str(p) for p in save_pair("olmo2"))


def test_12_texts_of_one_or_two_tokens_are_refused_naming_them_before_any_model_is_loaded(folders):
    pair = mbt.load_pair(base=folders[0], sft=folders[1], device="cpu", sequential=True)
    assert max(len(pair.tokenizer(t)["input_ids"]) for t in SHORT) < mbt.analysis.MIN_TOKENS
    with pytest.raises(ValueError, match=r"fewer than 3 tokens.*text 0 'a': 1 token; .*text 2 '<bos><bos>'"):
        mbt.analyze(pair, SHORT, cache=False, progress=False)
    assert not pair.is_loaded("base") and not pair.is_loaded("sft")
    frame = mbt.analyze(pair, SHORT, n_token=0, metrics=["cka", "effective_rank"], cache=False, progress=False)
    assert np.isfinite(frame["value"]).all()  # pooled metrics are defined on short texts


def test_12_a_few_short_texts_among_long_ones_are_named_in_a_warning(folders):
    pair = mbt.load_pair(base=folders[0], sft=folders[1], device="cpu")
    texts = ["The quick brown fox jumps over the lazy dog.", "a", "Tom has 3 apples and buys 4 more.",
             "def add(a, b): return a + b"]
    with pytest.warns(UserWarning, match=r"1 of 4 token-level texts have fewer than 3 tokens.*text 1 'a': 1 token"):
        frame = mbt.analyze(pair, texts, metrics=["curvature", "prompt_entropy", "cka"], cache=False, progress=False,
                            n_bootstrap=50)
    assert np.isfinite(frame["value"]).all()
    assert frame[frame.metric == "curvature"]["n"].eq(3).all()  # the short text is left out, and counted out


def test_12_undefined_values_are_never_returned_silently(folders, monkeypatch):
    from mbt import analysis

    pair = mbt.load_pair(base=folders[0], sft=folders[1], device="cpu")
    real = analysis._tabulate

    def with_a_hole(*args, **kwargs):
        frame = real(*args, **kwargs)
        frame.loc[(frame.metric == "effective_rank") & (frame.layer == 2), "value"] = np.inf
        return frame

    monkeypatch.setattr(analysis, "_tabulate", with_a_hole)
    undefined = r"values are undefined \(NaN or infinite\).*effective_rank \(base\) at layer 2"
    with pytest.warns(UserWarning, match=undefined):
        mbt.analyze(pair, ["The quick brown fox.", "Tom has 3 apples."], metrics=["effective_rank"], cache=False,
                    progress=False)


def test_12_the_command_refuses_one_token_texts_in_one_line_with_allow_fewer_too(folders, tmp_path, capsys):
    data = tmp_path / "ifeval.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": t}) for t in ("a", "b", "c", "d")))
    out = tmp_path / "o.csv"
    code = cli.main(["analyze", "--base", folders[0], "--sft", folders[1], "--dataset", "ifeval", "--path", str(data),
                     "--n-pooled", "10", "--allow-fewer", "--out", str(out), "--no-cache", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mbt: error: every token-level text has fewer than 3 tokens")
    assert "1 token" in err and err.count("\n") == 1 and not out.exists()


def test_13_more_token_level_texts_than_pooled_ones_are_refused_before_data_is_read(tmp_path, capsys, monkeypatch):
    import mbt.data

    monkeypatch.setattr(mbt.data, "load_sample", lambda *a, **k: pytest.fail("the data were read"))
    code = cli.main(["analyze", "--pair", "toy", "--dataset", "toy-math", "--n-token", "10", "--n-pooled", "5",
                     "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "--n-token 10 is more than --n-pooled 5" in err and "give --n-token 5 or less" in err


def test_13_fewer_token_level_texts_than_asked_are_said(folders, tmp_path, capsys):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"Tom has {i} apples. How many?", "answer": f"#### {i}"})
                              for i in range(6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = cli.main(["analyze", "--base", folders[0], "--sft", folders[1], "--dataset", "gsm8k", "--path",
                         str(data), "--n-pooled", "8", "--n-token", "8", "--allow-fewer", "--metrics",
                         "cka,sparsity", "--out", str(tmp_path / "o.csv"), "--no-cache", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "mbt: using 6 token-level texts, not the 8 asked: the split has 6 usable texts" in err
