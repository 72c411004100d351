r"""Segment-restricted LoRA training: the task's examples and :func:`train_lora`.

Training (:func:`train_lora`): the loss is on the answer tokens (+ EOS) by default, examples are never
truncated unless asked (the number that a cap would cut is reported), ``seed`` fixes the data order
*and* the adapter initialisation, fp32 on CPU. On CPU, results are bit-identical for the same seed
*and* thread count: pin ``threads``. The optimiser loop is :func:`mbt.train.run_steps`.

Hardware: on CPU everything is fp32. With one GPU pass ``device="cuda"``; to spread a model that does
not fit one GPU over all visible GPUs pass ``device="auto"`` (accelerate's ``device_map``: layers are
placed on different GPUs and run one after another). Data-parallel training over several GPUs is not
implemented; run one sweep process per GPU (``CUDA_VISIBLE_DEVICES``) over disjoint masks or seeds, each
with its own ``out`` file, and concatenate the tables.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mbt import data, train
from mbt.checks import require_finite_parameters
from mbt.cpu import pinned_threads
from mbt.loading import load_causal_lm
from mbt.tune import prefix
from mbt.tune.config import budget, config_of, lora_config, lora_scale, targets_of
from mbt.tune.settings import LoraSettings

__all__ = ["CPU_PIECES", "length_pieces", "micro_batch", "train_lora", "training_examples"]

CPU_PIECES = 2
"""Forward passes per optimiser step on a CPU when the caller sets no ``micro_batch_size``.

