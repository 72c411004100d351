"""Chapter parameters are parsed once, with their types and ranges, before any work: ``mbt book --param``,
``mbt batch --param`` and ``papermill -p`` alike.

Issue 27, defects 10 (``--param n_pooled=-3`` was refused only inside each notebook, after the pair loaded and a
missing toy pair was built) and 11 (``papermill -p quick false`` ran quick mode, ``-p n_pooled 2.7`` became 2,
``-p datasets toy-math`` a list of characters); each test failed on the code before the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

from mbt import book, cli
from mbt.book import chapters, parameters
from mbt.book import jobs as book_jobs


def _nothing_runs(monkeypatch):
    from mbt import pairs, toy

    monkeypatch.setattr(toy, "build", lambda *a, **k: pytest.fail("the toy pair was built"))
    monkeypatch.setattr(pairs, "resolve_toy", lambda *a, **k: pytest.fail("the toy pair was resolved"))
    monkeypatch.setattr(book_jobs, "resolve_toy", lambda *a, **k: pytest.fail("the toy pair was resolved"))
    monkeypatch.setattr(book_jobs, "_execute", lambda *a, **k: pytest.fail("a chapter was executed"))


@pytest.mark.parametrize("command", ["book", "batch"])
@pytest.mark.parametrize("param, words", [
    ("n_pooled=-3", "'n_pooled' must be int (a whole number >= 2), got int -3"),
    ("n_pooled=2.7", "'n_pooled' must be int (a whole number >= 2), got float 2.7"),
    ("batch_size=0", "'batch_size' must be int (a whole number >= 1)"),
    ("conventions=textbook", "'conventions' must be str (one of 'standard', 'paper')"),
    ("seeds=[]", "'seeds' must be list (a non-empty list of whole numbers >= 0"),
    ("n_pooled=50", "'n_token' (100, its default) is more than 'n_pooled' (50)"),
    ("finetune_lr=-1e-5", "'finetune_lr' must be float (a finite number > 0)"),
])
def test_10_bad_parameters_are_refused_in_one_line_before_the_toy_pair_is_built(monkeypatch, capsys, tmp_path,
                                                                                   command, param, words):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    _nothing_runs(monkeypatch)
    args = ["book", "--pair", "toy"] if command == "book" else ["batch", "--pairs", "toy"]
    assert cli.main([*args, "--param", param, "--root", str(REPO)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mbt: error: parameter ") and words in err and err.count("\n") == 1


def test_10_command_line_values_are_converted_by_type(monkeypatch, tmp_path):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    nb = chapters.read_notebook(REPO / "notebooks" / "01_divergence.py")
    declared = {"01_divergence": chapters.parameter_types(nb)}
    defaults = {"01_divergence": chapters.parameter_defaults(nb)}
    got = chapters.check_parameters({"quick": "false", "datasets": "toy-math,toy-mc", "n_pooled": "200",
                                     "robustness": "True", "seed": 3.0}, declared, defaults)
    assert got == {"quick": False, "datasets": ["toy-math", "toy-mc"], "n_pooled": 200, "robustness": True,
                   "seed": 3}


def _namespace(**values):
    """A kernel's globals after the parameters cell and papermill's injected cell."""
    nb = chapters.read_notebook(REPO / "notebooks" / "06_midblock_lora.py")
    types = {"str": str, "int": int, "float": float, "bool": bool, "list": list}
    annotations = {k: types[v] for k, v in chapters.parameter_types(nb).items()}
    return {**chapters.parameter_defaults(nb), "__annotations__": annotations, **values}


@pytest.mark.parametrize("given, expected", [
    ({"quick": "false"}, {"quick": False}),
    ({"quick": "TRUE"}, {"quick": True}),
    ({"masks": "01100"}, {"masks": ["01100"]}),
    ({"masks": '["01100", "00110"]'}, {"masks": ["01100", "00110"]}),
    ({"seeds": 0}, {"seeds": [0]}),
    ({"masks": 11111}, {"masks": ["11111"]}),
    ({"seeds": "0,1"}, {"seeds": [0, 1]}),
    ({"steps": 2.0}, {"steps": 2}),
])
def test_11_papermill_values_are_converted_in_the_kernel(given, expected):
    namespace = _namespace(**given)
    book.check_notebook_parameters(namespace)
    assert {k: namespace[k] for k in expected} == expected


@pytest.mark.parametrize("given, words", [
    ({"steps": 2.7}, "'steps' must be int (a whole number >= 0), got float 2.7"),
    ({"steps": "abc"}, "'steps' must be int (a whole number >= 0), got str 'abc'"),
    ({"quick": "maybe"}, "'quick' must be bool (true or false), got str 'maybe'"),
    ({"seeds": "0,x"}, "'seeds[1]' must be int"),
    ({"masks": "[1100]"}, "parameter 'masks' must be list"),
    ({"preset": "fancy"}, "'preset' must be str (one of 'standard', 'paper')"),
])
def test_11_papermill_values_of_the_wrong_type_are_refused_naming_the_parameter(given, words):
    with pytest.raises(ValueError) as info:
        book.check_notebook_parameters(_namespace(**given))
    assert words in str(info.value)


def test_every_chapter_checks_its_parameters_first_and_every_parameter_has_one_rule():
    for name in book.CHAPTERS:
        nb = chapters.read_notebook(REPO / "notebooks" / f"{name}.py")
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[2].source.startswith("book.check_notebook_parameters(globals())"), name
        for parameter, annotation in chapters.parameter_types(nb).items():
            assert parameter in parameters.RULES, f"{name}: {parameter} has no rule in mbt.book.parameters.RULES"
            assert parameters.RULES[parameter].kind == annotation, (name, parameter)
            default = chapters.parameter_defaults(nb)[parameter]
            assert parameters.coerce_parameter(parameter, default, annotation) == default, (name, parameter)


@pytest.mark.slow
def test_11_papermill_p_on_a_chapter_converts_and_refuses_by_type(tmp_path):
    """The real chapter's set-up, parameters and check, run by the ``papermill`` command with ``-p``."""
    nb = chapters.read_notebook(REPO / "notebooks" / "01_divergence.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    check = nbformat.v4.new_code_cell(code[2].source.split("\n")[0])
    dump = nbformat.v4.new_code_cell(
        "import json, os\n"
        "json.dump({k: globals()[k] for k in ('quick', 'datasets', 'n_pooled', 'n_token')}, "
        "open(os.environ['MBT_TEST_OUT'], 'w'))")
    small = nbformat.v4.new_notebook(cells=[code[0], code[1], check, dump], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    source, out = tmp_path / "chapter.ipynb", tmp_path / "values.json"
    nbformat.write(small, source)
    env = {"MBT_TEST_OUT": str(out), "HF_HUB_OFFLINE": "1"}
    papermill = [sys.executable, "-m", "papermill", str(source), str(tmp_path / "run.ipynb"), "--no-progress-bar"]
    done = subprocess.run([*papermill, "-p", "quick", "false", "-p", "datasets", "toy-math", "-p", "n_pooled", "200",
                           "-p", "n_token", "20"], env={**_env(), **env}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text()) == {"quick": False, "datasets": ["toy-math"], "n_pooled": 200, "n_token": 20}
    bad = subprocess.run([*papermill, "-p", "n_pooled", "2.7"], env={**_env(), **env}, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "parameter 'n_pooled' must be int" in bad.stderr + bad.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}


def test_list_items_outside_their_choices_are_refused_by_name():
    assert parameters.coerce_parameter("swap_heads", "receiver, donor", "list") == ["receiver", "donor"]
    with pytest.raises(ValueError, match=r"'swap_heads': item 1 is 'lm_head', not one of 'receiver', 'donor'"):
        parameters.coerce_parameter("swap_heads", ["receiver", "lm_head"], "list")
