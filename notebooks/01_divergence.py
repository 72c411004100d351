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
# # 1 · Divergence: where do Base and SFT part ways?
#
# **The paper's claim** (§4.2, Fig. 1). Comparing a Base model with its SFT checkpoint layer by layer, the
# representations stay close through most of the network and separate sharply at the end. On OLMo2-32B
# {cite:p}`olmo2024olmo2`, linear CKA between Base and SFT sits on a plateau for layers 0–56 of 64 and then
# drops to the final layer; the mean shift is negligible in shallow layers and spikes in the last five; cosine
# similarity agrees. Hence the paper's summary: *middle layers (20–80 % of the depth) are stable, the final
# layers are the most sensitive*.
#
# **Method.** Both models read identical token ids. At layer $l$ ($0$ = embedding output; $l \ge 1$ =
# residual stream after block $l$, before the final norm) each text becomes one vector, the mean of its
# real tokens' states; stacking $N$ texts gives $X_l$ (Base) and $Y_l$ (SFT) in $\mathbb{R}^{N\times D}$.
# With column-centred $X_c, Y_c$ (linear CKA {cite:p}`kornblith2019similarity`, the paper's Eq. 6):
#
# $$
# \mathrm{CKA}(X_l, Y_l) = \frac{\lVert Y_c^{\top} X_c \rVert_F^2}{\lVert X_c^{\top} X_c \rVert_F\,
# \lVert Y_c^{\top} Y_c \rVert_F},
# \qquad
# \cos_l = \frac1N \sum_i \frac{x_i \cdot y_i}{\lVert x_i\rVert\,\lVert y_i\rVert},
# \qquad
# \mathrm{shift}_l = \Bigl\lVert \tfrac1N \textstyle\sum_i y_i - \tfrac1N \sum_i x_i \Bigr\rVert_2 .
# $$
#
# Cosine similarity is per text, so it carries a 95 % bootstrap interval over texts. CKA is a
# dataset-level number; next to it we show the *debiased* CKA (unbiased HSIC), because the biased
# estimator is inflated when $N$ is not much larger than $D$. The paper's seed-robustness check re-ran
# identical forward passes (appendix [The released code](../book/released_code.md)); ours compares two
# *disjoint halves* of the sample.

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
pair: str = "toy"  # a registered pair (`mbt pairs`): toy, olmo2-1b, olmo2-7b, olmo2-13b, olmo2-32b, mistral-7b
base: str = ""  # Base model folder or Hub id; with `sft` it replaces `pair`
sft: str = ""  # SFT model folder or Hub id
device_map: str = ""  # "auto" spreads a large pair over several GPUs
sequential: bool = False  # load one model at a time: Base, then SFT (a large pair on one GPU)
datasets: list = []  # empty: the pair's defaults (toy: toy-math, toy-mc, toy-text; real: gsm8k, mmlu, wikitext)
n_pooled: int = 1000  # pooled texts per dataset (paper: 1,000; the authors' code: 200)
n_token: int = 100  # token-level texts (paper: 100; the authors' code: 50)
seed: int = 0  # sampling seed (the authors used 42)
robustness: bool = True  # repeat the pair metrics on two disjoint halves of the sample
conventions: str = "standard"  # "standard" (textbook formulas) or "paper" (the released code's)
batch_size: int = 8
max_length: int = 512
quick: bool = False  # smoke run: a handful of texts

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import display

import mbt.plots as mp
from mbt.pairs import pair_label

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
datasets = list(datasets) or book.default_datasets(P)
n_pooled, n_token = book.sizes(n_pooled, n_token, quick)
label = pair_label(P)
print(f"{label}: L = {P.n_layers} blocks, D = {P.hidden_size}; datasets {datasets}; "
      f"{n_pooled} pooled / {n_token} token-level texts; conventions {conventions!r}")

# %% [markdown]
# ## Alignment per layer
#
# One call computes every metric of chapters 1, 2 and 4 for each dataset (and caches it: chapters 2 and
# 4 reuse the result).

# %%
frame = book.analyze_datasets(P, datasets, n_pooled=n_pooled, n_token=n_token, seed=seed, conventions=conventions,
                              batch_size=batch_size, max_length=max_length)
fig = mp.divergence_figure(frame, title=f"Fig. 1 on {label}: Base vs SFT per layer")
plt.show()

# %% [markdown]
# *What you should see, if the paper's reading holds:* flat CKA and cosine curves near 1 through the
# shaded middle band and a clear drop to the right of it; a mean shift near 0 on the left that rises at
# the end. The top axis gives the relative depth $l/L$, so pairs of different depth can be compared.
#
# The biased and the debiased CKA of the first dataset, side by side:

# %%
main = frame[frame["dataset"] == datasets[0]]
paper.save_table("pair_metrics", main[main["model"] == "pair"])  # for chapter 8 (a no-op outside a book build)
fig, ax = plt.subplots(figsize=(6.4, 3.4))
mp.plot_layers(ax, main, "cka", models=("pair",), hue=None, label_suffix=" (biased)")
mp.plot_layers(ax, main, "cka_debiased", models=("pair",), hue=None, label_suffix=" (debiased)", linestyle=":",
               axis=False)
ax.set_ylabel("CKA(Base, SFT)")
ax.legend()
plt.show()

# %% [markdown]
# The numbers behind the figure (first dataset):

# %%
table = main[main["model"] == "pair"].pivot_table(index="layer", columns="metric", values="value")
table[[m for m in ("cka", "cka_debiased", "cosine_similarity", "mean_shift", "relative_mean_shift")
       if m in table.columns]].round(4)

# %% [markdown]
# ## Robustness to the sample
#
# The same pair metrics on two disjoint halves of the first dataset's sample (texts at even and at odd
# positions). If the curves are a property of the models rather than of the texts, the halves agree to
# well within the size of the final-layer drop.

# %%
halves = None
if robustness:
    halves = book.analyze_halves(P, datasets[0], n_pooled=n_pooled, seed=seed, conventions=conventions,
                                 batch_size=batch_size, max_length=max_length)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for half, name, color, marker in zip(halves, ("even", "odd"), mp.PALETTE, mp.MARKERS, strict=False):
        mp.plot_layers(ax, half, "cka", models=("pair",), hue=None, label_suffix=f", {name} texts", color=color,
                       marker=marker,
                       axis=half is halves[0])
    ax.legend()
    plt.show()

# %% [markdown]
# ## Paper vs ours
#
# Each row is computed from the first dataset's table above by `mbt.paper.divergence_findings`; the
# sentence under the table is generated from the same numbers. Shape claims are contrasts of the last
# 20 % of depth against the middle 20–80 %, with an interval bounded from the per-layer bootstrap
# intervals over texts where the table has them (cosine, relative mean shift) and from the layers
# themselves otherwise (CKA). The mean-shift claims use the **relative** shift
# ‖μ_SFT − μ_Base‖ / ‖μ_Base‖, because the raw shift grows with the residual-stream norm: SFT = 1.02 × Base
# would otherwise "spike at the end". Each verdict is *holds*, *contradicted* or *inconclusive*.

# %%
findings = paper.divergence_findings(main, halves=halves)
display(paper.report(findings, pair=label, settings={"dataset": datasets[0], "n_pooled": n_pooled,
                                                     "n_token": n_token, "conventions": conventions}))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"metrics": frame, "findings": findings}, pair=P)
