r"""Weight change per block and per module: checkpoint diffs (paper Eq. 1) and an own fine-tune.

Two measurements, one table format.

* :func:`weight_change` diffs the official Base and SFT checkpoints, tensor by tensor, straight from
  their safetensors files (sharded or not): ``‖W_sft − W_base‖_F`` and ``‖ΔW‖_F / ‖W_base‖_F``
  per parameter tensor of every decoder block. Only one tensor (in row chunks for big ones) of each
  checkpoint is in memory at a time; models are never loaded. This is the quantity the paper
  *defines* (§3.2, Eq. 1); the authors' code never computed it (the book's appendix "The released code").
* :func:`finetune_weight_change` is the quantity the authors' code *plotted* (Fig. 4): fine-tune
  the Base model on some texts and record how far every tensor moved and its gradient norms, done
  right (fp32 master weights, loss on real tokens only, a real number of optimiser steps).

**Block index**: ``block = l`` in ``1..L`` is the decoder block whose output is hidden-state layer
``l`` (:mod:`mbt.trace`), i.e. ``layers.{l-1}`` in the checkpoint's ``ModuleList``. A weight-change
series indexed by block therefore aligns with per-layer metrics on the same index
(:func:`mbt.correlate.layer_correlations`); ``depth = block / L``.

Rows (:data:`COLUMNS`): one per parameter tensor (``kind`` = ``q``, ``k``, ``v``, ``o``, ``qkv``
for fused projections, ``gate``, ``up``, ``down``, ``gate_up``, ``norm`` or ``other``, see
:func:`module_kind`), plus three aggregate rows per block:

* ``kind="eq1"`` — the paper's Eq. 1 as its text describes it: the **sum of the Frobenius norms**
  ``Σ_{W ∈ {W_Q, W_K, W_V, W_O}} ‖ΔW‖_F`` over the attention projection *weights* (biases excluded;
  a fused ``qkv`` weight counts as one term), with ``base_fro = Σ ‖W_base‖_F`` and
  ``relative = delta_fro / base_fro``. (Not the norm of the concatenation.)
* ``kind="block"`` — the Frobenius norm of the whole block's change, ``sqrt(Σ ‖ΔW‖_F²)`` over the
  selected tensors (and likewise for ``base_fro``).
* ``kind="block_mean"`` — the authors' aggregator: the plain mean of ``‖ΔW‖_F`` over every selected
  tensor of the block (q, k, v, o, MLP and norm weights alike), as in ``13_gradient_flow_analysis.py``.

Columns: ``block`` (nullable int, ``<NA>`` outside the blocks), ``depth = block / L``, ``module``
(path inside the block, e.g. ``self_attn.q_proj``; for ``eq1`` the kinds summed, e.g. ``q+k+v+o``),
``param`` (tensor name inside the block, e.g. ``self_attn.q_proj.weight``), ``kind``, ``numel``,
``delta_fro`` (``‖W_sft − W_base‖_F``), ``base_fro`` (``‖W_base‖_F``) and ``relative``
(``delta_fro / base_fro``; for ``block_mean`` the ratio of the two means; NaN where ``base_fro = 0``).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mbt import trace, train
from mbt.checks import require_finite, require_finite_parameters
from mbt.loading import is_load_failure, load_failure
from mbt.pairs import ModelPair, PairSpec

__all__ = [
    "AGGREGATE_KINDS",
    "ATTENTION_KINDS",
    "COLUMNS",
    "block_series",
    "checkpoint_folder",
    "finetune_weight_change",
    "module_kind",
    "weight_change",
]

COLUMNS: tuple[str, ...] = (
    "block", "depth", "module", "param", "kind", "numel", "delta_fro", "base_fro", "relative",
)
ATTENTION_KINDS: tuple[str, ...] = ("q", "k", "v", "qkv", "o")
AGGREGATE_KINDS: tuple[str, ...] = ("eq1", "block", "block_mean")

_BLOCK_KEY = re.compile(r"^(?P<container>(?:.*\.)?(?:layers|h|blocks|block|layer))\.(?P<idx>\d+)\.(?P<rest>.+)$")
_LEAF_KINDS: dict[str, str] = {
    "q_proj": "q", "query": "q", "wq": "q", "q": "q",
    "k_proj": "k", "key": "k", "wk": "k", "k": "k",
    "v_proj": "v", "value": "v", "wv": "v", "v": "v",
    "o_proj": "o", "out_proj": "o", "wo": "o", "o": "o", "dense": "o",
    "query_key_value": "qkv", "qkv_proj": "qkv", "c_attn": "qkv", "wqkv": "qkv", "qkv": "qkv",
    "gate_proj": "gate", "w1": "gate",
    "up_proj": "up", "w3": "up", "dense_h_to_4h": "up", "c_fc": "up", "fc1": "up", "fc_in": "up",
    "down_proj": "down", "w2": "down", "dense_4h_to_h": "down", "fc2": "down", "fc_out": "down",
    "gate_up_proj": "gate_up",
}


def module_kind(module: str) -> str:
    """Canonical kind of a module path inside a block (``"self_attn.q_proj"`` → ``"q"``).

    Recognises Llama/OLMo2/Mistral/Qwen names (``q_proj`` … ``down_proj``), GPT-NeoX
    (``query_key_value``, ``attention.dense``, ``dense_h_to_4h``, ``dense_4h_to_h``) and GPT-2
    (``c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``). Anything with ``norm`` or a ``ln_``
    prefix is ``"norm"``; unrecognised modules are ``"other"``.
    """
    parts = module.lower().split(".")
    leaf = parts[-1] if parts else ""
    if "norm" in leaf or leaf.startswith("ln") or leaf.endswith("layernorm"):
        return "norm"
    if leaf == "c_proj":
        return "down" if any(p in ("mlp", "feed_forward", "ffn") for p in parts) else "o"
    if leaf == "dense" and any(p in ("mlp", "feed_forward", "ffn") for p in parts):
        return "other"
    return _LEAF_KINDS.get(leaf, "other")


def _split_param(rest: str) -> tuple[str, str]:
    """``"self_attn.q_proj.weight"`` → module ``"self_attn.q_proj"``, leaf ``"weight"``."""
    module, _, leaf = rest.rpartition(".")
    return (module, leaf) if module else (rest, "")


@dataclass(frozen=True)
class _Param:
    key: str  # full tensor name in the checkpoint / state dict
    block: int | None  # 1..L, None outside the blocks
    rest: str  # name inside the block (or the full key outside)

    @property
    def module(self) -> str:
        return _split_param(self.rest)[0]

    @property
    def kind(self) -> str:
        if self.block is None:
            return "other"
        return module_kind(self.module)

    @property
    def is_weight(self) -> bool:
        return _split_param(self.rest)[1] == "weight"


def _parse_keys(keys: Iterable[str], n_layers: int | None) -> list[_Param]:
    """Map tensor names to blocks ``1..L``; pick the container whose index count matches ``n_layers``."""
    keys = list(keys)
    groups: dict[str, set[int]] = {}
    for key in keys:
        m = _BLOCK_KEY.match(key)
        if m:
            groups.setdefault(m["container"], set()).add(int(m["idx"]))
    chosen = None
    if groups:
        matching = [c for c, idx in groups.items() if n_layers is not None and len(idx) == n_layers]
        chosen = (matching or sorted(groups, key=lambda c: (-len(groups[c]), c)))[0]
    out = []
    for key in keys:
        m = _BLOCK_KEY.match(key)
        if m and m["container"] == chosen:
            out.append(_Param(key, int(m["idx"]) + 1, m["rest"]))
        else:
            out.append(_Param(key, None, key))
    return out


# ----------------------------------------------------------------------------------------------
# checkpoints


def checkpoint_folder(source: str | Path, *, revision: str | None = None) -> Path:
    """Local folder holding a checkpoint's safetensors files.

    A local folder is returned as is; a Hub id is looked up **in the local Hugging Face cache
    only** (``huggingface_hub.snapshot_download(..., local_files_only=True)``): nothing is
    downloaded here.

    Raises:
        FileNotFoundError: If the id is not a folder and not in the cache.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        found = snapshot_download(
            str(source), revision=revision, local_files_only=True, allow_patterns=["*.safetensors", "*.json"]
        )
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(
            f"{source!r} is not a local folder and is not in the Hugging Face cache; download it first "
            f"(e.g. `huggingface-cli download {source}`) or pass a folder. ({exc})"
        ) from exc
    return Path(found)


