"""The `mbt tune` subcommands' arguments (mbt.cli)."""

from __future__ import annotations

import pandas as pd

from mbt import tune


def test_cli_arguments():
    from mbt import cli

    parser = cli.build_parser()
    args = parser.parse_args(["tune", "sweep", "--out", "r.parquet", "--masks", "01100,00110", "--seeds", "0,1"])
    assert args.func is cli._cmd_tune_sweep and args.masks == "01100,00110" and args.threads == 2
    args = parser.parse_args(["tune", "suggest", "--n-segments", "10"])
    assert args.func is cli._cmd_tune_suggest and args.n_segments == 10


def test_cli_data_path(monkeypatch, tmp_path, capsys):
    from mbt import cli

    seen = {}

    def fake_sweep(base, **kwargs):
        seen.update(kwargs, base=base)
        return pd.DataFrame(columns=list(tune.SWEEP_COLUMNS))

    monkeypatch.setattr(tune, "sweep", fake_sweep)
    cli.main(["tune", "sweep", "--pair", "olmo2-1b", "--task", "gsm8k", "--out", str(tmp_path / "s.parquet"),
              "--data-path", "train=a/train.jsonl,test=b/test.jsonl"])
    assert seen["data_path"] == {"train": "a/train.jsonl", "test": "b/test.jsonl"} and seen["base"] == "olmo2-1b"
    cli.main(["tune", "sweep", "--out", str(tmp_path / "s.parquet"), "--data-path", "gsm8k-local"])
    assert seen["data_path"] == "gsm8k-local"
    cli.main(["tune", "sweep", "--out", str(tmp_path / "s.parquet")])
    assert seen["data_path"] is None
