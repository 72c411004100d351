r"""The SFT-intensity ladder: one toy Base, SFT checkpoints of increasing strength.

A real SFT stage is a tiny fraction of pretraining; the default toy pair's SFT (300 steps of 32 examples)
is about a fifth of its pretraining tokens. To see whether the paper's depth signatures depend on that,
the ladder keeps the Base of the default toy build and fine-tunes it for fewer steps:

==============  =========  ===============================================
pair            SFT steps  SFT tokens ÷ pretraining tokens (approximate)
==============  =========  ===============================================
``toy-sft10``   10         ≈ 0.7 %
``toy-sft25``   25         ≈ 2 %
``toy-sft60``   60         ≈ 4 %
``toy-sft150``  150        ≈ 10 %
``toy``         300        ≈ 20 % (the default pair itself)
==============  =========  ===============================================

The rungs were chosen to span SFT compute from under one percent of pretraining (a realistic stage) to
the default, roughly evenly on a log scale; each rung's exact ratio is computed from its own batches
(:func:`sft_compute`) and written into its manifest. A rung uses the same SFT data and the same peak
learning rate; its warm-up is scaled with its length (``round(20 · k / 300)`` steps, at least 1) and its
cosine decay runs over its own ``k`` steps. A rung is built deterministically in about a minute on 2 cores
(the Base is loaded, not retrained); with ``k`` equal to the default's steps and the default's data order it
reproduces the default build's SFT weights bit for bit (tested on the tiny size).

**Every rung its own run.** Each rung has :data:`LADDER_SFT_SEEDS` replicates, and every (rung, replicate)
orders its SFT batches by its own seed (:func:`data_order`: ``1000·r + k`` for rung ``k`` of replicate ``r``;
the default pair keeps its own order). Rungs that shared one data order would be prefixes of one training
path, so a drift of that path along the rungs would look like a trend; with an order of their own the ten
runs are independent, and a trend across them can be tested with each run as the unit (an exact rank
test over all runs, the two replicates of a rung tied in strength: :func:`mbt.paper.signatures.ladder_trend`).

**Replicates and controls.** ``build_rung(k, sft_seed=s)`` builds a rung with the SFT data order (and the SFT's
torch seed) ``s``, while the Base, the SFT data and every other setting stay those of the Base's ``seed`` (the Base
build is reused, never retrained); :func:`ladder_rung` builds a registered rung with its :func:`data_order`. The
rungs of replicate ``r ≥ 1`` are registered pairs too (:func:`rung_name`: ``toy-sft25-seed1``, …, ``toy-seed1`` for
the full-length SFT). ``build_rung(k, update="equal_step")`` repeats a rung under the equal-step rule
(:class:`mbt.train.EqualStep`: every block's relative update made equal after each optimiser step). Only the
registered rungs' manifests measure the generated exact match (the slow part of a build); the others (equal-step
runs, rungs of other lengths) keep the answer NLL, the letter accuracy, the layer CKA and the weight change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mbt import cpu, train
from mbt.loading import hf_progress_bars
from mbt.toy import corpus
from mbt.toy import quality as toy_quality
from mbt.toy.builder import (
    MANIFEST,
    _file_hashes,
    _lock,
    _versions,
    _write_jsonl,
    build,
    check_build,
    default_dir,
)
from mbt.toy.recipe import (
    SPECIAL_TOKENS,
    ToyConfig,
    check_variant,
    config_of_size,
    finetune,
    settings,
    settings_hash,
    sft_compute,
    sft_examples,
)

__all__ = ["LADDER", "LADDER_SFT_SEEDS", "LADDER_STEPS", "build_rung", "data_order", "ladder_rung", "replicate",
           "rung_config", "rung_dir", "rung_name"]

LADDER_STEPS: tuple[int, ...] = (10, 25, 60, 150)
"""SFT steps of the ladder's rungs below the default build."""

LADDER_SFT_SEEDS: tuple[int, ...] = (0, 1)
"""Replicates of every rung (registered pairs): replicate 0 holds the default toy pair, each further one
another SFT run of every rung (:func:`data_order`)."""


def rung_name(steps: int | None, sft_seed: int = 0) -> str:
    """The registered name of a rung: ``toy-sft25``, ``toy`` (``steps=None``: the default SFT), ``toy-sft25-seed1``."""
    base = "toy" if steps is None else f"toy-sft{int(steps)}"
    return base if int(sft_seed) == 0 else f"{base}-seed{int(sft_seed)}"


def replicate(sft_seed: int) -> tuple[str, ...]:
    """The ladder's pairs of one replicate, weakest SFT first (the last is the full-length SFT)."""
    return (*(rung_name(k, sft_seed) for k in LADDER_STEPS), rung_name(None, sft_seed))


LADDER: tuple[str, ...] = tuple(name for r in LADDER_SFT_SEEDS for name in replicate(r))
"""The ladder's registered pairs: every rung of every replicate (replicate 0 first, weakest SFT first;
``toy``, the default pair, is replicate 0's last rung)."""


