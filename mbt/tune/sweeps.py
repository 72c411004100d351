r"""Sweeps of segment masks × seeds: train, score, store, resume (the paper's Fig. 7 and Appendices A–B).

:func:`sweep` trains :func:`~mbt.tune.lora.train_lora` for every mask and seed, scores each run with
:func:`~mbt.tune.scoring.evaluate_tuned` and keeps one row per run in a table that a rerun resumes;
``"00000"`` means "no adapter" (the Base model evaluated untrained). :func:`summarize_sweep` reduces it
to one row per mask.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mbt import data, knowledge
from mbt.cpu import pinned_threads
from mbt.identity import folder_fingerprint, model_fingerprint
from mbt.loading import load_causal_lm, path_dtype
from mbt.pairs import PAIRS, ModelPair, resolve_toy
from mbt.results import atomic_write, file_lock, make_key, read_csv_table, tree_sha256
from mbt.segments import PAPER_MASKS, resolve_masks
from mbt.trace import unwrap
from mbt.tune.config import config_of
from mbt.tune.lora import train_lora
from mbt.tune.scoring import check_retention_paths, default_retention, evaluate_tuned
from mbt.tune.settings import LoraSettings
from mbt.workers import check_workers, side_by_side, slots

__all__ = ["SIDE_BY_SIDE_PARAMS", "SWEEP_COLUMNS", "read_table", "split_paths", "summarize_sweep", "sweep",
           "write_table"]

SWEEP_COLUMNS: tuple[str, ...] = (
    "base", "task", "mask", "n_segments", "layers", "n_layers_tuned", "preset", "rank", "alpha", "scale",
    "rslora", "trainable_params", "baseline_params", "budget_ratio", "seed", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "accuracy_items", "arithmetic", "arithmetic_ci_low", "arithmetic_ci_high", "answer_nll",
    "answer_nll_ci_low", "answer_nll_ci_high", "ppl_text", "ppl_text_before",
    "ppl_text_change", "ppl_instruct", "ppl_instruct_before", "ppl_instruct_change", "final_loss", "n_test",
    "steps", "lr", "batch_size", "n_train", "loss_on", "train_seconds", "seconds", "threads", "device",
    "settings_key", "finished_at",
)
"""Columns of the table :func:`sweep` writes and returns."""


def _resolve_base(pair_or_base: Any, tokenizer: Any, device: str | None) -> tuple[Any, Any, str, dict[str, Any]]:
    """``(source, tokenizer, label, fingerprint)``; ``source`` is a folder/Hub id or a model to copy.

    The fingerprint identifies the Base's weights the same way however it is given: a pair, a model
    loaded from a folder, or the folder itself (then in the dtype :func:`~mbt.loading.load_causal_lm`
    loads it in on ``device``) all give :func:`~mbt.identity.folder_fingerprint`, so a sweep resumes
    from rows another route wrote.
    """
    import torch

    if isinstance(pair_or_base, ModelPair):
        module = unwrap(pair_or_base.base)
        return module, pair_or_base.tokenizer, pair_or_base.spec.name, {"base": model_fingerprint(module)}
    if isinstance(pair_or_base, torch.nn.Module) or hasattr(pair_or_base, "_module"):
        if tokenizer is None:
            raise ValueError("give tokenizer= with a model object")
        module = unwrap(pair_or_base)
        src = str(getattr(module.config, "_name_or_path", "") or "")
        return module, tokenizer, Path(src).name or type(module).__name__, {"base": model_fingerprint(module)}
    name = str(pair_or_base)
    if name in PAIRS:
        spec = PAIRS[name]
        base = resolve_toy(spec).base if spec.source == "toy" else spec.base
        name_label = name
    else:
        base, name_label = name, Path(name).name
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
    fp: dict[str, Any] = {"base": base}
    if Path(base).is_dir():  # the weights' content, not their file names and sizes
        fp = {"base": folder_fingerprint(base, path_dtype(device))}
    return base, tokenizer, name_label, fp


DataPath = str | Path | Mapping[str, str | Path] | None
"""A sweep's local data: one path for both splits (a folder with split files), or ``{"train": ..., "test": ...}``."""


