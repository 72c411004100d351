r"""The equal-step control: is SFT's late-layer depth profile a property of the model, or of its gradients?

The paper's §3.2 explains the late-layer profile by gradient proximity: "the layers closest to the output loss
are forced to undergo the most significant changes". Billa (2026) tests exactly that: fine-tune again with an
update rule that, after every optimiser step, rescales each block's update so that its relative size
``‖ΔW_l‖ / ‖W_l‖`` is the same for every block (:class:`mbt.train.EqualStep`). If the profile persists, it
reflects the model; if it collapses, it reflected how much gradient reached each block.

:func:`equal_step_runs` fine-tunes the pair's Base under both rules (``"standard"``, ``"equal_step"``), for
several lengths and SFT seeds, and measures four **depth signatures** of every run against the same Base
(:func:`depth_signatures`, one value per layer or block):

* ``eq1`` — the relative Eq. 1 weight change per block, ``Σ_{q,k,v,o} ‖ΔW‖_F / Σ ‖W_Base‖_F``
  (:func:`mbt.weights.weight_change`);
* ``cka`` — linear CKA between the Base's and the run's mean-pooled hidden states per layer;
* ``shift`` — the relative mean shift ``‖μ_SFT − μ_Base‖ / ‖μ_Base‖`` per layer (both :func:`mbt.analyze`);
* ``lens`` — the run's logit-lens top-1 accuracy on the answer tokens per layer (:func:`mbt.probe.logit_lens`).

Where the runs come from:

* a **toy pair** (registered, ``family="toy"``): the ladder's rungs (:func:`mbt.toy.ladder.build_rung`) —
  the standard runs with SFT seed 0 are the ladder itself, the others are built once (the Base build is
  reused) and kept in the cache; the toy's recipe and data are the ladder's;
* **any other pair** (a Hub Base, or two folders): the Base is fine-tuned here on ``task`` with
  :class:`SftRecipe` (full fine-tuning in float32 on the GPU when there is one; AdamW, warm-up and cosine
  decay, loss on the answer tokens, the same batches for both rules given the seed), the signatures are
  measured on a float32 checkpoint in a temporary folder, and only the table is kept (cached by the call).
  One run holds the model, its gradients, AdamW's moments and a copy of the blocks: about 20 bytes per
  parameter (a 1B Base fits one 80 GB GPU; larger ones need more than this simple trainer offers).
"""

from __future__ import annotations

import dataclasses
import operator
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mbt import toy, trace, train
from mbt.analysis import analyze
from mbt.checks import NonFiniteError, require_finite_parameters
from mbt.identity import cached_call
from mbt.loading import hf_progress_bars
from mbt.pairs import ModelPair, load_pair
from mbt.probe import logit_lens
from mbt.results import cache_root
from mbt.tune import training_examples
from mbt.weights import block_series, weight_change

__all__ = ["SIGNATURES", "SftRecipe", "depth_signatures", "equal_step_runs", "sft_checkpoint"]

SIGNATURES: dict[str, str] = {
    "eq1": "relative Eq. 1 weight change ‖ΔW‖/‖W‖ (q, k, v, o) per block",
    "cka": "linear CKA(Base, SFT) of mean-pooled states per layer",
    "shift": "relative mean shift ‖μ_SFT − μ_Base‖ / ‖μ_Base‖ per layer",
    "lens": "SFT logit-lens top-1 accuracy on the answer tokens per layer",
}
"""The depth signatures compared between the update rules, and what each is."""


