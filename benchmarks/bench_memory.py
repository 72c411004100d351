"""CPU memory of pair analysis: sequential mode (one model at a time) vs both models loaded.

Saves a random OLMo2 Base/SFT pair of a few hundred MB with ``save_pretrained``, then measures in
fresh subprocesses the peak resident memory above the post-import baseline of:

* ``one``: loading one model and tracing it (the reference: "one model");
* ``sequential``: ``analyze`` on ``load_pair(..., sequential=True)``;
* ``eager``: ``analyze`` on ``load_pair(...)`` (both models resident).

Prints each figure and the ratios to ``one`` (target for sequential: ≤ 1.3).
Usage: ``python benchmarks/bench_memory.py [--hidden 768 --layers 8 --texts 32]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def save_pair(root: Path, hidden: int, layers: int, vocab: int) -> int:
    tok = C.tokenizer(2048)
    config = C.olmo2_config(hidden=hidden, layers=layers, heads=hidden // 64, kv_heads=hidden // 64,
                            intermediate=4 * hidden, vocab=vocab)
    size = 0
    for role, seed in (("base", 0), ("sft", 1)):
        model = C.random_model(config, seed=seed)
        size = C.model_bytes(model)
        model.save_pretrained(root / role)
        tok.save_pretrained(root / role)
        del model
    return size


def child(mode: str, root: Path, n_texts: int) -> dict:
    import torch

    import mbt
    from mbt import trace

    torch.set_num_threads(2)
    texts = C.texts(n_texts)
    sampler = C.RssSampler()
    if mode == "one":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(root / "base")
        model = trace.wrap(AutoModelForCausalLM.from_pretrained(root / "base").eval(), tok)
        ids = trace.encode(tok, texts, max_length=128)
        trace.stream_layers(model, ids, lambda b: None, batch_size=8, progress=False)
    else:
        pair = mbt.load_pair(base=str(root / "base"), sft=str(root / "sft"), device="cpu",
                             sequential=(mode == "sequential"))
        mbt.analyze(pair, texts, batch_size=8, max_length=128, cache=False, progress=False, n_bootstrap=100)
    return {"peak_mb": sampler.stop()}


def run(mode: str, root: Path, n_texts: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--root", str(root), "--texts", str(n_texts)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--child", default=None)
    parser.add_argument("--root", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), args.texts)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size_mb = save_pair(root, args.hidden, args.layers, args.vocab) / 2**20
        one, seq, eager = (run(mode, root, args.texts) for mode in ("one", "sequential", "eager"))
    print(f"random OLMo2 pair: hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}; "
          f"one model = {size_mb:.0f} MB (fp32); {args.texts} texts")
    print("peak memory above the post-import baseline (RSS sampled every 5 ms):")
    print(f"  one model loaded and traced {one:7.0f} MB  = {one / size_mb:.2f} x model size")
    print(f"  analyze, sequential pair    {seq:7.0f} MB  = {seq / size_mb:.2f} x model size, "
          f"{seq / one:.2f} x the one-model run (target <= 1.3)")
    print(f"  analyze, both loaded        {eager:7.0f} MB  = {eager / size_mb:.2f} x model size, "
          f"{eager / one:.2f} x the one-model run")


if __name__ == "__main__":
    main()
