"""What chapter 10 (knowledge or format) adds to `make book`, against chapter 5's swap sweep in the same run.

On the default toy pair and its SFT-intensity ladder (built in the cache first), nothing read from the
result cache, each part timed in wall-clock and CPU seconds:

* baseline: chapter 5's swap sweep (:func:`mbt.book.swap_table`: 200 texts, token accuracy, both heads,
  placebo) — a chapter the book already runs;
* chapter 10's ladder: Base and SFT of every rung in three formats on ``--n-items`` problems;
* chapter 10's swaps: every segment swapped both ways, scored by format and by knowledge on ``--n-swap``;
* the arithmetic alone that every LoRA run of chapter 6 now also scores (one run's worth, on the SFT model),
  times the sweep's runs.

Usage: ``.venv/bin/python benchmarks/bench_knowledge.py [--n-items 200 --n-swap 100 --threads 2]``.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _timed(label: str, fn, rows: list) -> object:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    rows.append((label, time.perf_counter() - wall, time.process_time() - cpu))
    print(f"{label}: {rows[-1][1]:.1f} s wall, {rows[-1][2]:.1f} s CPU", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n-items", type=int, default=200)
    parser.add_argument("--n-swap", type=int, default=100)
    parser.add_argument("--n-texts", type=int, default=200, help="texts of the baseline swap sweep (chapter 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lora-runs", type=int, default=30, help="LoRA runs of chapter 6's sweep")
    args = parser.parse_args()

    import torch

    import mbt
    from mbt import book, knowledge

    torch.set_num_threads(args.threads)
    pair = book.open_pair("toy")
    for name in book.knowledge_pairs(pair):  # builds missing rungs now, outside the timings
        book.open_pair(name)
    texts = mbt.load_texts("toy-math", n=args.n_texts, seed=0)
    rows: list[tuple[str, float, float]] = []
    _timed("baseline: chapter 5's swap sweep", lambda: book.swap_table(pair, texts, cache=False), rows)
    sets = _timed("prompts", lambda: book.knowledge_prompts("toy-math", args.n_items), rows)
    _timed("chapter 10: the ladder in three formats",
           lambda: book.knowledge_ladder(pair, book.knowledge_pairs(pair), sets, cache=False), rows)
    _timed("chapter 10: swaps by format and knowledge",
           lambda: book.knowledge_swaps(pair, sets, n_swap=args.n_swap, cache=False), rows)
    one = _timed("one LoRA run's arithmetic alone (on the SFT model)",
                 lambda: knowledge.score_model(pair.sft, pair.tokenizer, {"arithmetic": sets["arithmetic"]}), rows)
    assert len(one) == len(sets["arithmetic"].prompts)
    baseline = rows[0][1]
    chapter = sum(r[1] for r in rows[1:4])
    lora = rows[4][1] * args.lora_runs
    print(f"\nchapter 10 (prompts, ladder, swaps): {chapter:.1f} s = {chapter / baseline:.2f} × chapter 5's swap "
          f"sweep ({baseline:.1f} s)")
    print(f"arithmetic alone in {args.lora_runs} LoRA runs: {lora:.1f} s (run by the sweep's workers, "
          f"{lora / baseline:.2f} × the baseline)")
    print(f"added to make book, at most: {chapter + lora:.1f} s ({(chapter + lora) / 60:.1f} min) before "
          "the kernel's start-up and the figures")


if __name__ == "__main__":
    main()
