r"""Build the offline toy pair: a small OLMo2 Base model and its SFT version, on a laptop CPU.

:func:`build` runs the whole recipe from a seed, with no network:

1. **data** -- a procedurally generated pretraining corpus (:mod:`mbt.toydata`: small-world
   English, arithmetic facts in prose and symbols, worked mini-problems that copy names and
   numbers from their context, paragraphs of CPython's own documentation) and the SFT set
   (``toy_math`` and ``toy_mc`` train splits in the paper's formats);
2. **tokenizer** -- a byte-level BPE trained on the corpus with ``tokenizers``, saved as a
   ``PreTrainedTokenizerFast`` with ``<|pad|>``, ``<|bos|>`` (prepended to every text) and
   ``<|eos|>``;
3. **pretraining** -- an ``Olmo2ForCausalLM`` from random init on packed 128-token blocks;
4. **SFT** -- full fine-tuning of a copy on ``"Question: …\nAnswer: …"`` records, loss on the
   answer tokens and EOS only;
5. **quality** -- held-out ``toy_math`` exact match (Base 0- and k-shot, SFT 0-shot), answer
   NLL, ``toy_mc`` letter accuracy, per-layer Base-vs-SFT linear CKA of mean-pooled hidden states
   and per-layer weight change, all written to ``manifest.json``.

Layout of a build directory::

    <dir>/base/      config.json, generation_config.json, model.safetensors, tokenizer files
    <dir>/sft/       the same for the SFT model (identical tokenizer)
    <dir>/data/      the exact SFT training records and evaluation items (JSON lines)
    <dir>/manifest.json   settings, versions, thread count, sha256 of every file, timings, quality

Default location: ``$MBT_CACHE/toy/<name>`` if ``MBT_CACHE`` is set, else
``$XDG_CACHE_HOME/mbt/toy/<name>`` (``~/.cache/mbt/toy/<name>``), where ``<name>`` is
``<variant>-<size>-seed<seed>-<first 10 hex of the settings hash>`` (:func:`default_dir`).
A valid build with the same settings is reused (every file's sha256 is checked against the
manifest); a partial or corrupt one is reported with a warning and rebuilt. Builds go to a
temporary sibling directory that is renamed into place at the end, under a file lock.

Determinism: the same seed, settings, thread count (pinned to ``threads``, default 2, during the
build and recorded) and software give bit-identical weights on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbt import cpu, toydata

__all__ = [
    "ToyConfig",
    "SIZES",
    "VARIANTS",
    "RECIPE_VERSION",
    "build",
    "cache_root",
    "default_dir",
    "settings",
    "settings_hash",
    "check_build",
    "is_valid",
    "find_build",
]

log = logging.getLogger(__name__)

RECIPE_VERSION = 1
"""Bumped whenever the recipe changes in a way that changes the weights (part of the hash)."""

VARIANTS = toydata.VARIANTS
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>")  # ids 0, 1, 2
MANIFEST = "manifest.json"
_REQUIRED = ("base/config.json", "base/model.safetensors", "base/tokenizer.json",
             "sft/config.json", "sft/model.safetensors", "sft/tokenizer.json")
_BUILD_ENTRIES = {"base", "sft", "data", MANIFEST}


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


def _config(size: str | ToyConfig) -> ToyConfig:
    if isinstance(size, ToyConfig):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown toy size {size!r}; valid sizes: {', '.join(SIZES)}")
    return SIZES[size]


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown toy variant {variant!r}; valid variants: {', '.join(VARIANTS)}")


def settings(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy") -> dict[str, Any]:
    """The canonical settings of a build (what :func:`settings_hash` hashes)."""
    _check_variant(variant)
    cfg = _config(size)
    return {"recipe_version": RECIPE_VERSION, "seed": int(seed), "variant": variant,
            "size": cfg.name, "config": dataclasses.asdict(cfg)}


def settings_hash(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy") -> str:
    """sha256 (hex) of the canonical JSON of :func:`settings`."""
    blob = json.dumps(settings(seed=seed, size=size, variant=variant), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_root() -> Path:
    """``$MBT_CACHE`` if set, else ``$XDG_CACHE_HOME/mbt``, else ``~/.cache/mbt``."""
    if os.environ.get("MBT_CACHE"):
        return Path(os.environ["MBT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "mbt"


def default_dir(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy") -> Path:
    """``cache_root()/toy/<variant>-<size>-seed<seed>-<hash[:10]>``."""
    cfg = _config(size)
    h = settings_hash(seed=seed, size=cfg, variant=variant)[:10]
    return cache_root() / "toy" / f"{variant}-{cfg.name}-seed{seed}-{h}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_hashes(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(root).as_posix()] = {"sha256": _sha256(p), "bytes": p.stat().st_size}
    return out


def check_build(path: str | os.PathLike, *, expected_hash: str | None = None) -> str | None:
    """Why ``path`` is not a complete, intact toy build, or ``None`` if it is.

    Checks that the manifest exists and parses, that every required file is listed, and that
    every listed file exists with the recorded size and sha256. With ``expected_hash`` the
    manifest's ``settings_hash`` must also match.
    """
    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir():
        return f"{root} does not exist"
    if not mpath.is_file():
        return f"{mpath} is missing"
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        stored_hash = manifest["settings_hash"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return f"{mpath} is unreadable ({exc.__class__.__name__}: {exc})"
    if expected_hash is not None and stored_hash != expected_hash:
        return f"{root} was built with other settings (hash {stored_hash[:10]} != {expected_hash[:10]})"
    for rel in _REQUIRED:
        if rel not in files:
            return f"{root}: manifest does not list {rel}"
    for rel, meta in files.items():
        p = root / rel
        if not p.is_file():
            return f"{p} is missing"
        if p.stat().st_size != meta["bytes"]:
            return f"{p} has {p.stat().st_size} bytes, manifest says {meta['bytes']} (truncated?)"
        if _sha256(p) != meta["sha256"]:
            return f"{p} does not match its sha256 in the manifest"
    return None


def is_valid(path: str | os.PathLike, *, seed: int | None = None, size: str | ToyConfig | None = None,
             variant: str | None = None) -> bool:
    """Whether ``path`` holds an intact build (of the given settings, if any are given)."""
    expected = None
    if seed is not None or size is not None or variant is not None:
        expected = settings_hash(seed=0 if seed is None else seed, size=size or "default",
                                 variant=variant or "toy")
    return check_build(path, expected_hash=expected) is None


def find_build(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy",
               out_dir: str | os.PathLike | None = None) -> Path | None:
    """The directory of a valid build with these settings, or ``None`` (never builds)."""
    target = Path(out_dir) if out_dir is not None else default_dir(seed=seed, size=size, variant=variant)
    ok = check_build(target, expected_hash=settings_hash(seed=seed, size=size, variant=variant)) is None
    return target if ok else None


@contextlib.contextmanager
def _lock(target: Path) -> Iterator[None]:
    """An exclusive advisory lock next to ``target`` (no-op where ``fcntl`` is unavailable)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(target.parent / f".{target.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def build(out_dir: str | os.PathLike | None = None, *, seed: int = 0, size: str | ToyConfig = "default",
          variant: str = "toy", progress: bool = True, force: bool = False) -> Path:
    """Build (or reuse) the toy Base/SFT pair and return its directory.

    Args:
        out_dir: where the build lives; ``None`` = :func:`default_dir`. An existing directory
            must be empty, a toy build, or absent (nothing else is ever deleted).
        seed: seeds the corpus, the tasks' sampling, model init and data order.
        size: ``"default"``, ``"tiny"`` or a :class:`ToyConfig`.
        variant: ``"toy"`` (the Q/A format's vocabulary is new to Base) or ``"seen"`` (the
            pretraining text already contains "Question", "Answer", "####" and "?").
        progress: tqdm bars for the training stages.
        force: rebuild even if a valid build exists.

    Returns:
        The build directory (``base/``, ``sft/``, ``data/``, ``manifest.json``).
    """
    cfg = _config(size)
    _check_variant(variant)
    target = Path(out_dir).expanduser() if out_dir is not None else default_dir(
        seed=seed, size=cfg, variant=variant)
    expected = settings_hash(seed=seed, size=cfg, variant=variant)
    with _lock(target):
        if target.exists():
            problem = check_build(target, expected_hash=expected)
            if problem is None and not force:
                log.info("reusing toy build %s", target)
                return target
            extra = sorted(p.name for p in target.iterdir()) if target.is_dir() else [target.name]
            if not target.is_dir() or set(extra) - _BUILD_ENTRIES:
                raise FileExistsError(
                    f"{target} exists and is not a toy build (contains {extra[:5]}); "
                    "refusing to overwrite it")
            if problem is not None and extra:
                warnings.warn(f"toy build at {target} is invalid: {problem}; rebuilding",
                              RuntimeWarning, stacklevel=2)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            _run_build(tmp, cfg=cfg, seed=seed, variant=variant, progress=progress,
                       settings_hash=expected)
            if target.exists():
                old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _run_build(root: Path, *, cfg: ToyConfig, seed: int, variant: str, progress: bool,
               settings_hash: str) -> None:
    """Run the recipe in this process, or in a child process where threads could stall.

    With more than one thread, OpenMP's wait policy matters (:mod:`mbt.cpu`): on busy CPUs the
    default active waiting slows training down several-fold, on idle ones it is the fastest.
    The policy is read once, when torch loads, so when :func:`mbt.cpu.wait_policy` asks for
    another policy than this process has, the build runs in a child Python that gets it. The
    policy changes scheduling only, never results.
    """
    policy = cpu.wait_policy(cfg.threads)
    if cfg.threads == 1 or (policy or "").upper() == os.environ.get("OMP_WAIT_POLICY", "").upper():
        _build_into(root, cfg=cfg, seed=seed, variant=variant, progress=progress,
                    settings_hash=settings_hash)
        return
    payload = json.dumps({"root": str(root), "config": dataclasses.asdict(cfg), "seed": seed,
                          "variant": variant, "progress": progress, "settings_hash": settings_hash})
    env = dict(os.environ)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    else:
        env.pop("OMP_WAIT_POLICY", None)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-c", "import sys, mbt.toy; mbt.toy._worker(sys.argv[1])", payload]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail = ""
    try:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 4096):
            text = chunk.decode(errors="replace")
            tail = (tail + text)[-6000:]
            if progress:
                sys.stderr.write(text)
                sys.stderr.flush()
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"toy build worker failed with exit code {code}; its last output:\n{tail}")


