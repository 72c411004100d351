r"""The toy pair's recipe: its settings, tokenizer, model, pretraining and SFT.

Every setting of a build is a field of :class:`ToyConfig` and enters the settings hash
(:func:`settings_hash`), so a build folder is identified by what produced it. Pretraining and SFT run on
the one training loop of :mod:`mbt.train` (AdamW, warm-up then cosine decay, gradient clipping).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mbt import train
from mbt.toy import corpus

__all__ = [
    "RECIPE_VERSION",
    "SIZES",
    "SPECIAL_TOKENS",
    "VARIANTS",
    "ToyConfig",
    "check_variant",
    "config_of_size",
    "finetune",
    "new_model",
    "pack",
    "pretrain",
    "pretrain_batches",
    "settings",
    "settings_hash",
    "sft_compute",
    "sft_examples",
    "train_tokenizer",
]

RECIPE_VERSION = 1
"""Bumped whenever the recipe changes in a way that changes the weights (part of the hash)."""

VARIANTS = corpus.VARIANTS
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>")  # ids 0, 1, 2


@dataclass(frozen=True)
class ToyConfig:
    """Every setting of a toy build (all of it enters the settings hash).

    Attributes:
        name: size name used in the default directory name.
        n_layers, hidden, intermediate, heads: OLMo2 shape (untied embeddings, MHA).
        vocab: BPE vocabulary size including the three special tokens.
        seq_len: pretraining block length for the first ``1 - long_frac`` of the steps;
            the last ``long_frac`` use ``long_seq_len`` blocks (same tokens per step), so that
            k-shot prompts stay inside the context the Base model was trained on.
        max_positions: context size written into the config.
        tokenizer_docs: corpus documents the tokenizer is trained on.
        pydoc_frac: share of corpus documents that are real English from ``pydoc_data``.
        drill_docs: the first documents of the pretraining stream lean on copy drills (lists
            said twice): cheap lessons in copying from context (on drills alone this model
            copies lists after ~150 steps), which the worked problems and SFT build on.
        pt_steps, pt_batch, pt_lr, pt_warmup, pt_weight_decay: pretraining (AdamW, linear
            warmup then cosine decay to ``min_lr_frac`` of the peak; one pass over fresh text).
        sft_steps, sft_batch, sft_lr, sft_warmup: full fine-tuning (no weight decay).
        sft_math, sft_mc: how many ``toy_math`` / ``toy_mc`` train records the SFT set holds.
        betas, clip, min_lr_frac: optimiser details shared by both stages.
        eval_n, eval_shots, eval_max_new_tokens, eval_batch: held-out quality measurement.
        attn: attention implementation used for training (``"eager"`` is ~20 % faster than
            ``"sdpa"`` here); the saved configs keep the library default.
        threads: ``torch.set_num_threads`` during the build (results depend on it). ``"tiny"``
            uses 1: its matrices are too small to gain from threads, and one thread cannot
            stall on a busy machine.
    """

    name: str
    n_layers: int = 10
    hidden: int = 128
    intermediate: int = 256
    heads: int = 4
    vocab: int = 2048
    seq_len: int = 128
    long_seq_len: int = 256
    long_frac: float = 0.2
    max_positions: int = 256
    tokenizer_docs: int = 20000
    pydoc_frac: float = 0.05
    drill_docs: int = 4000
    pt_steps: int = 550
    pt_batch: int = 32
    pt_lr: float = 3e-3
    pt_warmup: int = 50
    pt_weight_decay: float = 0.1
    sft_steps: int = 300
    sft_batch: int = 32
    sft_lr: float = 1e-3
    sft_warmup: int = 20
    sft_math: int = 4000
    sft_mc: int = 0
    betas: tuple[float, float] = (0.9, 0.95)
    clip: float = 1.0
    min_lr_frac: float = 0.1
    eval_n: int = 300
    eval_shots: int = 3
    eval_max_new_tokens: int = 64
    eval_batch: int = 50
    attn: str = "eager"
    threads: int = 2


SIZES: dict[str, ToyConfig] = {
    "default": ToyConfig(name="default"),
    "tiny": ToyConfig(
        name="tiny", n_layers=10, hidden=32, intermediate=64, heads=2, vocab=384, seq_len=64,
        long_seq_len=128, max_positions=128, threads=1, tokenizer_docs=300, drill_docs=50, pt_steps=30, pt_batch=8,
        pt_warmup=5, sft_steps=12, sft_batch=8, sft_warmup=2, sft_math=96, sft_mc=32, eval_n=8, eval_shots=1,
        eval_max_new_tokens=12, eval_batch=8,
    ),
}
"""Named sizes: ``"default"`` (the book's pair, ≤ 10 min on 2 cores) and ``"tiny"`` (tests)."""


# --------------------------------------------------------------------------------------------
# Settings, directories, validation
# --------------------------------------------------------------------------------------------


def config_of_size(size: str | ToyConfig) -> ToyConfig:
    """The :class:`ToyConfig` of a size name (or the config itself); unknown names list the valid ones."""
    if isinstance(size, ToyConfig):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown toy size {size!r}; valid sizes: {', '.join(SIZES)}")
    return SIZES[size]


def check_variant(variant: str) -> None:
    """Raise ``ValueError`` listing :data:`VARIANTS` for an unknown variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown toy variant {variant!r}; valid variants: {', '.join(VARIANTS)}")


def settings(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy",
             sft_seed: int | None = None, update: str = "standard") -> dict[str, Any]:
    """The canonical settings of a build (what :func:`settings_hash` hashes).

    ``sft_seed`` (the SFT's data order, when it differs from ``seed``) and ``update`` (the SFT's update
    rule, :data:`mbt.train.UPDATE_RULES`) enter only when they differ from the defaults, so every build
    made before they existed keeps its hash.
    """
    check_variant(variant)
    train.check_update_rule(update)
    cfg = config_of_size(size)
    out: dict[str, Any] = {"recipe_version": RECIPE_VERSION, "seed": int(seed), "variant": variant,
                           "size": cfg.name, "config": dataclasses.asdict(cfg)}
    if sft_seed is not None and int(sft_seed) != int(seed):
        out["sft_seed"] = int(sft_seed)
    if update != "standard":
        out["sft_update"] = update
    return out


def settings_hash(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy",
                  sft_seed: int | None = None, update: str = "standard") -> str:
    """sha256 (hex) of the canonical JSON of :func:`settings`."""
    blob = json.dumps(settings(seed=seed, size=size, variant=variant, sft_seed=sft_seed, update=update),
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def train_tokenizer(docs: Sequence[str], cfg: ToyConfig):
    """A byte-level BPE trained on ``docs``, with pad/BOS/EOS and BOS prepended to every text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(docs, trainer)
    pad, bos, eos = SPECIAL_TOKENS
    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=bos, eos_token=eos,
                                   model_max_length=cfg.max_positions)