The batch's examples are sorted by length and cut into this many pieces, each padded only to its
own longest example. On ``toy-math`` (48–74 tokens, batch 32) two pieces compute ~15 % fewer
padded positions in the blocks and ~29 % fewer in the LM head than one. With two runs side by side
a step took 0.92 of the whole batch's time (median of 4 repeats, 0.84–0.97;
``benchmarks/bench_lora.py --variants whole-batch,current``). Four pieces were no faster: smaller
matrices cost more per token. A GPU gets the whole batch in one pass (its kernels are fastest on one
large batch)."""


def micro_batch(batch_size: int, micro_batch_size: int | None, device: Any) -> int:
    """Examples per forward pass: the caller's, else ``⌈batch_size / CPU_PIECES⌉`` on a CPU, else ``batch_size``.

    Args:
        batch_size: examples per optimiser step.
        micro_batch_size: the caller's choice, or ``None``.
        device: where the model runs (a ``torch.device`` or its name).
    """
    if micro_batch_size is not None:
        return int(micro_batch_size)
    if str(device).split(":")[0] == "cpu":
        return -(-batch_size // CPU_PIECES)
    return batch_size


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



def length_pieces(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Positions ``0 … n−1`` sorted by their length (stable) and cut into consecutive pieces of ``size``.

    Each piece is then padded only to its own longest member, so pieces of similar lengths pad less
    than pieces in the batch's own order. Sorting changes nothing else: the loss is a sum over examples.

    Args:
        lengths: the length of each example of a batch.
        size: examples per piece (the last one may be shorter).

    Returns:
        The pieces as lists of positions into ``lengths``; together they hold each position once.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[lo: lo + size] for lo in range(0, len(order), size)]


def train_lora(
    model_or_path: Any,
    tokenizer: Any = None,
    mask: str = "11111",
    *,
    settings: LoraSettings | None = None,
    task: str = "toy-math",
    seed: int = 0,
    data_seed: int = 0,
    data_path: str | Path | None = None,
    threads: int | None = None,
    device: str | None = None,
    dtype: Any = None,
    gradient_checkpointing: bool = False,
    group_by_length: bool = False,
    attn: str | None = None,
    cache_prefix: bool = True,
    copy_model: bool = True,
    progress: bool = True,
    **changes: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train segment-restricted LoRA on a task's training split; return the PEFT model and a record.

    Recipe (the fields of ``settings``): AdamW (betas 0.9/0.999), ``warmup`` (fraction of ``steps``, or a step
    count if ≥ 1) of linear warmup then ``schedule`` decay, gradient clipping at ``max_grad_norm``, batches of
    ``batch_size`` examples drawn without replacement from reshuffled epochs. The loss is the
    token-weighted mean cross-entropy over the batch's target tokens, so cutting a batch into pieces of
    ``micro_batch_size`` examples changes the float rounding only. The pieces hold the batch's examples
    sorted by length, each padded to its own longest one (less padding than the whole batch; see
    :data:`CPU_PIECES`); the LM head only runs from a piece's first target position on. ``seed``
    fixes the batches (:func:`mbt.train.batch_schedule`) and, set right before ``get_peft_model``,
    the adapter initialisation (A Kaiming-uniform, B = 0); the set of training records is fixed by
    ``data_seed``. On CPU the model runs in fp32 and the result is bit-identical for the same seed
    and thread count. With ``loss_on="answer"`` prompt tokens get label −100; ``max_length=None`` cuts
    nothing, and the record reports how many examples a cap of 128/256/512/1024 would cut.

    Args:
        model_or_path: a causal LM (nnsight wrapper or HF module; deep-copied unless
            ``copy_model=False``, since PEFT replaces modules in place), or a folder / Hub id.
        tokenizer: its tokenizer (loaded from ``model_or_path`` when that is a path).
        mask: segment mask with at least one ``"1"``.
        settings: the adapter and the recipe (:class:`~mbt.tune.settings.LoraSettings`; default: its defaults).
        task: training dataset (question/answer tasks for ``loss_on="answer"``).
        seed: data order and adapter initialisation.
        data_seed: which records form the training set.
        data_path: local copy of the dataset.
        threads: ``torch.set_num_threads`` during training (restored after); recorded either way.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"`` (spread over all GPUs with
            accelerate's ``device_map``; paths only). Default: the model's device, or CUDA if
            available for a path.
        dtype: model dtype when loading (default fp32 on CPU, bf16 on GPU; adapters stay fp32).
        gradient_checkpointing: recompute activations in the backward pass (large models).
        group_by_length: batches of examples of similar length (see :func:`mbt.train.batch_schedule`).
        attn: attention implementation while training (:func:`mbt.train.attention`; the model keeps its
            own for evaluation); ``None``: the model's own. On the toy pair ``"eager"`` trained one run
            alone ~7 % faster than ``"sdpa"`` but two runs side by side no faster
            (``benchmarks/bench_lora.py``, ``benchmarks/RESULTS.md``), so the default is left alone.
        cache_prefix: compute the frozen blocks below the first adapted one once per example instead of at
            every step (:mod:`mbt.tune.prefix`; used only where a check on the first batch shows the same
            loss). The record's ``prefix_blocks`` says how many blocks were cached (0: none).
        copy_model: deep-copy a model object before adding adapters.
        progress: tqdm bar with the running loss.
        **changes: fields of ``settings`` to change, e.g. ``steps=60, rank=4``.

    Returns:
        ``(peft_model, info)``: the trained ``PeftModel`` in eval mode, and a dict with the mask,
        layers, rank, alpha, scale, trainable/baseline parameter counts, truncation report, loss
        curve, final loss (mean of the last 10 steps), seconds, threads, device and all settings.

    Raises:
        ValueError: counts out of range, or no training examples.
        NonFiniteError: a weight of the model to tune holds NaN or infinity (names the tensor,
            before any step), or a step's loss is not finite (names the mask and step).
    """
    import torch
    from peft import get_peft_model

    knobs = LoraSettings.of(settings, **changes)  # every setting checked before anything loads
    steps, batch_size, lr = knobs.steps, knobs.batch_size, knobs.lr
    train.check_attention(attn)
    if tokenizer is None:
        if not isinstance(model_or_path, str | Path):
            raise ValueError("give the tokenizer of a model object")
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_or_path))
    with pinned_threads(threads):
        n_threads = torch.get_num_threads()
        start = time.perf_counter()
        model = load_causal_lm(model_or_path, device=device, dtype=dtype, copy_model=copy_model, progress=progress)
        require_finite_parameters(model, f"train_lora {mask}: the model to tune")
        n_layers = int(config_of(model).num_hidden_layers)
        config = lora_config(mask, n_layers, settings=knobs)
        b = budget(mask, n_layers, knobs.rank, model, targets=targets_of(knobs.targets, knobs.mlp),
                   preset=knobs.preset)

        examples = training_examples(tokenizer, task, n=knobs.n_train, loss_on=knobs.loss_on, data_seed=data_seed,
                                     path=data_path)
        lengths = [len(ids) for ids, _ in examples]
        longest = max(lengths)
        truncated_at = {cap: sum(x > cap for x in lengths) for cap in (128, 256, 512, 1024)}
        cap = longest if knobs.max_length is None else int(knobs.max_length)
        n_truncated = sum(x > cap for x in lengths)
        if knobs.max_length is not None:
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
        optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=knobs.weight_decay)
        n_warmup = int(knobs.warmup) if knobs.warmup >= 1 else round(knobs.warmup * steps)
        schedule_ = train.scheduler(optimizer, steps, n_warmup, knobs.schedule)
        plan = train.batch_schedule([len(ids) for ids, _ in examples], batch_size, steps, seed,
                                    group_by_length=group_by_length)
        dev = peft_model.get_input_embeddings().weight.device
        micro = micro_batch(batch_size, knobs.micro_batch_size, dev)

        cached: prefix.PrefixCache | None = None

        def step_loss(step: int) -> float:
            idx = plan[step]
            n_targets = sum(len(examples[i][0]) - max(examples[i][1], 1) for i in idx)
            total = 0.0
            for piece in length_pieces([len(examples[i][0]) for i in idx], micro):
                rows = [idx[j] for j in piece]
                part = [examples[i] for i in rows]
                ids, attn, labels = train.pad_batch(part, pad_id)
                first = min(max(n_prompt, 1) for _, n_prompt in part)
                embeds = None if cached is None else cached.batch(rows, ids.shape[1]).to(dev)
                loss = train.token_loss_sum(peft_model, ids.to(dev), attn.to(dev), labels, first_target=first,
                                            inputs_embeds=embeds)
                loss = loss / max(1, n_targets)
                loss.backward()
                total += float(loss.detach())
            return total

        peft_model.train()
        with train.attention(peft_model, attn):
            if cache_prefix and not gradient_checkpointing:
                cached = prefix.prefix_cache(peft_model, examples, min(b["layers"]), pad_id=pad_id,
                                             check=plan[0][:micro], device=dev)
            with cached.skipping(peft_model) if cached is not None else contextlib.nullcontext():
                losses, curve = train.run_steps(step_loss, optimizer, schedule_, steps=steps, clip=params,
                                                max_grad_norm=knobs.max_grad_norm, stage=f"LoRA {mask}",
                                                progress=progress)
        peft_model.eval()
        seconds = time.perf_counter() - start
    info = {
        "mask": mask, "n_segments": len(mask), "layers": b["layers"], "n_layers_tuned": b["n_layers_tuned"],
        "preset": knobs.preset, "rank": config.r, "alpha": float(config.lora_alpha), "scale": lora_scale(config),
        "rslora": bool(knobs.rslora), "dropout": float(config.lora_dropout),
        "targets": targets_of(knobs.targets, knobs.mlp),
        "trainable_params": trainable, "budget_params": b["trainable"], "baseline_params": b["baseline"],
        "budget_ratio": b["ratio"], "seed": seed, "data_seed": data_seed, "task": task, "n_train": len(examples),
        "steps": steps, "lr": lr, "batch_size": batch_size, "micro_batch_size": micro, "loss_on": knobs.loss_on,
        "group_by_length": bool(group_by_length), "prefix_blocks": 0 if cached is None else cached.depth,
        "attn": attn or str(getattr(config_of(peft_model), "_attn_implementation", "")),
        "warmup_steps": n_warmup, "schedule": knobs.schedule, "max_length": cap, "longest": longest,
        "n_truncated": n_truncated, "truncated_at": truncated_at,
        "loss_curve": [(s, round(v, 5)) for s, v in curve],
        "final_loss": float(sum(losses[-10:]) / len(losses[-10:])), "train_seconds": seconds,
        "threads": n_threads, "device": str(dev), "dtype": str(next(peft_model.parameters()).dtype),
    }
    return peft_model, info
