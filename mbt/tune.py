r"""Mid-Block Efficient Tuning: segment masks, budget-matched LoRA, training, evaluation and sweeps.

The paper (§4.4, Fig. 7, Appendices A-B) puts LoRA adapters only on chosen *segments* of the
decoder and compares masks at a nearly constant trainable-parameter budget. The authors' comparison
is confounded (``reference/authors-code.md`` §8): ``lora_alpha`` was fixed at 128 while the rank
varied 5x (so the LoRA scale α/r varied too), ``rank_pattern`` keys were integers that match no
module, answers were cut at 128 tokens, 32-100 test items, one unseeded run. Here:

* **Masks** (:func:`segment_layers`): a string over ``{0, 1}``, first character = the segment
  nearest the input. Segment ``i`` of ``n`` over ``L`` blocks covers blocks
  ``[floor(i·L/n), floor((i+1)·L/n))`` (0-based block indices, as PEFT's ``layers_to_transform``
  counts them; block ``b`` produces our hidden layer ``b + 1``).
* **Budget** (:func:`budget`, :func:`lora_config`): LoRA on a module ``W (out × in)`` trains
  ``r·(in + out)`` parameters. The full-depth baseline uses rank ``rank`` on every block; a mask
  with ``m`` active blocks gets the integer rank whose parameter count is closest to the
  baseline's (``≈ rank·L/m``). Only ``r`` and ``layers_to_transform`` go to PEFT (no
  ``rank_pattern``: its keys are regexes).
* **Scale**: ``preset="standard"`` keeps ``α/r`` constant (``lora_alpha = alpha_over_r · r``),
  or with ``rslora=True`` uses rsLoRA (scale ``α/√r`` with one ``α`` for all masks);
  ``preset="paper"`` reproduces the authors' ``lora_alpha=128`` with the rank-64 baseline and
  ``int()`` rounding, so the confound can be measured.
* **Training** (:func:`train_lora`): the loss is on the answer tokens (+ EOS) by default, examples
  are never truncated unless asked (the number that a cap would cut is reported), ``seed`` fixes
  the data order *and* the adapter initialisation, fp32 on CPU. On CPU, results are bit-identical
  for the same seed *and* thread count (``reference/toy-feasibility.md``): pin ``threads``.
* **Evaluation** (:func:`evaluate_tuned`): exact match and teacher-forced answer NLL with bootstrap
  intervals, plus retention (Appendix B): pooled perplexity on held-out general text and
  instruction prompts before and after tuning (a smaller increase = less forgetting).
* **Sweeps** (:func:`sweep`): masks × seeds, resumable, one atomic rewrite of the results table
  per finished run; ``"00000"`` means "no adapter" (the Base model evaluated untrained).

Hardware: on CPU everything is fp32. With one GPU pass ``device="cuda"``; to spread a model that
does not fit one GPU over all visible GPUs pass ``device="auto"`` (accelerate's ``device_map``:
layers are placed on different GPUs and run one after another). Data-parallel training over
several GPUs is not implemented; run one sweep process per GPU (``CUDA_VISIBLE_DEVICES``) over
disjoint masks or seeds, each with its own ``out`` file, and concatenate the tables.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import operator
import random
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbt.cpu import pinned_threads

if TYPE_CHECKING:  # heavy imports stay inside functions, so `mbt --help` starts fast
    import pandas as pd
    import torch


__all__ = [
    "DEFAULT_LR",
    "DEFAULT_MASKS",
    "DEFAULT_STEPS",
    "DEFAULT_TARGETS",
    "LENGTH_GROUP",
    "MASK_FAMILIES",
    "MLP_TARGETS",
    "PRESETS",
    "SWEEP_COLUMNS",
    "add_cli",
    "batch_schedule",
    "budget",
    "evaluate_tuned",
    "lora_config",
    "lora_scale",
    "resolve_masks",
    "segment_bounds",
    "segment_layers",
    "single_segment_masks",
    "summarize_sweep",
    "sweep",
    "target_dims",
    "train_lora",
    "training_examples",
]

DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
"""Attention projections adapted by default (the authors' targets; OLMo2 has no PEFT default)."""

MLP_TARGETS: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
"""MLP projections added with ``mlp=True`` (Llama-style names, as in OLMo2 and Mistral)."""

PRESETS: tuple[str, ...] = ("standard", "paper")
"""``standard``: constant α/r (or rsLoRA), nearest-integer rank; ``paper``: the authors' settings."""

PAPER_ALPHA = 128
PAPER_RANK = 64
PAPER_DROPOUT = 0.05

DEFAULT_STEPS = 240
DEFAULT_LR = 5e-3
"""Default steps and peak learning rate (batch 32): on the default toy pair a full-depth run trains
in under a minute on 2 CPU cores (exact match 0.47 at seed 0; 300 steps at 4e-3 gave 0.54 in 65 s)."""

LENGTH_GROUP = 16
"""With ``group_by_length``, this many consecutive batches are sorted by length together."""

DEFAULT_MASKS: tuple[str, ...] = (
    "00000", "11111", "10000", "01000", "00100", "00010", "00001", "01100", "00110", "01110",
)
"""The paper's Fig. 7 masks: no adapter, full depth, each single segment, and three middle blocks."""


def single_segment_masks(n_segments: int) -> tuple[str, ...]:
    """The ``n`` masks that each switch on exactly one segment, shallowest first."""
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    return tuple("".join("1" if j == i else "0" for j in range(n_segments)) for i in range(n_segments))


MASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_MASKS,
    "segments3": ("000", "111", *single_segment_masks(3)),
    "segments5": ("00000", "11111", *single_segment_masks(5)),
    "segments10": ("0" * 10, "1" * 10, *single_segment_masks(10)),
}
"""Named mask lists for :func:`sweep`: the Fig. 7 set and the 3-/10-segment families of Appendix A
(each: no adapter, full depth, then every single segment)."""

SWEEP_COLUMNS: tuple[str, ...] = (
    "base", "task", "mask", "n_segments", "layers", "n_layers_tuned", "preset", "rank", "alpha", "scale",
    "rslora", "trainable_params", "baseline_params", "budget_ratio", "seed", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "answer_nll", "answer_nll_ci_low", "answer_nll_ci_high", "ppl_text", "ppl_text_before",
    "ppl_text_change", "ppl_instruct", "ppl_instruct_before", "ppl_instruct_change", "final_loss", "n_test",
    "steps", "lr", "batch_size", "n_train", "loss_on", "train_seconds", "seconds", "threads", "device",
    "settings_key", "finished_at",
)
"""Columns of the table :func:`sweep` writes and returns."""


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------