def data_order(steps: int | None, sft_seed: int = 0, size: str | ToyConfig = "default") -> int | None:
    """The SFT data-order seed of a registered rung: ``1000·sft_seed + steps``; the default pair keeps its own.

    No two runs of the ladder share their order. ``None`` (the Base build's own order) for the default pair.

    Args:
        steps: The rung's SFT steps (``None``: the size's own, the default pair's length).
        sft_seed: The replicate.
        size: The toy size (its own SFT steps stand for ``None``).
    """
    k = config_of_size(size).sft_steps if steps is None else int(steps)
    if int(sft_seed) == 0 and k == config_of_size(size).sft_steps:
        return None
    return 1000 * int(sft_seed) + k


def ladder_rung(steps: int | None, sft_seed: int = 0, *, update: str = "standard", seed: int = 0,
                size: str | ToyConfig = "default", variant: str = "toy", progress: bool = True) -> Path:
    """Build (or reuse) a registered rung: :func:`build_rung` with the rung's :func:`data_order`.

    Args:
        steps: SFT steps (``None``: the size's own).
        sft_seed: The replicate (see :data:`LADDER_SFT_SEEDS`).
        update: The SFT's update rule (the equal-step control shares the standard run's data order).
        seed: Seed of the Base build.
        size: Toy size.
        variant: Toy variant of the Base.
        progress: Progress bars.
    """
    k = config_of_size(size).sft_steps if steps is None else int(steps)
    return build_rung(k, seed=seed, sft_seed=data_order(k, sft_seed, size), update=update, size=size,
                      variant=variant, progress=progress)


def rung_config(steps: int, size: str | ToyConfig = "default") -> ToyConfig:
    """The config of a rung: the size's config with ``steps`` SFT steps and a warm-up scaled to them.

    Raises:
        ValueError: ``steps`` below 1 or above the size's own SFT steps.
    """
    cfg = config_of_size(size)
    if not 1 <= int(steps) <= cfg.sft_steps:
        raise ValueError(f"a rung's SFT steps must be in 1..{cfg.sft_steps} (the {cfg.name} build's), got {steps}")
    if steps == cfg.sft_steps:
        return cfg
    warmup = max(1, round(cfg.sft_warmup * steps / cfg.sft_steps))
    return dataclasses.replace(cfg, name=f"{cfg.name}-sft{steps}", sft_steps=int(steps), sft_warmup=warmup)


def _is_base_build(cfg: ToyConfig, size: str | ToyConfig, seed: int, sft_seed: int | None, update: str) -> bool:
    return cfg == config_of_size(size) and (sft_seed is None or int(sft_seed) == int(seed)) and update == "standard"


def rung_dir(steps: int, *, seed: int = 0, sft_seed: int | None = None, update: str = "standard",
             size: str | ToyConfig = "default", variant: str = "toy") -> Path:
    """Where a rung lives: ``<cache root>/toy/<variant>-<size>[-sft<k>][-equal]-seed<seed>[-sftseed<s>]-<hash[:10]>``.

    The default rung (no ``-equal``, no other SFT seed) is named like before the options existed.
    """
    cfg = rung_config(steps, size)
    if _is_base_build(cfg, size, seed, sft_seed, update):
        return default_dir(seed=seed, size=cfg, variant=variant)
    h = settings_hash(seed=seed, size=cfg, variant=variant, sft_seed=sft_seed, update=update)[:10]
    name = cfg.name + ("-sft" + str(cfg.sft_steps) if cfg == config_of_size(size) else "")
    name += "-equal" if update == "equal_step" else ""
    other = "" if sft_seed is None or int(sft_seed) == int(seed) else f"-sftseed{int(sft_seed)}"
    return default_dir(seed=seed, size=cfg, variant=variant).parent / f"{variant}-{name}-seed{seed}{other}-{h}"


