r"""Build the offline toy pair: a small OLMo2 Base model and its SFT version, on a laptop CPU.

:func:`build` runs the whole recipe from a seed, with no network:

1. **data** -- a procedurally generated pretraining corpus (:mod:`mbt.toy.corpus`: small-world
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

Default location: ``<cache root>/toy/<name>`` (:func:`mbt.results.cache_root`: ``$MBT_CACHE``, else
``$XDG_CACHE_HOME/mbt``, else ``~/.cache/mbt``), where ``<name>`` is
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
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mbt import cpu, train
from mbt.loading import hf_progress_bars
from mbt.results import cache_root, file_sha256
from mbt.toy import corpus
from mbt.toy import quality as toy_quality
from mbt.toy.recipe import (
    SPECIAL_TOKENS,
    ToyConfig,
    check_variant,
    config_of_size,
    finetune,
    new_model,
    pack,
    pretrain,
    pretrain_batches,
    settings,
    settings_hash,
    sft_compute,
    sft_examples,
    train_tokenizer,
)
from mbt.workers import watch_parent

__all__ = ["NotAToyBuildError", "build", "check_build", "default_dir", "find_build", "is_valid"]

log = logging.getLogger("mbt.toy")

MANIFEST = "manifest.json"
_REQUIRED = ("base/config.json", "base/model.safetensors", "base/tokenizer.json",
             "sft/config.json", "sft/model.safetensors", "sft/tokenizer.json")
_BUILD_ENTRIES = {"base", "sft", "data", MANIFEST}


def default_dir(*, seed: int = 0, size: str | ToyConfig = "default", variant: str = "toy") -> Path:
    """``cache_root()/toy/<variant>-<size>-seed<seed>-<hash[:10]>``."""
    cfg = config_of_size(size)
    h = settings_hash(seed=seed, size=cfg, variant=variant)[:10]
    return cache_root() / "toy" / f"{variant}-{cfg.name}-seed{seed}-{h}"


def _file_hashes(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(root).as_posix()] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
    return out


def check_build(path: str | os.PathLike, *, expected_hash: str | None = None) -> str | None:
    """Why ``path`` is not a complete, intact toy build, or ``None`` if it is.

    Checks that the manifest exists and parses into the expected shape (a damaged manifest is a
    reason, never an exception), that every required file is listed, and that every listed file
    exists with the recorded size and sha256. With ``expected_hash`` the
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
        if not isinstance(stored_hash, str) or not isinstance(files, dict):
            raise TypeError("'settings_hash' must be text and 'files' a mapping")
        for rel, meta in files.items():
            if not (isinstance(meta, dict) and isinstance(meta.get("bytes"), int)
                    and isinstance(meta.get("sha256"), str)):
                raise TypeError(f"the entry of {rel!r} lacks an integer 'bytes' or a text 'sha256'")
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
        if file_sha256(p) != meta["sha256"]:
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


class NotAToyBuildError(FileExistsError):
    """``out_dir`` exists and holds something other than a toy build; nothing is overwritten."""


