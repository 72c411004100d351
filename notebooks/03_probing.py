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
# # 3 · Probing: when does the next token become readable?
#
# **The paper's claim** (§4.3, Fig. 3). Decoding every layer with the model's own output head (a
# logit lens {cite:p}`nostalgebraist2020logitlens`), next-token accuracy on MMLU {cite:p}`hendrycks2021mmlu`
# stays near zero for the first 50 of OLMo2-32B's {cite:p}`olmo2024olmo2` 64 layers,
# rises within the last 14 layers to above 0.60, and then *drops* at the final layer, 0.60 → 0.52.
#
# **Method.** At layer $l$ the lens reads the residual stream with the model's own final norm and
# unembedding $W_U$, so $p_L$ is exactly the model's output; the score is the next-token top-1 accuracy
# over every real position $t$ of the formatted texts (question, options and answer, as the authors
# scored it), pooled over tokens:
#
# $$
# p_l(\cdot \mid x_{\le t}) = \mathrm{softmax}\bigl(W_U\, \mathrm{norm}(h_{l,t})\bigr), \qquad
# \mathrm{acc}_l = \frac{1}{T} \sum_t \mathbf{1}\bigl[\arg\max p_l(\cdot \mid x_{\le t}) = x_{t+1}\bigr].
# $$
#
# We also report $\mathrm{KL}(p_L \,\|\, p_l)$, the distance to the final output: the quantity whose depth
# profile the convergence gap {cite:p}`zhou2026convergence` compares between a pretrained checkpoint and its
# instruction-tuned twin. A tuned lens {cite:p}`belrose2023tuned` would first train an affine map per layer,
# which reads early layers more faithfully; like the paper, we read every layer with the model's own head.
# The authors fed Hugging Face Transformers' {cite:p}`wolf2020transformers` last hidden state, which is
# already normalised, so their last point applied the final
# norm twice (appendix [The released code](../book/released_code.md)). We compute both: the correct lens
# and the authors' variant
# (`paper=True`, crosses at the last layer), to test whether the double norm explains the final dip.

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
dataset: str = ""  # empty: MMLU as in the paper (toy pairs: toy-math, the task their SFT learned)
n_samples: int = 100  # texts (the authors' probing script: 100)
seed: int = 0  # sampling seed
batch_size: int = 8
max_length: int = 512
quick: bool = False  # smoke run: a handful of texts

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import display

import mbt
import mbt.plots as mp
from mbt.identity import cached_call
from mbt.metrics.registry import label as metric_label
from mbt.pairs import pair_label

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
dataset = dataset or book.default_datasets(P, "probing")[0]
n_samples = book.quick_size("n_samples", n_samples, quick)
label = pair_label(P)
texts = mbt.load_texts(dataset, n=n_samples, seed=seed)
print(f"{label}: L = {P.n_layers}; {len(texts)} texts of {dataset}, e.g.\n{texts[0]}")

# %% [markdown]
# ## The logit lens, layer by layer

# %%
lens = book.logit_lens_table(P, texts, batch_size=batch_size, max_length=max_length)
paper.save_table("lens", book.lens_curve(lens))  # for chapter 8 (a no-op outside a book build)
fig = mp.probe_figure(lens, metrics=("top1_acc", "kl_to_final"), title=f"Fig. 3 on {label}: logit lens")
plt.show()

# %% [markdown]
# *What you should see, if the paper's reading holds:* accuracy near 0 on the left, a rise in the last
# fifth of the depth, and — only for the crosses (final norm applied twice) — a drop at the last layer.
# The KL to the output falls to exactly 0 at layer $L$ for the correct lens, by construction.
#
# The token-weighted accuracy (the authors' number) per layer, with the authors' last-layer variant:

# %%
acc = lens[lens["metric"] == "top1_acc"].pivot_table(index="layer", columns=["model", "paper"], values="pooled")
acc.round(4)

# %% [markdown]
# ## Answer tokens only
#
# The authors scored every position, so most of the accuracy comes from copying the question's
# tokens. Restricting the score to the tokens after `Answer:` asks the question the chapter is about:
# at which layer is the *answer* readable?

# %%
answer = book.logit_lens_table(P, texts, positions="answer", batch_size=batch_size, max_length=max_length)
answer_acc = answer[(answer["metric"] == "top1_acc") & ~answer["paper"].astype(bool)]
answer_acc.pivot_table(index="layer", columns="model", values="pooled").round(4)

# %% [markdown]
# ## How far apart are the two lenses?
#
# Per layer, $\mathrm{KL}(p^{\mathrm{SFT}}_l \,\|\, p^{\mathrm{Base}}_l)$ on the same positions (each model
# with its own head), and how often the two lenses agree on the top-1 token.

# %%
divergence = cached_call(mbt.probe.lens_divergence, P, texts, batch_size=batch_size, max_length=max_length,
                             progress=False)
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2), layout="constrained")
for ax, metric in zip(axes, ["kl_sft_base", "top1_agreement"], strict=True):
    rows = divergence[divergence["metric"] == metric]
    ax.plot(rows["layer"], rows["pooled"], marker="o", color=mp.PAIR["color"])
    ax.set_ylabel(metric_label(metric))
    mp.layer_axis(ax, P.n_layers)
plt.show()

# %% [markdown]
# ## Paper vs ours
#
# The token-weighted accuracy with its per-layer cluster-bootstrap interval. "Low early" and "rises
# late" are contrasts between depth ≤ 50/64 and the layers after it; the final-layer dip is
# $\mathrm{acc}_L - \mathrm{acc}_{L-1}$ with a standard error bounded by the two layers' intervals
# (valid whatever their correlation, so conservative): a dip smaller than that is *inconclusive*, not a dip.

# %%
findings = paper.probing_findings(lens)
display(paper.report(findings, pair=label, settings={"dataset": dataset, "n_samples": len(texts)}))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"lens": lens, "lens_answers": answer, "lens_divergence": divergence, "findings": findings},
               pair=P)
