r"""The offline toy pair: a small OLMo2 Base model and its SFT version, built on a laptop CPU in minutes.

* :mod:`mbt.toy.corpus` — the generated small-world corpus and the toy tasks (``toy-math``, ``toy-mc``,
  ``toy-text``, ``toy-instruct``), in the paper's prompt formats (:mod:`mbt.formats`);
* :mod:`mbt.toy.recipe` — every setting (:class:`ToyConfig`), the tokenizer, the model, pretraining and SFT;
* :mod:`mbt.toy.quality` — the quality checks written into each build's manifest;
* :mod:`mbt.toy.builder` — :func:`build`: cached, locked, verified build folders;
* :mod:`mbt.toy.ladder` — the SFT-intensity ladder: the same Base, SFT of increasing strength (and its
  replicates with other SFT seeds, and the equal-step control).
"""

from __future__ import annotations

from mbt.results import cache_root
from mbt.toy.builder import build, check_build, default_dir, find_build, is_valid
from mbt.toy.ladder import LADDER, LADDER_SFT_SEEDS, LADDER_STEPS, build_rung, data_order, ladder_rung, rung_name
from mbt.toy.recipe import RECIPE_VERSION, SIZES, SPECIAL_TOKENS, VARIANTS, ToyConfig, settings, settings_hash

__all__ = [
    "LADDER",
    "LADDER_SFT_SEEDS",
    "LADDER_STEPS",
    "RECIPE_VERSION",
    "SIZES",
    "SPECIAL_TOKENS",
    "VARIANTS",
    "ToyConfig",
    "build",
    "build_rung",
    "cache_root",
    "check_build",
    "data_order",
    "default_dir",
    "find_build",
    "is_valid",
    "ladder_rung",
    "rung_name",
    "settings",
    "settings_hash",
]
