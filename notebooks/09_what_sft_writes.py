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
# # 9 · What SFT writes, and whether the depth profile is intrinsic
#
# The book so far asks the paper's question — *where* in depth SFT acts — and chapter 8 asks *when* the
# pattern appears. Two further questions come from the work that followed the paper, and this chapter
# answers them for the same pair, on one page.
#
# **The paper's claim** {cite:p}`zhao2026layerwise` (§3.2, §4.2). The final layers are the most sensitive to
# SFT, and the reason given is gradient proximity: "the layers closest to the output loss function are forced
# to undergo the most significant structural changes". The paper does not test that explanation.
#
# **What does SFT write, layer by layer?** The activation-difference lens {cite:p}`minder2025narrow` averages
# the difference between the fine-tuned and the Base model's residual streams over the first $k$ tokens of text
# *unrelated* to the fine-tuning data (they use $k = 5$ and the middle layer),
#
# $$
# \delta_l = \frac{1}{n}\sum_{i=1}^{n} \frac{1}{k}\sum_{j<k}
#   \bigl(h^{\mathrm{SFT}}_{l}(x_i)_j - h^{\mathrm{Base}}_{l}(x_i)_j\bigr),
# \qquad \rho_l = \frac{\lVert\delta_l\rVert_u}{\frac{1}{nk}\sum_{i,j}\lVert h^{\mathrm{Base}}_{l}(x_i)_j\rVert},
# $$
#
# where $\lVert\delta\rVert_u^2 = \lVert\hat\delta\rVert^2 - \operatorname{tr}\hat S/n$ removes the noise floor
# of the norm of a mean ($\hat S$: the sample covariance of the per-text differences), so a layer that is only
# noisier does not look more shifted. We read $\delta_l$ at every layer through the logit lens
# {cite:p}`nostalgebraist2020logitlens` — the SFT model's own final norm and unembedding, applied once,
# $\log\operatorname{softmax}(W_U\,\mathrm{norm}(\delta_l))$ — and check it causally: adding $\alpha\delta_l$ to
# the Base's residual stream at layer $l$ should move the Base's next-token distribution toward the SFT
# model's, more than a random direction of the same norm does:
#
# $$
# \Delta_l = \mathrm{KL}(p_{\mathrm{SFT}}\,\Vert\,p_{\mathrm{Base}})
#   - \mathrm{KL}(p_{\mathrm{SFT}}\,\Vert\,p_{\mathrm{Base}+\alpha\delta_l}).
# $$
#
# **When does each model settle?** The convergence gap {cite:p}`zhou2026convergence` decodes every layer with
# the lens and measures the KL to the same model's output, $\mathrm{KL}(p_L \Vert p_l)$: instruction-tuned
# checkpoints stay farther from their final prediction later into the stack, and grafting their late MLPs into
# the pretrained model moves it (+0.34 nats; the reverse graft −0.51). We measure both curves and graft late
# MLPs and late attention (chapter 5's swap, now for sub-blocks) in both directions, with a random perturbation
# of the same size as control. Then, per token, where along the text the two models' outputs part:
# $\mathrm{KL}(p_{\mathrm{SFT},t} \Vert p_{\mathrm{Base},t})$ by position and by the kind of the predicted
# token (the format's template or content).
#
# **Is the late-layer profile intrinsic?** The equal-step control {cite:p}`billa2026decomposing` fine-tunes
# again with an update rule that, after every optimiser step, rescales each block's update so that
# $\lVert\Delta W_l\rVert / \lVert W_l\rVert$ is the same for every block. If the profile survives, it belongs
# to the model; if it collapses, it came from how much gradient reached each block. We repeat the toy's SFT
# (and two rungs of chapter 8's ladder) under that rule with two SFT seeds each and compare four depth
# signatures.

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
unrelated: str = ""  # text unrelated to the SFT data (empty: WikiText; toy pairs: toy-text)
task: str = ""  # the SFT task (empty: GSM8K; toy pairs: toy-math)
n_unrelated: int = 256  # unrelated texts for the activation difference (the paper: 10,000)
k: int = 5  # first tokens of each text (the paper: 5)
n_steer: int = 32  # further unrelated texts the steering check is scored on
alpha: float = 1.0  # scale of the added difference
n_random: int = 2  # random directions per layer in the steering control
n_task: int = 64  # task texts: convergence gap, grafts, per-token KL, depth signatures
equal_steps: list = [25, 60, 300]  # SFT lengths of the equal-step control (toy: ladder rungs, 300 is the toy's own SFT)
equal_seeds: list = [0, 1]  # SFT seeds (data order) of every length
sft_lr: float = 2e-5  # fine-tuning a Hub Base: peak learning rate (toy pairs use the toy's recipe)
sft_batch: int = 8  # fine-tuning a Hub Base: examples per step
sft_train: int = 2000  # fine-tuning a Hub Base: training records
seed: int = 0  # sampling and bootstrap seed
batch_size: int = 8
max_length: int = 512
quick: bool = False  # smoke run

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import display

