r"""The one training loop: token loss, batch schedule, learning-rate schedule and optimiser steps.

Three parts of ``mbt`` train models and all of them use this module: segment LoRA
(:func:`mbt.tune.train_lora`), the own-fine-tune weight change (:func:`mbt.weights.finetune_weight_change`)
and the toy pair's pretraining and SFT (:mod:`mbt.toy`). What differs between them — which parameters,
which optimiser, how a batch is drawn — is passed in; what they share lives here:

* :func:`token_loss_sum` — summed next-token cross-entropy over labelled positions,
  ``Σ_{b,t: y[b,t+1] ≠ −100} −log softmax(z[b,t])[y[b,t+1]]``;
* :func:`pad_batch` — right-padded ``input_ids``, ``attention_mask`` and ``labels`` (−100 on the
  prompt and on padding) from ``(ids, n_prompt)`` examples;
* :func:`batch_schedule` — the example indices of every step, from seeded reshuffled epochs;
* :func:`lr_factor` / :func:`scheduler` — linear warm-up, then constant, linear or cosine decay
  (to a floor);
* :func:`attention` — train with another attention implementation than the one the model is saved with;
* :func:`run_steps` — the optimiser loop: backward, optional gradient clipping, step, schedule, a
  non-finite loss is an error naming the stage and step, a loss curve every 10 steps;
* :class:`EqualStep` — the equal-step update rule (every block's relative update made equal after each
  step), the control of the book's chapter 9; :data:`UPDATE_RULES` names the rules a trainer accepts.

Results are bit-identical for the same seed and thread count on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mbt.checks import NonFiniteError, NonFiniteLossError

if TYPE_CHECKING:
    import torch

__all__ = [
    "LENGTH_GROUP",
    "UPDATE_RULES",
    "EqualStep",
    "attention",
    "check_update_rule",
    "batch_schedule",
    "check_attention",
    "lr_factor",
    "pad_batch",
    "run_steps",
    "scheduler",
    "token_loss_sum",
]

LENGTH_GROUP = 16
"""With ``group_by_length``, this many consecutive batches are sorted by length together."""

SCHEDULES: tuple[str, ...] = ("linear", "cosine", "constant")

UPDATE_RULES: tuple[str, ...] = ("standard", "equal_step")
"""How an optimiser step is applied: as the optimiser computed it, or rescaled per block (:class:`EqualStep`)."""


def lr_factor(step: int, steps: int, warmup: int, kind: str, floor: float = 0.0) -> float:
    """The learning-rate multiplier at ``step`` (0-based).

    ``(step + 1) / warmup`` during the warm-up; then with ``p = (step − warmup) / max(1, steps − warmup)``:
    ``constant`` → 1, ``linear`` → ``max(0, 1 − p)``, ``cosine`` →
    ``floor + (1 − floor) · ½ (1 + cos(π · min(1, p)))``.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be 'linear', 'cosine' or 'constant', got {kind!r}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def scheduler(optimizer: Any, steps: int, warmup: int, kind: str, floor: float = 0.0) -> Any:
    """A ``LambdaLR`` applying :func:`lr_factor` to every parameter group's learning rate."""
    import torch

    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be 'linear', 'cosine' or 'constant', got {kind!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, warmup, kind, floor))