class _Checkpoint:
    """Lazy tensor access to a (possibly sharded) safetensors checkpoint."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack) -> None:
        from safetensors import safe_open

        self.folder = folder
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {key: folder / name for key, name in weight_map.items()}
        else:
            shards = sorted(folder.glob("*.safetensors"))
            if not shards:
                raise FileNotFoundError(f"no safetensors files in {folder} (only safetensors checkpoints are read)")
            self.files = {}
            for shard in shards:
                try:
                    with safe_open(str(shard), framework="pt") as fh:
                        for key in fh.keys():
                            self.files[key] = shard
                except Exception as exc:  # a damaged shard: one message naming it
                    if is_load_failure(exc):
                        raise load_failure("checkpoint", shard, exc) from exc
                    raise
        self._handles: dict[Path, Any] = {}
        self._stack = stack
        self._open = safe_open
        config = folder / "config.json"
        cfg = json.loads(config.read_text()) if config.is_file() else {}
        text = cfg.get("text_config") or cfg
        self.n_layers: int | None = text.get("num_hidden_layers")

    def slice(self, key: str) -> Any:
        path = self.files[key]
        handle = self._handles.get(path)
        if handle is None:
            handle = self._stack.enter_context(self._open(str(path), framework="pt"))
            self._handles[path] = handle
        return handle.get_slice(key)


def _norms(base: Any, sft: Any, key: str, chunk: int) -> tuple[float, float, int]:
    """``(‖sft − base‖_F, ‖base‖_F, numel)`` in float64, reading row chunks of at most ``chunk`` elements."""
    shape = list(base.get_shape())
    if shape != list(sft.get_shape()):
        raise ValueError(f"tensor {key!r} has shape {shape} in Base but {list(sft.get_shape())} in SFT")
    numel = math.prod(shape)
    if len(shape) == 0:
        a, b = base[...].double(), sft[...].double()
        require_finite(a, f"weight_change: tensor {key!r} of the Base checkpoint")
        require_finite(b, f"weight_change: tensor {key!r} of the SFT checkpoint")
        return float((b - a).abs()), float(a.abs()), 1
    per_row = max(1, math.prod(shape[1:]))
    step = max(1, chunk // per_row)
    d2 = n2 = 0.0
    for start in range(0, shape[0], step):
        a = base[start : start + step].to(torch.float64)
        b = sft[start : start + step].to(torch.float64)
        d2 += float(((b - a) ** 2).sum())
        n2 += float((a**2).sum())
    if not (math.isfinite(d2) and math.isfinite(n2)):  # float64 sums of finite fp32/bf16 values cannot overflow
        for side, tensor in (("Base", base), ("SFT", sft)):
            for start in range(0, shape[0], step):
                require_finite(tensor[start : start + step], f"weight_change: tensor {key!r} of the {side} checkpoint "
                               f"(rows {start}..{min(start + step, shape[0]) - 1})")
    return math.sqrt(d2), math.sqrt(n2), numel


def _selected(param: _Param, modules: Sequence[str] | None) -> bool:
    if modules is None:
        return True
    parts = set(param.module.split("."))
    return any(m == param.kind or m == param.module or m == param.rest or m in parts for m in modules)


def _pair_sources(pair_or_paths: Any) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
    if isinstance(pair_or_paths, ModelPair):
        spec = pair_or_paths.spec
        return (spec.base, spec.base_revision), (spec.sft, spec.sft_revision)
    if isinstance(pair_or_paths, PairSpec):
        if pair_or_paths.source == "toy":
            raise ValueError("load the toy pair first (mbt.load_pair('toy')) and pass the ModelPair")
        return (pair_or_paths.base, pair_or_paths.base_revision), (pair_or_paths.sft, pair_or_paths.sft_revision)
    if isinstance(pair_or_paths, Sequence) and not isinstance(pair_or_paths, str) and len(pair_or_paths) == 2:
        return (str(pair_or_paths[0]), None), (str(pair_or_paths[1]), None)
    raise TypeError("pass a ModelPair, a PairSpec or a (base, sft) pair of folders / Hub ids")


def _row(spec: _Param | None, block: int | None, n_layers: int, **values: Any) -> dict[str, Any]:
    return {
        "block": block,
        "depth": float("nan") if block is None else block / n_layers,
        "module": values.pop("module", spec.module if spec else ""),
        "param": values.pop("param", spec.rest if spec else ""),
        "kind": values.pop("kind", spec.kind if spec else ""),
        **values,
    }


def _aggregates(rows: list[dict[str, Any]], n_layers: int, eq1_extra: dict[int, list[dict[str, Any]]],
                extra_cols: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Per-block ``eq1``, ``block`` and ``block_mean`` rows from per-tensor rows."""
    out = []
    blocks = sorted({r["block"] for r in rows if r["block"] is not None} | set(eq1_extra))
    for block in blocks:
        mine = [r for r in rows if r["block"] == block]
        attn = sorted(eq1_extra.get(block, []), key=lambda r: (ATTENTION_KINDS.index(r["kind"]), r["param"]))
        d_eq1 = sum(r["delta_fro"] for r in attn)
        b_eq1 = sum(r["base_fro"] for r in attn)
        d_blk = math.sqrt(sum(r["delta_fro"] ** 2 for r in mine))
        b_blk = math.sqrt(sum(r["base_fro"] ** 2 for r in mine))
        common = {"module": "", "param": ""}
        agg = [
            dict(kind="eq1", numel=sum(r["numel"] for r in attn), delta_fro=d_eq1, base_fro=b_eq1,
                 module="+".join(r["kind"] for r in attn), param=""),
            dict(kind="block", numel=sum(r["numel"] for r in mine), delta_fro=d_blk, base_fro=b_blk, **common),
            dict(kind="block_mean", numel=sum(r["numel"] for r in mine),
                 delta_fro=float(np.mean([r["delta_fro"] for r in mine])) if mine else float("nan"),
                 base_fro=float(np.mean([r["base_fro"] for r in mine])) if mine else float("nan"), **common),
        ]
        for values in agg:
            for col in extra_cols:
                values[col] = _aggregate_extra(col, values["kind"], mine, attn)
            out.append(_row(None, block, n_layers, **values))
    return out