@dataclass(frozen=True)
class SftRecipe:
    """Full fine-tuning of a Base outside the toy (the generic path of :func:`equal_step_runs`).

    Attributes:
        lr: Peak AdamW learning rate (betas 0.9/0.95, no weight decay).
        batch_size: Examples per step.
        warmup: Linear warm-up, a fraction of the steps.
        min_lr_frac: Cosine decay to this fraction of ``lr``.
        clip: Gradient clipping norm.
        n_train: Training records (a seeded sample of the task's training split).
        max_length: Tokens per example (longer ones are cut).
    """

    lr: float = 2e-5
    batch_size: int = 8
    warmup: float = 0.05
    min_lr_frac: float = 0.1
    clip: float = 1.0
    n_train: int = 2000
    max_length: int = 512

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.batch_size < 1 or not 0 <= self.warmup < 1 or self.n_train < 1:
            raise ValueError(f"invalid SFT recipe {self}: lr > 0, batch_size >= 1, 0 <= warmup < 1, n_train >= 1")


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def sft_checkpoint(
    base: str,
    task: str,
    out: str | Path,
    *,
    steps: int,
    seed: int = 0,
    update: str = "standard",
    recipe: SftRecipe | None = None,
    revision: str | None = None,
    device: str | None = None,
    progress: bool = False,
) -> Path:
    r"""Fine-tune a Base (folder or Hub id) on a task and save the float32 result to ``out``.

    The examples are the task's formatted prompts and answers (:func:`mbt.tune.training_examples`, loss on
    the answer and EOS); batch ``s`` holds the examples :func:`mbt.train.batch_schedule` draws for ``seed``
    (the same under both rules); the loss is the mean over the batch's answer tokens. With
    ``update="equal_step"`` every step is rescaled per block (:class:`mbt.train.EqualStep`).

    Args:
        base: Base model folder or Hub id (loaded in float32).
        task: Training dataset (a question/answer task of :data:`mbt.data.DATASETS`).
        out: Folder to write (``save_pretrained`` of the model and the tokenizer); must not exist.
        steps: Optimiser steps.
        seed: Data order.
        update: ``"standard"`` or ``"equal_step"``.
        recipe: The recipe (default :class:`SftRecipe`).
        revision: Hub revision of the Base.
        device: ``"cuda"``/``"cpu"`` (default: the GPU when there is one).
        progress: Progress bar.

    Returns:
        ``out``.

    Raises:
        ValueError: Bad steps or update rule, or ``out`` exists.
        NonFiniteError: A starting weight or a step's loss is not finite (names the tensor or the step).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train.check_update_rule(update)
    if isinstance(steps, bool) or int(steps) < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    recipe = recipe or SftRecipe()
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; sft_checkpoint writes a new folder")
    device = device or _device()
    tokenizer = AutoTokenizer.from_pretrained(base, revision=revision)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    examples = training_examples(tokenizer, task, n=recipe.n_train)
    examples = [(ids[: recipe.max_length], n_prompt) for ids, n_prompt in examples if n_prompt < recipe.max_length]
    if not examples:
        raise ValueError(f"no example of {task!r} has an answer within {recipe.max_length} tokens")
    with hf_progress_bars(False):
        model = AutoModelForCausalLM.from_pretrained(base, revision=revision, dtype=torch.float32).to(device)
    require_finite_parameters(model, f"equal-step control: the Base {base!r}")
    plan = train.batch_schedule([len(ids) for ids, _ in examples], recipe.batch_size, int(steps), seed,
                                group_by_length=False, stream="mbt.equal_step")
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.0)
    schedule = train.scheduler(optimizer, int(steps), round(recipe.warmup * int(steps)), "cosine",
                               recipe.min_lr_frac)
    blocks = operator.attrgetter(trace.resolve_layout(model).layers)(model)
    rule = train.EqualStep.of_blocks(blocks) if update == "equal_step" else None

    def step_loss(step: int) -> float:
        batch = [examples[i] for i in plan[step]]
        ids, mask, labels = train.pad_batch(batch, pad)
        n_labels = int((labels[:, 1:] != -100).sum())
        loss = train.token_loss_sum(model, ids.to(device), mask.to(device), labels,
                                    first_target=min(n for _, n in batch)) / max(n_labels, 1)
        loss.backward()
        return float(loss.detach())

    model.train()
    train.run_steps(step_loss, optimizer, schedule, steps=int(steps), clip=list(model.parameters()),
                    max_grad_norm=recipe.clip, before_step=None if rule is None else rule.snapshot,
                    after_step=None if rule is None else rule.rescale,
                    stage=f"SFT ({update}, seed {seed})", progress=progress)
    model.eval()
    with hf_progress_bars(False):
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def depth_signatures(
    base: str,
    sft: str,
    texts: Sequence[str],
    *,
    base_revision: str | None = None,
    lens_positions: str = "answer",
    batch_size: int = 8,
    max_length: int = 512,
    cache: bool = True,
) -> pd.DataFrame:
    """The four depth signatures (:data:`SIGNATURES`) of one fine-tune against its Base.

    Args:
        base: Base folder or Hub id.
        sft: The fine-tuned folder.
        texts: Texts of the SFT task with their answers (CKA, mean shift, lens).
        base_revision: Hub revision of the Base.
        lens_positions: ``"answer"`` (only the answer's tokens are scored) or ``"all"``.
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Let :func:`mbt.analyze` reuse stored results.

    Returns:
        ``signature, layer, depth, value``: ``eq1`` per block ``1..L`` (block ``l`` writes layer ``l``),
        ``cka`` and ``shift`` per layer ``0..L``, ``lens`` per layer ``1..L``.
    """
    pair = load_pair(base=str(base), sft=str(sft), base_revision=base_revision, progress=False, sequential=True)
    n_layers = pair.n_layers
    change = weight_change((pair.spec.base, pair.spec.sft) if base_revision is None else pair)
    eq1 = block_series(change, kind="eq1", column="relative")
    frame = analyze(pair, list(texts), metrics=["cka", "relative_mean_shift"], n_token=0, batch_size=batch_size,
                    max_length=max_length, n_bootstrap=0, cache=cache, progress=False)
    rows = [{"signature": "eq1", "layer": int(b), "depth": int(b) / n_layers, "value": float(v)}
            for b, v in eq1.items()]
    for name, metric in (("cka", "cka"), ("shift", "relative_mean_shift")):
        sel = frame[(frame["model"] == "pair") & (frame["metric"] == metric)]
        rows += [{"signature": name, "layer": int(r.layer), "depth": int(r.layer) / n_layers, "value": float(r.value)}
                 for r in sel.itertuples()]
    lens = logit_lens(pair.sft, list(texts), positions=lens_positions, batch_size=batch_size, max_length=max_length,
                      n_bootstrap=0, progress=False)
    acc = lens[lens["metric"] == "top1_acc"]
    rows += [{"signature": "lens", "layer": int(r.layer), "depth": int(r.layer) / n_layers, "value": float(r.value)}
             for r in acc.itertuples()]
    return pd.DataFrame(rows, columns=["signature", "layer", "depth", "value"])


def _is_toy(pair: ModelPair) -> bool:
    return pair.spec.family == "toy" and pair.spec.source == "toy"


def _check_runs(pair: Any, steps: Sequence[int], seeds: Sequence[int], rules: Sequence[str],
                texts: Sequence[str]) -> tuple[list[int], list[int], list[str]]:
    if not isinstance(pair, ModelPair):
        raise ValueError(f"pair must be a loaded ModelPair (mbt.load_pair), got {type(pair).__name__}")
    step_list = [int(s) for s in steps]
    seed_list = [int(s) for s in seeds]
    rule_list = list(dict.fromkeys(rules))
    if not step_list or any(s < 1 for s in step_list):
        raise ValueError(f"steps must be positive ints, got {list(steps)}")
    if not seed_list or any(s < 0 for s in seed_list) or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be distinct non-negative ints, got {list(seeds)}")
    for rule in rule_list:
        train.check_update_rule(rule)
    if isinstance(texts, str) or len(texts) < 4:
        raise ValueError("give at least 4 texts of the SFT task (with answers) to measure the signatures on")
    if _is_toy(pair):
        top = toy.SIZES["default"].sft_steps
        bad = [s for s in step_list if s > top]
        if bad:
            raise ValueError(f"toy SFT steps must be in 1..{top}, got {bad}")
    return step_list, seed_list, rule_list


def equal_step_runs(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    steps: Sequence[int] = (25, 60, 300),
    seeds: Sequence[int] = (0, 1),
    rules: Sequence[str] = train.UPDATE_RULES,
    task: str = "toy-math",
    recipe: SftRecipe | None = None,
    lens_positions: str = "answer",
    batch_size: int = 8,
    max_length: int = 512,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Fine-tune the pair's Base under each update rule, length and SFT seed; the depth signatures of every run.

    Toy pairs take their runs from the ladder (see the module docstring; ``task`` and ``recipe`` are the
    toy's own and are ignored); any other pair is fine-tuned here on ``task`` with ``recipe``. Every run's
    table is stored (:func:`mbt.identity.cached_call`), so a re-run only reads.

    Args:
        pair: The loaded pair (its Base is fine-tuned; its SFT model is not used).
        texts: Formatted texts of the SFT task, with answers, to measure the signatures on.
        steps: SFT lengths (toy: ladder rungs, 1..300).
        seeds: SFT seeds (toy: the ladder's replicates, each rung and replicate with its own data order,
            :func:`mbt.toy.data_order`; otherwise the fine-tune's seed).
        rules: Update rules (:data:`mbt.train.UPDATE_RULES`).
        task: Training task of the generic path.
        recipe: Recipe of the generic path.
        lens_positions: Positions the lens scores (``"answer"`` or ``"all"``).
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse stored results.
        progress: Progress bars of the fine-tunes.

    Returns:
        ``rule, steps, seed, signature, layer, depth, value`` (one row per run, signature and layer).

    Raises:
        ValueError: Bad steps, seeds, rules or texts (before anything is trained or loaded).
    """
    step_list, seed_list, rule_list = _check_runs(pair, steps, seeds, rules, texts)
    recipe = recipe or SftRecipe()
    items = list(texts)
    frames = []
    for rule in rule_list:
        for k in step_list:
            for seed in seed_list:
                if _is_toy(pair):
                    def run(pair: ModelPair, texts: list[str], rule: str, k: int, seed: int, order: int | None,
                            positions: str, max_length: int) -> pd.DataFrame:
                        folder = toy.ladder_rung(k, seed, update=rule, variant=pair.spec.toy_variant or "toy",
                                                 progress=progress)  # data order `order` (part of the key)
                        return depth_signatures(folder / "base", folder / "sft", texts, lens_positions=positions,
                                                batch_size=batch_size, max_length=max_length, cache=cache)

                    run.__qualname__ = "equal_step_toy_run"
                    table = cached_call(run, pair, items, rule, k, seed, toy.data_order(k, seed), lens_positions,
                                        int(max_length), cache=cache)
                else:
                    def run(pair: ModelPair, texts: list[str], rule: str, k: int, seed: int, positions: str,
                            max_length: int, task: str, recipe: dict[str, Any]) -> pd.DataFrame:
                        tmp = Path(tempfile.mkdtemp(prefix="equal-step-", dir=_scratch()))
                        try:
                            folder = sft_checkpoint(pair.spec.base, task, tmp / "sft", steps=k, seed=seed, update=rule,
                                                    recipe=SftRecipe(**recipe), revision=pair.spec.base_revision,
                                                    progress=progress)
                            return depth_signatures(pair.spec.base, folder, texts,
                                                    base_revision=pair.spec.base_revision, lens_positions=positions,
                                                    batch_size=batch_size, max_length=max_length, cache=False)
                        finally:
                            shutil.rmtree(tmp, ignore_errors=True)

                    run.__qualname__ = "equal_step_run"
                    table = cached_call(run, pair, items, rule, k, seed, lens_positions, int(max_length), task,
                                        dataclasses.asdict(recipe), cache=cache)
                frames.append(table.assign(rule=rule, steps=k, seed=seed))
    out = pd.concat(frames, ignore_index=True)
    bad = out[~np.isfinite(out["value"].to_numpy(float))]
    if not bad.empty:
        first = bad.iloc[0]
        raise NonFiniteError(f"equal-step control: signature {first['signature']!r} is not finite at layer "
                             f"{int(first['layer'])} of the {first['rule']} run ({int(first['steps'])} steps, seed "
                             f"{int(first['seed'])})")
    return out[["rule", "steps", "seed", "signature", "layer", "depth", "value"]]


def _scratch() -> Path:
    folder = cache_root() / "equal-step-scratch"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
