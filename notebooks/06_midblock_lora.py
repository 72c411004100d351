# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6 · Mid-Block Efficient Tuning: LoRA on chosen segments only
#
# **The paper's claims** (§4.4, Fig. 7, Appendices A–B). If the middle layers are the stable substrate of
# fine-tuning, LoRA {cite:p}`hu2022lora` adapters restricted to them should do at least as well as full-depth
# LoRA at a similar budget. On GSM8K {cite:p}`cobbe2021gsm8k`, OLMo2-7B {cite:p}`olmo2024olmo2` with adapters on
# segment 2 of 5 (`01000`) reaches 0.375 against 0.28 for full-depth LoRA (`11111`) — "+10.2 %" in the abstract;
# OLMo2-13B `01110` 0.30 vs 0.27, OLMo2-32B `01100` 0.32 vs 0.29, while edge segments do worse (`10000`: 0.22
# and 0.25). With 3 and 10 segments (Appendix A, ToxiGen {cite:p}`hartvigsen2022toxigen`) the scores form an
# inverted U peaking in the middle; and middle segments forget least (Appendix B: loss on IFEval
# {cite:p}`zhou2023ifeval` and MT-Bench {cite:p}`zheng2023mtbench` closest to the untuned Base).
#
# **Method.** A mask is a string over $\{0, 1\}$, one character per segment, the first nearest the input:
# segment $i$ of $n$ covers the layers $[\lfloor iL/n \rfloor, \lfloor (i+1)L/n \rfloor)$ (0-based
# blocks). LoRA adapts the attention projections of the chosen layers only, and the budget is matched:
# with $m$ of the $L$ layers adapted, the rank is the integer closest to $rL/m$, so every mask trains about
# as many parameters as full-depth LoRA at rank $r$,
#
# $$
# W \mapsto W + \frac{\alpha}{r_m} B A, \qquad B \in \mathbb{R}^{d_{\mathrm{out}} \times r_m},\;
# A \in \mathbb{R}^{r_m \times d_{\mathrm{in}}}, \qquad
# r_m = \operatorname{round}\Bigl(\frac{r L}{m}\Bigr).
# $$
#
# The authors kept $\alpha = 128$ while the rank varied five-fold, so their masks also differ in the
# effective step size $\alpha/r_m$ (appendix [The released code](../book/released_code.md)); our
# `standard` preset keeps $\alpha/r_m$ constant, the `paper` preset reproduces the confound. Each mask is
# trained with several seeds (data order and adapter initialisation) and scored on held-out problems by
# exact match with a 95 % interval, by the answer's teacher-forced loss (far less noisy), and by retention
# — the perplexity on held-out general text and instructions before and after tuning. The sweep is stored,
# so chapter 7 reuses it.

# %% tags=["hide-input"]
# Setup: install mbt when this runtime lacks it (e.g. a fresh Colab), then pick the GPU when there is one.
import importlib.util
import subprocess
import sys

MBT = "mbt @ git+https://github.com/mbt-project/mbt"  # what pip installs when mbt is missing
if importlib.util.find_spec("mbt") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", MBT])

from mbt import book, paper

DEVICE = book.setup_notebook()  # the book's figure style, quiet progress bars; "cuda" when a GPU is visible

# %% tags=["parameters"]
pair: str = "toy"  # a registered pair (`mbt pairs`)
base: str = ""  # Base model folder or Hub id; with `sft` it replaces `pair`
sft: str = ""  # SFT model folder or Hub id
device_map: str = ""  # "auto" spreads a large pair over several GPUs
sequential: bool = False  # load one model at a time: Base, then SFT (a large pair on one GPU)
task: str = ""  # training and test task (empty: GSM8K as in the paper; toy pairs: toy-math)
masks: list = []  # 5-segment masks (empty: the paper's ten, 00000: no adapter)
seeds: list = [0, 1, 2]  # seeds per mask (data order and adapter initialisation)
appendix_a: bool = False  # True adds the 3- and 10-segment single-segment families (first seed only)
preset: str = "standard"  # "standard": constant α/r; "paper": lora_alpha: 128 whatever the rank (the authors')
rank: int = 0  # full-depth LoRA rank that sets the budget (0: mbt.tune's default)
steps: int = 0  # optimiser steps per run (0: mbt.tune's default, 240)
n_test: int = 200  # held-out problems per run (accuracy and answer NLL)
threads: int = 1  # CPU threads per run, pinned: CPU LoRA results are bit-identical only for the same thread count
workers: int = 0  # runs side by side on the CPU (0: as many as the CPUs fit); results do not depend on it
quick: bool = False  # smoke run: three masks, one seed, two steps

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import mbt
import mbt.plots as mp
from mbt.pairs import pair_label
from mbt.segments import single_segment_masks

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
S = book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps, n_test=n_test,
                    threads=threads, workers=workers, quick=quick)  # chapter 7 builds the same object
