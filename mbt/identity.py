r"""What identifies an input, a model, a pair or a call, in one place; and calls cached by those identities.

Every cache key and every staleness check of ``mbt`` is built from these names (the content-hashing
primitives live in the foundation module :mod:`mbt.results`, so that the cache itself can use them):

| name | identifies | by |
|---|---|---|
| ``results.file_sha256`` | one file | SHA-256 of its bytes (the one file hash) |
| ``results.tree_sha256`` | a folder's files, or one file | SHA-256 over relative paths and bytes |
| ``results.text_fingerprint`` | an ordered list of texts | SHA-256 of the JSON list |
| ``results.weights_fingerprint`` | a checkpoint folder's content | SHA-256 of its files' hashes (remembered) |
| ``results.make_key`` | settings, as a cache key | SHA-256 of the sorted JSON, 20 hex digits |
| :func:`folder_fingerprint` | a model loaded from a folder in a dtype | ``{"weights": content hash, "dtype"}`` |
| :func:`model_fingerprint` | a loaded model | its folder's content, its Hub commit, or a parameter checksum |
| :func:`pair_identity` | a :class:`~mbt.pairs.ModelPair`'s weights | both models' identities, loaded or not |
| :func:`pair_source_key` | a pair before it is built or loaded | registry entry (toy: settings) or folders' content |
| :func:`cached_call` | one call of a function returning a table | its name and every argument's identity |

A model or tokenizer loaded from a local folder is identified by the folder's content alone, never its
path: a copy of a checkpoint (or a moved cache) keys the same results.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mbt import toy, trace
from mbt.pairs import ModelPair, get_pair
from mbt.results import cached, text_fingerprint, weights_fingerprint

__all__ = [
    "CALL_VERSION",
    "cached_call",
    "folder_fingerprint",
    "loaded_dtype",
    "model_fingerprint",
    "pair_identity",
    "pair_source_key",
]


def loaded_dtype(model: Any) -> torch.dtype | None:
    """The dtype of a loaded (possibly nnsight-wrapped) model; ``None`` for one without local parameters."""
    try:
        return trace.unwrap(model).dtype
    except AttributeError:  # e.g. a remote model without local parameters
        return None


def folder_fingerprint(folder: str | Path, dtype: Any) -> dict[str, Any]:
    """A checkpoint folder's weights as a model loaded from it in ``dtype``: ``{"weights": content hash, "dtype"}``.

    The content (:func:`mbt.results.weights_fingerprint`), not the folder's location: what
    :func:`model_fingerprint` gives for a model loaded from the folder, and a LoRA sweep for the folder itself.
    """
    return {"weights": weights_fingerprint(folder), "dtype": str(dtype)}


def model_fingerprint(model: Any) -> dict[str, Any]:
    """Identify a loaded model's weights: folder content hash, Hub commit, or a parameter checksum.

    A model loaded from a local folder is :func:`folder_fingerprint` of it: its content, not where the
    folder lies, so a copy of a checkpoint (or a moved cache) keys the same results.
    Otherwise ``{"source", "dtype", "commit"}`` plus, without a commit, ``"params"``: a checksum of every
    parameter (name, Σw and Σ|w| in float64).
    """
    module = trace.unwrap(model)
    config = module.config
    source = str(getattr(config, "_name_or_path", "") or "")
    if source and Path(source).is_dir():
        return folder_fingerprint(source, module.dtype)
    commit = getattr(config, "_commit_hash", None)
    info: dict[str, Any] = {"source": source, "dtype": str(module.dtype), "commit": commit}
    if commit is None:
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, param in module.named_parameters():
                digest.update(name.encode())
                digest.update(repr(float(param.double().sum())).encode())
                digest.update(repr(float(param.double().abs().sum())).encode())
        info["params"] = digest.hexdigest()
    return info


def _hub_commit(ident: str, revision: str | None) -> str | None:
    """The commit of a Hub model in the local Hugging Face cache (no network), or ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a transformers dependency
        return None
    try:
        found = try_to_load_from_cache(ident, "config.json", revision=revision)
    except (ValueError, OSError):
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def _source_identity(ident: str, revision: str | None) -> dict[str, Any] | None:
    """Identity of a model source without loading it: folder content hash or cached Hub commit."""
    if Path(ident).expanduser().is_dir():
        return {"weights": weights_fingerprint(ident)}
    commit = _hub_commit(ident, revision)
    if commit is not None:
        return {"source": ident, "commit": commit}
    return None


def _role_identity(pair: ModelPair, role: str) -> dict[str, Any]:
    """Identify one model of a pair without loading it when possible."""
    ident = getattr(pair.spec, role)
    revision = getattr(pair.spec, f"{role}_revision")
    info = _source_identity(ident, revision)
    if info is not None:
        dtype = pair.dtype if pair.dtype is not None or not pair.is_loaded(role) else loaded_dtype(pair.model(role))
        return {**info, "dtype": str(dtype)}
    if pair.is_loaded(role):
        return model_fingerprint(pair.model(role))
    return {"source": ident, "revision": revision, "dtype": str(pair.dtype)}


