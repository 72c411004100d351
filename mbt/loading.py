"""Plain Hugging Face model loading: one switch for transformers' progress bars and one causal-LM loader.

:func:`mbt.load_pair` loads and validates *pairs*; this module serves the places that need one plain
(unwrapped) model: LoRA training starts from a fresh copy of the Base model, the toy build writes its
checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mbt.trace import unwrap

__all__ = ["hf_progress_bars", "load_causal_lm", "path_dtype"]


@contextlib.contextmanager
def hf_progress_bars(enabled: bool) -> Iterator[None]:
    """Show or hide transformers' own bars (loading and writing weights) inside a block.

    Args:
        enabled: ``False`` hides them; the previous setting is restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def path_dtype(device: str | None) -> Any:
    """The dtype :func:`load_causal_lm` loads a path in on ``device``: bf16 on a GPU (or ``"auto"``), else fp32.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``, or ``None`` (CUDA when available).
    """
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.bfloat16 if dev == "auto" or str(dev).startswith("cuda") else torch.float32


def load_causal_lm(source: Any, *, device: str | None = None, dtype: Any = None, copy_model: bool = True,
                   revision: str | None = None, progress: bool = True) -> Any:
    """A plain causal LM from a folder / Hub id (loaded) or from a model (deep-copied unless ``copy_model=False``).

    Args:
        source: a folder or Hub id, or a model (an nnsight wrapper is unwrapped).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (accelerate's ``device_map``, paths
            only); default: CUDA when available for a path, the model's own device for a model.
        dtype: weights dtype (default for a path: bf16 on a GPU, fp32 on CPU; a model keeps its own).
        copy_model: deep-copy a model object (PEFT replaces modules in place).
        revision: Hub revision of a path.
        progress: transformers' loading bar.
    """
    import torch

    if isinstance(source, str | Path):
        from transformers import AutoModelForCausalLM

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict[str, Any] = {"dtype": dtype or path_dtype(dev)}
        if revision is not None:
            kwargs["revision"] = revision
        if dev == "auto":
            kwargs["device_map"] = "auto"
        with hf_progress_bars(progress):
            model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
        return model if dev == "auto" else model.to(dev)
    model = unwrap(source)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a model or a path, got {type(source).__name__}")
    if copy_model:
        model = copy.deepcopy(model)
    if dtype is not None:
        model = model.to(dtype)
    if device is not None and device != "auto":
        model = model.to(device)
    return model
