"""Chapter 10 refuses bad papermill parameters, naming them, before any model loads."""

from __future__ import annotations

import pytest
from conftest import REPO

from mbt.book import chapters


@pytest.mark.parametrize(("params", "message"), [
    ({"n_items": 0}, "parameter 'n_items' must be int (a whole number >= 1), got int 0"),
    ({"task": "toy-mc"}, "must be a question/answer task"),
    ({"swap_heads": ["nobody"]}, "'swap_heads': item 0 is 'nobody', not one of 'receiver', 'donor'"),
    ({"n_items": 20, "n_swap": 30}, "parameter 'n_swap' (30) is more than 'n_items' (20)"),
    ({"n_items": 20}, "parameter 'n_swap' (100) is more than 'n_items' (20)"),  # the default n_swap
])
def test_bad_parameters_are_refused_before_the_pair_loads(tmp_path, monkeypatch, params, message):
    import papermill

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = chapters.read_notebook(REPO / "notebooks" / "10_knowledge_or_format.py")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # a pair that cannot load: reaching it would fail with another message
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(nb, str(tmp_path / "out.ipynb"), parameters={
            "base": str(tmp_path / "no-base"), "sft": str(tmp_path / "no-sft"), **params},
            kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    assert err.value.ename == "ValueError" and message in err.value.evalue
