"""Streaming per-layer hidden states out of a decoder-only model: the only module that touches nnsight.

Layer index convention (the book's "Methods and conventions"): layer ``0`` is the input of the first
block (the embedding output, after any embedding scaling or position embedding), layer ``l`` in ``1..L`` is the
residual stream after block ``l``, *before* the final norm. Hugging Face's
``hidden_states[-1]`` is post-final-norm; ours is not.

Texts are tokenized once, sorted into length buckets and padded per batch. For every batch, one
nnsight trace runs the forward pass and hands each requested layer's ``(B, T, D)`` states, the
boolean attention mask and the sample indices to a reducer callback *inside* the trace; the
forward stops after the last requested layer, so the LM head is never run. A reducer turns token
states into per-sample numbers or pooled vectors, so nothing ever holds all layers × all samples
× all tokens.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from mbt.results import atomic_write, cache_root

__all__ = [
    "LayerBatch",
    "ModuleLayout",
    "Reducer",
    "collate",
    "auto_batch_size",
    "collect_layers",
    "encode",
    "largest_fitting",
    "length_batches",
    "remote_model",
    "resolve_layout",
    "stream_layers",
    "unwrap",
    "wrap",
]


@dataclass(frozen=True)
class ModuleLayout:
    """Dotted paths (from the causal-LM object) to the modules the analyses need.

    Attributes:
        embed: Token embedding module.
        layers: ``ModuleList`` of decoder blocks.
        final_norm: Norm applied to the last block's output before the LM head.
        lm_head: Output projection to the vocabulary.
    """

    embed: str
    layers: str
    final_norm: str
    lm_head: str


_LLAMA_LIKE = ModuleLayout("model.embed_tokens", "model.layers", "model.norm", "lm_head")
KNOWN_LAYOUTS: dict[str, ModuleLayout] = {
    **{
        arch: _LLAMA_LIKE
        for arch in ("olmo2", "olmo", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "granite")
    },
    "gpt_neox": ModuleLayout("gpt_neox.embed_in", "gpt_neox.layers", "gpt_neox.final_layer_norm", "embed_out"),
    "gpt2": ModuleLayout("transformer.wte", "transformer.h", "transformer.ln_f", "lm_head"),
}

_GC_EVERY = 8  # batches between full garbage collections while streaming
_NORM_NAMES = ("norm", "final_layer_norm", "ln_f", "final_norm", "final_layernorm")


def unwrap(model: Any) -> torch.nn.Module:
    """Return the plain ``torch.nn.Module`` behind an nnsight wrapper (or the module itself)."""
    inner = getattr(model, "_module", None)
    return inner if isinstance(inner, torch.nn.Module) else model


def wrap(model: torch.nn.Module, tokenizer: Any) -> Any:
    """Wrap an already-loaded Hugging Face causal LM for nnsight tracing.

    The wrapper shares the module (no copy): copying weights into it in place stays visible.
    """
    import nnsight

    side = getattr(tokenizer, "padding_side", None)
    wrapped = nnsight.TransformersModel(model, tokenizer=tokenizer, task="text-generation")
    if side is not None:  # nnsight switches the tokenizer to left padding; we pad ourselves.
        tokenizer.padding_side = side
    return wrapped


def _get(root: Any, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), root)


def _has(root: torch.nn.Module, path: str) -> bool:
    try:
        _get(root, path)
    except AttributeError:
        return False
    return True


def resolve_layout(model: Any) -> ModuleLayout:
    """Find the embedding, decoder blocks, final norm and LM head of a decoder-only model.

    Known architectures (OLMo2, Llama, Mistral, Qwen2, Gemma, GPT-NeoX/Pythia, GPT-2) use a table;
    anything else is found structurally: the ``ModuleList`` whose length is
    ``config.num_hidden_layers``, a sibling norm module, and the model's input/output embeddings.

    Raises:
        ValueError: If the structure cannot be found (the message names what is missing).
    """
    module = unwrap(model)
    config = getattr(module, "config", None)
    arch = getattr(config, "model_type", None)
    known = KNOWN_LAYOUTS.get(arch or "")
    if known is not None and all(_has(module, p) for p in (known.embed, known.layers, known.final_norm, known.lm_head)):
        return known
    n_layers = getattr(getattr(config, "text_config", None) or config, "num_hidden_layers", None)
    names = {mod: name for name, mod in module.named_modules()}
    layers_path = next(
        (
            name
            for name, mod in module.named_modules()
            if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers and name
        ),
        None,
    )
    if layers_path is None:
        raise ValueError(f"cannot find the decoder blocks of {type(module).__name__} (model_type={arch!r})")
    parent = layers_path.rpartition(".")[0]
    norm_path = next(
        (f"{parent}.{n}" if parent else n for n in _NORM_NAMES if _has(module, f"{parent}.{n}" if parent else n)),
        None,
    )
    embed, head = module.get_input_embeddings(), module.get_output_embeddings()
    missing = [
        what for what, found in (("final norm", norm_path), ("embedding", embed), ("LM head", head)) if found is None
    ]
    if missing:
        raise ValueError(f"cannot find the {', '.join(missing)} of {type(module).__name__} (model_type={arch!r})")
    return ModuleLayout(names[embed], layers_path, norm_path, names[head])


def encode(tokenizer: Any, texts: Sequence[str], *, max_length: int | None = 512) -> list[list[int]]:
    """Tokenize texts once (special tokens as the tokenizer adds them; right truncation).

    Raises:
        ValueError: If a text is empty after tokenization.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    out = tokenizer(
        list(texts), add_special_tokens=True, truncation=max_length is not None, max_length=max_length
    )["input_ids"]
    empty = [i for i, ids in enumerate(out) if len(ids) == 0]
    if empty:
        raise ValueError(f"texts {empty[:5]} have no tokens; remove empty texts")
    return [list(ids) for ids in out]


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Group sample indices into batches of similar length (longest first, stable order).

    Sorting by length keeps padding (wasted compute) small; results never depend on the grouping
    because every reduction is masked.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    token_ids: Sequence[Sequence[int]], pad_id: int, *, padding_side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch of token-id lists.

    Returns:
        ``input_ids`` (B, T) long, ``attention_mask`` (B, T) long, and ``position_ids`` (B, T)
        counted over real tokens only, so left and right padding give the same positions.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        cols = slice(0, len(ids)) if padding_side == "right" else slice(width - len(ids), width)
        input_ids[row, cols] = torch.as_tensor(list(ids), dtype=torch.long)
        mask[row, cols] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids, mask, positions


