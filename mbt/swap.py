r"""Base↔SFT block swapping (paper §4.3, Fig. 6), restored bit for bit.

:func:`swapped` copies the donor model's weights of some decoder blocks **in place** into the
receiving model (module objects are never replaced, so the nnsight wrapper keeps working), yields
the receiving model, and on exit — normal or by exception — copies the receiver's original tensors
back from a CPU snapshot of only the touched tensors. ``into="base"`` puts SFT blocks into Base
(the authors' only direction), ``into="sft"`` puts Base blocks into SFT. ``head="donor"`` also
copies the donor's final norm and LM head (the authors' "transferred" head); ``embed="donor"``
also copies the token embeddings (the authors never did; with every block, the head and the
embeddings swapped, the receiver computes exactly the donor's function). ``part="mlp"`` or
``part="attn"`` grafts only a sub-block of each chosen block: every tensor under the block's MLP module
(``mlp``, ``feed_forward`` …) or attention module (``self_attn``, ``attention`` …), norms outside them left
as they are (:data:`PARTS`). :func:`perturbed_like` is the matched-size random control of a graft.

**Block numbers** are 1-based, ``1..L``, matching the layer index: block ``l`` produces hidden
layer ``l`` and is ``layers[l - 1]`` in the model's ``ModuleList``. (The authors' segment
``{6, 7}`` of OLMo2-13B is our ``{7, 8}``.) Every parameter and buffer of a block is copied, as
in the authors' code (the book's appendix "The released code").

:func:`swap_sweep` runs the paper's experiment properly: ``n`` equal segments, whole segments or
the last ``k`` blocks of each (authors: ``k = 2``), both directions, both heads, a placebo null and
paired bootstrap intervals, scored by any per-item ``score_fn``; :func:`token_accuracy` is the
authors' score ("MMLU accuracy" in Fig. 6 is teacher-forced next-token top-1 accuracy over all
tokens of the formatted text, §7).
"""

from __future__ import annotations

import contextlib
import operator
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mbt import trace
from mbt.checks import NonFiniteError, require_finite
from mbt.segments import segment_blocks
from mbt.stats import bootstrap_mean_ci

__all__ = [
    "COLUMNS",
    "PARTS",
    "perturbed_like",
    "segment_blocks",
    "swap_sweep",
    "swapped",
    "swapped_models",
    "token_accuracy",
]

COLUMNS: tuple[str, ...] = (
    "direction", "receiver", "donor", "kind", "head", "segment", "blocks", "n_blocks", "score", "ci_low",
    "ci_high", "diff", "diff_ci_low", "diff_ci_high", "diff_ci_width", "significant", "n",
)

_HEADS = ("receiver", "donor")

PARTS: tuple[str, ...] = ("block", "mlp", "attn")
"""What of each chosen block a swap copies: all of it, only its MLP module or only its attention module."""

_PART_MODULES: dict[str, tuple[str, ...]] = {
    "mlp": ("mlp", "feed_forward", "ffn"),
    "attn": ("self_attn", "attention", "attn", "self_attention"),
}
_DIRECTIONS = ("base", "sft")


def _check_blocks(layers: int | Iterable[int], n_layers: int) -> list[int]:
    wanted = [int(layers)] if isinstance(layers, int | np.integer) else [int(x) for x in layers]
    bad = sorted({x for x in wanted if not 1 <= x <= n_layers})
    if bad:
        raise ValueError(f"blocks {bad} out of range: valid blocks are 1..{n_layers} (block l produces layer l)")
    return sorted(set(wanted))


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of a module by name (tied/shared tensors once)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        out[name] = t
    return out


def _part_of(block: torch.nn.Module, part: str, where: str) -> tuple[str, torch.nn.Module]:
    """``(name, module)`` of a block's sub-module for ``part`` (``"block"`` is the block itself, name ``""``)."""
    if part == "block":
        return "", block
    children = dict(block.named_children())
    for name in _PART_MODULES[part]:
        if name in children:
            return name, children[name]
    raise ValueError(f"{where} has no {part} module (children: {', '.join(children)}); part='{part}' needs one of "
                     f"{', '.join(_PART_MODULES[part])}")