def build_rung(steps: int, *, seed: int = 0, sft_seed: int | None = None, update: str = "standard",
               size: str | ToyConfig = "default", variant: str = "toy", progress: bool = True) -> Path:
    """Build (or reuse) the ladder rung with ``steps`` SFT steps on the toy Base; return its folder.

    The Base build (:func:`mbt.toy.build` with the same seed, size and variant) is made first if missing.
    The rung's folder has the layout of a toy build (``base/``, ``sft/``, ``data/``, ``manifest.json``)
    and is verified and reused the same way. A rung with the size's own step count, SFT seed and update
    rule is the Base build.

    Args:
        steps: SFT steps of the rung.
        seed: Seed of the Base build and of the SFT data (and of the data order unless ``sft_seed`` is given).
        sft_seed: Seed of the SFT's data order and torch generator only (``None``: ``seed``); the Base build
            is reused.
        update: The SFT's update rule, ``"standard"`` or ``"equal_step"`` (:data:`mbt.train.UPDATE_RULES`).
        size: ``"default"``, ``"tiny"`` or a :class:`~mbt.toy.recipe.ToyConfig`.
        variant: Toy variant of the Base.
        progress: Progress bars.

    Raises:
        ValueError: An unknown variant or update rule, or steps out of range (before anything is built).
    """
    check_variant(variant)
    train.check_update_rule(update)
    cfg = rung_config(steps, size)
    if sft_seed is not None and (isinstance(sft_seed, bool) or int(sft_seed) < 0):
        raise ValueError(f"sft_seed must be a non-negative int or None, got {sft_seed!r}")
    base_build = build(seed=seed, size=config_of_size(size), variant=variant, progress=progress)
    if _is_base_build(cfg, size, seed, sft_seed, update):
        return base_build
    target = rung_dir(steps, seed=seed, sft_seed=sft_seed, update=update, size=size, variant=variant)
    expected = settings_hash(seed=seed, size=cfg, variant=variant, sft_seed=sft_seed, update=update)
    with _lock(target):
        if check_build(target, expected_hash=expected) is None:
            return target
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _build_rung_into(tmp, base_build, cfg=cfg, seed=seed, variant=variant, progress=progress,
                             settings_hash=expected, sft_seed=sft_seed, update=update)
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _known_base_quality(base_manifest: dict[str, Any], cfg: ToyConfig, seed: int) -> dict[str, Any] | None:
    """The Base's own quality numbers from its build's manifest, when they were measured as this rung would.

    A rung's Base is its Base build's, bit for bit; when the seed, the evaluation settings and the
    thread count are the same (:data:`mbt.toy.quality.EVAL_FIELDS`), measuring again gives the same numbers,
    so they are taken over (``tests/toy/test_ladder.py`` checks that against a fresh measurement).
    """
    stored, built_with = base_manifest.get("quality"), base_manifest.get("config", {})
    if not stored or base_manifest.get("seed") != seed or any(
            built_with.get(f) != getattr(cfg, f) for f in toy_quality.EVAL_FIELDS):
        return None
    return toy_quality.base_part(stored, cfg)


def _build_rung_into(root: Path, base_build: Path, *, cfg: ToyConfig, seed: int, variant: str, progress: bool,
                     settings_hash: str, sft_seed: int | None = None, update: str = "standard") -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    root.mkdir(parents=True)
    shutil.copytree(base_build / "base", root / "base")
    with cpu.pinned_threads(cfg.threads):
        tokenizer = AutoTokenizer.from_pretrained(root / "base")
        with hf_progress_bars(False):
            base = AutoModelForCausalLM.from_pretrained(root / "base", dtype=torch.float32).eval()
            sft = AutoModelForCausalLM.from_pretrained(root / "base", dtype=torch.float32)
        math_train = corpus.toy_math("train", seed)[: cfg.sft_math]
        mc_train = corpus.toy_mc("train", seed)[: cfg.sft_mc]
        examples = sft_examples(tokenizer, math_train, mc_train)
        order = seed if sft_seed is None else int(sft_seed)
        torch.manual_seed(order + 1)
        with train.attention(sft, cfg.attn):
            sft_curve = finetune(sft, examples, cfg, order, tokenizer.pad_token_id, progress, update=update)
        sft.eval()
        with hf_progress_bars(progress):
            sft.save_pretrained(root / "sft")
        tokenizer.save_pretrained(root / "sft")
        _write_jsonl(root / "data" / "sft_math.jsonl", math_train)
        _write_jsonl(root / "data" / "sft_mc.jsonl", mc_train)
        _write_jsonl(root / "data" / "eval_math.jsonl", corpus.toy_math("test", seed)[: cfg.eval_n])
        base_manifest: dict[str, Any] = json.loads((base_build / MANIFEST).read_text())
        quality = toy_quality.quality(base, sft, tokenizer, cfg, seed, progress,
                                      known_base=_known_base_quality(base_manifest, cfg, seed),
                                      generate=update == "standard" and (cfg.sft_steps in LADDER_STEPS
                                                                         or cfg.name == base_manifest["size"]))
    manifest = {
        "mbt_toy_manifest": 1,
        "settings_hash": settings_hash,
        **settings(seed=seed, size=cfg, variant=variant, sft_seed=sft_seed, update=update),
        "ladder": {"sft_steps": cfg.sft_steps, "base_build": base_build.name, "sft_seed": order, "update": update,
                   "base_settings_hash": base_manifest["settings_hash"], **sft_compute(cfg, examples, order)},
        "threads": cfg.threads,
        "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {**base_manifest["model"], "special_tokens": list(SPECIAL_TOKENS)},
        "data": {**base_manifest["data"], "sft_records": len(examples), "sft_math": len(math_train),
                 "sft_mc": len(mc_train)},
        "training": {"pretrain_loss": base_manifest["training"]["pretrain_loss"], "sft_loss": sft_curve},
        "timings_s": {"total": round(time.perf_counter() - start, 2)},
        "quality": quality,
        "files": _file_hashes(root),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