@dataclass(frozen=True)
class LayerBatch:
    """One layer's residual stream for one batch, as handed to a reducer.

    Attributes:
        layer: Layer index ``0..L`` (0 = embedding output; ``l`` = after block ``l``, pre-final-norm).
        states: ``(B, T, D)`` hidden states in the model's dtype, on the model's device.
        mask: ``(B, T)`` bool, True on real tokens.
        index: ``(B,)`` long, positions of these samples in the caller's ``token_ids``.
    """

    layer: int
    states: torch.Tensor
    mask: torch.Tensor
    index: torch.Tensor


Reducer = Callable[[LayerBatch], None]


def _as_tensor(output: Any) -> torch.Tensor:
    # transformers 5 blocks return a tensor; older ones (and some remote code) a tuple.
    return output[0] if isinstance(output, tuple | list) else output


def _input_device(module: torch.nn.Module, layout: ModuleLayout) -> torch.device:
    return next(_get(module, layout.embed).parameters()).device


def _check_layers(layers: Iterable[int] | None, n_layers: int) -> list[int]:
    wanted = list(range(n_layers + 1)) if layers is None else sorted(set(int(x) for x in layers))
    bad = [x for x in wanted if not 0 <= x <= n_layers]
    if bad:
        raise ValueError(f"layers {bad} out of range: valid layers are 0..{n_layers}")
    if not wanted:
        raise ValueError("no layers requested")
    return wanted


