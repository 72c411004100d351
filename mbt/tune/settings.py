r"""The knobs of a segment-LoRA run, in one frozen object shared by the config, training, sweeps, book and CLI.

:class:`LoraSettings` holds what is the same for every mask and seed of a sweep: the adapter (budget rank,
LoRA preset, targets, scale) and the training recipe (steps, learning rate, batches, data, schedule). A mask,
a seed, the task and where it runs (threads, device) are arguments of the functions themselves.
:func:`~mbt.tune.lora_config`, :func:`~mbt.tune.train_lora` and :func:`~mbt.tune.sweep` each take
``settings=`` and/or the fields as keyword arguments (``rank=8, preset="paper"``), resolved by
:meth:`LoraSettings.of`; an unknown name is refused with the valid ones.

The **LoRA preset** (:data:`LORA_PRESETS`) is not the metric *conventions* preset of
:mod:`mbt.metrics.conventions`: ``"standard"`` keeps the LoRA scale ``α/r`` constant across masks,
``"paper"`` reproduces the released code's fixed ``lora_alpha = 128``, rank 64 and dropout 0.05.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "DEFAULT_TARGETS",
    "LORA_PRESETS",
    "MLP_TARGETS",
    "SCHEDULES",
    "LoraSettings",
]

DEFAULT_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
"""Attention projections: the paper's targets (OLMo2 has no PEFT default, so they are always named)."""

MLP_TARGETS: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
"""The MLP projections added with ``mlp=True``."""

LORA_PRESETS: tuple[str, ...] = ("standard", "paper")
"""LoRA presets: ``"standard"`` (constant ``α/r``) or ``"paper"`` (the released code's fixed ``lora_alpha``)."""

DEFAULT_STEPS = 240
"""Optimiser steps of one run (the toy pair's recipe: 240 steps of 32 examples)."""

DEFAULT_LR = 5e-3
"""Peak learning rate of one run."""

SCHEDULES: tuple[str, ...] = ("linear", "cosine", "constant")
"""Learning-rate decay after the warm-up."""


@dataclass(frozen=True)
class LoraSettings:
    """What a segment-LoRA run is trained with, the same for every mask and seed of a sweep.

    Attributes:
        rank: Rank of full-depth LoRA that sets the trainable-parameter budget (``None``: 8, or 64 with the
            paper preset); a mask gets the rank that matches it (:func:`~mbt.tune.budget`).
        preset: A LoRA preset (:data:`LORA_PRESETS`).
        targets: Adapted module names.
        mlp: Also adapt the MLP projections (:data:`MLP_TARGETS`).
        alpha_over_r: The constant LoRA scale ``α/r`` of the standard preset.
        rslora: rsLoRA scaling ``α/√r``.
        dropout: LoRA dropout (``None``: 0, or 0.05 with the paper preset).
        steps: Optimiser steps.
        lr: Peak learning rate.
        batch_size: Examples per optimiser step.
        micro_batch_size: Examples per forward pass (``None``: half the batch on a CPU, all of it elsewhere).
        n_train: Training records (``None``: the whole split).
        loss_on: ``"answer"`` (prompt tokens get no loss) or ``"all"``.
        max_length: Truncate training examples to this many tokens (``None``: nothing is cut).
        warmup: Warm-up as a fraction of ``steps`` (< 1) or a number of steps (≥ 1).
        schedule: Decay after the warm-up (:data:`SCHEDULES`).
        weight_decay: AdamW weight decay of the adapter weights.
        max_grad_norm: Gradient clipping (0: none).
    """

    rank: int | None = None
    preset: str = "standard"
    targets: tuple[str, ...] = DEFAULT_TARGETS
    mlp: bool = False
    alpha_over_r: float = 2.0
    rslora: bool = False
    dropout: float | None = None
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR
    batch_size: int = 32
    micro_batch_size: int | None = None
    n_train: int | None = 4000
    loss_on: str = "answer"
    max_length: int | None = None
    warmup: float = 0.05
    schedule: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.targets, str):
            raise ValueError("targets must be a list of module names (PEFT ignores layers_to_transform for a regex)")
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets and not self.mlp:
            raise ValueError("no target modules")
        if self.preset not in LORA_PRESETS:
            raise ValueError(f"unknown LoRA preset {self.preset!r}; choices: {', '.join(LORA_PRESETS)}")
        for name in ("steps", "batch_size"):
            _whole(name, getattr(self, name), minimum=1)
        for name in ("rank", "n_train", "max_length"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), minimum=1)
        micro = self.micro_batch_size
        if micro is not None and (isinstance(micro, bool) or not isinstance(micro, int)
                                  or not 1 <= micro <= self.batch_size):
            raise ValueError(f"micro_batch_size must be in 1..{self.batch_size} (the batch size), got {micro!r}")
        if self.loss_on not in ("answer", "all"):
            raise ValueError(f"loss_on must be 'answer' or 'all', got {self.loss_on!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("lr", "alpha_over_r"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("warmup", "weight_decay", "max_grad_norm"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.dropout is not None and not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def of(cls, settings: LoraSettings | None = None, **changes: Any) -> LoraSettings:
        """``settings`` (default: the defaults) with some fields changed, checked.

        Raises:
            ValueError: An unknown field (the valid ones are listed) or a value out of range.
            TypeError: ``settings`` is not a :class:`LoraSettings`.
        """
        if settings is not None and not isinstance(settings, LoraSettings):
            raise TypeError(f"settings must be a LoraSettings, got {type(settings).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown LoRA setting(s) {unknown}; valid: {', '.join(names)}")
        return dataclasses.replace(settings or cls(), **changes)

    def adapter(self) -> dict[str, Any]:
        """The fields that shape the adapter (what :func:`~mbt.tune.lora_config` reads)."""
        return {k: getattr(self, k) for k in ("rank", "preset", "targets", "mlp", "alpha_over_r", "rslora", "dropout")}

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values (``targets`` as a list), e.g. for a settings key or a record."""
        return {**dataclasses.asdict(self), "targets": list(self.targets)}


def _whole(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
