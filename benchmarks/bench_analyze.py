"""Benchmark ``mbt.analyze`` against its floor (bare forward passes) and an authors-style pipeline.

Random-initialised OLMo2 pair, 8 layers, hidden 256, on 256 synthetic texts of at most 128 tokens.
Prints, from measurements made in this run:

* analyze time ÷ bare forward time of both backbones over the same batches (target ≤ 1.5);
* analyze time and peak working memory ÷ a naive pipeline in the style of the released code
  (``output_hidden_states=True``, every layer of every sample kept, per-layer float32 SVDs
  afterwards) — targets ≤ 1/2 of its time and ≤ 1/4 of its memory;
* peak working memory of token-level metrics at 100 vs 400 texts (target growth ≤ 10%).

Each measurement runs in a fresh subprocess; working memory = peak RSS − RSS after loading the models
and the libraries (`mbt.analysis` and what it imports), so that it counts the work alone.
Usage: ``python benchmarks/bench_analyze.py [--texts 256] [--threads 2]``.

``--paper-proportions`` runs the paper's set-up at CPU scale instead: 1,000 pooled texts of 128
tokens with token-level metrics on the first 100 (the paper's counts), and an OLMo2 pair whose
proportions are those of OLMo-2-1B — MLP 4× the width, 16 layers, vocabulary 49× the width
(hidden 128, vocabulary 6,272 vs 2,048 and 100,352), so that the LM head is the same ~15 % of a
forward pass's FLOPs (printed). It prints, all from this run, analyze ÷ bare forwards,
analyze ÷ the naive pipeline in time and in peak working memory (targets ≤ 1.3, ≤ 1/2, ≤ 1/10 at
1,000 texts), what analyze's joint bootstrap over texts adds to it (analyze with and without its replicates,
target ≤ +15 %), and how each grows from ``--small`` (250) to 1,000 pooled texts. The naive
pipeline computes its token-level metrics on the same 100 texts but, like the released code,
keeps every layer of every sample until the end.
Usage: ``python benchmarks/bench_analyze.py --paper-proportions [--texts 1000 --small 250 --hidden 128]``.
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

import mbt  # noqa: E402, F401  (puts mbt.cpu's bounded OpenMP spin into the environment the children inherit)

LAYERS, HIDDEN, VOCAB, MAX_TOKENS, BATCH = 8, 256, 2048, 128, 16
TOKENIZER_VOCAB = 2048
#: ``--paper-proportions``: OLMo-2-1B's shape ratios (16 layers, MLP 4x, vocabulary 49x hidden).
PAPER_LAYERS, PAPER_VOCAB_PER_HIDDEN = 16, 49
PAPER_TOKEN_TEXTS = 100
_paper = False


def _use_paper_proportions(hidden: int) -> None:
    global LAYERS, HIDDEN, VOCAB, _paper
    LAYERS, HIDDEN, VOCAB, _paper = PAPER_LAYERS, hidden, PAPER_VOCAB_PER_HIDDEN * hidden, True


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    tok = C.tokenizer(TOKENIZER_VOCAB)  # the model's vocabulary may be larger: the LM head's cost is what matters
    heads = max(1, HIDDEN // 32) if _paper else 4
    config = C.olmo2_config(hidden=HIDDEN, layers=LAYERS, heads=heads, kv_heads=heads, intermediate=4 * HIDDEN,
                            vocab=VOCAB)
    return tok, [C.random_model(config, seed=seed) for seed in (0, 1)]


def _texts(n: int) -> list[str]:
    if _paper:  # long enough that (almost) every text fills MAX_TOKENS, as the paper's 128-token texts
        return C.texts(n, min_words=150, max_words=220)
    return C.texts(n)


def _n_token(n_texts: int) -> int:
    """Texts the token-level metrics use: the paper's 100 (at most all) or, by default, all."""
    return min(PAPER_TOKEN_TEXTS, n_texts) if _paper else n_texts


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


def _mbt(pair, texts, metrics, **kwargs) -> None:
    from mbt import analysis

    analysis.analyze(pair, texts, metrics=metrics, batch_size=BATCH, max_length=MAX_TOKENS, cache=False,
                     progress=False, n_token=_n_token(len(texts)), **kwargs)


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
        n_token = _n_token(len(texts))
        for layer in range(LAYERS + 1):
            for x in per_layer[layer][:n_token]:  # prompt entropy, curvature, sparsity per sample
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
    """Run one measurement in this (fresh) process: seconds and working memory of ``mode``."""
    tokenizer, models_ = _setup(threads)
    texts = _texts(n_texts)
    if mode.startswith("mbt"):
        pair = _pair(tokenizer, models_)
    import mbt.analysis  # noqa: F401  (libraries are loaded before the baseline: working memory is the work's)
    loaded = _rss_mb()
    start = time.perf_counter()
    if mode == "floor":
        _floor(tokenizer, models_, texts)
    elif mode == "mbt":
        _mbt(pair, texts, "all")  # analyze's default joint bootstrap over texts
    elif mode == "mbt-noboot":
        _mbt(pair, texts, "all", n_bootstrap=0)
    elif mode == "mbt-token":
        _mbt(pair, texts, ["prompt_entropy", "curvature", "sparsity"])
    elif mode == "naive":
        _naive(tokenizer, models_, texts)
    return {"seconds": time.perf_counter() - start, "work_mb": _rss_mb() - loaded}


