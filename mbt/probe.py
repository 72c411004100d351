r"""Logit lens per layer (paper §4.3, Fig. 3), with the final norm applied exactly once.

At layer ``l`` (``1..L``: the residual stream after block ``l``, before the final norm) the lens
distribution is ``softmax(lm_head(final_norm(h_l)))`` with the model's **own** final norm and LM
head, so layer ``L`` reproduces the model's output distribution exactly (KL to it is 0). The
authors fed Hugging Face's ``hidden_states[L]``, which is already final-normed, so their last point
was ``lm_head(norm(norm(h_L)))`` (the book's appendix "The released code"); ``paper=True`` reproduces
that — final norm twice at layer ``L`` only, everything else identical — so the book can test
whether it explains the paper's final-layer dip (0.60 → 0.52).

Per scored position ``t`` (predicting token ``t+1``; both real tokens) and layer ``l``:

* ``top1_acc`` — ``1[argmax p_l = x_{t+1}]``; ``top5_acc`` — target among the 5 most likely;
* ``cross_entropy`` — ``−log p_l(x_{t+1})`` (nats; perplexity = ``exp`` of the pooled value);
* ``entropy`` — ``−Σ_v p_l(v) log p_l(v)`` (nats) of the lens distribution;
* ``kl_to_final`` — ``KL(p_final ‖ p_l) = Σ_v p_final (log p_final − log p_l)`` (nats), where
  ``p_final`` is the model's output distribution (the single-norm lens at ``L``).

Aggregation: each metric is averaged over a sample's scored tokens, then over samples:
``value`` is that **sample mean**, with a percentile-bootstrap interval over samples
(``ci_low``/``ci_high``). ``pooled`` is the **token-weighted** mean over all scored tokens of all
samples — the authors' number — with a sample-level (cluster) bootstrap interval of the ratio
(``pooled_ci_low``/``pooled_ci_high``). Padding never counts; with ``exclude_bos`` the prediction
made *from* a leading BOS token is dropped; ``positions="answer"`` keeps only targets after the
last occurrence of ``answer_marker`` (texts that contain their answer, formatted
``"Question: …\nAnswer: …"`` as in the paper).

Memory: per batch, the states of the scored positions are kept for the requested layers
(``N_tokens × D`` each, no vocabulary dimension); logits are computed ``token_chunk`` tokens and
one layer at a time (plus the final distribution of that chunk), never for all layers at once.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mbt import trace
from mbt.checks import require_finite
from mbt.stats import bootstrap_mean_ci

__all__ = ["COLUMNS", "DIVERGENCE_METRICS", "METRICS", "lens_divergence", "lens_logits", "lens_log_probs",
           "lens_per_text", "logit_lens"]

METRICS: tuple[str, ...] = ("top1_acc", "top5_acc", "cross_entropy", "entropy", "kl_to_final")
DIVERGENCE_METRICS: tuple[str, ...] = ("kl_sft_base", "top1_agreement")
COLUMNS: tuple[str, ...] = (
    "layer", "depth", "metric", "value", "ci_low", "ci_high", "n", "n_tokens", "pooled", "pooled_ci_low",
    "pooled_ci_high", "positions", "paper",
)


# ----------------------------------------------------------------------------------------------
# the lens itself


class _Lens:
    """The model's own final norm + LM head (+ final logit soft-capping where the config has one).

    :meth:`log_probs` is the lens; :mod:`mbt.diffing` reads activation differences through it too.
    """

    def __init__(self, model: Any) -> None:
        module = trace.unwrap(model)
        layout = trace.resolve_layout(module)
        self.norm = operator.attrgetter(layout.final_norm)(module)
        self.head = operator.attrgetter(layout.lm_head)(module)
        self.n_layers = len(operator.attrgetter(layout.layers)(module))
        config = getattr(module, "config", None)
        text = getattr(config, "text_config", None) or config
        self.softcap = getattr(text, "final_logit_softcapping", None)
        self.head_device = next(self.head.parameters()).device
        norm_params = list(self.norm.parameters())
        self.norm_device = norm_params[0].device if norm_params else self.head_device

    def log_probs(self, h: torch.Tensor, *, twice: bool = False) -> torch.Tensor:
        """``log_softmax(lm_head(norm(h)))`` in at least float32, ``(N, D) → (N, V)``."""
        x = self.norm(h.to(self.norm_device))
        if twice:
            x = self.norm(x)
        logits = self.head(x.to(self.head_device))
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.softcap:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return torch.log_softmax(logits, dim=-1)


def lens_log_probs(model: Any, h: torch.Tensor) -> torch.Tensor:
    """Vectors of the residual stream read through the model's own final norm and LM head, applied once.

    ``log_softmax(lm_head(final_norm(h)))`` (plus the config's final logit soft-capping), ``(N, D) → (N, V)``
    in at least float32: the logit lens of :func:`logit_lens`, for any vector (e.g. an activation difference,
    :mod:`mbt.diffing`). The final norm's scale invariance means only the direction of ``h`` matters for an
    RMSNorm (up to its ε).
    """
    return _Lens(model).log_probs(h)


def _model_name(model: Any) -> str:
    """A model's name for error messages: its source folder or Hub id, else its class."""
    module = trace.unwrap(model)
    source = getattr(getattr(module, "config", None), "_name_or_path", "")
    return f"model {source!r}" if source else f"model {type(module).__name__}"


def _check_states(states: dict[int, torch.Tensor], who: str) -> None:
    """Raise :class:`~mbt.checks.NonFiniteError` naming the first layer whose lens inputs are not finite."""
    for layer in sorted(states):
        require_finite(states[layer], f"{who}, layer {layer}: hidden states at the scored positions")


def _check_layers(layers: Iterable[int] | None, n_layers: int) -> list[int]:
    wanted = list(range(1, n_layers + 1)) if layers is None else sorted({int(x) for x in layers})
    bad = [x for x in wanted if not 0 <= x <= n_layers]
    if bad or not wanted:
        raise ValueError(f"layers {bad or '[]'} invalid: valid layers are 0..{n_layers} (default 1..{n_layers})")
    return wanted


def _pad_id(model: Any, tokenizer: Any) -> int:
    for tok in (tokenizer, getattr(model, "tokenizer", None)):
        pid = getattr(tok, "pad_token_id", None)
        if pid is not None:
            return int(pid)
    eos = getattr(tokenizer, "eos_token_id", None)
    return 0 if eos is None else int(eos)


# ----------------------------------------------------------------------------------------------
# which positions are scored


def _answer_starts(tokenizer: Any, texts: Sequence[str], ids: list[list[int]], marker: str,
                   max_length: int | None) -> list[int]:
    """Index of the first token that starts at or after the end of the last ``marker`` in each text."""
    missing = [i for i, t in enumerate(texts) if marker not in t]
    if missing:
        raise ValueError(
            f"positions='answer' needs the answer marker {marker!r} in every text; missing in texts {missing[:10]}"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("positions='answer' needs a fast tokenizer (character offsets)")
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=max_length is not None, max_length=max_length,
                    return_offsets_mapping=True)
    starts = []
    for i, text in enumerate(texts):
        if list(enc["input_ids"][i]) != ids[i]:
            raise ValueError(f"text {i}: tokenization with offsets differs from the plain one")
        end = text.rfind(marker) + len(marker)
        offsets = enc["offset_mapping"][i]
        first = next((j for j, (s, e) in enumerate(offsets) if e > s and s >= end), len(offsets))
        starts.append(first)
    return starts


def _scored_positions(
    tokenizer: Any,
    texts: Sequence[str] | None,
    ids: list[list[int]],
    *,
    positions: str,
    answer_marker: str,
    exclude_bos: bool,
    max_length: int | None,
) -> list[torch.Tensor]:
    """Per sample, the positions ``t`` (0-based among real tokens) whose prediction of ``t+1`` is scored."""
    if positions not in ("all", "answer"):
        raise ValueError(f"positions must be 'all' or 'answer', got {positions!r}")
    bos = getattr(tokenizer, "bos_token_id", None)
    starts = (
        _answer_starts(tokenizer, texts, ids, answer_marker, max_length) if positions == "answer" else [1] * len(ids)
    )
    out = []
    for sample, first_target in zip(ids, starts, strict=True):
        first = max(first_target - 1, 0)
        if exclude_bos and bos is not None and sample and sample[0] == bos:
            first = max(first, 1)
        out.append(torch.arange(first, max(len(sample) - 1, first), dtype=torch.long))
    return out


# ----------------------------------------------------------------------------------------------
# streaming: states of the scored positions, one batch at a time


def _batch_states(
    model: Any,
    sub_ids: list[list[int]],
    sub_pos: list[torch.Tensor],
    layers: list[int],
    *,
    padding_side: str,
    pad_id: int,
) -> tuple[dict[int, torch.Tensor], list[int]]:
    """``{layer: (N, D)}`` states at the scored positions of one batch, and the sample order used."""
    stash: dict[Any, Any] = {}

    def reduce(batch: trace.LayerBatch) -> None:
        order = batch.index.tolist()
        stash.setdefault("order", order)
        parts = []
        for row, sample in enumerate(order):
            pos = sub_pos[sample]
            if pos.numel() == 0:
                continue
            cols = batch.mask[row].nonzero().squeeze(-1)
            parts.append(batch.states[row, cols[pos.to(cols.device)]].detach())
        width = batch.states.shape[-1]
        stash[batch.layer] = torch.cat(parts) if parts else batch.states.new_zeros((0, width))

    trace.stream_layers(model, sub_ids, reduce, layers=layers, batch_size=len(sub_ids), padding_side=padding_side,
                        pad_id=pad_id, progress=False)
    order = stash.pop("order")
    return stash, order


def _token_metrics(lp: torch.Tensor, final: torch.Tensor, p_final: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(5, N)`` float64 per-token metrics of lens log-probs ``lp`` against the final distribution and targets."""
    top1 = lp.argmax(-1) == targets
    k = min(5, lp.shape[-1])
    top5 = (lp.topk(k, dim=-1).indices == targets[:, None]).any(-1)
    ce = -lp.gather(1, targets[:, None]).squeeze(1)
    p = lp.exp()
    ent = -torch.where(p > 0, p * lp, 0.0).sum(-1)
    del p
    kl = torch.where(p_final > 0, p_final * (final - lp), 0.0).sum(-1)
    return torch.stack([top1.double(), top5.double(), ce.double(), ent.double(), kl.double()]).cpu()


# ----------------------------------------------------------------------------------------------
# tables


def _ratio_ci(sums: np.ndarray, counts: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    keep = counts > 0
    s, c = sums[keep], counts[keep]
    if s.size < 2 or n_boot == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s.size, size=(n_boot, s.size))
    ratios = s[idx].sum(1) / c[idx].sum(1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def _table(sums: torch.Tensor, counts: torch.Tensor, layers: list[int], metrics: Sequence[str], n_layers: int,
           *, n_bootstrap: int, seed: int, positions: str, paper: bool) -> pd.DataFrame:
    """``sums`` ``(layers, metrics, samples)`` and ``counts`` ``(samples,)`` → tidy rows."""
    rows = []
    c = counts.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for li, layer in enumerate(layers):
            for mi, metric in enumerate(metrics):
                s = sums[li, mi].numpy()
                per_sample = np.where(c > 0, s / np.where(c > 0, c, 1), np.nan)
                mean, low, high = bootstrap_mean_ci(per_sample, n_boot=n_bootstrap, seed=seed)
                total = c.sum()
                pooled = float(s.sum() / total) if total > 0 else float("nan")
                p_low, p_high = _ratio_ci(s, c, n_bootstrap, seed)
                rows.append({
                    "layer": layer, "depth": layer / n_layers, "metric": metric, "value": mean, "ci_low": low,
                    "ci_high": high, "n": int((c > 0).sum()), "n_tokens": int(total), "pooled": pooled,
                    "pooled_ci_low": p_low, "pooled_ci_high": p_high, "positions": positions, "paper": paper,
                })
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _prepare(tokenizer: Any, texts: Sequence[str], *, positions: str, answer_marker: str, exclude_bos: bool,
             max_length: int) -> tuple[list[list[int]], list[torch.Tensor]]:
    if isinstance(texts, str) or len(texts) == 0:
        raise ValueError("texts must be a non-empty sequence of strings")
    if tokenizer is None:
        raise ValueError("no tokenizer: pass tokenizer= or a model wrapped with one (mbt.trace.wrap)")
    ids = trace.encode(tokenizer, texts, max_length=max_length)
    pos = _scored_positions(tokenizer, texts, ids, positions=positions, answer_marker=answer_marker,
                            exclude_bos=exclude_bos, max_length=max_length)
    empty = [i for i, p in enumerate(pos) if p.numel() == 0]
    if len(empty) == len(ids):
        raise ValueError("no text has a scored position (texts too short, or answers truncated away?)")
    if empty:
        warnings.warn(f"{len(empty)} texts have no scored token and are left out, e.g. {empty[:5]}", stacklevel=3)
    return ids, pos


def logit_lens(
    model: Any,
    texts: Sequence[str],
    *,
    tokenizer: Any = None,
    layers: Iterable[int] | None = None,
    positions: str = "all",
    answer_marker: str = "Answer:",
    exclude_bos: bool = True,
    paper: bool = False,
    batch_size: int = 8,
    max_length: int = 512,
    padding_side: str = "right",
    token_chunk: int = 1024,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Logit-lens accuracy, cross-entropy, entropy and KL to the output, per layer.

    Args:
        model: nnsight-wrapped causal LM (e.g. ``pair.base``; see :func:`mbt.trace.wrap`).
        texts: Input texts, each one sample.
        tokenizer: Tokenizer (default: the one the model was wrapped with).
        layers: Layers to probe, ``0..L`` (default ``1..L``; ``0`` is the embedding output).
        positions: ``"all"`` — every real next-token prediction (the authors' protocol);
            ``"answer"`` — only targets that start after the last ``answer_marker`` in the text.
        answer_marker: Marker preceding the answer (``positions="answer"``).
        exclude_bos: Drop the prediction made from a leading BOS token.
        paper: Reproduce the authors' last layer: final norm applied twice at layer ``L``.
        batch_size: Texts per forward pass (results do not depend on it).
        max_length: Tokens per text (right truncation).
        padding_side: ``"right"`` or ``"left"`` (results do not depend on it).
        token_chunk: Tokens per logits computation (peak memory: about 6 × ``token_chunk`` × vocab
            float32 values, e.g. 2.5 GB for 1,024 tokens and OLMo2's 100k vocabulary).
        n_bootstrap: Bootstrap resamples for the intervals (0 = none).
        seed: Bootstrap seed.
        progress: Show a progress bar over batches.

    Returns:
        Tidy DataFrame with columns :data:`COLUMNS`, one row per ``(layer, metric)`` with metrics
        :data:`METRICS`: ``value`` = mean over samples of per-sample means (bootstrap interval over
        samples), ``pooled`` = token-weighted mean (the authors' aggregation, cluster-bootstrap
        interval), ``n`` = samples with at least one scored token, ``n_tokens`` = scored tokens,
        ``depth = layer / L``. Layer ``l`` here is block ``l``'s output; the authors labelled the
        same point ``l − 1``.

    Raises:
        ValueError: Invalid layers or positions, empty texts, or a missing answer marker.
        NonFiniteError: NaN or infinite hidden states or lens log-probabilities (names the model
            and the layer).
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    ids, pos = _prepare(tokenizer, texts, positions=positions, answer_marker=answer_marker, exclude_bos=exclude_bos,
                        max_length=max_length)
    n_layers = _Lens(model).n_layers
    wanted = _check_layers(layers, n_layers)
    sums, counts = _lens_sums(model, tokenizer, ids, pos, wanted, paper=paper, batch_size=batch_size,
                              padding_side=padding_side, token_chunk=token_chunk, progress=progress)
    return _table(sums, counts, wanted, METRICS, n_layers, n_bootstrap=n_bootstrap, seed=seed, positions=positions,
                  paper=paper)


def _lens_sums(model: Any, tokenizer: Any, ids: list[list[int]], pos: list[torch.Tensor], wanted: list[int], *,
               paper: bool, batch_size: int, padding_side: str, token_chunk: int,
               progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample sums of :data:`METRICS` over the scored positions, ``(layers, metrics, samples)``, and counts."""
    lens = _Lens(model)
    n_layers = lens.n_layers
    needed = sorted(set(wanted) | {n_layers})
    pad_id = _pad_id(model, tokenizer)
    sums = torch.zeros((len(wanted), len(METRICS), len(ids)), dtype=torch.float64)
    counts = torch.zeros(len(ids), dtype=torch.float64)
    batches = trace.length_batches([len(x) for x in ids], batch_size)
    with torch.no_grad():
        for batch in tqdm(batches, desc="logit lens", disable=not progress, unit="batch"):
            if all(pos[i].numel() == 0 for i in batch):
                continue
            states, order = _batch_states(model, [ids[i] for i in batch], [pos[i] for i in batch], needed,
                                          padding_side=padding_side, pad_id=pad_id)
            _check_states(states, f"logit lens of {_model_name(model)}")
            samples = torch.cat([torch.full((pos[batch[r]].numel(),), batch[r], dtype=torch.long) for r in order])
            targets = torch.cat([torch.as_tensor(ids[batch[r]])[pos[batch[r]] + 1] for r in order])
            counts.index_add_(0, samples, torch.ones(samples.numel(), dtype=torch.float64))
            for start in range(0, samples.numel(), token_chunk):
                chunk = slice(start, start + token_chunk)
                tgt = targets[chunk].to(lens.head_device)
                final = lens.log_probs(states[n_layers][chunk])
                require_finite(final, f"logit lens of {_model_name(model)}, layer {n_layers}: output log-probabilities")
                p_final = final.exp()
                for li, layer in enumerate(wanted):
                    twice = paper and layer == n_layers
                    lp = final if (layer == n_layers and not twice) else lens.log_probs(states[layer][chunk],
                                                                                       twice=twice)
                    require_finite(lp, f"logit lens of {_model_name(model)}, layer {layer}: lens log-probabilities")
                    sums[li].index_add_(1, samples[chunk], _token_metrics(lp, final, p_final, tgt))
                    del lp
                del final, p_final
            del states
    return sums, counts


def lens_per_text(
    model: Any,
    texts: Sequence[str],
    *,
    metric: str = "kl_to_final",
    tokenizer: Any = None,
    layers: Iterable[int] | None = None,
    positions: str = "all",
    answer_marker: str = "Answer:",
    exclude_bos: bool = True,
    batch_size: int = 8,
    max_length: int = 512,
    padding_side: str = "right",
    token_chunk: int = 1024,
    progress: bool = False,
) -> np.ndarray:
    """One lens metric per text and layer: the per-sample means behind :func:`logit_lens`'s ``value``.

    ``out[i, j]`` is metric ``metric`` averaged over the scored positions of text ``i`` at layer ``layers[j]``
    (same lens, positions and conventions as :func:`logit_lens`; NaN for a text without a scored position).
    The replicates of a joint bootstrap over texts (the same resampled texts at every layer) come from rows.

    Args:
        model: nnsight-wrapped causal LM.
        texts: Input texts.
        metric: One of :data:`METRICS` (default ``kl_to_final``, ``KL(p_final ‖ p_l)`` in nats).
        tokenizer: Tokenizer (default: the model's).
        layers: Layers ``0..L`` (default ``1..L``).
        positions: ``"all"`` or ``"answer"``.
        answer_marker: Marker preceding the answer.
        exclude_bos: Drop the prediction made from a leading BOS token.
        batch_size: Texts per forward pass (results do not depend on it).
        max_length: Tokens per text.
        padding_side: ``"right"`` or ``"left"``.
        token_chunk: Tokens per logits computation.
        progress: Progress bar.

    Returns:
        Array of shape ``(len(texts), len(layers))``, float64.

    Raises:
        ValueError: Unknown metric, invalid layers or positions, empty texts.
        NonFiniteError: NaN or infinite hidden states or lens log-probabilities (names the model and layer).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    ids, pos = _prepare(tokenizer, texts, positions=positions, answer_marker=answer_marker, exclude_bos=exclude_bos,
                        max_length=max_length)
    wanted = _check_layers(layers, _Lens(model).n_layers)
    sums, counts = _lens_sums(model, tokenizer, ids, pos, wanted, paper=False, batch_size=batch_size,
                              padding_side=padding_side, token_chunk=token_chunk, progress=progress)
    c = counts.numpy()
    per = sums[:, METRICS.index(metric), :].numpy().T
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(c[:, None] > 0, per / np.where(c > 0, c, 1)[:, None], np.nan)


def lens_divergence(
    pair: Any,
    texts: Sequence[str],
    *,
    layers: Iterable[int] | None = None,
    positions: str = "all",
    answer_marker: str = "Answer:",
    exclude_bos: bool = True,
    batch_size: int = 8,
    max_length: int = 512,
    padding_side: str = "right",
    token_chunk: int = 1024,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Per-layer divergence between the SFT and Base logit lenses on the same tokens.

    At each layer both models' lens distributions (each with its own final norm and LM head) are
    compared at every scored position: ``kl_sft_base = KL(p_SFT,l ‖ p_Base,l)`` (nats) and
    ``top1_agreement = 1[argmax p_SFT,l = argmax p_Base,l]``. Aggregation and columns as in
    :func:`logit_lens` (``paper`` is always False). Both models run over each batch in turn; only
    that batch's scored-position states of both are held.

    Args:
        pair: A :class:`~mbt.pairs.ModelPair`.
        texts: Input texts.
        layers: Layers ``0..L`` (default ``1..L``).
        positions: ``"all"`` or ``"answer"`` (see :func:`logit_lens`).
        answer_marker: Marker preceding the answer.
        exclude_bos: Drop the prediction made from a leading BOS token.
        batch_size: Texts per forward pass.
        max_length: Tokens per text.
        padding_side: ``"right"`` or ``"left"``.
        token_chunk: Tokens per logits computation.
        n_bootstrap: Bootstrap resamples.
        seed: Bootstrap seed.
        progress: Show a progress bar.

    Returns:
        Tidy DataFrame (:data:`COLUMNS`), metrics :data:`DIVERGENCE_METRICS`.
    """
    ids, pos = _prepare(pair.tokenizer, texts, positions=positions, answer_marker=answer_marker,
                        exclude_bos=exclude_bos, max_length=max_length)
    lenses = {role: _Lens(m) for role, m in pair.models().items()}
    n_layers = lenses["base"].n_layers
    wanted = _check_layers(layers, n_layers)
    pad_id = _pad_id(pair.base, pair.tokenizer)
    sums = torch.zeros((len(wanted), len(DIVERGENCE_METRICS), len(ids)), dtype=torch.float64)
    counts = torch.zeros(len(ids), dtype=torch.float64)
    batches = trace.length_batches([len(x) for x in ids], batch_size)
    with torch.no_grad():
        for batch in tqdm(batches, desc="lens divergence", disable=not progress, unit="batch"):
            if all(pos[i].numel() == 0 for i in batch):
                continue
            sub_ids, sub_pos = [ids[i] for i in batch], [pos[i] for i in batch]
            base_states, order = _batch_states(pair.base, sub_ids, sub_pos, wanted, padding_side=padding_side,
                                               pad_id=pad_id)
            sft_states, order_sft = _batch_states(pair.sft, sub_ids, sub_pos, wanted, padding_side=padding_side,
                                                  pad_id=pad_id)
            if order != order_sft:  # pragma: no cover - same ids, same bucketing
                raise RuntimeError("Base and SFT batches came back in different orders")
            _check_states(base_states, "lens divergence, base model")
            _check_states(sft_states, "lens divergence, sft model")
            samples = torch.cat([torch.full((pos[batch[r]].numel(),), batch[r], dtype=torch.long) for r in order])
            counts.index_add_(0, samples, torch.ones(samples.numel(), dtype=torch.float64))
            for start in range(0, samples.numel(), token_chunk):
                chunk = slice(start, start + token_chunk)
                for li, layer in enumerate(wanted):
                    lp_b = lenses["base"].log_probs(base_states[layer][chunk])
                    lp_s = lenses["sft"].log_probs(sft_states[layer][chunk]).to(lp_b.device)
                    require_finite(lp_b, f"lens divergence, base model, layer {layer}: lens log-probabilities")
                    require_finite(lp_s, f"lens divergence, sft model, layer {layer}: lens log-probabilities")
                    p_s = lp_s.exp()
                    kl = torch.where(p_s > 0, p_s * (lp_s - lp_b), 0.0).sum(-1)
                    agree = lp_s.argmax(-1) == lp_b.argmax(-1)
                    vals = torch.stack([kl.double(), agree.double()]).cpu()
                    sums[li].index_add_(1, samples[chunk], vals)
    return _table(sums, counts, wanted, DIVERGENCE_METRICS, n_layers, n_bootstrap=n_bootstrap, seed=seed,
                  positions=positions, paper=False)


def lens_logits(
    model: Any,
    token_ids: Sequence[Sequence[int]],
    *,
    layers: Iterable[int] | None = None,
    paper: bool = False,
    batch_size: int = 8,
    padding_side: str = "right",
) -> dict[int, list[torch.Tensor]]:
    """Lens log-probabilities at every real position, per layer and sample (tests and small inputs).

    Returns:
        ``{layer: [log-probs of sample i, shape (T_i, V)]}`` in the order of ``token_ids``; same
        computation as :func:`logit_lens` (``paper=True``: final norm twice at layer ``L``). Holds
        every layer's full distributions: use :func:`logit_lens` for real workloads.
    """
    ids = [list(x) for x in token_ids]
    lens = _Lens(model)
    wanted = _check_layers(layers, lens.n_layers)
    pad_id = _pad_id(model, getattr(model, "tokenizer", None))
    out: dict[int, list[Any]] = {layer: [None] * len(ids) for layer in wanted}
    with torch.no_grad():
        for batch in trace.length_batches([len(x) for x in ids], batch_size):
            sub_pos = [torch.arange(len(ids[i])) for i in batch]
            states, order = _batch_states(model, [ids[i] for i in batch], sub_pos, wanted,
                                          padding_side=padding_side, pad_id=pad_id)
            for layer in wanted:
                lp = lens.log_probs(states[layer], twice=paper and layer == lens.n_layers).cpu()
                for piece, r in zip(torch.split(lp, [len(ids[batch[r]]) for r in order]), order, strict=True):
                    out[layer][batch[r]] = piece
    return out

