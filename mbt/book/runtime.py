r"""The chapter runtime: what every chapter notebook calls, so that notebooks hold narrative and calls only.

* set-up and the pair: :func:`setup_notebook`, :func:`open_pair`, :func:`default_datasets`;
* one quick-mode rule: :data:`QUICK`, :func:`quick_size`, :func:`sizes`, :data:`QUICK_SWEEP`;
* experiments with stored results, keyed by the call itself (:func:`mbt.identity.cached_call`):
  :func:`analyze_datasets`, :func:`analyze_halves`, :func:`logit_lens_table`;
* the LoRA sweep chapters 6 and 7 share (:func:`lora_sweep`, :class:`LoraSweep`);
* chapter 10's scores in three formats (:func:`knowledge_prompts`, :func:`knowledge_scores`,
  :func:`knowledge_ladder`, :func:`knowledge_swaps`), stored by the call like the analyses.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mbt import knowledge, plots
from mbt.analysis import analyze
from mbt.book.figures import describe_figures
from mbt.data import load_sample
from mbt.identity import cached_call
from mbt.pairs import load_pair, pair_label
from mbt.paper.records import slug
from mbt.paper.render import store_problems_markdown
from mbt.paper.store import StoreEntry, contributed_root, store_problems, store_root, stores
from mbt.probe import logit_lens
from mbt.results import cache_root
from mbt.segments import PAPER_MASKS, resolve_masks
from mbt.swap import swap_sweep, token_accuracy
from mbt.toy import LADDER
from mbt.tune import LoraSettings, sweep
from mbt.weights import block_series
from mbt.workers import check_workers

__all__ = [
    "QUICK",
    "QUICK_SWEEP",
    "CLI_NOTES",
    "DropLines",
    "LoraSweep",
    "analyze_datasets",
    "analyze_halves",
    "comparison_stores",
    "default_comparison",
    "default_datasets",
    "device_name",
    "knowledge_ladder",
    "knowledge_pairs",
    "knowledge_prompts",
    "knowledge_scores",
    "knowledge_swaps",
    "lens_curve",
    "logit_lens_table",
    "lora_sweep",
    "metric_table",
    "open_pair",
    "quick_size",
    "reader_notes",
    "setup_notebook",
    "sizes",
    "swap_table",
    "sweep_path",
    "weights_curve",
]


def setup_notebook(*, quiet: bool = True) -> str:
    """First call of every chapter: the book's figure style, quiet progress bars, and the device in use.

    Applies :func:`mbt.plots.use_style`; makes every figure carry its description as alt text
    (:func:`mbt.book.figures.describe_figures`); hides tqdm's "IProgress not found" warning and the
    checkpoint-loading progress bars; and turns warnings into what a reader of the page needs
    (:func:`reader_notes`): a warning from ``mbt`` or from the chapter becomes a sentence ("Note: …")
    without the file path of the machine that ran it, and a library's internal warning is left out; and
    drops from standard error the one-line notes meant for the command line (:data:`CLI_NOTES`: a result
    served from the cache, a sweep already done), which name the machine's cache folders.
    Prints the device and returns ``"cuda"`` when a GPU is visible, else ``"cpu"``. It does not choose a
    matplotlib backend.
    """
    plots.use_style()
    describe_figures()
    if quiet:
        warnings.filterwarnings("ignore", message="IProgress not found")
        reader_notes()
        if not isinstance(sys.stderr, DropLines):  # the command line's cache notes name the machine's folders
            sys.stderr = DropLines(sys.stderr, CLI_NOTES)
        with contextlib.suppress(ImportError):
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()  # e.g. generation-length reminders of tiny models
    device = device_name()
    if device == "cuda":
        import torch

        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"device: cuda ({names})")
    else:
        print("device: cpu (no GPU visible; the toy pair runs in minutes, real pairs need a GPU)")
    return device


_PACKAGE = Path(__file__).resolve().parents[1]  # the mbt package

CLI_NOTES: tuple[str, ...] = ("mbt: cached ", "mbt: sweep: ")
"""Starts of the lines ``mbt`` prints to standard error for a command-line user (cache hits, a resumed sweep)."""


class DropLines:
    """A text stream that passes everything on to ``stream`` except whole lines starting with ``prefixes``.

    Text is passed on line by line (a partial line waits for its end, or for :meth:`flush` when it cannot
    become one of the dropped lines), so a dropped line is recognised even when written in pieces.
    """

    def __init__(self, stream: Any, prefixes: Sequence[str]) -> None:
        self._stream = stream
        self._prefixes = tuple(prefixes)
        self._pending = ""

    def _drops(self, line: str) -> bool:
        return line.startswith(self._prefixes)

    def _may_become_dropped(self, partial: str) -> bool:
        return any(p.startswith(partial) or partial.startswith(p) for p in self._prefixes)

    def write(self, text: str) -> int:
        """Pass on the complete lines of ``text`` (with what was pending) that are not dropped."""
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        kept = [line for line in lines if not self._drops(line)]
        if kept:
            self._stream.write("\n".join(kept) + "\n")
        return len(text)

    def flush(self) -> None:
        """Pass on a pending partial line unless it may still become a dropped one; flush the stream."""
        if self._pending and not self._may_become_dropped(self._pending):
            self._stream.write(self._pending)
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)



def _note(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
          line: str | None = None) -> None:
    """:func:`warnings.showwarning` for the book's pages (see :func:`reader_notes`)."""
    if not issubclass(category, UserWarning) or issubclass(category, DeprecationWarning | FutureWarning):
        return
    origin = Path(str(filename))
    ours = _PACKAGE in origin.resolve().parents if origin.is_absolute() else False
    from_chapter = "ipykernel" in str(filename) or str(filename).startswith("<")  # a notebook cell
    if ours or from_chapter:
        text = " ".join(str(message).split())
        print(f"Note: {text[0].upper() + text[1:] if text else text}", file=file or sys.stdout)


