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
# # 4 · Weight change, and what it correlates with
#
# **The paper's claims** (§4.3, Figs. 4–5). Fine-tuning moves the weights of the last layers most: on OLMo2-13B
# {cite:p}`olmo2024olmo2` the change per layer is J-shaped, small in the early layers and above 0.10 in the
# final layer. Across layers, weight change correlates strongly *negatively* with the Base–SFT cosine similarity
# and strongly *positively* with the spectral metrics.
#
# **Method.** The paper defines the change of block $l$ as the summed Frobenius distance of its attention
# projections (Eq. 1),
#
# $$
# \Delta_l = \sum_{W \in \{W_Q, W_K, W_V, W_O\}} \bigl\lVert W^{\mathrm{SFT}}_l - W^{\mathrm{Base}}_l
# \bigr\rVert_F ,
# $$
#
# which we compute straight from the two checkpoints (tensor by tensor, never loading the models), also
# relative to $\sum \lVert W^{\mathrm{Base}}_l \rVert_F$ and for the whole block. The authors' code never
# diffed the checkpoints: its Fig. 4 is a short fine-tune of the Base model on GSM8K
# {cite:p}`cobbe2021gsm8k`, averaging
# $\lVert \Delta\theta \rVert_F$ over every tensor of the block — with settings that take zero real steps
# and pure-bf16 AdamW that rounds most updates away
# (appendix [The released code](../book/released_code.md)). We reproduce that quantity too, done right
# (float32 master weights, a real number of steps, loss on real tokens only).
#
# A J-shaped profile alone does not say *why* the last blocks move most. The paper's reading is that the
# layers nearest the loss receive the largest updates; an equal-step control, which rescales every layer's
# update to the same relative size after each optimiser step, tests exactly that, and finds the late-layer
# profile persisting in some architectures and objectives and collapsing in others
# {cite:p}`billa2026decomposing`. The weight change here is read from the checkpoints as they are.
#
# Block $l$ produces layer $l$, so a correlation over layers pairs each block with the state it writes
# (the authors' merge paired it with its input). Because almost any two curves that grow with depth
# correlate, we report next to Pearson's $r$ the **partial correlation given depth**: both series are
# regressed on the layer index and the residuals are correlated.

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
datasets: list = []  # metrics for the correlations: the first of these (empty: the pair's defaults, as in chapter 1)
n_pooled: int = 1000  # as in chapter 1 (the metrics come from its cached analysis)
n_token: int = 100
seed: int = 0
conventions: str = "standard"
finetune_dataset: str = ""  # own fine-tune data (empty: GSM8K train as the authors; toy pairs: toy-math train)
finetune_texts: int = 512  # training texts
finetune_steps: int = 100  # optimiser steps (the authors' settings took 0 real steps)
finetune_lr: float = 2e-5  # the authors' learning rate
batch_size: int = 8
max_length: int = 512
quick: bool = False  # smoke run

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import mbt
import mbt.plots as mp
from mbt.identity import cached_call
from mbt.pairs import pair_label
from mbt.weights import block_series

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
datasets = list(datasets) or book.default_datasets(P)
n_pooled, n_token = book.sizes(n_pooled, n_token, quick)
finetune_texts = book.quick_size("finetune_texts", finetune_texts, quick)
finetune_steps = book.quick_size("finetune_steps", finetune_steps, quick)
label = pair_label(P)

# %% [markdown]
# ## Fig. 4: how far each block moved

# %%
diff = cached_call(mbt.weights.weight_change, P)
ft_data = finetune_dataset or book.default_datasets(P, "finetune")[0]
ft_texts = mbt.load_texts(ft_data, n=finetune_texts, seed=seed, split=mbt.data.training_split(ft_data))
own = cached_call(mbt.weights.finetune_weight_change, P.base, P.tokenizer, ft_texts, steps=finetune_steps,
                       lr=finetune_lr, batch_size=batch_size, max_length=max_length, seed=seed, progress=False)
series = {
    "Eq. 1: Σ‖ΔW‖_F over q, k, v, o": block_series(diff, kind="eq1", column="delta_fro"),
    "Eq. 1 relative to ‖W_Base‖": block_series(diff, kind="eq1", column="relative"),
    "whole block, relative": block_series(diff, kind="block", column="relative"),
    f"own fine-tune ({finetune_steps} steps): mean ‖Δθ‖_F": block_series(own, kind="block_mean", column="delta_fro"),
    "own fine-tune: mean gradient norm": block_series(own, kind="block_mean", column="grad_norm"),
}
paper.save_table("weights", book.weights_curve(diff, P.n_layers))  # for chapter 8 (no-op outside a build)
print(f"own fine-tune: {len(ft_texts)} texts of {ft_data}, {finetune_steps} steps at lr {finetune_lr}")
fig = mp.weight_figure(series, n_layers=P.n_layers, title=f"Fig. 4 on {label}: weight change per block")
plt.show()

# %% [markdown]
# *What you should see, if the paper's reading holds:* curves low on the left that rise to their
# maximum at the last block (a "J"). The top row is the checkpoint difference the paper defines; the
# bottom row is the authors' own-fine-tune measurement (the Base model fine-tuned on the training split
# of the task printed above).

# %%
pd.DataFrame(series).round(4)

# %% [markdown]
# ## Fig. 5: correlation with the representation metrics, raw and depth-controlled
#
# The metrics are chapter 1's per-layer table of the first dataset (the pair metrics and the SFT
# model's own metrics); the series correlated with them is the paper's Eq. 1.

# %%
frame = book.analyze_datasets(P, datasets[:1], n_pooled=n_pooled, n_token=n_token, seed=seed, conventions=conventions,
                              batch_size=batch_size, max_length=max_length)
metrics = book.metric_table(frame, model="sft")
corr = mbt.correlate.layer_correlations(series["Eq. 1: Σ‖ΔW‖_F over q, k, v, o"], metrics, x_name="weight change")
fig = mp.correlation_figure(corr, methods=("pearson", "spearman", "partial_pearson"),
                            title=f"Fig. 5 on {label}: weight change vs metrics over {P.n_layers} layers")
plt.show()

# %% [markdown]
# A coefficient that is large in the first column and near zero in the last is explained by the shared
# trend with depth alone. With $L$ layers there are only $L$ points (the partial correlation loses one
# more degree of freedom), so the stars (p < 0.05) matter. Even they assume independent layers, which
# neighbouring layers are not; the verdicts below do not use them.
#
# ## Paper vs ours
#
# The J shape is judged on the **relative** Eq. 1 change (÷ ‖W_Base‖_F, scale-free), as a contrast of
# the last 20 % of the blocks against the middle 20–80 % with the blocks as units (an interval corrected
# for the autocorrelation of neighbouring blocks). The Fig. 5 correlations use the same relative series
# against each metric, after removing a cubic spline in depth from both curves; the interval comes from
# phase-randomised surrogates {cite:p}`theiler1992testing` that keep each curve's smoothness, not from a
# t-test over independent layers.

# %%
relative = series["Eq. 1 relative to ‖W_Base‖"]
findings = paper.weights_findings(relative, series[f"own fine-tune ({finetune_steps} steps): mean ‖Δθ‖_F"])
findings += paper.correlation_findings(relative, metrics)
display(paper.report(findings, pair=label, settings={"finetune_steps": finetune_steps, "finetune_lr": finetune_lr,
                                                     "dataset": datasets[0]}))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"weight_change": diff, "own_finetune": own, "correlations": corr, "findings": findings},
               pair=P)
