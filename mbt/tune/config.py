r"""Budget-matched LoRA configurations for segment masks (the paper's §4.4 set-up).

LoRA on a module ``W (out × in)`` trains ``r·(in + out)`` parameters. The full-depth baseline uses rank
``rank`` on every block; a mask with ``m`` active blocks gets the integer rank whose parameter count is
closest to the baseline's (``≈ rank·L/m``), so masks are compared at a nearly constant budget
(:func:`budget`). Only ``r`` and ``layers_to_transform`` go to PEFT (no ``rank_pattern``: its keys are
regexes, and integer keys match nothing).

The scale of the update ``W + (α/r)·BA`` is the confound the book discusses: the released code kept
``lora_alpha = 128`` while the rank varied five-fold across masks, so the masks also differed in their
effective step size. ``preset="standard"`` keeps ``α/r`` constant (``lora_alpha = alpha_over_r · r``)
or, with ``rslora=True``, uses rsLoRA (scale ``α/√r``); ``preset="paper"`` reproduces ``lora_alpha=128``
with the rank-64 baseline and ``int()`` rounding, so the confound can be measured (see the book's
appendix "The released code").
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

from mbt.segments import segment_layers
from mbt.trace import resolve_layout, unwrap
from mbt.tune.settings import DEFAULT_TARGETS, LORA_PRESETS, MLP_TARGETS, LoraSettings

__all__ = [
    "PAPER_ALPHA",
    "PAPER_DROPOUT",
    "PAPER_RANK",
    "budget",
    "check_preset",
    "config_of",
    "lora_config",
    "lora_scale",
    "target_dims",
    "targets_of",
]

PAPER_ALPHA = 128
PAPER_RANK = 64
PAPER_DROPOUT = 0.05


def config_of(source: Any) -> Any:
    """The text config of a model or config (multimodal configs keep it in ``text_config``)."""
    config = getattr(source, "config", source)
    return getattr(config, "text_config", None) or config


def target_dims(source: Any, targets: Sequence[str] = DEFAULT_TARGETS) -> dict[str, tuple[int, int]]:
    """``{target: (in_features, out_features)}`` of the adapted projections of one block.

    Args:
        source: a model (the shapes of its first block's linear layers are read), a Hugging Face
            config (Llama-style names; grouped-query attention gives k/v ``num_key_value_heads ·
            head_dim`` outputs), or a mapping ``{target: (in, out)}`` (returned checked).
        targets: module names.

    Raises:
        ValueError: if a target's shape cannot be found.
    """
    import torch

    if isinstance(source, Mapping):
        dims = {t: (int(source[t][0]), int(source[t][1])) for t in targets if t in source}
    elif isinstance(source, torch.nn.Module):
        module = unwrap(source)
        block = operator.attrgetter(resolve_layout(module).layers)(module)[0]
        dims = {}
        for name, sub in block.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in targets and leaf not in dims:
                base = getattr(sub, "base_layer", sub)  # a PEFT-wrapped layer keeps the original inside
                if hasattr(base, "in_features"):
                    dims[leaf] = (int(base.in_features), int(base.out_features))
    else:
        cfg = config_of(source)
        hidden = int(cfg.hidden_size)
        heads = int(cfg.num_attention_heads)
        kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(cfg, "head_dim", None) or hidden // heads)
        inter = getattr(cfg, "intermediate_size", None)
        known: dict[str, tuple[int, int]] = {
            "q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv * head_dim),
            "v_proj": (hidden, kv * head_dim), "o_proj": (heads * head_dim, hidden),
        }
        if inter is not None:
            known.update({"gate_proj": (hidden, int(inter)), "up_proj": (hidden, int(inter)),
                          "down_proj": (int(inter), hidden)})
        dims = {t: known[t] for t in targets if t in known}
    missing = [t for t in targets if t not in dims]
    if missing:
        raise ValueError(f"cannot find the shapes of {missing}; pass a model or a mapping {{name: (in, out)}}")
    return dims


def check_preset(preset: str) -> None:
    """Raise ``ValueError`` listing :data:`~mbt.tune.settings.LORA_PRESETS` for an unknown LoRA preset."""
    if preset not in LORA_PRESETS:
        raise ValueError(f"unknown LoRA preset {preset!r}; choices: {', '.join(LORA_PRESETS)}")


def targets_of(targets: Sequence[str], mlp: bool) -> list[str]:
    """The adapted module names: ``targets`` plus :data:`MLP_TARGETS` with ``mlp``, without repeats."""
    if isinstance(targets, str):
        raise ValueError("targets must be a list of module names (PEFT ignores layers_to_transform for a regex)")
    out = list(dict.fromkeys([*targets, *(MLP_TARGETS if mlp else ())]))
    if not out:
        raise ValueError("no target modules")
    return out


def budget(
    mask: str,
    n_layers: int,
    rank: int | None = None,
    dims: Any = None,
    *,
    targets: Sequence[str] = DEFAULT_TARGETS,
    mlp: bool = False,
    preset: str = "standard",
) -> dict[str, Any]:
    """The rank a mask gets under the budget of full-depth LoRA at ``rank``, and the parameter counts.

    LoRA on ``W (out × in)`` trains ``r·(in + out)`` parameters. The baseline is rank ``rank`` on
    every block: ``rank · L · S`` with ``S = Σ_targets (in + out)``. A mask with ``m`` active blocks
    gets the integer rank ``r ≥ 1`` whose count ``r · m · S`` is closest to the baseline (the
    smaller one on a tie); ``preset="paper"`` uses the authors' ``int(rank · L / m)`` instead. All
    blocks of these models have equal shapes, so the rank does not depend on ``dims``; the counts
    do (grouped-query attention makes k/v smaller).

    Args:
        mask: segment mask.
        n_layers: number of blocks ``L``.
        rank: baseline rank (default 8; 64 with ``preset="paper"``).
        dims: anything :func:`target_dims` accepts; ``None`` counts every target as ``in + out = 1``
            (the result is then in "rank units", the authors' Σ r).
        targets: adapted module names.
        mlp: also adapt the MLP projections (:data:`MLP_TARGETS`).
        preset: ``"standard"`` or ``"paper"``.

    Returns:
        ``{"mask", "n_segments", "layers", "n_layers_tuned", "rank", "baseline_rank", "trainable",
        "baseline", "ratio", "units"}`` where ``trainable``/``baseline`` are parameter counts
        (or rank units) and ``ratio = trainable / baseline``.
    """
    check_preset(preset)
    rank = (PAPER_RANK if preset == "paper" else 8) if rank is None else int(rank)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    names = targets_of(targets, mlp)
    layers = segment_layers(mask, n_layers)
    shapes = target_dims(dims, names) if dims is not None else {t: (1, 0) for t in names}
    per_block = sum(i + o for i, o in shapes.values())
    baseline = rank * n_layers * per_block
    m = len(layers)
    if preset == "paper":
        r = max(1, rank * n_layers // m)
    else:
        lo = max(1, (rank * n_layers) // m)
        r = min((lo, lo + 1), key=lambda x: (abs(x * m * per_block - baseline), x))
    trainable = r * m * per_block
    return {
        "mask": mask, "n_segments": len(mask), "layers": layers, "n_layers_tuned": m, "rank": r,
        "baseline_rank": rank, "trainable": trainable, "baseline": baseline, "ratio": trainable / baseline,
        "units": "parameters" if dims is not None else "rank units",
    }


def lora_config(
    mask: str,
    n_layers: int,
    *,
    settings: LoraSettings | None = None,
    model_dims: Any = None,
    layers_pattern: str | None = None,
    **changes: Any,
):
    """A budget-matched ``peft.LoraConfig`` that adapts only the blocks a mask switches on.

    The rank is :func:`budget`'s (full-depth LoRA at ``rank`` has the same trainable-parameter
    count to within integer rounding). The LoRA scale is controlled:

    * ``preset="standard"``: ``lora_alpha = alpha_over_r · r``, so the scale ``α/r`` is
      ``alpha_over_r`` for every mask; with ``rslora=True`` PEFT's rsLoRA scale ``α/√r`` with one
      ``α = alpha_over_r · √rank`` for every mask (equal to the standard scale at the baseline rank);
    * ``preset="paper"``: the authors' ``lora_alpha=128``, ``lora_dropout=0.05``, baseline rank 64
      and ``int()`` rounding, so ``α/r`` falls from 2.0 (r=64) to 0.375 (r=341): the confound.

    Only ``r`` and ``layers_to_transform`` are passed (never an integer-keyed ``rank_pattern``,
    which PEFT would match as a regex against module names, i.e. not at all), and
    ``target_modules`` is a list (PEFT ignores ``layers_to_transform`` otherwise; OLMo2 has no
    default targets).

    Args:
        mask: segment mask (at least one ``"1"``).
        n_layers: number of blocks ``L``.
        settings: the run's :class:`~mbt.tune.settings.LoraSettings`; its adapter fields are read (``rank``:
            baseline rank, default 8 or 64 with the paper preset; ``preset``; ``targets``; ``mlp``;
            ``alpha_over_r``; ``rslora``, standard preset only; ``dropout``, default 0 or 0.05 with the paper
            preset).
        model_dims: shapes for the parameter count (see :func:`budget`); the rank does not depend on them.
        layers_pattern: name of the block list (PEFT's ``layers_pattern``) for models whose module
            paths have other numbered parts before the block index; ``None`` = PEFT's default.
        **changes: fields of ``settings`` to change, e.g. ``rank=8, preset="paper"``.

    Returns:
        The ``LoraConfig`` (``task_type="CAUSAL_LM"``, ``bias="none"``).

    Raises:
        ValueError: invalid mask, unknown preset (the message lists the choices), or rsLoRA with the
            ``paper`` preset.
    """
    from peft import LoraConfig

    knobs = LoraSettings.of(settings, **changes)
    rank, preset, rslora, dropout = knobs.rank, knobs.preset, knobs.rslora, knobs.dropout
    if preset == "paper" and rslora:
        raise ValueError("the paper preset has a fixed lora_alpha=128 without rsLoRA; use preset='standard'")
    names = targets_of(knobs.targets, knobs.mlp)
    b = budget(mask, n_layers, rank, model_dims, targets=names, preset=preset)
    r = b["rank"]
    if preset == "paper":
        alpha: float = PAPER_ALPHA
        dropout = PAPER_DROPOUT if dropout is None else dropout
    else:
        alpha = knobs.alpha_over_r * math.sqrt(b["baseline_rank"]) if rslora else knobs.alpha_over_r * r
        dropout = 0.0 if dropout is None else dropout
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=r,
        lora_alpha=alpha,
        lora_dropout=float(dropout),
        target_modules=names,
        layers_to_transform=b["layers"],
        layers_pattern=layers_pattern,
        use_rslora=bool(rslora),
        bias="none",
    )


def lora_scale(config: Any) -> float:
    """The LoRA scale of a ``LoraConfig``: ``α/r``, or ``α/√r`` with rsLoRA."""
    r = config.r
    return float(config.lora_alpha) / (math.sqrt(r) if config.use_rslora else r)