def reader_notes() -> None:
    """Show warnings as a page reader needs them, for the rest of this process.

    A :class:`UserWarning` raised by ``mbt`` or by the chapter's own code is printed to standard output as
    one sentence, ``"Note: <message>"`` (e.g. that some texts were truncated to the models' positions),
    without the file and line that Python's default format adds; every other warning (a library's
    deprecation notices, tqdm's missing widgets, …) is left out of the page.
    """
    warnings.showwarning = _note


def device_name() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def open_pair(pair: str = "toy", base: str | None = "", sft: str | None = "", *, device_map: str | None = "",
              **kwargs: Any) -> Any:
    """Load the chapter's pair: ``base``/``sft`` (folders or Hub ids) when both are given, else ``pair``.

    Empty strings count as "not given", so a papermill parameters cell can default them to ``""``.

    Args:
        pair: Registry name (the toy pair is built if missing).
        base: Base model folder or Hub id.
        sft: SFT model folder or Hub id.
        device_map: ``"auto"`` (or a dict) spreads each model over the visible GPUs (and CPU); empty:
            one device, the GPU when there is one.
        **kwargs: More :func:`mbt.load_pair` arguments (``max_memory=``, ``dtype=``, ``device=``, ...).
    """
    kwargs.setdefault("progress", False)
    if device_map:
        kwargs["device_map"] = device_map
    if base or sft:
        if not (base and sft):
            raise ValueError("give both base= and sft= (or neither, to use pair=)")
        return load_pair(base=str(base), sft=str(sft), **kwargs)
    return load_pair(pair, **kwargs)