def _check_mask(mask: str) -> str:
    if not isinstance(mask, str):
        raise ValueError(f"a segment mask must be a string of 0s and 1s, got {type(mask).__name__} {mask!r}")
    if not mask:
        raise ValueError("a segment mask must not be empty (use e.g. '01100': one character per segment)")
    bad = sorted(set(mask) - {"0", "1"})
    if bad:
        raise ValueError(f"segment mask {mask!r} may only contain '0' and '1' (found {''.join(bad)!r})")
    return mask


def segment_bounds(n_segments: int, n_layers: int) -> list[tuple[int, int]]:
    """``[start, end)`` block ranges of ``n_segments`` segments over ``n_layers`` blocks.

    Segment ``i`` covers ``[floor(i·L/n), floor((i+1)·L/n))``; the segments partition the blocks.

    Raises:
        ValueError: if there are more segments than blocks (a segment would be empty).
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    if n_segments > n_layers:
        raise ValueError(f"{n_segments} segments do not fit into {n_layers} layers (a segment would be empty)")
    return [(i * n_layers // n_segments, (i + 1) * n_layers // n_segments) for i in range(n_segments)]


def segment_layers(mask: str, n_layers: int, *, allow_empty: bool = False) -> list[int]:
    """0-based indices of the blocks a segment mask switches on (PEFT's ``layers_to_transform``).

    Examples:
        >>> segment_layers("01100", 16)
        [3, 4, 5, 6, 7, 8]
        >>> segment_layers("10", 5)
        [0, 1]

    Args:
        mask: one character per segment, ``"1"`` = adapters on; the first character is the segment
            nearest the input.
        n_layers: number of decoder blocks ``L``.
        allow_empty: return ``[]`` for an all-zero mask instead of raising.

    Raises:
        ValueError: empty mask, characters other than ``0``/``1``, more segments than layers, or an
            all-zero mask where adapters are needed.
    """
    _check_mask(mask)
    bounds = segment_bounds(len(mask), n_layers)
    layers = [b for bit, (lo, hi) in zip(mask, bounds, strict=True) if bit == "1" for b in range(lo, hi)]
    if not layers and not allow_empty:
        raise ValueError(f"segment mask {mask!r} switches on no segment; LoRA needs at least one '1' "
                         "(use a sweep's all-zero mask for 'no adapter')")
    return layers


def resolve_masks(masks: str | Iterable[str]) -> list[str]:
    """A family name from :data:`MASK_FAMILIES`, a comma-separated string or a list → checked masks."""
    if isinstance(masks, str):
        if masks in MASK_FAMILIES:
            masks = MASK_FAMILIES[masks]
        elif set(masks) <= {"0", "1", ",", " "}:
            masks = [m.strip() for m in masks.split(",") if m.strip()]
        else:
            raise ValueError(f"unknown mask family {masks!r}; families: {', '.join(MASK_FAMILIES)}, "
                             "or give masks like '01100,00110'")
    out = list(dict.fromkeys(_check_mask(m) for m in masks))
    if not out:
        raise ValueError("no masks given")
    return out


# ------------------------------------------------------------------------------------------------
# budgets and configs
# ------------------------------------------------------------------------------------------------


def _config_of(source: Any) -> Any:
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
        from mbt.trace import resolve_layout, unwrap

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
        cfg = _config_of(source)
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


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choices: {', '.join(PRESETS)}")


def _targets(targets: Sequence[str], mlp: bool) -> list[str]:
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
    _check_preset(preset)
    rank = (PAPER_RANK if preset == "paper" else 8) if rank is None else int(rank)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    names = _targets(targets, mlp)
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
    rank: int | None = None,
    preset: str = "standard",
    targets: Sequence[str] = DEFAULT_TARGETS,
    mlp: bool = False,
    alpha_over_r: float = 2.0,
    rslora: bool = False,
    dropout: float | None = None,
    model_dims: Any = None,
    layers_pattern: str | None = None,
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
        rank: baseline (full-depth) rank; default 8 (``standard``) or 64 (``paper``).
        preset: ``"standard"`` or ``"paper"``.
        targets: adapted module names.
        mlp: also adapt the MLP projections.
        alpha_over_r: the constant LoRA scale of the ``standard`` preset.
        rslora: use rsLoRA scaling (``standard`` only).
        dropout: LoRA dropout; default 0 (``standard``) or 0.05 (``paper``).
        model_dims: shapes for the parameter count (see :func:`budget`); the rank does not depend on them.
        layers_pattern: name of the block list (PEFT's ``layers_pattern``) for models whose module
            paths have other numbered parts before the block index; ``None`` = PEFT's default.

    Returns:
        The ``LoraConfig`` (``task_type="CAUSAL_LM"``, ``bias="none"``).

    Raises:
        ValueError: invalid mask, unknown preset (the message lists the choices), or rsLoRA with the
            ``paper`` preset.
    """
    from peft import LoraConfig

    _check_preset(preset)
    if preset == "paper" and rslora:
        raise ValueError("the paper preset has a fixed lora_alpha=128 without rsLoRA; use preset='standard'")
    names = _targets(targets, mlp)
    b = budget(mask, n_layers, rank, model_dims, targets=names, preset=preset)
    r = b["rank"]
    if preset == "paper":
        alpha: float = PAPER_ALPHA
        dropout = PAPER_DROPOUT if dropout is None else dropout
    else:
        alpha = alpha_over_r * math.sqrt(b["baseline_rank"]) if rslora else alpha_over_r * r
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


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------


def training_examples(
    tokenizer: Any,
    task: str = "toy-math",
    *,
    n: int | None = None,
    split: str | None = None,
    loss_on: str = "answer",
    data_seed: int = 0,
    path: str | Path | None = None,
    add_eos: bool = True,
) -> list[tuple[list[int], int]]:
    r"""Tokenised fine-tuning examples ``(token ids, n_prompt)``; the loss is on ``ids[n_prompt:]``.

    Question/answer and multiple-choice tasks (GSM8K, MMLU, ``toy-math``, ``toy-mc``) become
    ``prompt`` = the formatted record without its answer (ending in ``"Answer:"``, tokenised with
    the tokenizer's defaults, e.g. BOS) followed by the answer text (``" …"``, no special tokens)
    and EOS, as :func:`mbt.evaluate.answer_nll` scores it. With ``loss_on="answer"`` the prompt
    tokens are masked out of the loss; with ``"all"`` every token is a target (the authors'
    choice). Tasks without a separate answer (text, instructions) need ``loss_on="all"``.

    Args:
        tokenizer: the model's tokenizer.
        task: dataset name (see :data:`mbt.data.DATASETS`).
        n: number of records (a seeded sample of the training split; ``None`` = all).
        split: split to read (default: the task's training split).
        loss_on: ``"answer"`` or ``"all"``.
        data_seed: seed of the sample; it fixes *which* records, not their order.
        path: local copy of the dataset (see :func:`mbt.data.load_records`).
        add_eos: append the EOS token (so the model learns to stop).
    """
    from mbt import data

    if loss_on not in ("answer", "all"):
        raise ValueError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
    spec = data.get_spec(task)
    split = split or data.training_split(spec)
    records = data.load_records(spec, split=split, path=path)
    order = data.sample_indices(len(records), len(records) if n is None else n, data_seed)
    has_answer = spec.kind in ("qa", "multiple_choice")
    if not has_answer and loss_on == "answer":
        raise ValueError(f"task {spec.name!r} ({spec.kind}) has no separate answer; use loss_on='all'")
    eos = [tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else []
    out: list[tuple[list[int], int]] = []
    for i in order:
        full = data.format_record(spec, records[i], with_answer=True)
        if full is None:
            continue
        if has_answer:
            prompt = data.format_record(spec, records[i], with_answer=False)
            prompt_ids = list(tokenizer(prompt)["input_ids"])
            answer_ids = list(tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"])
            ids = prompt_ids + answer_ids + eos
            n_prompt = len(prompt_ids) if loss_on == "answer" else 0
        else:
            ids = list(tokenizer(full)["input_ids"]) + eos
            n_prompt = 0
        out.append((ids, n_prompt))
    if not out:
        raise ValueError(f"no training examples from {spec.name!r} split {split!r}")
    return out


def _batch(examples: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (−100 on prompt and padding)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for r, (seq, n_prompt) in enumerate(examples):
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        labels[r, n_prompt: len(seq)] = torch.tensor(seq[n_prompt:])
    return ids, mask, labels


# ------------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------------


def _load_model(source: Any, *, device: str | None, dtype: Any, copy_model: bool, revision: str | None = None,
                progress: bool = True):
    """A plain HF causal LM from a path/Hub id (loaded) or a model (copied unless ``copy_model=False``)."""
    import torch

    from mbt.pairs import hf_progress_bars
    from mbt.trace import unwrap

    if isinstance(source, str | Path):
        from transformers import AutoModelForCausalLM

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        on_gpu = dev == "auto" or str(dev).startswith("cuda")
        kwargs: dict[str, Any] = {"dtype": dtype or (torch.bfloat16 if on_gpu else torch.float32)}
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


def _input_device(model: Any) -> torch.device:
    return model.get_input_embeddings().weight.device


def _schedule(step: int, steps: int, warmup: int, kind: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    raise ValueError(f"schedule must be 'linear', 'cosine' or 'constant', got {kind!r}")


def batch_schedule(lengths: Sequence[int], batch_size: int, steps: int, seed: int, *,
                   group_by_length: bool = True) -> list[list[int]]:
    """The example indices of every optimiser step.

    The examples are drawn as a stream of reshuffled epochs (seeded by ``seed``), ``batch_size``
    at a time, an epoch's remainder carrying into the next. With ``group_by_length``, each run of
    :data:`LENGTH_GROUP` batches' worth of the stream is sorted by length, cut into batches and
    those batches are shuffled: a batch then holds examples of similar length, so there is less
    padding to compute, and the stream still visits every example once per epoch. It is off by
    default: on ``toy-math`` it took steps to 0.80x the time (``benchmarks/bench_lora.py``) but
    lowered full-depth LoRA's exact match after 300 steps from 0.54 to 0.37 (seed 0; answer NLL
    1.376 → 1.403), since similar lengths there mean similar problems. Worth trying where lengths
    vary widely and don't track the task.

    Args:
        lengths: token count of each example.
        batch_size: examples per step.
        steps: number of steps.
        seed: shuffling seed.
        group_by_length: sort within groups of :data:`LENGTH_GROUP` batches.

    Returns:
        ``steps`` lists of ``batch_size`` indices into ``lengths``.
    """
    if not lengths:
        raise ValueError("no examples to draw batches from")
    rng = random.Random(f"mbt.tune/{seed}")
    group = LENGTH_GROUP if group_by_length else 1
    stream: list[int] = []
    batches: list[list[int]] = []
    while len(batches) < steps:
        need = batch_size * group
        while len(stream) < need:
            epoch = list(range(len(lengths)))
            rng.shuffle(epoch)
            stream += epoch
        chunk, stream = stream[:need], stream[need:]
        if group > 1:
            chunk.sort(key=lambda i: lengths[i])
        cut = [chunk[j: j + batch_size] for j in range(0, need, batch_size)]
        if group > 1:
            rng.shuffle(cut)
        batches += cut
    return batches[:steps]


def _keeps_logits(model: Any) -> bool:
    """Whether the (PEFT-wrapped) model's forward takes ``logits_to_keep`` (most HF causal LMs)."""
    from mbt.trace import unwrap

    model = unwrap(model)
    if hasattr(model, "get_base_model"):  # PEFT passes the keyword through to the wrapped model
        model = model.get_base_model()
    return _forward_takes_logits_to_keep(type(model))


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    """The signature check of :func:`_keeps_logits`, once per model class (it runs every micro-batch)."""
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def token_loss_sum(model: Any, ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                   first_target: int | None = None) -> torch.Tensor:
    """Summed next-token cross-entropy over the positions whose label is not −100.

    ``loss = Σ_{b,t: y[b,t+1] ≠ −100} −log softmax(z[b,t])[y[b,t+1]]`` for logits ``z`` of shape
    ``(B, T, V)``. When ``first_target`` is given (the earliest ``t + 1`` with a label, e.g. the
    shortest prompt of the batch) and the model accepts ``logits_to_keep``, the LM head only runs on
    positions ``first_target − 1 … T − 1``: the same loss for a fraction of the head's cost when
    the loss is on short answers.

    Args:
        model: causal LM (PEFT-wrapped or not) returning ``.logits``.
        ids: ``(B, T)`` token ids.
        attention_mask: ``(B, T)`` 1 for real tokens.
        labels: ``(B, T)`` target ids aligned with ``ids`` (−100 = no loss).
        first_target: lowest position with a label, or ``None`` to compute every position's logits.

    Returns:
        A 0-d float32 tensor with the summed loss (differentiable).
    """
    import torch

    keep_from = 0
    kwargs: dict[str, Any] = {}
    if first_target is not None and first_target > 1 and _keeps_logits(model):
        keep_from = first_target - 1
        kwargs["logits_to_keep"] = ids.shape[1] - keep_from
    logits = model(input_ids=ids, attention_mask=attention_mask, use_cache=False, **kwargs).logits
    shift = labels[:, keep_from + 1:].to(logits.device)
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             shift.reshape(-1), ignore_index=-100, reduction="sum")


def train_lora(
    model_or_path: Any,
    tokenizer: Any = None,
    mask: str = "11111",
    *,
    task: str = "toy-math",
    n_train: int | None = 4000,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    batch_size: int = 32,
    micro_batch_size: int | None = None,
    rank: int | None = None,
    preset: str = "standard",
    targets: Sequence[str] = DEFAULT_TARGETS,
    mlp: bool = False,
    alpha_over_r: float = 2.0,
    rslora: bool = False,
    dropout: float | None = None,
    seed: int = 0,
    loss_on: str = "answer",
    max_length: int | None = None,
    warmup: float = 0.05,
    schedule: str = "linear",
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    data_seed: int = 0,
    data_path: str | Path | None = None,
    threads: int | None = None,
    device: str | None = None,
    dtype: Any = None,
    gradient_checkpointing: bool = False,
    group_by_length: bool = False,
    copy_model: bool = True,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """Train segment-restricted LoRA on a task's training split; return the PEFT model and a record.

    Recipe: AdamW (betas 0.9/0.999), ``warmup`` (fraction of ``steps``, or a step count if ≥ 1) of
    linear warmup then ``schedule`` decay, gradient clipping at ``max_grad_norm``, batches of
    ``batch_size`` examples drawn without replacement from reshuffled epochs. The loss is the
    token-weighted mean cross-entropy over the batch's target tokens (so splitting a batch into
    ``micro_batch_size`` pieces changes nothing but memory; the LM head only runs from the first
    target position on). ``seed`` fixes the batches (:func:`batch_schedule`) and,
    set right before ``get_peft_model``, the adapter initialisation (A Kaiming-uniform, B = 0);
    the set of training records is fixed by ``data_seed``. On CPU the model runs in fp32 and the
    result is bit-identical for the same seed and thread count.

    Args:
        model_or_path: a causal LM (nnsight wrapper or HF module; deep-copied unless
            ``copy_model=False``, since PEFT replaces modules in place), or a folder / Hub id.
        tokenizer: its tokenizer (loaded from ``model_or_path`` when that is a path).
        mask: segment mask with at least one ``"1"``.
        task: training dataset (question/answer tasks for ``loss_on="answer"``).
        n_train: number of training records (``None`` = the whole split).
        steps: optimiser steps.
        lr: peak learning rate.
        batch_size: examples per optimiser step.
        micro_batch_size: examples per forward pass (gradient accumulation); default ``batch_size``.
        rank: full-depth baseline rank (see :func:`lora_config`).
        preset: ``"standard"`` or ``"paper"`` (see :func:`lora_config`).
        targets: adapted module names.
        mlp: also adapt the MLP projections.
        alpha_over_r: constant LoRA scale of the standard preset.
        rslora: rsLoRA scaling.
        dropout: LoRA dropout (default 0; 0.05 with the paper preset).
        seed: data order and adapter initialisation.
        loss_on: ``"answer"`` (prompt tokens get label −100) or ``"all"``.
        max_length: truncate examples to this many tokens; ``None`` = the longest example (nothing
            is cut). The record reports how many examples a cap of 128/256/512/1024 would cut.
        warmup: warmup fraction of ``steps`` (< 1) or number of steps (≥ 1).
        schedule: ``"linear"`` (to 0, the HF default), ``"cosine"`` or ``"constant"`` after warmup.
        weight_decay: AdamW weight decay on the adapter weights.
        max_grad_norm: gradient clipping (``0`` = none).
        data_seed: which records form the training set.
        data_path: local copy of the dataset.
        threads: ``torch.set_num_threads`` during training (restored after); recorded either way.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (spread over all GPUs with
            accelerate's ``device_map``; paths only). Default: the model's device, or CUDA if
            available for a path.
        dtype: model dtype when loading (default fp32 on CPU, bf16 on GPU; adapters stay fp32).
        gradient_checkpointing: recompute activations in the backward pass (large models).
        group_by_length: batches of examples of similar length (see :func:`batch_schedule`).
        copy_model: deep-copy a model object before adding adapters.
        progress: tqdm bar with the running loss.

    Returns:
        ``(peft_model, info)``: the trained ``PeftModel`` in eval mode, and a dict with the mask,
        layers, rank, alpha, scale, trainable/baseline parameter counts, truncation report, loss
        curve, final loss (mean of the last 10 steps), seconds, threads, device and all settings.
    """
    import torch
    from peft import get_peft_model
    from tqdm.auto import tqdm

    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    micro = batch_size if micro_batch_size is None else int(micro_batch_size)
    if not 1 <= micro <= batch_size:
        raise ValueError(f"micro_batch_size must be in 1..{batch_size}, got {micro_batch_size}")
    if tokenizer is None:
        if not isinstance(model_or_path, str | Path):
            raise ValueError("give the tokenizer of a model object")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_or_path))
    with pinned_threads(threads):
        n_threads = torch.get_num_threads()
        start = time.perf_counter()
        model = _load_model(model_or_path, device=device, dtype=dtype, copy_model=copy_model, progress=progress)
        n_layers = int(_config_of(model).num_hidden_layers)
        config = lora_config(mask, n_layers, rank=rank, preset=preset, targets=targets, mlp=mlp,
                             alpha_over_r=alpha_over_r, rslora=rslora, dropout=dropout)
        b = budget(mask, n_layers, rank, model, targets=_targets(targets, mlp), preset=preset)

        examples = training_examples(tokenizer, task, n=n_train, loss_on=loss_on, data_seed=data_seed,
                                     path=data_path)
        lengths = [len(ids) for ids, _ in examples]
        longest = max(lengths)
        truncated_at = {cap: sum(x > cap for x in lengths) for cap in (128, 256, 512, 1024)}
        cap = longest if max_length is None else int(max_length)
        n_truncated = sum(x > cap for x in lengths)
        if max_length is not None:
            examples = [(ids[:cap], min(n_prompt, cap)) for ids, n_prompt in examples]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)

        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        torch.manual_seed(seed)  # adapter init (PEFT draws lora_A from the global generator)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gradient_checkpointing.*")
            peft_model = get_peft_model(model, config)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in params)
        optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)
        n_warmup = int(warmup) if warmup >= 1 else round(warmup * steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: _schedule(s, steps, n_warmup, schedule))
        plan = batch_schedule([len(ids) for ids, _ in examples], batch_size, steps, seed,
                              group_by_length=group_by_length)
        curve: list[tuple[int, float]] = []
        losses: list[float] = []
        dev = _input_device(peft_model)
        peft_model.train()
        bar = tqdm(range(steps), desc=f"LoRA {mask}", disable=not progress)
        for step in bar:
            idx = plan[step]
            n_targets = sum(len(examples[i][0]) - max(examples[i][1], 1) for i in idx)
            total = 0.0
            for lo in range(0, batch_size, micro):
                part = [examples[i] for i in idx[lo: lo + micro]]
                ids, attn, labels = _batch(part, pad_id)
                first = min(max(n_prompt, 1) for _, n_prompt in part)
                loss = token_loss_sum(peft_model, ids.to(dev), attn.to(dev), labels, first_target=first)
                loss = loss / max(1, n_targets)
                loss.backward()
                total += float(loss.detach())
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if not math.isfinite(total):
                raise FloatingPointError(f"LoRA loss is {total} at step {step}")
            losses.append(total)
            if step % 10 == 0 or step == steps - 1:
                curve.append((step, round(total, 5)))
                bar.set_postfix(loss=f"{total:.3f}")
        peft_model.eval()
        seconds = time.perf_counter() - start
    info = {
        "mask": mask, "n_segments": len(mask), "layers": b["layers"], "n_layers_tuned": b["n_layers_tuned"],
        "preset": preset, "rank": config.r, "alpha": float(config.lora_alpha), "scale": lora_scale(config),
        "rslora": bool(rslora), "dropout": float(config.lora_dropout), "targets": _targets(targets, mlp),
        "trainable_params": trainable, "budget_params": b["trainable"], "baseline_params": b["baseline"],
        "budget_ratio": b["ratio"], "seed": seed, "data_seed": data_seed, "task": task, "n_train": len(examples),
        "steps": steps, "lr": lr, "batch_size": batch_size, "micro_batch_size": micro, "loss_on": loss_on,
        "group_by_length": bool(group_by_length),
        "warmup_steps": n_warmup, "schedule": schedule, "max_length": cap, "longest": longest,
        "n_truncated": n_truncated, "truncated_at": truncated_at, "loss_curve": curve,
        "final_loss": float(sum(losses[-10:]) / len(losses[-10:])), "train_seconds": seconds,
        "threads": n_threads, "device": str(dev), "dtype": str(next(peft_model.parameters()).dtype),
    }
    return peft_model, info