def stream_layers(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    reducer: Reducer,
    *,
    layers: Iterable[int] | None = None,
    batch_size: int = 8,
    padding_side: str = "right",
    pad_id: int | None = None,
    progress: bool = True,
    desc: str = "forward",
    remote: bool = False,
) -> None:
    """Run the model over ``token_ids`` batch by batch and stream layer states into ``reducer``.

    For each batch (length-bucketed) one nnsight trace runs the forward under ``torch.no_grad``;
    for each requested layer in forward order the reducer receives a :class:`LayerBatch`
    ``(states (B, T, D), mask (B, T), index (B,))``. The forward stops after the deepest requested
    layer, so the final norm and the LM head are skipped.

    Args:
        model: nnsight-wrapped model (see :func:`wrap`).
        token_ids: Token ids per sample (from :func:`encode`); the same ids go to Base and SFT.
        reducer: Callback receiving each layer of each batch.
        layers: Layer indices to stream (default all ``0..L``).
        batch_size: Samples per forward pass.
        padding_side: ``"right"`` or ``"left"``; results of masked reducers do not depend on it.
        pad_id: Padding id (default: the tokenizer's pad id, else 0). Never seen by reducers.
        progress: Show a tqdm progress bar over batches.
        desc: Progress bar label.
        remote: Execute the trace on NDIF (nnsight's hosted models; needs an nnsight API key and a
            model that NDIF serves, see :func:`remote_model`). The reducer cannot run on the server,
            so the requested layers of each batch are saved, sent back and reduced locally: memory
            and bandwidth grow with ``layers × batch × tokens × D``; keep batches and layer lists small.
    """
    module = unwrap(model)
    layout = resolve_layout(module)
    blocks = _get(model, layout.layers)
    n_layers = len(blocks)
    wanted = _check_layers(layers, n_layers)
    if len(token_ids) == 0:
        raise ValueError("no samples to trace")
    if pad_id is None:
        tok = getattr(model, "tokenizer", None)
        pad_id = getattr(tok, "pad_token_id", None)
        pad_id = 0 if pad_id is None else int(pad_id)
    device = _input_device(module, layout)
    batches = length_batches([len(ids) for ids in token_ids], batch_size)
    # Traces leave reference cycles that hold activations until a full collection, so one runs every
    # _GC_EVERY batches. gc.freeze() first sets the objects that already exist (the model's modules,
    # the libraries) aside, so those collections only scan what the traces created (bench_analyze.py).
    gc.freeze()
    try:
        for step, batch in enumerate(tqdm(batches, desc=desc, disable=not progress, unit="batch")):
            if step and step % _GC_EVERY == 0:
                gc.collect()
            input_ids, mask, positions = collate([token_ids[i] for i in batch], pad_id, padding_side=padding_side)
            inputs = {
                "input_ids": input_ids.to(device),
                "attention_mask": mask.to(device),
                "position_ids": positions.to(device),
            }
            index = torch.as_tensor(batch, device=device)
            if remote:
                _trace_batch_remote(model, blocks, inputs, wanted, reducer, index)
            else:
                _trace_batch(model, blocks, inputs, wanted, reducer, index)
    finally:
        gc.unfreeze()


def _layer_proxy(blocks: Any, layer: int) -> Any:
    """The traced value of hidden layer ``layer``: block 1's input for 0, block ``layer``'s output after."""
    return blocks[0].input if layer == 0 else blocks[layer - 1].output


def _trace_batch(
    model: Any,
    blocks: Any,
    inputs: dict[str, torch.Tensor],
    wanted: list[int],
    reducer: Reducer,
    index: torch.Tensor,
) -> None:
    mask = inputs["attention_mask"].bool()
    with torch.no_grad():
        with model.trace(inputs) as tracer:
            for layer in wanted:
                reducer(LayerBatch(layer, _as_tensor(_layer_proxy(blocks, layer)), mask, index))
            tracer.stop()


def _trace_batch_remote(
    model: Any,
    blocks: Any,
    inputs: dict[str, torch.Tensor],
    wanted: list[int],
    reducer: Reducer,
    index: torch.Tensor,
) -> None:
    import nnsight

    mask = inputs["attention_mask"].bool()
    with torch.no_grad():
        with model.trace(inputs, remote=True) as tracer:
            saved = nnsight.save([_layer_proxy(blocks, layer) for layer in wanted])
            tracer.stop()
    for layer, states in zip(wanted, saved, strict=True):
        reducer(LayerBatch(layer, _as_tensor(states).to(mask.device), mask, index))