def batch_schedule(lengths: Sequence[int], batch_size: int, steps: int, seed: int, *,
                   group_by_length: bool = True, stream: str = "mbt.tune") -> list[list[int]]:
    """The example indices of every optimiser step.

    The examples are drawn as a stream of reshuffled epochs (``random.Random(f"{stream}/{seed}")``),
    ``batch_size`` at a time, an epoch's remainder carrying into the next. With ``group_by_length``,
    each run of :data:`LENGTH_GROUP` batches' worth of the stream is sorted by length, cut into batches
    and those batches are shuffled: a batch then holds examples of similar length (less padding), and
    the stream still visits every example once per epoch. On ``toy-math`` grouping took steps to 0.80x
    the time (``benchmarks/bench_lora.py``) but lowered full-depth LoRA's exact match after 300 steps
    from 0.54 to 0.37, since similar lengths there mean similar problems, so LoRA leaves it off.

    Args:
        lengths: token count of each example.
        batch_size: examples per step.
        steps: number of steps.
        seed: shuffling seed.
        group_by_length: sort within groups of :data:`LENGTH_GROUP` batches.
        stream: name of the random stream (each user of the loop has its own, so their orders differ).

    Returns:
        ``steps`` lists of ``batch_size`` indices into ``lengths``.
    """
    if not lengths:
        raise ValueError("no examples to draw batches from")
    if batch_size < 1 or steps < 0:
        raise ValueError(f"batch_size must be >= 1 and steps >= 0, got {batch_size} and {steps}")
    rng = random.Random(f"{stream}/{seed}")
    group = LENGTH_GROUP if group_by_length else 1
    pool: list[int] = []
    batches: list[list[int]] = []
    while len(batches) < steps:
        need = batch_size * group
        while len(pool) < need:
            epoch = list(range(len(lengths)))
            rng.shuffle(epoch)
            pool += epoch
        chunk, pool = pool[:need], pool[need:]
        if group > 1:
            chunk.sort(key=lambda i: lengths[i])
        cut = [chunk[j: j + batch_size] for j in range(0, need, batch_size)]
        if group > 1:
            rng.shuffle(cut)
        batches += cut
    return batches[:steps]