def _refuse_foreign(target: Path) -> list[str] | None:
    """The entries of an existing ``target`` (``None`` if absent); raise if it is not (a start of) a toy build."""
    if not target.exists():
        return None
    extra = sorted(p.name for p in target.iterdir()) if target.is_dir() else [target.name]
    if not target.is_dir() or set(extra) - _BUILD_ENTRIES:
        kind = "a folder" if target.is_dir() else "a file"
        raise NotAToyBuildError(f"{target} exists and is {kind} that is not a toy build (contains {extra[:5]}); "
                                "refusing to overwrite it: pass an empty or new folder to --out")
    return extra


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

    Raises:
        NotAToyBuildError: ``out_dir`` is a file, or a folder holding anything but a toy build's
            entries (a ``FileExistsError``); checked before anything is written next to it.
    """
    cfg = config_of_size(size)
    check_variant(variant)
    target = Path(out_dir).expanduser() if out_dir is not None else default_dir(
        seed=seed, size=cfg, variant=variant)
    expected = settings_hash(seed=seed, size=cfg, variant=variant)
    _refuse_foreign(target)  # before the lock, so a refused folder's parent gets no lock file
    with _lock(target):
        if target.exists():
            problem = check_build(target, expected_hash=expected)
            if problem is None and not force:
                log.info("reusing toy build %s", target)
                return target
            extra = _refuse_foreign(target)  # again: the folder may have changed while we waited
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
    """Run the recipe in this process, or in a child process where its threads would wait badly.

    With more than one thread, how OpenMP threads wait matters (:mod:`mbt.cpu`): ``import mbt`` sets
    a bounded spin that stays fast whether or not other processes compete for the cores. libgomp
    reads it once, when torch loads, so when torch was imported before ``mbt``
    (:func:`mbt.cpu.needs_child`) the build runs in a child Python that gets it
    (:func:`mbt.cpu.omp_environment`). The wait changes scheduling only, never results.
    """
    if not cpu.needs_child(cfg.threads):
        _build_into(root, cfg=cfg, seed=seed, variant=variant, progress=progress,
                    settings_hash=settings_hash)
        return
    payload = json.dumps({"root": str(root), "config": dataclasses.asdict(cfg), "seed": seed,
                          "variant": variant, "progress": progress, "settings_hash": settings_hash,
                          "parent": os.getpid()})
    env = dict(os.environ)
    for key, value in cpu.omp_environment(cfg.threads).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    package_parent = str(Path(__file__).resolve().parents[2])  # the folder holding the mbt package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-c", "import sys, mbt.toy.builder as b; b._worker(sys.argv[1])", payload]
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
    """Entry point of the child process started by :func:`_run_build` (it ends if its parent is killed)."""
    args = json.loads(payload)
    if args.get("parent"):
        watch_parent(args["parent"])
    fields = args["config"]
    fields["betas"] = tuple(fields["betas"])
    _build_into(Path(args["root"]), cfg=ToyConfig(**fields), seed=args["seed"],
                variant=args["variant"], progress=args["progress"], settings_hash=args["settings_hash"])


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
        tok_docs = corpus.corpus(seed, n_docs=cfg.tokenizer_docs, variant=variant, pydoc_frac=cfg.pydoc_frac)
        docs = corpus.iter_corpus(seed, variant=variant, pydoc_frac=cfg.pydoc_frac, drill_docs=cfg.drill_docs)
        math_train = corpus.toy_math("train", seed)[: cfg.sft_math]
        mc_train = corpus.toy_mc("train", seed)[: cfg.sft_mc]
        t = lap("data", t)

        tokenizer = train_tokenizer(tok_docs, cfg)
        t = lap("tokenizer", t)

        n_tokens = cfg.pt_steps * cfg.pt_batch * cfg.seq_len
        flat, n_docs = pack(docs, tokenizer, n_tokens)
        batches = pretrain_batches(flat, cfg)
        corpus_sha = hashlib.sha256(flat.numpy().tobytes()).hexdigest()
        t = lap("packing", t)

        base = new_model(cfg, tokenizer, seed)
        with train.attention(base, cfg.attn):
            pt_curve = pretrain(base, batches, cfg, progress)
        t = lap("pretrain", t)

        sft = copy.deepcopy(base)
        examples = sft_examples(tokenizer, math_train, mc_train)
        torch.manual_seed(seed + 1)
        with train.attention(sft, cfg.attn):
            sft_curve = finetune(sft, examples, cfg, seed, tokenizer.pad_token_id, progress)
        t = lap("sft", t)

        for name, model in (("base", base), ("sft", sft)):
            with hf_progress_bars(progress):
                model.save_pretrained(root / name)
            tokenizer.save_pretrained(root / name)
        _write_jsonl(root / "data" / "sft_math.jsonl", math_train)
        _write_jsonl(root / "data" / "sft_mc.jsonl", mc_train)
        _write_jsonl(root / "data" / "eval_math.jsonl", corpus.toy_math("test", seed)[: cfg.eval_n])
        t = lap("save", t)

        quality = toy_quality.quality(base, sft, tokenizer, cfg, seed, progress)
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
                 "pretrain_token_sha256": corpus_sha, "pydoc_paragraphs": len(corpus.pydoc_paragraphs()),
                 "sft_records": len(examples), "sft_math": len(math_train), "sft_mc": len(mc_train),
                 "sft_tokens_per_epoch": sum(len(s) for s, _ in examples),
                 "sft_compute": sft_compute(cfg, examples, seed),
                 "world_seed": corpus.WORLD_SEED},
        "training": {"pretrain_loss": pt_curve, "sft_loss": sft_curve},
        "timings_s": timings,
        "cpu_s": cpu_s,
        "quality": quality,
        "files": _file_hashes(root),
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
