r"""Quality checks of a toy build, written into its manifest.

Held-out ``toy_math`` exact match (Base 0- and k-shot, SFT 0-shot) and answer NLL
(:mod:`mbt.evaluate`), ``toy_mc`` letter accuracy, per-layer Base-vs-SFT linear CKA of mean-pooled
hidden states (:func:`mbt.metrics.cka`) and per-block relative weight change. The pooled states and
the letter scores are computed here with plain forward hooks on the in-memory models, because the build
runs before any pair can be loaded; the numbers are the same quantities the library reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mbt import evaluate, metrics
from mbt.toy import corpus
from mbt.toy.recipe import ToyConfig

__all__ = ["EVAL_FIELDS", "base_part", "base_quality", "quality"]


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

    letters = [tokenizer(" " + c, add_special_tokens=False)["input_ids"] for c in corpus.LETTERS]
    prefix = "".join(corpus.format_mc(s) + "\n\n" for s in shot_items)
    prompts = tokenizer([prefix + corpus.format_mc(it, with_answer=False) for it in items])["input_ids"]
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


#: The settings of :class:`~mbt.toy.recipe.ToyConfig` the Base's own numbers depend on (with the seed).
EVAL_FIELDS = ("eval_n", "eval_shots", "eval_max_new_tokens", "eval_batch", "threads")


def base_quality(base, tokenizer, cfg: ToyConfig, seed: int, progress: bool) -> dict[str, Any]:
    """The Base's own part of :func:`quality`: ``toy_math`` exact match (0- and k-shot) and answer NLL, ``toy_mc``.

    Args:
        base: the Base model.
        tokenizer: its tokenizer.
        cfg: the evaluation settings (``eval_*``).
        seed: the data seed (which test and shot items).
        progress: progress bars.

    Returns:
        ``{"toy_math": {"base_0shot", "base_<k>shot", "base_answer_nll", "examples": {…}}, "toy_mc": {…}}``,
        the entries :func:`quality` reports for the Base under the same keys.
    """
    test = corpus.toy_math("test", seed)[: cfg.eval_n]
    shots = corpus.toy_math("train", seed)[-cfg.eval_shots:]
    kw = dict(max_new_tokens=cfg.eval_max_new_tokens, batch_size=cfg.eval_batch, progress=progress)
    acc = {
        "base_0shot": evaluate.gsm8k_exact_match(base, tokenizer, test, **kw),
        f"base_{cfg.eval_shots}shot": evaluate.gsm8k_exact_match(
            base, tokenizer, test, shots=cfg.eval_shots, shot_items=shots, **kw),
    }
    math_q: dict[str, Any] = {k: round(float(df["correct"].mean()), 4) for k, df in acc.items()}
    math_q["examples"] = {k: df["generation"].head(3).tolist() for k, df in acc.items()}
    nll = evaluate.answer_nll(base, tokenizer, test, batch_size=cfg.eval_batch)
    math_q["base_answer_nll"] = round(float(nll["nll"].mean()), 4)
    mc_test = corpus.toy_mc("test", seed)[: cfg.eval_n]
    mc_shots = corpus.toy_mc("train", seed)[-cfg.eval_shots:]
    mc_q = {"base_0shot": round(_mc_accuracy(base, tokenizer, mc_test), 4),
            f"base_{cfg.eval_shots}shot": round(_mc_accuracy(base, tokenizer, mc_test, mc_shots), 4)}
    return {"toy_math": math_q, "toy_mc": mc_q}


def base_part(stored: dict[str, Any], cfg: ToyConfig) -> dict[str, Any]:
    """:func:`base_quality`'s entries taken from a build's stored ``quality`` (for a build of the same Base).

    Args:
        stored: a manifest's ``quality`` block, as :func:`quality` wrote it.
        cfg: the evaluation settings it was measured with (names the k-shot key).
    """
    k = f"base_{cfg.eval_shots}shot"
    math_q, mc_q = stored["toy_math"], stored["toy_mc"]
    return {"toy_math": {"base_0shot": math_q["base_0shot"], k: math_q[k],
                         "examples": {n: math_q["examples"][n] for n in ("base_0shot", k)},
                         "base_answer_nll": math_q["base_answer_nll"]},
            "toy_mc": {"base_0shot": mc_q["base_0shot"], k: mc_q[k]}}


def quality(base, sft, tokenizer, cfg: ToyConfig, seed: int, progress: bool, *,
            known_base: dict[str, Any] | None = None, generate: bool = True) -> dict[str, Any]:
    """Held-out quality of a build: toy-math exact match and NLL, toy-mc accuracy, layer CKA, weight change.

    Args:
        base: the Base model.
        sft: the SFT model.
        tokenizer: their tokenizer.
        cfg: the evaluation settings (``eval_*``).
        seed: the data seed.
        progress: progress bars.
        known_base: :func:`base_quality` of this Base with these settings, already measured (a ladder
            rung takes it from its Base build: same weights, data, settings and thread count, so the
            same numbers); ``None`` measures it.
        generate: Measure the SFT's generated exact match (the slow part); ``False`` leaves ``sft_0shot``,
            ``gap_points`` and the bar ``None`` (the answer NLL, accuracy of letters, CKA and weight change are
            still measured).
    """
    own = base_quality(base, tokenizer, cfg, seed, progress) if known_base is None else known_base
    test = corpus.toy_math("test", seed)[: cfg.eval_n]
    kw = dict(max_new_tokens=cfg.eval_max_new_tokens, batch_size=cfg.eval_batch, progress=progress)
    k = f"base_{cfg.eval_shots}shot"
    sft_acc = evaluate.gsm8k_exact_match(sft, tokenizer, test, **kw) if generate else None
    math_q: dict[str, Any] = {"n": len(test), "max_new_tokens": cfg.eval_max_new_tokens,
                              "base_0shot": own["toy_math"]["base_0shot"], k: own["toy_math"][k],
                              "sft_0shot": None if sft_acc is None else round(float(sft_acc["correct"].mean()), 4)}
    best_base = max(v for key, v in math_q.items() if key.startswith("base_"))
    math_q["gap_points"] = None if sft_acc is None else round(100 * (math_q["sft_0shot"] - best_base), 2)
    math_q["examples"] = {**own["toy_math"]["examples"],
                          **({} if sft_acc is None else {"sft_0shot": sft_acc["generation"].head(3).tolist()})}
    math_q["base_answer_nll"] = own["toy_math"]["base_answer_nll"]
    nll = evaluate.answer_nll(sft, tokenizer, test, batch_size=cfg.eval_batch)
    math_q["sft_answer_nll"] = round(float(nll["nll"].mean()), 4)

    mc_test = corpus.toy_mc("test", seed)[: cfg.eval_n]
    mc_q = {"n": len(mc_test), "chance": 0.25, **own["toy_mc"],
            "sft_0shot": round(_mc_accuracy(sft, tokenizer, mc_test), 4)}

    texts = [corpus.format_math(it) for it in test]
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
        "bars": {"math_gap_ge_40_points": None if math_q["gap_points"] is None else math_q["gap_points"] >= 40},
    }
