"""Plain Hugging Face model loading: one switch for transformers' progress bars, one causal-LM loader, one error.

:func:`mbt.load_pair` loads and validates *pairs*; this module serves the places that need one plain
(unwrapped) model: LoRA training starts from a fresh copy of the Base model, the toy build writes its
checkpoints. Every place that reads weights turns a failure into :class:`ModelLoadError` with
:func:`load_failure`: one message naming the file and what to do (a damaged safetensors file, a pickle
checkpoint that torch refuses to unpickle, a full disk), which the ``mbt`` command prints as one line.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mbt.trace import unwrap

__all__ = ["ModelLoadError", "hf_progress_bars", "is_load_failure", "load_causal_lm", "load_failure", "path_dtype"]


class ModelLoadError(RuntimeError):
    """A model's files could not be read: the message names the file (when known) and what to do."""


_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _weight_files(ident: Any, suffixes: tuple[str, ...]) -> list[Path]:
    folder = Path(str(ident)).expanduser()
    if folder.is_file():
        return [folder] if folder.name.lower().endswith(suffixes) else []
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(suffixes))


def _damaged_safetensors(ident: Any) -> Path | None:
    """The first ``*.safetensors`` file of a folder whose header or size is wrong, or ``None``."""
    from safetensors import safe_open

    for path in _weight_files(ident, (".safetensors",)):
        try:
            with safe_open(str(path), framework="pt") as fh:
                fh.keys()
        except Exception:  # safetensors raises its own error type for every kind of damage
            return path
    return None


def _is_unpickling_refusal(exc: BaseException) -> bool:
    import pickle

    return isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in str(exc).lower()


def _without_unsafe_advice(text: str) -> str:
    """An error text without sentences that advise turning ``weights_only`` off (never do that)."""
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(str(text).split()))
    return " ".join(s for s in sentences if "weights_only" not in s and "arbitrary code" not in s).strip()


def is_load_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure :func:`load_failure` explains (damaged file, refused pickle, full disk)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    return _is_unpickling_refusal(exc) or _is_safetensors_error(exc)


def _is_safetensors_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "SafetensorError" or "safetensors" in type(exc).__module__.lower()


def load_failure(what: str, ident: Any, exc: BaseException) -> ModelLoadError:
    """The one error for a model (or checkpoint) that could not be read, naming the file and the remedy.

    * a safetensors file that is truncated or damaged: which file, and to download or save it again;
    * a pickle checkpoint (``.bin``/``.pt``) whose unpickling torch refused because it holds more than tensors
      (it could run code): which file, and to use a safetensors copy from a source one trusts;
    * a full disk (or quota): which file, and to free space or point ``MBT_CACHE`` elsewhere;
    * anything else: the original message, never with advice to turn ``weights_only`` off.

    Args:
        what: What was being loaded, e.g. ``"sft weights"``.
        ident: The folder, file or Hub id it was loaded from.
        exc: The error raised.
    """
    where = str(ident)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        target = exc.filename or where
        return ModelLoadError(f"could not load the {what} of {where!r}: no space left on the device writing "
                              f"{target}; free some space or set MBT_CACHE to a disk with room, then run again")
    if _is_unpickling_refusal(exc):
        files = _weight_files(ident, _PICKLE_SUFFIXES)
        name = ", ".join(str(p) for p in files) or where
        return ModelLoadError(
            f"could not load the {what} of {where!r}: {name} is a pickle checkpoint that holds more than tensors, "
            "and loading it could run code hidden in it, so it was refused. Use a safetensors copy of this model "
            "(model.safetensors) from a source you trust")
    if _is_safetensors_error(exc):
        bad = _damaged_safetensors(ident)
        name = str(bad) if bad is not None else where
        return ModelLoadError(
            f"could not load the {what} of {where!r}: {name} is not a complete safetensors file "
            f"({_without_unsafe_advice(str(exc)) or type(exc).__name__}); it is damaged or was cut short: download "
            "or save the checkpoint again")
    text = _without_unsafe_advice(str(exc)) or type(exc).__name__
    return ModelLoadError(f"could not load the {what} of {where!r}: {text}")


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
        try:
            with hf_progress_bars(progress):
                model = AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
        except Exception as exc:  # safetensors and pickle raise their own error types
            if is_load_failure(exc):
                raise load_failure("weights", source, exc) from exc
            raise
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