def analyze_datasets(pair: Any, datasets: Sequence[str], *, n_pooled: int, n_token: int, seed: int = 0,
                     conventions: str = "standard", metrics: str | Sequence[str] = "all", batch_size: int = 8,
                     max_length: int = 512, cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.analyze` on a seeded sample of each dataset, one table with a ``dataset`` column.

    Chapters that ask for the same datasets, sizes, seed and conventions share one cached result.

    Args:
        pair: The loaded pair.
        datasets: Dataset names (:data:`mbt.data.DATASETS`).
        n_pooled: Pooled samples per dataset (paper: 1,000; fewer when the split is smaller).
        n_token: Token-level samples, the first ``n_token`` of the pooled ones (paper: 100; 0 for
            pooled-only datasets).
        seed: Sampling seed.
        conventions: ``"standard"`` or ``"paper"``.
        metrics: ``"all"`` or names (see :data:`mbt.analysis.ALL_METRICS`).
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse stored results.
    """
    frames = []
    for name in datasets:
        sample = load_sample(name, n_pooled=n_pooled, n_token=n_token, seed=seed, allow_fewer=True)
        frame = analyze(pair, sample.texts, n_token=sample.n_token, metrics=metrics, conventions=conventions,
                        batch_size=batch_size, max_length=max_length, cache=cache, progress=False)
        frames.append(frame.assign(dataset=name))
    return pd.concat(frames, ignore_index=True)


def analyze_halves(pair: Any, dataset: str, *, n_pooled: int, seed: int = 0, conventions: str = "standard",
                   metrics: Sequence[str] = ("cka", "cosine_similarity", "mean_shift"), batch_size: int = 8,
                   max_length: int = 512, cache: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pair metrics on two disjoint halves of a dataset's seeded sample (even and odd positions).

    Two independent samples of texts, unlike the authors' "seed" check, which re-ran identical forward
    passes; also valid when the split is smaller than ``n_pooled`` (then any two seeds would draw the same
    texts).
    """
    texts = load_sample(dataset, n_pooled=n_pooled, n_token=0, seed=seed, allow_fewer=True).texts
    if len(texts) < 8:
        raise ValueError(f"{dataset}: {len(texts)} texts are too few to split into two halves")
    return tuple(  # type: ignore[return-value]
        analyze(pair, half, n_token=0, metrics=list(metrics), conventions=conventions, batch_size=batch_size,
                max_length=max_length, cache=cache, progress=False).assign(dataset=dataset)
        for half in (texts[0::2], texts[1::2])
    )


def logit_lens_table(pair: Any, texts: Sequence[str], *, positions: str = "all", batch_size: int = 8,
                     max_length: int = 512, cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.probe.logit_lens` for Base and SFT, with the final norm once and twice (the released code's bug).

    Returns:
        The four tables stacked with a ``model`` column (``"base"``/``"sft"``); the library's ``paper``
        column tells the lens variants apart. Cached (:func:`mbt.identity.cached_call`).
    """
    def compute(pair: Any, texts: Sequence[str], positions: str, max_length: int) -> pd.DataFrame:
        parts = []
        for role, model in pair.models().items():
            for paper in (False, True):
                lens = logit_lens(model, texts, positions=positions, paper=paper, batch_size=batch_size,
                                  max_length=max_length, progress=False)
                parts.append(lens.assign(model=role))
        return pd.concat(parts, ignore_index=True)

    compute.__qualname__ = "logit_lens_table"
    return cached_call(compute, pair, list(texts), positions, max_length, cache=cache)


QUICK: dict[str, int] = {"n_pooled": 32, "n_token": 8, "n_samples": 16, "n_calibration": 16,
                         "finetune_texts": 16, "finetune_steps": 3, "n_unrelated": 16, "n_steer": 8, "n_task": 12,
                         "equal_steps": 25, "sft_train": 16, "n_items": 16, "n_swap": 8}
"""Quick mode's caps on every chapter's sample sizes (``quick=True``, ``mbt book --quick``): a smoke run."""

QUICK_SWEEP: dict[str, Any] = {"masks": ("00000", "11111", "01100"), "n_seeds": 1, "steps": 2, "n_train": 16,
                               "n_test": 8, "n_retention": 8, "batch_size": 8, "eval_batch_size": 8}
"""Quick mode's LoRA sweep (chapters 6 and 7): three masks, one seed, two steps."""


def swap_table(pair: Any, texts: Sequence[str], *, n_segments: int = 5, depth: int | None = 2, seed: int = 0,
               batch_size: int = 8, max_length: int = 512, cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.swap.swap_sweep` scored by next-token accuracy on ``texts`` (:func:`mbt.swap.token_accuracy`); stored.

    Args:
        pair: The loaded pair.
        texts: Scored texts.
        n_segments: Equal segments of the depth.
        depth: Blocks swapped at the end of each segment (``None``: the whole segment).
        seed: Bootstrap seed of the paired intervals.
        batch_size: Texts per forward pass (results do not depend on it).
        max_length: Tokens per text.
        cache: Reuse a stored result.
    """
    def compute(pair: Any, texts: Sequence[str], n_segments: int, depth: int | None, seed: int,
                max_length: int) -> pd.DataFrame:
        score = token_accuracy(pair.tokenizer, texts, batch_size=batch_size, max_length=max_length)
        return swap_sweep(pair, score, n_segments=n_segments, depth=depth, seed=seed, progress=False)

    compute.__qualname__ = "swap_table"
    return cached_call(compute, pair, list(texts), n_segments, depth, seed, max_length, cache=cache)


def quick_size(name: str, value: int, quick: bool) -> int:
    """``value``, or in quick mode ``min(value, QUICK[name])`` (the one quick-mode rule of the book)."""
    if name not in QUICK:
        raise ValueError(f"no quick-mode size {name!r}; known: {', '.join(QUICK)}")
    return min(int(value), QUICK[name]) if quick else int(value)


def sizes(n_pooled: int, n_token: int, quick: bool) -> tuple[int, int]:
    """Sample sizes for a chapter: as given, or capped by :data:`QUICK` in quick mode."""
    return quick_size("n_pooled", n_pooled, quick), quick_size("n_token", n_token, quick)


def default_datasets(pair: Any, purpose: str = "analysis") -> list[str]:
    """The datasets a chapter uses when the reader gives none.

    Args:
        pair: A :class:`~mbt.pairs.ModelPair` or :class:`~mbt.pairs.PairSpec`.
        purpose: ``"analysis"`` (Figs. 1–2: a math and a knowledge task, and plain text),
            ``"probing"`` (MMLU, as Fig. 3), ``"swapping"`` (MMLU, as Fig. 6), ``"finetune"`` (GSM8K,
            as Figs. 4 and 7) or ``"unrelated"`` (text unrelated to the SFT data, chapter 9: WikiText; toy pairs
            ``toy-text``). Toy pairs use ``toy-math`` for the first three: the task their SFT learned.

    Returns:
        Toy task names for the toy pairs and for pairs built by :mod:`mbt.toy` (folders with a toy
        manifest), the paper's Hub datasets otherwise.
    """
    spec = getattr(pair, "spec", pair)
    toy = getattr(spec, "family", "") == "toy" or _is_toy_folder(getattr(spec, "base", ""))
    if purpose in ("probing", "swapping"):
        # the toy SFT data are math word problems: its MMLU stand-in (toy-mc) is near chance for both models
        return ["toy-math"] if toy else ["mmlu"]
    if purpose == "finetune":
        return ["toy-math"] if toy else ["gsm8k"]
    if purpose == "unrelated":
        return ["toy-text"] if toy else ["wikitext"]
    if purpose != "analysis":
        raise ValueError("purpose must be 'analysis', 'probing', 'swapping', 'finetune' or 'unrelated', "
                         f"got {purpose!r}")
    return ["toy-math", "toy-mc", "toy-text"] if toy else ["gsm8k", "mmlu", "wikitext"]


def _is_toy_folder(path: str) -> bool:
    manifest = Path(str(path)).parent / "manifest.json"
    try:
        return manifest.is_file() and "mbt_toy_manifest" in json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return False


def lens_curve(lens: pd.DataFrame) -> pd.DataFrame:
    """Per-layer logit-lens top-1 accuracy of both models, final norm once: ``model, layer, depth, value``.

    Args:
        lens: A :func:`logit_lens_table` (both lens variants stacked).
    """
    rows = lens[(lens["metric"] == "top1_acc") & ~lens["paper"].astype(bool)]
    return rows.assign(value=rows["pooled"])[["model", "layer", "depth", "value"]].reset_index(drop=True)


def weights_curve(diff: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """The Eq. 1 weight change per block, absolute and relative: ``block, depth, eq1_abs, eq1_relative``.

    ``depth = block / L`` (block ``l`` writes layer ``l``); ``eq1_relative = Σ‖ΔW‖_F / Σ‖W_Base‖_F`` over
    q, k, v, o (:func:`mbt.weights.block_series`).
    """
    rel = block_series(diff, kind="eq1", column="relative")
    absolute = block_series(diff, kind="eq1", column="delta_fro")
    return pd.DataFrame({"block": rel.index.astype(int), "depth": rel.index.astype(float) / n_layers,
                         "eq1_abs": absolute.reindex(rel.index).to_numpy(), "eq1_relative": rel.to_numpy()})


def _store_roots(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Where results stores are read from, in order: the local store, ``extra``, the checkout's ``results/``."""
    return [store_root(), *map(Path, extra), contributed_root(Path(__file__).resolve().parents[2])]


def comparison_stores(names: Sequence[str], *, quick: bool = False,
                      extra: Sequence[str | Path] = ()) -> tuple[dict[str, StoreEntry], list[str]]:
    """The results stores of the pairs a cross-pair chapter compares, and the names that have none.

    Looks in the local store (:func:`mbt.paper.store.store_root`), then in ``extra`` folders, then in the
    contributed stores of the checkout ``mbt`` runs from (``results/`` beside the ``mbt`` package); the first
    store found for a label wins.

    Args:
        names: Pair labels, in the order to show them.
        quick: Read smoke-run stores.
        extra: More folders holding store folders.
    """
    found = stores(_store_roots(extra), quick=quick)
    return {n: found[n] for n in names if n in found}, [n for n in names if n not in found]


def store_problems_note(*, extra: Sequence[str | Path] = ()) -> Any:
    """The stores left out, shown in part or under another label, and why: Markdown for a chapter to display.

    The same list, read the same way (:func:`mbt.paper.store.store_problems`), as under the collected "Paper vs
    ours" table, so the two pages agree on what exists; empty when every store is fine.
    """
    text = store_problems_markdown(store_problems(_store_roots(extra)))
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)


def default_comparison(pair: str, *, quick: bool = False, extra: Sequence[str | Path] = ()) -> list[str]:
    """The pairs the cross-pair chapter compares when none are named.

    The SFT-intensity ladder (:data:`mbt.toy.LADDER`) when the book's pair is one of its rungs, else every
    pair with results in a store (local, ``extra``, contributed), the book's pair first.
    """
    if pair in LADDER:
        return list(LADDER)
    found = stores(_store_roots(extra), quick=quick)
    return [pair] * (pair in found) + [name for name in found if name != pair]


def metric_table(frame: pd.DataFrame, *, model: str = "sft") -> pd.DataFrame:
    """Wide per-layer table of an analyze result: the pair metrics and one model's own metrics.

    Columns are plain metric names (``cka``, ``cosine_similarity``, ``mean_shift``, ``effective_rank``,
    …), the index is the layer. The input for :func:`mbt.correlate.layer_correlations`.
    """
    pair = frame[(frame["model"] == "pair") & (frame["aggregation"] == "alignment")]
    own = frame[frame["model"] == model]
    both = pd.concat([pair, own])
    return both.pivot_table(index="layer", columns="metric", values="value", sort=False)


def sweep_path(pair: Any) -> Path:
    """Where a pair's LoRA sweep results live: ``<cache root>/book/sweeps/<pair>.parquet`` (one file per pair)."""
    return cache_root() / "book" / "sweeps" / f"{slug(pair_label(pair))}.parquet"


@dataclass(frozen=True)
class LoraSweep:
    """The LoRA sweep chapters 6 and 7 share: one object, so both read and write the same stored table.

    Attributes:
        task: Training and test task.
        masks: Segment masks.
        seeds: Training seeds.
        settings: The adapter and training recipe of every run (:class:`~mbt.tune.settings.LoraSettings`).
        options: The other :func:`mbt.tune.sweep` arguments (``n_test``, ``threads``, ``workers``, ...).
    """

    task: str
    masks: tuple[str, ...]
    seeds: tuple[int, ...]
    settings: LoraSettings
    options: Mapping[str, Any]

    def run(self, pair: Any, masks: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> pd.DataFrame:
        """Run, resume or just read the sweep for ``pair`` (:func:`mbt.tune.sweep` in :func:`sweep_path`).

        ``masks``/``seeds`` run other masks or seeds with the same settings into the same table (e.g. the
        3- and 10-segment families of Appendix A); default: this sweep's own.
        """
        masks = list(self.masks if masks is None else masks)
        seeds = [int(s) for s in (self.seeds if seeds is None else seeds)]
        return sweep(pair, masks, seeds, out=sweep_path(pair), task=self.task, settings=self.settings,
                     progress=False, **self.options)

    def record(self) -> dict[str, Any]:
        """What produced the sweep's findings, for the chapter's records: task, seeds, LoRA settings, options."""
        return {"task": self.task, "seeds": list(self.seeds), "lora": self.settings.as_dict(), **self.options}

    def describe(self) -> str:
        """One line: task, masks × seeds, the settings that differ from the defaults, options."""
        default = LoraSettings().as_dict()
        changed = {k: v for k, v in self.settings.as_dict().items() if v != default[k]}
        return (f"task {self.task}; {len(self.masks)} masks × {len(self.seeds)} seeds; LoRA settings "
                f"{changed or 'default'}; options {dict(self.options)}")


def lora_sweep(pair: Any, *, task: str = "", masks: Sequence[str] = (), seeds: Sequence[int] = (0, 1, 2),
               preset: str = "standard", rank: int = 0, steps: int = 0, n_test: int = 200, threads: int = 1,
               workers: int = 0, quick: bool = False) -> LoraSweep:
    """The chapters' LoRA sweep from their parameters cell (empty / 0 = the library's default).

    Args:
        pair: The loaded pair (sets the default task: GSM8K, or ``toy-math`` for toy pairs).
        task: Training and test task.
        masks: 5-segment masks (empty: the paper's ten, :data:`mbt.segments.PAPER_MASKS`).
        seeds: Seeds per mask.
        preset: The LoRA preset: ``"standard"`` (constant α/r) or ``"paper"``.
        rank: Full-depth LoRA rank that sets the budget (0: the library's default).
        steps: Optimiser steps per run (0: the library's default).
        n_test: Held-out problems per run.
        threads: Pinned CPU threads per run (CPU results are bit-identical only for the same count).
        workers: Runs side by side on the CPU (0: as many as fit, see :func:`mbt.tune.sweep`); the
            results do not depend on it.
        quick: :data:`QUICK_SWEEP` instead of the full sweep.
    """
    task = task or default_datasets(pair, "finetune")[0]
    mask_list = tuple(resolve_masks(list(masks))) if masks else PAPER_MASKS
    seed_list = tuple(int(s) for s in seeds)
    if not seed_list:
        raise ValueError("give at least one seed")
    knobs = LoraSettings.of(preset=preset, **({"rank": int(rank)} if rank else {}),
                            **({"steps": int(steps)} if steps else {}))
    options: dict[str, Any] = {"n_test": int(n_test), "threads": threads, "workers": check_workers(workers)}
    if quick:
        q = dict(QUICK_SWEEP)
        mask_list, seed_list = tuple(q.pop("masks")), seed_list[: q.pop("n_seeds")]
        knobs = LoraSettings.of(knobs, **{k: q.pop(k) for k in ("steps", "n_train", "batch_size")})
        options.update(q)
    return LoraSweep(task=task, masks=mask_list, seeds=seed_list, settings=knobs, options=options)


# ---- chapter 10: knowledge or format ------------------------------------------------------------------


def knowledge_prompts(task: str, n_items: int, shots: int = knowledge.OWN_SHOTS) -> dict[str, knowledge.PromptSet]:
    """The chapter's prompt sets: ``n_items`` held-out problems of ``task`` in the three formats.

    A real task's own format takes ``shots`` solved problems of its training split
    (:func:`mbt.knowledge.shot_examples`); the toy's needs none.
    """
    knowledge.check_settings(task=task, n_items=n_items, shots=shots)
    items = knowledge.held_out_items(task, n_items)
    shot_items = [] if knowledge.is_toy_task(task) else knowledge.shot_examples(task, shots)
    return knowledge.prompt_sets(task, items, shots=shots, shot_items=shot_items)


def _plain(sets: Mapping[str, knowledge.PromptSet]) -> dict[str, Any]:
    return {name: ps.as_dict() for name, ps in sets.items()}


def _sets(plain: Mapping[str, Mapping[str, Any]]) -> dict[str, knowledge.PromptSet]:
    return {name: knowledge.PromptSet(d["name"], tuple(d["prompts"]), tuple(d["targets"]), d["match"],
                                      tuple(int(i) for i in d["items"])) for name, d in plain.items()}


def knowledge_scores(pair: Any, sets: Mapping[str, knowledge.PromptSet], *, batch_size: int = 50,
                     cache: bool = True) -> pd.DataFrame:
    """Per-problem exact match of the Base and the SFT model in every format (:func:`mbt.knowledge.score_model`).

    Each model's scores are stored by its weights and the prompts (:func:`mbt.identity.cached_call`), so the
    ladder's rungs, which share one Base, score it once.

    Returns:
        Columns ``format``, ``item``, ``correct``, ``generation``, ``target``, ``model``.
    """
    def compute(model: Any, tokenizer: Any, sets: Mapping[str, Any]) -> pd.DataFrame:
        return knowledge.score_model(model, tokenizer, _sets(sets), batch_size=batch_size)

    compute.__qualname__ = "knowledge_scores"
    return pd.concat([cached_call(compute, model, pair.tokenizer, _plain(sets), cache=cache).assign(model=role)
                      for role, model in pair.models().items()], ignore_index=True)


def knowledge_pairs(pair: Any) -> list[str]:
    """The pairs chapter 10 compares: the SFT-intensity ladder when the pair is one of its rungs, else the pair."""
    label = pair_label(pair)
    return list(LADDER) if label in LADDER else [label]


def _sft_steps(pair: Any) -> float:
    """SFT steps of a toy build (its manifest), NaN for other pairs."""
    spec = pair.spec
    if getattr(spec, "toy_sft_steps", None):
        return float(spec.toy_sft_steps)
    manifest = Path(str(spec.base)).parent / "manifest.json"
    if _is_toy_folder(str(spec.base)):
        return float(json.loads(manifest.read_text()).get("config", {}).get("sft_steps", float("nan")))
    return float("nan")


def knowledge_ladder(pair: Any, names: Sequence[str], sets: Mapping[str, knowledge.PromptSet], *,
                     batch_size: int = 50, device: str | None = None, cache: bool = True) -> pd.DataFrame:
    """:func:`knowledge_scores` of every pair in ``names`` (the loaded ``pair`` reused for its own name).

    The other pairs are loaded one at a time (:func:`open_pair`, on ``device``) and let go after scoring.

    Returns:
        The per-problem rows with ``pair`` and ``sft_steps`` (NaN where unknown) columns.
    """
    frames = []
    label = pair_label(pair)
    for name in names:
        other = pair if name == label else open_pair(name, device=device)
        try:
            scores = knowledge_scores(other, sets, batch_size=batch_size, cache=cache)
            frames.append(scores.assign(pair=name, sft_steps=_sft_steps(other)))
        finally:
            if other is not pair:
                del other
    return pd.concat(frames, ignore_index=True)


def knowledge_swaps(pair: Any, sets: Mapping[str, knowledge.PromptSet], *, n_swap: int, n_segments: int = 5,
                    heads: Sequence[str] = ("receiver",), seed: int = 0, batch_size: int = 50,
                    cache: bool = True) -> pd.DataFrame:
    """:func:`mbt.knowledge.swap_sweeps` on the first ``n_swap`` problems of ``sets``; stored by the call.

    Returns:
        The sweeps' rows with ``score_name``, ``format`` and the per-problem ``scores`` of every row.
    """
    knowledge.check_settings(n_swap=n_swap, n_segments=n_segments, batch_size=batch_size)
    wanted = {name: sets[name].head(n_swap) for name in knowledge.SWAP_SCORES.values()}

    def compute(pair: Any, sets: Mapping[str, Any], n_segments: int, heads: Sequence[str], seed: int) -> pd.DataFrame:
        return knowledge.swap_sweeps(pair, _sets(sets), n_segments=n_segments, heads=heads, seed=seed,
                                     batch_size=batch_size)

    compute.__qualname__ = "knowledge_swaps"
    return cached_call(compute, pair, _plain(wanted), n_segments, list(heads), seed, cache=cache)