def split_paths(task: str, data_path: DataPath) -> tuple[str | Path | None, str | Path | None]:
    """``(train path, test path)`` of a sweep's ``data_path``, refused when both splits would read the same data.

    Args:
        task: The training and test task (:data:`mbt.data.DATASETS`).
        data_path: ``None`` (the Hub or the generator), one path used for both splits (a folder holding
            ``train`` and ``test`` files, or a saved ``DatasetDict``), or a mapping with the keys ``"train"``
            and/or ``"test"`` (a missing key: that split from the Hub or the generator).

    Returns:
        The two paths (``None`` where the split is not local).

    Raises:
        ValueError: Unknown mapping keys, or training and test data that are the same source
            (:func:`mbt.data.check_distinct_sources`), e.g. one single file given for both splits.
        FileNotFoundError: A path that does not exist.
    """
    if isinstance(data_path, Mapping):
        unknown = sorted(set(data_path) - {"train", "test"})
        if unknown:
            raise ValueError(f"data_path keys must be 'train' and 'test', got {unknown}")
        train, test = data_path.get("train"), data_path.get("test")
    else:
        train = test = data_path
    spec = data.get_spec(task)
    data.check_distinct_sources(data.source_of(spec, split=data.training_split(spec), path=train),
                                data.source_of(spec, split=spec.split, path=test))
    return train, test


def _file_digest(path: str | Path | None) -> Any:
    """What identifies a local data path's content for the settings key (``None`` stays ``None``)."""
    if path is None:
        return None
    return {"path": str(Path(path).resolve()), "sha256": tree_sha256(path)}


def read_table(out: Path) -> pd.DataFrame:
    """The results table at ``out`` (empty if absent); a corrupt file is moved aside with a warning."""
    for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left behind by a killed atomic write
        stale.unlink(missing_ok=True)
    if not out.exists():
        return pd.DataFrame(columns=list(SWEEP_COLUMNS))
    try:
        if out.suffix == ".parquet":
            frame = pd.read_parquet(out)
        else:
            frame = read_csv_table(out)
        missing = {"mask", "seed", "settings_key"} - set(frame.columns)
        if missing:
            raise ValueError(f"missing columns {sorted(missing)}")
        frame["mask"] = frame["mask"].astype(str)
        return frame
    except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside, never deleted
        aside = out.with_name(f"{out.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        warnings.warn(f"sweep results {out} are unreadable ({exc}); moved to {aside.name} and starting afresh",
                      RuntimeWarning, stacklevel=3)
        return pd.DataFrame(columns=list(SWEEP_COLUMNS))


def write_table(out: Path, frame: pd.DataFrame) -> None:
    """Write a table atomically as Parquet or CSV, chosen by ``out``'s suffix."""
    if out.suffix == ".parquet":
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))