def pack(docs: Iterator[str], tokenizer, n_tokens: int, *, chunk: int = 500) -> tuple[Any, int]:
    """Concatenate ``<bos> doc <eos>`` until ``n_tokens`` ids; returns (ids tensor, n_docs)."""
    import torch

    eos = tokenizer.eos_token_id
    ids: list[int] = []
    n_docs = 0
    while len(ids) < n_tokens:
        batch = [next(docs) for _ in range(chunk)]
        n_docs += chunk
        for enc in tokenizer.backend_tokenizer.encode_batch(batch):  # adds BOS
            ids.extend(enc.ids)
            ids.append(eos)
    return torch.tensor(ids[:n_tokens], dtype=torch.long), n_docs


def new_model(cfg: ToyConfig, tokenizer, seed: int):
    """A randomly initialised ``Olmo2ForCausalLM`` of the config's shape (seeded)."""
    import torch
    from transformers import GenerationConfig, Olmo2Config, Olmo2ForCausalLM

    config = Olmo2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=cfg.max_positions, tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Olmo2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return model


def _optimizer(model, lr: float, weight_decay: float, cfg: ToyConfig, steps: int, warmup: int):
    """AdamW (decay on matrices only) and its schedule: warm-up, then cosine to ``cfg.min_lr_frac`` of ``lr``."""
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=cfg.betas, eps=1e-8, foreach=False)
    return opt, train.scheduler(opt, steps, warmup, "cosine", cfg.min_lr_frac)


def pretrain_batches(flat, cfg: ToyConfig) -> list:
    """Split the token stream into per-step batches: short blocks first, then long ones."""
    n_long = round(cfg.pt_steps * cfg.long_frac)
    n_short = cfg.pt_steps - n_long
    per_step = cfg.pt_batch * cfg.seq_len
    if n_long and per_step % cfg.long_seq_len:
        raise ValueError("pt_batch * seq_len must be a multiple of long_seq_len")
    batches = [flat[i * per_step:(i + 1) * per_step].view(cfg.pt_batch, cfg.seq_len)
               for i in range(n_short)]
    batches += [flat[i * per_step:(i + 1) * per_step].view(-1, cfg.long_seq_len)
                for i in range(n_short, cfg.pt_steps)]
    return batches


