"""Benchmark ``mbt.analyze`` against its floor (bare forward passes) and an authors-style pipeline.

Random-initialised OLMo2 pair, 8 layers, hidden 256, on 256 synthetic texts of at most 128 tokens.
Prints, from measurements made in this run:

* analyze time ÷ bare forward time of both backbones over the same batches (target ≤ 1.5);
* analyze time and peak working memory ÷ a naive pipeline in the style of the released code
  (``output_hidden_states=True``, every layer of every sample kept, per-layer float32 SVDs
  afterwards) — targets ≤ 1/2 of its time and ≤ 1/4 of its memory;
* peak working memory of token-level metrics at 100 vs 400 texts (target growth ≤ 10%).

Each measurement runs in a fresh subprocess; working memory = peak RSS − RSS after loading.
Usage: ``python benchmarks/bench_analyze.py [--texts 256] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

LAYERS, HIDDEN, VOCAB, MAX_TOKENS, BATCH = 8, 256, 2048, 128, 16


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    tok = C.tokenizer(VOCAB)
    config = C.olmo2_config(hidden=HIDDEN, layers=LAYERS, heads=4, kv_heads=4, intermediate=4 * HIDDEN, vocab=VOCAB)
    return tok, [C.random_model(config, seed=seed) for seed in (0, 1)]


def _texts(n: int) -> list[str]:
    return C.texts(n)


def _rss_mb() -> float:
    return C.peak_rss_mb()


def _floor(tokenizer, models_, texts) -> None:
    import torch

    from mbt import trace

    ids = trace.encode(tokenizer, texts, max_length=MAX_TOKENS)
    for model in models_:
        for batch in trace.length_batches([len(x) for x in ids], BATCH):
            input_ids, mask, pos = trace.collate([ids[i] for i in batch], tokenizer.pad_token_id)
            with torch.no_grad():
                model.model(input_ids=input_ids, attention_mask=mask, position_ids=pos)


def _pair(tokenizer, models_):
    """Wrap both models as `load_pair` does (part of loading, not of the measured analysis)."""
    from mbt import trace
    from mbt.pairs import ModelPair, PairSpec

    wrapped = [trace.wrap(m, tokenizer) for m in models_]
    return ModelPair(wrapped[0], wrapped[1], tokenizer, PairSpec("bench", "a", "b", "custom"), LAYERS, HIDDEN)


def _mbt(pair, texts, metrics) -> None:
    from mbt import analysis

    analysis.analyze(pair, texts, metrics=metrics, batch_size=BATCH, max_length=MAX_TOKENS, cache=False,
                     progress=False, n_bootstrap=1000)


def _naive(tokenizer, models_, texts) -> None:
    """The released code's shape of computation: keep every layer of every sample, SVD afterwards."""
    import math

    import torch

    kept = []
    for model in models_:
        per_layer: list[list[torch.Tensor]] = [[] for _ in range(LAYERS + 1)]
        pooled: list[list[torch.Tensor]] = [[] for _ in range(LAYERS + 1)]
        for start in range(0, len(texts), BATCH):
            enc = tokenizer(texts[start:start + BATCH], padding=True, truncation=True, max_length=MAX_TOKENS,
                            return_tensors="pt")
            with torch.no_grad():
                out = model(**enc, output_hidden_states=True)
            m = enc["attention_mask"].unsqueeze(-1).float()
            for layer, h in enumerate(out.hidden_states):
                for row in range(h.shape[0]):
                    per_layer[layer].append(h[row].to(torch.float16).clone())  # pad rows kept, as they did
                pooled[layer].extend(((h * m).sum(1) / m.sum(1)).to(torch.float16))
        results = []
        for layer in range(LAYERS + 1):
            for x in per_layer[layer]:  # prompt entropy, curvature, sparsity per sample
                x = x.float()
                x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
                s = torch.linalg.svdvals(x @ x.T / HIDDEN + 1e-6 * torch.eye(x.shape[0]))
                p = s / s.sum()
                results.append(float(-(p * torch.log(p + 1e-10)).sum() / math.log(min(x.shape))))
                d = x[1:] - x[:-1]
                cos = torch.nn.functional.cosine_similarity(d[:-1], d[1:], dim=-1).clamp(-0.999, 0.999)
                results.append(float(torch.arccos(cos).mean()))
                results.append(float((x.abs() < 0.01 * x.abs().max()).float().mean()))
            x = torch.stack(pooled[layer]).float()
            s = torch.linalg.svdvals(x)
            results.append(float(s[0] / (s[-1] + 1e-9)))
        kept.append((pooled, results))
    for layer in range(LAYERS + 1):  # CKA between the two models
        x, y = (torch.stack(k[0][layer]).float() for k in kept)
        k1, k2 = x @ x.T, y @ y.T
        n = k1.shape[0]
        h = torch.eye(n) - 1.0 / n
        a, b = h @ k1 @ h, h @ k2 @ h
        _ = float((a * b).sum() / (a.norm() * b.norm()))


def child(mode: str, n_texts: int, threads: int) -> dict:
    tokenizer, models_ = _setup(threads)
    texts = _texts(n_texts)
    if mode.startswith("mbt"):
        pair = _pair(tokenizer, models_)
    loaded = _rss_mb()
    start = time.perf_counter()
    if mode == "floor":
        _floor(tokenizer, models_, texts)
    elif mode == "mbt":
        _mbt(pair, texts, "all")
    elif mode == "mbt-token":
        _mbt(pair, texts, ["prompt_entropy", "curvature", "sparsity"])
    elif mode == "naive":
        _naive(tokenizer, models_, texts)
    return {"seconds": time.perf_counter() - start, "work_mb": _rss_mb() - loaded}


def run(mode: str, n_texts: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--texts", str(n_texts),
                          "--threads", str(threads)], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.texts, args.threads)))
        return
    print(f"pair: random OLMo2, {LAYERS} layers, hidden {HIDDEN}; {args.texts} texts of <= {MAX_TOKENS} tokens; "
          f"batch {BATCH}; {args.threads} threads")
    floor, ours, naive = (run(m, args.texts, args.threads) for m in ("floor", "mbt", "naive"))
    print(f"bare forward (floor):  {floor['seconds']:7.2f} s")
    print(f"mbt.analyze:           {ours['seconds']:7.2f} s   work memory {ours['work_mb']:7.1f} MB")
    print(f"naive (authors-style): {naive['seconds']:7.2f} s   work memory {naive['work_mb']:7.1f} MB")
    print(f"analyze / floor          = {ours['seconds'] / floor['seconds']:.2f}   (target <= 1.5)")
    print(f"analyze / naive, time    = {ours['seconds'] / naive['seconds']:.2f}   (target <= 0.5)")
    print(f"analyze / naive, memory  = {ours['work_mb'] / max(naive['work_mb'], 1e-9):.2f}   (target <= 0.25)")
    small, large = run("mbt-token", 100, args.threads), run("mbt-token", 400, args.threads)
    growth = large["work_mb"] / max(small["work_mb"], 1e-9) - 1.0
    print(f"token-level work memory: 100 texts {small['work_mb']:.1f} MB, 400 texts {large['work_mb']:.1f} MB, "
          f"growth {100 * growth:+.1f}% (target <= +10%)")


if __name__ == "__main__":
    main()