def run(mode: str, n_texts: int, threads: int) -> dict:
    """One measurement in a fresh subprocess."""
    extra = ["--paper-proportions", "--hidden", str(HIDDEN)] if _paper else []
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--texts", str(n_texts),
                          "--threads", str(threads), *extra], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def paper_main(n_large: int, n_small: int, threads: int) -> None:
    """``--paper-proportions``: analyze vs floor and naive at the paper's counts and LM-head share."""
    share = C.lm_head_share(hidden=HIDDEN, layers=LAYERS, intermediate=4 * HIDDEN, vocab=VOCAB, tokens=MAX_TOKENS)
    olmo = C.OLMO2_DIMS["olmo2-1b"]
    share_1b = C.lm_head_share(hidden=olmo["hidden"], layers=olmo["layers"], intermediate=olmo["intermediate"],
                               vocab=olmo["vocab"], tokens=MAX_TOKENS)
    print(f"paper proportions: random OLMo2 pair, {LAYERS} layers, hidden {HIDDEN}, MLP {4 * HIDDEN}, vocabulary "
          f"{VOCAB}; LM head = {100 * share:.1f}% of a forward pass's FLOPs (OLMo-2-1B: {100 * share_1b:.1f}%); "
          f"texts of {MAX_TOKENS} tokens, token-level metrics on {PAPER_TOKEN_TEXTS}; batch {BATCH}; "
          f"{threads} threads; loadavg {C.loadavg()}")
    rows: dict[int, dict[str, dict]] = {}
    for n in (n_small, n_large):
        rows[n] = {}
        for mode in ("floor", "mbt", "mbt-noboot", "naive"):
            rows[n][mode] = r = run(mode, n, threads)
            print(f"  {mode:5s} {n:5d} texts: {r['seconds']:8.2f} s, working memory {r['work_mb']:7.1f} MB, "
                  f"loadavg {C.loadavg()}", flush=True)
    print(f"loadavg after: {C.loadavg()}")
    print(f"{'texts':>6s} {'floor s':>8s} {'analyze s':>9s} {'naive s':>8s} {'analyze MB':>10s} {'naive MB':>9s} "
          f"{'an/floor':>8s} {'an/naive t':>10s} {'an/naive mem':>12s}")
    for n, r in rows.items():
        f, a, v = r["floor"], r["mbt"], r["naive"]
        print(f"{n:6d} {f['seconds']:8.2f} {a['seconds']:9.2f} {v['seconds']:8.2f} {a['work_mb']:10.1f} "
              f"{v['work_mb']:9.1f} {a['seconds'] / f['seconds']:8.2f} {a['seconds'] / v['seconds']:10.2f} "
              f"{a['work_mb'] / max(v['work_mb'], 1e-9):12.3f}")
    big, small = rows[n_large], rows[n_small]
    for mode, label in (("floor", "floor"), ("mbt", "analyze"), ("naive", "naive")):
        grow = big[mode]["seconds"] / small[mode]["seconds"]
        print(f"{label:8s} growth {n_small} -> {n_large} texts: time x{grow:.2f}, working memory "
              f"{small[mode]['work_mb']:.1f} -> {big[mode]['work_mb']:.1f} MB")
    a, f, v = big["mbt"], big["floor"], big["naive"]
    print(f"at {n_large} texts: the joint bootstrap over texts adds "
          f"{a['seconds'] / big['mbt-noboot']['seconds'] - 1:+.1%} to analyze (target <= +15%; "
          f"analyze {a['seconds']:.2f} s with its replicates, {big['mbt-noboot']['seconds']:.2f} s without)")
    print(f"at {n_large} texts: analyze / floor = {a['seconds'] / f['seconds']:.2f} (target <= 1.3); "
          f"analyze / naive time = {a['seconds'] / v['seconds']:.2f} (target <= 0.5); "
          f"analyze / naive working memory = {a['work_mb'] / max(v['work_mb'], 1e-9):.3f} (target <= 0.1)")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None)
    parser.add_argument("--paper-proportions", action="store_true",
                        help="the paper's text counts and LM-head share (1,000 pooled + 100 token-level texts)")
    parser.add_argument("--small", type=int, default=250, help="with --paper-proportions: the smaller pooled count")
    parser.add_argument("--hidden", type=int, default=128, help="with --paper-proportions: the width (64 is 4x faster)")
    args = parser.parse_args()
    if args.paper_proportions:
        _use_paper_proportions(args.hidden)
    if args.child:
        print(json.dumps(child(args.child, args.texts, args.threads)))
        return
    if args.paper_proportions:
        paper_main(1000 if args.texts == 256 else args.texts, args.small, args.threads)
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