import mbt
import mbt.plots as mp
from mbt import diffing, equal_step
from mbt.pairs import pair_label

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map)
label = pair_label(P)
unrelated = unrelated or book.default_datasets(P, "unrelated")[0]
task = task or book.default_datasets(P, "finetune")[0]
n_unrelated, n_steer, n_task = (book.quick_size(name, value, quick) for name, value in
                                (("n_unrelated", n_unrelated), ("n_steer", n_steer), ("n_task", n_task)))
pool = mbt.load_texts(unrelated, n=n_unrelated + n_steer, seed=seed)
texts, steer_texts = pool[:n_unrelated], pool[n_unrelated:]  # δ is estimated on one part, steering scored on the other
task_texts = mbt.load_texts(task, n=n_task, seed=seed)
print(f"{label}: {len(texts)} + {len(steer_texts)} texts of {unrelated}, {len(task_texts)} of {task}; L = {P.n_layers}")

# %% [markdown]
# ## A · What SFT writes: the activation difference lens
#
# The relative size $\rho_l$ of the mean difference, per layer, with a 95 % interval from a joint bootstrap
# over texts (the same resampled texts at every layer); then, for the same $\delta_l$, how much adding it
# to the Base lowers the Base's KL to the SFT model's output, against random directions of equal norm.

# %%
difference = diffing.activation_difference(P, texts, k=k, seed=seed, batch_size=batch_size)
vectors = diffing.difference_vectors(P, texts, k=k, batch_size=batch_size)
steering = diffing.steering_check(P, vectors, steer_texts, alpha=alpha, n_random=n_random, seed=seed,
                                  batch_size=batch_size, max_length=min(max_length, 128))
gap = diffing.convergence_gap(P, task_texts, batch_size=batch_size, max_length=max_length)
fig = mp.diffing_figure(diffing.difference_summary(difference), diffing.steering_summary(steering),
                        diffing.gap_summary(gap), title=f"What SFT writes and when each model settles, {label}")
plt.show()

# %% [markdown]
# *What to look for:* the left panel is the paper's "final layers most sensitive" on text the SFT never saw;
# the middle one says whether that offset is what makes the SFT model behave differently (red above grey);
# the right one says which model commits to its prediction earlier (a lower curve has settled).
#
# **The tokens $\delta_l$ writes.** The strongest promoted and suppressed tokens of $\delta_l$ read through the SFT
# model's logit lens, at every layer. On the toy, the SFT data are word problems answered in the format
# `Question: …\nAnswer: … #### N`: if the fine-tune left its format in the residual stream, its tokens appear here.

# %%
tokens = diffing.difference_tokens(P, vectors, head="sft", top=6)
display(tokens.groupby(["layer", "direction"])["token"].agg(lambda t: " ".join(repr(x) for x in t)).unstack())

# %% [markdown]
# ## B · Where the settling lives: late MLPs and late attention grafted
#
# Chapter 5's swap, restricted to sub-blocks: the MLPs (or the attention) of the second half of the blocks
# of one model copied into the other, and the receiver's late KL to its own output measured on the task's
# texts (mean over layers of depth 0.5–1 below the last). The grey bars move the same tensors as far, in a
# random direction.

# %%
grafts = diffing.graft_sweep(P, task_texts, seed=seed, batch_size=batch_size, max_length=max_length)
fig = mp.graft_figure(diffing.graft_summary(grafts), title=f"Late sub-block grafts, {label}")
plt.show()
display(diffing.graft_summary(grafts).round(4))

# %% [markdown]
# ## C · Where along the text the outputs part
#
# Per token of the task's texts, the KL between the two models' next-token distributions, grouped by the kind
# of the token being predicted — the format's fixed strings (`Question:`, `Answer:`, `####`, option letters)
# or content before or after the answer marker — and by relative position. Each text first averages its own
# tokens, so intervals are over texts.

# %%
token_table = diffing.token_kl(P, task_texts, batch_size=batch_size, max_length=max_length)
by_kind = diffing.token_kl_summary(token_table, by="kind", seed=seed)
fig = mp.token_kl_figure(by_kind, diffing.token_kl_summary(token_table, by="position", seed=seed),
                         title=f"KL(p_SFT ‖ p_Base) per token, {label}")
plt.show()