def _train_steps(model, batch_at: Callable[[int], dict[str, Any]], *, steps: int, lr: float, weight_decay: float,
                 warmup: int, cfg: ToyConfig, stage: str, progress: bool,
                 update: str = "standard") -> list[list[float]]:
    """AdamW steps on ``model(**batch_at(step)).loss`` with clipping (:func:`mbt.train.run_steps`).

    Args:
        model: causal LM, trained in place (left in eval mode).
        batch_at: step index → keyword arguments of the forward pass (``input_ids``, ``labels`` …).
        steps: optimiser steps.
        lr: peak learning rate (warm-up, then cosine decay to ``cfg.min_lr_frac · lr``).
        weight_decay: AdamW weight decay.
        warmup: warm-up steps.
        cfg: gradient clipping norm and learning-rate floor.
        stage: name for the progress bar and errors ("pretraining", "SFT").
        progress: show a tqdm bar.
        update: ``"standard"`` or ``"equal_step"`` (:class:`mbt.train.EqualStep` over the decoder blocks).

    Returns:
        ``[[step, loss], …]`` at steps 0, 10, 20 … and the last step.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    opt, sched = _optimizer(model, lr, weight_decay, cfg, steps, warmup)

    def step_loss(step: int) -> float:
        loss = model(**batch_at(step), use_cache=False).loss
        loss.backward()
        return loss.detach().item()

    train.check_update_rule(update)
    rule = train.EqualStep.of_blocks(model.model.layers) if update == "equal_step" else None
    model.train()
    _, curve = train.run_steps(step_loss, opt, sched, steps=steps, clip=model.parameters(), max_grad_norm=cfg.clip,
                               before_step=None if rule is None else rule.snapshot,
                               after_step=None if rule is None else rule.rescale,
                               stage=f"toy {stage}" + ("" if rule is None else " (equal-step)"), progress=progress)
    model.eval()
    return [[step, round(value, 4)] for step, value in curve]


def pretrain(model, batches, cfg: ToyConfig, progress: bool) -> list[list[float]]:
    """Next-token pretraining on the packed blocks of :func:`pretrain_batches`, one per step."""
    return _train_steps(model, lambda step: {"input_ids": batches[step], "labels": batches[step]},
                        steps=cfg.pt_steps, lr=cfg.pt_lr, weight_decay=cfg.pt_weight_decay, warmup=cfg.pt_warmup,
                        cfg=cfg, stage="pretraining", progress=progress)


def sft_examples(tokenizer, math_items: Sequence[dict], mc_items: Sequence[dict]) -> list[tuple[list[int], int]]:
    """(ids, n_prompt) per record: ``prompt`` (with BOS) + ``" " + answer`` + EOS."""
    out = []
    eos = tokenizer.eos_token_id
    pairs = [(corpus.format_math(it, with_answer=False), it["answer"]) for it in math_items]
    pairs += [(corpus.format_mc(it, with_answer=False), corpus.LETTERS[it["answer"]]) for it in mc_items]
    prompts = tokenizer([p for p, _ in pairs])["input_ids"]
    answers = tokenizer([" " + a for _, a in pairs], add_special_tokens=False)["input_ids"]
    for p, a in zip(prompts, answers, strict=True):
        out.append((list(p) + list(a) + [eos], len(p)))
    return out


def _sft_batches(examples: Sequence[tuple[list[int], int]], cfg: ToyConfig, seed: int,
                 pad_id: int) -> Callable[[int], dict[str, Any]]:
    """Step → right-padded batch of SFT examples (shuffled epochs), loss on the answer tokens only."""
    plan = train.batch_schedule([len(ids) for ids, _ in examples], cfg.sft_batch, cfg.sft_steps, seed,
                                group_by_length=False, stream="toy-sft")

    def batch_at(step: int) -> dict[str, Any]:
        ids, mask, labels = train.pad_batch([examples[i] for i in plan[step]], pad_id)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return batch_at


def finetune(model, examples, cfg: ToyConfig, seed: int, pad_id: int, progress: bool, *,
             update: str = "standard") -> list[list[float]]:
    """Supervised fine-tuning on (prompt, answer) examples, no weight decay.

    ``seed`` orders the batches; ``update`` is the update rule (``"equal_step"``: :class:`mbt.train.EqualStep`).
    """
    return _train_steps(model, _sft_batches(examples, cfg, seed, pad_id), steps=cfg.sft_steps, lr=cfg.sft_lr,
                        weight_decay=0.0, warmup=cfg.sft_warmup, cfg=cfg, stage="SFT", progress=progress,
                        update=update)


def sft_compute(cfg: ToyConfig, examples: Sequence[tuple[Sequence[int], int]], seed: int) -> dict[str, float]:
    """SFT tokens processed and their ratio to pretraining tokens.

    ``sft_tokens = Σ_steps Σ_{i ∈ batch} len(example_i)`` (real tokens, padding excluded) over the
    rung's batch schedule; ``pretrain_tokens = pt_steps · pt_batch · seq_len``; ``ratio`` is their quotient.
    """
    plan = train.batch_schedule([len(ids) for ids, _ in examples], cfg.sft_batch, cfg.sft_steps, seed,
                                group_by_length=False, stream="toy-sft")
    sft_tokens = sum(len(examples[i][0]) for batch in plan for i in batch)
    pretrain_tokens = cfg.pt_steps * cfg.pt_batch * cfg.seq_len
    return {"sft_tokens": float(sft_tokens), "pretrain_tokens": float(pretrain_tokens),
            "ratio": sft_tokens / pretrain_tokens}
