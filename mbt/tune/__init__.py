r"""Mid-Block Efficient Tuning: budget-matched LoRA on chosen segments, its training, scoring and sweeps.

The paper (§4.4, Fig. 7, Appendices A–B) puts LoRA adapters only on chosen *segments* of the decoder and
compares masks at a nearly constant trainable-parameter budget. Its comparison is confounded (see the
book's appendix "The released code"): ``lora_alpha`` was fixed at 128 while the rank varied 5x (so the
LoRA scale α/r varied too), ``rank_pattern`` keys were integers that match no module, answers were cut at
128 tokens, 32–100 test items, one unseeded run. Here the package is split by job:

* masks and blocks live in :mod:`mbt.segments`; ``segment_layers`` (PEFT's 0-based
  ``layers_to_transform`` of a mask) is part of this package's public interface too;
* :mod:`mbt.tune.settings` — :class:`LoraSettings`, the knobs every run of a sweep shares (one object for
  the config, the training, the sweep, the book and the CLI);
* :mod:`mbt.tune.config` — budget-matched ``LoraConfig`` (:func:`lora_config`, :func:`budget`);
* :mod:`mbt.tune.lora` — :func:`train_lora` on the one training loop of :mod:`mbt.train`;
* :mod:`mbt.tune.prefix` — the frozen blocks below the first adapted one, computed once per example;
* :mod:`mbt.tune.scoring` — :func:`evaluate_tuned`: exact match, answer NLL, retention;
* :mod:`mbt.tune.sweeps` — :func:`sweep` over masks × seeds, resumable, and :func:`summarize_sweep`.
"""

from __future__ import annotations

from mbt.segments import segment_layers
from mbt.tune.config import PAPER_ALPHA, PAPER_DROPOUT, PAPER_RANK, budget, lora_config, lora_scale, target_dims
from mbt.tune.lora import train_lora, training_examples
from mbt.tune.scoring import default_retention, evaluate_tuned
from mbt.tune.settings import DEFAULT_LR, DEFAULT_STEPS, DEFAULT_TARGETS, LORA_PRESETS, MLP_TARGETS, LoraSettings
from mbt.tune.sweeps import SWEEP_COLUMNS, summarize_sweep, sweep

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "DEFAULT_TARGETS",
    "MLP_TARGETS",
    "PAPER_ALPHA",
    "PAPER_DROPOUT",
    "PAPER_RANK",
    "LORA_PRESETS",
    "SWEEP_COLUMNS",
    "LoraSettings",
    "budget",
    "default_retention",
    "evaluate_tuned",
    "lora_config",
    "lora_scale",
    "segment_layers",
    "summarize_sweep",
    "sweep",
    "target_dims",
    "train_lora",
    "training_examples",
]