# ------------------------------------------------------------------------------------------------
# evaluation
# ------------------------------------------------------------------------------------------------


def _default_retention(task: str) -> dict[str, str]:
    if task.startswith("toy-"):
        return {"text": "toy-text", "instruct": "toy-instruct"}
    return {"text": "wikitext", "instruct": "ifeval"}


def _test_items(task: str, n_test: int, path: str | Path | None = None) -> list[dict]:
    from mbt import data

    spec = data.get_spec(task)
    records = data.load_records(spec, split=spec.split, path=path)
    return [records[i] for i in data.sample_indices(len(records), n_test, 0)]


def _mean_ci(values: Any, n_boot: int) -> tuple[float, float, float]:
    from mbt.stats import bootstrap_mean_ci

    return bootstrap_mean_ci(list(values), n_boot=n_boot)


def evaluate_tuned(
    model: Any,
    tokenizer: Any,
    task: str = "toy-math",
    *,
    n_test: int = 200,
    shots: int = 0,
    shot_items: Sequence[dict] | None = None,
    max_new_tokens: int | None = None,
    batch_size: int = 32,
    retention: Mapping[str, str] | None = None,
    n_retention: int = 100,
    before: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    data_path: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Task accuracy, answer NLL and retention perplexities of a (tuned) model.

    * ``accuracy``: for question/answer tasks :func:`mbt.evaluate.gsm8k_exact_match` (greedy,
      ``max_new_tokens`` default ``1.5 ×`` the longest reference answer + 16 tokens, at most 512);
      for multiple-choice tasks :func:`mbt.evaluate.mmlu_accuracy`. Mean over ``n_test`` held-out
      items (a fixed seeded sample of the test split) with a 95% bootstrap interval.
    * ``answer_nll``: teacher-forced mean NLL of the reference answer
      (:func:`mbt.evaluate.answer_nll`; for multiple choice ``−log p(gold letter)``), with interval;
      much less noisy than accuracy.
    * retention (Appendix B): for each ``{name: dataset}`` in ``retention`` (default ``toy-text``
      and ``toy-instruct`` for toy tasks, else ``wikitext`` and ``ifeval``) the token-weighted
      perplexity (:func:`mbt.evaluate.pooled_perplexity`) of ``n_retention`` texts as
      ``ppl_<name>``, the value before tuning as ``ppl_<name>_before`` and the change
      ``ppl_<name>_change = after − before`` (smaller = less forgetting). "Before" comes from
      ``before`` if given (e.g. the Base row of a sweep), else from the same model with its
      adapters disabled if it is a ``PeftModel``, else it equals "after".

    Returns:
        A flat dict of the numbers above plus ``n_test`` and ``eval_seconds``.
    """
    import pandas as pd

    from mbt import data, evaluate

    start = time.perf_counter()
    spec = data.get_spec(task)
    items = _test_items(task, n_test, data_path)
    out: dict[str, Any] = {"task": spec.name, "n_test": len(items)}
    if spec.kind == "qa":
        if max_new_tokens is None:
            longest = max(len(tokenizer(" " + it["answer"], add_special_tokens=False)["input_ids"]) for it in items)
            max_new_tokens = min(512, math.ceil(1.5 * longest) + 16)
        em = evaluate.gsm8k_exact_match(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
        nll = evaluate.answer_nll(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                  batch_size=batch_size)["nll"]
        correct = em["correct"].astype(float)
    elif spec.kind == "multiple_choice":
        mc = evaluate.mmlu_accuracy(model, tokenizer, items, shots=shots, shot_items=shot_items,
                                    batch_size=batch_size, progress=progress)
        correct = mc["correct"].astype(float)
        nll = pd.Series([-lp[evaluate.MMLU_LETTERS.index(g)] for lp, g in zip(mc["logprobs"], mc["gold"],
                                                                               strict=True)])
    else:
        raise ValueError(f"task {spec.name!r} ({spec.kind}) has no accuracy; use a question/answer or "
                         "multiple-choice task")
    out["accuracy"], out["accuracy_ci_low"], out["accuracy_ci_high"] = _mean_ci(correct, n_boot)
    out["answer_nll"], out["answer_nll_ci_low"], out["answer_nll_ci_high"] = _mean_ci(nll, n_boot)
    for name, dataset in (retention if retention is not None else _default_retention(spec.name)).items():
        texts = data.load_texts(dataset, n=n_retention, seed=0)
        after = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts, batch_size=batch_size,
                                                                progress=False))
        key = f"ppl_{name}"
        if before is not None and f"{key}_before" in before:
            prior = float(before[f"{key}_before"])
        elif before is not None and key in before:
            prior = float(before[key])
        elif hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                prior = evaluate.pooled_perplexity(evaluate.perplexity(model, tokenizer, texts,
                                                                        batch_size=batch_size, progress=False))
        else:
            prior = after
        out[key], out[f"{key}_before"], out[f"{key}_change"] = after, prior, after - prior
    out["eval_seconds"] = time.perf_counter() - start
    return out


# ------------------------------------------------------------------------------------------------
# sweeps
# ------------------------------------------------------------------------------------------------


def _resolve_base(pair_or_base: Any, tokenizer: Any) -> tuple[Any, Any, str, dict[str, Any]]:
    """``(source, tokenizer, label, fingerprint)``; ``source`` is a folder/Hub id or a model to copy."""
    import torch

    from mbt.pairs import PAIRS, ModelPair
    from mbt.trace import unwrap

    if isinstance(pair_or_base, ModelPair):
        module = unwrap(pair_or_base.base)
        src = str(getattr(module.config, "_name_or_path", "") or "")
        return module, pair_or_base.tokenizer, pair_or_base.spec.name, {"pair": pair_or_base.spec.name, "base": src}
    if isinstance(pair_or_base, torch.nn.Module) or hasattr(pair_or_base, "_module"):
        if tokenizer is None:
            raise ValueError("give tokenizer= with a model object")
        module = unwrap(pair_or_base)
        src = str(getattr(module.config, "_name_or_path", "") or "")
        return module, tokenizer, Path(src).name or type(module).__name__, {"base": src}
    name = str(pair_or_base)
    if name in PAIRS:
        spec = PAIRS[name]
        if spec.source == "toy":
            from mbt import toy

            base = str(Path(toy.build(variant="seen" if name == "toy-seen" else "toy")) / "base")
        else:
            base = spec.base
        name_label = name
    else:
        base, name_label = name, Path(name).name
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
    fp: dict[str, Any] = {"base": base}
    folder = Path(base)
    if folder.is_dir():
        fp["files"] = sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
    return base, tokenizer, name_label, fp


def _read_results(out: Path) -> pd.DataFrame:
    """The results table at ``out`` (empty if absent); a corrupt file is moved aside with a warning."""
    import pandas as pd

    for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left behind by a killed atomic write
        stale.unlink(missing_ok=True)
    if not out.exists():
        return pd.DataFrame(columns=list(SWEEP_COLUMNS))
    try:
        if out.suffix == ".parquet":
            frame = pd.read_parquet(out)
        else:
            frame = pd.read_csv(out, dtype={"mask": str, "layers": str, "device": str})
        missing = {"mask", "seed", "settings_key"} - set(frame.columns)
        if missing:
            raise ValueError(f"missing columns {sorted(missing)}")
        frame["mask"] = frame["mask"].astype(str)
        return frame
    except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, never deleted
        aside = out.with_name(f"{out.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        warnings.warn(f"sweep results {out} are unreadable ({exc}); moved to {aside.name} and starting afresh",
                      RuntimeWarning, stacklevel=3)
        return pd.DataFrame(columns=list(SWEEP_COLUMNS))


def _write_results(out: Path, frame: pd.DataFrame) -> None:
    from mbt.results import atomic_write

    if out.suffix == ".parquet":
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))


def sweep(
    pair_or_base: Any = "toy",
    masks: str | Iterable[str] = DEFAULT_MASKS,
    seeds: Iterable[int] = (0, 1, 2),
    *,
    out: str | Path,
    tokenizer: Any = None,
    task: str = "toy-math",
    rank: int | None = None,
    preset: str = "standard",
    targets: Sequence[str] = DEFAULT_TARGETS,
    mlp: bool = False,
    alpha_over_r: float = 2.0,
    rslora: bool = False,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    batch_size: int = 32,
    micro_batch_size: int | None = None,
    n_train: int | None = 4000,
    loss_on: str = "answer",
    max_length: int | None = None,
    n_test: int = 200,
    eval_batch_size: int = 50,
    retention: Mapping[str, str] | None = None,
    n_retention: int = 100,
    threads: int | None = 2,
    device: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train and evaluate every mask × seed; resumable; returns the tidy table of this configuration.

    Each run starts from a fresh copy of the Base model (reloaded from its folder, or deep-copied),
    trains with :func:`train_lora` and is scored with :func:`evaluate_tuned`. An all-zero mask is
    "no adapter": the Base model itself is evaluated (once; its row is repeated for every seed, so
    per-mask summaries treat it like the others). The Base model's retention perplexities are the
    "before" values of every run.

    Resuming: rows are keyed by ``(mask, seed, settings_key)``, where ``settings_key`` hashes every
    setting that changes a result (Base model, task, budget, scale, optimiser, data, evaluation,
    thread count). A run whose key is already in ``out`` is skipped; rows of other settings in the
    same file are kept. After each run the whole table is rewritten atomically (temporary file +
    rename), so a killed sweep leaves the last complete table; stale temporary files are removed
    and an unreadable table is moved aside (``<out>.corrupt-<time>``) with a warning.

    Args:
        pair_or_base: a pair name (``"toy"`` builds the toy pair if needed; its Base is tuned), a
            :class:`~mbt.pairs.ModelPair`, a Base folder / Hub id, or a model (with ``tokenizer``).
        masks: masks or a family name from :data:`MASK_FAMILIES` (or a comma-separated string).
        seeds: training seeds (data order and adapter init).
        out: results table, ``.parquet`` or ``.csv``.
        tokenizer: tokenizer of a model object (loaded from the folder otherwise).
        task: training and evaluation task.
        rank: full-depth baseline rank (see :func:`lora_config`).
        preset: ``"standard"`` or ``"paper"``.
        targets: adapted module names.
        mlp: also adapt the MLP projections.
        alpha_over_r: constant LoRA scale of the standard preset.
        rslora: rsLoRA scaling.
        steps: optimiser steps per run (see :func:`train_lora`).
        lr: peak learning rate.
        batch_size: examples per optimiser step.
        micro_batch_size: examples per forward pass.
        n_train: training records.
        loss_on: ``"answer"`` or ``"all"``.
        max_length: truncation of training examples (``None``: none).
        n_test: held-out items for accuracy and answer NLL.
        eval_batch_size: batch size of the evaluation.
        retention: ``{name: dataset}`` for the retention perplexities (see :func:`evaluate_tuned`).
        n_retention: texts per retention dataset.
        threads: pinned ``torch.set_num_threads`` for the whole sweep (recorded; CPU LoRA results
            depend on it). ``None`` leaves the current setting.
        device: see :func:`train_lora`.
        progress: progress bars.

    Returns:
        DataFrame with columns :data:`SWEEP_COLUMNS`, one row per requested ``(mask, seed)`` of
        this configuration, in the order of ``masks`` then ``seeds``.
    """
    import pandas as pd
    import torch

    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"out must end in .parquet or .csv, got {out.name!r}")
    mask_list = resolve_masks(masks)
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("no seeds given")
    _check_preset(preset)
    source, tokenizer, label, fingerprint = _resolve_base(pair_or_base, tokenizer)
    settings = {
        "version": 1, "base": fingerprint, "task": task, "rank": rank, "preset": preset, "targets": list(targets),
        "mlp": mlp, "alpha_over_r": alpha_over_r, "rslora": rslora, "steps": steps, "lr": lr,
        "batch_size": batch_size, "n_train": n_train, "loss_on": loss_on, "max_length": max_length,
        "n_test": n_test, "retention": dict(retention) if retention is not None else _default_retention(task),
        "n_retention": n_retention, "threads": threads, "device": device,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    table = _read_results(out)
    done = {(str(m), int(s)) for m, s, k in zip(table["mask"], table["seed"], table["settings_key"], strict=True)
            if k == key}
    base_row: dict[str, Any] | None = None
    prior = table[(table["settings_key"] == key) & table["mask"].map(lambda m: set(str(m)) == {"0"})]
    if len(prior):
        base_row = prior.iloc[0].to_dict()

    def base_eval() -> dict[str, Any]:
        nonlocal base_row
        if base_row is None:
            model = _load_model(source, device=device, dtype=None, copy_model=True, progress=progress)
            metrics = evaluate_tuned(model, tokenizer, task, n_test=n_test, batch_size=eval_batch_size,
                                     retention=retention, n_retention=n_retention, progress=progress)
            base_row = {**metrics, "seconds": metrics["eval_seconds"]}
            del model
        return base_row

    with pinned_threads(threads):
        n_threads = torch.get_num_threads()
        for mask in mask_list:
            for seed in seed_list:
                if (mask, seed) in done:
                    continue
                start = time.perf_counter()
                n_layers = int(_config_of(_peek_config(source)).num_hidden_layers)
                if set(mask) == {"0"}:
                    segment_bounds(len(mask), n_layers)  # validate the segment count
                    metrics = base_eval()
                    row = {"layers": "", "n_layers_tuned": 0, "rank": 0, "alpha": math.nan, "scale": math.nan,
                           "rslora": rslora, "trainable_params": 0, "baseline_params": math.nan,
                           "budget_ratio": 0.0, "final_loss": math.nan, "train_seconds": 0.0,
                           "device": device or "", **{k: metrics.get(k) for k in _METRIC_KEYS}}
                else:
                    before = base_eval()
                    model, info = train_lora(
                        source, tokenizer, mask, task=task, n_train=n_train, steps=steps, lr=lr,
                        batch_size=batch_size, micro_batch_size=micro_batch_size, rank=rank, preset=preset,
                        targets=targets, mlp=mlp, alpha_over_r=alpha_over_r, rslora=rslora, seed=seed,
                        loss_on=loss_on, max_length=max_length, device=device, progress=progress)
                    metrics = evaluate_tuned(model, tokenizer, task, n_test=n_test, batch_size=eval_batch_size,
                                             retention=retention, n_retention=n_retention, before=before,
                                             progress=progress)
                    row = {"layers": ",".join(map(str, info["layers"])), "n_layers_tuned": info["n_layers_tuned"],
                           "rank": info["rank"], "alpha": info["alpha"], "scale": info["scale"], "rslora": rslora,
                           "trainable_params": info["trainable_params"], "baseline_params": info["baseline_params"],
                           "budget_ratio": info["trainable_params"] / info["baseline_params"],
                           "final_loss": info["final_loss"], "train_seconds": info["train_seconds"],
                           "device": info["device"], **{k: metrics.get(k) for k in _METRIC_KEYS}}
                    del model
                row.update({
                    "base": label, "task": task, "mask": mask, "n_segments": len(mask), "preset": preset,
                    "seed": seed, "steps": steps, "lr": lr, "batch_size": batch_size, "n_train": n_train,
                    "loss_on": loss_on, "seconds": time.perf_counter() - start, "threads": n_threads,
                    "settings_key": key, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                })
                new = pd.DataFrame([{c: row.get(c) for c in SWEEP_COLUMNS}])
                table = new if table.empty else pd.concat([table, new], ignore_index=True)
                _write_results(out, table)
                done.add((mask, seed))
    mine = table[table["settings_key"] == key]
    mine = mine[mine["mask"].isin(mask_list) & mine["seed"].astype(int).isin(seed_list)]
    order = {m: i for i, m in enumerate(mask_list)}
    mine = mine.assign(_o=mine["mask"].map(order), seed=mine["seed"].astype(int))
    mine = mine.sort_values(["_o", "seed"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return mine[[c for c in SWEEP_COLUMNS if c in mine.columns]]


_METRIC_KEYS = (
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "answer_nll", "answer_nll_ci_low", "answer_nll_ci_high",
    "ppl_text", "ppl_text_before", "ppl_text_change", "ppl_instruct", "ppl_instruct_before", "ppl_instruct_change",
    "n_test",
)


def _peek_config(source: Any) -> Any:
    import torch

    if isinstance(source, torch.nn.Module):
        return source.config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(source))


def summarize_sweep(frame: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "answer_nll")) -> pd.DataFrame:
    """Per mask: seeds, mean and standard deviation over seeds of each metric, and the budget columns.

    Also ``<metric>_vs_best`` = mean minus the best mask's mean (in the metric's own direction:
    accuracy higher, NLL lower) and ``<metric>_seed_sd`` = the mean seed-to-seed standard deviation
    over masks, so a reader can see whether mask differences exceed seed noise.
    """
    import pandas as pd

    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(mask=frame["mask"].astype(str))
    order = list(dict.fromkeys(frame["mask"]))
    grouped = frame.groupby("mask", sort=False)
    out = pd.DataFrame({"mask": order})
    out["n_seeds"] = out["mask"].map(grouped["seed"].nunique())
    for col in ("rank", "alpha", "scale", "trainable_params"):
        if col in frame.columns:
            out[col] = out["mask"].map(grouped[col].first())
    for metric in metrics:
        mean = out["mask"].map(grouped[metric].mean())
        sd = out["mask"].map(grouped[metric].std(ddof=1))
        out[f"{metric}_mean"], out[f"{metric}_sd"] = mean, sd
        best = mean.min() if "nll" in metric else mean.max()
        out[f"{metric}_vs_best"] = mean - best
        out.attrs[f"{metric}_seed_sd"] = float(sd.mean()) if sd.notna().any() else math.nan
    for col in ("ppl_text_change", "ppl_instruct_change", "train_seconds"):
        if col in frame.columns:
            out[f"{col}_mean"] = out["mask"].map(grouped[col].mean())
    return out


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------


def _cmd_sweep(args: Any) -> int:
    import pandas as pd

    base = args.base if args.base else args.pair
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    frame = sweep(
        base, masks=args.masks, seeds=seeds, out=args.out, task=args.task, rank=args.rank, preset=args.preset,
        mlp=args.mlp, alpha_over_r=args.alpha_over_r, rslora=args.rslora, steps=args.steps, lr=args.lr,
        batch_size=args.batch_size, micro_batch_size=args.micro_batch_size, n_train=args.n_train,
        loss_on=args.loss_on, max_length=args.max_length, n_test=args.n_test, n_retention=args.n_retention,
        threads=args.threads, device=args.device, progress=True,
    )
    summary = summarize_sweep(frame)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"{len(frame)} runs -> {args.out}")
    return 0


