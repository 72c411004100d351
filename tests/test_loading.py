"""Plain model loading (mbt.loading): the dtype a path loads in."""

from __future__ import annotations

import torch


def test_path_dtype_is_what_a_path_loads_in(base_dir):
    from mbt.loading import load_causal_lm, path_dtype

    assert path_dtype("cpu") is torch.float32
    assert path_dtype("cuda") is path_dtype("cuda:1") is path_dtype("auto") is torch.bfloat16
    assert path_dtype(None) is (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert load_causal_lm(str(base_dir), device="cpu", progress=False).dtype is path_dtype("cpu")