# %% [markdown]
# ## D · The equal-step control: does the profile survive when every block may change equally?
#
# Each length and SFT seed is fine-tuned twice from the same Base with the same batches: once as usual, once
# with every block's update rescaled after each step to the step's mean relative update (the rule is tested to
# hold to 1e-6). On the toy the runs are chapter 8's ladder rungs and their equal-step twins (built once and
# kept); on another pair the Base is fine-tuned here on the task. For every run, four depth signatures against
# the Base: the relative Eq. 1 weight change per block, CKA and the relative mean shift on the task's texts, and
# the logit-lens accuracy on the answer. A run's *profile* is its last 20 % of depth against the middle 20–80 %
# (a ratio for the weight change and the shift, a difference for CKA — signed so that a final drop is positive —
# and for the lens).

# %%
steps = [book.quick_size("equal_steps", s, quick) for s in equal_steps][:1 if quick else None]
recipe = equal_step.SftRecipe(lr=sft_lr, batch_size=sft_batch, n_train=book.quick_size("sft_train", sft_train, quick))
runs = equal_step.equal_step_runs(P, task_texts, steps=steps, seeds=equal_seeds, task=task, recipe=recipe,
                                  batch_size=batch_size, max_length=max_length)
fig = mp.equal_step_figure(runs, title=f"Standard (solid) vs equal-step (dashed) SFT, mean over seeds, {label}")
plt.show()
display(paper.run_profiles(runs).pivot_table(index=["signature", "steps", "seed"], columns="rule",
                                             values="profile").round(4))

# %% [markdown]
# ## Paper vs ours
#
# Every claim of this chapter, decided by an interval at 95 %: over texts for the lens, the steering, the
# settling, the grafts and the token kinds (bootstrap; the depth contrast of $\rho$ from the joint replicates),
# over SFT seeds for the equal-step control (Student t, the variance pooled within SFT lengths: the lengths are
# fixed conditions, the seeds the replicates). Each row has its MDE: the smallest effect this design would
# find four times in five.

# %%
findings = paper.diffing_findings(difference=difference, steering=steering, gap=gap, grafts=grafts,
                                  tokens=token_table, runs=runs)
display(paper.report(findings, pair=label, settings={"unrelated": unrelated, "task": task, "k": k,
                                                     "n_unrelated": len(texts), "n_steer": len(steer_texts),
                                                     "n_task": len(task_texts), "alpha": alpha,
                                                     "equal_steps": steps, "equal_seeds": list(equal_seeds)}))

# %% [markdown]
# ## Where this stands among the tools
#
# What each neighbouring work measures — *where* in depth, *what* is written, *how much* can be tuned — and
# which of its measures this book reproduces on the same pair (each of these works released its code).
#
# | work | measures | reproduced here |
# |---|---|---|
# | the paper {cite:p}`zhao2026layerwise` | where: CKA, shift, lens, weights, swaps; how much: segment LoRA | ch. 1–7 |
# | activation-difference lens {cite:p}`minder2025narrow` | what: first-token offset on unrelated text; steering | A |
# | its diffing toolkit {cite:p}`minder2025narrow` | what: that lens, per-token KL, SAE and crosscoder diffs | A, C |
# | tuned lens {cite:p}`belrose2023tuned` | where a prediction forms: trained per-layer readouts | lens only |
# | convergence gap {cite:p}`zhou2026convergence` | when each model settles: KL to its own output; grafts | A, B |
# | equal-step control {cite:p}`billa2026decomposing` | whether the profile is intrinsic: equal updates | D |
# | ILA {cite:p}`shi2025ila` | which layers matter: a learned mask over each layer's update | not run |
# | LISA {cite:p}`pan2024lisa` | how much: a few randomly sampled layers updated per period | not run |
# | Spectrum {cite:p}`hartford2024spectrum` | which matrices: SNR from a random-matrix fit of the weights | ch. 7 |
# | OWS {cite:p}`li2025ows` | how much: layers sampled by their outlier ratio | not run |
# | data-oblivious critical layers {cite:p}`liu2025spectral` | which layers: CKA shift of Base layers | ch. 7 |
#
# Segment LoRA is the paper's adaptation of LoRA {cite:p}`hu2022lora` to a block of layers (chapter 6).
# Not reproduced: the lens's Patchscope reading and its interpretability agent, the toolkit's SAE and
# crosscoder diffs, trained (tuned) lenses, and the three training-time layer schedulers (ILA, LISA, OWS).

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"activation_difference": diffing.difference_summary(difference), "difference_tokens": tokens,
                "steering": diffing.steering_summary(steering), "convergence_gap": diffing.gap_summary(gap),
                "grafts": diffing.graft_summary(grafts), "token_kl": by_kind, "equal_step_runs": runs,
                "findings": findings}, pair=P)