def _cmd_suggest(args: Any) -> int:
    from mbt import data, select
    from mbt.pairs import load_pair

    pair = load_pair(args.pair) if not (args.base and args.sft) else load_pair(base=args.base, sft=args.sft)
    texts = data.load_texts(args.dataset, n=args.n, seed=args.seed)
    mask, evidence = select.suggest_block(pair, texts, n_segments=args.n_segments, width=args.width,
                                          prefer=args.prefer, use_sft=not args.base_only)
    if args.out:
        _write_results(Path(args.out), evidence)
    print(evidence.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(mask)
    return 0


def add_cli(subparsers: Any) -> Any:
    """Add ``mbt tune sweep`` and ``mbt tune suggest`` to an argparse ``subparsers`` object.

    Each subcommand stores its handler in ``func`` (called with the parsed namespace, returns an
    exit status), as ``mbt.cli`` expects. Returns the ``tune`` parser.
    """
    tune = subparsers.add_parser("tune", help="segment-restricted LoRA (Mid-Block Efficient Tuning)")
    sub = tune.add_subparsers(dest="tune_command", required=True)

    p = sub.add_parser("sweep", help="train and evaluate LoRA for masks x seeds; resumable")
    p.add_argument("--pair", default="toy", help="pair whose Base is tuned (default: toy, built if missing)")
    p.add_argument("--base", default=None, help="Base model folder or Hub id (instead of --pair)")
    p.add_argument("--masks", default="default",
                   help=f"family ({', '.join(MASK_FAMILIES)}) or comma-separated masks, e.g. 01100,00110")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--out", required=True, help="results table (.parquet or .csv); rerun to resume")
    p.add_argument("--task", default="toy-math", help="training/evaluation task (toy-math, gsm8k, ...)")
    p.add_argument("--rank", type=int, default=None, help="full-depth baseline rank (default 8; paper 64)")
    p.add_argument("--preset", default="standard", choices=list(PRESETS))
    p.add_argument("--alpha-over-r", type=float, default=2.0, help="constant LoRA scale (standard preset)")
    p.add_argument("--rslora", action="store_true", help="rsLoRA scaling alpha/sqrt(r)")
    p.add_argument("--mlp", action="store_true", help="also adapt gate/up/down projections")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--micro-batch-size", type=int, default=None)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--loss-on", default="answer", choices=["answer", "all"])
    p.add_argument("--max-length", type=int, default=None, help="truncate training examples (default: never)")
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--n-retention", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="torch threads, pinned and recorded")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (several GPUs)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("suggest", help="training-free choice of the block to tune")
    p.add_argument("--pair", default="toy")
    p.add_argument("--base", default=None)
    p.add_argument("--sft", default=None)
    p.add_argument("--dataset", default="toy-math")
    p.add_argument("--n", type=int, default=100, help="texts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-segments", type=int, default=5)
    p.add_argument("--width", type=int, default=None, help="segments in the block (default 40%% of them)")
    p.add_argument("--prefer", default="stable", choices=["stable", "active"])
    p.add_argument("--base-only", action="store_true", help="use Base-only signals (no CKA)")
    p.add_argument("--out", default=None, help="write the evidence table (.csv or .parquet)")
    p.set_defaults(func=_cmd_suggest)
    return tune