def pad_batch(examples: Sequence[tuple[Sequence[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ``(input_ids, attention_mask, labels)``, each ``(B, T)`` with ``T`` the longest example.

    Labels copy the ids from position ``n_prompt`` on and are −100 on the prompt and on padding.
    """
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for r, (seq, n_prompt) in enumerate(examples):
        ids[r, : len(seq)] = torch.tensor(list(seq))
        mask[r, : len(seq)] = 1
        labels[r, n_prompt: len(seq)] = torch.tensor(list(seq[n_prompt:]))
    return ids, mask, labels


def _unwrap(model: Any) -> Any:
    """The plain module under an nnsight wrapper (``._model``) and a PEFT wrapper."""
    model = getattr(model, "_model", model)
    if hasattr(model, "get_base_model"):  # PEFT passes the keyword through to the wrapped model
        model = model.get_base_model()
    return model


@functools.cache
def _forward_takes_logits_to_keep(cls: type) -> bool:
    """Whether a model class's forward accepts ``logits_to_keep`` (checked once per class)."""
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def token_loss_sum(model: Any, ids: torch.Tensor | None, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                   first_target: int | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
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
        inputs_embeds: ``(B, T, d)`` hidden states fed to the blocks instead of embedding ``ids`` (which may
            then be ``None``), e.g. cached ones (:mod:`mbt.tune.prefix`).

    Returns:
        A 0-d float32 tensor with the summed loss (differentiable).
    """
    import torch

    keep_from = 0
    kwargs: dict[str, Any] = {}
    if first_target is not None and first_target > 1 and _forward_takes_logits_to_keep(type(_unwrap(model))):
        keep_from = first_target - 1
        kwargs["logits_to_keep"] = labels.shape[1] - keep_from
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = ids
    logits = model(attention_mask=attention_mask, use_cache=False, **kwargs).logits
    shift = labels[:, keep_from + 1:].to(logits.device)
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             shift.reshape(-1), ignore_index=-100, reduction="sum")


def check_attention(impl: str | None) -> None:
    """Refuse an attention implementation transformers does not know (``None`` and Hub kernels ``org/name`` pass).

    Raises:
        ValueError: An unknown name; the message lists the valid ones.
    """
    if impl is None or (isinstance(impl, str) and "/" in impl):
        return
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    valid = sorted({"eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()} - {"paged|eager"})
    if impl not in valid:
        raise ValueError(f"unknown attention implementation {impl!r}; valid: {', '.join(valid)}")


@contextlib.contextmanager
def attention(model: Any, impl: str | None) -> Iterator[None]:
    """Run the block with attention implementation ``impl`` (``"eager"``, ``"sdpa"``, …); restored after.

    The saved config keeps its own: the same attention, computed in other kernels. The toy build
    pretrains with ``"eager"`` (~20 % faster than ``"sdpa"`` there, 2 threads). ``None`` leaves the
    model as it is.
    """
    module = _unwrap(model)
    old = module.config._attn_implementation
    if impl is not None and impl != old:
        module.set_attn_implementation(impl)
    try:
        yield
    finally:
        if impl is not None and impl != old:
            module.set_attn_implementation(old)


def run_steps(
    step_loss: Callable[[int], float],
    optimizer: Any,
    schedule: Any,
    *,
    steps: int,
    clip: Iterable[Any] | None = None,
    max_grad_norm: float | None = None,
    after_backward: Callable[[int], None] | None = None,
    before_step: Callable[[int], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    stage: str = "training",
    progress: bool = True,
) -> tuple[list[float], list[tuple[int, float]]]:
    """The optimiser loop shared by every trainer in ``mbt``.

    For each step ``s``: ``value = step_loss(s)`` (the caller's forward and backward, possibly over
    several micro-batches; returns the step's loss), ``after_backward(s)`` (e.g. record gradient
    norms), clip the gradients of ``clip`` to ``max_grad_norm``, ``before_step(s)``,
    ``optimizer.step()``, ``after_step(s)`` (e.g. :class:`EqualStep`'s rescaling), ``schedule.step()``,
    ``optimizer.zero_grad(set_to_none=True)``.

    Args:
        step_loss: step index → loss of that step, after its ``backward()``.
        optimizer: a torch optimiser.
        schedule: its learning-rate scheduler (:func:`scheduler`).
        steps: optimiser steps.
        clip: parameters whose gradient norm is clipped (``None`` or ``max_grad_norm`` falsy: no clipping).
        max_grad_norm: clipping threshold.
        after_backward: called after the backward pass, before clipping.
        before_step: called right before ``optimizer.step()`` (after clipping).
        after_step: called right after ``optimizer.step()``.
        stage: name for the progress bar and errors ("pretraining", "SFT", "LoRA 01100").
        progress: show a tqdm bar with the running loss.

    Returns:
        ``(losses, curve)``: every step's loss, and ``(step, loss)`` at steps 0, 10, 20 … and the last.

    Raises:
        NonFiniteLossError: a step's loss is NaN or infinite (names the stage and step); a
            ``FloatingPointError`` and a :class:`~mbt.checks.NonFiniteError` alike.
    """
    import torch
    from tqdm.auto import tqdm

    clip = list(clip) if clip is not None and max_grad_norm else None
    losses: list[float] = []
    curve: list[tuple[int, float]] = []
    bar = tqdm(range(steps), desc=stage, disable=not progress)
    for step in bar:
        value = step_loss(step)
        if after_backward is not None:
            after_backward(step)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip, max_grad_norm)
        if before_step is not None:
            before_step(step)
        optimizer.step()
        if after_step is not None:
            after_step(step)
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if not math.isfinite(value):
            raise NonFiniteLossError(f"{stage}: the loss is {value} at step {step} "
                                     "(non-finite weights, inputs or a learning rate that is too high)")
        losses.append(value)
        if step % 10 == 0 or step == steps - 1:
            curve.append((step, value))
            bar.set_postfix(loss=f"{value:.3f}")
    return losses, curve


def check_update_rule(rule: str) -> None:
    """Refuse an update rule that is not one of :data:`UPDATE_RULES` (the message lists them)."""
    if rule not in UPDATE_RULES:
        raise ValueError(f"update rule must be one of {', '.join(UPDATE_RULES)}, got {rule!r}")


class EqualStep:
    r"""The equal-step rule: after each optimiser step, every block's relative update is the same.

    Let ``θ_l`` be block ``l``'s parameters (all of its tensors, flattened into one vector) just before an
    optimiser step and ``Δ_l`` the update the optimiser applied. With ``r_l = ‖Δ_l‖ / ‖θ_l‖`` (Frobenius
    norms, float64) and the target ``r̄ = mean_l r_l`` over the blocks that moved (so the step's average
    relative update is the optimiser's own), the rule replaces each update by ``(r̄ / r_l) · Δ_l``:

    ``θ_l ← θ_l + (r̄ / r_l) Δ_l``, hence ``‖θ_l' − θ_l‖ / ‖θ_l‖ = r̄`` for every block.

    The direction of each block's update is the optimiser's; only its length changes. A block whose update is
    exactly zero (no gradient reached it) is left alone. Parameters outside the blocks (embedding, final
    norm, LM head) keep the optimiser's update. The optimiser's state (e.g. AdamW's moments) is not touched.
    In float32 the equality holds up to rounding: a relative spread below ``1e-6`` for relative updates of
    ``1e-4`` or more (``tests/test_train.py`` checks it). The control follows Billa (2026), who applies it
    after every optimiser step to ask whether the depth profile of fine-tuning survives it.

    Use: ``before_step=rule.snapshot, after_step=rule.rescale`` in :func:`run_steps`.

    Attributes:
        history: Per step, the relative update of every block after the rescaling (``(L,)`` each).
    """

    def __init__(self, groups: Sequence[Sequence[torch.Tensor]]) -> None:
        self.groups = [list(g) for g in groups]
        if len(self.groups) < 2 or any(not g for g in self.groups):
            raise ValueError("the equal-step rule needs at least two blocks, each with parameters")
        self._before: list[list[torch.Tensor]] | None = None
        self.history: list[list[float]] = []

    @classmethod
    def of_blocks(cls, blocks: Iterable[Any]) -> EqualStep:
        """The rule over decoder blocks (``torch.nn.Module`` s, block 1 first): each block's trainable parameters.

        A tensor shared by several blocks counts in the first only.
        """
        seen: set[int] = set()
        groups = []
        for block in blocks:
            group = [p for p in block.parameters() if p.requires_grad and id(p) not in seen]
            seen.update(id(p) for p in group)
            groups.append(group)
        return cls(groups)

    def snapshot(self, step: int = 0) -> None:
        """Copy every block's parameters (called right before the optimiser step)."""
        self._before = [[p.detach().clone() for p in g] for g in self.groups]

    def rescale(self, step: int = 0) -> list[float]:
        """Rescale each block's update to the mean relative update (called right after the step).

        Returns:
            The relative update ``‖θ_l' − θ_l‖ / ‖θ_l‖`` of every block after the rescaling.

        Raises:
            RuntimeError: :meth:`snapshot` was not called before the step.
            NonFiniteError: a block's update is NaN or infinite (names the block and the step).
        """
        import torch

        if self._before is None:
            raise RuntimeError("EqualStep.rescale needs snapshot() right before the optimiser step")
        before = self._before
        self._before = None
        with torch.no_grad():
            ratios = []
            for i, (group, old) in enumerate(zip(self.groups, before, strict=True)):
                delta = math.sqrt(sum(float((p.double() - o.double()).pow(2).sum()) for p, o in zip(group, old,
                                                                                                   strict=True)))
                norm = math.sqrt(sum(float(o.double().pow(2).sum()) for o in old))
                if not (math.isfinite(delta) and math.isfinite(norm)):
                    raise NonFiniteError(f"equal-step rule: block {i + 1}'s update is not finite at step {step}")
                ratios.append(delta / norm if norm > 0 else 0.0)
            moved = [r for r in ratios if r > 0]
            target = sum(moved) / len(moved) if moved else 0.0
            after = []
            for group, old, r in zip(self.groups, before, ratios, strict=True):
                if r > 0:
                    factor = target / r
                    for p, o in zip(group, old, strict=True):
                        p.copy_((o.double() + factor * (p.double() - o.double())).to(p.dtype))
                delta = math.sqrt(sum(float((p.double() - o.double()).pow(2).sum()) for p, o in zip(group, old,
                                                                                                   strict=True)))
                norm = math.sqrt(sum(float(o.double().pow(2).sum()) for o in old))
                after.append(delta / norm if norm > 0 else 0.0)
        self.history.append(after)
        return after
