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
# # 2 · Convergence: each model's own geometry, layer by layer
#
# **The paper's claim** (§4.2, Fig. 2). Measured on each model separately, the intrinsic curves of Base
# and SFT are *synchronised*: they follow the same three stages — a transition from layer 0 to 1, a long
# plateau, a shift in the final layers. On OLMo2-13B {cite:p}`olmo2024olmo2` the effective rank peaks in the middle, the
# condition number has a trough, and in the last layers the effective rank collapses while the spectral
# norm exceeds 500.
#
# **Method.** Token-level metrics use each text's real-token matrix $H_i \in \mathbb{R}^{n_i \times D}$
# (first `n_token` texts); dataset-level metrics use the pooled matrix $X \in \mathbb{R}^{N \times D}$.
# With the eigenvalues $\lambda_j$ of the normalised Gram $K = \tilde X \tilde X^{\top}/D$ (rows centred
# and L2-normalised in the `standard` preset), $p_j = \lambda_j / \sum_k \lambda_k$:
#
# $$
# S_\alpha = \frac{1}{1-\alpha}\log \sum_j p_j^{\alpha} \;\xrightarrow{\alpha\to1}\; -\sum_j p_j \log p_j,
# \qquad \text{reported as } S_\alpha / \log \min(n, D),
# $$
#
# *prompt entropy* on $H_i$ (averaged over texts, Eq. 2) and *dataset entropy* on $X$ (Eq. 3). With the
# singular values $\sigma_j$ of $X$ and $q_j = \sigma_j / \sum_k \sigma_k$, the effective rank is
# $\exp(-\sum_j q_j \log q_j)$ (Eq. 4; Roy and Vetterli {cite:p}`roy2007effective`); the rank deficiency is $1 -
# \mathrm{rank}(X)/\min(N, D)$,
# the condition number $\sigma_{\max}/\sigma_{\min}$ and the spectral norm $\sigma_{\max}$. Curvature is
# the mean turning angle $\arccos \cos(d_t, d_{t+1})$ between successive token steps $d_t = h_{t+1} - h_t$
# (Eq. 5, radians), sparsity the share of activations with $|h| < 0.01 \cdot \mathrm{rms}(h_t)$.
# The `paper` preset swaps in the released code's choices (no centring, $\sigma^2$ in the effective rank,
# divided by $\min(N, D)$, a threshold relative to the sample's maximum, angles divided by $\pi$); see
# [Methods and conventions](../book/methods.md) and chapter 7.
#
# Beyond the paper's figure we also draw the per-text differences SFT − Base with 95 % bootstrap
# intervals (the paper's Eq. 8, which its code never computed).

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
datasets: list = []  # empty: the pair's defaults (toy: toy-math, toy-mc, toy-text; real: gsm8k, mmlu, wikitext)
n_pooled: int = 1000  # pooled texts per dataset (paper: 1,000; the authors' code: 200)
n_token: int = 100  # token-level texts (paper: 100; the authors' code: 50)
seed: int = 0  # sampling seed
conventions: str = "standard"  # "standard" (textbook formulas) or "paper" (the released code's)
batch_size: int = 8
max_length: int = 512
quick: bool = False  # smoke run: a handful of texts

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import display

import mbt.plots as mp
from mbt.metrics import INTRINSIC_METRICS
from mbt.pairs import pair_label

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
datasets = list(datasets) or book.default_datasets(P)
n_pooled, n_token = book.sizes(n_pooled, n_token, quick)
label = pair_label(P)
frame = book.analyze_datasets(P, datasets, n_pooled=n_pooled, n_token=n_token, seed=seed, conventions=conventions,
                              batch_size=batch_size, max_length=max_length)
print(f"{label}: L = {P.n_layers}; datasets {datasets}; {n_pooled} pooled / {n_token} token-level texts; "
      f"conventions {conventions!r} (cached: chapter 1 computed the same table)")

# %% [markdown]
# ## Base (dashed) and SFT (solid), per layer

# %%
fig = mp.convergence_figure(frame, title=f"Fig. 2 on {label}")
plt.show()

# %% [markdown]
# *What you should see, if the paper's reading holds:* the dashed and solid curves of one colour
# move together; most curves jump between layer 0 and 1, stay flat through the shaded middle band and
# move again at the right edge. The condition number and the spectral norm are on a log scale.
#
# ## SFT − Base, with intervals
#
# Token-level metrics are per text, so their difference has a 95 % bootstrap interval over texts; the
# dataset-level ones are single numbers per layer.

# %%
fig = mp.delta_figure(frame, ["prompt_entropy", "curvature", "sparsity", "dataset_entropy", "effective_rank",
                              "rank_deficiency", "spectral_norm"], title="SFT − Base per layer")
plt.show()

# %% [markdown]
# The first dataset's curves as numbers (SFT):

# %%
main = frame[frame["dataset"] == datasets[0]]
paper.save_table("intrinsic", main[main["model"] != "pair"])  # for chapter 8 (a no-op outside a book build)
sft_table = main[main["model"] == "sft"].pivot_table(index="layer", columns="metric", values="value")
sft_table[[m for m in INTRINSIC_METRICS if m in sft_table.columns]].round(4)

# %% [markdown]
# ## Paper vs ours
#
# Computed from the first dataset by `mbt.paper.convergence_findings`: the correlation of the Base and
# SFT curves beyond a smooth depth trend, per metric (log scale for σ_max and the condition number,
# surrogate null, Bonferroni over the metrics), the size of the 0 → 1 step and of the last-20 % steps
# against the middle steps, and band contrasts for the effective-rank peak and collapse. These pooled
# metrics have no per-layer interval, so the layers themselves are the units: with few layers per band
# (two in the last 20 % of a 10-layer model) most shape claims come out *inconclusive*, which is what
# such a sample can say. σ_max and the condition-number trough are shown for scale only.

# %%
findings = paper.convergence_findings(main)
display(paper.report(findings, pair=label, settings={"dataset": datasets[0], "n_pooled": n_pooled,
                                                     "n_token": n_token, "conventions": conventions}))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"metrics": frame, "findings": findings}, pair=P)
