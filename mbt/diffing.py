r"""Model diffing: what SFT writes, layer by layer, and where along depth and along the text the two models part.

Five measurements of a Base/SFT pair, each a tidy table (cached by the call, :func:`mbt.identity.cached_call`,
unless ``cache=False``). Inputs are checked before any model is touched; a NaN or infinity is an error that
names the model, the layer and what was being computed.

* :func:`activation_difference` and :func:`difference_vectors` — the **activation difference lens**
  (Minder et al. 2025): on texts unrelated to the SFT data, per layer ``l`` (``0..L``, the residual stream
  after block ``l``, before the final norm) the mean difference over texts ``i`` and over the first ``k``
  positions ``j`` of each text,

  ``δ_l = mean_i d_{i,l}``,  ``d_{i,l} = mean_{j<k} (h^{SFT}_{l}(x_i)_j − h^{Base}_{l}(x_i)_j)``,

  and its size relative to the Base's residual stream, ``ρ_l = ‖δ_l‖_u / mean_i mean_{j<k} ‖h^{Base}_l(x_i)_j‖``.
  ``‖δ‖_u = √max(0, ‖δ̂‖² − tr(Ŝ)/n)`` removes the noise floor of a norm of a mean (``Ŝ`` the sample covariance
  of the ``d_{i,l}``, ``n`` texts): without it, a layer whose differences are merely noisier would look more
  shifted. The paper averages over the first ``k = 5`` positions of 10,000 pretraining-like texts and reads
  the middle layer; here every layer. The leading BOS token (a position whose state is the same in every
  text) is left out by default. Intervals: a **joint bootstrap over texts** (the same resampled texts at
  every layer), so band contrasts over depth use the replicates (:func:`mbt.paper.verdicts.band_contrast`,
  ``unit="replicates"``);
* :func:`difference_tokens` — ``δ_l`` read through the logit lens: ``log_softmax(W_U · norm(δ_l))`` with the
  final norm and unembedding of one model (the SFT model's by default, as the paper reads it), applied once
  (:func:`mbt.probe.lens_log_probs`), as the tokens it promotes most and suppresses most;
* :func:`steering_check` — the causal check: adding ``α·δ_l`` to the Base's residual stream at layer ``l``
  (every position) should move the Base's next-token distribution toward the SFT model's:
  ``KL(p_SFT ‖ p_Base) − KL(p_SFT ‖ p_{Base + αδ_l})`` per text, against random directions of the same norm;
* :func:`convergence_gap` — for each model separately, the per-text logit-lens KL from each layer's
  distribution to the same model's output, ``KL(p_L ‖ p_l)`` (:func:`mbt.probe.lens_per_text`): whether
  SFT settles on its prediction later (arXiv 2605.07282); :func:`graft_sweep` locates it by grafting
  late sub-blocks (:func:`mbt.swap.swapped_models` with ``part="mlp"`` / ``"attn"``) with a matched-size
  random control (:func:`mbt.swap.perturbed_like`);
* :func:`token_kl` — per token, ``KL(p_SFT,t ‖ p_Base,t)`` at the output, with the position and the kind of
  the token being predicted (``template`` — the format's fixed strings, :func:`mbt.formats.template_spans`;
  ``prompt`` / ``answer`` — content before / after the answer marker; ``text`` — content of a text without a
  marker; ``special`` — BOS/EOS and other added tokens).

The summaries (:func:`difference_summary`, :func:`steering_summary`, :func:`gap_summary`,
:func:`graft_summary`, :func:`token_kl_summary`) add percentile-bootstrap intervals over texts for the
figures; the verdicts are made from the per-text tables by :mod:`mbt.paper.findings.diffing`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import operator
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mbt import formats, trace
from mbt.checks import require_finite
from mbt.identity import cached_call
from mbt.pairs import ModelPair
from mbt.probe import lens_log_probs, lens_per_text
from mbt.stats import bootstrap_mean_ci
from mbt.swap import PARTS, perturbed_like, swapped_models

__all__ = [
    "KINDS",
    "activation_difference",
    "band_layers",
    "convergence_gap",
    "difference_summary",
    "difference_tokens",
    "difference_vectors",
    "gap_summary",
    "graft_summary",
    "graft_sweep",
    "relative_sizes",
    "steering_check",
    "steering_summary",
    "token_kinds",
    "token_kl",
    "token_kl_summary",
]

KINDS: tuple[str, ...] = ("template", "prompt", "answer", "text", "special")
"""Kinds of a predicted token (:func:`token_kinds`)."""

ROLES: tuple[str, ...] = ("base", "sft")


# ----------------------------------------------------------------------------------------------
# input checks (before any model is touched)


def _check_texts(texts: Sequence[str], what: str = "texts", minimum: int = 2) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"{what} must be a list of strings, not {type(texts).__name__}")
    items = list(texts)
    if len(items) < minimum or any(not isinstance(t, str) or not t for t in items):
        raise ValueError(f"{what} must hold at least {minimum} non-empty strings, got {len(items)}")
    return items


def _check_pair(pair: Any) -> ModelPair:
    if not isinstance(pair, ModelPair):
        raise ValueError(f"pair must be a loaded ModelPair (mbt.load_pair), got {type(pair).__name__}")
    return pair


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def band_layers(n_layers: int, band: tuple[float, float], *, include_last: bool = True) -> list[int]:
    """Layers ``l`` in ``1..L`` with relative depth ``l / L`` in the half-open band ``(lo, hi]``.

    ``include_last=False`` drops layer ``L`` (where a model's lens KL to its own output is 0 by definition).

    Raises:
        ValueError: No layer falls in the band.
    """
    lo, hi = band
    out = [layer for layer in range(1, n_layers + 1) if lo < layer / n_layers <= hi
           and (include_last or layer < n_layers)]
    if not out:
        raise ValueError(f"no layer of 1..{n_layers} has depth in ({lo:g}, {hi:g}]"
                         + ("" if include_last else " below the last layer"))
    return out


# ----------------------------------------------------------------------------------------------
# the activation difference


def _used_ids(tokenizer: Any, texts: Sequence[str], k: int, exclude_bos: bool) -> tuple[list[list[int]], int]:
    """Token ids truncated to the first ``k`` positions (plus a leading BOS), and how many leading ids to skip."""
    bos = getattr(tokenizer, "bos_token_id", None)
    full = trace.encode(tokenizer, texts, max_length=None)
    skip = int(exclude_bos and bos is not None and all(ids and ids[0] == bos for ids in full))
    ids = [ids[: skip + k] for ids in full]
    short = [i for i, x in enumerate(ids) if len(x) <= skip]
    if short:
        raise ValueError(f"texts {short[:5]} have no token after the BOS token; remove them")
    return ids, skip


class _FirstPositions:
    """Reducer: per text and layer, the mean state over the used positions and the mean state norm."""

    def __init__(self, n_texts: int, n_layers: int, skip: int, where: str) -> None:
        self.skip, self.where = skip, where
        self.means: np.ndarray | None = None
        self.norms = np.zeros((n_texts, n_layers + 1))
        self.shape = (n_texts, n_layers + 1)

    def __call__(self, batch: trace.LayerBatch) -> None:
        mask = batch.mask.clone()
        if self.skip:
            first = mask.int().argmax(dim=1)
            mask[torch.arange(mask.shape[0], device=mask.device), first] = False
        states = batch.states.double()
        require_finite(states[mask], f"{self.where}, layer {batch.layer}: hidden states of the first positions")
        m = mask.unsqueeze(-1).double()
        count = m.sum(1).clamp_min(1.0)
        means = ((states * m).sum(1) / count).cpu().numpy()
        norms = ((states.norm(dim=-1) * mask.double()).sum(1) / count.squeeze(-1)).cpu().numpy()
        if self.means is None:
            self.means = np.zeros((*self.shape, means.shape[-1]), dtype=np.float32)
        rows = batch.index.cpu().numpy()
        self.means[rows, batch.layer] = means
        self.norms[rows, batch.layer] = norms


def _first_position_states(pair: ModelPair, ids: list[list[int]], skip: int, batch_size: int,
                           progress: bool) -> dict[str, _FirstPositions]:
    out = {}
    for role in ROLES:
        reducer = _FirstPositions(len(ids), pair.n_layers, skip, f"activation difference, {role} model")
        trace.stream_layers(pair.model(role), ids, reducer, layers=range(pair.n_layers + 1), batch_size=batch_size,
                            progress=progress, desc=f"{role} first positions")
        out[role] = reducer
        if role == "base":
            pair.release("base")
    return out


def _difference_inputs(pair: Any, texts: Sequence[str], k: int, batch_size: int) -> list[str]:
    _check_pair(pair)
    items = _check_texts(texts)
    _check_int("k", k, 1)
    _check_int("batch_size", batch_size, 1)
    return items


def relative_sizes(d: np.ndarray, b: np.ndarray,
                   weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""``‖δ‖_u``, ``‖δ̂‖``, the Base norm and ``ρ`` of one layer under resampling weights (one row per replicate).

    For weights ``w`` (how often each of the ``n`` texts is drawn, ``Σ w_i = n``; all ones = the sample itself):
    ``δ̂ = Σ w_i d_i / n``, ``tr Ŝ = (Σ w_i ‖d_i‖² − n‖δ̂‖²) / (n − 1)``, ``‖δ‖_u = √max(0, ‖δ̂‖² − tr Ŝ / n)``,
    base norm ``= Σ w_i b_i / n`` and ``ρ = ‖δ‖_u / base norm``. The same weights serve every layer, so the
    replicates of a depth contrast come from the same resampled texts.

    Args:
        d: ``(n, D)`` per-text mean differences of one layer.
        b: ``(n,)`` per-text mean Base state norms of that layer.
        weights: ``(R, n)`` draw counts.

    Returns:
        Four ``(R,)`` arrays: corrected norm, raw norm, base norm, relative size (NaN where the base norm is 0).
    """
    n = d.shape[0]
    means = weights @ d / n
    raw2 = (means * means).sum(1)
    trace_s = (weights @ (d * d).sum(1) - n * raw2) / (n - 1)
    corrected = np.sqrt(np.clip(raw2 - trace_s / n, 0.0, None))
    base = weights @ b / n
    rel = np.where(base > 0, corrected / np.where(base > 0, base, 1.0), np.nan)
    return corrected, np.sqrt(raw2), base, rel


def activation_difference(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    k: int = 5,
    exclude_bos: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 8,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    r"""The size of the mean activation difference per layer, with a joint bootstrap over texts.

    See the module docstring for ``δ_l``, the noise-floor correction ``‖δ‖_u`` and ``ρ_l``. Only the first
    ``k`` positions of each text are run (the texts are truncated), so the pass is cheap at any size.

    Args:
        pair: The loaded pair (a sequential pair runs Base to completion, then SFT).
        texts: Texts unrelated to the SFT data (e.g. ``toy-text``, WikiText).
        k: Positions per text (the paper: 5).
        exclude_bos: Leave out a leading BOS token (when every text starts with one).
        n_bootstrap: Joint bootstrap replicates (0: none).
        seed: Bootstrap seed.
        batch_size: Texts per forward pass (results do not depend on it).
        cache: Reuse a stored result.
        progress: Progress bars.

    Returns:
        One row per layer ``0..L`` and replicate: ``layer``, ``depth`` (``l / L``), ``replicate`` (−1: the
        estimate on all texts; ``0..B−1``: resamples, the same texts at every layer), ``relative`` (``ρ_l``),
        ``delta_norm`` (``‖δ_l‖_u``), ``raw_norm`` (``‖δ̂_l‖``), ``base_norm``, ``n`` (texts), ``k``.

    Raises:
        ValueError: Fewer than two texts, ``k < 1``, a text without tokens after BOS.
        NonFiniteError: NaN or infinite hidden states (names the model and the layer).
    """
    items = _difference_inputs(pair, texts, k, batch_size)
    _check_int("n_bootstrap", n_bootstrap, 0)

    def compute(pair: ModelPair, texts: list[str], k: int, exclude_bos: bool, n_bootstrap: int,
                seed: int) -> pd.DataFrame:
        ids, skip = _used_ids(pair.tokenizer, texts, k, exclude_bos)
        states = _first_position_states(pair, ids, skip, batch_size, progress)
        d = (states["sft"].means.astype(np.float64) - states["base"].means.astype(np.float64))  # (N, L+1, D)
        b = states["base"].norms  # (N, L+1)
        n = d.shape[0]
        rng = np.random.default_rng(seed)
        weights = np.vstack([np.ones(n), *(rng.multinomial(n, np.full(n, 1.0 / n)) for _ in range(n_bootstrap))])
        rows = []
        for layer in range(pair.n_layers + 1):
            corrected, raw, base, rel = relative_sizes(d[:, layer, :], b[:, layer], weights)
            require_finite(rel, f"activation difference, layer {layer}: relative size of δ")
            rows += [{"layer": layer, "depth": layer / pair.n_layers, "replicate": r - 1, "relative": float(rel[r]),
                      "delta_norm": float(corrected[r]), "raw_norm": float(raw[r]), "base_norm": float(base[r]),
                      "n": n, "k": k} for r in range(weights.shape[0])]
        return pd.DataFrame(rows)

    compute.__qualname__ = "activation_difference"
    return cached_call(compute, pair, items, int(k), bool(exclude_bos), int(n_bootstrap), int(seed), cache=cache)


def difference_vectors(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    k: int = 5,
    exclude_bos: bool = True,
    batch_size: int = 8,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """``δ_l`` itself, per layer: the mean over texts and over the first ``k`` positions of ``h_SFT − h_Base``.

    Args:
        pair: The loaded pair.
        texts: Texts unrelated to the SFT data.
        k: Positions per text (the paper: 5).
        exclude_bos: Leave out a leading BOS token.
        batch_size: Texts per forward pass.
        cache: Reuse a stored result.
        progress: Progress bars.

    Returns:
        ``(L + 1, D)`` table: index ``layer`` ``0..L``, columns ``"0" … "D−1"`` (float64).
    """
    items = _difference_inputs(pair, texts, k, batch_size)

    def compute(pair: ModelPair, texts: list[str], k: int, exclude_bos: bool) -> pd.DataFrame:
        ids, skip = _used_ids(pair.tokenizer, texts, k, exclude_bos)
        states = _first_position_states(pair, ids, skip, batch_size, progress)
        delta = (states["sft"].means.astype(np.float64) - states["base"].means.astype(np.float64)).mean(0)
        frame = pd.DataFrame(delta, columns=[str(j) for j in range(delta.shape[1])])
        frame.index.name = "layer"
        return frame

    compute.__qualname__ = "difference_vectors"
    return cached_call(compute, pair, items, int(k), bool(exclude_bos), cache=cache)


def difference_summary(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per layer: the estimate of ``ρ_l`` and the percentile interval of its bootstrap replicates.

    Args:
        table: :func:`activation_difference`.
        level: Interval level.

    Returns:
        ``layer, depth, relative, ci_low, ci_high, delta_norm, base_norm``.
    """
    est = table[table["replicate"] == -1].set_index("layer").sort_index()
    reps = table[table["replicate"] >= 0]
    q = reps.groupby("layer")["relative"].quantile([(1 - level) / 2, (1 + level) / 2]).unstack()
    out = est[["depth", "relative", "delta_norm", "base_norm"]].copy()
    out["ci_low"] = q.iloc[:, 0].reindex(out.index) if len(q) else np.nan
    out["ci_high"] = q.iloc[:, 1].reindex(out.index) if len(q) else np.nan
    return out.reset_index()[["layer", "depth", "relative", "ci_low", "ci_high", "delta_norm", "base_norm"]]


def difference_tokens(pair: ModelPair, vectors: pd.DataFrame, *, head: str = "sft", top: int = 8,
                      layers: Iterable[int] | None = None) -> pd.DataFrame:
    r"""``δ_l`` read through the logit lens: the tokens it promotes and suppresses most, per layer.

    ``s_l = log_softmax(W_U · norm(δ_l))`` with the final norm and unembedding of the ``head`` model, applied
    once (:func:`mbt.probe.lens_log_probs`); ``score = s_l − mean_v s_l(v)`` (a centred logit: its sign says
    promoted or suppressed). Only the direction of ``δ_l`` matters for an RMSNorm.

    Args:
        pair: The loaded pair.
        vectors: :func:`difference_vectors`.
        head: ``"sft"`` (the fine-tuned model's head, as the ADL reads it) or ``"base"``.
        top: Tokens per direction and layer.
        layers: Layers to read (default: every layer of ``vectors`` whose ``δ`` is not zero).

    Returns:
        ``layer, direction ("promoted" | "suppressed"), rank (1 = strongest), token_id, token, score``.
    """
    if head not in ROLES:
        raise ValueError(f"head must be 'base' or 'sft', got {head!r}")
    _check_int("top", top, 1)
    wanted = list(vectors.index) if layers is None else [int(x) for x in layers]
    missing = [x for x in wanted if x not in vectors.index]
    if missing:
        raise ValueError(f"layers {missing} are not in the vectors (layers {list(vectors.index)})")
    model = pair.model(head)
    rows = []
    with torch.no_grad():
        for layer in wanted:
            v = torch.tensor(vectors.loc[layer].to_numpy(dtype=np.float64))
            if float(v.norm()) == 0.0:
                continue
            module = trace.unwrap(model)
            dtype = next(module.parameters()).dtype
            lp = lens_log_probs(model, v.to(dtype)[None, :])[0].double().cpu()
            require_finite(lp, f"difference tokens, layer {layer}: lens log-probabilities of δ ({head} head)")
            score = lp - lp.mean()
            n = min(top, score.numel())
            for direction, idx in (("promoted", score.topk(n).indices), ("suppressed", (-score).topk(n).indices)):
                for rank, tid in enumerate(idx.tolist(), start=1):
                    rows.append({"layer": layer, "direction": direction, "rank": rank, "token_id": int(tid),
                                 "token": pair.tokenizer.decode([int(tid)]), "score": float(score[tid])})
    return pd.DataFrame(rows, columns=["layer", "direction", "rank", "token_id", "token", "score"])


# ----------------------------------------------------------------------------------------------
# steering


@contextlib.contextmanager
def _added(model: Any, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Add ``vector`` to the output of block ``layer`` (= residual layer ``layer``) at every position."""
    module = trace.unwrap(model)
    block = operator.attrgetter(trace.resolve_layout(module).layers)(module)[layer - 1]

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + vector.to(output[0].dtype).to(output[0].device), *output[1:])
        return output + vector.to(output.dtype).to(output.device)

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _log_probs(model: Any, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    module = trace.unwrap(model)
    device = next(module.parameters()).device
    logits = module(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                    position_ids=positions.to(device), use_cache=False).logits
    return torch.log_softmax(logits.float(), dim=-1)


def _kl_rows(p_log: torch.Tensor, q_log: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Per row, the mean over real positions of ``KL(p ‖ q)`` (nats)."""
    p = p_log.exp()
    kl = torch.where(p > 0, p * (p_log - q_log.to(p_log.device)), 0.0).sum(-1).double().cpu()
    m = mask.double()
    return ((kl * m).sum(1) / m.sum(1).clamp_min(1.0)).numpy()


def steering_check(
    pair: ModelPair,
    vectors: pd.DataFrame,
    texts: Sequence[str],
    *,
    layers: Iterable[int] | None = None,
    alpha: float = 1.0,
    n_random: int = 4,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int = 128,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    r"""Does adding ``α·δ_l`` to the Base move its next-token distribution toward the SFT model's?

    Per text ``i`` (mean over its real positions ``t``): ``KL_i = KL(p_SFT ‖ p_Base)``, ``KL_i^δ`` with
    ``α·δ_l`` added to the Base's residual stream after block ``l`` at every position, and ``KL_i^ε`` the mean
    over ``n_random`` random directions ``ε`` of the same norm ``α‖δ_l‖`` (Gaussian, seeded per layer). The
    reduction ``KL_i − KL_i^δ`` against ``KL_i − KL_i^ε`` is the causal check. Both models are held.

    Args:
        pair: The loaded pair.
        vectors: :func:`difference_vectors` (estimated on other texts than ``texts``).
        texts: Texts to steer on (unrelated to the SFT data, held out from those ``δ`` was estimated on).
        layers: Layers ``1..L`` to steer at (default: all).
        alpha: Scale of ``δ_l``.
        n_random: Random directions per layer (≥ 1).
        seed: Seed of the random directions.
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse a stored result.
        progress: Progress bar.

    Returns:
        One row per layer and text: ``layer, depth, text, kl_base, kl_steered, kl_random, reduction
        (kl_base − kl_steered), reduction_random (kl_base − kl_random), alpha, delta_norm``.
    """
    _check_pair(pair)
    items = _check_texts(texts)
    _check_int("n_random", n_random, 1)
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha != 0):
        raise ValueError(f"alpha must be a finite non-zero number, got {alpha!r}")
    wanted = list(range(1, pair.n_layers + 1)) if layers is None else sorted({int(x) for x in layers})
    bad = [x for x in wanted if not 1 <= x <= pair.n_layers]
    if bad or not wanted:
        raise ValueError(f"layers {bad or '[]'} invalid: steering layers are 1..{pair.n_layers}")
    missing = [x for x in wanted if x not in vectors.index]
    if missing:
        raise ValueError(f"layers {missing} are not in the vectors")
    delta = {layer: vectors.loc[layer].to_numpy(dtype=np.float64) for layer in wanted}

    def compute(pair: ModelPair, texts: list[str], layers: list[int], delta_id: str, alpha: float,
                n_random: int, seed: int, max_length: int) -> pd.DataFrame:
        ids = trace.encode(pair.tokenizer, texts, max_length=max_length)
        pad = pair.tokenizer.pad_token_id if pair.tokenizer.pad_token_id is not None else 0
        width = len(delta[layers[0]])
        directions: dict[int, list[torch.Tensor]] = {}
        for layer in layers:
            v = torch.as_tensor(alpha * delta[layer])
            gen = torch.Generator().manual_seed(int(seed) * 100_003 + layer)
            rand = []
            for _ in range(n_random):
                z = torch.randn(width, generator=gen, dtype=torch.float64)
                rand.append(z / z.norm() * v.norm())
            directions[layer] = [v, *rand]
        out = {layer: np.zeros((len(ids), 3)) for layer in layers}
        base, sft = pair.base, pair.sft
        batches = trace.length_batches([len(x) for x in ids], batch_size)
        with torch.no_grad():
            for batch in tqdm(batches, desc="steering", disable=not progress, unit="batch"):
                input_ids, mask, positions = trace.collate([ids[i] for i in batch], pad, padding_side="right")
                p_sft = _log_probs(sft, input_ids, mask, positions)
                p_base = _log_probs(base, input_ids, mask, positions)
                require_finite(p_sft.sum(-1, dtype=torch.float64)[mask.bool()], "steering check, sft model: output")
                require_finite(p_base.sum(-1, dtype=torch.float64)[mask.bool()], "steering check, base model: output")
                kl0 = _kl_rows(p_sft, p_base, mask)
                for layer in layers:
                    kls = []
                    for vec in directions[layer]:
                        with _added(base, layer, vec):
                            q = _log_probs(base, input_ids, mask, positions)
                        require_finite(q.sum(-1, dtype=torch.float64)[mask.bool()],
                                       f"steering check, base model steered at layer {layer}: output")
                        kls.append(_kl_rows(p_sft, q, mask))
                    out[layer][batch, 0] = kl0
                    out[layer][batch, 1] = kls[0]
                    out[layer][batch, 2] = np.mean(kls[1:], axis=0)
        rows = []
        for layer in layers:
            norm = float(np.linalg.norm(delta[layer]))
            for i in range(len(ids)):
                k0, ks, kr = out[layer][i]
                rows.append({"layer": layer, "depth": layer / pair.n_layers, "text": i, "kl_base": k0,
                             "kl_steered": ks, "kl_random": kr, "reduction": k0 - ks, "reduction_random": k0 - kr,
                             "alpha": alpha, "delta_norm": norm})
        return pd.DataFrame(rows)

    compute.__qualname__ = "steering_check"
    ident = hashlib.sha256(np.ascontiguousarray(np.stack([delta[x] for x in wanted])).tobytes()).hexdigest()
    return cached_call(compute, pair, items, wanted, ident, float(alpha), int(n_random), int(seed), int(max_length),
                       cache=cache)


def steering_summary(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per layer: the mean KL reduction by ``δ`` and by the random directions, and their paired difference.

    Returns:
        ``layer, depth, reduction, reduction_random, effect (reduction − reduction_random), ci_low, ci_high,
        kl_base, n`` — the interval is a paired percentile bootstrap over texts.
    """
    rows = []
    for layer, g in table.groupby("layer", sort=True):
        diff = (g["reduction"] - g["reduction_random"]).to_numpy(float)
        mean, low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
        rows.append({"layer": int(layer), "depth": float(g["depth"].iloc[0]), "reduction": float(g["reduction"].mean()),
                     "reduction_random": float(g["reduction_random"].mean()), "effect": mean, "ci_low": low,
                     "ci_high": high, "kl_base": float(g["kl_base"].mean()), "n": int(len(g))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# convergence gap and grafts


def convergence_gap(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    positions: str = "all",
    batch_size: int = 8,
    max_length: int = 512,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    r"""Each model's per-text logit-lens KL from every layer to its own output, ``KL(p_L ‖ p_l)`` (nats).

    Args:
        pair: The loaded pair (a sequential pair runs Base, releases it, then runs SFT).
        texts: Texts (e.g. the SFT task's formatted texts, or plain text).
        positions: ``"all"`` or ``"answer"`` (:func:`mbt.probe.logit_lens`).
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse a stored result.
        progress: Progress bars.

    Returns:
        One row per model, layer ``1..L`` and text: ``model, layer, depth, text, value`` (layer ``L`` is 0).
    """
    _check_pair(pair)
    items = _check_texts(texts)

    def compute(pair: ModelPair, texts: list[str], positions: str, max_length: int) -> pd.DataFrame:
        frames = []
        layers = list(range(1, pair.n_layers + 1))
        for role in ROLES:
            kl = lens_per_text(pair.model(role), texts, layers=layers, positions=positions, batch_size=batch_size,
                               max_length=max_length, progress=progress)
            frames.append(pd.DataFrame({"model": role, "layer": np.repeat(layers, len(texts)),
                                        "depth": np.repeat(np.array(layers) / pair.n_layers, len(texts)),
                                        "text": np.tile(np.arange(len(texts)), len(layers)),
                                        "value": kl.T.reshape(-1)}))
            if role == "base":
                pair.release("base")
        return pd.concat(frames, ignore_index=True)

    compute.__qualname__ = "convergence_gap"
    return cached_call(compute, pair, items, positions, int(max_length), cache=cache)


def gap_summary(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model and layer: the mean KL to the output with a percentile bootstrap interval over texts.

    Returns:
        ``model, layer, depth, value, ci_low, ci_high, n``.
    """
    rows = []
    for (model, layer), g in table.groupby(["model", "layer"], sort=True):
        mean, low, high = bootstrap_mean_ci(g["value"].to_numpy(float), n_boot=n_boot, seed=seed)
        rows.append({"model": model, "layer": int(layer), "depth": float(g["depth"].iloc[0]), "value": mean,
                     "ci_low": low, "ci_high": high, "n": int(g["value"].notna().sum())})
    return pd.DataFrame(rows)


def graft_sweep(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    graft_band: tuple[float, float] = (0.5, 1.0),
    score_band: tuple[float, float] = (0.5, 1.0),
    parts: Sequence[str] = ("mlp", "attn"),
    directions: Sequence[str] = ("base", "sft"),
    random_control: bool = True,
    seed: int = 0,
    positions: str = "all",
    batch_size: int = 8,
    max_length: int = 512,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    r"""Graft the other model's late sub-blocks into a receiver and score how late it settles, per text.

    The score of a (possibly grafted) model on text ``i`` is its late KL to its own output:
    ``s_i = mean_{l ∈ S} KL(p_L ‖ p_l)`` over the layers ``S`` of ``score_band`` below ``L``
    (:func:`band_layers`). For each receiver (``"base"``: SFT's sub-blocks into Base, the graft that should
    raise Base's late KL if the SFT model's late MLPs carry its later settling; ``"sft"``: the reverse) and
    each ``part``, the blocks of ``graft_band`` are grafted (:func:`mbt.swap.swapped_models`), and, as a
    control, the same tensors are moved as far in a random direction (:func:`mbt.swap.perturbed_like`).

    Args:
        pair: The loaded pair (both models are held).
        texts: Scored texts.
        graft_band: Depth band ``(lo, hi]`` of the grafted blocks (block ``l`` at depth ``l / L``).
        score_band: Depth band of the scored layers (layer ``L`` excluded: its KL is 0).
        parts: Sub-blocks, from :data:`mbt.swap.PARTS` (``"mlp"``, ``"attn"``, ``"block"``).
        directions: Receivers, ``"base"`` and/or ``"sft"``.
        random_control: Add the matched-size random perturbations.
        seed: Seed of the random directions.
        positions: ``"all"`` or ``"answer"``.
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse a stored result.
        progress: Progress bars.

    Returns:
        One row per configuration and text: ``direction`` (``"sft→base"`` / ``"base→sft"``), ``receiver``,
        ``part``, ``kind`` (``"receiver"`` | ``"graft"`` | ``"random"``), ``blocks``, ``text``, ``score``.
    """
    _check_pair(pair)
    items = _check_texts(texts)
    bad = [p for p in parts if p not in PARTS] + [d for d in directions if d not in ROLES]
    if bad or not parts or not directions:
        raise ValueError(f"unknown parts/directions {bad}; parts ⊆ {PARTS}, directions ⊆ {ROLES}")
    blocks = band_layers(pair.n_layers, graft_band)
    scored = band_layers(pair.n_layers, score_band, include_last=False)

    def compute(pair: ModelPair, texts: list[str], blocks: list[int], scored: list[int], parts: list[str],
                directions: list[str], random_control: bool, seed: int, positions: str,
                max_length: int) -> pd.DataFrame:
        def score(model: Any) -> np.ndarray:
            kl = lens_per_text(model, texts, layers=scored, positions=positions, batch_size=batch_size,
                               max_length=max_length, progress=False)
            return np.nanmean(kl, axis=1)

        rows = []
        for direction in directions:
            receiver, donor = (pair.base, pair.sft) if direction == "base" else (pair.sft, pair.base)
            label = "sft→base" if direction == "base" else "base→sft"
            configs = [("receiver", "none")] + [(kind, part) for part in parts
                                                for kind in ("graft", *(("random",) if random_control else ()))]
            for kind, part in configs:
                if kind == "receiver":
                    values = score(receiver)
                else:
                    context = (swapped_models(receiver, donor, blocks, part=part) if kind == "graft"
                               else perturbed_like(receiver, donor, blocks, part=part, seed=seed))
                    with context as model:
                        values = score(model)
                rows += [{"direction": label, "receiver": direction, "part": part, "kind": kind,
                          "blocks": ",".join(map(str, blocks)), "text": i, "score": float(v)}
                         for i, v in enumerate(values)]
        return pd.DataFrame(rows)

    compute.__qualname__ = "graft_sweep"
    return cached_call(compute, pair, items, blocks, scored, list(parts), list(directions), bool(random_control),
                       int(seed), positions, int(max_length), cache=cache)


def graft_summary(table: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per direction, part and kind: the mean change of the late KL against the unchanged receiver, paired over texts.

    Returns:
        ``direction, part, kind, score, diff, diff_ci_low, diff_ci_high, n`` (the receiver's own row has diff 0).
    """
    rows = []
    for direction, g in table.groupby("direction", sort=False):
        ref = g[g["kind"] == "receiver"].set_index("text")["score"]
        for (part, kind), h in g.groupby(["part", "kind"], sort=False):
            s = h.set_index("text")["score"]
            diff = (s - ref.reindex(s.index)).to_numpy(float)
            mean, low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
            rows.append({"direction": direction, "part": part, "kind": kind, "score": float(s.mean()), "diff": mean,
                         "diff_ci_low": low, "diff_ci_high": high, "n": int(np.isfinite(diff).sum())})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# per-token KL at the output


def token_kinds(tokenizer: Any, text: str, ids: Sequence[int]) -> list[str]:
    """The kind of every token of ``text`` (:data:`KINDS`), from the tokenizer's character offsets.

    ``template`` if the token overlaps a fixed string of the format (:func:`mbt.formats.template_spans`);
    otherwise ``answer`` if it starts after the end of the last answer marker, ``prompt`` if the text has an
    answer marker, ``text`` if it has none; ``special`` for tokens with no characters (BOS, EOS).

    Raises:
        ValueError: A tokenizer without character offsets (a slow tokenizer), or ids that are not the text's.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("token kinds need a fast tokenizer (character offsets)")
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    if list(enc["input_ids"][: len(ids)]) != list(ids):
        raise ValueError("the token ids are not the tokenization of the text")
    spans = formats.template_spans(text)
    marker = text.rfind(formats.ANSWER_MARKER)
    answer_from = marker + len(formats.ANSWER_MARKER) if marker >= 0 else None
    kinds = []
    for start, end in enc["offset_mapping"][: len(ids)]:
        if end <= start:
            kinds.append("special")
        elif any(start < b and a < end for a, b in spans):
            kinds.append("template")
        elif answer_from is None:
            kinds.append("text")
        else:
            kinds.append("answer" if start >= answer_from else "prompt")
    return kinds


def token_kl(
    pair: ModelPair,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int = 512,
    cache: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    r"""Per token, ``KL(p_SFT,t ‖ p_Base,t)`` at the output, with the position and the kind of the predicted token.

    At every real position ``t`` but the last (each predicts token ``t + 1``), the two models' next-token
    distributions are compared; the row carries ``t``, ``t / (T − 1)`` and the kind of token ``t + 1``
    (:func:`token_kinds`). Both models are held.

    Args:
        pair: The loaded pair.
        texts: Texts (the SFT task's formatted texts for token kinds; any text for positions).
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        cache: Reuse a stored result.
        progress: Progress bar.

    Returns:
        ``text, position, relative_position, kind, kl`` (nats), one row per scored token.
    """
    _check_pair(pair)
    items = _check_texts(texts)

    def compute(pair: ModelPair, texts: list[str], max_length: int) -> pd.DataFrame:
        tok = pair.tokenizer
        ids = trace.encode(tok, texts, max_length=max_length)
        try:
            kinds = [token_kinds(tok, t, x) for t, x in zip(texts, ids, strict=True)]
        except ValueError as exc:
            warnings.warn(f"token kinds unavailable ({exc}); every token is 'text'", stacklevel=3)
            kinds = [["text"] * len(x) for x in ids]
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        rows = []
        batches = trace.length_batches([len(x) for x in ids], batch_size)
        with torch.no_grad():
            for batch in batches:
                input_ids, mask, positions = trace.collate([ids[i] for i in batch], pad, padding_side="right")
                p = _log_probs(pair.sft, input_ids, mask, positions)
                q = _log_probs(pair.base, input_ids, mask, positions)
                require_finite(p.sum(-1, dtype=torch.float64)[mask.bool()], "token KL, sft model: output")
                require_finite(q.sum(-1, dtype=torch.float64)[mask.bool()], "token KL, base model: output")
                pe = p.exp()
                kl = torch.where(pe > 0, pe * (p - q), 0.0).sum(-1).double().cpu().numpy()
                for row, i in enumerate(batch):
                    n = len(ids[i])
                    for t in range(n - 1):
                        rows.append({"text": i, "position": t, "relative_position": t / max(n - 2, 1),
                                     "kind": kinds[i][t + 1], "kl": float(kl[row, t])})
        return pd.DataFrame(rows, columns=["text", "position", "relative_position", "kind", "kl"])

    compute.__qualname__ = "token_kl"
    return cached_call(compute, pair, items, int(max_length), cache=cache)


def token_kl_summary(table: pd.DataFrame, by: str = "kind", *, n_bins: int = 10, n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """Mean per-token KL by token kind or by relative position, with a bootstrap interval over texts.

    Each text first averages its tokens of a group (so a long text does not weigh more), then the texts are
    resampled.

    Args:
        table: :func:`token_kl`.
        by: ``"kind"`` or ``"position"`` (``n_bins`` equal bins of the relative position).
        n_bins: Position bins.
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``group, kl, ci_low, ci_high, n_texts, n_tokens``.
    """
    if by not in ("kind", "position"):
        raise ValueError(f"by must be 'kind' or 'position', got {by!r}")
    frame = table.copy()
    if by == "position":
        frame["group"] = np.minimum((frame["relative_position"] * n_bins).astype(int), n_bins - 1) / n_bins
    else:
        frame["group"] = frame["kind"]
    rows = []
    for group, g in frame.groupby("group", sort=True):
        per_text = g.groupby("text")["kl"].mean().to_numpy(float)
        mean, low, high = bootstrap_mean_ci(per_text, n_boot=n_boot, seed=seed)
        rows.append({"group": group, "kl": mean, "ci_low": low, "ci_high": high, "n_texts": int(per_text.size),
                     "n_tokens": int(len(g))})
    return pd.DataFrame(rows)