appendix_a = appendix_a and not quick
label = pair_label(P)
print(f"{label}: L = {P.n_layers}; {S.describe()}")

# %% [markdown]
# ## The sweep: masks × seeds

# %%
table = S.run(P)
columns = paper.sweep_columns(table)
score, nll, retention = columns["score"], columns["nll"], columns["retention"]
shown = ["mask", "seed", "layers", "rank", "alpha", "trainable_params", "budget_ratio", "accuracy",
         "accuracy_ci_low", "accuracy_ci_high", "answer_nll", *retention, "train_seconds"]
display(table[[c for c in shown if c in table.columns]].round(4))

# %% [markdown]
# ## Fig. 7: task score per mask
#
# Bars are means over seeds, dots single runs with their 95 % intervals; red bars are masks that leave
# both the first and the last segment untouched ("middle" masks). The dotted line is the untuned Base.

# %%
values = [c for c in (score, nll, *retention) if c is not None]
intervals = {score: (columns["low"], columns["high"]), nll: (columns["nll_low"], columns["nll_high"])}
untuned = table[table["mask"].astype(str) == "00000"]
reference = {c: float(untuned[c].mean()) for c in values} if len(untuned) else None
ylabels = {"accuracy": "exact match", "answer_nll": "answer NLL (nats/token)",
           "ppl_instruct": "perplexity, held-out instructions", "ppl_text": "perplexity, held-out text"}
fig = mp.mask_figure(table, values, intervals=intervals, reference=reference, order=list(S.masks), ylabels=ylabels,
                     title=f"Fig. 7 on {label}: segment LoRA on {S.task} ({preset} preset)")
plt.show()

# %% [markdown]
# Mean and seed-to-seed standard deviation per mask (`mbt.tune.summarize_sweep`). A difference between
# two masks smaller than their spread is not a difference.
#
# **What this sweep can settle.** Masks trained with the same seed share the data order and the
# initialisation, so the verdicts below compare masks *paired by seed*, with a Student $t$ interval over
# seeds: with $S$ seeds its half-width is $t_{0.975, S-1}\, s_d / \sqrt{S}$, where $s_d$ is the seed-to-seed
# SD of the difference ($t_{0.975,2} = 4.30$ for 3 seeds). With a seed SD of 0.02, three seeds resolve a
# gap of about 0.1 (the paper's OLMo2-7B `01000` vs `11111`) but not 0.03 (its 13B and 32B gaps): those
# rows come out *inconclusive*, and their MDE says how large a gap would have been needed. The
# Appendix A families run a single seed, so their shape claims are inconclusive by construction: one
# run has no seed-to-seed spread to compare a difference with.

# %%
summary = mbt.tune.summarize_sweep(table, metrics=[c for c in (score, nll) if c])
paper.save_table("lora", summary)  # for chapter 8 (a no-op outside a book build)
display(summary.round(4))

# %% [markdown]
# ## Appendix A: 3 and 10 segments
#
# Every single-segment mask of the coarser and the finer partition (the paper's Tables 1 and 2).

# %%
extra = None
if appendix_a:
    families = [single_segment_masks(n) for n in (3, 10) if n <= P.n_layers]
    extra = pd.concat([S.run(P, masks=family, seeds=S.seeds[:1]) for family in families], ignore_index=True)
    for family in families:
        part = extra[extra["mask"].astype(str).isin(family)]
        fig = mp.mask_figure(part, [c for c in (score, nll) if c], order=family, ylabels=ylabels,
                             intervals={score: (columns["low"], columns["high"])},
                             title=f"Appendix A on {label}: {len(family)} segments, one tuned")
        plt.show()

# %% [markdown]
# ## Appendix B: retention
#
# Perplexity on held-out instructions (the stand-in for the paper's IFEval) and on held-out general
# text (for MT-Bench) that tuning never saw, per mask; closer to the untuned Base (`00000`) means less
# forgetting. (The paper's numbers are, per the released code, a mean loss including padding rather than a
# perplexity, on other data and another model: compare orderings, not values.)

# %%
if retention:
    changes = [c for c in ("ppl_instruct_change", "ppl_text_change") if c in table.columns]
    display(table.groupby("mask", sort=False)[retention + changes].mean().round(4))

# %% [markdown]
# ## Paper vs ours
#
# One row per distinct comparison on this pair: the paper's `10000` claims for OLMo2-13B and -32B are the
# same test here, and so are its four `11111` numbers (shown for scale). "Mid-Block beats standard
# LoRA" tests *every* middle mask against `11111` with a Bonferroni correction (each at
# $1 - 0.05/k$) and holds if any of them does; choosing the best of the middle masks first and then
# testing it at 95 % would win by chance far too often.

# %%
both = table if extra is None else pd.concat([table, extra], ignore_index=True)
findings = paper.lora_findings(both)
display(paper.report(findings, pair=label, settings=S.record()))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"runs": both, "summary": summary, "findings": findings}, pair=P)