def _targets(module: torch.nn.Module, blocks: list[int], head: str, embed: str,
             part: str = "block") -> dict[str, torch.Tensor]:
    """Receiver-side tensors touched by a swap, keyed by their full name."""
    layout = trace.resolve_layout(module)
    get = operator.attrgetter
    parts: list[tuple[str, torch.nn.Module]] = []
    stack = get(layout.layers)(module)
    for b in blocks:
        name, sub = _part_of(stack[b - 1], part, f"block {b}")
        parts.append((f"{layout.layers}.{b - 1}" + (f".{name}" if name else ""), sub))
    if head == "donor":
        parts += [(layout.final_norm, get(layout.final_norm)(module)), (layout.lm_head, get(layout.lm_head)(module))]
    if embed == "donor":
        parts.append((layout.embed, get(layout.embed)(module)))
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for prefix, piece in parts:
        for name, t in _tensors(piece).items():
            if id(t) not in seen:
                seen.add(id(t))
                out[f"{prefix}.{name}"] = t
    return out


def _tied_warning(module: torch.nn.Module, head: str, embed: str) -> None:
    if head == embed:
        return
    layout = trace.resolve_layout(module)
    emb = getattr(operator.attrgetter(layout.embed)(module), "weight", None)
    out = getattr(operator.attrgetter(layout.lm_head)(module), "weight", None)
    if emb is not None and out is not None and emb.data_ptr() == out.data_ptr():
        warnings.warn(
            "the model ties its LM head to its input embedding: swapping one swaps the other",
            stacklevel=4,
        )


