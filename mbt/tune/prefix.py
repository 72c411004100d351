r"""Frozen-prefix activations for segment LoRA: the blocks below the first adapted one run once per example.

LoRA on a mask whose first adapted block is ``L0 > 0`` leaves the embedding and blocks ``0 … L0−1``
frozen and, without dropout, deterministic: the hidden state entering block ``L0``,

.. math::  h_{L0}(x) = f_{L0-1} \circ \dots \circ f_0 (E\,x) \in \mathbb{R}^{T_x \times d},

is the same at every step that draws the example ``x``. :class:`PrefixCache` computes it once per training
example (no gradient, in fixed chunks of the examples in index order, so the rows do not depend on which
run or step asked first) and a training step then runs only blocks ``L0 …`` from the cached rows:
:meth:`PrefixCache.skipping` swaps the first ``L0`` blocks for pass-throughs and the step feeds the
cached rows as ``inputs_embeds``. The backward pass never reached the prefix anyway (nothing there
trains), so a step saves the prefix's forward pass (``benchmarks/bench_prefix.py`` measures what that
gives a sweep; the numbers are in ``benchmarks/RESULTS.md``).

The same loss up to float rounding (an example's rows are computed in another batch than the step's):
:func:`prefix_cache` checks this on the first batch against the ordinary forward pass and returns
``None`` (train as usual) when it does not hold — e.g. a model that scales ``inputs_embeds`` inside its
forward, blocks that return tuples, or dropout in the prefix. The cache is kept between runs in the same
process (one entry, keyed by the prefix's weights, the examples, ``L0``, the attention implementation and
the thread count), so the seeds and masks of a sweep that share ``L0`` compute it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from mbt import train
from mbt.trace import resolve_layout
from mbt.tune.config import config_of

__all__ = ["MAX_CACHE_BYTES", "PrefixCache", "prefix_cache"]

MAX_CACHE_BYTES = 2 * 1024**3
"""Largest cache (float32 rows of every training example) :func:`prefix_cache` builds; above it, no cache."""

CHUNK = 32
"""Examples per no-gradient forward pass while filling the cache."""

_LAST: tuple[str, PrefixCache] | None = None  # the one cache kept between runs in this process


class _PassThrough(torch.nn.Module):
    """A decoder block that returns its input hidden states (stands in for a cached block)."""

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states


class PrefixCache:
    """Hidden states entering block ``depth`` for every training example.

    Attributes:
        depth: ``L0``, the number of cached (skipped) blocks.
        rows: one ``(T_x, d)`` float tensor per example, in the examples' order.
    """

    def __init__(self, depth: int, rows: list[torch.Tensor]) -> None:
        self.depth = depth
        self.rows = rows

    def batch(self, indices: Sequence[int], width: int) -> torch.Tensor:
        """``(B, width, d)``: the cached rows of ``indices``, right-padded with zeros (padding is masked)."""
        first = self.rows[indices[0]]
        out = torch.zeros((len(indices), width, first.shape[-1]), dtype=first.dtype)
        for r, i in enumerate(indices):
            out[r, : self.rows[i].shape[0]] = self.rows[i]
        return out

    @contextlib.contextmanager
    def skipping(self, model: Any) -> Iterator[None]:
        """Inside the block, ``model``'s first ``depth`` decoder blocks pass their input through."""
        layers = _layers(model)
        saved = [layers[i] for i in range(self.depth)]
        for i in range(self.depth):
            layers[i] = _PassThrough()
        try:
            yield
        finally:
            for i, block in enumerate(saved):
                layers[i] = block


def _layers(model: Any) -> torch.nn.ModuleList:
    module = train._unwrap(model)
    return operator.attrgetter(resolve_layout(module).layers)(module)


def _random(blocks: Sequence[torch.nn.Module]) -> bool:
    """Whether any of ``blocks`` holds dropout (a ``Dropout`` module or an ``attention_dropout`` rate > 0)."""
    for block in blocks:
        for module in block.modules():
            if isinstance(module, torch.nn.Dropout) and module.p > 0:
                return True
            if float(getattr(module, "attention_dropout", 0.0) or 0.0) > 0:
                return True
    return False