def _aggregate_extra(col: str, kind: str, mine: list[dict[str, Any]], attn: list[dict[str, Any]]) -> float:
    # per-step gradient norms are attached as "_steps" arrays (steps,) by the fine-tune variant
    if col != "grad_norm":
        return float("nan")
    src = attn if kind == "eq1" else mine
    steps = [r["_steps"] for r in src if r.get("_steps") is not None and len(r["_steps"])]
    if not steps:
        return float("nan")
    per_step = np.stack(steps)  # (tensors, steps)
    if kind == "eq1":
        return float(per_step.sum(0).mean())
    if kind == "block":
        return float(np.sqrt((per_step**2).sum(0)).mean())
    return float(per_step.mean())


def _finish(rows: list[dict[str, Any]], relative: bool, extra_cols: Sequence[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=list(COLUMNS) + list(extra_cols))
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["relative"] = np.where(
            frame["base_fro"].to_numpy(float) > 0,
            frame["delta_fro"].to_numpy(float) / frame["base_fro"].to_numpy(float),
            np.nan,
        )
    frame["block"] = frame["block"].astype("Int64")
    cols = [c for c in COLUMNS if relative or c != "relative"] + list(extra_cols)
    order = {k: i for i, k in enumerate(("eq1", "block", "block_mean"))}
    frame["_agg"] = frame["kind"].map(order).fillna(-1)
    frame["_blk"] = frame["block"].astype("Float64").fillna(np.inf)
    frame = frame.sort_values(["_blk", "_agg", "param"], kind="stable")
    return frame[cols].reset_index(drop=True)


def weight_change(
    pair_or_paths: Any,
    *,
    modules: Sequence[str] | None = None,
    relative: bool = True,
    include_other: bool = False,
    chunk_elements: int = 1 << 24,
) -> pd.DataFrame:
    """Frobenius change of every block tensor between the Base and SFT checkpoints.

    Reads the two checkpoints' safetensors files tensor by tensor (``model.safetensors`` or the
    shards listed in ``model.safetensors.index.json``); large tensors are read in row chunks of at
    most ``chunk_elements`` elements, so peak memory is a few chunks regardless of model size.
    Norms accumulate in float64.

    Args:
        pair_or_paths: A :class:`~mbt.pairs.ModelPair` (its ``spec.base``/``spec.sft`` folders; Hub
            ids are looked up in the local Hugging Face cache only, see :func:`checkpoint_folder`),
            a :class:`~mbt.pairs.PairSpec`, or a ``(base, sft)`` pair of folders / Hub ids.
        modules: Restrict the per-tensor rows (and the ``block``/``block_mean`` aggregates) to
            tensors matching one of these strings: a :func:`module_kind` (``"q"``, ``"down"``,
            ``"norm"``), a module path inside the block (``"self_attn.q_proj"``), one component of
            it (``"mlp"``, ``"q_proj"``) or a tensor name (``"mlp.up_proj.weight"``). ``eq1`` always
            uses the attention projections. Default: every tensor of every block.
        relative: Add the ``relative = delta_fro / base_fro`` column.
        include_other: Also report tensors outside the blocks (embedding, final norm, LM head) with
            ``block`` = ``<NA>``.
        chunk_elements: Largest number of elements read at once per tensor and checkpoint.

    Returns:
        DataFrame with columns :data:`COLUMNS` (module docstring): per-tensor rows and per-block
        ``eq1`` / ``block`` / ``block_mean`` rows, ``block`` in ``1..L`` (block ``l`` produces layer
        ``l``).

    Raises:
        ValueError: If a tensor's shape differs between the checkpoints, or no block tensors are found.
        NonFiniteError: If a tensor holds NaN or infinite values (names the tensor and the checkpoint).
        FileNotFoundError: If a checkpoint has no safetensors files or is not available locally.
    """
    (base_src, base_rev), (sft_src, sft_rev) = _pair_sources(pair_or_paths)
    base_dir = checkpoint_folder(base_src, revision=base_rev)
    sft_dir = checkpoint_folder(sft_src, revision=sft_rev)
    with contextlib.ExitStack() as stack:
        base, sft = _Checkpoint(base_dir, stack), _Checkpoint(sft_dir, stack)
        params = _parse_keys(base.files, base.n_layers)
        blocks = {p.block for p in params if p.block is not None}
        if not blocks:
            raise ValueError(f"no decoder-block tensors found in {base_dir}")
        n_layers = base.n_layers or max(blocks)
        missing = [p.key for p in params if p.key not in sft.files and (p.block is not None or include_other)]
        if missing:
            raise ValueError(f"{len(missing)} tensors of the Base checkpoint are missing in SFT, e.g. {missing[:3]}")
        rows, eq1 = [], {}
        for param in params:
            wanted = _selected(param, modules) if param.block is not None else include_other
            in_eq1 = param.block is not None and param.kind in ATTENTION_KINDS and param.is_weight
            if not (wanted or in_eq1):
                continue
            delta, norm, numel = _norms(base.slice(param.key), sft.slice(param.key), param.key, chunk_elements)
            row = _row(param, param.block, n_layers, numel=numel, delta_fro=delta, base_fro=norm)
            if param.block is None:
                row["kind"] = _outside_kind(param.key)
            if in_eq1:
                eq1.setdefault(param.block, []).append(row)
            if wanted:
                rows.append(row)
    block_rows = [r for r in rows if r["block"] is not None]
    return _finish(rows + _aggregates(block_rows, n_layers, eq1), relative)


def _outside_kind(key: str) -> str:
    low = key.lower()
    if "embed_tokens" in low or "embed_in" in low or "wte" in low or "word_embeddings" in low:
        return "embed"
    if "lm_head" in low or "embed_out" in low:
        return "lm_head"
    if "norm" in low or "ln_f" in low:
        return "final_norm"
    return "other"


def block_series(table: pd.DataFrame, *, kind: str = "eq1", column: str = "delta_fro") -> pd.Series:
    """One value per block from a weight-change table, indexed by block ``1..L`` (= layer index).

    Args:
        table: Output of :func:`weight_change` or :func:`finetune_weight_change`.
        kind: An aggregate (``"eq1"``, ``"block"``, ``"block_mean"``) or a module kind (``"q"``,
            ``"down"``, …; several tensors of that kind in a block are summed).
        column: ``"delta_fro"``, ``"relative"``, ``"base_fro"`` or ``"grad_norm"``.
    """
    sel = table[(table["kind"] == kind) & table["block"].notna()]
    if sel.empty:
        raise ValueError(f"no rows of kind {kind!r}; kinds present: {sorted(table['kind'].unique())}")
    series = sel.groupby(sel["block"].astype(int))[column].sum(min_count=1)
    series.index.name = "layer"
    return series.rename(f"{kind}_{column}")


# ----------------------------------------------------------------------------------------------
# own fine-tune


def _lm_loss(module: torch.nn.Module, batch: Sequence[Sequence[int]], pad_id: int, *,
             extra_padding: int = 0) -> torch.Tensor:
    """Mean next-token cross-entropy over real tokens of a right-padded batch (labels −100 on padding)."""
    device = next(module.parameters()).device
    input_ids, mask, positions = trace.collate(batch, pad_id, padding_side="right")
    if extra_padding:
        pad = torch.nn.functional.pad
        input_ids = pad(input_ids, (0, extra_padding), value=pad_id)
        mask = pad(mask, (0, extra_padding), value=0)
        positions = pad(positions, (0, extra_padding), value=0)
    labels = input_ids.masked_fill(mask == 0, -100)
    out = module(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        labels=labels.to(device),
        use_cache=False,
    )
    return out.loss


def _fp32_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A float32 copy of a causal LM (fresh module, so no hooks or wrappers of the original come along)."""
    from transformers import AutoModelForCausalLM

    device = next(module.parameters()).device
    with torch.device(device):
        copy = AutoModelForCausalLM.from_config(module.config, dtype=torch.float32)
    copy.load_state_dict(module.state_dict(), strict=True)
    with torch.no_grad():
        src = dict(module.named_buffers())
        for name, buf in copy.named_buffers():
            if name in src:
                buf.copy_(src[name])
    return copy


def finetune_weight_change(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    steps: int,
    lr: float = 2e-5,
    batch_size: int = 8,
    max_length: int = 512,
    seed: int = 0,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    max_grad_norm: float | None = 1.0,
    relative: bool = True,
    include_other: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune a float32 copy of ``model`` on ``texts`` and record per-tensor ‖Δθ‖ and gradient norms.

    The authors' own-fine-tune measurement (Fig. 4), repaired (the book's appendix "The released code"):
    the model's weights are copied into a fresh **float32** model (fp32 master weights: AdamW
    updates of ~1e-5 are not rounded away as in pure-bf16 training); the loss is the mean
    next-token cross-entropy over **real tokens only** (labels ``−100`` on padding, right padding,
    position ids counted over real tokens); ``steps`` optimiser steps are actually taken (linear
    warm-up over ``warmup_steps``, then constant ``lr``). The caller's model is not modified.
    Memory: the fp32 copy, its gradients and the AdamW state take ~16 bytes per parameter on the
    model's (first) device, plus a float32 snapshot of the starting weights in CPU memory; models
    spread over several devices with ``device_map`` are trained on one.

    Args:
        model: Causal LM (nnsight-wrapped or plain), e.g. ``pair.base``.
        tokenizer: Its tokenizer (pad id for padding).
        texts: Training texts, cycled in a seeded random order (one pass = one epoch).
        steps: Number of optimiser steps (``0`` → every change is exactly 0).
        lr: AdamW learning rate (authors: 2e-5).
        batch_size: Texts per step.
        max_length: Tokens per text (right truncation).
        seed: Seed of the data order.
        weight_decay: AdamW weight decay (0 by default, so untouched weights do not move).
        warmup_steps: Linear warm-up steps.
        max_grad_norm: Gradient clipping threshold (``None`` = no clipping). Gradient norms are
            recorded before clipping.
        relative: Add the ``relative`` column.
        include_other: Also report embedding, final norm and LM head tensors (``block`` = ``<NA>``).
        progress: Show a progress bar over steps.

    Returns:
        The :func:`weight_change` table format plus ``grad_norm``: per tensor, the mean over steps
        of the tensor's gradient L2 norm; for ``eq1`` the mean over steps of the summed q/k/v/o
        norms, for ``block`` the mean over steps of the whole block's gradient norm, for
        ``block_mean`` the mean over steps and tensors (authors). NaN when ``steps == 0``.
        ``frame.attrs["losses"]`` holds the per-step training losses.

    Raises:
        ValueError: ``steps < 0``, no texts, or no text with 2 tokens.
        NonFiniteError: a starting weight holds NaN or infinity (names the tensor), or a step's loss
            is NaN or infinite (:class:`~mbt.checks.NonFiniteLossError`, names the stage and step).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")
    source = trace.unwrap(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    ids = [x for x in trace.encode(tokenizer, texts, max_length=max_length) if len(x) >= 2]
    if not ids:
        raise ValueError("every text has fewer than 2 tokens: nothing to predict")

    master = _fp32_copy(source)
    # a poisoned starting weight is named here, not discovered as a NaN loss at step 0
    require_finite_parameters(master, "finetune_weight_change: the starting model")
    master.train()
    named = []
    seen: set[int] = set()
    for name, p in master.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            named.append((name, p))
    before = {name: p.detach().to("cpu", copy=True) for name, p in named}
    optimizer = torch.optim.AdamW([p for _, p in named], lr=lr, weight_decay=weight_decay)
    schedule = train.scheduler(optimizer, steps, warmup_steps, "constant")
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    grads = np.zeros((steps, len(named)), dtype=np.float64)

    def step_loss(step: int) -> float:
        nonlocal order
        batch = []
        while len(batch) < min(batch_size, len(ids)):
            if not order:
                order = torch.randperm(len(ids), generator=gen).tolist()
            batch.append(ids[order.pop(0)])
        loss = _lm_loss(master, batch, pad_id)
        loss.backward()
        return float(loss.detach())

    def record_grads(step: int) -> None:
        for j, (_, p) in enumerate(named):
            grads[step, j] = 0.0 if p.grad is None else float(torch.linalg.vector_norm(p.grad, dtype=torch.float64))

    optimizer.zero_grad(set_to_none=True)
    losses, _ = train.run_steps(step_loss, optimizer, schedule, steps=steps, clip=[p for _, p in named],
                                max_grad_norm=max_grad_norm, after_backward=record_grads, stage="fine-tune",
                                progress=progress)

    n_layers = int((getattr(source.config, "text_config", None) or source.config).num_hidden_layers)
    params = {p.key: p for p in _parse_keys([name for name, _ in named], n_layers)}
    rows, eq1 = [], {}
    with torch.no_grad():
        for j, (name, p) in enumerate(named):
            param = params[name]
            if param.block is None and not include_other:
                continue
            start = before[name].to(torch.float64)
            delta = float(torch.linalg.vector_norm(p.detach().to("cpu", torch.float64) - start))
            row = _row(param, param.block, n_layers, numel=p.numel(), delta_fro=delta,
                       base_fro=float(torch.linalg.vector_norm(start)),
                       grad_norm=float(grads[:, j].mean()) if steps else float("nan"), _steps=grads[:, j])
            if param.block is None:
                row["kind"] = _outside_kind(name)
            elif param.kind in ATTENTION_KINDS and param.is_weight:
                eq1.setdefault(param.block, []).append(row)
            rows.append(row)
    block_rows = [r for r in rows if r["block"] is not None]
    frame = _finish(rows + _aggregates(block_rows, n_layers, eq1, extra_cols=("grad_norm",)), relative,
                    extra_cols=("grad_norm",))
    frame.attrs["losses"] = losses
    frame.attrs["settings"] = {"steps": steps, "lr": lr, "batch_size": batch_size, "max_length": max_length,
                               "seed": seed, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                               "max_grad_norm": max_grad_norm, "dtype": "float32"}
    return frame