@contextlib.contextmanager
def swapped_models(
    receiver: Any,
    donor: Any | None,
    layers: int | Iterable[int],
    *,
    head: str = "receiver",
    embed: str = "receiver",
    part: str = "block",
) -> Iterator[Any]:
    """Copy ``donor``'s blocks (and optionally head/embeddings) into ``receiver`` in place; restore on exit.

    Args:
        receiver: The model that receives weights (nnsight-wrapped or plain); it is what is yielded.
        donor: The model giving weights, same architecture. ``None`` = a **placebo**: the
            receiver's own tensors are copied (through the same CPU round trip and copy path) into
            themselves, so any effect measured is an artefact of the machinery.
        layers: Block numbers ``1..L`` (one int or an iterable; empty = no block).
        head: ``"receiver"`` keeps the receiver's final norm + LM head; ``"donor"`` copies the donor's.
        embed: ``"receiver"`` (default, as the authors) or ``"donor"`` to copy the token embeddings too.
        part: ``"block"`` (every tensor of each block), ``"mlp"`` or ``"attn"`` (only that sub-module of
            each block; :data:`PARTS`).

    Yields:
        ``receiver``, with the swapped weights.

    Raises:
        ValueError: Invalid block numbers (the message names the valid range ``1..L``), unknown
            ``head``/``embed``/``part``, a block without the part, mismatched architectures, or weights
            offloaded to the meta device.
    """
    if head not in _HEADS:
        raise ValueError(f"head must be 'receiver' or 'donor', got {head!r}")
    if embed not in _HEADS:
        raise ValueError(f"embed must be 'receiver' or 'donor', got {embed!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    recv = trace.unwrap(receiver)
    layout = trace.resolve_layout(recv)
    n_layers = len(operator.attrgetter(layout.layers)(recv))
    blocks = _check_blocks(layers, n_layers)
    targets = _targets(recv, blocks, head, embed, part)
    if any(t.device.type == "meta" for t in targets.values()):
        raise ValueError("some receiver weights are offloaded (meta device); in-place swapping needs them materialised")
    if donor is None:
        sources = None
    else:
        don = trace.unwrap(donor)
        if len(operator.attrgetter(trace.resolve_layout(don).layers)(don)) != n_layers:
            raise ValueError("receiver and donor have different numbers of blocks")
        sources = _targets(don, blocks, head, embed, part)
        if sources.keys() != targets.keys():
            diff = sorted(set(sources) ^ set(targets))[:5]
            raise ValueError(f"receiver and donor blocks hold different tensors, e.g. {diff}")
        for name, t in targets.items():
            if sources[name].shape != t.shape:
                raise ValueError(f"{name}: receiver shape {tuple(t.shape)} != donor shape {tuple(sources[name].shape)}")
        _tied_warning(recv, head, embed)
    snapshot = {name: t.detach().to("cpu", copy=True) for name, t in targets.items()}
    if sources is None:
        sources = snapshot
    try:
        with torch.no_grad():
            for name, t in targets.items():
                t.copy_(sources[name])
        yield receiver
    finally:
        with torch.no_grad():
            for name, t in targets.items():
                t.copy_(snapshot[name])


@contextlib.contextmanager
def swapped(
    pair: Any,
    layers: int | Iterable[int],
    *,
    into: str = "base",
    head: str = "receiver",
    embed: str = "receiver",
    part: str = "block",
) -> Iterator[Any]:
    """Swap blocks between the two models of a pair for the duration of a ``with`` block.

    ``with swapped(pair, [7, 8]) as model:`` — ``model`` is ``pair.base`` (nnsight-wrapped, the
    same object) with SFT's blocks 7 and 8; after the block, Base's tensors are bit-identical to
    before, also when the body raised.

    Args:
        pair: A :class:`~mbt.pairs.ModelPair`.
        layers: 1-based block numbers ``1..L`` (block ``l`` = ``layers[l - 1]``, produces layer ``l``).
        into: ``"base"`` (SFT blocks into Base, the authors' direction) or ``"sft"`` (Base into SFT).
        head: ``"receiver"`` keeps the receiving model's final norm + LM head, ``"donor"`` copies
            the other model's (authors' "original" / "transferred").
        embed: ``"receiver"`` or ``"donor"`` (token embeddings; never swapped by the authors).
        part: ``"block"``, ``"mlp"`` or ``"attn"`` (see :func:`swapped_models`).

    Yields:
        The receiving model (``pair.base`` for ``into="base"``, ``pair.sft`` otherwise).
    """
    if into not in _DIRECTIONS:
        raise ValueError(f"into must be 'base' or 'sft', got {into!r}")
    receiver, donor = (pair.base, pair.sft) if into == "base" else (pair.sft, pair.base)
    with swapped_models(receiver, donor, layers, head=head, embed=embed, part=part) as model:
        yield model


@contextlib.contextmanager
def perturbed_like(
    receiver: Any,
    donor: Any,
    layers: int | Iterable[int],
    *,
    part: str = "block",
    seed: int = 0,
) -> Iterator[Any]:
    """The matched-size random control of a graft: perturb ``receiver``'s tensors as far as the donor's are.

    For every tensor ``W`` a graft of ``part`` of ``layers`` would copy (:func:`swapped_models`), the receiver's
    ``W_r`` becomes ``W_r + ‖W_d − W_r‖_F · Z / ‖Z‖_F`` with ``Z`` standard normal (seeded, one draw per tensor
    in name order): the same Frobenius distance as the graft, in a random direction. Restored bit for bit on
    exit, as a swap is.

    Args:
        receiver: The model perturbed (and yielded).
        donor: The model whose distance to the receiver sets each tensor's perturbation size.
        layers: Block numbers ``1..L``.
        part: ``"block"``, ``"mlp"`` or ``"attn"``.
        seed: Seed of the random directions.

    Yields:
        ``receiver``, perturbed.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    recv, don = trace.unwrap(receiver), trace.unwrap(donor)
    n_layers = len(operator.attrgetter(trace.resolve_layout(recv).layers)(recv))
    blocks = _check_blocks(layers, n_layers)
    targets = _targets(recv, blocks, "receiver", "receiver", part)
    sources = _targets(don, blocks, "receiver", "receiver", part)
    if sources.keys() != targets.keys():
        raise ValueError("receiver and donor blocks hold different tensors")
    snapshot = {name: t.detach().to("cpu", copy=True) for name, t in targets.items()}
    gen = torch.Generator().manual_seed(int(seed))
    try:
        with torch.no_grad():
            for name in sorted(targets):
                t = targets[name]
                size = float(torch.linalg.vector_norm(sources[name].detach().to("cpu", torch.float64)
                                                       - snapshot[name].to(torch.float64)))
                z = torch.randn(t.shape, generator=gen, dtype=torch.float64)
                norm = float(torch.linalg.vector_norm(z))
                if size > 0 and norm > 0:
                    t.copy_((snapshot[name].to(torch.float64) + size * z / norm).to(t.dtype))
        yield receiver
    finally:
        with torch.no_grad():
            for name, t in targets.items():
                t.copy_(snapshot[name])


def token_accuracy(
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int = 512,
) -> Callable[[Any], np.ndarray]:
    """A ``score_fn`` giving each text's teacher-forced next-token top-1 accuracy.

    This is the authors' "MMLU accuracy" of Fig. 6 (``12_layer_swapping.py``,
    the book's appendix "The released code"): ``mean_t 1[argmax p(·|x_≤t) = x_{t+1}]`` over every real
    position of the formatted text (question, options and answer alike), here per text rather than
    pooled over tokens. Not multiple-choice accuracy. Texts are tokenized once; the returned
    function runs a plain forward of the (possibly swapped) model, right padding with real-token
    position ids, under ``torch.no_grad``.

    Returns:
        ``score_fn(model) -> np.ndarray`` of shape ``(len(texts),)`` (NaN for texts of < 2 tokens).
    """
    ids = trace.encode(tokenizer, texts, max_length=max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    batches = trace.length_batches([len(x) for x in ids], batch_size)

    def score(model: Any) -> np.ndarray:
        module = trace.unwrap(model)
        device = next(module.parameters()).device
        out = np.full(len(ids), np.nan)
        with torch.no_grad():
            for batch in batches:
                input_ids, mask, positions = trace.collate([ids[i] for i in batch], pad_id, padding_side="right")
                logits = module(
                    input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                    use_cache=False,
                ).logits
                real = (mask[:, 1:] * mask[:, :-1]).bool().to(logits.device)
                require_finite(logits[:, :-1].sum(-1, dtype=torch.float64)[real],
                               f"token_accuracy: logits of texts {sorted(batch)[:5]}", unit="logit vector(s)")
                hits = (logits[:, :-1].argmax(-1).cpu() == input_ids[:, 1:]) & (mask[:, 1:] == 1)
                counts = mask[:, 1:].sum(1)
                for row, sample in enumerate(batch):
                    if counts[row] > 0:
                        out[sample] = float(hits[row].sum()) / float(counts[row])
        return out

    return score


def _scores(score_fn: Callable[[Any], Any], model: Any, n: int | None) -> np.ndarray:
    values = score_fn(model)
    arr = (values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor)
           else np.asarray(values, dtype=float)).reshape(-1)
    if n is not None and arr.size != n:
        raise ValueError(f"score_fn returned {arr.size} scores, expected {n} (one per item, every call)")
    return arr


def swap_sweep(
    pair: Any,
    score_fn: Callable[[Any], Any],
    *,
    n_segments: int = 5,
    depth: int | None = None,
    directions: Sequence[str] = ("base", "sft"),
    heads: Sequence[str] = ("receiver", "donor"),
    placebo: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Swap each segment in each direction with each head and score the result against the receiver.

    For each direction (``"base"``: SFT blocks into Base; ``"sft"``: Base blocks into SFT) the
    unswapped receiver is scored once; then every configuration's per-item scores are compared with
    it item by item. Rows (``kind``):

    * ``"receiver"`` — the unswapped receiver (``diff`` = 0);
    * ``"donor"`` — the other model, unswapped (the ceiling/floor of what swapping can do);
    * ``"head_only"`` — no block, donor's final norm + LM head (only when ``"donor"`` in ``heads``);
    * ``"swap"`` — one row per ``(head, segment)``;
    * ``"placebo"`` — per segment, the segment's blocks replaced by an identical copy of
      themselves (receiver head). Its ``diff`` must be exactly 0; anything else means the
      evaluation or the swap machinery is not deterministic.

    ``score`` is the mean per-item score with a percentile-bootstrap interval over items;
    ``diff`` = mean of per-item ``(configuration − receiver)`` differences with a **paired**
    bootstrap interval (same resampled items for both; the same seed, hence the same resamples, for
    every row). ``diff_ci_width`` is the noise yardstick: an effect smaller than about half of it
    (the paper's ±0.001–0.003) is indistinguishable from resampling the evaluation items;
    ``significant`` says whether the paired interval excludes 0.

    Args:
        pair: A :class:`~mbt.pairs.ModelPair`.
        score_fn: ``score_fn(model) -> per-item scores`` (1-D, same length and item order every
            call), e.g. :func:`token_accuracy`. It receives the nnsight-wrapped receiving model.
        n_segments: Number of equal segments (:func:`segment_blocks`).
        depth: ``None`` = whole segments; ``k`` = last ``k`` blocks of each segment (authors: 2).
        directions: Subset of ``("base", "sft")`` (the receiving model).
        heads: Subset of ``("receiver", "donor")``.
        placebo: Add the placebo rows.
        n_bootstrap: Bootstrap resamples (0 = no intervals).
        seed: Bootstrap seed.
        progress: Show a progress bar over configurations.

    Returns:
        DataFrame with columns :data:`COLUMNS`; ``segment`` is ``0..n-1`` (−1 where no segment),
        ``blocks`` a tuple of 1-based block numbers, ``direction`` ``"sft→base"`` or ``"base→sft"``.
    """
    bad = [d for d in directions if d not in _DIRECTIONS] + [h for h in heads if h not in _HEADS]
    if bad:
        raise ValueError(f"unknown directions/heads {bad}; directions ⊆ {_DIRECTIONS}, heads ⊆ {_HEADS}")
    segments = segment_blocks(pair.n_layers, n_segments, depth=depth)
    plan: list[tuple[str, str, int, tuple[int, ...], str]] = []  # kind, head, segment, blocks, direction
    for direction in directions:
        plan.append(("receiver", "receiver", -1, (), direction))
        plan.append(("donor", "donor", -1, (), direction))
        if "donor" in heads:
            plan.append(("head_only", "donor", -1, (), direction))
        for head in heads:
            plan += [("swap", head, i, tuple(seg), direction) for i, seg in enumerate(segments)]
        if placebo:
            plan += [("placebo", "receiver", i, tuple(seg), direction) for i, seg in enumerate(segments)]

    rows: list[dict[str, Any]] = []
    reference: dict[str, np.ndarray] = {}
    n_items: int | None = None
    for kind, head, segment, blocks, direction in tqdm(plan, desc="swap sweep", disable=not progress, unit="run"):
        receiver, donor = (pair.base, pair.sft) if direction == "base" else (pair.sft, pair.base)
        names = ("base", "sft") if direction == "base" else ("sft", "base")
        where = f"swap sweep, {names[1]}→{names[0]} {kind} (head {head}, blocks {list(blocks)})"
        try:
            if kind == "receiver":
                scores = _scores(score_fn, receiver, n_items)
                n_items = scores.size
                reference[direction] = scores
            elif kind == "donor":
                scores = _scores(score_fn, donor, n_items)
            else:
                with swapped_models(receiver, None if kind == "placebo" else donor, blocks, head=head) as model:
                    scores = _scores(score_fn, model, n_items)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{where}: {exc}") from exc
        if bool(np.isinf(scores).any()):  # NaN marks an item without a score; infinity is never a score
            require_finite(scores[~np.isnan(scores)], f"{where}: scores")
        mean, low, high = bootstrap_mean_ci(scores, n_boot=n_bootstrap, seed=seed)
        diff = scores - reference[direction]
        d_mean, d_low, d_high = bootstrap_mean_ci(diff, n_boot=n_bootstrap, seed=seed)
        rows.append({
            "direction": f"{names[1]}→{names[0]}",
            "receiver": names[0],
            "donor": names[1],
            "kind": kind,
            "head": head,
            "segment": segment,
            "blocks": blocks,
            "n_blocks": len(blocks),
            "score": mean,
            "ci_low": low,
            "ci_high": high,
            "diff": d_mean,
            "diff_ci_low": d_low,
            "diff_ci_high": d_high,
            "diff_ci_width": d_high - d_low,
            "significant": bool(d_low > 0 or d_high < 0),
            "n": int(np.isfinite(diff).sum()),
        })
    return pd.DataFrame(rows, columns=list(COLUMNS))