def _key(model: Any, examples: Sequence[tuple[Sequence[int], int]], depth: int) -> str:
    """What the cached rows depend on: the prefix's weights, the examples, ``depth``, attention, threads."""
    module = train._unwrap(model)
    digest = hashlib.sha256(f"{depth}/{module.config._attn_implementation}/{torch.get_num_threads()}".encode())
    parts = [module.get_input_embeddings(), *list(_layers(model))[:depth]]
    for part in parts:
        for name, tensor in sorted(part.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    for ids, _ in examples:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(torch.tensor(list(ids), dtype=torch.int64).numpy().tobytes())
    return digest.hexdigest()


def _hook_capture(model: Any, depth: int, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The hidden states entering block ``depth`` (a pre-hook stops the forward pass there)."""
    captured: list[torch.Tensor] = []

    class _Stop(Exception):
        pass

    def grab(_module: Any, args: tuple, kwargs: dict) -> None:
        captured.append((args[0] if args else kwargs["hidden_states"]).detach())
        raise _Stop

    handle = _layers(model)[depth].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            train._unwrap(model)(input_ids=ids, attention_mask=attention_mask, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0]


def _fill(model: Any, examples: Sequence[tuple[Sequence[int], int]], depth: int, pad_id: int,
          device: torch.device) -> PrefixCache:
    rows: list[torch.Tensor] = []
    for lo in range(0, len(examples), CHUNK):
        part = examples[lo: lo + CHUNK]
        ids, attn, _ = train.pad_batch(part, pad_id)
        hidden = _hook_capture(model, depth, ids.to(device), attn.to(device)).cpu()
        rows += [hidden[r, : len(seq)].clone() for r, (seq, _) in enumerate(part)]
    return PrefixCache(depth, rows)


def prefix_cache(model: Any, examples: Sequence[tuple[Sequence[int], int]], depth: int, *, pad_id: int,
                 check: Sequence[int], device: torch.device) -> PrefixCache | None:
    """The cached prefix for LoRA whose first adapted block is ``depth``, or ``None`` when it cannot be used.

    ``None`` when ``depth`` is 0, the prefix holds dropout, the cache would exceed :data:`MAX_CACHE_BYTES`,
    or the loss of the examples ``check`` (the first batch) computed from the cache differs from the
    ordinary forward pass by more than ``1e-4`` relative (the model in its training mode, twice, so that
    any randomness left shows).

    Args:
        model: The PEFT-wrapped model about to train (in training mode).
        examples: The training examples ``(token ids, n_prompt)``.
        depth: ``L0``, the first adapted block.
        pad_id: Padding id.
        check: Example indices of the batch to check on.
        device: Where the model runs.
    """
    global _LAST
    if depth <= 0:
        return None
    if _random(list(_layers(model))[:depth]):
        return None
    d = int(config_of(train._unwrap(model)).hidden_size)
    if 4 * d * sum(len(ids) for ids, _ in examples) > MAX_CACHE_BYTES:
        return None
    key = _key(model, examples, depth)
    cache = _LAST[1] if _LAST is not None and _LAST[0] == key else None
    try:
        if cache is None:
            cache = _fill(model, examples, depth, pad_id, device)
        part = [examples[i] for i in check]
        ids, attn, labels = train.pad_batch(part, pad_id)
        with torch.no_grad():
            plain = [float(train.token_loss_sum(model, ids.to(device), attn.to(device), labels)) for _ in range(2)]
            with cache.skipping(model):
                embeds = cache.batch(list(check), ids.shape[1]).to(device)
                cached = float(train.token_loss_sum(model, None, attn.to(device), labels, inputs_embeds=embeds))
    except Exception:  # noqa: BLE001 - an architecture this does not fit trains the ordinary way
        return None
    if plain[0] != plain[1] or abs(cached - plain[0]) > 1e-4 * max(1.0, abs(plain[0])):
        return None
    _LAST = (key, cache)
    return cache