def remote_model(ident: str, *, revision: str | None = None, tokenizer: Any = None) -> Any:
    """An nnsight wrapper of a Hub model for remote (NDIF) execution, without downloading weights.

    Only the config and tokenizer are fetched; the weights stay on the meta device locally and
    every trace must be called with ``remote=True``. Works only for models NDIF hosts, with an
    nnsight API key configured (``nnsight.CONFIG.set_default_api_key``) and network access.
    """
    import nnsight

    return nnsight.LanguageModel(ident, revision=revision, tokenizer=tokenizer, dispatch=False)


def largest_fitting(fits: Callable[[int], bool], *, start: int = 1, limit: int = 1024) -> int:
    """Largest ``n`` in ``[1, limit]`` with ``fits(n)``, assuming fitting is monotone in ``n``.

    Doubles from ``start`` until a size fails, then bisects between the last success and the
    first failure: ``O(log limit)`` calls.

    Raises:
        RuntimeError: If even ``n = 1`` does not fit.
    """
    if not fits(1):
        raise RuntimeError("not even one sample fits in memory; reduce max_length or use device_map/offloading")
    good, bad = 1, None
    n = max(2, start)
    while n <= limit:
        if fits(n):
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad is None:
        return min(good, limit) if good >= limit else _bisect(fits, good, limit + 1)
    return _bisect(fits, good, bad)


def _bisect(fits: Callable[[int], bool], good: int, bad: int) -> int:
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good


def auto_batch_size(model: Any, max_tokens: int, *, limit: int = 256, default: int = 8) -> int:
    """The largest batch of ``max_tokens``-long sequences whose traced forward fits on the GPU.

    Found once per (model, dtype, device, length) by trial forwards that stop after the last block
    (the LM head is never run), then remembered in ``<cache root>/batch_sizes.json``. Leaves 10%
    headroom for the reducers. On CPU it returns ``default``.
    """
    import json

    module = unwrap(model)
    layout = resolve_layout(module)
    device = _input_device(module, layout)
    if device.type != "cuda":
        return default
    key = "|".join(
        str(x)
        for x in (getattr(module.config, "_name_or_path", ""), module.dtype, torch.cuda.get_device_name(device),
                  torch.cuda.get_device_properties(device).total_memory, max_tokens)
    )
    store = cache_root() / "batch_sizes.json"
    known = json.loads(store.read_text()) if store.exists() else {}
    if key in known:
        return int(known[key])
    blocks = _get(model, layout.layers)
    n_layers = len(blocks)

    def fits(n: int) -> bool:
        ids = [[1] * max_tokens] * n
        try:
            stream_layers(model, ids, lambda b: None, layers=[n_layers], batch_size=n, progress=False)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            gc.collect()
            torch.cuda.empty_cache()

    size = max(1, int(largest_fitting(fits, start=8, limit=limit) * 0.9))
    known[key] = size
    atomic_write(store, lambda tmp: tmp.write_text(json.dumps(known, indent=1)))
    return size


def collect_layers(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    *,
    layers: Iterable[int] | None = None,
    **kwargs: Any,
) -> dict[int, list[torch.Tensor]]:
    """Collect every requested layer's real-token states per sample (for tests and small inputs).

    Returns:
        ``{layer: [states of sample i, shape (T_i, D)]}`` in the order of ``token_ids``. Holds all
        layers × samples × tokens in memory: use :func:`stream_layers` for real workloads.
    """
    store: dict[int, list[torch.Tensor | None]] = {}

    def keep(batch: LayerBatch) -> None:
        rows = store.setdefault(batch.layer, [None] * len(token_ids))
        for row, sample in enumerate(batch.index.tolist()):
            rows[sample] = batch.states[row][batch.mask[row]].detach().clone()

    stream_layers(model, token_ids, keep, layers=layers, **kwargs)
    return {layer: list(rows) for layer, rows in store.items()}  # type: ignore[misc]