def pair_identity(pair: ModelPair) -> dict[str, Any]:
    """What identifies a pair's weights in cache keys, computed without loading a model when possible.

    For a checkpoint folder: :func:`mbt.results.weights_fingerprint` of its files (content, not
    path); for a Hub id in the local Hugging Face cache: its commit; for a loaded model without
    either: a checksum of its parameters. The pair's name and dtype are part of it.

    Args:
        pair: A loaded or sequential :class:`~mbt.pairs.ModelPair`.

    Returns:
        A JSON-serialisable dict.
    """
    return {"name": pair.spec.name, "base": _role_identity(pair, "base"), "sft": _role_identity(pair, "sft")}


def pair_source_key(pair: str | None, base: str | None = None, sft: str | None = None) -> dict[str, Any]:
    """What a pair is made from, known before it is built or loaded (the book's "is this chapter stale?" key).

    A registered pair: its registry entry, and for a toy pair the hash of its build settings (a toy build is
    deterministic, so the settings say what the weights are). Two folders (``base``/``sft``): their content
    (:func:`mbt.results.weights_fingerprint`, so weights replaced by others of the same size and dates are
    noticed); a Hub id: the id itself.

    Args:
        pair: A registered pair name, or ``None`` with ``base`` and ``sft``.
        base: Base model folder or Hub id.
        sft: SFT model folder or Hub id.

    Returns:
        A JSON-serialisable dict.
    """
    if base or sft:
        def source(path: str) -> Any:
            return {"weights": weights_fingerprint(path)} if Path(path).is_dir() else {"source": path}

        return {"base": source(str(base)), "sft": source(str(sft))}
    spec = get_pair(str(pair))
    info: dict[str, Any] = {k: v for k, v in dataclasses.asdict(spec).items()
                            if not (k == "toy_sft_seed" and v is None)}  # keys of pairs made before it existed
    if spec.source == "toy":
        size = toy.ladder.rung_config(spec.toy_sft_steps) if spec.toy_sft_steps else "default"
        info["toy"] = toy.settings_hash(variant=spec.toy_variant or "toy", size=size, sft_seed=spec.toy_sft_seed)
    return info


def _argument_identity(value: Any) -> Any:
    """A JSON-able identity of one argument of a cached call (see :func:`cached_call`)."""
    if isinstance(value, ModelPair):
        return {"pair": pair_identity(value)}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _argument_identity(v) for k, v in sorted(value.items())}
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value) and len(value) > 8:
        return {"texts": text_fingerprint(list(value))}
    if isinstance(value, Sequence):
        return [_argument_identity(v) for v in value]
    if hasattr(value, "_model") or hasattr(value, "named_parameters"):
        return {"model": model_fingerprint(value)}  # a local folder's model: by content, wherever it lies
    if hasattr(value, "name_or_path") and hasattr(value, "encode"):
        folder = Path(str(value.name_or_path))
        if folder.is_dir():  # by content: copies of one checkpoint (e.g. the ladder rungs' Base) share results
            return {"tokenizer_files": weights_fingerprint(folder), "vocab": len(value)}
        return {"tokenizer": str(value.name_or_path), "vocab": len(value)}
    raise TypeError(f"cannot key a cached result on a {type(value).__name__}; pass plain values, texts, "
                    "a pair, a model or a tokenizer")


_NOT_KEYED = ("progress",)

CALL_VERSION = 2
"""Part of every :func:`cached_call` key; raised when a computation behind the cached calls changes its numbers.

1: first version; 2: bootstrap intervals widened by Hesterberg's factor (:func:`mbt.stats.bootstrap_mean_ci`).
"""


def cached_call(fn: Callable[..., pd.DataFrame], *args: Any, cache: bool = True, **kwargs: Any) -> pd.DataFrame:
    """``fn(*args, **kwargs)``, stored and reused: the key is derived from the call itself.

    The key holds ``fn``'s module and qualified name and an identity of every argument (a pair or model by
    its weights' fingerprint, a model or tokenizer loaded from a local folder by that folder's content
    alone, a list of texts by its content fingerprint, plain values as they are; ``progress`` is left
    out) and :data:`CALL_VERSION`, so no caller writes a key by hand and no argument can be forgotten. Two copies of one
    checkpoint therefore share results: the ladder rungs each hold a copy of the toy Base, and chapter
    4's fine-tune of the Base runs once for all of them. The store is :func:`mbt.results.cached`
    (``<cache root>/book-<function>/``), with provenance; a hit is announced in one line.

    Args:
        fn: A function returning a DataFrame.
        *args: Its positional arguments.
        cache: ``False`` always recomputes (and stores nothing).
        **kwargs: Its keyword arguments.

    Raises:
        TypeError: An argument of a kind that has no identity here (e.g. an arbitrary object).
    """
    if not cache:
        return fn(*args, **kwargs)
    qualname = str(getattr(fn, "__qualname__", "call")).replace("<", "").replace(">", "")
    settings = {"version": CALL_VERSION, "fn": f"{getattr(fn, '__module__', '')}.{qualname}",
                "args": [_argument_identity(a) for a in args],
                "kwargs": {k: _argument_identity(v) for k, v in sorted(kwargs.items()) if k not in _NOT_KEYED}}
    return cached(f"book-{qualname}", settings, lambda: fn(*args, **kwargs))
