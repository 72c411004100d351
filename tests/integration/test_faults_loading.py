"""One error surface for every load failure: a damaged safetensors file, a refused pickle, a full disk.

Issue 27, defect 14 (each gave a traceback; the pickle refusal was torch's own message, which suggests retrying with
``weights_only=False``); each test failed on the code before the fix.
"""

from __future__ import annotations

import errno
import json
import shutil

import pandas as pd
import pytest
import torch
from conftest import make_model

from mbt import cli


@pytest.fixture
def pair_copy(save_pair, tmp_path):
    base, sft = save_pair("olmo2")
    shutil.copytree(base, tmp_path / "base")
    shutil.copytree(sft, tmp_path / "sft")
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"Tom has {i} apples and buys {i + 1} more. How many?",
                                          "answer": f"#### {2 * i + 1}"}) for i in range(8)))
    return tmp_path / "base", tmp_path / "sft", data


def _analyze(base, sft, data, out):
    return cli.main(["analyze", "--base", str(base), "--sft", str(sft), "--dataset", "gsm8k", "--path", str(data),
                     "--n-pooled", "8", "--n-token", "4", "--metrics", "cka,sparsity", "--out", str(out),
                     "--no-cache", "--device", "cpu"])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("mbt: ")]
    assert lines and lines[-1].startswith("mbt: error: ") and "Traceback" not in err, err[-3000:]
    assert "weights_only" not in err
    return lines[-1]


def test_14_a_damaged_safetensors_file_is_one_line_naming_it(pair_copy, tmp_path, capsys):
    base, sft, data = pair_copy
    weights = sft / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert _analyze(base, sft, data, tmp_path / "o.csv") == 2
    line = _one_line(capsys)
    assert str(weights) in line and "download or save the checkpoint again" in line


def test_14_a_pickle_checkpoint_torch_refuses_is_one_line_and_never_advises_weights_only(pair_copy, tmp_path,
                                                                                         capsys):
    base, sft, data = pair_copy
    (sft / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    state = make_model(seed=1).state_dict()
    state["payload"] = Payload()
    torch.save(state, sft / "pytorch_model.bin")
    assert _analyze(base, sft, data, tmp_path / "o.csv") == 2
    line = _one_line(capsys)
    assert str(sft / "pytorch_model.bin") in line and "pickle" in line and "safetensors" in line
    assert not marker.exists(), "the pickle's code ran"


def test_14_a_full_disk_is_one_line_naming_the_file_and_the_remedy(pair_copy, tmp_path, capsys, monkeypatch):
    base, sft, data = pair_copy

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    out = tmp_path / "o.csv"
    assert _analyze(base, sft, data, out) == 2
    line = _one_line(capsys)
    assert "No space left on device" in line and str(out) in line and "MBT_CACHE" in line
    assert not out.exists() and not list(tmp_path.glob(".o.csv.*"))  # nothing half-written is left