def sweep(
    pair_or_base: Any = "toy",
    masks: str | Iterable[str] = PAPER_MASKS,
    seeds: Iterable[int] = (0, 1, 2),
    *,
    out: str | Path,
    settings: LoraSettings | None = None,
    tokenizer: Any = None,
    task: str = "toy-math",
    n_test: int = 200,
    eval_batch_size: int = 50,
    retention: Mapping[str, str] | None = None,
    n_retention: int = 100,
    threads: int | None = 2,
    workers: int = 1,
    device: str | None = None,
    data_path: DataPath = None,
    retention_paths: Mapping[str, str | Path] | None = None,
    progress: bool = True,
    **changes: Any,
) -> pd.DataFrame:
    """Train and evaluate every mask × seed; resumable; returns the tidy table of this configuration.

    Each run starts from a fresh copy of the Base model (reloaded from its folder, or deep-copied),
    trains with :func:`train_lora` and is scored with :func:`evaluate_tuned`. An all-zero mask is
    "no adapter": the Base model itself is evaluated (once; its row is repeated for every seed, so
    per-mask summaries treat it like the others). The Base model's retention perplexities are the
    "before" values of every run.

    Resuming: rows are keyed by ``(mask, seed, settings_key)``, where ``settings_key`` hashes every
    setting that changes a result (the Base model's weights by content, task, budget, scale, optimiser,
    data, evaluation and its batch sizes, thread count). A run whose key is already in ``out`` is
    skipped (one line on stderr says how many: ``mbt: sweep: k of n runs already in <out>, resuming``);
    rows of other settings in the same file are kept. After each run the row is appended under
    a file lock (:func:`mbt.results.file_lock`) and the table rewritten atomically (temporary file +
    rename), so a killed sweep leaves the last complete table and two sweeps on the same file lose no
    row; stale temporary files are removed and an unreadable table is moved aside
    (``<out>.corrupt-<time>``) with a warning. Every mask is checked against the model's depth and
    every count against its range before anything is loaded or trained.

    Args:
        pair_or_base: a pair name (``"toy"`` builds the toy pair if needed; its Base is tuned), a
            :class:`~mbt.pairs.ModelPair`, a Base folder / Hub id, or a model (with ``tokenizer``).
        masks: masks or a family name from :data:`mbt.segments.MASK_FAMILIES` (or a comma-separated string).
        seeds: training seeds (data order and adapter init).
        out: results table, ``.parquet`` or ``.csv``.
        tokenizer: tokenizer of a model object (loaded from the folder otherwise).
        settings: the adapter and training recipe of every run (:class:`~mbt.tune.settings.LoraSettings`).
        task: training and evaluation task.
        n_test: held-out items for accuracy and answer NLL.
        eval_batch_size: batch size of the evaluation.
        retention: ``{name: dataset}`` for the retention perplexities (see :func:`evaluate_tuned`).
        n_retention: texts per retention dataset.
        threads: pinned ``torch.set_num_threads`` for the whole sweep (recorded; CPU LoRA results
            depend on it). ``None`` leaves the current setting.
        workers: runs side by side, each in its own process on ``threads`` threads
            (:func:`mbt.workers.side_by_side`); results are those of the same runs one at a time.
            ``0`` chooses: on the CPU, for a Base of under :data:`SIDE_BY_SIDE_PARAMS` parameters, as
            many as fit the CPUs (``cpus // threads``), else 1. More than 1 needs a pair name, a model
            folder, or a pair loaded in float32 from a local folder (each worker loads the Base from it;
            a model object cannot be sent to another process).
        device: see :func:`train_lora`.
        data_path: local copy of the task's data instead of the Hub or the generator: one path for both
            splits (a folder with ``train`` and ``test`` files, or a saved ``DatasetDict``) or
            ``{"train": path, "test": path}``. One single file for both splits is refused
            (:func:`split_paths`): the model would be tested on its training data.
        retention_paths: ``{name: path}`` local copies of retention sets by retention name (see
            :func:`evaluate_tuned`).
        progress: progress bars.
        **changes: fields of ``settings`` to change, e.g. ``steps=60, preset="paper"``.

    Returns:
        DataFrame with columns :data:`SWEEP_COLUMNS`, one row per requested ``(mask, seed)`` of
        this configuration, in the order of ``masks`` then ``seeds``.
    """
    import torch

    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"out must end in .parquet or .csv, got {out.name!r}")
    mask_list = resolve_masks(masks)
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("no seeds given")
    knobs = LoraSettings.of(settings, **changes)
    _check_counts(n_test=n_test, eval_batch_size=eval_batch_size, n_retention=n_retention, threads=threads)
    check_workers(workers)
    train_path, test_path = split_paths(task, data_path)
    retention_sets = dict(retention) if retention is not None else default_retention(task)
    check_retention_paths(retention_sets, retention_paths)
    source, tokenizer, label, fingerprint = _resolve_base(pair_or_base, tokenizer, device)
    shared = source if isinstance(source, str | Path) else _folder_of(pair_or_base)  # what a worker can load
    if workers > 1 and shared is None:
        raise ValueError("workers > 1 needs a pair name, a pair loaded from a local folder in float32, or a model "
                         "folder: a model object cannot be sent to another process")
    n_layers = int(config_of(_peek_config(source)).num_hidden_layers)
    resolve_masks(mask_list, n_layers=n_layers)  # every mask fits this depth, before anything trains
    # version 3: train_lora trains from the cached frozen prefix (mbt.tune.prefix; other float rounding)
    # version 4: on a CPU a batch runs as two length-sorted pieces (mbt.tune.lora.micro_batch; other rounding)
    # version 5: every LoRA setting (mbt.tune.settings.LoraSettings) is part of the key, by mbt.results.make_key
    # version 6: every run is also scored on the arithmetic alone (mbt.knowledge; column arithmetic)
    # version 7: every run keeps its per-problem scores (column accuracy_items; crossed seed × problem intervals)
    key_settings = {
        "version": 7, "base": fingerprint, "task": task, "lora": knobs.as_dict(), "n_test": n_test,
        "eval_batch_size": eval_batch_size, "retention": retention_sets, "n_retention": n_retention,
        "threads": threads, "device": device,
    }
    local = {"train": _file_digest(train_path), "test": _file_digest(test_path),
             **{f"retention_{k}": _file_digest(v) for k, v in sorted((retention_paths or {}).items())}}
    if any(v is not None for v in local.values()):
        key_settings["local_data"] = local
    key = make_key(key_settings)

    def finished() -> tuple[pd.DataFrame, set[tuple[str, int]]]:
        """The table as it is now (other writers included) and the runs of this configuration it holds."""
        if not out.exists():  # nothing to resume: a sweep that fails before its first row leaves no lock file
            return pd.DataFrame(columns=list(SWEEP_COLUMNS)), set()
        with file_lock(out):
            current = read_table(out)
        done = {(str(m), int(s)) for m, s, k in zip(current["mask"], current["seed"], current["settings_key"],
                                                    strict=True) if k == key}
        return current, done

    table, done = finished()
    requested = [(m, s) for m in mask_list for s in seed_list]
    already = sum(run in done for run in requested)
    if already:  # a resume is visible, like a cache hit (mbt.results.cached)
        print(f"mbt: sweep: {already} of {len(requested)} runs already in {out}, "
              + ("nothing to run" if already == len(requested) else "resuming"), file=sys.stderr)
    own_shots = _own_shots(task, train_path)
    base_row: dict[str, Any] | None = None
    prior = table[(table["settings_key"] == key) & table["mask"].map(lambda m: set(str(m)) == {"0"})]
    if len(prior):
        base_row = prior.iloc[0].to_dict()

    def base_eval() -> dict[str, Any]:
        nonlocal base_row
        if base_row is None:
            model = load_causal_lm(source, device=device, copy_model=True, progress=progress)
            metrics = evaluate_tuned(model, tokenizer, task, n_test=n_test, batch_size=eval_batch_size,
                                     retention=retention, n_retention=n_retention, data_path=test_path,
                                     retention_paths=retention_paths, own_shot_items=own_shots, progress=progress)
            base_row = {**metrics, "seconds": metrics["eval_seconds"]}
            del model
        return base_row

    common = {"base": label, "task": task, "preset": knobs.preset, "steps": knobs.steps, "lr": knobs.lr,
              "batch_size": knobs.batch_size, "n_train": knobs.n_train, "loss_on": knobs.loss_on, "settings_key": key}

    def keep(row: dict[str, Any]) -> None:
        nonlocal table
        table = _append(out, pd.DataFrame([{c: row.get(c) for c in SWEEP_COLUMNS}]), key)

    with pinned_threads(threads):
        n_threads = torch.get_num_threads()
        todo = [run for run in requested if run not in done]
        for mask, seed in [run for run in todo if set(run[0]) == {"0"}]:
            start = time.perf_counter()
            metrics = base_eval()
            keep({"layers": "", "n_layers_tuned": 0, "rank": 0, "alpha": math.nan, "scale": math.nan,
                  "rslora": knobs.rslora, "trainable_params": 0, "baseline_params": math.nan, "budget_ratio": 0.0,
                  "final_loss": math.nan, "train_seconds": 0.0, "device": device or "",
                  **{k: metrics.get(k) for k in _METRIC_KEYS}, **common, "mask": mask, "n_segments": len(mask),
                  "seed": seed, "seconds": time.perf_counter() - start, "threads": n_threads,
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        trained = [run for run in todo if set(run[0]) != {"0"}]
        if trained:
            n_workers = workers or _auto_workers(shared, n_threads, device, len(trained))
            if n_workers > 1:  # longest first, so that no worker is left alone with a long run at the end
                trained.sort(key=lambda run: _run_cost(run[0]), reverse=True)
            options = {
                "out": out, "key": key, "source": source if n_workers == 1 else shared, "tokenizer": tokenizer,
                "before": base_eval(),
                "common": common, "threads": n_threads,
                "train": {"settings": knobs, "task": task, "device": device, "data_path": train_path},
                "score": {"n_test": n_test, "batch_size": eval_batch_size, "retention": retention,
                          "n_retention": n_retention, "data_path": test_path, "retention_paths": retention_paths,
                          "own_shot_items": own_shots},
                "progress": progress and n_workers == 1,
            }
            side_by_side(_train_and_score, [{"mask": m, "seed": s, **options} for m, s in trained],
                         workers=n_workers, threads=n_threads, progress=progress and n_workers > 1,
                         desc=f"LoRA sweep ({n_workers} side by side)",
                         on_result=lambda _i, row: None if row is None else keep(row))
    table, _ = finished()  # with every row, also those another process added meanwhile
    mine = table[table["settings_key"] == key]
    mine = mine[mine["mask"].isin(mask_list) & mine["seed"].astype(int).isin(seed_list)]
    order = {m: i for i, m in enumerate(mask_list)}
    mine = mine.assign(_o=mine["mask"].map(order), seed=mine["seed"].astype(int))
    mine = mine.sort_values(["_o", "seed"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return mine[[c for c in SWEEP_COLUMNS if c in mine.columns]]


def _train_and_score(*, mask: str, seed: int, out: Path, key: str, source: Any, tokenizer: Any,
                     before: dict[str, Any], common: dict[str, Any], threads: int, train: dict[str, Any],
                     score: dict[str, Any], progress: bool) -> dict[str, Any] | None:
    """One trained run of :func:`sweep` as a table row, or ``None`` when the table already holds it.

    Module-level so that :func:`mbt.workers.side_by_side` can run it in another process.
    """
    with file_lock(out):
        current = read_table(out)
    if ((current["settings_key"] == key) & (current["mask"].astype(str) == mask)
            & (current["seed"].astype(int) == seed)).any():
        return None  # another process finished this run meanwhile
    start = time.perf_counter()
    model, info = train_lora(source, tokenizer, mask, seed=seed, progress=progress, **train)
    metrics = evaluate_tuned(model, tokenizer, train["task"], before=before, progress=progress, **score)
    del model
    return {"layers": ",".join(map(str, info["layers"])), "n_layers_tuned": info["n_layers_tuned"],
            "rank": info["rank"], "alpha": info["alpha"], "scale": info["scale"], "rslora": info["rslora"],
            "trainable_params": info["trainable_params"], "baseline_params": info["baseline_params"],
            "budget_ratio": info["trainable_params"] / info["baseline_params"], "final_loss": info["final_loss"],
            "train_seconds": info["train_seconds"], "device": info["device"],
            **{k: metrics.get(k) for k in _METRIC_KEYS}, **common, "mask": mask, "n_segments": len(mask),
            "seed": seed, "seconds": time.perf_counter() - start, "threads": threads,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


SIDE_BY_SIDE_PARAMS = 100_000_000
"""Largest Base (parameters, from its config) for which ``workers=0`` runs several CPU runs side by side."""


def _run_cost(mask: str) -> tuple[int, int]:
    """A run's expected cost, for ordering: how deep the backward pass goes, then how many segments adapt.

    Gradients flow from the output down to the lowest adapted layer, so ``10000`` costs about as much
    as ``11111`` and ``00001`` the least (measured on the toy pair: 58–140 s per run).
    """
    return len(mask) - mask.index("1"), mask.count("1")


def _folder_of(pair_or_base: Any) -> str | None:
    """The local Base folder of a pair loaded from it in float32 on the CPU (its weights, for a worker), or ``None``."""
    import torch

    if not isinstance(pair_or_base, ModelPair) or not Path(pair_or_base.spec.base).is_dir():
        return None
    module = unwrap(pair_or_base.base)
    params = next(module.parameters(), None)
    if params is None or params.dtype != torch.float32 or params.device.type != "cpu":
        return None
    return str(pair_or_base.spec.base)


def _auto_workers(source: str | Path | None, threads: int, device: str | None, jobs: int) -> int:
    """``workers=0``: CPU runs of a small model side by side as the CPUs allow, otherwise one at a time."""
    import torch

    on_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")) != "cpu"
    if on_gpu or source is None:
        return 1
    config = config_of(_peek_config(source))
    d, n_layers = int(config.hidden_size), int(config.num_hidden_layers)
    ffn = int(getattr(config, "intermediate_size", 4 * d) or 4 * d)
    params = n_layers * (4 * d * d + 3 * d * ffn) + int(config.vocab_size) * d
    return slots(threads, jobs=jobs) if params < SIDE_BY_SIDE_PARAMS else 1


_METRIC_KEYS = (
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_items", "arithmetic", "arithmetic_ci_low",
    "arithmetic_ci_high", "answer_nll", "answer_nll_ci_low", "answer_nll_ci_high",
    "ppl_text", "ppl_text_before", "ppl_text_change", "ppl_instruct", "ppl_instruct_before", "ppl_instruct_change",
    "n_test",
)


def _own_shots(task: str, train_path: str | Path | None) -> list[dict] | None:
    """The solved training problems of a real question/answer task's own format (``None``: none needed)."""
    spec = data.get_spec(task)
    if spec.kind != "qa" or knowledge.is_toy_task(task):
        return None
    return knowledge.shot_examples(spec.name, knowledge.OWN_SHOTS, path=train_path)


def _check_counts(**counts: int | None) -> None:
    """Refuse a count below 1 (``None`` means "the default") before any model is loaded."""
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


def _append(out: Path, row: pd.DataFrame, key: str) -> pd.DataFrame:
    """Add one finished run to the table at ``out`` under its file lock, unless a writer already added it.

    Two sweeps writing the same file both keep every row: each append re-reads the file while holding
    :func:`mbt.results.file_lock`, and the rewrite is atomic.
    """
    with file_lock(out):
        table = read_table(out)
        same = ((table["settings_key"] == key) & (table["mask"].astype(str) == str(row["mask"].iloc[0]))
                & (table["seed"].astype(int) == int(row["seed"].iloc[0])))
        if not same.any():
            table = row if table.empty else pd.concat([table, row], ignore_index=True)
            write_table(out, table)
    return table


def _peek_config(source: Any) -> Any:
    """The config of a model object, or read from a folder / Hub id without loading weights."""
    import torch

    if isinstance(source, torch.nn.Module):
        return source.config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(source))


def summarize_sweep(frame: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "answer_nll")) -> pd.DataFrame:
    """Per mask: seeds, mean and standard deviation over seeds of each metric, and the budget columns.

    Also ``<metric>_vs_best`` = mean minus the best mask's mean (in the metric's own direction:
    accuracy higher, NLL lower) and ``<metric>_seed_sd`` = the mean seed-to-seed standard deviation
    over masks, so a reader can see whether mask differences exceed seed noise.
    """
    if frame.empty:
        return pd.DataFrame()
    frame = frame.assign(mask=frame["mask"].astype(str))
    order = list(dict.fromkeys(frame["mask"]))
    grouped = frame.groupby("mask", sort=False)
    out = pd.DataFrame({"mask": order})
    out["n_seeds"] = out["mask"].map(grouped["seed"].nunique())
    for col in ("rank", "alpha", "scale", "trainable_params"):
        if col in frame.columns:
            out[col] = out["mask"].map(grouped[col].first())
    for metric in metrics:
        mean = out["mask"].map(grouped[metric].mean())
        sd = out["mask"].map(grouped[metric].std(ddof=1))
        out[f"{metric}_mean"], out[f"{metric}_sd"] = mean, sd
        best = mean.min() if "nll" in metric else mean.max()
        out[f"{metric}_vs_best"] = mean - best
        out.attrs[f"{metric}_seed_sd"] = float(sd.mean()) if sd.notna().any() else math.nan
    for col in ("ppl_text_change", "ppl_instruct_change", "train_seconds"):
        if col in frame.columns:
            out[f"{col}_mean"] = out["mask"].map(grouped[col].mean())
    return out