def _worker(payload: str) -> None:
    """Entry point of the child process started by :func:`_run_build`."""
    args = json.loads(payload)
    fields = args["config"]
    fields["betas"] = tuple(fields["betas"])
    _build_into(Path(args["root"]), cfg=ToyConfig(**fields), seed=args["seed"],
                variant=args["variant"], progress=args["progress"], settings_hash=args["settings_hash"])


# --------------------------------------------------------------------------------------------
# The recipe
# --------------------------------------------------------------------------------------------


def _train_tokenizer(docs: Sequence[str], cfg: ToyConfig):
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


def _pack(docs: Iterator[str], tokenizer, n_tokens: int, *, chunk: int = 500) -> tuple[Any, int]:
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


def _olmo2(cfg: ToyConfig, tokenizer, seed: int):
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
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=cfg.betas, eps=1e-8, foreach=False)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


@contextlib.contextmanager
def _attn(model, impl: str) -> Iterator[None]:
    old = model.config._attn_implementation
    model.set_attn_implementation(impl)
    try:
        yield
    finally:
        model.set_attn_implementation(old)


def _pretrain_batches(flat, cfg: ToyConfig) -> list:
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
                 warmup: int, cfg: ToyConfig, stage: str, progress: bool) -> list[list[float]]:
    """AdamW steps on ``model(**batch_at(step)).loss`` with clipping; the loss curve every 10 steps.

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

    Returns:
        ``[[step, loss], …]`` at steps 0, 10, 20 … and the last step.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
    """
    import torch
    from tqdm.auto import tqdm

    opt, sched = _optimizer(model, lr, weight_decay, cfg, steps, warmup)
    curve: list[list[float]] = []
    model.train()
    bar = tqdm(range(steps), desc=f"toy {stage}", disable=not progress)
    for step in bar:
        loss = model(**batch_at(step), use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        value = loss.detach().item()
        if not math.isfinite(value):
            raise FloatingPointError(f"{stage} loss is {value} at step {step}")
        if step % 10 == 0 or step == steps - 1:
            curve.append([step, round(value, 4)])
            bar.set_postfix(loss=f"{value:.3f}")
    model.eval()
    return curve


def _pretrain(model, batches, cfg: ToyConfig, progress: bool) -> list[list[float]]:
    """Next-token pretraining on the packed blocks of :func:`_pretrain_batches`, one per step."""
    return _train_steps(model, lambda step: {"input_ids": batches[step], "labels": batches[step]},
                        steps=cfg.pt_steps, lr=cfg.pt_lr, weight_decay=cfg.pt_weight_decay, warmup=cfg.pt_warmup,
                        cfg=cfg, stage="pretraining", progress=progress)


def _sft_examples(tokenizer, math_items: Sequence[dict], mc_items: Sequence[dict]) -> list[tuple[list[int], int]]:
    """(ids, n_prompt) per record: ``prompt`` (with BOS) + ``" " + answer`` + EOS."""
    out = []
    eos = tokenizer.eos_token_id
    pairs = [(toydata.format_math(it, with_answer=False), it["answer"]) for it in math_items]
    pairs += [(toydata.format_mc(it, with_answer=False), toydata.LETTERS[it["answer"]]) for it in mc_items]
    prompts = tokenizer([p for p, _ in pairs])["input_ids"]
    answers = tokenizer([" " + a for _, a in pairs], add_special_tokens=False)["input_ids"]
    for p, a in zip(prompts, answers, strict=True):
        out.append((list(p) + list(a) + [eos], len(p)))
    return out


def _sft_batches(examples: Sequence[tuple[list[int], int]], cfg: ToyConfig, seed: int,
                 pad_id: int) -> Callable[[int], dict[str, Any]]:
    """Step → right-padded batch of SFT examples (shuffled epochs), loss on the answer tokens only."""
    import torch

    rng = random.Random(f"toy-sft/{seed}")
    order: list[int] = []

    def batch_at(step: int) -> dict[str, Any]:
        nonlocal order
        while len(order) < cfg.sft_batch:
            epoch = list(range(len(examples)))
            rng.shuffle(epoch)
            order += epoch
        idx, order = order[:cfg.sft_batch], order[cfg.sft_batch:]
        width = max(len(examples[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            seq, n_prompt = examples[i]
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            labels[r, n_prompt:len(seq)] = torch.tensor(seq[n_prompt:])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return batch_at


def _finetune(model, examples, cfg: ToyConfig, seed: int, pad_id: int, progress: bool) -> list[list[float]]:
    """Supervised fine-tuning on (prompt, answer) examples, no weight decay."""
    return _train_steps(model, _sft_batches(examples, cfg, seed, pad_id), steps=cfg.sft_steps, lr=cfg.sft_lr,
                        weight_decay=0.0, warmup=cfg.sft_warmup, cfg=cfg, stage="SFT", progress=progress)


# --------------------------------------------------------------------------------------------
# Quality measurements (small local helpers; the library's full versions live elsewhere)
# --------------------------------------------------------------------------------------------


def _pooled_states(model, tokenizer, texts: Sequence[str], batch_size: int = 50):
    """Mean-pooled residual stream per layer ``0..L`` (pre final norm): tensor (L+1, N, D) float64."""
    import torch

    layers = model.model.layers
    captured: list[Any] = []

    def hook(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    handles = [model.model.embed_tokens.register_forward_hook(hook)]
    handles += [layer.register_forward_hook(hook) for layer in layers]
    pooled = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = tokenizer(list(texts[i:i + batch_size]), return_tensors="pt", padding=True)
                captured.clear()
                model(**enc, use_cache=False)
                m = enc["attention_mask"].unsqueeze(-1).double()
                pooled.append(torch.stack([(h.double() * m).sum(1) / m.sum(1) for h in captured]))
    finally:
        tokenizer.padding_side = old_side
        for h in handles:
            h.remove()
    return torch.cat(pooled, dim=1)


def _weight_change(base, sft) -> list[dict[str, Any]]:
    sb, ss = base.state_dict(), sft.state_dict()
    rows = []
    for i in range(base.config.num_hidden_layers):
        row: dict[str, Any] = {"layer": i + 1}
        for group, names in (("attn", [f"self_attn.{m}_proj" for m in "qkvo"]),
                             ("mlp", [f"mlp.{m}_proj" for m in ("gate", "up", "down")])):
            keys = [f"model.layers.{i}.{n}.weight" for n in names]
            diff = math.sqrt(sum(float((ss[k].double() - sb[k].double()).pow(2).sum()) for k in keys))
            norm = math.sqrt(sum(float(sb[k].double().pow(2).sum()) for k in keys))
            row[f"{group}_abs"] = round(diff, 6)
            row[f"{group}_rel"] = round(diff / norm, 6)
        rows.append(row)
    return rows


def _mc_accuracy(model, tokenizer, items: Sequence[dict], shot_items: Sequence[dict] = (),
                 batch_size: int = 64) -> float:
    """Letter accuracy: the option whose answer " A".." D" has the highest log-likelihood.

    Each option's letter continuation is scored as a whole (sum of token log-probs), so letters
    that the tokenizer splits into several tokens are handled; padding is on the right.
    """
    import torch

    letters = [tokenizer(" " + c, add_special_tokens=False)["input_ids"] for c in toydata.LETTERS]
    prefix = "".join(toydata.format_mc(s) + "\n\n" for s in shot_items)
    prompts = tokenizer([prefix + toydata.format_mc(it, with_answer=False) for it in items])["input_ids"]
    seqs = [(list(p) + letters[k], len(p)) for p in prompts for k in range(4)]
    scores: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i:i + batch_size]
            width = max(len(s) for s, _ in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, (s, _) in enumerate(chunk):
                ids[r, :len(s)] = torch.tensor(s)
                mask[r, :len(s)] = 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float(), -1)
            for r, (s, n) in enumerate(chunk):
                tgt = torch.tensor(s[n:])
                scores.append(float(logp[r, n - 1:len(s) - 1].gather(-1, tgt[:, None]).sum()))
    correct = 0
    for j, it in enumerate(items):
        opts = scores[4 * j:4 * j + 4]
        correct += int(max(range(4), key=opts.__getitem__) == it["answer"])
    return correct / max(1, len(items))


def _quality(base, sft, tokenizer, cfg: ToyConfig, seed: int, progress: bool) -> dict[str, Any]:
    from mbt import evaluate, metrics

    test = toydata.toy_math("test", seed)[: cfg.eval_n]
    shots = toydata.toy_math("train", seed)[-cfg.eval_shots:]
    kw = dict(max_new_tokens=cfg.eval_max_new_tokens, batch_size=cfg.eval_batch, progress=progress)
    acc = {
        "base_0shot": evaluate.gsm8k_exact_match(base, tokenizer, test, **kw),
        f"base_{cfg.eval_shots}shot": evaluate.gsm8k_exact_match(
            base, tokenizer, test, shots=cfg.eval_shots, shot_items=shots, **kw),
        "sft_0shot": evaluate.gsm8k_exact_match(sft, tokenizer, test, **kw),
    }
    math_q: dict[str, Any] = {"n": len(test), "max_new_tokens": cfg.eval_max_new_tokens}
    math_q.update({k: round(float(df["correct"].mean()), 4) for k, df in acc.items()})
    best_base = max(v for k, v in math_q.items() if k.startswith("base_"))
    math_q["gap_points"] = round(100 * (math_q["sft_0shot"] - best_base), 2)
    math_q["examples"] = {k: df["generation"].head(3).tolist() for k, df in acc.items()}
    for name, model in (("base", base), ("sft", sft)):
        nll = evaluate.answer_nll(model, tokenizer, test, batch_size=cfg.eval_batch)
        math_q[f"{name}_answer_nll"] = round(float(nll["nll"].mean()), 4)

    mc_test = toydata.toy_mc("test", seed)[: cfg.eval_n]
    mc_shots = toydata.toy_mc("train", seed)[-cfg.eval_shots:]
    mc_q = {"n": len(mc_test), "chance": 0.25,
            "base_0shot": round(_mc_accuracy(base, tokenizer, mc_test), 4),
            f"base_{cfg.eval_shots}shot": round(_mc_accuracy(base, tokenizer, mc_test, mc_shots), 4),
            "sft_0shot": round(_mc_accuracy(sft, tokenizer, mc_test), 4)}

    texts = [toydata.format_math(it) for it in test]
    hb = _pooled_states(base, tokenizer, texts, cfg.eval_batch)
    hs = _pooled_states(sft, tokenizer, texts, cfg.eval_batch)
    cka = [round(metrics.cka(hb[layer], hs[layer]), 4) for layer in range(hb.shape[0])]
    return {
        "toy_math": math_q,
        "toy_mc": mc_q,
        "cka": {"layers": list(range(len(cka))), "values": cka,
                "texts": f"toy_math test[:{len(test)}] formatted with answers",
                "pooling": "mean over real tokens, residual stream before the final norm"},
        "weight_change": _weight_change(base, sft),
        "bars": {"math_gap_ge_40_points": math_q["gap_points"] >= 40},
    }


def _versions() -> dict[str, str]:
    import numpy
    import tokenizers
    import torch
    import transformers

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"python": sys.version.split()[0], "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "numpy": numpy.__version__, "platform": platform.platform(), "cpu": cpu}


def _write_jsonl(path: Path, records: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def _build_into(root: Path, *, cfg: ToyConfig, seed: int, variant: str, progress: bool,
                settings_hash: str) -> None:
    import copy

    import torch

    from mbt.pairs import hf_progress_bars

    t_start, c_start = time.perf_counter(), time.process_time()
    timings: dict[str, float] = {}
    cpu_s: dict[str, float] = {}
    c_last = [c_start]

    def lap(name: str, t0: float) -> float:
        # wall time depends on what else the machine runs; process CPU time (all threads) does not
        timings[name] = round(time.perf_counter() - t0, 2)
        cpu_s[name] = round(time.process_time() - c_last[0], 2)
        c_last[0] = time.process_time()
        log.info("toy build: %s took %.1f s", name, timings[name])
        return time.perf_counter()

    root.mkdir(parents=True)
    with cpu.pinned_threads(cfg.threads):
        t = time.perf_counter()
        tok_docs = toydata.corpus(seed, n_docs=cfg.tokenizer_docs, variant=variant, pydoc_frac=cfg.pydoc_frac)
        docs = toydata.iter_corpus(seed, variant=variant, pydoc_frac=cfg.pydoc_frac, drill_docs=cfg.drill_docs)
        math_train = toydata.toy_math("train", seed)[: cfg.sft_math]
        mc_train = toydata.toy_mc("train", seed)[: cfg.sft_mc]
        t = lap("data", t)

        tokenizer = _train_tokenizer(tok_docs, cfg)
        t = lap("tokenizer", t)

        n_tokens = cfg.pt_steps * cfg.pt_batch * cfg.seq_len
        flat, n_docs = _pack(docs, tokenizer, n_tokens)
        batches = _pretrain_batches(flat, cfg)
        corpus_sha = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
        t = lap("packing", t)

        base = _olmo2(cfg, tokenizer, seed)
        with _attn(base, cfg.attn):
            pt_curve = _pretrain(base, batches, cfg, progress)
        t = lap("pretrain", t)

        sft = copy.deepcopy(base)
        examples = _sft_examples(tokenizer, math_train, mc_train)
        torch.manual_seed(seed + 1)
        with _attn(sft, cfg.attn):
            sft_curve = _finetune(sft, examples, cfg, seed, tokenizer.pad_token_id, progress)
        t = lap("sft", t)

        for name, model in (("base", base), ("sft", sft)):
            with hf_progress_bars(progress):
                model.save_pretrained(root / name)
            tokenizer.save_pretrained(root / name)
        _write_jsonl(root / "data" / "sft_math.jsonl", math_train)
        _write_jsonl(root / "data" / "sft_mc.jsonl", mc_train)
        _write_jsonl(root / "data" / "eval_math.jsonl", toydata.toy_math("test", seed)[: cfg.eval_n])
        t = lap("save", t)

        quality = _quality(base, sft, tokenizer, cfg, seed, progress)
        t = lap("quality", t)

    timings["total"] = round(time.perf_counter() - t_start, 2)
    cpu_s["total"] = round(time.process_time() - c_start, 2)
    n_params = sum(p.numel() for p in base.parameters())
    manifest = {
        "mbt_toy_manifest": 1,
        "settings_hash": settings_hash,
        **settings(seed=seed, size=cfg, variant=variant),
        "threads": cfg.threads,
        "versions": _versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"architecture": "Olmo2ForCausalLM", "n_params": n_params,
                  "vocab_size": len(tokenizer), "special_tokens": list(SPECIAL_TOKENS),
                  "bos_prepended": True},
        "data": {"corpus_docs_read": n_docs, "pretrain_tokens": n_tokens,
                 "pretrain_token_sha256": corpus_sha, "pydoc_paragraphs": len(toydata.pydoc_paragraphs()),
                 "sft_records": len(examples), "sft_math": len(math_train), "sft_mc": len(mc_train),
                 "sft_tokens_per_epoch": sum(len(s) for s, _ in examples),
                 "world_seed": toydata.WORLD_SEED},
        "training": {"pretrain_loss": pt_curve, "sft_loss": sft_curve},
        "timings_s": timings,
        "cpu_s": cpu_s,
        "quality": quality,
        "files": _file_hashes(root),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
